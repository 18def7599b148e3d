/**
 * Turns the job store's mode into the daemon's health. While the store refuses writes (disk full,
 * or failed after an I/O error) submits fail, so JobService and the server as a whole report
 * NOT_SERVING: monitoring and load balancers see what clients see. ListQueues needs no store and
 * stays SERVING.
 *
 * A full disk is probed every interval (the store reopens once there is room), so health comes
 * back without waiting for a client's write. A failed store stays NOT_SERVING until hpcqd is
 * restarted: after an I/O error nobody knows what the log holds, and a restart re-reads it whole.
 */
import type { StoreHealth, StoreMode } from '../store/level-job-store.js';

export interface WatchedStore {
  health(): StoreHealth;
  recoverIfDiskFull(): Promise<boolean>;
}

export class StoreHealthWatch {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly store: WatchedStore,
    /** Receives whether the store takes writes, on every change of mode. */
    private readonly report: (writable: boolean) => void,
    private readonly probeIntervalMs: number,
  ) {}

  modeChanged(mode: StoreMode): void {
    if (this.stopped) return;
    this.report(mode === 'open');
    if (mode === 'disk-full') this.probeLater();
    else this.cancelProbe();
  }

  stop(): void {
    this.stopped = true;
    this.cancelProbe();
  }

  private cancelProbe(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private probeLater(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.timer = setTimeout(() => {
      void this.store.recoverIfDiskFull().then(() => {
        this.timer = undefined;
        // Recovery reports itself through modeChanged('open'); only a full disk is probed again.
        if (this.store.health().mode === 'disk-full') this.probeLater();
      });
    }, this.probeIntervalMs);
    this.timer.unref();
  }
}
