/**
 * Dispatch policy as a pure function: which pending jobs start now, and why the others wait.
 *
 * Order: queue priority (high first), job priority (high first), then submission (job id).
 * Jobs start in that order while they fit the node's free cores and memory and their queue's
 * max_running. When the first job in order does not fit, it gets a reservation at the earliest time
 * enough running jobs will have ended (their start + time_limit), and later jobs may start only if
 * they do not delay it (EASY backfill, as in Slurm's sched/backfill and Maui): they end before that
 * time, or fit in what is left over at that time. A job blocked only by its queue's max_running
 * does not block other queues.
 */

export interface PendingJobView {
  id: number;
  hpcqueueId: string;
  priority: number;
  cores: number;
  memoryLimitMb: number;
  timeLimitSeconds: number;
}

export interface RunningJobView {
  hpcqueueId: string;
  cores: number;
  memoryLimitMb: number;
  /** startTime + time_limit: the latest the job can still be running. */
  expectedEndMs: number;
}

export interface QueuePolicyView {
  priority: number;
  /** 0 = unlimited. */
  maxRunning: number;
}

export interface DispatchInput {
  pending: readonly PendingJobView[];
  running: readonly RunningJobView[];
  queues: ReadonlyMap<string, QueuePolicyView>;
  nodeCores: number;
  nodeMemMb: number;
  nowMs: number;
}

/** Slurm-style pending reasons. */
export type PendingReason = 'Priority' | 'Resources' | 'QueueMaxRunning';

export interface DispatchPlan {
  /** Job ids to start now, in start order. */
  start: number[];
  /** Why each job that does not start waits. */
  waiting: Map<number, PendingReason>;
}

export function compareDispatchOrder(queues: ReadonlyMap<string, QueuePolicyView>) {
  return (a: PendingJobView, b: PendingJobView): number =>
    (queues.get(b.hpcqueueId)?.priority ?? 0) - (queues.get(a.hpcqueueId)?.priority ?? 0) ||
    b.priority - a.priority ||
    a.id - b.id;
}

export function planDispatch(input: DispatchInput): DispatchPlan {
  const { queues, nowMs } = input;
  const running: RunningJobView[] = [...input.running];
  let freeCores = input.nodeCores - sum(running, (r) => r.cores);
  let freeMem = input.nodeMemMb - sum(running, (r) => r.memoryLimitMb);
  const runningPerQueue = new Map<string, number>();
  for (const r of running) runningPerQueue.set(r.hpcqueueId, (runningPerQueue.get(r.hpcqueueId) ?? 0) + 1);

  const plan: DispatchPlan = { start: [], waiting: new Map() };
  let reservation: { shadowMs: number; extraCores: number; extraMem: number } | undefined;

  for (const job of [...input.pending].sort(compareDispatchOrder(queues))) {
    const maxRunning = queues.get(job.hpcqueueId)?.maxRunning ?? 0;
    if (maxRunning > 0 && (runningPerQueue.get(job.hpcqueueId) ?? 0) >= maxRunning) {
      plan.waiting.set(job.id, 'QueueMaxRunning');
      continue;
    }
    const fitsNow = job.cores <= freeCores && job.memoryLimitMb <= freeMem;
    let start = false;
    if (!reservation) {
      if (fitsNow) start = true;
      else {
        reservation = reserve(job, running, freeCores, freeMem);
        plan.waiting.set(job.id, 'Resources');
        continue;
      }
    } else if (fitsNow) {
      const endsBeforeShadow = nowMs + job.timeLimitSeconds * 1000 <= reservation.shadowMs;
      const fitsInExtra = job.cores <= reservation.extraCores && job.memoryLimitMb <= reservation.extraMem;
      if (endsBeforeShadow) start = true;
      else if (fitsInExtra) {
        start = true;
        reservation.extraCores -= job.cores;
        reservation.extraMem -= job.memoryLimitMb;
      }
    }
    if (!start) {
      plan.waiting.set(job.id, fitsNow ? 'Priority' : 'Resources');
      continue;
    }
    plan.start.push(job.id);
    freeCores -= job.cores;
    freeMem -= job.memoryLimitMb;
    runningPerQueue.set(job.hpcqueueId, (runningPerQueue.get(job.hpcqueueId) ?? 0) + 1);
    running.push({ hpcqueueId: job.hpcqueueId, cores: job.cores, memoryLimitMb: job.memoryLimitMb, expectedEndMs: nowMs + job.timeLimitSeconds * 1000 });
  }
  return plan;
}

/** Earliest time the job fits as running jobs end, and what is left over then. */
function reserve(job: PendingJobView, running: readonly RunningJobView[], freeCores: number, freeMem: number) {
  let cores = freeCores;
  let mem = freeMem;
  for (const r of [...running].sort((a, b) => a.expectedEndMs - b.expectedEndMs)) {
    cores += r.cores;
    mem += r.memoryLimitMb;
    if (job.cores <= cores && job.memoryLimitMb <= mem) {
      return { shadowMs: r.expectedEndMs, extraCores: cores - job.cores, extraMem: mem - job.memoryLimitMb };
    }
  }
  // Cannot fit even on an empty node (config prevents this); block everything behind it.
  return { shadowMs: -Infinity, extraCores: 0, extraMem: 0 };
}

function sum<T>(items: readonly T[], f: (t: T) => number): number {
  let total = 0;
  for (const item of items) total += f(item);
  return total;
}
