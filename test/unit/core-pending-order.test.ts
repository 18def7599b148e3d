// PendingOrder: pending jobs per queue in (job priority desc, id asc) order, kept incrementally.
// How planDispatch merges the queues (equal queue priorities interleave) is in core-scheduler.test.ts.
import { describe, expect, it } from 'vitest';
import { PendingOrder, type OrderedJob } from '../../src/core/pending-order.js';

interface TestJob extends OrderedJob {
  reason: string;
}

function job(id: number, priority = 0, hpcqueueId = 'q', reason = 'Priority'): TestJob {
  return { id, hpcqueueId, priority, reason };
}

/** Each queue's job ids in iteration order. */
function ids(order: PendingOrder<TestJob>): Record<string, number[]> {
  return Object.fromEntries([...order.byQueue].map(([q, jobs]) => [q, [...jobs].map((j) => j.id)]));
}

function orderOf(jobs: readonly TestJob[]): PendingOrder<TestJob> {
  const order = new PendingOrder<TestJob>();
  for (const j of jobs) order.set(j);
  return order;
}

describe('PendingOrder', () => {
  it('orders each queue by job priority (high first), then id', () => {
    const order = orderOf([job(1, 0), job(2, 5), job(3, 0, 'other'), job(4, -1), job(5, 5), job(6, 0), job(7, 2, 'other')]);
    expect(ids(order)).toEqual({ q: [2, 5, 1, 6, 4], other: [7, 3] });
    expect(order.size).toBe(7);
    expect(order.byQueue.get('q')!.size).toBe(5);
  });

  it('removes jobs, and forgets a queue once it has none', () => {
    const order = orderOf([job(1, 0), job(2, 5), job(3, 0), job(4, 0, 'other')]);
    expect(order.delete(job(2, 5))).toBe(true);
    expect(order.delete(job(1))).toBe(true);
    expect(ids(order)).toEqual({ q: [3], other: [4] });
    expect(order.delete(job(4, 0, 'other'))).toBe(true);
    expect(ids(order)).toEqual({ q: [3] });
    expect(order.size).toBe(1);
  });

  it('ignores the removal of a job it does not hold', () => {
    const order = orderOf([job(1)]);
    expect(order.delete(job(2))).toBe(false);
    expect(order.delete(job(1, 3))).toBe(false);
    expect(order.delete(job(1, 0, 'other'))).toBe(false);
    expect(ids(order)).toEqual({ q: [1] });
  });

  it('replacing a job (a new reason) keeps its place', () => {
    const order = orderOf([job(1), job(2), job(3)]);
    order.set(job(1, 0, 'q', 'Resources'));
    expect(ids(order)).toEqual({ q: [1, 2, 3] });
    expect([...order.byQueue.get('q')!][0]!.reason).toBe('Resources');
    expect(order.size).toBe(3);
  });

  it('a job put back with an older id (a failed RUNNING write) lands in id order', () => {
    const order = orderOf([job(1), job(2), job(3), job(4), job(5, 1)]);
    order.delete(job(1));
    order.delete(job(3));
    order.set(job(6));
    order.set(job(3));
    order.set(job(1));
    expect(ids(order)).toEqual({ q: [5, 1, 2, 3, 4, 6] });
    // Later jobs still go after them, and a second reading gives the same order.
    order.set(job(7));
    expect(ids(order)).toEqual({ q: [5, 1, 2, 3, 4, 6, 7] });
    expect(ids(order)).toEqual({ q: [5, 1, 2, 3, 4, 6, 7] });
  });

  it('jobs added out of id order come out in id order', () => {
    const order = orderOf([job(9), job(3, 1), job(4), job(1), job(7, 1), job(2)]);
    expect(ids(order)).toEqual({ q: [3, 7, 1, 2, 4, 9] });
  });

  it('a priority emptied and used again is visited in its place', () => {
    const order = orderOf([job(1, 3), job(2, 1), job(3, 2)]);
    order.delete(job(3, 2));
    order.set(job(4, 2));
    order.set(job(5, 4));
    expect(ids(order)).toEqual({ q: [5, 1, 4, 2] });
  });

  it('keeps order over many adds and removes (against a sort of what is held)', () => {
    const order = new PendingOrder<TestJob>();
    const held = new Map<number, TestJob>();
    let nextId = 1;
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let step = 0; step < 5000; step++) {
      const r = rand();
      if (r < 0.6 || held.size === 0) {
        const j = job(nextId++, Math.floor(rand() * 4), rand() < 0.5 ? 'a' : 'b');
        order.set(j);
        held.set(j.id, j);
      } else {
        const victim = [...held.values()][Math.floor(rand() * held.size)]!;
        order.delete(victim);
        held.delete(victim.id);
        // Sometimes it comes back (a reverted start), with its old id.
        if (rand() < 0.3) {
          order.set(victim);
          held.set(victim.id, victim);
        }
      }
    }
    const expected: Record<string, number[]> = {};
    for (const j of [...held.values()].sort((x, y) => y.priority - x.priority || x.id - y.id)) (expected[j.hpcqueueId] ??= []).push(j.id);
    expect(ids(order)).toEqual(expected);
    expect(order.size).toBe(held.size);
  });
});
