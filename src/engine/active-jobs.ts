/**
 * The PENDING and RUNNING jobs, in memory, with per-queue counts kept up to date so that submit
 * (max_pending) and ListQueues cost O(1), not a scan of every active job. The pending jobs are also
 * kept in dispatch order per queue (PendingOrder) and the running ones apart, so that a dispatch
 * pass reads the front of the queues and the few running jobs, never every pending job.
 *
 * set() and remove() are the only places a job's state changes in memory, so every view here
 * follows them.
 *
 * Pending jobs that wait for something other than room (held, a begin time or retry backoff, their
 * dependencies: `isParked`) are kept out of the dispatch order, so that 100,000 held or future jobs
 * cost a pass nothing; refresh() moves a job in or out when what it waits for changes.
 */
import type { Job } from '../core/job.js';
import { PendingOrder, type QueuePendingJobs } from '../core/pending-order.js';

export interface QueueCounts {
  pending: number;
  running: number;
}

export class ActiveJobs {
  private readonly jobs = new Map<number, Job>();
  private readonly pendingOrder = new PendingOrder<Job>();
  /** Pending jobs out of the dispatch order (see isParked). */
  private readonly parked = new Map<number, Job>();
  private readonly runningJobs = new Map<number, Job>();
  private readonly counts = new Map<string, QueueCounts>();
  private usedCores = 0;
  private usedMemMb = 0;

  constructor(
    private readonly isParked: (job: Job) => boolean = () => false,
    /** Whether a running job holds this node's cores and memory (not one another scheduler runs). */
    private readonly onNode: (job: Job) => boolean = () => true,
  ) {}

  get(id: number): Job | undefined {
    return this.jobs.get(id);
  }

  /** Adds or replaces a job; a job in a terminal state is removed. */
  set(job: Job): void {
    const old = this.jobs.get(job.id);
    // A pending job that stays pending (a new reason) is replaced where it is, keeping its place.
    const parked = job.state === 'PENDING' && this.isParked(job);
    const keepsPlace =
      old?.state === 'PENDING' && job.state === 'PENDING' && old.hpcqueueId === job.hpcqueueId && old.priority === job.priority && this.parked.has(old.id) === parked;
    if (old && !keepsPlace) this.remove(old.id);
    else if (old) this.adjust(old, -1);
    if (job.state !== 'PENDING' && job.state !== 'RUNNING') return;
    this.jobs.set(job.id, job);
    this.adjust(job, +1);
    if (parked) this.parked.set(job.id, job);
    else if (job.state === 'PENDING') this.pendingOrder.set(job);
    else this.runningJobs.set(job.id, job);
  }

  /** Puts a pending job in or out of the dispatch order after what it waits for changed. */
  refresh(id: number): void {
    const job = this.jobs.get(id);
    if (job?.state === 'PENDING' && this.parked.has(id) !== this.isParked(job)) {
      this.remove(id);
      this.set(job);
    }
  }

  remove(id: number): void {
    const old = this.jobs.get(id);
    if (!old) return;
    this.jobs.delete(id);
    this.adjust(old, -1);
    if (this.parked.delete(id)) return;
    if (old.state === 'PENDING') this.pendingOrder.delete(old);
    else this.runningJobs.delete(id);
  }

  /** Every pending job, parked ones included (not in dispatch order). */
  *pending(): IterableIterator<Job> {
    for (const queue of this.pendingOrder.byQueue.values()) yield* queue;
    yield* this.parked.values();
  }

  /** Each queue's pending jobs that may start, in dispatch order (job priority, then id): planDispatch's input. */
  get pendingByQueue(): ReadonlyMap<string, QueuePendingJobs<Job>> {
    return this.pendingOrder.byQueue;
  }

  running(): IterableIterator<Job> {
    return this.runningJobs.values();
  }

  countsOf(hpcqueueId: string): QueueCounts {
    return this.counts.get(hpcqueueId) ?? { pending: 0, running: 0 };
  }

  get pendingTotal(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c.pending;
    return n;
  }

  /** Cores and memory (MiB) held by running jobs. */
  get used(): { cores: number; memMb: number } {
    return { cores: this.usedCores, memMb: this.usedMemMb };
  }

  private adjust(job: Job, delta: 1 | -1): void {
    let c = this.counts.get(job.hpcqueueId);
    if (!c) this.counts.set(job.hpcqueueId, (c = { pending: 0, running: 0 }));
    if (job.state === 'PENDING') c.pending += delta;
    else {
      c.running += delta;
      if (!this.onNode(job)) return;
      this.usedCores += delta * job.cores;
      this.usedMemMb += delta * job.memoryLimitMb;
    }
  }
}
