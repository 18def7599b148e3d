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
 *
 * Bounded passes: a pass runs after every submit batch, job end and cancel, with possibly 100,000s
 * of jobs pending, so it looks only at the jobs that can matter (as Slurm does with
 * default_queue_depth and bf_max_job_test). The input comes already ordered per queue (see
 * PendingOrder) and is merged here, and the pass reads from the front:
 * - a queue at its max_running is left after its first job (the rest would wait for the same reason);
 * - the pass ends once no cores or no memory are free and the job next in line has its reservation
 *   (and reason Resources): every job asks for at least 1 core and 1 MiB (validateSubmit and the
 *   queue defaults make sure of it), so nothing else could start;
 * - after the reservation, a queue is left once BACKFILL_TESTS_PER_QUEUE of its jobs could not
 *   start, and the pass ends once BACKFILL_TESTS_PER_PASS jobs could not start.
 * A job not examined gets no entry in `waiting`: it keeps the reason it had. Before the reservation
 * every examined job starts, is the reserved one, or leaves its queue, so a pass examines at most
 * free cores + queues + 1 + BACKFILL_TESTS_PER_PASS jobs, whatever the number pending (on a full
 * node: at most queues + 1).
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
  /** Each queue's pending jobs (by hpcqueueId), in job priority (high first) then id order: PendingOrder.byQueue. */
  pending: ReadonlyMap<string, Iterable<PendingJobView>>;
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
  /** Why each examined job that does not start waits. Jobs not examined have no entry. */
  waiting: Map<number, PendingReason>;
  /** How many pending jobs the pass looked at (start + waiting). */
  examined: number;
}

/**
 * After the reservation, jobs of one queue that may fail to start before the rest of the queue is
 * left for a later pass (like Slurm's partition_job_depth and bf_max_job_part): a deep queue of
 * jobs that cannot start does not keep the queues below it from backfilling. 1,000 is the backfill
 * look-ahead of Microsoft HPC Pack and of the order of Slurm's (default_queue_depth is 100);
 * examining that many costs about 0.1 ms (bench/dispatch-bench.ts). A backfill candidate deeper
 * than that in its own queue waits until jobs ahead of it start or leave.
 */
export const BACKFILL_TESTS_PER_QUEUE = 1_000;

/** After the reservation, jobs that may fail to start before the pass ends: the bound with many queues. */
export const BACKFILL_TESTS_PER_PASS = 10_000;

/** The dispatch order as a comparator (planDispatch merges the per-queue orders to the same effect). */
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

  const plan: DispatchPlan = { start: [], waiting: new Map(), examined: 0 };
  let reservation: { shadowMs: number; extraCores: number; extraMem: number } | undefined;
  let notStartedSinceReservation = 0;
  const merge = new QueueMerge(input.pending, queues);

  for (;;) {
    if (reservation && (freeCores <= 0 || freeMem <= 0 || notStartedSinceReservation >= BACKFILL_TESTS_PER_PASS)) break;
    const cursor = merge.first();
    if (!cursor) break;
    const job = cursor.job;
    plan.examined++;
    if (cursor.maxRunning > 0 && (runningPerQueue.get(job.hpcqueueId) ?? 0) >= cursor.maxRunning) {
      plan.waiting.set(job.id, 'QueueMaxRunning');
      merge.leave(cursor);
      if (reservation) notStartedSinceReservation++;
      continue;
    }
    merge.advance(cursor);
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
      notStartedSinceReservation++;
      if (++cursor.notStartedSinceReservation >= BACKFILL_TESTS_PER_QUEUE) merge.leave(cursor);
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

/** A queue's place in the merge: its next job and what the pass has counted of it. */
interface QueueCursor {
  readonly queuePriority: number;
  readonly maxRunning: number;
  readonly rest: Iterator<PendingJobView>;
  job: PendingJobView;
  notStartedSinceReservation: number;
}

/**
 * k-way merge of the per-queue orders into the dispatch order. The number of queues is small
 * (configured), so picking the first is a scan of the queues' next jobs.
 */
class QueueMerge {
  private readonly cursors: QueueCursor[] = [];

  constructor(pending: ReadonlyMap<string, Iterable<PendingJobView>>, queues: ReadonlyMap<string, QueuePolicyView>) {
    for (const [queueId, jobs] of pending) {
      const rest = jobs[Symbol.iterator]();
      const next = rest.next();
      if (next.done) continue;
      const policy = queues.get(queueId);
      this.cursors.push({ queuePriority: policy?.priority ?? 0, maxRunning: policy?.maxRunning ?? 0, rest, job: next.value, notStartedSinceReservation: 0 });
    }
  }

  /** The queue whose next job comes first in dispatch order; undefined when every queue is done. */
  first(): QueueCursor | undefined {
    let best = this.cursors[0];
    for (let i = 1; i < this.cursors.length; i++) {
      const c = this.cursors[i]!;
      if (comesBefore(c, best!)) best = c;
    }
    return best;
  }

  /** Moves past the cursor's job; the queue leaves the merge when it has no more. */
  advance(cursor: QueueCursor): void {
    const next = cursor.rest.next();
    if (next.done) this.leave(cursor);
    else cursor.job = next.value;
  }

  /** Leaves the rest of the queue unexamined. */
  leave(cursor: QueueCursor): void {
    const at = this.cursors.indexOf(cursor);
    if (at >= 0) this.cursors.splice(at, 1);
  }
}

function comesBefore(a: QueueCursor, b: QueueCursor): boolean {
  if (a.queuePriority !== b.queuePriority) return a.queuePriority > b.queuePriority;
  if (a.job.priority !== b.job.priority) return a.job.priority > b.job.priority;
  return a.job.id < b.job.id;
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
