/** Fan-out of stored state changes to live watchers (WatchJob). In memory; the store keeps the log. */
import type { Job, JobEvent } from '../core/job.js';

export type JobChangeListener = (job: Job, event: JobEvent) => void;

export class JobEventBus {
  private readonly listeners = new Map<number, Set<JobChangeListener>>();

  /** Returns the function that unsubscribes. */
  subscribe(jobId: number, listener: JobChangeListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  publish(job: Job, event: JobEvent): void {
    const set = this.listeners.get(job.id);
    if (!set) return;
    for (const listener of [...set]) listener(job, event);
  }

  get watcherCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}
