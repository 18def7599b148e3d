/**
 * Listing jobs newest first from the indexes, at a cost that depends on the page, not on history.
 *
 * Plan:
 * - no filter (or every state): a reverse scan of `job/` from `beforeId` — exactly one page read;
 * - otherwise one index is chosen: the per-dimension index of the most selective dimension given
 *   (runUser, then hpcqueueId, then clusterId: a user owns fewer jobs than a queue, a queue fewer
 *   than a cluster), else the state index. It is read as one reverse range per requested state,
 *   merged by descending id. Other dimensions are checked on the index entry's tag, so records
 *   are read only for the jobs on the page.
 * When several dimensions are combined, the chosen index may hold many entries that the others
 * reject. `scanLimit` bounds the entries examined per call: if it is reached the page is returned
 * short (even empty) with `nextBeforeId` set, and the caller continues from there.
 * Everything is read from one snapshot, so a page is consistent even while jobs change state.
 *
 * Finished jobs in a time window (listEndedJobsPage, for sacct-like history) are read from the
 * end-time index instead: one reverse range scan between the window's ends, the latest end first;
 * dimensions are checked on the entry's tag and the state on the record, under the same scanLimit.
 */
import { isTerminal, JOB_STATES, type Job, type JobState } from '../core/job.js';
import type { EndCursor, EndedJobPage, EndWindow, JobFilter, JobPage } from '../core/ports.js';
import { decodeIndexTag, decodeJob, type IndexTag } from './job-codec.js';
import {
  END_INDEX_PREFIX,
  JOB_PREFIX,
  dimensionIndexPrefix,
  endIndexBefore,
  endIndexKey,
  idFromIndexKey,
  idFromJobKey,
  idRange,
  jobKey,
  stateIndexPrefix,
  type IndexDimension,
} from './keys.js';
import type { Snapshot, StringLevel } from './open-level.js';

/** The part of a LevelDB entry iterator the cursor uses. */
interface EntryIterator {
  nextv(size: number): Promise<Array<[string, string]>>;
  close(): Promise<void>;
}

/** Largest chunk read from one index range at a time. */
const MAX_CHUNK = 1024;

const TAG_FIELD: Record<IndexDimension, keyof IndexTag> = { c: 'clusterId', q: 'hpcqueueId', u: 'runUser' };

/** Buffered reverse reader of one index range. */
class IndexCursor {
  private buffer: Array<[string, string]> = [];
  private position = 0;
  private ended = false;

  constructor(
    private readonly iterator: EntryIterator,
    private chunk: number,
  ) {}

  /** Makes `head()` valid; false once the range is exhausted. */
  async ready(): Promise<boolean> {
    if (this.position < this.buffer.length) return true;
    if (this.ended) return false;
    this.buffer = await this.iterator.nextv(this.chunk);
    this.position = 0;
    this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    if (this.buffer.length === 0) this.ended = true;
    return !this.ended;
  }

  head(): [string, string] | undefined {
    return this.buffer[this.position];
  }

  advance(): void {
    this.position += 1;
  }

  close(): Promise<void> {
    return this.iterator.close();
  }
}

function wantedStates(filter: JobFilter): JobState[] {
  if (filter.states === undefined || filter.states.length === 0) return [...JOB_STATES];
  return JOB_STATES.filter((s) => filter.states?.includes(s));
}

/** Dimension filters, most selective first. Empty strings mean "no filter". */
function dimensionFilters(filter: JobFilter): Array<[IndexDimension, string]> {
  const dims: Array<[IndexDimension, string]> = [];
  if (filter.runUser) dims.push(['u', filter.runUser]);
  if (filter.hpcqueueId) dims.push(['q', filter.hpcqueueId]);
  if (filter.clusterId) dims.push(['c', filter.clusterId]);
  return dims;
}

function matches(job: Job, states: readonly JobState[], dims: Array<[IndexDimension, string]>): boolean {
  return states.includes(job.state) && dims.every(([d, value]) => job[TAG_FIELD[d]] === value);
}

