/**
 * LevelJobStore: the JobStore on LevelDB (classic-level via `level`).
 *
 * Every write goes through one GroupCommitter, so writes are applied in the order they were
 * issued and each resolves only after the synced batch containing it has completed.
 *
 * Modes (only `setMode` changes them):
 * - new: constructed; `open()` -> open.
 * - open: reads and writes served.
 * - disk-full: a batch failed with ENOSPC. LevelDB keeps failing every later write once its log
 *   write failed (sticky background error, measured with classic-level 3 / LevelDB 1.20), so the
 *   next write after `diskFullRetryIntervalMs` first reopens the database, if the filesystem has
 *   room for LevelDB to replay its log (statfs); if that succeeds -> open and the write goes
 *   ahead, otherwise it is rejected with StoreUnavailableError (diskFull) and the mode stays.
 *   Writes in between are rejected at once. Reads are served (except after a failed reopen
 *   attempt, until a later one succeeds). `reopen()` forces a reopen at once.
 * - failed: a batch failed with another error (EIO, fsync failure, corruption). The state of the
 *   log is unknown, so writes are rejected at once with that error until `reopen()` succeeds
 *   (the daemon reports itself unhealthy; an operator or supervisor restarts it). Reads are served.
 * - closed: `close()` flushed the queued writes and closed the database. Final.
 */
import { HpcqError, StoreUnavailableError } from '../core/errors.js';
import { expandRedirectPath, type Job, type JobEvent, type JobSpec, type JobState } from '../core/job.js';
import type { JobFilter, JobPage, JobStore, JobTransition, QuarantinedRecord } from '../core/ports.js';
import { GroupCommitter, type GroupCommitStats } from './group-commit.js';
import {
  RecordDecodeError,
  decodeEvent,
  decodeIndexTag,
  decodeJob,
  decodeToken,
  type IndexTag,
  type TokenEntry,
} from './job-codec.js';
import { createJobOps, transitionOps, unindexJobOps, type BatchOp } from './job-ops.js';
import { jobUuidFor, newUuidKey } from './job-uuid.js';
import {
  JOB_PREFIX,
  LAYOUT_VERSION,
  META_LAST_ID_KEY,
  META_UUID_KEY,
  META_LAYOUT_KEY,
  END_INDEX_PREFIX,
  endIndexBefore,
  eventKey,
  eventPrefix,
  idFromIndexKey,
  idFromJobKey,
  jobKey,
  prefixRange,
  quarantineKey,
  sequenceFromEventKey,
  stateIndexPrefix,
  tokenKey,
  uuidKey,
} from './keys.js';
import { listJobsPage } from './list-jobs.js';
import { hasRoomToRecover, openLevel, type LevelTuning, type StringLevel } from './open-level.js';
import { StoreOpenError, corruptDatabase, readFailure, writeFailure } from './store-errors.js';
import { writeOps } from './write-ops.js';

/** What the store logs through: mode changes, quarantined records (a pino logger fits). */
export interface StoreLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const SILENT_LOG: StoreLog = { info() {}, warn() {}, error() {} };

export interface LevelJobStoreOptions extends LevelTuning {
  /** Directory of the LevelDB database; created only if missing or empty. */
  location: string;
  /** Where mode changes and quarantined records are logged. Default: nowhere. */
  log?: StoreLog;
  /** Most operations in one group-committed batch. Default 50_000 (see group-commit.ts). */
  maxBatchOps?: number;
  /**
   * Most index entries one listJobs call examines before returning a short page with
   * `nextBeforeId`. Default 10_000: a few milliseconds of index reading.
   */
  listScanLimit?: number;
  /** In disk-full mode, the least time between two reopen attempts. Default 1000 ms. */
  diskFullRetryIntervalMs?: number;
}

export type StoreMode = 'new' | 'open' | 'disk-full' | 'failed' | 'closed';

export interface StoreHealth {
  mode: StoreMode;
  /** The error that put the store in disk-full or failed mode. */
  lastWriteError?: StoreUnavailableError;
}

export interface StoreStats extends GroupCommitStats {
  /** Successful reopens (explicit or automatic after disk-full). */
  reopens: number;
}

