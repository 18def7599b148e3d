/**
 * Reading the active (PENDING and RUNNING) jobs at start-up from the state index, so finished jobs
 * are never scanned. A record that is missing or cannot be decoded is not loaded: its index
 * entries are removed and the record and its events are moved under `quarantine/`, so nothing of
 * it is left where listing or purge would trip over it. Reads only; the caller writes the ops.
 */
import type { Job, JobState } from '../core/job.js';
import type { QuarantinedRecord } from '../core/ports.js';
import { decodeJob, indexTagOrEmpty } from './job-codec.js';
import { unindexJobOps, type BatchOp } from './job-ops.js';
import { eventPrefix, idFromIndexKey, jobKey, prefixRange, quarantineKey, stateIndexPrefix } from './keys.js';
import type { Snapshot, StringLevel } from './open-level.js';
import { innermostMessage } from './store-errors.js';

const ACTIVE_STATES: readonly JobState[] = ['PENDING', 'RUNNING'];
/** Index entries (and records, in one getMany) read at a time: bounds memory, few round trips. */
const LOAD_CHUNK = 1000;

export interface ActiveJobsRead {
  /** Oldest first. */
  jobs: Job[];
  quarantined: QuarantinedRecord[];
  /** The writes that quarantine them. */
  ops: BatchOp[];
}

export async function readActiveJobs(db: StringLevel): Promise<ActiveJobsRead> {
  const read: ActiveJobsRead = { jobs: [], quarantined: [], ops: [] };
  const snapshot = db.snapshot();
  try {
    for (const state of ACTIVE_STATES) {
      const index = db.iterator<string, string>({ ...prefixRange(stateIndexPrefix(state)), snapshot });
      try {
        for (let chunk = await index.nextv(LOAD_CHUNK); chunk.length > 0; chunk = await index.nextv(LOAD_CHUNK)) {
          const ids = chunk.map(([key]) => idFromIndexKey(key));
          const records: Array<string | undefined> = await db.getMany(ids.map(jobKey), { snapshot });
          for (let i = 0; i < chunk.length; i++) {
            await readEntry(db, snapshot, state, ids[i]!, chunk[i]![1], records[i], read);
          }
        }
      } finally {
        await index.close();
      }
    }
  } finally {
    await snapshot.close();
  }
  read.jobs.sort((a, b) => a.id - b.id);
  return read;
}

/** One entry of the `state` index: its job is loaded, or quarantined. */
async function readEntry(
  db: StringLevel,
  snapshot: Snapshot,
  state: JobState,
  id: number,
  rawTag: string,
  raw: string | undefined,
  read: ActiveJobsRead,
): Promise<void> {
  const key = jobKey(id);
  let error: string;
  if (raw === undefined) {
    error = `job ${id} is in the ${state} index but has no record; its index entries were removed`;
  } else {
    try {
      const job = decodeJob(raw, id);
      if (job.state === state) read.jobs.push(job);
      return;
    } catch (err) {
      error = `${innermostMessage(err)}; moved to ${quarantineKey(key)}`;
      read.ops.push({ type: 'put', key: quarantineKey(key), value: raw });
    }
  }
  read.ops.push(...unindexJobOps(id, state, indexTagOrEmpty(rawTag)));
  // The job's events go along, so that nothing of it is left where purge cannot reach.
  const events = await db.iterator<string, string>({ ...prefixRange(eventPrefix(id)), snapshot }).all();
  for (const [eventKey, value] of events) {
    read.ops.push({ type: 'put', key: quarantineKey(eventKey), value }, { type: 'del', key: eventKey });
  }
  read.quarantined.push({ key, error });
}
