import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/store/group-commit.js';
import type { BatchOp } from '../../src/store/job-ops.js';

/** A writer that records batches and completes each when the test says so. */
function gatedWriter() {
  const batches: string[][] = [];
  const gates: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  const write = (ops: BatchOp[]): Promise<void> => {
    batches.push(ops.map((op) => op.key));
    return new Promise<void>((resolve, reject) => gates.push({ resolve, reject }));
  };
  return { batches, gates, write };
}

const put = (key: string): BatchOp[] => [{ type: 'put', key, value: '' }];
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommitter', () => {
  it('writes the first write at once and groups writes that arrive while a batch is in flight', async () => {
    const w = gatedWriter();
    const gc = new GroupCommitter(w.write);
    const done: string[] = [];
    const first = gc.write(put('a')).then(() => done.push('a'));
    await tick();
    expect(w.batches).toEqual([['a']]); // no waiting for company when idle
    const rest = ['b', 'c', 'd'].map((k) => gc.write(put(k)).then(() => done.push(k)));
    await tick();
    expect(w.batches).toHaveLength(1); // queued behind the in-flight batch
    expect(done).toEqual([]);
    w.gates[0]?.resolve();
    await first;
    await tick();
    expect(w.batches).toEqual([['a'], ['b', 'c', 'd']]);
    expect(done).toEqual(['a']); // b, c, d wait for their own batch
    w.gates[1]?.resolve();
    await Promise.all(rest);
    expect(done).toEqual(['a', 'b', 'c', 'd']);
    expect(gc.stats()).toMatchObject({ batches: 2, writes: 4, ops: 4, maxBatchWrites: 3, failedBatches: 0 });
    expect(gc.stats().batchWritesHistogram).toEqual({ '1': 1, '2-3': 1 });
  });

  it('rejects every write of a failed batch and goes on with the next', async () => {
    const w = gatedWriter();
    const gc = new GroupCommitter(w.write);
    const a = gc.write(put('a'));
    await tick();
    const b = gc.write(put('b'));
    const c = gc.write(put('c'));
    w.gates[0]?.reject(new Error('disk on fire'));
    await expect(a).rejects.toThrow('disk on fire');
    await tick();
    w.gates[1]?.reject(new Error('still on fire'));
    await expect(b).rejects.toThrow('still on fire');
    await expect(c).rejects.toThrow('still on fire');
    const d = gc.write(put('d'));
    await tick();
    w.gates[2]?.resolve();
    await expect(d).resolves.toBeUndefined();
    expect(gc.stats().failedBatches).toBe(2);
  });

  it('keeps whole writes together and splits groups at maxBatchOps', async () => {
    const batches: number[] = [];
    const gc = new GroupCommitter(
      async (ops) => {
        batches.push(ops.length);
        await tick();
      },
      { maxBatchOps: 5 },
    );
    const three: BatchOp[] = [...put('1'), ...put('2'), ...put('3')];
    const big: BatchOp[] = Array.from({ length: 8 }, (_, i) => put(`b${i}`)[0] as BatchOp);
    await Promise.all([gc.write(put('x')), gc.write(three), gc.write(three), gc.write(big), gc.write(put('y'))]);
    // All five arrive in one tick: [x + 3] (another 3 would exceed 5), [3], [8] alone, [y]
    expect(batches).toEqual([4, 3, 8, 1]);
  });

  it('runs exclusive tasks between batches, in queue order', async () => {
    const order: string[] = [];
    const gc = new GroupCommitter(async (ops) => {
      order.push(`batch:${ops.map((o) => o.key).join(',')}`);
      await tick();
    });
    await Promise.all([
      gc.write(put('a')),
      gc.write(put('b')),
      gc.exclusive(async () => {
        order.push('task');
        await tick();
      }),
      gc.write(put('c')),
      gc.flush(),
    ]);
    expect(order).toEqual(['batch:a,b', 'task', 'batch:c']);
  });

  it('flush waits for queued writes and never rejects', async () => {
    const gc = new GroupCommitter(async () => {
      await tick();
      throw new Error('nope');
    });
    const write = gc.write(put('a'));
    write.catch(() => undefined);
    await expect(gc.flush()).resolves.toBeUndefined();
    await expect(write).rejects.toThrow('nope');
    expect(gc.pending).toBe(0);
  });
});