const ALLOWED_MODES: Record<StoreMode, readonly StoreMode[]> = {
  new: ['open', 'closed'],
  open: ['disk-full', 'failed', 'open', 'closed'],
  'disk-full': ['open', 'disk-full', 'failed', 'closed'],
  failed: ['open', 'disk-full', 'failed', 'closed'],
  closed: [],
};

const ACTIVE_STATES: readonly JobState[] = ['PENDING', 'RUNNING'];
/** Records read per getMany while loading active jobs: bounds memory, few round trips. */
const LOAD_CHUNK = 1000;

/** The job a client token belongs to and the fingerprint of the request that created it. */
interface TokenOwner {
  job: Job;
  fingerprint: string;
}

export class LevelJobStore implements JobStore {
  private mode: StoreMode = 'new';
  private db: StringLevel | undefined;
  private reopening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private lastWriteError: StoreUnavailableError | undefined;
  private lastRecoveryAttemptMs = 0;
  private reopens = 0;
  private nextId = 1;
  private readonly inflightTokens = new Map<string, Promise<TokenOwner>>();
  /** Key of the id -> uuid permutation; per database, from `meta/uuid-key`. */
  private uuidKey = '';
  private readonly inProgress = new Set<Promise<unknown>>();
  private readonly committer: GroupCommitter;
  private readonly listScanLimit: number;
  private readonly diskFullRetryIntervalMs: number;
  private readonly log: StoreLog;

  constructor(private readonly options: LevelJobStoreOptions) {
    this.committer = new GroupCommitter((ops) => this.writeBatch(ops), {
      ...(options.maxBatchOps === undefined ? {} : { maxBatchOps: options.maxBatchOps }),
    });
    this.listScanLimit = options.listScanLimit ?? 10_000;
    this.diskFullRetryIntervalMs = options.diskFullRetryIntervalMs ?? 1000;
    this.log = options.log ?? SILENT_LOG;
  }

  get location(): string {
    return this.options.location;
  }

  /** Opens the database; throws StoreOpenError (locked, corrupt, not a database, disk full, I/O). */
  async open(): Promise<void> {
    if (this.mode !== 'new') throw new Error(`LevelJobStore.open() called in mode ${this.mode}`);
    this.db = await this.openDatabase();
    this.setMode('open');
  }

  /**
   * Closes and reopens the database, between batches (queued writes wait). Recovers from
   * disk-full and failed modes; throws StoreOpenError if the database cannot be opened again
   * (the mode is then unchanged and reads fail until a reopen succeeds).
   */
  reopen(): Promise<void> {
    this.assertNotClosed();
    return this.committer.exclusive(async () => {
      this.assertNotClosed();
      await this.reopenDatabase();
      this.setMode('open');
    });
  }

  /** Writes everything queued, then closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    // Calls already in progress finish first (their writes are queued and flushed below).
    while (this.inProgress.size > 0) await Promise.allSettled([...this.inProgress]);
    await this.committer.exclusive(async () => {
      await this.reopening?.catch(() => undefined);
      const db = this.db;
      this.db = undefined;
      this.setMode('closed');
      await db?.close();
    });
  }

  health(): StoreHealth {
    return { mode: this.mode, ...(this.lastWriteError === undefined ? {} : { lastWriteError: this.lastWriteError }) };
  }

  stats(): StoreStats {
    return { ...this.committer.stats(), reopens: this.reopens };
  }

  /**
   * JobStore.createJob, plus `admit`: called synchronously just before a new job is queued for
   * writing, and never when the client token already names a job (stored or in flight). Throwing
   * from it aborts the create with that error and stores nothing. It lets a caller put admission
   * checks (queue quotas) after the idempotency check, so a retry of a stored request is answered
   * even when the queue is full, and concurrent retries of one token are admitted once.
   */
  createJob(
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit?: () => void,
  ): Promise<{ job: Job; created: boolean }> {
    return this.track(true, () => this.createJobNow(spec, fingerprint, nowMs, reason, admit));
  }

