/**
 * Starts a real hpcqd (the built dist/daemon/main.cjs) in a temporary state directory, listening on
 * a unix socket inside it, and gives typed gRPC clients for it. `stopAll()` (call it in afterEach)
 * cancels their jobs, kills them and removes their directories and cgroups.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { credentials, makeGenericClientConstructor, status, type ServiceError } from '@grpc/grpc-js';
import { service as healthServiceDefinition } from 'grpc-health-check';
import {
  JobServiceClient,
  type CancelJobRequest,
  type CancelJobResponse,
  type GetJobRequest,
  type GetJobResponse,
  type ListJobsRequest,
  type ListJobsResponse,
  type SubmitJobRequest,
  type SubmitJobResponse,
} from '../../src/gen/hpcq/v1/job_service.js';
import { cgroupParentName } from '../../src/daemon/enforcement.js';
import { QueueServiceClient, type ListQueuesRequest, type ListQueuesResponse } from '../../src/gen/hpcq/v1/queue_service.js';
import { JobState, type Job } from '../../src/gen/hpcq/v1/job.js';
import { errorInfoOf } from '../../src/api/grpc-status.js';
import { JOB_USER } from './privileged.js';
import { submitRequest } from './submit-request.js';
import { HPCQD_ENV, HPCQD_NODE_FLAGS } from '../../src/daemon/process-tuning.js';

export const PACKAGE_ROOT = resolve(import.meta.dirname, '..', '..');
export const DAEMON_MAIN = join(PACKAGE_ROOT, 'dist', 'daemon', 'main.cjs');
export const CLI_MAIN = join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');

/** A small config for tests: short kill grace, fixed node size, two queues. */
export const TEST_CONFIG = `
kill_grace_seconds: 1
node:
  cores: 4
  mem_mb: 4096
clusters:
  - cluster_id: hpcq-test
    zone: test-zone
    queues:
      - hpcqueue_id: hpcq-normal
        scheduler_queue_name: normal
        default: true
        priority: 10
        default_mem_mb: 256
        max_time_seconds: 3600
        default_time_seconds: 600
      - hpcqueue_id: hpcq-debug
        scheduler_queue_name: debug
        priority: 20
        max_cores: 2
        max_mem_mb: 1024
        default_mem_mb: 128
        max_time_seconds: 60
        default_time_seconds: 30
        max_running: 1
        max_pending: 3
`;

/** TEST_CONFIG and a second cluster, hpcq-second (zone second-zone, one queue hpcq-second-normal). */
export const TWO_CLUSTER_CONFIG = `${TEST_CONFIG}
  - cluster_id: hpcq-second
    zone: second-zone
    queues:
      - hpcqueue_id: hpcq-second-normal
        scheduler_queue_name: normal
        default: true
        default_mem_mb: 256
`;

export interface DaemonHandle {
  stateDir: string;
  /** The unix socket the test clients use. */
  address: string;
  /** Every address the daemon bound (TCP port 0 resolved), from its ready line. */
  addresses: readonly string[];
  proc: ChildProcess;
  output: () => string;
  jobs: InstanceType<typeof JobServiceClient>;
  queues: InstanceType<typeof QueueServiceClient>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit (supervisors survive). */
  kill9(): Promise<void>;
}

/**
 * How long a daemon may take to start. In the cgroup v2 VM on QEMU's emulator (no hardware
 * virtualization; scripts/cgroup2-vm.sh says so in HPCQ_TEST_VM_EMULATED) Node runs some 20 times
 * slower, and a start that takes 0.3 s here takes 5 to 10 s there.
 */
const READY_TIMEOUT_MS = process.env.HPCQ_TEST_VM_EMULATED === '1' ? 120_000 : 20_000;

const started = new Set<DaemonHandle>();
const dirs = new Set<string>();

/** The socket directory of each state directory, so that restarted daemons keep their address. */
const socketDirs = new Map<string, string>();

/** A directory every user may traverse, for a test daemon's socket. */
export function makeSocketDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-sock-'));
  chmodSync(dir, 0o755);
  dirs.add(dir);
  return dir;
}

export function makeStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-test-'));
  chmodSync(dir, 0o700);
  dirs.add(dir);
  return dir;
}

/**
 * Starts a daemon and registers it for stopAll. `uid`/`gid` run it as that user instead of root
 * (the state directory must then be theirs); `env` adds to its environment.
 */
