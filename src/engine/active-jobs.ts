/**
 * The PENDING and RUNNING jobs, in memory, with per-queue counts kept up to date so that submit
 * (max_pending) and ListQueues cost O(1), not a scan of every active job.
 */
import type { Job } from '../core/job.js';

export interface QueueCounts {
  pending: number;
  running: number;
}

export class ActiveJobs {
  private readonly jobs = new Map<number, Job>();
  private readonly counts = new Map<string, QueueCounts>();
  private usedCores = 0;
  private usedMemMb = 0;

  get(id: number): Job | undefined {
    return this.jobs.get(id);
  }

  /** Adds or replaces a job; a job in a terminal state is removed. */
  set(job: Job): void {
    this.remove(job.id);
    if (job.state !== 'PENDING' && job.state !== 'RUNNING') return;
    this.jobs.set(job.id, job);
    this.adjust(job, +1);
  }

  remove(id: number): void {
    const old = this.jobs.get(id);
    if (!old) return;
    this.jobs.delete(id);
    this.adjust(old, -1);
  }

  values(): IterableIterator<Job> {
    return this.jobs.values();
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
      this.usedCores += delta * job.cores;
      this.usedMemMb += delta * job.memoryLimitMb;
    }
  }
}
