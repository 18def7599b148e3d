/**
 * The configuration file's schema. Every key has its default here: these defaults ARE the embedded
 * default configuration (config/hpcqd.yaml spells out the same values; a test keeps them equal).
 * Keys are snake_case like the EHPC API; load-config.ts (compileConfig) turns the parsed file into
 * the frozen, camelCase `DaemonConfig` the rest of the daemon uses, and config-file.ts turns it back.
 * Keys in seconds, days or MiB also take strings with units (`30m`, `2d`, `16G`).
 */
import cron from 'node-cron';
import { z } from 'zod';
import { parseDuration, parseMemMiB } from '../core/units.js';

const nonNegativeInt = z.number().int().min(0);

/**
 * A key in a unit (seconds, days, MiB) that also takes a string with units, read by the CLI's own
 * parser so that `30m`, `2d` or `16G` mean the same in the file as on the command line. The parsed
 * value is the plain number: the rest of the daemon never sees a unit.
 */
function withUnits(parseText: (text: string) => number, number: z.ZodNumber) {
  return z.preprocess((value, ctx) => {
    if (typeof value !== 'string') return value;
    try {
      return parseText(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message, input: value });
      return z.NEVER;
    }
  }, number);
}
/** A number schema whose wrong-type message names the accepted forms (range messages stay zod's). */
const numberOf = (forms: string) => z.number({ error: (issue) => (issue.code === 'invalid_type' ? `expected ${forms}` : undefined) });
/** Whole seconds: a number, or a duration such as `30m`. */
const seconds = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  withUnits(parseDuration, numberOf('seconds (3600) or a duration with units (90s, 30m, 12h, 2d)').int().min(min).max(max));
/** Whole MiB: a number, or a size with a K/M/G/T suffix such as `16G` (binary units, rounded up to MiB). */
const mebibytes = (min: number) => withUnits(parseMemMiB, numberOf('MiB (1024) or a size with units (512M, 16G, 1T)').int().min(min));
/** Whole days: a number, or a duration that is a whole number of days (`30d`, `720h`). */
const days = withUnits((text) => {
  const s = parseDuration(text);
  if (s % 86_400 !== 0) throw new Error(`${JSON.stringify(text)} is not a whole number of days`);
  return s / 86_400;
}, numberOf('days (30) or a duration with units (30d, 720h)').int().min(0));

/** A Unix user or group name (POSIX portable, as useradd accepts). */
const unixName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, 'a Unix user or group name');

/** A principal of the access policy: a certificate subject (mutual TLS) or a Unix account. */
export const principalSchema = z.strictObject({
  /** A certificate's subject (SAN URI, SAN DNS name or CN) as it is, or a local account as `uid:<n>` or `user:<name>`. */
  name: z.string().min(1).max(256),
  /** Accounts it may submit jobs as: user names, or `@group` for every member of a group. Default none. */
  run_users: z.array(z.string().regex(/^@?[A-Za-z_][A-Za-z0-9_.-]{0,31}$/, 'a user name or @group')).default([]),
  /** Sees and acts on every job and may submit as any allowed account. Default false. */
  admin: z.boolean().default(false),
});

export const accessSchema = z.strictObject({
  /** Members of these Unix groups are admins (root always is). Default none. */
  admin_groups: z.array(unixName).default([]),
  /** Lowest uid a job may run as; system accounts below it are refused (login.defs UID_MIN). Default 1000. */
  min_uid: z.number().int().min(1).default(1000),
  /** Let jobs run with group root (gid 0) among their groups. Default false. */
  allow_root_group: z.boolean().default(false),
  /** own: a non-admin sees only its own jobs (others' answer NOT_FOUND); all: everyone sees every job. Default own. */
  job_visibility: z.enum(['own', 'all']).default('own'),
  /** Certificate (or named) principals and what they may do. Default none. */
  principals: z.array(principalSchema).default([]),
  /** Per-principal request rate, a token bucket over every API call. Default 20/s, burst 40, admins exempt. */
  rate_limit: z
    .strictObject({
      /** Sustained calls per second per principal; 0 = unlimited. Default 20. */
      submits_per_second: z.number().min(0).default(20),
      /** Calls a principal may make at once after being idle. Default 40. */
      burst: z.number().int().min(1).default(40),
      /** Admins bypass the rate limit. Default true. */
      admins_exempt: z.boolean().default(true),
    })
    .prefault({}),
  /** Open connections in total; more are closed at once. Default 4096. */
  max_connections: z.number().int().min(1).default(4096),
  /** Open connections per local uid (or per remote address over TCP). Default 128. */
  max_connections_per_uid: z.number().int().min(1).default(128),
  /** Concurrent calls and watches per principal. Default 256. */
  max_streams_per_principal: z.number().int().min(1).default(256),
  /** A connection that has not completed its first call within this many seconds is closed (slowloris). Default 10. */
  first_request_timeout_seconds: seconds(1, 600).default(10),
  /** Audit log path (JSON lines); default <state_dir>/audit.log. */
  audit_log: z.string().optional(),
});