export async function startDaemon(
  opts: {
    stateDir?: string;
    config?: string;
    env?: Record<string, string>;
    uid?: number;
    gid?: number;
    /** More listen addresses besides the unix socket (e.g. `127.0.0.1:0` with tls in the config). */
    extraListen?: readonly string[];
  } = {},
): Promise<DaemonHandle> {
  if (!existsSync(DAEMON_MAIN)) throw new Error(`${DAEMON_MAIN} is missing: run npm run build`);
  const stateDir = opts.stateDir ?? makeStateDir();
  const configPath = join(stateDir, 'hpcqd.yaml');
  const extraListen = opts.extraListen ?? [];
  // A root daemon's socket goes in a 0755 directory, so that tests can call it as other users
  // (the daemon tells them apart by their uid); a daemon run as a user keeps it in its state dir.
  // A restart on the same state directory keeps the address, as a real daemon's would.
  let socketDir = opts.uid === undefined ? socketDirs.get(stateDir) : stateDir;
  if (socketDir === undefined) socketDirs.set(stateDir, (socketDir = makeSocketDir()));
  const address = `unix:${join(socketDir, 'hpcqd.sock')}`;
  // HPCQ_LISTEN names one address; several go in the file's listen list.
  const listenYaml = extraListen.length === 0 ? '' : `\nlisten:\n${[address, ...extraListen].map((a) => `  - "${a}"`).join('\n')}\n`;
  writeFileSync(configPath, (opts.config ?? TEST_CONFIG) + listenYaml);
  const listenEnv: Record<string, string> = extraListen.length === 0 ? { HPCQ_LISTEN: address } : {};
  // Started as hpcqd starts itself (its first line): the same process settings as in production.
  const proc = spawn(process.execPath, [...HPCQD_NODE_FLAGS, DAEMON_MAIN], {
    uid: opts.uid,
    gid: opts.gid,
    env: { ...HPCQD_ENV, PATH: process.env.PATH ?? '/usr/bin:/bin', HPCQ_STATE_DIR: join(stateDir, 'state'), HPCQ_CONFIG: configPath, ...listenEnv, HPCQ_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not become ready:\n${out}`)), READY_TIMEOUT_MS);
    const check = () => {
      if (out.includes('"event":"ready"')) {
        clearTimeout(timer);
        resolveReady();
      }
    };
    proc.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before ready:\n${out}`));
    });
  });
  const ready = JSON.parse(out.split('\n').find((line) => line.includes('"event":"ready"'))!) as { addresses: string[] };
  const jobs = new JobServiceClient(address, credentials.createInsecure());
  const queues = new QueueServiceClient(address, credentials.createInsecure());
  const handle: DaemonHandle = {
    stateDir,
    address,
    addresses: ready.addresses,
    proc,
    output: () => out,
    jobs,
    queues,
    async stop() {
      jobs.close();
      queues.close();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const code = await exited;
      started.delete(handle);
      return code;
    },
    async kill9() {
      jobs.close();
      queues.close();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      started.delete(handle);
    },
  };
  started.add(handle);
  return handle;
}

/**
 * Ends every test daemon without leaving anything behind: cancels its pending and running jobs
 * (their supervisors would outlive the daemon), stops it, removes its cgroup parents and temp dirs.
 */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...started].map(async (d) => {
      await cancelActiveJobs(d).catch(() => undefined);
      await d.kill9();
    }),
  );
  for (const dir of dirs) {
    removeCgroupParents(join(dir, 'state'));
    rmSync(dir, { recursive: true, force: true });
  }
  dirs.clear();
  socketDirs.clear();
}

async function cancelActiveJobs(d: DaemonHandle): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  const page = await listJobs(d, { states: [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING], pageSize: 1000 });
  await Promise.all(
    page.jobs.map(async (job) => {
      await cancelJob(d, job.jobId).catch(() => undefined);
      await waitForEnd(d, job.jobId, 15_000).catch(() => undefined);
    }),
  );
}

