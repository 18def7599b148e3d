/**
 * Group commit: many writers, one synced batch at a time.
 *
 * Why: a synced LevelDB write costs one fsync (milliseconds); writes that arrive while a batch is
 * being synced wait and then share the next batch, so throughput grows with concurrency while
 * every write still resolves only after a synced batch containing it has completed.
 *
 * Modes:
 * - idle: nothing queued, nothing in flight. A write starts a batch at once (in a microtask, so
 *   writes issued in the same tick share it); there is no timer delay.
 * - writing: one batch in flight; new writes queue. When it completes, everything queued (up to
 *   `maxBatchOps`) becomes the next batch; back to idle when the queue is empty.
 * Exclusive tasks (reopen, flush) queue like writes and run alone between batches.
 *
 * A failed batch rejects every write in it with the batch's error; later writes are attempted
 * normally (the writer function decides whether the database can take them).
 */
import type { BatchOp } from './job-ops.js';

export interface GroupCommitOptions {
  /**
   * Upper bound of operations in one batch (whole writes are never split; a single larger write
   * goes alone). Default 50_000: bounds the memory and the latency of one batch, ~5k job creates.
   */
  maxBatchOps?: number;
}

export interface GroupCommitStats {
  /** Batches written (successful or not). */
  batches: number;
  /** Writes (calls to `write`) that went into those batches. */
  writes: number;
  /** Operations in those batches. */
  ops: number;
  failedBatches: number;
  /** Most writes in one batch. */
  maxBatchWrites: number;
  /** Batches by number of writes, in power-of-two buckets: "1", "2-3", "4-7", ... */
  batchWritesHistogram: Record<string, number>;
}

type QueueItem =
  | { kind: 'write'; ops: BatchOp[]; resolve: () => void; reject: (err: unknown) => void }
  | { kind: 'task'; run: () => Promise<unknown>; resolve: (value: unknown) => void; reject: (err: unknown) => void };

const DEFAULT_MAX_BATCH_OPS = 50_000;

function bucketName(writes: number): string {
  const low = 2 ** Math.floor(Math.log2(writes));
  return low === 1 ? '1' : `${low}-${low * 2 - 1}`;
}

export class GroupCommitter {
  private readonly queue: QueueItem[] = [];
  private draining = false;
  private readonly maxBatchOps: number;
  private readonly counters: GroupCommitStats = {
    batches: 0,
    writes: 0,
    ops: 0,
    failedBatches: 0,
    maxBatchWrites: 0,
    batchWritesHistogram: {},
  };

  /** `writeBatch` writes one batch durably, or rejects with the error to give every write in it. */
  constructor(
    private readonly writeBatch: (ops: BatchOp[]) => Promise<void>,
    options: GroupCommitOptions = {},
  ) {
    this.maxBatchOps = options.maxBatchOps ?? DEFAULT_MAX_BATCH_OPS;
  }

  /** Resolves once a batch containing `ops` has been written; all-or-nothing. */
  write(ops: BatchOp[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ kind: 'write', ops, resolve, reject });
      this.kick();
    });
  }

  /** Runs `task` alone: after the batches queued before it, before those queued after it. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'task', run: task, resolve: resolve as (value: unknown) => void, reject });
      this.kick();
    });
  }

  /** Resolves once every write queued before the call has settled (never rejects). */
  flush(): Promise<void> {
    return this.exclusive(async () => undefined);
  }

  /** Writes and exclusive tasks queued and not yet started (the one in flight is not counted). */
  get pending(): number {
    return this.queue.length;
  }

  stats(): GroupCommitStats {
    return { ...this.counters, batchWritesHistogram: { ...this.counters.batchWritesHistogram } };
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    queueMicrotask(() => void this.drain());
  }

  private async drain(): Promise<void> {
    try {
      for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
        if (head.kind === 'task') {
          this.queue.shift();
          try {
            head.resolve(await head.run());
          } catch (err) {
            head.reject(err);
          }
          continue;
        }
        await this.writeGroup(this.takeGroup());
      }
    } finally {
      this.draining = false;
    }
  }

  /** Takes the leading run of writes, up to maxBatchOps (at least one write). */
  private takeGroup(): Array<Extract<QueueItem, { kind: 'write' }>> {
    const group: Array<Extract<QueueItem, { kind: 'write' }>> = [];
    let ops = 0;
    for (let next = this.queue[0]; next?.kind === 'write'; next = this.queue[0]) {
      if (group.length > 0 && ops + next.ops.length > this.maxBatchOps) break;
      group.push(next);
      ops += next.ops.length;
      this.queue.shift();
    }
    return group;
  }

  private async writeGroup(group: Array<Extract<QueueItem, { kind: 'write' }>>): Promise<void> {
    const ops: BatchOp[] = [];
    for (const item of group) for (const op of item.ops) ops.push(op);
    const c = this.counters;
    c.batches += 1;
    c.writes += group.length;
    c.ops += ops.length;
    c.maxBatchWrites = Math.max(c.maxBatchWrites, group.length);
    const bucket = bucketName(group.length);
    c.batchWritesHistogram[bucket] = (c.batchWritesHistogram[bucket] ?? 0) + 1;
    try {
      await this.writeBatch(ops);
    } catch (err) {
      c.failedBatches += 1;
      for (const item of group) item.reject(err);
      return;
    }
    for (const item of group) item.resolve();
  }
}
