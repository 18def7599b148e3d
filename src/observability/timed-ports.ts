/**
 * Decorators of the engine's ports that time what metrics need without touching the executor or
 * the store: how long a launch takes, and how long the engine waits for its durable writes.
 */
import type { Job, JobOutcome } from '../core/job.js';
import type { JobExecutor, JobStore, ReattachResult } from '../core/ports.js';

/** A JobExecutor that reports the duration of each successful launch. */
export class TimedExecutor implements JobExecutor {
  constructor(
    private readonly inner: JobExecutor,
    private readonly launched: (ms: number) => void,
  ) {}

  get enforcement(): JobExecutor['enforcement'] {
    return this.inner.enforcement;
  }

  // The engine sets onEnded on the executor it is given: pass it on.
  get onEnded(): (jobId: number, outcome: JobOutcome) => Promise<void> {
    return this.inner.onEnded;
  }

  set onEnded(fn: (jobId: number, outcome: JobOutcome) => Promise<void>) {
    this.inner.onEnded = fn;
  }

  launchBlocker(): string | undefined {
    return this.inner.launchBlocker?.();
  }

  get launchesAhead(): boolean | undefined {
    return this.inner.launchesAhead;
  }

  async launch(job: Job, durable?: Promise<unknown>): Promise<void> {
    const t0 = performance.now();
    await this.inner.launch(job, durable);
    this.launched(performance.now() - t0);
  }

  cancel(job: Job): Promise<void> {
    return this.inner.cancel(job);
  }

  reattach(job: Job): Promise<ReattachResult> {
    return this.inner.reattach(job);
  }

  sweepOrphans(runningJobIds: ReadonlySet<number>): Promise<void> {
    return this.inner.sweepOrphans(runningJobIds);
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }
}

/** The durable writes on the job path that are timed: job creation and state changes. */
export const TIMED_STORE_WRITES = ['createJob', 'createJobs', 'saveTransitions', 'saveQueueState'] as const;
const TIMED_WRITES: ReadonlySet<PropertyKey> = new Set(TIMED_STORE_WRITES);

/**
 * The store as the engine sees it, with its durable writes timed (`op` is the method name). A
 * proxy, so the store's many other methods pass through unchanged and new ones need nothing here.
 */
export function timeStoreWrites(store: JobStore, written: (op: string, ms: number) => void): JobStore {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let fn = wrapped.get(prop);
      if (fn === undefined) {
        const method = value as (...args: unknown[]) => unknown;
        fn = TIMED_WRITES.has(prop)
          ? (...args: unknown[]) => {
              const t0 = performance.now();
              const result = method.apply(target, args) as Promise<unknown>;
              const done = () => written(String(prop), performance.now() - t0);
              result.then(done, done);
              return result;
            }
          : method.bind(target);
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}