/** Removes the (empty) per-daemon cgroup parent in every hierarchy; job cgroups are gone by now. */
function removeCgroupParents(stateDir: string): void {
  const name = cgroupParentName(stateDir);
  let controllers: string[] = [];
  try {
    controllers = readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  for (const controller of [...controllers, '.']) {
    try {
      rmdirSync(join('/sys/fs/cgroup', controller, name));
    } catch {
      // Not there, or a job cgroup is still inside (then the sweep of a later daemon removes it).
    }
  }
}

/** Promisified unary call; give <Req, Res> explicitly (grpc-js overloads defeat inference). */
export function call<Req, Res>(
  fn: (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  client: object,
  req: Req,
): Promise<Res> {
  return new Promise((res, rej) => fn.call(client, req, (err, r) => (err ? rej(err) : res(r))));
}

export const emptySubmit: SubmitJobRequest = submitRequest();

export function submit(d: DaemonHandle, req: Partial<SubmitJobRequest>): Promise<SubmitJobResponse> {
  return call(d.jobs.submitJob, d.jobs, { ...emptySubmit, ...req });
}

export async function getJob(d: DaemonHandle, jobId: string): Promise<Job> {
  const res = await call<GetJobRequest, GetJobResponse>(d.jobs.getJob, d.jobs, { jobId });
  return res.job!;
}

export function cancelJob(d: DaemonHandle, jobId: string): Promise<CancelJobResponse> {
  return call<CancelJobRequest, CancelJobResponse>(d.jobs.cancelJob, d.jobs, { jobId });
}

/** One page of ListJobs; unset filters are empty (all jobs, the server's default page size). */
export function listJobs(d: DaemonHandle, req: Partial<ListJobsRequest> = {}): Promise<ListJobsResponse> {
  return call<ListJobsRequest, ListJobsResponse>(d.jobs.listJobs, d.jobs, { clusterId: '', queue: '', states: [], runUser: '', pageSize: 0, pageToken: '', includeInstances: false, ...req });
}

/**
 * grpc.health.v1 Check of each of `services` on a fresh connection: service -> status name
 * (SERVING, NOT_SERVING), or the gRPC error code's name when the check failed (NOT_FOUND).
 */
export async function healthStatuses(d: DaemonHandle, services: readonly string[]): Promise<Record<string, string>> {
  const Health = makeGenericClientConstructor(healthServiceDefinition, 'Health');
  const health = new Health(d.address, credentials.createInsecure()) as unknown as {
    check(req: { service: string }, cb: (err: ServiceError | null, res: { status: string }) => void): void;
    close(): void;
  };
  try {
    const result: Record<string, string> = {};
    for (const service of services) {
      result[service] = await call<{ service: string }, { status: string }>(health.check, health, { service }).then(
        (res) => res.status,
        (err: ServiceError) => status[err.code] ?? String(err.code),
      );
    }
    return result;
  } finally {
    health.close();
  }
}

export function listQueues(d: DaemonHandle, clusterId = ''): Promise<ListQueuesResponse> {
  return call<ListQueuesRequest, ListQueuesResponse>(d.queues.listQueues, d.queues, { clusterId });
}

/**
 * Fills hpcq-debug (max_running 1) with a long job of JOB_USER and waits until it runs, so further
 * debug jobs stay PENDING until it is cancelled.
 */
export async function blockDebugQueue(d: DaemonHandle): Promise<SubmitJobResponse> {
  const blocker = await submit(d, {
    name: 'blocker', runUser: JOB_USER, hpcqueueId: 'hpcq-debug', cmdLine: 'sleep 100', timeLimit: 60, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null',
  });
  await waitForJob(d, blocker.jobId, isRunning);
  return blocker;
}

export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'timeout', 'out_of_memory', 'node_fail']);

/** Follows the job with WatchJob until it ends; returns the final job. */
export function waitForEnd(d: DaemonHandle, jobId: string, timeoutMs = 30_000): Promise<Job> {
  return new Promise((res, rej) => {
    let last: Job | undefined;
    const stream = d.jobs.watchJob({ jobId, includeHistory: false });
    const timer = setTimeout(() => {
      stream.cancel();
      rej(new Error(`job ${jobId} did not end within ${timeoutMs} ms; last state ${last?.jobStatus}`));
    }, timeoutMs);
    stream.on('data', (m: { job?: Job }) => (last = m.job));
    stream.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      if (last && TERMINAL_STATUSES.has(last.jobStatus)) res(last);
      else rej(new Error(`watch ended before a terminal state (last ${last?.jobStatus})`));
    });
  });
}

/**
 * Follows the job with WatchJob until `done(job)` holds (checked on every message, the first one
 * included); resolves with that job. Fails when the job ends without it, or after `timeoutMs`.
 */
export function waitForJob(d: DaemonHandle, jobId: string, done: (job: Job) => boolean, timeoutMs = 60_000): Promise<Job> {
  return new Promise((resolve, reject) => {
    let last: Job | undefined;
    let settled = false;
    const stream = d.jobs.watchJob({ jobId, includeHistory: false });
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.cancel();
      fn();
    };
    const timer = setTimeout(
      () => settle(() => reject(new Error(`job ${jobId}: condition not reached within ${timeoutMs} ms; last status ${last?.jobStatus}`))),
      timeoutMs,
    );
    stream.on('data', (m: { job?: Job }) => {
      last = m.job;
      if (last && done(last)) settle(() => resolve(last!));
    });
    stream.on('error', (err) => settle(() => reject(err)));
    stream.on('end', () => settle(() => reject(new Error(`job ${jobId} ended as ${last?.jobStatus} without reaching the condition`))));
  });
}

export const isRunning = (job: Job) => job.jobStatus === 'running';

/** The stable reason of a failed call (google.rpc.ErrorInfo), with its code and field. */
export function reasonOf(err: unknown): { code: number; reason: string; field: string; message: string } {
  const e = err as ServiceError;
  const info = errorInfoOf(e);
  return { code: e.code, reason: info?.reason ?? '', field: info?.metadata.field ?? '', message: e.details };
}

/** The reason of a call that must fail; throws if it succeeds. */
export async function rejection(p: Promise<unknown>): Promise<ReturnType<typeof reasonOf>> {
  try {
    await p;
  } catch (err) {
    return reasonOf(err);
  }
  throw new Error('expected the call to be rejected, but it succeeded');
}