  private async createJobNow(
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit: (() => void) | undefined,
  ): Promise<{ job: Job; created: boolean }> {
    if (spec.clientToken === '') return { job: await this.insertJob(spec, fingerprint, nowMs, reason, admit), created: true };
    const key = tokenKey(spec.runUser, spec.clientToken);
    for (;;) {
      const inflight = this.inflightTokens.get(key);
      if (inflight !== undefined) {
        let owner: TokenOwner;
        try {
          owner = await inflight;
        } catch {
          continue; // that attempt stored nothing: try again
        }
        if (owner.fingerprint !== fingerprint) throw tokenMismatch(spec.clientToken);
        return { job: owner.job, created: false };
      }
      // Claim the token before reading it, in the same synchronous step as the check above: a
      // concurrent caller either sees this claim or starts its read after our write completed.
      let settle!: { resolve: (owner: TokenOwner) => void; reject: (err: unknown) => void };
      const claim = new Promise<TokenOwner>((resolve, reject) => (settle = { resolve, reject }));
      claim.catch(() => undefined);
      this.inflightTokens.set(key, claim);
      try {
        const owner = await this.createOrFindByToken(key, spec, fingerprint, nowMs, reason, admit);
        settle.resolve(owner);
        if (owner.fingerprint !== fingerprint) throw tokenMismatch(spec.clientToken);
        return { job: owner.job, created: owner.created };
      } catch (err) {
        settle.reject(err);
        throw err;
      } finally {
        this.inflightTokens.delete(key);
      }
    }
  }

  private async createOrFindByToken(
    key: string,
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit: (() => void) | undefined,
  ): Promise<TokenOwner & { created: boolean }> {
    const stored = await this.readToken(key);
    if (stored === undefined) {
      return { job: await this.insertJob(spec, fingerprint, nowMs, reason, admit), fingerprint, created: true };
    }
    const job = await this.getJobNow(stored.id);
    if (job === undefined) {
      throw new HpcqError(
        'InternalError.DanglingClientToken',
        'internal',
        `client_token ${JSON.stringify(spec.clientToken)} refers to job ${stored.id}, whose record is not readable`,
        'client_token',
      );
    }
    return { job, fingerprint: stored.fingerprint, created: false };
  }

  saveTransitions(transitions: readonly JobTransition[]): Promise<void> {
    return this.track(true, async () => {
      if (transitions.length === 0) return;
      const ops: BatchOp[] = [];
      for (const t of transitions) for (const op of transitionOps(t)) ops.push(op);
      await this.committer.write(ops);
    });
  }

  getJob(id: number): Promise<Job | undefined> {
    return this.track(false, () => this.getJobNow(id));
  }

  private async getJobNow(id: number): Promise<Job | undefined> {
    if (!Number.isSafeInteger(id) || id < 0) return undefined;
    const raw: string | undefined = await this.read((db) => db.get(jobKey(id)));
    if (raw === undefined) return undefined;
    try {
      return decodeJob(raw, id);
    } catch (err) {
      throw corruptRecord(jobKey(id), err);
    }
  }

  getJobByUuid(uuid: string): Promise<Job | undefined> {
    return this.track(false, async () => {
      const id: string | undefined = await this.read((db) => db.get(uuidKey(uuid)));
      return id === undefined ? undefined : this.getJobNow(Number(id));
    });
  }

  listJobs(filter: JobFilter, pageSize: number, beforeId?: number): Promise<JobPage> {
    return this.track(false, async () => {
      const outcome = await this.read((db) => listJobsPage(db, filter, pageSize, beforeId, this.listScanLimit));
      return outcome.nextBeforeId === undefined ? { jobs: outcome.jobs } : { jobs: outcome.jobs, nextBeforeId: outcome.nextBeforeId };
    });
  }

  getEvents(jobId: number): Promise<JobEvent[]> {
    return this.track(false, async () => {
      if (!Number.isSafeInteger(jobId) || jobId < 0) return [];
      const entries = await this.read((db) => db.iterator(prefixRange(eventPrefix(jobId))).all());
      return entries.map(([key, raw]) => {
        try {
          return decodeEvent(raw, jobId, sequenceFromEventKey(key));
        } catch (err) {
          throw corruptRecord(key, err);
        }
      });
    });
  }

  loadActiveJobs(): Promise<{ jobs: Job[]; quarantined: QuarantinedRecord[] }> {
    return this.track(true, () => this.loadActiveJobsNow());
  }