/** TLS for TCP listeners: required for any TCP listener. */
export const tlsSchema = z.strictObject({
  /** Server certificate chain, PEM. */
  cert_file: z.string().optional(),
  /** Server private key, PEM (readable only by the daemon's user). */
  key_file: z.string().optional(),
  /** CA bundle, PEM: when set, clients must present a certificate signed by it (mutual TLS). */
  client_ca_file: z.string().optional(),
});

export const queueSchema = z.strictObject({
  /** EHPC queue id, e.g. hpcq-normal. Unique across all clusters. */
  hpcqueue_id: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, - and _, starting with a letter, at most 64'),
  /** Scheduler-side queue name, e.g. normal. Unique within its cluster. */
  scheduler_queue_name: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, - and _, starting with a letter, at most 64'),
  /** Jobs naming neither queue go to the cluster's default queue (exactly one per cluster). */
  default: z.boolean().default(false),
  /** Higher priority queues are dispatched first. Default 0. */
  priority: z.number().int().default(0),
  /** Per-job maximum cores; 0 = the node's allocatable cores. */
  max_cores: nonNegativeInt.default(0),
  /** Cores a job gets when it asks for 0. Default 1. */
  default_cores: z.number().int().min(1).default(1),
  /** Per-job maximum memory in MiB; 0 = the node's allocatable memory. */
  max_mem_mb: mebibytes(0).default(0),
  /** Memory a job gets when it asks for 0, MiB. Default 1024. */
  default_mem_mb: mebibytes(1).default(1024),
  /** Per-job maximum wall time, seconds. Default 7 days. */
  max_time_seconds: seconds(1).default(7 * 24 * 3600),
  /** Wall time a job gets when it asks for 0, seconds. Default 1 hour. */
  default_time_seconds: seconds(1).default(3600),
  /** Most jobs of this queue running at once; 0 = no limit but the node's. */
  max_running: nonNegativeInt.default(0),
  /** Most jobs waiting in this queue; a submit beyond it fails with LimitExceeded.JobQuota. Default 100000. */
  max_pending: z.number().int().min(1).default(100_000),
  /** Most jobs of one user running in this queue (Slurm MaxJobsPerUser); 0 = no cap. Default 0. */
  max_running_per_user: nonNegativeInt.default(0),
  /** Most jobs of one user waiting in this queue (Slurm MaxSubmitJobsPerUser; an array counts once); 0 = no cap. Default 0. */
  max_pending_per_user: nonNegativeInt.default(0),
  /** Unix groups whose members may run jobs in this queue (Slurm's AllowGroups); empty = everyone. */
  allowed_groups: z.array(unixName).default([]),
  /** Unix users who may run jobs in this queue, besides allowed_groups; empty (with no groups) = everyone. */
  allowed_users: z.array(unixName).default([]),
});

/** How hpcqd reaches a Slurm cluster (backend: slurm), from a login or controller node with munge. */
export const slurmSchema = z.strictObject({
  /** Directory of sbatch, squeue, scancel, scontrol and sacct; default: found on PATH. */
  bin_dir: z.string().optional(),
  /** The cluster's slurm.conf (SLURM_CONF for the commands); default: Slurm's own default. */
  conf: z.string().optional(),
  /** Seconds between two squeue polls of the cluster's jobs. Default 2. */
  poll_interval_seconds: seconds(1, 3600).default(2),
  /** Deadline of one Slurm command, seconds. Default 30. */
  command_timeout_seconds: seconds(1, 600).default(30),
});

