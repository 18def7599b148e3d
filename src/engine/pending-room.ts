/**
 * Room for new pending jobs: a queue's max_pending and a user's max_pending_per_user, counting the
 * submits being stored right now, so that concurrent submits cannot overshoot either cap. A
 * reservation is taken in the store's admit step (just before the write is queued; never for a
 * client_token repeat) and released once the write has settled, when the jobs themselves count.
 */
import type { QueueConfig } from '../config/daemon-config.js';
import { HpcqError } from '../core/errors.js';

/** The pending jobs there are now (stored and in memory). */
export interface PendingCounts {
  queuePending(hpcqueueId: string): number;
  /** A user's pending jobs in a queue; an array with instances still waiting counts once. */
  userPending(hpcqueueId: string, runUser: string): number;
}

export interface RoomRequest {
  queue: QueueConfig;
  runUser: string;
  /** Jobs against max_pending (an array: its instances). */
  jobs: number;
  /** Jobs against max_pending_per_user (an array: one). */
  userJobs: number;
}

export class PendingRoom {
  private readonly queueInFlight = new Map<string, number>();
  private readonly userInFlight = new Map<string, number>();

  constructor(private readonly counts: PendingCounts) {}

  /**
   * Reserves room for every request at once, or throws LimitExceeded.JobQuota (naming `field` for
   * the queue cap, run_user for the user cap) and reserves nothing. Returns the release.
   */
  reserve(requests: readonly RoomRequest[], field: string): () => void {
    const queues = new Map<string, { queue: QueueConfig; jobs: number }>();
    const users = new Map<string, { queue: QueueConfig; runUser: string; jobs: number }>();
    for (const r of requests) {
      const q = queues.get(r.queue.hpcqueueId) ?? { queue: r.queue, jobs: 0 };
      q.jobs += r.jobs;
      queues.set(r.queue.hpcqueueId, q);
      if (r.queue.maxPendingPerUser === 0) continue;
      const key = userKey(r.queue.hpcqueueId, r.runUser);
      const u = users.get(key) ?? { queue: r.queue, runUser: r.runUser, jobs: 0 };
      u.jobs += r.userJobs;
      users.set(key, u);
    }
    for (const [id, { queue, jobs }] of queues) {
      if (this.counts.queuePending(id) + (this.queueInFlight.get(id) ?? 0) + jobs > queue.maxPending) {
        throw new HpcqError('LimitExceeded.JobQuota', 'exhausted', `queue ${id} has no room for ${jobs} more pending job(s): it holds at most ${queue.maxPending} (max_pending)`, field);
      }
    }
    for (const [key, { queue, runUser, jobs }] of users) {
      const pending = this.counts.userPending(queue.hpcqueueId, runUser) + (this.userInFlight.get(key) ?? 0);
      if (pending + jobs > queue.maxPendingPerUser) {
        throw new HpcqError('LimitExceeded.JobQuota', 'exhausted', `${runUser} already has ${pending} pending jobs in queue ${queue.hpcqueueId} (max_pending_per_user ${queue.maxPendingPerUser})`, 'run_user');
      }
    }
    const add = (sign: 1 | -1) => {
      for (const [id, { jobs }] of queues) this.queueInFlight.set(id, (this.queueInFlight.get(id) ?? 0) + sign * jobs);
      for (const [key, { jobs }] of users) this.userInFlight.set(key, (this.userInFlight.get(key) ?? 0) + sign * jobs);
    };
    add(1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      add(-1);
    };
  }
}

function userKey(hpcqueueId: string, runUser: string): string {
  return `${hpcqueueId}\0${runUser}`;
}
