/**
 * The LevelDB key layout of the job store: the only place that spells keys.
 *
 * Keys are UTF-8 strings made of `/`-separated parts. Numbers are fixed-width decimal so that
 * lexicographic order is numeric order; free-text parts (cluster, queue, user, token) are
 * percent-encoded so they never contain `/` and a prefix always ends at a part boundary.
 *
 *   meta/layout                        layout version of this database ("1")
 *   meta/last-id                       highest job id ever allocated (decimal)
 *   meta/uuid-key                      key of the id -> uuid permutation (see job-uuid.ts)
 *   job/<id>                           the job record (job-codec.ts)
 *   uuid/<uuid>                        -> job id (decimal)
 *   tok/<runUser>/<clientToken>        -> { id, fingerprint } (idempotency)
 *   ev/<id>/<seq>                      one event of the job's log, seq 1-based
 *   ix/s/<state>/<id>                  state index (every job)
 *   ix/c/<clusterId>/<state>/<id>      per-cluster index
 *   ix/q/<hpcqueueId>/<state>/<id>     per-queue index
 *   ix/u/<runUser>/<state>/<id>        per-user index
 *   ix/e/<endTimeMs>/<id>              end-time index (terminal jobs only)
 *   quarantine/<original key>          a record that could not be decoded, moved aside as-is
 *   meta/last-schedule-id              highest schedule id ever allocated (decimal)
 *   sched/<id>                         a schedule (schedule-codec.ts)
 *   sched-ev/<id>/<seq>                one event of a schedule's history (the latest 1,000 kept)
 *   sched-tok/<owner>/<clientToken>    -> schedule id (idempotent CreateSchedule)
 *
 * Index values carry an IndexTag (job-codec.ts) so list filters and clean-ups can work from the
 * index alone, without the record.
 */
import type { JobState } from '../core/job.js';

/** Version of this layout; stored in `meta/layout` and checked on open. */
export const LAYOUT_VERSION = 1;

/** Width of ids and millisecond times in keys: Number.MAX_SAFE_INTEGER has 16 digits. */
const NUMBER_WIDTH = 16;
/** Width of event sequence numbers; a job has a handful of events. */
const SEQUENCE_WIDTH = 8;
/** Sorts after every digit, so `prefix + UPPER` bounds a range of fixed-width numbers. */
const UPPER = '~';

export const META_LAYOUT_KEY = 'meta/layout';
export const META_LAST_ID_KEY = 'meta/last-id';
/** Key of the job id -> uuid permutation (hex), created with the database. */
export const META_UUID_KEY = 'meta/uuid-key';
/** A queue's stored state (open is stored too, so a resumed queue stays resumed). */
export const QUEUE_STATE_PREFIX = 'meta/queue-state/';
export const JOB_PREFIX = 'job/';
const QUARANTINE_PREFIX = 'quarantine/';

/** The secondary dimensions a job is indexed by (besides state). */
export type IndexDimension = 'c' | 'q' | 'u';

