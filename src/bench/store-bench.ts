/**
 * Job store benchmark, in a temp dir:
 * 1. durable createJob throughput with 1, 8 and 64 concurrent callers on an empty store
 *    (every job acknowledged only after its synced batch; batch sizes reported);
 * 2. bulk-generates N finished jobs (plus a few active ones) with unsynced direct batches, then
 *    measures open time, loadActiveJobs, getJob latency over random ids, listJobs pages with
 *    filters, and purging the oldest jobs.
 *
 * Standalone: `node dist/bench/store-bench.js [--records N] [--dir PATH] [--create-ms MS]`.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { Job, JobEvent, JobSpec, JobState } from '../core/job.js';
import type { JobFilter } from '../core/ports.js';
import { importJobOps, type BatchOp } from '../store/job-ops.js';
import { jobUuidFor } from '../store/job-uuid.js';
import { META_UUID_KEY } from '../store/keys.js';
import { LevelJobStore } from '../store/level-job-store.js';
import { openLevel } from '../store/open-level.js';
import { writeOps } from '../store/write-ops.js';
import { percentile } from './percentile.js';

export interface StoreBenchOptions {
  /** Finished job records to generate for the scale measurements. Default 100_000. */
  records?: number;
  /** PENDING + RUNNING jobs generated alongside (the newest ids). Default 1_000. */
  activeRecords?: number;
  /** Concurrency levels for the createJob measurement. Default [1, 8, 64]. */
  concurrency?: readonly number[];
  /** How long each createJob level runs. Default 3_000 ms. */
  createDurationMs?: number;
  /** getJob calls over random ids. Default 10_000. */
  getSamples?: number;
  /** listJobs calls per filter. Default 200. */
  listSamples?: number;
  /** Parent directory for the temp dirs. Default the OS temp dir. */
  parentDir?: string;
  /** Keep the generated database (its path is in the result). Default false. */
  keep?: boolean;
  /** Progress lines (standalone prints them to stderr). */
  progress?: (line: string) => void;
}

export interface LatencyFigures {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface CreateFigures extends LatencyFigures {
  concurrency: number;
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  batches: number;
  avgJobsPerBatch: number;
  maxJobsPerBatch: number;
}

export interface ListFigures extends LatencyFigures {
  filter: string;
  pageSize: number;
  avgJobsReturned: number;
}

export interface StoreBenchResult {
  create: CreateFigures[];
  generation: { records: number; activeRecords: number; seconds: number; recordsPerSecond: number; databaseBytes: number };
  openMs: number;
  loadActive: { ms: number; jobs: number };
  getJob: LatencyFigures & { samples: number };
  listJobs: ListFigures[];
  purge: { jobs: number; ms: number };
  location?: string;
}

const STATES_FINISHED: Array<[JobState, number]> = [
  ['COMPLETED', 0.7],
  ['FAILED', 0.15],
  ['CANCELLED', 0.1],
  ['TIMEOUT', 0.03],
  ['OUT_OF_MEMORY', 0.01],
  ['NODE_FAIL', 0.01],
];
const CLUSTERS = 4;
const QUEUES_PER_CLUSTER = 5;
const USERS = 500;
/** Jobs per generation batch (~10 keys each); one batch is written while the next is built. */
const GENERATION_BATCH = 2_000;
const BASE_TIME_MS = Date.UTC(2024, 0, 1);
/** Memtable size for bulk generation (the store itself uses LevelDB's default). */
const GENERATION_WRITE_BUFFER_BYTES = 64 * 1024 * 1024;

/** A submission like a user's; cluster, queue and user drawn from `random`. */
function benchSpec(i: number, random: () => number): JobSpec {
  const cluster = Math.floor(random() * CLUSTERS);
  const userNumber = Math.floor(random() * USERS);
  const user = `u${userNumber}`;
  return {
    name: `bench-${i}`,
    clusterId: `c${cluster}`,
    zone: 'z1',
    hpcqueueId: `c${cluster}-q${Math.floor(random() * QUEUES_PER_CLUSTER)}`,
    schedulerQueueName: 'batch',
    runUser: user,
    uid: 10_000 + userNumber,
    gid: 10_000,
    home: `/home/${user}`,
    shell: '/bin/bash',
    cmdLine: `/opt/apps/sim --input /scratch/${user}/case-${i}.in --steps 1000`,
    inputFile: '',
    cores: 1 + (i % 16),
    memoryLimitMb: 1024 * (1 + (i % 8)),
    timeLimitSeconds: 3600,
    resourceLimit: 'nofile=1024',
    resourceLimits: { nofile: 1024 },
    priority: 0,
    stdoutPathTemplate: `/home/${user}/%x-%j.out`,
    stderrPathTemplate: `/home/${user}/%x-%j.err`,
    submitType: 0,
    clientToken: i % 2 === 0 ? `tok-${i}` : '',
    clientTimestamp: '',
    argv: [],
    env: {},
    workingDir: `/home/${user}`,
    description: '',
    dependsOn: [],
  };
}

/** A deterministic, fast PRNG so runs are comparable. */
function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function latency(samplesMs: number[]): LatencyFigures {
  if (samplesMs.length === 0) return { p50Ms: 0, p99Ms: 0, maxMs: 0 };
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), maxMs: round(sorted[sorted.length - 1]!) };
}