async function readPage(
  db: StringLevel,
  snapshot: Snapshot,
  ids: number[],
  states: readonly JobState[],
  dims: Array<[IndexDimension, string]>,
): Promise<Job[]> {
  const values: Array<string | undefined> = ids.length === 0 ? [] : await db.getMany(ids.map(jobKey), { snapshot });
  const jobs: Job[] = [];
  values.forEach((raw, i) => {
    if (raw === undefined) return; // missing or undecodable records are left out
    try {
      const job = decodeJob(raw, ids[i]!);
      if (matches(job, states, dims)) jobs.push(job);
    } catch {
      // left out
    }
  });
  return jobs;
}

async function scanPrimary(db: StringLevel, snapshot: Snapshot, pageSize: number, beforeId?: number): Promise<JobPage> {
  const entries = await db
    .iterator<string, string>({ ...idRange(JOB_PREFIX, beforeId), reverse: true, limit: pageSize + 1, snapshot })
    .all();
  const jobs: Job[] = [];
  for (const [key, raw] of entries.slice(0, pageSize)) {
    try {
      jobs.push(decodeJob(raw, idFromJobKey(key)));
    } catch {
      // an undecodable record is left out
    }
  }
  const last = entries[pageSize - 1];
  const nextBeforeId = entries.length > pageSize && last !== undefined ? idFromJobKey(last[0]) : undefined;
  return nextBeforeId === undefined ? { jobs } : { jobs, nextBeforeId };
}

async function scanIndexes(
  db: StringLevel,
  snapshot: Snapshot,
  states: readonly JobState[],
  dims: Array<[IndexDimension, string]>,
  pageSize: number,
  beforeId: number | undefined,
  scanLimit: number,
): Promise<JobPage> {
  const [lead, ...others] = dims;
  const prefixes = states.map((s) => (lead === undefined ? stateIndexPrefix(s) : dimensionIndexPrefix(lead[0], lead[1], s)));
  const firstChunk = Math.min(MAX_CHUNK, Math.max(8, Math.ceil((pageSize + 1) / prefixes.length)));
  const cursors = prefixes.map(
    (p) => new IndexCursor(db.iterator<string, string>({ ...idRange(p, beforeId), reverse: true, snapshot }), firstChunk),
  );
  const ids: number[] = [];
  let scanned = 0;
  let lastScannedId: number | undefined;
  let exhausted = false;
  try {
    while (ids.length <= pageSize) {
      if (scanned >= scanLimit) break;
      let best: IndexCursor | undefined;
      let bestId = -1;
      for (const cursor of cursors) {
        if (!(await cursor.ready())) continue;
        const id = idFromIndexKey((cursor.head() as [string, string])[0]);
        if (id > bestId) {
          best = cursor;
          bestId = id;
        }
      }
      if (best === undefined) {
        exhausted = true;
        break;
      }
      const [, rawTag] = best.head() as [string, string];
      best.advance();
      scanned += 1;
      lastScannedId = bestId;
      if (others.length > 0) {
        let tag: IndexTag;
        try {
          tag = decodeIndexTag(rawTag);
        } catch {
          ids.push(bestId); // let the record decide
          continue;
        }
        if (!others.every(([d, value]) => tag[TAG_FIELD[d]] === value)) continue;
      }
      ids.push(bestId);
    }
  } finally {
    await Promise.all(cursors.map((c) => c.close()));
  }
  let nextBeforeId: number | undefined;
  if (ids.length > pageSize) nextBeforeId = ids[pageSize - 1];
  else if (!exhausted) nextBeforeId = lastScannedId;
  const jobs = await readPage(db, snapshot, ids.slice(0, pageSize), states, dims);
  return nextBeforeId === undefined ? { jobs } : { jobs, nextBeforeId };
}

/**
 * One page of jobs matching `filter`, newest first, with ids below `beforeId` if given.
 * `scanLimit` bounds the index entries examined (raised to pageSize + 1 if lower).
 */