export function encodeNumber(n: number, width = NUMBER_WIDTH): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n} in a key`);
  return String(n).padStart(width, '0');
}

/**
 * Percent-encodes a free-text key part. Lone UTF-16 surrogates (which encodeURIComponent rejects)
 * become `%uXXXX`, which encodeURIComponent never produces, so distinct texts keep distinct keys.
 */
function part(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return text.replace(/[\ud800-\udbff][\udc00-\udfff]|[\s\S]/g, (c) =>
      c.length === 1 && c >= '\ud800' && c <= '\udfff'
        ? `%u${c.charCodeAt(0).toString(16).toUpperCase()}`
        : encodeURIComponent(c),
    );
  }
}

export function jobKey(id: number): string {
  return JOB_PREFIX + encodeNumber(id);
}

/** The job id in a `job/<id>` key, or undefined if the key is not one. */
export function idFromJobKey(key: string): number | undefined {
  if (!key.startsWith(JOB_PREFIX)) return undefined;
  const rest = key.slice(JOB_PREFIX.length);
  return /^\d{16}$/.test(rest) ? Number(rest) : undefined;
}

export function uuidKey(uuid: string): string {
  return `uuid/${part(uuid)}`;
}

export function tokenKey(runUser: string, clientToken: string): string {
  return `tok/${part(runUser)}/${part(clientToken)}`;
}

export function eventPrefix(jobId: number): string {
  return `ev/${encodeNumber(jobId)}/`;
}

export function eventKey(jobId: number, sequence: number): string {
  return eventPrefix(jobId) + encodeNumber(sequence, SEQUENCE_WIDTH);
}

/** The sequence number in an event key. */
export function sequenceFromEventKey(key: string): number {
  return Number(key.slice(key.length - SEQUENCE_WIDTH));
}

export function stateIndexPrefix(state: JobState): string {
  return `ix/s/${state}/`;
}

export function dimensionIndexPrefix(dimension: IndexDimension, value: string, state: JobState): string {
  return `ix/${dimension}/${part(value)}/${state}/`;
}

/** Every index key ending in an id: the id is the last NUMBER_WIDTH characters. */
export function idFromIndexKey(key: string): number {
  return Number(key.slice(key.length - NUMBER_WIDTH));
}

export interface IndexedFields {
  id: number;
  state: JobState;
  clusterId: string;
  hpcqueueId: string;
  runUser: string;
}

/** The state and dimension index keys of a job in its state (not the end-time index). */
export function indexKeys(job: IndexedFields): string[] {
  const id = encodeNumber(job.id);
  return [
    stateIndexPrefix(job.state) + id,
    dimensionIndexPrefix('c', job.clusterId, job.state) + id,
    dimensionIndexPrefix('q', job.hpcqueueId, job.state) + id,
    dimensionIndexPrefix('u', job.runUser, job.state) + id,
  ];
}

export const END_INDEX_PREFIX = 'ix/e/';

export function endIndexKey(endTimeMs: number, id: number): string {
  return END_INDEX_PREFIX + encodeNumber(Math.max(0, Math.floor(endTimeMs))) + '/' + encodeNumber(id);
}

/** Upper bound (exclusive) of end-time index keys for jobs ending strictly before `cutoffMs`. */
export function endIndexBefore(cutoffMs: number): string {
  return END_INDEX_PREFIX + encodeNumber(Math.max(0, Math.floor(cutoffMs)));
}

/**
 * Range bounds for a reverse scan of fixed-width ids under `prefix`: ids below `beforeId` when
 * given, else all of them.
 */
export function idRange(prefix: string, beforeId?: number): { gte: string; lt: string } {
  return {
    gte: prefix,
    lt: beforeId === undefined ? prefix + UPPER : prefix + encodeNumber(Math.max(0, beforeId)),
  };
}

/** Range bounds covering every key that starts with `prefix` (for `/`-terminated prefixes). */
export function prefixRange(prefix: string): { gte: string; lt: string } {
  return { gte: prefix, lt: prefix + '\uffff' };
}

export function quarantineKey(originalKey: string): string {
  return QUARANTINE_PREFIX + originalKey;
}

export const META_LAST_SCHEDULE_ID_KEY = 'meta/last-schedule-id';
export const SCHEDULE_PREFIX = 'sched/';

export function scheduleKey(id: number): string {
  return SCHEDULE_PREFIX + encodeNumber(id);
}

/** The schedule id in a `sched/<id>` key, or undefined if the key is not one. */
export function idFromScheduleKey(key: string): number | undefined {
  const rest = key.startsWith(SCHEDULE_PREFIX) ? key.slice(SCHEDULE_PREFIX.length) : '';
  return /^\d{16}$/.test(rest) ? Number(rest) : undefined;
}

export function scheduleEventPrefix(id: number): string {
  return `sched-ev/${encodeNumber(id)}/`;
}

export function scheduleEventKey(id: number, sequence: number): string {
  return scheduleEventPrefix(id) + encodeNumber(sequence);
}

export function scheduleTokenKey(owner: string, clientToken: string): string {
  return `sched-tok/${part(owner)}/${part(clientToken)}`;
}
