// Retention's timing: every hour at minute 17 from a plain timer by default, node-cron only for an
// explicit retention.schedule. A store that records the purges stands in for LevelDB (timing only).
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { JobStore } from '../../src/core/ports.js';
import { Housekeeping, msUntilMinuteOfHour } from '../../src/daemon/housekeeping.js';
import { createLogger } from '../../src/logger.js';

const MIN = 60_000;
const DAY = 86_400_000;
const at = (h: number, m: number, s = 0, ms = 0) => new Date(2026, 11, 5, h, m, s, ms).getTime();

describe('msUntilMinuteOfHour', () => {
  it.each([
    ['before the mark', at(10, 5), 12 * MIN],
    ['exactly at the mark: the next hour', at(10, 17), 60 * MIN],
    ['just after the mark', at(10, 17, 0, 1), 60 * MIN - 1],
    ['late in the hour', at(10, 59, 30), 17 * MIN + 30_000],
  ])('%s', (_what, now, expected) => {
    expect(msUntilMinuteOfHour(now, 17)).toBe(expected);
  });
});

describe('Housekeeping timing', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  function recordingStore(cutoffs: number[]): JobStore {
    return {
      purgeFinishedBefore: (cutoff: number) => {
        cutoffs.push(cutoff);
        return Promise.resolve(0);
      },
    } as unknown as JobStore;
  }

  /** Housekeeping started at 10:05 on fake timers, with the purges' cutoffs and Intl.DateTimeFormat watched. */
  function started(maxAgeDays: number, schedule: string) {
    vi.useFakeTimers({ now: at(10, 5) });
    const formatter = vi.spyOn(Intl, 'DateTimeFormat');
    const cutoffs: number[] = [];
    const housekeeping = new Housekeeping(recordingStore(cutoffs), maxAgeDays, schedule, createLogger('silent'));
    housekeeping.start();
    return { formatter, cutoffs, housekeeping };
  }

  it('by default purges every hour at minute 17, never creating a date formatter, and stops when told', async () => {
    const { formatter, cutoffs, housekeeping } = started(30, '');
    await vi.advanceTimersByTimeAsync(12 * MIN - 1);
    expect(cutoffs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(cutoffs).toEqual([at(10, 17) - 30 * DAY]);
    await vi.advanceTimersByTimeAsync(60 * MIN);
    expect(cutoffs).toEqual([at(10, 17) - 30 * DAY, at(11, 17) - 30 * DAY]);
    await housekeeping.stop();
    await vi.advanceTimersByTimeAsync(3 * 60 * MIN);
    expect(cutoffs).toHaveLength(2);
    expect(formatter).not.toHaveBeenCalled();
  });

  it('an explicit schedule runs on node-cron (which formats dates through Intl)', async () => {
    const { formatter, cutoffs, housekeeping } = started(30, '*/10 * * * *');
    await vi.advanceTimersByTimeAsync(5 * MIN + 1000);
    await housekeeping.stop();
    expect(cutoffs).toEqual([at(10, 10) - 30 * DAY]);
    expect(formatter).toHaveBeenCalled();
  });

  it('retention 0 keeps everything: nothing is armed', async () => {
    const { cutoffs } = started(0, '');
    await vi.advanceTimersByTimeAsync(2 * 60 * MIN);
    expect(cutoffs).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