export const clusterSchema = z.strictObject({
  /** EHPC cluster id. */
  cluster_id: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, - and _, starting with a letter'),
  /** Zone the cluster lives in; a submit naming another zone fails with InvalidZone.MismatchRegion. */
  zone: z.string().min(1).max(64),
  /** Who runs the cluster's jobs: local (this node, under hpcq's supervisors) or slurm. Default local. */
  backend: z.enum(['local', 'slurm']).default('local'),
  slurm: slurmSchema.optional(),
  queues: z.array(queueSchema).min(1),
});

export const configSchema = z.strictObject({
  /** Where the database, run files and default socket live. Default /var/lib/hpcq as root, else ~/.local/state/hpcq. */
  state_dir: z.string().optional(),
  /**
   * gRPC listen addresses: `unix:/abs/path.sock` (connectable by every local user, who is
   * identified by the kernel) or `host:port` (TLS required). Default: unix:/run/hpcq/hpcqd.sock as
   * root (hpcqd-<hash>.sock for another state_dir), else unix:<state_dir>/hpcqd.sock.
   */
  listen: z.array(z.string().min(1)).min(1).optional(),
  tls: tlsSchema.prefault({}),
  access: accessSchema.prefault({}),
  /** Seconds between SIGTERM and SIGKILL on time limit and cancel (Slurm's KillWait). Default 30. */
  kill_grace_seconds: seconds(0, 3600).default(30),
  /** How limits are enforced: auto picks cgroup2, then cgroup1, then rlimit. Default auto. */
  enforcement: z.enum(['auto', 'cgroup2', 'cgroup1', 'rlimit']).default('auto'),
  /**
   * With true, the daemon refuses to start unless it can enforce memory and CPU limits with cgroups
   * (or the admin chose `enforcement: rlimit` explicitly). Default true.
   */
  require_enforcement: z.boolean().default(true),
  /** Largest accepted difference between a request's timestamp and the daemon's clock, seconds. Default 300. */
  clock_skew_seconds: seconds(1).default(300),
  /** Most instances one array job may have (Slurm's MaxArraySize). Default 10000. */
  max_array_count: z.number().int().min(1).max(1_000_000).default(10_000),
  /** umask of job processes, octal string. Default "0022". */
  job_umask: z.string().regex(/^0?[0-7]{3}$/).default('0022'),
  node: z
    .strictObject({
      /** Allocatable cores; 0 = detected (all online CPUs). */
      cores: nonNegativeInt.default(0),
      /** Allocatable memory in MiB; 0 = detected (total memory minus reserved_mem_mb). */
      mem_mb: mebibytes(0).default(0),
      /** Memory kept for the system when mem_mb is detected, MiB. Default 512. */
      reserved_mem_mb: mebibytes(0).default(512),
    })
    .prefault({}),
  retention: z
    .strictObject({
      /** Finished jobs older than this are purged with their events. 0 = keep forever. Default 30. */
      finished_job_max_age_days: days.default(30),
      /** node-cron schedule of the purge; '' (the default) = every hour at minute 17. */
      schedule: z
        .string()
        .refine((text) => text === '' || cron.validate(text), 'not a cron expression (minute hour day-of-month month day-of-week)')
        .default(''),
    })
    .prefault({}),
  /** Prometheus metrics over plain HTTP at http://<host:port>/metrics; empty or absent = off. Default off. */
  metrics_listen: z.string().optional(),
  /** Default: one cluster with a normal (default) and a debug queue; unlisted keys take the queue defaults above. */
  clusters: z.array(clusterSchema).min(1).prefault([
    {
      cluster_id: 'hpcq-local',
      zone: 'local',
      queues: [
        { hpcqueue_id: 'hpcq-normal', scheduler_queue_name: 'normal', default: true, priority: 10 },
        {
          hpcqueue_id: 'hpcq-debug',
          scheduler_queue_name: 'debug',
          priority: 20,
          default_mem_mb: 512,
          max_time_seconds: 1800,
          default_time_seconds: 600,
          max_running: 4,
          max_pending: 1000,
        },
      ],
    },
  ]),
});

export type ConfigFile = z.infer<typeof configSchema>;
