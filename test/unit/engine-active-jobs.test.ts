/** ActiveJobs keeps parked pending jobs (held, future, dependent) out of the dispatch order. */
import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/core/job.js';
import { ActiveJobs } from '../../src/engine/active-jobs.js';

const job = (id: number, extra: Partial<Job> = {}) => ({ id, hpcqueueId: 'q', priority: 0, state: 'PENDING', cores: 1, memoryLimitMb: 10, heldBy: '', ...extra }) as Job;
const order = (a: ActiveJobs) => [...(a.pendingByQueue.get('q') ?? [])].map((j) => j.id);

describe('ActiveJobs parking', () => {
  it('a parked job is counted and listed as pending but is not in the dispatch order; refresh moves it back in place', () => {
    const waiting = new Set<number>([2]);
    const active = new ActiveJobs((j) => j.heldBy !== '' || waiting.has(j.id));
    for (const j of [job(1), job(2), job(3, { heldBy: 'user' }), job(4)]) active.set(j);
    expect(order(active)).toEqual([1, 4]);
    expect(active.countsOf('q')).toEqual({ pending: 4, running: 0 });
    expect([...active.pending()].map((j) => j.id).sort()).toEqual([1, 2, 3, 4]);
    waiting.delete(2);
    active.refresh(2);
    expect(order(active)).toEqual([1, 2, 4]);
    // Released: back in id order; a job leaving PENDING leaves the parked set too.
    active.set(job(3));
    expect(order(active)).toEqual([1, 2, 3, 4]);
    active.set(job(5, { heldBy: 'admin' }));
    active.set(job(5, { heldBy: 'admin', state: 'CANCELLED' }));
    expect(active.countsOf('q')).toEqual({ pending: 4, running: 0 });
    expect([...active.pending()].map((j) => j.id)).not.toContain(5);
    active.set(job(1, { state: 'RUNNING' }));
    expect(order(active)).toEqual([2, 3, 4]);
    expect(active.used).toEqual({ cores: 1, memMb: 10 });
  });
});
