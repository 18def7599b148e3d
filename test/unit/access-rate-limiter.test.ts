/** RateLimiter: per-key token buckets, refill, independence of keys and the bound on memory. */
import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/access/rate-limiter.js';

/** Takes `n` times at `nowMs` and returns the results. */
function takeN(limiter: RateLimiter, key: string, n: number, nowMs: number, cost = 1) {
  return Array.from({ length: n }, () => limiter.take(key, nowMs, cost));
}

describe('RateLimiter', () => {
  it.each([
    // rate/s, burst, cost, takes that succeed at t=0, retryAfterMs of the next one
    { rate: 5, burst: 20, cost: 1, allowed: 20, retry: 200 },
    { rate: 1, burst: 3, cost: 1, allowed: 3, retry: 1000 },
    { rate: 3, burst: 3, cost: 1, allowed: 3, retry: 334 }, // 333.3 ms, rounded up
    { rate: 10, burst: 10, cost: 4, allowed: 2, retry: 200 }, // 2 tokens left, 2 missing
    { rate: 2000, burst: 1, cost: 1, allowed: 1, retry: 1 }, // 0.5 ms, at least 1
  ])('rate $rate/s burst $burst cost $cost: $allowed taken, then retry in $retry ms', ({ rate, burst, cost, allowed, retry }) => {
    const limiter = new RateLimiter({ ratePerSecond: rate, burst });
    for (const result of takeN(limiter, 'k', allowed, 0, cost)) expect(result).toEqual({ ok: true });
    expect(limiter.take('k', 0, cost)).toEqual({ ok: false, retryAfterMs: retry });
    expect(limiter.take('k', retry - 1, cost).ok).toBe(false);
    expect(limiter.take('k', retry, cost)).toEqual({ ok: true });
  });

  it('refills continuously over time, never above burst', () => {
    const limiter = new RateLimiter({ ratePerSecond: 10, burst: 5 });
    takeN(limiter, 'k', 5, 0);
    expect(limiter.take('k', 0).ok).toBe(false);
    // 250 ms at 10/s: 2.5 tokens, so two takes
    expect(takeN(limiter, 'k', 3, 250).map((r) => r.ok)).toEqual([true, true, false]);
    expect(limiter.take('k', 250)).toEqual({ ok: false, retryAfterMs: 50 });
    // an hour idle refills to burst, not beyond
    expect(takeN(limiter, 'k', 6, 3_600_000).map((r) => r.ok)).toEqual([true, true, true, true, true, false]);
  });

  it('refuses without spending: a refused take costs nothing', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2 });
    takeN(limiter, 'k', 2, 0);
    takeN(limiter, 'k', 100, 500);
    expect(limiter.take('k', 1000)).toEqual({ ok: true });
  });

  it('does not refill when the clock steps back', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 1 });
    expect(limiter.take('k', 10_000).ok).toBe(true);
    expect(limiter.take('k', 5_000).ok).toBe(false);
    expect(limiter.take('k', 10_999).ok).toBe(false);
    expect(limiter.take('k', 11_000).ok).toBe(true);
  });

  it('keeps keys independent: one exhausted, the other full', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 10 });
    takeN(limiter, 'busy', 1000, 0);
    expect(limiter.take('busy', 0).ok).toBe(false);
    expect(takeN(limiter, 'quiet', 10, 0).every((r) => r.ok)).toBe(true);
    expect(limiter.take('quiet', 0).ok).toBe(false);
  });

  it('is unlimited at ratePerSecond 0 and keeps no buckets', () => {
    const limiter = new RateLimiter({ ratePerSecond: 0, burst: 0 });
    expect(takeN(limiter, 'k', 10_000, 0, 50).every((r) => r.ok)).toBe(true);
    expect(limiter.size).toBe(0);
  });

  it('rejects a cost that could never be taken and bad options', () => {
    const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2 });
    expect(() => limiter.take('k', 0, 3)).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: -1, burst: 1 })).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: Number.NaN, burst: 1 })).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: 1, burst: 0 })).toThrow(RangeError);
    expect(() => new RateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 0 })).toThrow(RangeError);
  });

  describe('bounded memory', () => {
    it('never holds more than maxKeys buckets, idle or busy', () => {
      const limiter = new RateLimiter({ ratePerSecond: 1, burst: 2, maxKeys: 100 });
      let max = 0;
      for (let i = 0; i < 10_000; i++) {
        // all busy (same instant, each key spends its whole burst), so only age can evict
        takeN(limiter, `key-${i}`, 2, 0);
        max = Math.max(max, limiter.size);
      }
      expect(max).toBe(100);
    });

    it('drops refilled buckets before busy ones, even older busy ones', () => {
      const limiter = new RateLimiter({ ratePerSecond: 1, burst: 10, maxKeys: 3 });
      takeN(limiter, 'busy', 10, 0); // full again at 10 s
      limiter.take('idle', 0); // full again at 1 s
      limiter.take('other', 2000);
      limiter.take('new', 2000); // map full: 'idle' goes, the older 'busy' stays
      expect(limiter.size).toBe(3);
      // 'busy' still has only the 2 tokens regained since 0 s
      expect(limiter.take('busy', 2000, 5)).toEqual({ ok: false, retryAfterMs: 3000 });
    });

    it('evicts the least recently used when nothing is idle, and an evicted key starts full', () => {
      const limiter = new RateLimiter({ ratePerSecond: 1, burst: 5, maxKeys: 10 });
      takeN(limiter, 'first', 5, 0);
      expect(limiter.take('first', 0).ok).toBe(false);
      for (let i = 0; i < 10; i++) takeN(limiter, `flood-${i}`, 5, 0);
      expect(limiter.size).toBeLessThanOrEqual(10);
      // forgotten, so a fresh full bucket
      expect(takeN(limiter, 'first', 5, 0).every((r) => r.ok)).toBe(true);
    });

    it('keeps a recently touched key over older ones', () => {
      const limiter = new RateLimiter({ ratePerSecond: 1, burst: 5, maxKeys: 10 });
      takeN(limiter, 'kept', 5, 0);
      for (let i = 0; i < 9; i++) takeN(limiter, `old-${i}`, 5, 0);
      expect(limiter.take('kept', 0).ok).toBe(false); // touched: now the most recent
      takeN(limiter, 'newcomer', 5, 0);
      expect(limiter.take('kept', 0).ok).toBe(false); // still exhausted, so not evicted
    });
  });
});
