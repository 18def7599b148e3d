/**
 * The batch operations that create, change and delete a job: every key a job owns is written
 * and removed here, so the layout in keys.ts stays consistent across all writers (the store,
 * quarantine, purge and the benchmark's bulk generator).
 */
import { isTerminal, type Job, type JobEvent, type JobState } from '../core/job.js';
import type { JobTransition } from '../core/ports.js';
import { encodeEvent, encodeIndexTag, encodeJob, encodeToken, indexTagOf, type IndexTag } from './job-codec.js';
import {
  META_LAST_ID_KEY,
  endIndexKey,
  eventKey,
  indexKeys,
  jobKey,
  tokenKey,
  uuidKey,
} from './keys.js';

export type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

/** Every key of a new job: record, uuid, first event, indexes and client token (not the id counter). */
function newJobOps(job: Job, firstEvent: JobEvent, fingerprint: string): BatchOp[] {
  const tag = encodeIndexTag(indexTagOf(job));
  const ops: BatchOp[] = [
    { type: 'put', key: jobKey(job.id), value: encodeJob(job) },
    { type: 'put', key: uuidKey(job.uuid), value: String(job.id) },
    { type: 'put', key: eventKey(job.id, firstEvent.sequence), value: encodeEvent(firstEvent) },
  ];
  for (const key of indexKeys(job)) ops.push({ type: 'put', key, value: tag });
  if (isTerminal(job.state)) ops.push({ type: 'put', key: endIndexKey(job.endTimeMs, job.id), value: tag });
  if (job.clientToken !== '') {
    ops.push({ type: 'put', key: tokenKey(job.runUser, job.clientToken), value: encodeToken({ id: job.id, fingerprint }) });
  }
  return ops;
}

/**
 * Everything the store writes for a new job, with the id counter set to its id (the store takes
 * ids in queue order, so the last counter put of a batch carries the batch's highest id).
 */
export function createJobOps(job: Job, firstEvent: JobEvent, fingerprint: string): BatchOp[] {
  const ops = newJobOps(job, firstEvent, fingerprint);
  ops.push({ type: 'put', key: META_LAST_ID_KEY, value: String(job.id) });
  return ops;
}

/** Record update, index move and event append for one state change. */
export function transitionOps(t: JobTransition): BatchOp[] {
  const { job, previousState, event } = t;
  if (event.jobId !== job.id) {
    throw new Error(`transition event belongs to job ${event.jobId}, not job ${job.id}`);
  }
  const ops: BatchOp[] = [
    { type: 'put', key: jobKey(job.id), value: encodeJob(job) },
    { type: 'put', key: eventKey(job.id, event.sequence), value: encodeEvent(event) },
  ];
  const tag = encodeIndexTag(indexTagOf(job));
  if (previousState !== job.state) {
    const before = { id: job.id, state: previousState, clusterId: job.clusterId, hpcqueueId: job.hpcqueueId, runUser: job.runUser };
    for (const key of indexKeys(before)) ops.push({ type: 'del', key });
    for (const key of indexKeys(job)) ops.push({ type: 'put', key, value: tag });
  }
  if (isTerminal(job.state) && !isTerminal(previousState)) {
    ops.push({ type: 'put', key: endIndexKey(job.endTimeMs, job.id), value: tag });
  }
  return ops;
}

/**
 * Removes a job's record, uuid and state/dimension index entries, using only what the index tag
 * says (the record may be unreadable). Events, token and end-time entry are the caller's choice.
 */
export function unindexJobOps(id: number, state: JobState, tag: IndexTag): BatchOp[] {
  const ops: BatchOp[] = [
    { type: 'del', key: jobKey(id) },
    { type: 'del', key: uuidKey(tag.uuid) },
  ];
  for (const key of indexKeys({ id, state, ...tag })) ops.push({ type: 'del', key });
  return ops;
}

/**
 * Every key of a job with its whole event log, as if it had been created and moved through
 * `events` by this store (for bulk loading, e.g. benchmark data). Does not touch the id counter:
 * on open the store continues after the highest stored job id.
 */
export function importJobOps(job: Job, events: readonly JobEvent[], fingerprint: string): BatchOp[] {
  const [first, ...rest] = events;
  if (first === undefined) throw new Error(`job ${job.id} needs at least its first event`);
  const ops = newJobOps(job, first, fingerprint);
  for (const event of rest) ops.push({ type: 'put', key: eventKey(job.id, event.sequence), value: encodeEvent(event) });
  return ops;
}
