/**
 * Per-key token buckets: each key (a principal, a peer) may spend `burst` tokens at once and gets
 * them back continuously at `ratePerSecond`. One busy key never slows another.
 *
 * Time comes only from the caller's `nowMs`, so the class is pure and tests need no sleeping.
 *
 * Memory is bounded by `maxKeys`: the keys are chosen by clients, and a client that makes up a new
 * key per request must not grow the map without end. When it is full, buckets that have refilled
 * completely are dropped first (forgetting them changes nothing: a new bucket starts full too);
 * then, if that freed too little, the least recently used ones (a forgotten busy key starts full
 * again, the price of the bound). Each eviction frees a tenth of the map, so the scan it costs is
 * paid once per many new keys, not on every request.
 */

export interface RateLimiterOptions {
  /** Tokens regained per second; 0 means unlimited (every take succeeds). */
  ratePerSecond: number;
  /** Tokens a bucket holds when full, and starts with. */
  burst: number;
  /** Buckets kept at most; default 100_000. */
  maxKeys?: number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  atMs: number;
}

// Refill is computed in floating point: without this slack, a take made exactly retryAfterMs later
// could find 0.9999999999 tokens and be refused again.
const EPSILON = 1e-9;

export class RateLimiter {
  private readonly ratePerMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  /** In least-recently-used order: a touched bucket is re-inserted at the end. */
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: RateLimiterOptions) {
    const { ratePerSecond, burst, maxKeys = 100_000 } = opts;
    if (!(ratePerSecond >= 0) || !Number.isFinite(ratePerSecond)) throw new RangeError(`ratePerSecond must be a finite number >= 0, got ${ratePerSecond}`);
    if (ratePerSecond > 0 && !(burst >= 1)) throw new RangeError(`burst must be >= 1, got ${burst}`);
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError(`maxKeys must be an integer >= 1, got ${maxKeys}`);
    this.ratePerMs = ratePerSecond / 1000;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  /** Number of buckets held (bounded by maxKeys). */
  get size(): number {
    return this.buckets.size;
  }

  /** Spends `cost` tokens of `key`'s bucket if it has them; otherwise says when it will. */
  take(key: string, nowMs: number, cost = 1): TakeResult {
    if (this.ratePerMs === 0) return { ok: true };
    if (cost > this.burst) throw new RangeError(`cost ${cost} exceeds burst ${this.burst}: it could never be taken`);

    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.evict(nowMs);
      bucket = { tokens: this.burst, atMs: nowMs };
    } else {
      this.buckets.delete(key);
      bucket.tokens = this.tokensAt(bucket, nowMs);
      // A clock that steps back refills nothing, and the time already counted is not counted again.
      bucket.atMs = Math.max(bucket.atMs, nowMs);
    }
    this.buckets.set(key, bucket);

    if (bucket.tokens + EPSILON >= cost) {
      bucket.tokens = Math.max(0, bucket.tokens - cost);
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil((cost - bucket.tokens) / this.ratePerMs)) };
  }

  private tokensAt(bucket: Bucket, nowMs: number): number {
    return Math.min(this.burst, bucket.tokens + Math.max(0, nowMs - bucket.atMs) * this.ratePerMs);
  }

  private evict(nowMs: number): void {
    const target = this.maxKeys - Math.max(1, Math.floor(this.maxKeys / 10));
    for (const [key, bucket] of this.buckets) {
      if (this.tokensAt(bucket, nowMs) + EPSILON >= this.burst) this.buckets.delete(key);
    }
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(key);
    }
  }
}
