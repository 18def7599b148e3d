/**
 * Encoding of the values the job store writes: compact JSON with a schema version `v`.
 * Decoding checks the version and the fields the store relies on and throws RecordDecodeError
 * otherwise, so a damaged record is reported (and quarantined) instead of loaded half-valid.
 */
import { JOB_STATES, copyJob, type Job, type JobEvent, type JobState } from '../core/job.js';

/** Schema version of job records, events and token entries. */
const RECORD_VERSION = 1;

/** A stored value that cannot be decoded; `message` says why. */
export class RecordDecodeError extends Error {
  override readonly name = 'RecordDecodeError';
}

const STATE_SET: ReadonlySet<string> = new Set(JOB_STATES);

export function parseObject(raw: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new RecordDecodeError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecordDecodeError(`${what} is not a JSON object`);
  }
  const obj = value as Record<string, unknown>;
  if (obj.v !== RECORD_VERSION) {
    throw new RecordDecodeError(`${what} has unsupported schema version ${JSON.stringify(obj.v)}`);
  }
  return obj;
}

function isState(value: unknown): value is JobState {
  return typeof value === 'string' && STATE_SET.has(value);
}

export function encodeJob(job: Job): string {
  // The version goes first by splicing, which is faster than stringifying a spread copy.
  return `{"v":${RECORD_VERSION},${JSON.stringify(job).slice(1)}`;
}

/** Decodes a job record; `expectedId` (from the key) must match the record's id. */
export function decodeJob(raw: string, expectedId?: number): Job {
  const obj = parseObject(raw, 'job record');
  if (!Number.isSafeInteger(obj.id) || (expectedId !== undefined && obj.id !== expectedId)) {
    throw new RecordDecodeError(`job record has id ${JSON.stringify(obj.id)}, expected ${expectedId}`);
  }
  if (!isState(obj.state)) throw new RecordDecodeError(`job record has unknown state ${JSON.stringify(obj.state)}`);
  for (const field of ['uuid', 'clusterId', 'hpcqueueId', 'runUser', 'clientToken', 'name'] as const) {
    if (typeof obj[field] !== 'string') throw new RecordDecodeError(`job record field ${field} is not a string`);
  }
  for (const field of ['eventCount', 'submitTimeMs', 'endTimeMs', 'uid', 'gid'] as const) {
    if (typeof obj[field] !== 'number') throw new RecordDecodeError(`job record field ${field} is not a number`);
  }
  // A copy, not `delete obj.v`: deleting a property turns the object into a slow dictionary.
  return copyJob(obj as unknown as Job);
}

/** Events are keyed by job id and sequence; the value holds the rest. */
export function encodeEvent(event: JobEvent): string {
  return JSON.stringify({ v: RECORD_VERSION, state: event.state, reason: event.reason, timeMs: event.timeMs });
}

export function decodeEvent(raw: string, jobId: number, sequence: number): JobEvent {
  const obj = parseObject(raw, `event ${sequence} of job ${jobId}`);
  if (!isState(obj.state) || typeof obj.reason !== 'string' || typeof obj.timeMs !== 'number') {
    throw new RecordDecodeError(`event ${sequence} of job ${jobId} is malformed`);
  }
  return { jobId, sequence, state: obj.state, reason: obj.reason, timeMs: obj.timeMs };
}

/** What a client token maps to. */
export interface TokenEntry {
  id: number;
  fingerprint: string;
}

export function encodeToken(entry: TokenEntry): string {
  return JSON.stringify({ v: RECORD_VERSION, id: entry.id, fp: entry.fingerprint });
}

export function decodeToken(raw: string): TokenEntry {
  const obj = parseObject(raw, 'client token entry');
  if (!Number.isSafeInteger(obj.id) || typeof obj.fp !== 'string') {
    throw new RecordDecodeError('client token entry is malformed');
  }
  return { id: obj.id as number, fingerprint: obj.fp };
}

/**
 * The value of every index entry: enough of the job to filter a listing by the other dimensions
 * and to remove all of the job's keys without reading its record (quarantine, purge).
 */
export interface IndexTag {
  clusterId: string;
  hpcqueueId: string;
  runUser: string;
  uuid: string;
  clientToken: string;
}

export function indexTagOf(job: Job): IndexTag {
  return {
    clusterId: job.clusterId,
    hpcqueueId: job.hpcqueueId,
    runUser: job.runUser,
    uuid: job.uuid,
    clientToken: job.clientToken,
  };
}

/** A positional array: index entries are many, so they stay small. */
export function encodeIndexTag(tag: IndexTag): string {
  return JSON.stringify([tag.clusterId, tag.hpcqueueId, tag.runUser, tag.uuid, tag.clientToken]);
}

export function decodeIndexTag(raw: string): IndexTag {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new RecordDecodeError('index entry is not valid JSON');
  }
  if (!Array.isArray(value) || value.length !== 5 || !value.every((x) => typeof x === 'string')) {
    throw new RecordDecodeError('index entry is malformed');
  }
  const [clusterId, hpcqueueId, runUser, uuid, clientToken] = value as string[];
  return {
    clusterId: clusterId ?? '',
    hpcqueueId: hpcqueueId ?? '',
    runUser: runUser ?? '',
    uuid: uuid ?? '',
    clientToken: clientToken ?? '',
  };
}

/** The tag of an index entry, or an empty one if it cannot be decoded (for clean-ups). */
export function indexTagOrEmpty(raw: string): IndexTag {
  try {
    return decodeIndexTag(raw);
  } catch {
    return { clusterId: '', hpcqueueId: '', runUser: '', uuid: '', clientToken: '' };
  }
}