  private async loadActiveJobsNow(): Promise<{ jobs: Job[]; quarantined: QuarantinedRecord[] }> {
    const jobs: Job[] = [];
    const quarantined: QuarantinedRecord[] = [];
    const ops: BatchOp[] = [];
    await this.read(async (db) => {
      const snapshot = db.snapshot();
      try {
        for (const state of ACTIVE_STATES) {
          const entries = await db.iterator({ ...prefixRange(stateIndexPrefix(state)), snapshot }).all();
          for (let start = 0; start < entries.length; start += LOAD_CHUNK) {
            const chunk = entries.slice(start, start + LOAD_CHUNK);
            const ids = chunk.map(([key]) => idFromIndexKey(key));
            const records: Array<string | undefined> = await db.getMany(ids.map(jobKey), { snapshot });
            for (let i = 0; i < chunk.length; i++) {
              const rawTag = (chunk[i] as [string, string])[1];
              const id = ids[i] as number;
              const raw = records[i];
              const key = jobKey(id);
              let error: string;
              if (raw === undefined) {
                error = `job ${id} is in the ${state} index but has no record; its index entries were removed`;
              } else {
                try {
                  const job = decodeJob(raw, id);
                  if (job.state === state) jobs.push(job);
                  continue;
                } catch (err) {
                  error = `${errorMessage(err)}; moved to ${quarantineKey(key)}`;
                  ops.push({ type: 'put', key: quarantineKey(key), value: raw });
                }
              }
              ops.push(...unindexJobOps(id, state, tagOrEmpty(rawTag)));
              // The job's events go along, so that nothing of it is left where purge cannot reach.
              const events = await db.iterator({ ...prefixRange(eventPrefix(id)), snapshot }).all();
              for (const [evKey, value] of events) {
                ops.push({ type: 'put', key: quarantineKey(evKey), value }, { type: 'del', key: evKey });
              }
              quarantined.push({ key, error });
            }
          }
        }
      } finally {
        await snapshot.close();
      }
    });
    if (ops.length > 0) {
      await this.committer.write(ops);
      for (const q of quarantined) this.log.warn({ location: this.location, ...q }, 'job store: record quarantined');
    }
    jobs.sort((a, b) => a.id - b.id);
    return { jobs, quarantined };
  }

  purgeFinishedBefore(cutoffMs: number, limit: number): Promise<number> {
    return this.track(true, () => this.purgeNow(cutoffMs, limit));
  }

  private async purgeNow(cutoffMs: number, limit: number): Promise<number> {
    if (!(limit >= 1)) return 0;
    const ops = await this.read(async (db) => {
      const snapshot = db.snapshot();
      try {
        const ends = await db
          .iterator({ gte: END_INDEX_PREFIX, lt: endIndexBefore(cutoffMs), limit: Math.floor(limit), snapshot })
          .all();
        const ids = ends.map(([key]) => idFromIndexKey(key));
        const records: Array<string | undefined> = ids.length === 0 ? [] : await db.getMany(ids.map(jobKey), { snapshot });
        const purge: BatchOp[] = [];
        for (let i = 0; i < ends.length; i++) {
          const [endKey, rawTag] = ends[i] as [string, string];
          const id = ids[i] as number;
          purge.push(...(await purgeOps(db, snapshot, id, endKey, rawTag, records[i])));
        }
        return { purge, count: ends.length };
      } finally {
        await snapshot.close();
      }
    });
    if (ops.count === 0) return 0;
    await this.committer.write(ops.purge);
    return ops.count;
  }

  // --- internals ---

  private setMode(next: StoreMode): void {
    if (!ALLOWED_MODES[this.mode].includes(next)) {
      throw new Error(`LevelJobStore: illegal mode change ${this.mode} -> ${next}`);
    }
    const previous = this.mode;
    this.mode = next;
    if (next === 'open') this.lastWriteError = undefined;
    if (previous === next) return;
    const fields = { location: this.location, from: previous, to: next };
    if (next === 'disk-full') this.log.error({ ...fields, err: this.lastWriteError }, 'job store: disk full, writes rejected');
    else if (next === 'failed') this.log.error({ ...fields, err: this.lastWriteError }, 'job store: write failed, writes rejected until reopened');
    else this.log.info(fields, `job store ${next}`);
  }

