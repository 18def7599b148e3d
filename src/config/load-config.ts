/**
 * The one configuration load path: embedded defaults -> file (HPCQ_CONFIG or --config) ->
 * environment (HPCQ_STATE_DIR, HPCQ_LISTEN) -> command-line flags; validated once, every problem
 * reported together (as `file:line:col: key.path: message`), then compiled and frozen.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from './config-error.js';
import type { AccessConfig, ClusterConfig, DaemonConfig, QueueConfig, SlurmConfig, TlsConfig } from './daemon-config.js';
import { defaultSocketPath, defaultStateDir } from './default-state-dir.js';
import { formatProblems, formatSyntaxError, locator, schemaProblems, type KeyPath, type Locate, type Problem } from './problems.js';
import { repairForChecks } from './repair.js';
import { configSchema, type ConfigFile } from './schema.js';

export { ConfigError };

export interface ConfigOverrides {
  configPath?: string;
  stateDir?: string;
  listen?: string;
}

export interface HostFacts {
  cores: number;
  memoryMb: number;
  uid: number;
}

export function loadConfig(env: NodeJS.ProcessEnv, flags: ConfigOverrides, host: HostFacts): DaemonConfig {
  const path = flags.configPath ?? env.HPCQ_CONFIG;
  let raw: unknown = {};
  let source = 'embedded default';
  let locate: Locate | undefined;
  if (path) {
    source = path;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(source, [`cannot read: ${(err as Error).message}`]);
    }
    // The document, not just its value: problems point at the line and column to edit.
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines });
    if (doc.errors.length > 0) throw new ConfigError(source, doc.errors.map((err) => formatSyntaxError(err, source)));
    try {
      raw = doc.toJS() ?? {};
    } catch (err) {
      throw new ConfigError(source, [`not valid YAML/JSON: ${(err as Error).message}`]);
    }
    locate = locator(doc, lines);
  }
  return compileConfig(raw, source, {
    stateDir: flags.stateDir ?? env.HPCQ_STATE_DIR,
    listen: flags.listen ?? env.HPCQ_LISTEN,
  }, host, env, locate);
}

type Overrides = { stateDir?: string | undefined; listen?: string | undefined };

/**
 * Validates and compiles a parsed file. Schema problems (unknown keys, wrong types) and
 * cross-field problems come in one ConfigError; `locate` (from loadConfig) adds file positions.
 */
export function compileConfig(
  raw: unknown,
  source: string,
  overrides: Overrides,
  host: HostFacts,
  env: NodeJS.ProcessEnv = {},
  locate?: Locate,
): DaemonConfig {
  const problems: Problem[] = [];
  const parsed = configSchema.safeParse(raw);
  let config: DaemonConfig | undefined;
  if (parsed.success) {
    config = compileParsed(parsed.data, overrides, host, env, problems);
  } else {
    problems.push(...schemaProblems(parsed.error.issues, raw, configSchema));
    const repaired = repairForChecks(configSchema, raw);
    if (repaired) {
      const checks: Problem[] = [];
      compileParsed(repaired.data, overrides, host, env, checks);
      for (const p of checks) {
        const path = repaired.toFilePath(p.path);
        if (!repaired.touchesRepair(path)) problems.push({ ...p, path });
      }
    }
  }
  if (config && problems.length === 0) return config;
  throw new ConfigError(source, formatProblems(problems, source, locate));
}

