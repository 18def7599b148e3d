import { describe, expect, it } from 'vitest';
import type { QueueConfig } from '../../src/config/daemon-config.js';
import { HpcqError } from '../../src/core/errors.js';
import { PendingRoom } from '../../src/engine/pending-room.js';

const queue = (over: Partial<QueueConfig> = {}) => ({ hpcqueueId: 'q', maxPending: 5, maxPendingPerUser: 0, ...over }) as QueueConfig;

function refusal(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return err instanceof HpcqError ? `${err.code}@${err.field}: ${err.message}` : String(err);
  }
}

describe('PendingRoom', () => {
  it('counts reservations in flight against max_pending until released', () => {
    const room = new PendingRoom({ queuePending: () => 2, userPending: () => 0 });
    const q = queue();
    const first = room.reserve([{ queue: q, runUser: 'a', jobs: 2, userJobs: 1 }], 'hpcqueue_id');
    expect(refusal(() => room.reserve([{ queue: q, runUser: 'a', jobs: 2, userJobs: 1 }], 'array.count'))).toBe(
      'LimitExceeded.JobQuota@array.count: queue q has no room for 2 more pending job(s): it holds at most 5 (max_pending)',
    );
    first();
    first(); // idempotent
    expect(refusal(() => room.reserve([{ queue: q, runUser: 'a', jobs: 3, userJobs: 1 }], 'x'))).toBe('ok');
  });

  it('a group is reserved whole: all of its queues and users, or nothing', () => {
    const room = new PendingRoom({ queuePending: () => 0, userPending: () => 1 });
    const capped = queue({ hpcqueueId: 'c', maxPendingPerUser: 2 });
    const group = [
      { queue: queue(), runUser: 'a', jobs: 3, userJobs: 1 },
      { queue: capped, runUser: 'a', jobs: 1, userJobs: 1 },
      { queue: capped, runUser: 'a', jobs: 1, userJobs: 1 },
    ];
    expect(refusal(() => room.reserve(group, 'tasks'))).toBe('LimitExceeded.JobQuota@run_user: a already has 1 pending jobs in queue c (max_pending_per_user 2)');
    // Nothing was reserved by the refused group: a job that fits still does.
    expect(refusal(() => room.reserve([{ queue: queue(), runUser: 'a', jobs: 5, userJobs: 1 }], 'x'))).toBe('ok');
  });

  it('max_pending_per_user counts one user, in flight too; other users are not affected', () => {
    const room = new PendingRoom({ queuePending: () => 0, userPending: (_q, user) => (user === 'a' ? 1 : 0) });
    const q = queue({ maxPendingPerUser: 2 });
    room.reserve([{ queue: q, runUser: 'a', jobs: 1, userJobs: 1 }], 'x');
    expect(refusal(() => room.reserve([{ queue: q, runUser: 'a', jobs: 1, userJobs: 1 }], 'x'))).toMatch(/^LimitExceeded.JobQuota@run_user: a already has 2 pending jobs/);
    expect(refusal(() => room.reserve([{ queue: q, runUser: 'b', jobs: 1, userJobs: 1 }], 'x'))).toBe('ok');
  });
});