  private assertNotClosed(): void {
    if (this.closing !== undefined || this.mode === 'closed' || this.mode === 'new') {
      throw new StoreUnavailableError(`the job store (${this.location}) is not open`);
    }
  }

  /**
   * Runs a public operation: refused once close() was called (writes also in failed mode), and
   * tracked so that close() waits for it.
   */
  private track<T>(isWrite: boolean, run: () => Promise<T>): Promise<T> {
    try {
      this.assertNotClosed();
      if (isWrite) this.assertNotFailed();
    } catch (err) {
      return Promise.reject(err);
    }
    const op = run();
    this.inProgress.add(op);
    const forget = () => this.inProgress.delete(op);
    op.then(forget, forget);
    return op;
  }

  /** In failed mode writes are rejected at once with the error that caused it. */
  private assertNotFailed(): void {
    if (this.mode === 'failed' && this.lastWriteError !== undefined) throw this.lastWriteError;
  }

  /** The committer's writer: one synced batch, run only by the committer (one at a time). */
  private async writeBatch(ops: BatchOp[]): Promise<void> {
    if (this.mode === 'failed' && this.lastWriteError !== undefined) throw this.lastWriteError;
    if (this.mode === 'disk-full') await this.recoverFromDiskFull();
    const db = this.db;
    if (db === undefined || this.mode === 'closed') {
      throw new StoreUnavailableError(`the job store (${this.location}) is closed`);
    }
    try {
      await writeOps(db, ops, true);
    } catch (err) {
      const failure = writeFailure(err, this.location);
      this.lastWriteError = failure;
      this.lastRecoveryAttemptMs = Date.now();
      this.setMode(failure.code === 'ResourceInsufficient.DiskFull' ? 'disk-full' : 'failed');
      throw failure;
    }
  }

  private async recoverFromDiskFull(): Promise<void> {
    const failure = this.lastWriteError;
    if (failure !== undefined && Date.now() - this.lastRecoveryAttemptMs < this.diskFullRetryIntervalMs) throw failure;
    this.lastRecoveryAttemptMs = Date.now();
    if (failure !== undefined && this.db !== undefined && !(await hasRoomToRecover(this.location))) throw failure;
    try {
      await this.reopenDatabase();
    } catch (err) {
      throw writeFailure(err, this.location);
    }
    this.setMode('open');
  }

  private async openDatabase(): Promise<StringLevel> {
    const db = await openLevel(this.location, this.options);
    try {
      await this.loadMeta(db);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err instanceof StoreOpenError ? err : readFailure(err, this.location);
    }
    return db;
  }

  private async reopenDatabase(): Promise<void> {
    const old = this.db;
    this.db = undefined;
    const reopening = (async () => {
      await old?.close().catch(() => undefined);
      this.db = await this.openDatabase();
    })();
    this.reopening = reopening;
    try {
      await reopening;
      this.reopens += 1;
    } finally {
      this.reopening = undefined;
    }
  }

  /** Checks the layout version (writing it into a new database) and restores the id counter. */
  private async loadMeta(db: StringLevel): Promise<void> {
    const layout: string | undefined = await db.get(META_LAYOUT_KEY);
    if (layout === undefined) {
      const anyKey = await db.keys({ limit: 1 }).all();
      if (anyKey.length > 0) throw corruptDatabase(this.location, `it holds data but no ${META_LAYOUT_KEY} key`);
      await db.put(META_LAYOUT_KEY, String(LAYOUT_VERSION), { sync: true });
    } else if (layout !== String(LAYOUT_VERSION)) {
      throw new StoreOpenError(
        'InternalError.StoreLayoutUnsupported',
        `the job database in ${this.location} has layout version ${layout}; this hpcqd reads version ${LAYOUT_VERSION}. ` +
          'Run the hpcqd version that wrote it, or restore a backup made by this version.',
      );
    }
    let uuidKeyValue: string | undefined = await db.get(META_UUID_KEY);
    if (uuidKeyValue === undefined) {
      uuidKeyValue = newUuidKey();
      await db.put(META_UUID_KEY, uuidKeyValue, { sync: true });
    }
    this.uuidKey = uuidKeyValue;
    const storedCounter: string | undefined = await db.get(META_LAST_ID_KEY);
    const counter = Number(storedCounter ?? 0);
    const [highestKey] = await db.keys({ ...prefixRange(JOB_PREFIX), reverse: true, limit: 1 }).all();
    const highest = highestKey === undefined ? 0 : (idFromJobKey(highestKey) ?? 0);
    this.nextId = Math.max(this.nextId, (Number.isSafeInteger(counter) ? counter : 0) + 1, highest + 1);
  }