/** Compiles a file the schema accepted, adding its cross-field problems to `problems`. */
function compileParsed(file: ConfigFile, overrides: Overrides, host: HostFacts, env: NodeJS.ProcessEnv, problems: Problem[]): DaemonConfig {
  const problem = (path: KeyPath, message: string, notInFile = false) => problems.push({ path, message, notInFile });

  const stateDir = overrides.stateDir || file.state_dir || defaultStateDir(host.uid, env);
  if (!isAbsolute(stateDir)) problem(['state_dir'], `must be an absolute path, got ${JSON.stringify(stateDir)}`, Boolean(overrides.stateDir));
  const listen = overrides.listen ? [overrides.listen] : (file.listen ?? [`unix:${defaultSocketPath(stateDir, host.uid)}`]);
  const tls = compileTls(file.tls, problem);
  for (const [i, address] of listen.entries()) {
    for (const p of checkListenAddress(address, tls !== undefined)) problem(['listen', i], p, Boolean(overrides.listen));
  }
  const access = compileAccess(file.access, stateDir, problem);
  const metricsListen = file.metrics_listen || undefined;
  if (metricsListen !== undefined && !isHostPort(metricsListen)) problem(['metrics_listen'], `expected host:port (port 0-65535), e.g. 127.0.0.1:9464, got ${JSON.stringify(metricsListen)}`);

  const nodeCores = file.node.cores || host.cores;
  const nodeMemMb = file.node.mem_mb || Math.max(256, host.memoryMb - file.node.reserved_mem_mb);

  const clusters: ClusterConfig[] = [];
  const queueIds = new Set<string>();
  for (const [ci, c] of file.clusters.entries()) {
    const at = ['clusters', ci];
    if (clusters.some((x) => x.clusterId === c.cluster_id)) problem([...at, 'cluster_id'], `duplicate cluster ${c.cluster_id}`);
    const names = new Set<string>();
    const queues: QueueConfig[] = [];
    for (const [qi, q] of c.queues.entries()) {
      const qat = [...at, 'queues', qi];
      if (queueIds.has(q.hpcqueue_id)) problem([...qat, 'hpcqueue_id'], `duplicate queue id ${q.hpcqueue_id}`);
      if (names.has(q.scheduler_queue_name)) problem([...qat, 'scheduler_queue_name'], `duplicate queue name ${q.scheduler_queue_name} in cluster ${c.cluster_id}`);
      queueIds.add(q.hpcqueue_id);
      names.add(q.scheduler_queue_name);
      const maxCores = q.max_cores || nodeCores;
      const maxMemMb = q.max_mem_mb || nodeMemMb;
      if (q.default_cores > maxCores) problem([...qat, 'default_cores'], `${q.default_cores} exceeds max_cores ${maxCores}`);
      if (q.default_mem_mb > maxMemMb) problem([...qat, 'default_mem_mb'], `${q.default_mem_mb} exceeds max_mem_mb ${maxMemMb}`);
      if (q.default_time_seconds > q.max_time_seconds) problem([...qat, 'default_time_seconds'], `${q.default_time_seconds} exceeds max_time_seconds ${q.max_time_seconds}`);
      if (maxCores > nodeCores) problem([...qat, 'max_cores'], `${maxCores} exceeds the node's ${nodeCores} allocatable cores; such a job could never start`);
      if (maxMemMb > nodeMemMb) problem([...qat, 'max_mem_mb'], `${maxMemMb} exceeds the node's ${nodeMemMb} MiB allocatable memory; such a job could never start`);
      queues.push(
        Object.freeze({
          clusterId: c.cluster_id,
          zone: c.zone,
          hpcqueueId: q.hpcqueue_id,
          schedulerQueueName: q.scheduler_queue_name,
          isDefault: q.default,
          priority: q.priority,
          maxCores,
          defaultCores: q.default_cores,
          maxMemMb,
          defaultMemMb: q.default_mem_mb,
          maxTimeSeconds: q.max_time_seconds,
          defaultTimeSeconds: q.default_time_seconds,
          maxRunning: q.max_running,
          maxPending: q.max_pending,
          maxRunningPerUser: q.max_running_per_user,
          maxPendingPerUser: q.max_pending_per_user,
          allowedGroups: Object.freeze([...q.allowed_groups]),
          allowedUsers: Object.freeze([...q.allowed_users]),
        }),
      );
    }
    const defaults = queues.filter((q) => q.isDefault).length;
    if (defaults !== 1) problem([...at, 'queues'], `exactly one queue must have default: true, found ${defaults}`);
    if (c.slurm && c.backend !== 'slurm') problem([...at, 'slurm'], 'slurm settings need backend: slurm');
    const slurm = c.backend === 'slurm' ? slurmConfigOf(c.slurm) : undefined;
    clusters.push(Object.freeze({ clusterId: c.cluster_id, zone: c.zone, backend: c.backend, ...(slurm ? { slurm } : {}), queues: Object.freeze(queues) }));
  }

  return Object.freeze({
    stateDir,
    listen: Object.freeze(listen),
    tls,
    // Only when on: a configuration without metrics has no such key.
    ...(metricsListen !== undefined && { metricsListen }),
    access,
    killGraceSeconds: file.kill_grace_seconds,
    enforcement: file.enforcement,
    requireEnforcement: file.require_enforcement,
    clockSkewSeconds: file.clock_skew_seconds,
    maxArrayCount: file.max_array_count,
    jobUmask: parseInt(file.job_umask, 8),
    nodeCores,
    nodeMemMb,
    retentionMaxAgeDays: file.retention.finished_job_max_age_days,
    retentionSchedule: file.retention.schedule,
    clusters: Object.freeze(clusters),
  });
}

