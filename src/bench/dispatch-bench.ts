/**
 * Cost of one dispatch pass (planDispatch, pure and in-process) with many pending jobs of which
 * none can start: the case that made every pass cost as much as sorting all pending jobs, while
 * passes run after every submit batch, job end and cancel.
 *
 * The node has free cores, but its memory is held by a running job, so every pending job (4 GiB)
 * is memory-bound; half of the pending jobs are in a higher-priority queue already at its
 * max_running. Job priorities vary, so each queue has several priority buckets.
 *
 * Standalone: `node dist/bench/dispatch-bench.js [pending ...]` (default 1,000 10,000 100,000).
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { PendingOrder } from '../core/pending-order.js';
import { planDispatch, type DispatchInput, type PendingJobView, type QueuePolicyView } from '../core/scheduler.js';
import { percentile } from './percentile.js';

const WARMUP_PASSES = 20;
const MEASURED_PASSES = 51;
const NODE_CORES = 64;
const NODE_MEM_MB = 256 * 1024;
const FREE_MEM_MB = 2048;
const JOB_MEM_MB = 4096;

export interface DispatchPassCost {
  pending: number;
  /** Median wall time of one planDispatch pass, ms. */
  passMs: number;
  /** Pending jobs the pass looked at. */
  examined: number;
}

export async function dispatchPassCost(pendingJobs: number): Promise<DispatchPassCost> {
  const input = memoryBoundInput(pendingJobs);
  for (let i = 0; i < WARMUP_PASSES; i++) planOnce(input);
  const times: number[] = [];
  let examined = 0;
  for (let i = 0; i < MEASURED_PASSES; i++) {
    // Let timers and I/O of a host process run between passes, as the daemon's passes do.
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    const t0 = performance.now();
    examined = planOnce(input);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { pending: pendingJobs, passMs: percentile(times, 50), examined };
}

function planOnce(input: DispatchInput): number {
  const plan = planDispatch(input);
  if (plan.start.length > 0) throw new Error('dispatch-bench: a job started; the scenario must keep every job pending');
  return plan.examined;
}

function memoryBoundInput(pendingJobs: number): DispatchInput {
  const queues = new Map<string, QueuePolicyView>([
    ['capped', { priority: 20, maxRunning: 1 }],
    ['normal', { priority: 10, maxRunning: 0 }],
  ]);
  const order = new PendingOrder<PendingJobView>();
  for (let id = 1; id <= pendingJobs; id++) {
    order.set({ id, hpcqueueId: id % 2 === 1 ? 'capped' : 'normal', priority: id % 3, cores: 1, memoryLimitMb: JOB_MEM_MB, timeLimitSeconds: 3600 });
  }
  const nowMs = Date.now();
  return {
    pending: order.byQueue,
    running: [
      { hpcqueueId: 'capped', cores: 1, memoryLimitMb: 1024, expectedEndMs: nowMs + 3_600_000 },
      { hpcqueueId: 'normal', cores: 1, memoryLimitMb: NODE_MEM_MB - 1024 - FREE_MEM_MB, expectedEndMs: nowMs + 7_200_000 },
    ],
    queues,
    nodeCores: NODE_CORES,
    nodeMemMb: NODE_MEM_MB,
    nowMs,
  };
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1_000, 10_000, 100_000];
  (async () => {
    for (const n of sizes) {
      const r = await dispatchPassCost(n);
      process.stdout.write(`${r.pending} pending: ${r.passMs.toFixed(3)} ms per pass, ${r.examined} examined\n`);
    }
  })().catch((err: unknown) => {
    process.stderr.write(`dispatch-bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
