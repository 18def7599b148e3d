/**
 * The daemon's Prometheus metrics (prom-client, a registry of its own). Events (requests, state
 * changes, launches, dispatch passes, store writes) are counted as they happen, in plain numbers
 * (event-metrics.ts); levels (jobs per queue, free cores, connections, the store's group-commit
 * counters) are read from their owners when scraped. Between scrapes neither costs more than an
 * addition.
 *
 * Names follow the Prometheus conventions: the hpcq_ prefix, base units in the name (seconds,
 * bytes), `_total` on counters. Label values are bounded: methods, queues, job states and the
 * reason codes of refusals (a fixed set of HpcqError codes), never job ids or users.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { isTerminal, jobStatusString, type Job, type JobEvent, type JobState } from '../core/job.js';
import type { StoreStats } from '../store/level-job-store.js';
import { BucketHistogram, CountTable, powerOfTwoBuckets, SnapshotHistogram, type HistogramSeries } from './event-metrics.js';
import { isLaunchFailure, type RequestResult } from './log-lines.js';
import { TIMED_STORE_WRITES } from './timed-ports.js';

/** Where the levels come from at scrape time. */
export interface MetricSources {
  queueIds(): readonly string[];
  queueCounts(hpcqueueId: string): { pending: number; running: number };
  /** Allocatable cores and memory (MiB) of the node. */
  node(): { cores: number; memMb: number };
  /** Cores and memory (MiB) held by running jobs. */
  used(): { cores: number; memMb: number };
  storeStats(): StoreStats;
  openConnections(): number;
  /** Clusters another scheduler runs, and whether it answers now. */
  schedulers(): ReadonlyArray<{ clusterId: string; up: boolean }>;
}

