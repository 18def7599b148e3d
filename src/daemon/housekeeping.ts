/**
 * Retention: on a node-cron schedule, purges finished jobs older than the configured age together
 * with their index entries, events and tokens, in bounded batches so a purge never stalls RPCs.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { JobStore } from '../core/ports.js';
import type { Logger } from '../logger.js';

/** Jobs deleted per batch: keeps each synced batch small (a few MB) and the event loop responsive. */
const PURGE_BATCH = 5000;

export class Housekeeping {
  private task: ScheduledTask | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly store: JobStore,
    private readonly maxAgeDays: number,
    private readonly schedule: string,
    private readonly log: Logger,
  ) {
    if (!cron.validate(schedule)) throw new Error(`retention.schedule ${JSON.stringify(schedule)} is not a valid cron expression`);
  }

  start(): void {
    if (this.maxAgeDays === 0 || this.task) return;
    this.task = cron.schedule(this.schedule, () => void this.purgeNow().catch((err) => this.log.error({ err }, 'retention purge failed')), {
      noOverlap: true,
    });
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
    await this.task?.stop();
    this.task = undefined;
    await this.running?.catch(() => undefined);
  }
}