  /** Runs a read against the open database (waiting out a reopen); errors become StoreUnavailableError. */
  private async read<T>(fn: (db: StringLevel) => Promise<T>): Promise<T> {
    await this.reopening?.catch(() => undefined);
    const db = this.db;
    if (db === undefined) throw new StoreUnavailableError(`the job store (${this.location}) is not open`);
    try {
      return await fn(db);
    } catch (err) {
      if (err instanceof HpcqError) throw err;
      throw readFailure(err, this.location);
    }
  }

  private async readToken(key: string): Promise<TokenEntry | undefined> {
    const raw: string | undefined = await this.read((db) => db.get(key));
    if (raw === undefined) return undefined;
    try {
      return decodeToken(raw);
    } catch (err) {
      throw corruptRecord(key, err);
    }
  }

  private async insertJob(
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit: (() => void) | undefined,
  ): Promise<Job> {
    this.assertNotFailed();
    admit?.();
    // The id is taken in the same synchronous step as queueing the write, so queue order is id
    // order and the last `meta/last-id` put of every batch carries the batch's highest id.
    const id = this.nextId++;
    const uuid = jobUuidFor(id, this.uuidKey);
    const job: Job = {
      ...spec,
      resourceLimits: { ...spec.resourceLimits },
      id,
      uuid,
      state: 'PENDING',
      reason,
      exitCode: 0,
      termSignal: 0,
      submitTimeMs: nowMs,
      startTimeMs: 0,
      endTimeMs: 0,
      stdoutPath: expandRedirectPath(spec.stdoutPathTemplate, { id, name: spec.name, runUser: spec.runUser }),
      stderrPath: expandRedirectPath(spec.stderrPathTemplate, { id, name: spec.name, runUser: spec.runUser }),
      enforcement: '',
      limitHit: '',
      eventCount: 1,
    };
    const event: JobEvent = { jobId: id, sequence: 1, state: 'PENDING', reason, timeMs: nowMs };
    await this.committer.write(createJobOps(job, event, fingerprint, id));
    return job;
  }
}

function tokenMismatch(clientToken: string): HpcqError {
  return new HpcqError(
    'IdempotentParameterMismatch',
    'already_exists',
    `client_token ${JSON.stringify(clientToken)} was used with a different request`,
    'client_token',
  );
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function corruptRecord(key: string, err: unknown): HpcqError {
  return new HpcqError('InternalError.CorruptRecord', 'internal', `stored record ${key} cannot be decoded: ${errorMessage(err)}`, undefined, {
    cause: err,
  });
}

function tagOrEmpty(rawTag: string): IndexTag {
  try {
    return decodeIndexTag(rawTag);
  } catch {
    return { clusterId: '', hpcqueueId: '', runUser: '', uuid: '', clientToken: '' };
  }
}

const TERMINAL: readonly JobState[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL'];

/** Every key of a finished job: record, uuid, indexes, end-time entry, events and token. */
async function purgeOps(
  db: StringLevel,
  snapshot: ReturnType<StringLevel['snapshot']>,
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
  const tag = job ?? tagOrEmpty(rawTag);
  const ops: BatchOp[] = [{ type: 'del', key: endKey }];
  // Without a readable record the state is unknown: remove the entries of every terminal state.
  for (const state of job === undefined ? TERMINAL : [job.state]) ops.push(...unindexJobOps(id, state, tag));
  if (job !== undefined) {
    for (let seq = 1; seq <= job.eventCount; seq++) ops.push({ type: 'del', key: eventKey(id, seq) });
  } else {
    const keys = await db.keys({ ...prefixRange(eventPrefix(id)), snapshot }).all();
    for (const key of keys) ops.push({ type: 'del', key });
  }
  if (tag.clientToken !== '') ops.push({ type: 'del', key: tokenKey(tag.runUser, tag.clientToken) });
  return ops;
}
