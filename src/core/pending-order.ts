/**
 * Pending jobs kept in dispatch order within each queue, so that a dispatch pass reads them from
 * the front instead of sorting every pending job (planDispatch merges the queues).
 *
 * Design: per queue, one bucket per job priority, visited high priority first; a bucket is a Map
 * from job id to job, whose insertion order is the id order. New jobs arrive with increasing ids,
 * so adding one appends to its bucket, and removing one deletes from it: both O(1) amortized.
 * Replacing a job that is already there (a new pending reason) keeps its place, as Map.set does.
 * A job re-added with an id lower than one its bucket has held (the engine puts a job back to
 * PENDING when its RUNNING write fails) is appended and marks the bucket out of order; the bucket
 * is sorted again, once, the next time it is read. Reverts come in small batches (at most a pass's
 * starts) and rarely, so one rebuild per batch is cheaper than one sorted insert per job.
 *
 * A job's queue and priority must not change while it is here (they are fixed at submit).
 */

/** What the order needs of a job. */
export interface OrderedJob {
  readonly id: number;
  readonly hpcqueueId: string;
  readonly priority: number;
}

/** The pending jobs of one job priority in one queue, by id. */
class PriorityBucket<J extends OrderedJob> {
  jobs = new Map<number, J>();
  /** The highest id ever appended; a job with a higher id appends in order. Not lowered on delete. */
  maxId = -Infinity;
  inIdOrder = true;

  add(job: J): void {
    if (this.jobs.has(job.id)) {
      this.jobs.set(job.id, job);
      return;
    }
    if (job.id < this.maxId) this.inIdOrder = false;
    else this.maxId = job.id;
    this.jobs.set(job.id, job);
  }

  /** The jobs in id order, restoring it first if a re-added job broke it. */
  ordered(): IterableIterator<J> {
    if (!this.inIdOrder) {
      const sorted = [...this.jobs.values()].sort((a, b) => a.id - b.id);
      this.jobs = new Map(sorted.map((j) => [j.id, j]));
      this.inIdOrder = true;
    }
    return this.jobs.values();
  }
}

/** One queue's pending jobs; iterates them by job priority (high first), then id (low first). */
export class QueuePendingJobs<J extends OrderedJob> implements Iterable<J> {
  private readonly buckets = new Map<number, PriorityBucket<J>>();
  /** The priorities that have jobs, high first. Replaced, never changed in place, so a running iteration is not disturbed. */
  private priorities: readonly number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds the job, or replaces the job with its id in place. */
  set(job: J): void {
    let bucket = this.buckets.get(job.priority);
    if (!bucket) {
      this.buckets.set(job.priority, (bucket = new PriorityBucket()));
      const at = this.priorities.findIndex((p) => p < job.priority);
      this.priorities = this.priorities.toSpliced(at < 0 ? this.priorities.length : at, 0, job.priority);
    }
    const before = bucket.jobs.size;
    bucket.add(job);
    this.count += bucket.jobs.size - before;
  }

  /** Removes the job with `job`'s id; false if it was not here. */
  delete(job: OrderedJob): boolean {
    const bucket = this.buckets.get(job.priority);
    if (!bucket?.jobs.delete(job.id)) return false;
    this.count--;
    if (bucket.jobs.size === 0) {
      this.buckets.delete(job.priority);
      this.priorities = this.priorities.filter((p) => p !== job.priority);
    }
    return true;
  }

  *[Symbol.iterator](): Iterator<J> {
    for (const priority of this.priorities) {
      const bucket = this.buckets.get(priority);
      if (bucket) yield* bucket.ordered();
    }
  }
}

/** The pending jobs of every queue, each queue in dispatch order. */
export class PendingOrder<J extends OrderedJob> {
  private readonly queues = new Map<string, QueuePendingJobs<J>>();

  /** Each queue (by hpcqueueId) with its jobs in (job priority desc, id asc) order: planDispatch's input. */
  get byQueue(): ReadonlyMap<string, QueuePendingJobs<J>> {
    return this.queues;
  }

  get size(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  /** Adds the job, or replaces the job with its id in place (same queue and priority). */
  set(job: J): void {
    let queue = this.queues.get(job.hpcqueueId);
    if (!queue) this.queues.set(job.hpcqueueId, (queue = new QueuePendingJobs()));
    queue.set(job);
  }

  /** Removes the job with `job`'s id from its queue and priority; false if it was not here. */
  delete(job: OrderedJob): boolean {
    const queue = this.queues.get(job.hpcqueueId);
    if (!queue?.delete(job)) return false;
    if (queue.size === 0) this.queues.delete(job.hpcqueueId);
    return true;
  }
}
