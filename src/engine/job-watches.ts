/**
 * WatchJob in memory: fans stored state changes out to the open watches of each job (the store
 * keeps the event log), and ends every open watch at shutdown.
 */
import { HpcqError } from '../core/errors.js';
import { isTerminal, type Job, type JobEvent } from '../core/job.js';

type JobChangeListener = (job: Job, event: JobEvent) => void;

/** Where a watch reads the job as it is now and its stored history. */
export interface WatchSource {
  current(): Promise<Job>;
  history(): Promise<JobEvent[]>;
}

export class JobWatches {
  private readonly listeners = new Map<number, Set<JobChangeListener>>();
  /** Ends each open watch with an error (shutdown). */
  private readonly open = new Set<(err: Error) => void>();
  private ended = false;

  /** Throws UNAVAILABLE once endAll() has been called. */
  assertOpen(): void {
    if (this.ended) throw shuttingDown();
  }

  /** Ends every open watch with UNAVAILABLE and refuses new ones (shutdown; see JobEngine.endWatches). */
  endAll(): void {
    this.ended = true;
    const err = shuttingDown();
    for (const fail of [...this.open]) fail(err);
  }

  /** Tells the watches of `job` about a change; call only once the change is durable. */
  publish(job: Job, event: JobEvent): void {
    const set = this.listeners.get(job.id);
    if (!set) return;
    for (const listener of [...set]) listener(job, event);
  }

  /**
   * Follows job `jobId`: `onJob` first gets the job as it is now (with the stored history if
   * asked), then every state change; resolves after a terminal state or when `signal` aborts.
   */
  async follow(
    jobId: number,
    includeHistory: boolean,
    onJob: (job: Job, event?: JobEvent) => void,
    signal: AbortSignal,
    source: WatchSource,
  ): Promise<void> {
    // Checked and registered in one synchronous step, so endAll() cannot fall between them.
    this.assertOpen();
    const buffered: Array<[Job, JobEvent]> = [];
    let live: JobChangeListener = (job, event) => buffered.push([job, event]);
    let finish!: () => void;
    let fail!: (err: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    done.catch(() => undefined);
    const unsubscribe = this.subscribe(jobId, (job, event) => live(job, event));
    const onAbort = () => finish();
    signal.addEventListener('abort', onAbort);
    this.open.add(fail);
    try {
      // Subscribed before reading, so no change falls between the snapshot and the live events.
      const snapshot = await source.current();
      onJob(snapshot);
      if (includeHistory) {
        for (const event of await source.history()) {
          if (event.sequence <= snapshot.eventCount) onJob(snapshot, event);
        }
      }
      if (isTerminal(snapshot.state)) return;
      live = (job, event) => {
        onJob(job, event);
        if (isTerminal(job.state)) finish();
      };
      for (const [job, event] of buffered) if (event.sequence > snapshot.eventCount) live(job, event);
      if (!signal.aborted) await done;
    } finally {
      this.open.delete(fail);
      signal.removeEventListener('abort', onAbort);
      unsubscribe();
    }
  }

  private subscribe(jobId: number, listener: JobChangeListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }
}

function shuttingDown(): HpcqError {
  return new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is shutting down; watch the job again once it is back');
}
