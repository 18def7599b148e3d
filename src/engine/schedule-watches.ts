/**
 * WatchSchedule in memory: fans a schedule's stored events out to its open watches. A watch ends
 * when the schedule is deleted, the caller goes away, or the daemon shuts down.
 */
import { HpcqError } from '../core/errors.js';
import type { Schedule, ScheduleEvent } from '../core/schedule.js';

type Listener = (schedule: Schedule, event: ScheduleEvent | undefined) => void;

export class ScheduleWatches {
  private readonly listeners = new Map<number, Set<{ onEvent: Listener; end: (err?: Error) => void }>>();
  private ended = false;

  /** Call once the events are durable. */
  publish(schedule: Schedule, events: readonly ScheduleEvent[]): void {
    for (const l of [...(this.listeners.get(schedule.id) ?? [])]) for (const e of events) l.onEvent(schedule, e);
  }

  /** The schedule is gone: its watches end normally. */
  deleted(id: number): void {
    for (const l of [...(this.listeners.get(id) ?? [])]) l.end();
  }

  /** Shutdown: every watch ends with UNAVAILABLE and new ones are refused. */
  endAll(): void {
    this.ended = true;
    const err = new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is shutting down; watch the schedule again once it is back');
    for (const set of this.listeners.values()) for (const l of [...set]) l.end(err);
  }

  /**
   * Follows a schedule: `onEvent` gets the schedule now (event undefined), its stored events if
   * `history` is given, then each new event; resolves when the schedule is deleted or `signal` aborts.
   */
  async follow(
    id: number,
    current: () => Schedule,
    history: (() => Promise<ScheduleEvent[]>) | undefined,
    onEvent: Listener,
    signal: AbortSignal,
  ): Promise<void> {
    if (this.ended) throw new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is shutting down');
    const buffered: Array<[Schedule, ScheduleEvent]> = [];
    let live: Listener = (s, e) => buffered.push([s, e!]);
    let end!: (err?: Error) => void;
    const done = new Promise<void>((resolve, reject) => (end = (err) => (err ? reject(err) : resolve())));
    done.catch(() => undefined);
    const listener = { onEvent: (s: Schedule, e: ScheduleEvent | undefined) => live(s, e), end: (err?: Error) => end(err) };
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    const onAbort = () => end();
    signal.addEventListener('abort', onAbort);
    try {
      // Registered before the snapshot, so no event falls between it and the live ones.
      const snapshot = current();
      onEvent(snapshot, undefined);
      if (history) for (const e of await history()) if (e.sequence <= snapshot.eventCount) onEvent(snapshot, e);
      live = onEvent;
      for (const [s, e] of buffered) if (e.sequence > snapshot.eventCount) onEvent(s, e);
      if (!signal.aborted) await done;
    } finally {
      signal.removeEventListener('abort', onAbort);
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(id) === set) this.listeners.delete(id);
    }
  }
}
