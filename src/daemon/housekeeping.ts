/**
 * Retention: purges finished jobs older than the configured age together with their index entries,
 * events and tokens, in bounded batches so a purge never stalls RPCs. It runs every hour at minute
 * 17 from a plain timer, or on the node-cron schedule `retention.schedule` when one is set.
 *
 * Why not node-cron for the default: node-cron computes every tick with Intl.DateTimeFormat, whose
 * first use maps about 6.5 MiB of ICU data into the daemon for good (a 1,000-job burst peaked 7 MiB
 * higher with it), and an hourly purge needs no calendar.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { JobStore } from '../core/ports.js';
import type { Logger } from '../logger.js';

/** Jobs deleted per batch: keeps each synced batch small (a few MB) and the event loop responsive. */
const PURGE_BATCH = 5000;
/** The default purge time: every hour at this minute (local time). */
const DEFAULT_PURGE_MINUTE = 17;
const HOUR_MS = 3_600_000;

/** Milliseconds from `nowMs` to the next time strictly after it whose local minute is `minute`, at second 0. */
export function msUntilMinuteOfHour(nowMs: number, minute: number): number {
  const mark = new Date(nowMs);
  mark.setMinutes(minute, 0, 0);
  let at = mark.getTime();
  while (at <= nowMs) at += HOUR_MS;
  return at - nowMs;
}

export class Housekeeping {
  private task: ScheduledTask | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly store: JobStore,
    private readonly maxAgeDays: number,
    /** A node-cron expression, or '' for every hour at minute 17. */
    private readonly schedule: string,
    private readonly log: Logger,
  ) {
    if (schedule !== '' && !cron.validate(schedule)) throw new Error(`retention.schedule ${JSON.stringify(schedule)} is not a valid cron expression`);
  }

  start(): void {
    if (this.maxAgeDays === 0 || this.task || this.timer) return;
    if (this.schedule === '') this.armHourly();
    else this.task = cron.schedule(this.schedule, () => this.purgeInBackground(), { noOverlap: true });
  }

  private armHourly(): void {
    this.timer = setTimeout(() => {
      this.armHourly();
      this.purgeInBackground();
    }, msUntilMinuteOfHour(Date.now(), DEFAULT_PURGE_MINUTE));
    this.timer.unref();
  }

  /** A purge already under way is joined, not repeated (purgeNow). */
  private purgeInBackground(): void {
    void this.purgeNow().catch((err) => this.log.error({ err }, 'retention purge failed'));
  }

  /** Purges everything due now; returns the number of jobs deleted. */
  purgeNow(nowMs = Date.now()): Promise<number> {
    this.running ??= (async () => {
      const cutoff = nowMs - this.maxAgeDays * 86_400_000;
      let total = 0;
      for (;;) {
        const n = await this.store.purgeFinishedBefore(cutoff, PURGE_BATCH);
        total += n;
        if (n < PURGE_BATCH) break;
        await new Promise((r) => setImmediate(r));
      }
      if (total > 0) this.log.info({ purged: total, maxAgeDays: this.maxAgeDays }, 'purged finished jobs');
      return total;
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.task?.stop();
    this.task = undefined;
    await this.running?.catch(() => undefined);
  }
}