export async function listJobsPage(
  db: StringLevel,
  filter: JobFilter,
  pageSize: number,
  beforeId: number | undefined,
  scanLimit: number,
): Promise<JobPage> {
  const size = Math.max(1, Math.floor(Number.isFinite(pageSize) ? pageSize : 1));
  // ids below a fractional cursor are those below its ceiling; a cursor past every id is no cursor.
  const before =
    beforeId === undefined || !(beforeId <= Number.MAX_SAFE_INTEGER) ? undefined : Math.max(0, Math.ceil(beforeId));
  const states = wantedStates(filter);
  const dims = dimensionFilters(filter);
  const snapshot = db.snapshot();
  try {
    if (dims.length === 0 && states.length === JOB_STATES.length) {
      return await scanPrimary(db, snapshot, size, before);
    }
    return await scanIndexes(db, snapshot, states, dims, size, before, Math.max(scanLimit, size + 1));
  } finally {
    await snapshot.close();
  }
}

// ---- by end time --------------------------------------------------------------------------------

/** The end time in an end-time index key, `ix/e/<endTimeMs>/<id>` (see keys.ts endIndexKey). */
function endTimeOfIndexKey(key: string): number {
  return Number(key.slice(END_INDEX_PREFIX.length, key.indexOf('/', END_INDEX_PREFIX.length)));
}

/** Whether an index entry's tag passes the dimension filters; an undecodable tag lets the record decide. */
function tagPasses(rawTag: string, dims: Array<[IndexDimension, string]>): boolean {
  let tag: IndexTag;
  try {
    tag = decodeIndexTag(rawTag);
  } catch {
    return true;
  }
  return dims.every(([d, value]) => tag[TAG_FIELD[d]] === value);
}

/**
 * One page of finished jobs that ended in `window` and match `filter`, the latest end first,
 * continuing after `after` if given. `scanLimit` bounds the index entries examined (raised to
 * pageSize + 1 if lower): when it is reached the page comes back short with `next` set.
 */
export async function listEndedJobsPage(
  db: StringLevel,
  filter: JobFilter,
  window: EndWindow,
  pageSize: number,
  after: EndCursor | undefined,
  scanLimit: number,
): Promise<EndedJobPage> {
  const size = Math.max(1, Math.floor(Number.isFinite(pageSize) ? pageSize : 1));
  // Only finished jobs have an end time (and an entry in this index).
  const states = wantedStates(filter).filter(isTerminal);
  if (states.length === 0) return { jobs: [] };
  const dims = dimensionFilters(filter);
  const gte = window.fromMs === undefined ? END_INDEX_PREFIX : endIndexBefore(window.fromMs);
  let lt = window.toMs === undefined ? `${END_INDEX_PREFIX}~` : endIndexBefore(window.toMs);
  if (after !== undefined) {
    const from = endIndexKey(after.endTimeMs, after.id);
    if (from < lt) lt = from;
  }
  if (gte >= lt) return { jobs: [] };
  const limit = Math.max(scanLimit, size + 1);
  const snapshot = db.snapshot();
  const cursor = new IndexCursor(db.iterator<string, string>({ gte, lt, reverse: true, snapshot }), Math.min(MAX_CHUNK, size + 1));
  let jobs: Job[] = [];
  let scanned = 0;
  let lastScanned: EndCursor | undefined;
  let exhausted = false;
  try {
    while (jobs.length <= size && scanned < limit && !exhausted) {
      // Candidates from the index, then their records (which alone know the state), a chunk at a time.
      const ids: number[] = [];
      while (ids.length < size + 1 - jobs.length && scanned < limit) {
        if (!(await cursor.ready())) {
          exhausted = true;
          break;
        }
        const [key, rawTag] = cursor.head() as [string, string];
        cursor.advance();
        scanned += 1;
        lastScanned = { endTimeMs: endTimeOfIndexKey(key), id: idFromIndexKey(key) };
        if (dims.length === 0 || tagPasses(rawTag, dims)) ids.push(lastScanned.id);
      }
      jobs.push(...(await readPage(db, snapshot, ids, states, dims)));
    }
  } finally {
    await cursor.close();
    await snapshot.close();
  }
  if (jobs.length > size) {
    jobs = jobs.slice(0, size);
    const last = jobs[size - 1]!;
    return { jobs, next: { endTimeMs: last.endTimeMs, id: last.id } };
  }
  return exhausted || lastScanned === undefined ? { jobs } : { jobs, next: lastScanned };
}