function round(n: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function directoryBytes(path: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(path)) total += (await stat(join(path, name))).size;
  return total;
}

async function measureCreates(parent: string, concurrency: number, durationMs: number): Promise<CreateFigures> {
  const dir = await mkdtemp(join(parent, 'hpcq-bench-create-'));
  const store = new LevelJobStore({ location: join(dir, 'db') });
  await store.open();
  try {
    const before = store.stats();
    const random = rng(concurrency);
    const latencies: number[] = [];
    let n = 0;
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const i = n++;
          const t0 = performance.now();
          await store.createJob(benchSpec(i, random), `fp-${i}`, Date.now(), 'queued');
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const after = store.stats();
    const batches = after.batches - before.batches;
    return {
      concurrency,
      jobs: latencies.length,
      seconds: round(seconds, 2),
      jobsPerSecond: Math.round(latencies.length / seconds),
      batches,
      avgJobsPerBatch: round(latencies.length / Math.max(1, batches), 1),
      maxJobsPerBatch: after.maxBatchWrites,
      ...latency(latencies),
    };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** A finished (or, for the newest ids, active) job with its event log. */
function generatedJob(id: number, active: boolean, random: () => number, uuidKey: string): { job: Job; events: JobEvent[] } {
  const spec = benchSpec(id, random);
  const submit = BASE_TIME_MS + id * 1000;
  let state: JobState = 'PENDING';
  if (active) {
    state = random() < 0.5 ? 'PENDING' : 'RUNNING';
  } else {
    let r = random();
    for (const [s, share] of STATES_FINISHED) {
      state = s;
      if ((r -= share) < 0) break;
    }
  }
  const events: JobEvent[] = [{ jobId: id, sequence: 1, state: 'PENDING', reason: 'queued', timeMs: submit }];
  const start = state === 'PENDING' || state === 'CANCELLED' ? 0 : submit + 5_000;
  if (start > 0) events.push({ jobId: id, sequence: 2, state: 'RUNNING', reason: 'started', timeMs: start });
  const end = active ? 0 : submit + 60_000;
  if (!active) events.push({ jobId: id, sequence: events.length + 1, state, reason: state.toLowerCase(), timeMs: end });
  const job: Job = {
    ...spec,
    resourceLimits: { ...spec.resourceLimits },
    id,
    uuid: jobUuidFor(id, uuidKey),
    state,
    reason: state.toLowerCase(),
    exitCode: state === 'FAILED' ? 1 : 0,
    termSignal: 0,
    submitTimeMs: submit,
    startTimeMs: start,
    endTimeMs: end,
    stdoutPath: `/home/${spec.runUser}/${spec.name}-${id}.out`,
    stderrPath: `/home/${spec.runUser}/${spec.name}-${id}.err`,
    enforcement: 'cgroup2',
    limitHit: state === 'TIMEOUT' ? 'time' : state === 'OUT_OF_MEMORY' ? 'memory' : '',
    ...(active ? {} : { usage: { userCpuUsec: 1_000_000, systemCpuUsec: 20_000, peakMemoryBytes: 1 << 28, wallTimeMs: 55_000 } }),
    eventCount: events.length,
    attempt: 1,
    previousAttempts: [],
    eligibleAtMs: 0,
    heldBy: '',
    backendJobId: '',
    backendSubmitting: false,
  };
  return { job, events };
}

/**
 * Writes `finished` finished and `active` pending/running job records straight into a new database
 * at `location` (bulk batches, not synced), as a history for scale measurements. Returns the
 * seconds it took. `maxFileSizeBytes` makes smaller table files (tests that need many tables).
 */
export async function generateJobHistory(
  location: string,
  finished: number,
  active: number,
  progress: (line: string) => void = () => {},
  maxFileSizeBytes?: number,
): Promise<number> {
  // Let the store create the database and its layout key, then write around it.
  const init = new LevelJobStore({ location });
  await init.open();
  await init.close();
  // A large memtable: fewer level-0 tables and compaction stalls while bulk loading.
  const db = await openLevel(location, {
    writeBufferSizeBytes: GENERATION_WRITE_BUFFER_BYTES,
    ...(maxFileSizeBytes === undefined ? {} : { maxFileSizeBytes }),
  });
  const uuidKey = (await db.get(META_UUID_KEY)) as string;
  const random = rng(42);
  const total = finished + active;
  const started = performance.now();
  let writing: Promise<void> = Promise.resolve();
  try {
    for (let from = 1; from <= total; from += GENERATION_BATCH) {
      const ops: BatchOp[] = [];
      for (let id = from; id < from + GENERATION_BATCH && id <= total; id++) {
        const { job, events } = generatedJob(id, id > finished, random, uuidKey);
        for (const op of importJobOps(job, events, `fp-${id}`)) ops.push(op);
      }
      await writing;
      writing = writeOps(db, ops, false);
      if ((from - 1) % 100_000 === 0) progress(`generated ${from - 1} / ${total}`);
    }
    await writing;
  } finally {
    await writing.catch(() => undefined);
    await db.close();
  }
  return (performance.now() - started) / 1000;
}

function describeFilter(filter: JobFilter, deep: boolean): string {
  const parts = Object.entries(filter).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : String(v)}`);
  return `${parts.length === 0 ? '(none)' : parts.join(' ')}${deep ? ' [random position]' : ' [first page]'}`;
}

export async function runStoreBench(options: StoreBenchOptions = {}): Promise<StoreBenchResult> {
  const records = options.records ?? 100_000;
  const activeRecords = options.activeRecords ?? 1_000;
  const parent = options.parentDir ?? tmpdir();
  const progress = options.progress ?? (() => undefined);
  const random = rng(7);

  const create: CreateFigures[] = [];
  for (const c of options.concurrency ?? [1, 8, 64]) {
    progress(`createJob with ${c} concurrent callers`);
    create.push(await measureCreates(parent, c, options.createDurationMs ?? 3_000));
  }

  const dir = await mkdtemp(join(parent, 'hpcq-bench-scale-'));
  const location = join(dir, 'db');
  try {
    progress(`generating ${records} finished + ${activeRecords} active jobs`);
    const genSeconds = await generateJobHistory(location, records, activeRecords, progress);
    const total = records + activeRecords;

    const t0 = performance.now();
    const store = new LevelJobStore({ location });
    await store.open();
    const openMs = performance.now() - t0;
    try {
      const t1 = performance.now();
      const active = await store.loadActiveJobs();
      const loadMs = performance.now() - t1;

      progress('getJob over random ids');
      const getSamples = options.getSamples ?? 10_000;
      const getTimes: number[] = [];
      for (let i = 0; i < getSamples; i++) {
        const id = 1 + Math.floor(random() * total);
        const t = performance.now();
        const job = await store.getJob(id);
        getTimes.push(performance.now() - t);
        if (job?.id !== id) throw new Error(`getJob(${id}) returned ${job?.id}`);
      }

      progress('listJobs pages');
      const filters: JobFilter[] = [
        {},
        { states: ['RUNNING'] },
        { states: ['FAILED', 'TIMEOUT', 'OUT_OF_MEMORY'] },
        { runUser: 'u17' },
        { clusterId: 'c2', states: ['FAILED'] },
        { hpcqueueId: 'c1-q3' },
        { hpcqueueId: 'c1-q3', runUser: 'u17' },
        { clusterId: 'c1', hpcqueueId: 'c1-q3', runUser: 'u17', states: ['COMPLETED'] },
      ];
      const listJobs: ListFigures[] = [];
      const listSamples = options.listSamples ?? 200;
      const pageSize = 50;
      for (const filter of filters) {
        for (const deep of [false, true]) {
          const times: number[] = [];
          let returned = 0;
          for (let i = 0; i < listSamples; i++) {
            const beforeId = deep ? 1 + Math.floor(random() * total) : undefined;
            const t = performance.now();
            const page = await store.listJobs(filter, pageSize, beforeId);
            times.push(performance.now() - t);
            returned += page.jobs.length;
          }
          listJobs.push({ filter: describeFilter(filter, deep), pageSize, avgJobsReturned: round(returned / listSamples, 1), ...latency(times) });
        }
      }

      progress('purging the oldest 10k jobs');
      const t2 = performance.now();
      const purged = await store.purgeFinishedBefore(Number.MAX_SAFE_INTEGER, 10_000);
      const purgeMs = performance.now() - t2;

      const result: StoreBenchResult = {
        create,
        generation: {
          records,
          activeRecords,
          seconds: round(genSeconds, 2),
          recordsPerSecond: Math.round(total / genSeconds),
          databaseBytes: await directoryBytes(location),
        },
        openMs: round(openMs, 1),
        loadActive: { ms: round(loadMs, 1), jobs: active.jobs.length },
        getJob: { samples: getSamples, ...latency(getTimes) },
        listJobs,
        purge: { jobs: purged, ms: round(purgeMs, 1) },
      };
      if (options.keep) result.location = location;
      return result;
    } finally {
      await store.close();
    }
  } finally {
    if (!options.keep) await rm(dir, { recursive: true, force: true });
  }
}

function printResult(r: StoreBenchResult): void {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out('createJob (durable, group commit):');
  for (const c of r.create) {
    out(
      `  ${String(c.concurrency).padStart(3)} callers: ${String(c.jobsPerSecond).padStart(6)} jobs/s  ` +
        `p50 ${c.p50Ms} ms  p99 ${c.p99Ms} ms  ${c.avgJobsPerBatch} jobs/batch (max ${c.maxJobsPerBatch})`,
    );
  }
  const g = r.generation;
  out(`generated ${g.records} finished + ${g.activeRecords} active jobs in ${g.seconds} s (${g.recordsPerSecond}/s), ${(g.databaseBytes / 2 ** 20).toFixed(1)} MiB`);
  out(`open: ${r.openMs} ms   loadActiveJobs: ${r.loadActive.ms} ms (${r.loadActive.jobs} jobs)`);
  out(`getJob over ${r.getJob.samples} random ids: p50 ${r.getJob.p50Ms} ms  p99 ${r.getJob.p99Ms} ms  max ${r.getJob.maxMs} ms`);
  out('listJobs (page of 50):');
  for (const l of r.listJobs) out(`  ${l.filter.padEnd(72)} p50 ${l.p50Ms} ms  p99 ${l.p99Ms} ms  (${l.avgJobsReturned} jobs)`);
  out(`purge ${r.purge.jobs} jobs: ${r.purge.ms} ms`);
}

function parseArgs(argv: string[]): StoreBenchOptions {
  const options: StoreBenchOptions = { progress: (line) => process.stderr.write(`[store-bench] ${line}\n`) };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--records':
        options.records = Number(value);
        i++;
        break;
      case '--dir':
        if (value !== undefined) options.parentDir = value;
        i++;
        break;
      case '--create-ms':
        options.createDurationMs = Number(value);
        i++;
        break;
      case '--json':
        break;
      default:
        throw new Error(`unknown argument ${argv[i]}; use --records N --dir PATH --create-ms MS --json`);
    }
  }
  return options;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const argv = process.argv.slice(2);
  runStoreBench(parseArgs(argv)).then(
    (result) => (argv.includes('--json') ? process.stdout.write(`${JSON.stringify(result, null, 2)}\n`) : printResult(result)),
    (err: unknown) => {
      process.stderr.write(`store-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