/**
 * Problems with one listen address; empty if it is fine. TCP needs TLS, loopback included: every
 * local user can reach loopback, and TCP carries no uid.
 */
export function checkListenAddress(address: string, hasTls: boolean): string[] {
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    return isAbsolute(path) ? [] : [`unix socket path must be absolute: ${address}`];
  }
  if (!isHostPort(address)) return [`expected unix:/abs/path.sock or host:port (port 0-65535), got ${JSON.stringify(address)}`];
  if (!hasTls) {
    return [`TCP address ${address} needs TLS: set tls.cert_file and tls.key_file (plaintext TCP carries no identity, so it is refused, loopback included)`];
  }
  return [];
}

/** `host:port` or `[v6]:port`, port 0-65535. */
function isHostPort(address: string): boolean {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(address);
  return m !== null && Number(m[2]) <= 65535;
}

type AddProblem = (path: KeyPath, message: string, notInFile?: boolean) => void;

function compileTls(tls: ConfigFile['tls'], problem: AddProblem): TlsConfig | undefined {
  for (const key of ['cert_file', 'key_file', 'client_ca_file'] as const) {
    const path = tls[key];
    if (path !== undefined && !isAbsolute(path)) problem(['tls', key], `must be an absolute path, got ${JSON.stringify(path)}`);
  }
  if (tls.cert_file === undefined && tls.key_file === undefined) {
    if (tls.client_ca_file !== undefined) problem(['tls', 'client_ca_file'], 'needs tls.cert_file and tls.key_file');
    return undefined;
  }
  if (tls.cert_file === undefined || tls.key_file === undefined) {
    problem(['tls', tls.cert_file === undefined ? 'cert_file' : 'key_file'], 'tls.cert_file and tls.key_file go together');
    return undefined;
  }
  return Object.freeze({ certFile: tls.cert_file, keyFile: tls.key_file, clientCaFile: tls.client_ca_file });
}

function compileAccess(access: ConfigFile['access'], stateDir: string, problem: AddProblem): AccessConfig {
  const names = new Set<string>();
  for (const [i, p] of access.principals.entries()) {
    if (names.has(p.name)) problem(['access', 'principals', i, 'name'], `duplicate principal ${JSON.stringify(p.name)}`);
    names.add(p.name);
  }
  const auditLogPath = access.audit_log ?? join(stateDir, 'audit.log');
  // Derived from state_dir when not given: then the file has no audit_log to point at.
  if (!isAbsolute(auditLogPath)) problem(['access', 'audit_log'], `must be an absolute path, got ${JSON.stringify(auditLogPath)}`, access.audit_log === undefined);
  return Object.freeze({
    adminGroups: Object.freeze([...access.admin_groups]),
    minUid: access.min_uid,
    allowRootGroup: access.allow_root_group,
    jobVisibility: access.job_visibility,
    principals: Object.freeze(access.principals.map((p) => Object.freeze({ name: p.name, runUsers: Object.freeze([...p.run_users]), admin: p.admin }))),
    rateLimit: Object.freeze({ perSecond: access.rate_limit.submits_per_second, burst: access.rate_limit.burst, adminsExempt: access.rate_limit.admins_exempt }),
    maxConnections: access.max_connections,
    maxConnectionsPerUid: access.max_connections_per_uid,
    maxStreamsPerPrincipal: access.max_streams_per_principal,
    firstRequestTimeoutMs: access.first_request_timeout_seconds * 1000,
    auditLogPath,
  });
}

/** A Slurm cluster's settings, defaults filled in (also when the slurm key is absent). */
function slurmConfigOf(file: { bin_dir?: string | undefined; conf?: string | undefined; poll_interval_seconds: number; command_timeout_seconds: number } | undefined): SlurmConfig {
  return Object.freeze({
    ...(file?.bin_dir !== undefined ? { binDir: file.bin_dir } : {}),
    ...(file?.conf !== undefined ? { conf: file.conf } : {}),
    pollIntervalSeconds: file?.poll_interval_seconds ?? 2,
    commandTimeoutSeconds: file?.command_timeout_seconds ?? 30,
  });
}
