/**
 * Planning the purge of finished jobs, oldest end time first, from the end-time index: every key
 * of each job (record, uuid, indexes, end-time entry, events, client token) is deleted, also for a
 * job whose record is missing or cannot be decoded (then its index tag says what to delete).
 * Reads only; the caller writes the ops.
 */
import { TERMINAL_STATES, type Job } from '../core/job.js';
import { RecordDecodeError, decodeJob, indexTagOrEmpty } from './job-codec.js';
import { unindexJobOps, type BatchOp } from './job-ops.js';
import { END_INDEX_PREFIX, endIndexBefore, eventKey, eventPrefix, idFromIndexKey, jobKey, prefixRange, tokenKey } from './keys.js';
import type { Snapshot, StringLevel } from './open-level.js';

/** The deletions for up to `limit` (an integer >= 1) jobs that ended before `cutoffMs`, and how many jobs. */
export async function planPurge(db: StringLevel, cutoffMs: number, limit: number): Promise<{ ops: BatchOp[]; count: number }> {
  const snapshot = db.snapshot();
  try {
    const ends = await db.iterator<string, string>({ gte: END_INDEX_PREFIX, lt: endIndexBefore(cutoffMs), limit, snapshot }).all();
    const ids = ends.map(([key]) => idFromIndexKey(key));
    const records: Array<string | undefined> = ids.length === 0 ? [] : await db.getMany(ids.map(jobKey), { snapshot });
    const ops: BatchOp[] = [];
    for (let i = 0; i < ends.length; i++) {
      const [endKey, rawTag] = ends[i]!;
      ops.push(...(await jobPurgeOps(db, snapshot, ids[i]!, endKey, rawTag, records[i])));
    }
    return { ops, count: ends.length };
  } finally {
    await snapshot.close();
  }
}

/** Every key of one finished job. */
async function jobPurgeOps(
  db: StringLevel,
  snapshot: Snapshot,
  id: number,
  endKey: string,
  rawTag: string,
  raw: string | undefined,
): Promise<BatchOp[]> {
  let job: Job | undefined;
  try {
    job = raw === undefined ? undefined : decodeJob(raw, id);
  } catch (err) {
    if (!(err instanceof RecordDecodeError)) throw err;
  }
  const tag = job ?? indexTagOrEmpty(rawTag);
  const ops: BatchOp[] = [{ type: 'del', key: endKey }];
  // Without a readable record the state is unknown: remove the entries of every terminal state.
  for (const state of job === undefined ? TERMINAL_STATES : [job.state]) ops.push(...unindexJobOps(id, state, tag));
  if (job !== undefined) {
    for (let seq = 1; seq <= job.eventCount; seq++) ops.push({ type: 'del', key: eventKey(id, seq) });
  } else {
    const keys = await db.keys({ ...prefixRange(eventPrefix(id)), snapshot }).all();
    for (const key of keys) ops.push({ type: 'del', key });
  }
  if (tag.clientToken !== '') ops.push({ type: 'del', key: tokenKey(tag.runUser, tag.clientToken) });
  return ops;
}
