/** StoreHealthWatch: the store's mode as the daemon's health, and the probing of a full disk. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StoreHealthWatch, type WatchedStore } from '../../src/daemon/store-health.js';
import type { StoreMode } from '../../src/store/level-job-store.js';

/** A store whose disk gets room when the test says so; recovery reports through the watch. */
class FakeStore implements WatchedStore {
  mode: StoreMode = 'open';
  room = false;
  probes = 0;
  watch: StoreHealthWatch | undefined;

  health() {
    return { mode: this.mode };
  }

  setMode(mode: StoreMode): void {
    this.mode = mode;
    this.watch?.modeChanged(mode);
  }

  async recoverIfDiskFull(): Promise<boolean> {
    this.probes++;
    if (this.mode === 'disk-full' && this.room) this.setMode('open');
    return this.mode === 'open';
  }
}

describe('StoreHealthWatch', () => {
  let store: FakeStore;
  let reports: boolean[];

  beforeEach(() => {
    vi.useFakeTimers();
    store = new FakeStore();
    reports = [];
    store.watch = new StoreHealthWatch(store, (writable) => reports.push(writable), 1000);
  });

  afterEach(() => {
    store.watch?.stop();
    vi.useRealTimers();
  });

  it('reports a failed store as not writable and never probes it (it needs a restart)', async () => {
    store.setMode('failed');
    expect(reports).toEqual([false]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(store.probes).toBe(0);
    expect(reports).toEqual([false]);
  });

  it('probes a full disk every interval until there is room, then reports writable again', async () => {
    store.setMode('disk-full');
    expect(reports).toEqual([false]);
    await vi.advanceTimersByTimeAsync(3_500);
    expect(store.probes).toBe(3);
    store.room = true;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(store.probes).toBe(4);
    expect(reports).toEqual([false, true]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(store.probes).toBe(4);
  });

  it('a full disk that turns into a failed store stops the probing', async () => {
    store.setMode('disk-full');
    await vi.advanceTimersByTimeAsync(1_000);
    store.setMode('failed');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(store.probes).toBe(1);
    expect(reports).toEqual([false, false]);
  });

  it('reports nothing and probes nothing once stopped', async () => {
    store.setMode('disk-full');
    store.watch!.stop();
    store.setMode('open');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(store.probes).toBe(0);
    expect(reports).toEqual([false]);
  });
});