/** Submitting methods: counted in hpcq_submits_total as well. */
const SUBMIT_METHODS: ReadonlySet<string> = new Set(['SubmitJob', 'SubmitJobGroup']);
const MIB = 1024 * 1024;
const LAUNCH_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DISPATCH_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const STORE_WRITE_BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly requests = new CountTable(['method', 'result']);
  private readonly refusals = new CountTable(['method', 'reason']);
  private readonly submits = new CountTable(['method']);
  private readonly outcomes = new CountTable(['queue', 'state']);
  private readonly launchFailures = new CountTable(['queue']);
  private readonly dispatchStarted = new CountTable([]);
  private readonly launches = new BucketHistogram(LAUNCH_BOUNDS);
  private readonly dispatchPasses = new BucketHistogram(DISPATCH_BOUNDS);
  /** One series per timed store write (timed-ports.ts), there from the start. */
  private readonly storeWrites = new Map<string, BucketHistogram>(TIMED_STORE_WRITES.map((op) => [op, new BucketHistogram(STORE_WRITE_BOUNDS)]));
  private readonly watches = new Map<string, number>();

  constructor(sources: MetricSources) {
    const registry = this.registry;
    const registers = [registry];
    this.requests.register(registry, 'hpcq_requests_total', 'API calls that ended, by method and result (ok, refused, error).');
    this.refusals.register(registry, 'hpcq_request_refusals_total', 'API calls refused or failed, by method and reason code.');
    this.submits.register(registry, 'hpcq_submits_total', 'Submits accepted (SubmitJob, SubmitJobGroup), by method.');
    this.outcomes.register(registry, 'hpcq_job_outcomes_total', 'Jobs that ended, by queue and final state (array jobs counted by their instances).');
    this.launchFailures.register(registry, 'hpcq_job_launch_failures_total', 'Jobs that could not be started (ended FAILED, LaunchFailed), by queue.');
    this.dispatchStarted.register(registry, 'hpcq_dispatch_started_jobs_total', 'Jobs dispatch passes started.');
    const histogram = (name: string, help: string, read: () => readonly HistogramSeries[]) => new SnapshotHistogram(name, help, read).register(registry);
    histogram('hpcq_job_launch_duration_seconds', 'Time from asking the executor to start a job until its first instruction runs inside its limits.', () => [this.launches.snapshot()]);
    histogram('hpcq_dispatch_pass_duration_seconds', 'Time one dispatch pass took to plan and start jobs (the writes and launches go on after it).', () => [this.dispatchPasses.snapshot()]);
    histogram('hpcq_store_write_duration_seconds', 'Time the job engine waited for a durable store write (group-commit queueing and the synced batch), by operation.', () =>
      [...this.storeWrites].map(([op, h]) => ({ labels: { op }, ...h.snapshot() })),
    );
    histogram('hpcq_store_batch_writes', 'Writes per synced batch: how many callers shared one fsync.', () => {
      const s = sources.storeStats();
      return [{ buckets: powerOfTwoBuckets(s.batchWritesHistogram), sum: s.writes, count: s.batches }];
    });

    const watches = this.watches;
    new Gauge({
      name: 'hpcq_watches_active',
      help: 'Open server streams (WatchJob, WatchSchedule), by method.',
      labelNames: ['method'],
      registers,
      collect() {
        for (const [method, n] of watches) this.set({ method }, n);
      },
    });
    new Gauge({
      name: 'hpcq_jobs',
      help: 'Jobs pending or running, by queue and state (array instances count; array jobs do not).',
      labelNames: ['queue', 'state'],
      registers,
      collect() {
        this.reset();
        for (const queue of sources.queueIds()) {
          const counts = sources.queueCounts(queue);
          this.set({ queue, state: 'pending' }, counts.pending);
          this.set({ queue, state: 'running' }, counts.running);
        }
      },
    });
    new Gauge({
      name: 'hpcq_cluster_scheduler_up',
      help: 'Whether the scheduler of a cluster it runs (Slurm) answers (1) or not (0), by cluster.',
      labelNames: ['cluster'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.schedulers()) this.set({ cluster: s.clusterId }, s.up ? 1 : 0);
      },
    });
    const level = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    level('hpcq_node_cores', 'Cores the node offers to jobs.', () => sources.node().cores);
    level('hpcq_node_free_cores', 'Cores no running job holds.', () => sources.node().cores - sources.used().cores);
    level('hpcq_node_memory_bytes', 'Memory the node offers to jobs.', () => sources.node().memMb * MIB);
    level('hpcq_node_free_memory_bytes', 'Memory no running job holds.', () => (sources.node().memMb - sources.used().memMb) * MIB);
    level('hpcq_connections_active', 'Open client connections (unix socket and TLS).', () => sources.openConnections());

    // The store counts its group commits itself: read when scraped, shown as counters.
    const stored = (name: string, help: string, read: (s: StoreStats) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(sources.storeStats()));
        },
      });
    stored('hpcq_store_batches_total', 'Synced batches the store wrote (group commit).', (s) => s.batches);
    stored('hpcq_store_failed_batches_total', 'Batches that failed to write.', (s) => s.failedBatches);
    stored('hpcq_store_writes_total', 'Writes (one job create, one set of state changes...) that went into batches.', (s) => s.writes);
    stored('hpcq_store_operations_total', 'Database operations (puts and deletes) in those batches.', (s) => s.ops);
    stored('hpcq_store_reopens_total', 'Times the database was reopened (after a full disk or an I/O error).', (s) => s.reopens);

    collectDefaultMetrics({ register: registry });
    // Gauges whose names end in _total break the conventions (promtool check metrics fails on
    // them); their counterparts without the suffix (nodejs_active_handles...) stay.
    for (const name of ['nodejs_active_resources_total', 'nodejs_active_handles_total', 'nodejs_active_requests_total']) registry.removeSingleMetric(name);
  }

  /** The scrape: every metric in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  requestEnded(method: string, outcome: RequestResult): void {
    this.requests.add(1, method, outcome.result);
    if (outcome.result !== 'ok') this.refusals.add(1, method, outcome.reason);
    else if (SUBMIT_METHODS.has(method)) this.submits.add(1, method);
  }

  watchOpened(method: string): void {
    this.watches.set(method, (this.watches.get(method) ?? 0) + 1);
  }

  watchClosed(method: string): void {
    this.watches.set(method, (this.watches.get(method) ?? 1) - 1);
  }

  transition(job: Job, _previousState: JobState, event: JobEvent): void {
    // An array job follows its instances, which are counted one by one.
    if (!isTerminal(job.state) || job.array) return;
    this.outcomes.add(1, job.hpcqueueId, jobStatusString(job.state));
    if (isLaunchFailure(job, event)) this.launchFailures.add(1, job.hpcqueueId);
  }

  dispatchPass(ms: number, started: number): void {
    this.dispatchPasses.observe(ms / 1000);
    if (started > 0) this.dispatchStarted.add(started);
  }

  launched(ms: number): void {
    this.launches.observe(ms / 1000);
  }

  storeWrite(op: string, ms: number): void {
    this.storeWrites.get(op)?.observe(ms / 1000);
  }
}
