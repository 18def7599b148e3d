/** Starts and controls a real hpcqd for benchmarks: temp state dir, unix socket, typed clients. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { HPCQD_ENV, HPCQD_NODE_FLAGS } from '../daemon/process-tuning.js';
import { JobState } from '../gen/hpcq/v1/job.js';
import { JobServiceClient, JobServiceService, ListJobsRequest, SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';

const DAEMON_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'daemon', 'main.cjs');
export const BENCH_USER = 'hpcq-bench';

/** The account benchmark jobs run as: a dedicated unprivileged user when root, else ourselves. */
export function benchRunUser(): string {
  if (process.getuid?.() !== 0) return userInfo().username;
  try {
    execFileSync('getent', ['passwd', BENCH_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', BENCH_USER]);
  }
  return BENCH_USER;
}

/**
 * The bench daemon's configuration. `access`: keys of the `access:` section (YAML values), over the
 * bench's own; one section, since a YAML map refuses a key given twice.
 */
export function benchConfig(opts: { cores: number; memMb?: number; enforcement?: string; access?: Record<string, string> }): string {
  // One client watches every job of a 1,000-job burst: more open watches than the default per-principal cap.
  const access = { max_streams_per_principal: '10000', ...opts.access };
  return `
kill_grace_seconds: 2
enforcement: ${opts.enforcement ?? 'auto'}
access:
${Object.entries(access).map(([key, value]) => `  ${key}: ${value}`).join('\n')}
node:
  cores: ${opts.cores}
  mem_mb: ${opts.memMb ?? 65536}
clusters:
  - cluster_id: bench
    zone: bench
    queues:
      - hpcqueue_id: hpcq-normal
        scheduler_queue_name: normal
        default: true
        default_mem_mb: 64
        max_pending: 10000000
`;
}

export class BenchDaemon {
  readonly address: string;
  readonly client: InstanceType<typeof JobServiceClient>;
  private proc: ChildProcess | undefined;

  /** Every address the daemon bound, from its ready line (a TCP port 0 resolved). */
  addresses: string[] = [];

  private constructor(
    readonly dir: string,
    private readonly config: string,
    /** Listen addresses besides the unix socket (e.g. TLS on 127.0.0.1:0; the config then has tls:). */
    private readonly extraListen: readonly string[] = [],
  ) {
    // Other users may reach the socket (benchmarks as a non-root user); the state dir stays 0700.
    chmodSync(dir, 0o711);
    this.address = `unix:${join(dir, 'hpcqd.sock')}`;
    this.client = new JobServiceClient(this.address, credentials.createInsecure(), { 'grpc.max_concurrent_streams': 10000 });
  }

  /** Time the first start took until the daemon served, ms. */
  startupMs = 0;

  static async start(config: string, dir = mkdtempSync(join(tmpdir(), 'hpcq-bench-')), extraListen: readonly string[] = []): Promise<BenchDaemon> {
    const d = new BenchDaemon(dir, config, extraListen);
    d.startupMs = await d.spawn();
    return d;
  }

  get pid(): number {
    return this.proc?.pid ?? 0;
  }

  /** Starts the daemon process; resolves when it is serving, with the time that took. */
  async spawn(): Promise<number> {
    const listen = this.extraListen.length === 0 ? '' : `\nlisten:\n${[this.address, ...this.extraListen].map((a) => `  - "${a}"`).join('\n')}\n`;
    writeFileSync(join(this.dir, 'hpcqd.yaml'), this.config + listen);
    const t0 = performance.now();
    // HPCQ_BENCH_NODE_FLAGS adds Node flags to the daemon's, e.g. "--cpu-prof --cpu-prof-dir=DIR" to profile a run.
    const extraFlags = (process.env.HPCQ_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
    const proc = spawn(process.execPath, [...HPCQD_NODE_FLAGS, ...extraFlags, DAEMON_MAIN], {
      env: {
        ...HPCQD_ENV,
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HPCQ_STATE_DIR: join(this.dir, 'state'),
        HPCQ_CONFIG: join(this.dir, 'hpcqd.yaml'),
        ...(this.extraListen.length === 0 ? { HPCQ_LISTEN: this.address } : {}),
        HPCQ_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.proc = proc;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const ready = out.split('\n').find((l) => l.includes('"event":"ready"'));
        if (ready) {
          this.addresses = (JSON.parse(ready) as { addresses: string[] }).addresses;
          resolve();
        }
      });
      proc.once('exit', (code) => reject(new Error(`hpcqd exited with ${code} before ready`)));
    });
    return performance.now() - t0;
  }

  /** Peak resident set size of the daemon so far (VmHWM), MiB. */
  peakRssMb(): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  }

  /**
   * Resident memory split into the daemon's own (anonymous) pages and file-backed pages: LevelDB
   * reads its tables through mmap, so pages of the database it touched count in RSS although they
   * are the kernel's page cache, shared and reclaimable.
   */
  rssBreakdownMb(): { anon: number; file: number } {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
    return { anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
  }

  /** User + system CPU time of the daemon so far, ms (from /proc/<pid>/stat, in clock ticks of 10 ms). */
  cpuMs(): number {
    const fields = readFileSync(`/proc/${this.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  }

  rssMb(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  }

  async close(): Promise<void> {
    this.client.close();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A separate connection, as another client program would have. */
  newClient(): InstanceType<typeof JobServiceClient> {
    return new JobServiceClient(this.address, credentials.createInsecure());
  }

  submit(req: Partial<SubmitJobRequest>, client = this.client): Promise<{ jobId: string }> {
    return new Promise((resolve, reject) =>
      client.submitJob({ ...EMPTY_SUBMIT, ...req }, (err: ServiceError | null, res) => (err ? reject(err) : resolve(res))),
    );
  }

  getJob(jobId: string): Promise<unknown> {
    return new Promise((resolve, reject) => this.client.getJob({ jobId }, (err, res) => (err ? reject(err) : resolve(res))));
  }

  cancel(jobId: string): Promise<unknown> {
    return new Promise((resolve, reject) => this.client.cancelJob({ jobId }, (err, res) => (err ? reject(err) : resolve(res))));
  }

  /**
   * A load-generator connection that sends one request, encoded once, over and over and does not
   * decode the answers: the submit benchmark measures the daemon, and on a 2-core machine the
   * generator's own protobuf work would otherwise take CPU from it. Errors still reject.
   */
  rawSubmitter(req: Partial<SubmitJobRequest>): { submit: () => Promise<void>; close: () => void } {
    const bytes = Buffer.from(SubmitJobRequest.encode({ ...EMPTY_SUBMIT, ...req }).finish());
    const client = new RawSubmitClient(this.address, credentials.createInsecure());
    return {
      submit: () => new Promise((resolve, reject) => client.submitJob(bytes, (err: ServiceError | null) => (err ? reject(err) : resolve()))),
      close: () => client.close(),
    };
  }

  /** Whether any job of the bench cluster is in one of `states` (one page of one job is enough). */
  private anyInStates(states: JobState[], client = this.client): Promise<boolean> {
    const req = ListJobsRequest.fromPartial({ clusterId: 'bench', states, pageSize: 1 });
    return new Promise((resolve, reject) => client.listJobs(req, (err, res) => (err ? reject(err) : resolve(res.jobs.length > 0))));
  }

  /** Whether any job is still pending or running: one small ListJobs, as squeue users poll. */
  anyActive(client = this.client): Promise<boolean> {
    return this.anyInStates([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING], client);
  }

  /** Whether any job ended otherwise than COMPLETED. */
  anyNotCompleted(): Promise<boolean> {
    return this.anyInStates([
      JobState.JOB_STATE_FAILED,
      JobState.JOB_STATE_CANCELLED,
      JobState.JOB_STATE_TIMEOUT,
      JobState.JOB_STATE_OUT_OF_MEMORY,
      JobState.JOB_STATE_NODE_FAIL,
    ]);
  }

  /** Resolves with the job's status string once it reaches one of `statuses` (WatchJob, no polling). */
  waitFor(jobId: string, statuses: readonly string[], client = this.client): Promise<string> {
    return new Promise((resolve, reject) => {
      const stream = client.watchJob({ jobId, includeHistory: false });
      stream.on('data', (m: { job?: { jobStatus: string } }) => {
        if (m.job && statuses.includes(m.job.jobStatus)) {
          stream.cancel();
          resolve(m.job.jobStatus);
        }
      });
      stream.on('error', (err: ServiceError) => {
        if (err.code !== 1) reject(err);
      });
    });
  }
}

const identity = (b: Buffer) => b;
const RawSubmitClient = makeGenericClientConstructor(
  { submitJob: { ...JobServiceService.submitJob, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
  'hpcq.v1.JobService',
) as unknown as new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => {
  submitJob(req: Buffer, cb: (err: ServiceError | null) => void): void;
  close(): void;
};

/** A SubmitJobRequest with every field empty. */
export const EMPTY_SUBMIT: SubmitJobRequest = SubmitJobRequest.fromPartial({});
