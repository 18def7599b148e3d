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
 *   log is unknown, so writes are rejected at once with that error until `reopen()` succeeds or
 *   the daemon is restarted (the daemon reports NOT_SERVING meanwhile). Reads are served.
 * - closed: `close()` flushed the queued writes and closed the database. Final.
 */
import { HpcqError, StoreUnavailableError } from '../core/errors.js';
import { newPendingJob, type Job, type JobEvent, type JobSpec } from '../core/job.js';
import type { EndCursor, EndedJobPage, EndWindow, JobFilter, JobPage, JobStore, JobTransition, QuarantinedRecord, QueueState, ScheduleStore, ScheduleWrite } from '../core/ports.js';
import type { Schedule, ScheduleEvent } from '../core/schedule.js';
import { ClientTokens } from './client-tokens.js';
import { GroupCommitter, type GroupCommitStats } from './group-commit.js';
import { decodeEvent, decodeJob, decodeToken } from './job-codec.js';
import { createJobOps, transitionOps, type BatchOp } from './job-ops.js';
import { resolveBatchSpec } from '../core/batch.js';
import { jobUuidFor, newUuidKey } from './job-uuid.js';
import {
  JOB_PREFIX,
  LAYOUT_VERSION,
  META_LAST_ID_KEY,
  META_UUID_KEY,
  QUEUE_STATE_PREFIX,
  META_LAYOUT_KEY,
  META_LAST_SCHEDULE_ID_KEY,
  SCHEDULE_PREFIX,
  eventPrefix,
  idFromScheduleKey,
  scheduleEventPrefix,
  scheduleKey,
  scheduleTokenKey,
  tokenKey,
  idFromJobKey,
  jobKey,
  prefixRange,
  sequenceFromEventKey,
  uuidKey,
} from './keys.js';
import { listEndedJobsPage, listJobsPage } from './list-jobs.js';
import { readActiveJobs } from './load-active.js';
import { hasRoomToRecover, openLevel, type LevelTuning, type StringLevel } from './open-level.js';
import { planPurge } from './purge.js';
import { StoreOpenError, corruptDatabase, corruptRecord, readFailure, writeFailure } from './store-errors.js';
import { writeOps } from './write-ops.js';
import { decodeSchedule, decodeScheduleEvent, decodeScheduleToken, ownerKeyOf, scheduleWriteOps } from './schedule-records.js';

/**
 * What the store logs through: mode changes (a pino logger fits). Quarantined records are not
 * logged here: loadActiveJobs returns them for its caller to report.
 */
export interface StoreLog {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const SILENT_LOG: StoreLog = { info() {}, error() {} };

export interface LevelJobStoreOptions extends LevelTuning {
  /** Directory of the LevelDB database; created only if missing or empty. */
  location: string;
  /** Where mode changes are logged. Default: nowhere. */
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
  /** Called after every change of mode (the daemon turns it into its health status). */
  onModeChange?: (mode: StoreMode) => void;
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

export class LevelJobStore implements JobStore, ScheduleStore {
  private mode: StoreMode = 'new';
  private db: StringLevel | undefined;
  private reopening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private lastWriteError: StoreUnavailableError | undefined;
  private lastRecoveryAttemptMs = 0;
  private reopens = 0;
  private nextId = 1;
  /** Key of the id -> uuid permutation; per database, from `meta/uuid-key`. */
  private uuidKey = '';
  private readonly inProgress = new Set<Promise<unknown>>();
  private readonly committer: GroupCommitter;
  private readonly tokens: ClientTokens;
  private readonly listScanLimit: number;
  /** In disk-full mode, the least time between two reopen attempts (options). */
  readonly diskFullRetryIntervalMs: number;
  private readonly log: StoreLog;

  constructor(private readonly options: LevelJobStoreOptions) {
    this.committer = new GroupCommitter((ops) => this.writeBatch(ops), {
      ...(options.maxBatchOps === undefined ? {} : { maxBatchOps: options.maxBatchOps }),
    });
    this.listScanLimit = options.listScanLimit ?? 10_000;
    this.diskFullRetryIntervalMs = options.diskFullRetryIntervalMs ?? 1000;
    this.log = options.log ?? SILENT_LOG;
    this.tokens = new ClientTokens({ get: (key) => this.read((db) => db.get(key)), getJob: (id) => this.getJobNow(id) });
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
    // Reopens run inside the committer too, so none is in progress here.
    await this.committer.exclusive(async () => {
      const db = this.db;
      this.db = undefined;
      this.setMode('closed');
      await db?.close();
    });
  }

  /**
   * In disk-full mode, does now what the next write would do: reopens the database if the
   * filesystem has room again. Resolves with whether the store is open afterwards, so the daemon
   * can report itself healthy again without waiting for a client's write. Never throws.
   */
  recoverIfDiskFull(): Promise<boolean> {
    if (this.mode !== 'disk-full') return Promise.resolve(this.mode === 'open');
    return this.committer
      .exclusive(async () => {
        if (this.mode === 'disk-full') await this.recoverFromDiskFull();
        return this.mode === 'open';
      })
      .catch(() => false);
  }

  health(): StoreHealth {
    return { mode: this.mode, ...(this.lastWriteError === undefined ? {} : { lastWriteError: this.lastWriteError }) };
  }

  stats(): StoreStats {
    return { ...this.committer.stats(), reopens: this.reopens };
  }

  /** JobStore.createJob: client tokens in client-tokens.ts; `admit` runs in insertJob. */
  createJob(
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit?: () => void,
    attach?: (job: Job) => ScheduleWrite,
  ): Promise<{ job: Job; created: boolean }> {
    return this.track(true, async () => {
      const insert = () => this.insertJob(spec, fingerprint, nowMs, reason, admit, attach);
      if (spec.clientToken === '') return { job: await insert(), created: true };
      return this.tokens.createOnce(spec, fingerprint, insert);
    });
  }

  /** JobStore.createJobs: one synced batch for the whole group. */
  createJobs(
    specs: readonly JobSpec[],
    group: { name: string } | undefined,
    fingerprint: string,
    nowMs: number,
    reasons: readonly string[],
    admit?: () => void,
    attach?: (first: Job) => ScheduleWrite,
  ): Promise<{ first: Job; jobs?: Job[]; created: boolean }> {
    return this.track(true, async () => {
      let jobs: Job[] | undefined;
      const insert = async () => (jobs = await this.insertJobs(specs, group, fingerprint, nowMs, reasons, admit, attach))[0]!;
      if (specs[0]!.clientToken === '') return { first: await insert(), jobs: jobs!, created: true };
      const { job, created } = await this.tokens.createOnce(specs[0]!, fingerprint, insert);
      return created ? { first: job, jobs: jobs!, created } : { first: job, created };
    });
  }

  saveQueueState(hpcqueueId: string, state: QueueState): Promise<void> {
    return this.track(true, () => this.committer.write([{ type: 'put', key: QUEUE_STATE_PREFIX + hpcqueueId, value: state }]));
  }

  loadQueueStates(): Promise<Map<string, QueueState>> {
    return this.track(false, async () => {
      const entries = await this.read((db) => db.iterator(prefixRange(QUEUE_STATE_PREFIX)).all());
      const states = new Map<string, QueueState>();
      for (const [key, value] of entries) {
        if (value === 'open' || value === 'draining' || value === 'stopped') states.set(key.slice(QUEUE_STATE_PREFIX.length), value);
      }
      return states;
    });
  }

  // ---- schedules (ScheduleStore) ----

  loadSchedules(): Promise<{ schedules: Schedule[]; lastId: number }> {
    return this.track(false, async () => {
      const entries = await this.read((db) => db.iterator(prefixRange(SCHEDULE_PREFIX)).all());
      const schedules: Schedule[] = [];
      for (const [key, raw] of entries) {
        const id = idFromScheduleKey(key);
        if (id === undefined) continue;
        try {
          schedules.push(decodeSchedule(raw, id));
        } catch (err) {
          throw corruptRecord(key, err);
        }
      }
      const counter = Number((await this.read((db) => db.get(META_LAST_SCHEDULE_ID_KEY))) ?? 0);
      return { schedules, lastId: Math.max(Number.isSafeInteger(counter) ? counter : 0, ...schedules.map((s) => s.id)) };
    });
  }

  saveSchedule(write: ScheduleWrite): Promise<void> {
    return this.track(true, () => this.committer.write(scheduleWriteOps(write)));
  }

  deleteSchedule(schedule: Schedule): Promise<void> {
    return this.track(true, async () => {
      const eventKeys = await this.read((db) => db.keys(prefixRange(scheduleEventPrefix(schedule.id))).all());
      const ops: BatchOp[] = [{ type: 'del', key: scheduleKey(schedule.id) }, ...eventKeys.map((key) => ({ type: 'del' as const, key }))];
      if (schedule.clientToken !== '') ops.push({ type: 'del', key: scheduleTokenKey(ownerKeyOf(schedule), schedule.clientToken) });
      await this.committer.write(ops);
    });
  }

  getScheduleEvents(id: number, limit: number): Promise<ScheduleEvent[]> {
    return this.track(false, async () => {
      if (limit <= 0) return [];
      const prefix = scheduleEventPrefix(id);
      const entries = await this.read((db) => db.iterator({ ...prefixRange(prefix), reverse: true, limit }).all());
      return entries.reverse().map(([key, raw]) => {
        try {
          return decodeScheduleEvent(raw, id, Number(key.slice(prefix.length)));
        } catch (err) {
          throw corruptRecord(key, err);
        }
      });
    });
  }

  findScheduleToken(schedule: Pick<Schedule, 'owner'>, clientToken: string): Promise<{ id: number; fingerprint: string } | undefined> {
    return this.track(false, async () => {
      const key = scheduleTokenKey(ownerKeyOf(schedule), clientToken);
      const raw: string | undefined = await this.read((db) => db.get(key));
      if (raw === undefined) return undefined;
      try {
        return decodeScheduleToken(raw);
      } catch (err) {
        throw corruptRecord(key, err);
      }
    });
  }

  findJobByClientToken(runUser: string, clientToken: string): Promise<Job | undefined> {
    return this.track(false, async () => {
      const raw: string | undefined = await this.read((db) => db.get(tokenKey(runUser, clientToken)));
      if (raw === undefined) return undefined;
      try {
        return await this.getJobNow(decodeToken(raw).id);
      } catch (err) {
        throw err instanceof HpcqError ? err : corruptRecord(tokenKey(runUser, clientToken), err);
      }
    });
  }

  saveTransitions(transitions: readonly JobTransition[]): Promise<void> {
    return this.track(true, async () => {
      if (transitions.length > 0) await this.committer.write(transitions.flatMap(transitionOps));
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
    return this.track(false, () => this.read((db) => listJobsPage(db, filter, pageSize, beforeId, this.listScanLimit)));
  }

  listEndedJobs(filter: JobFilter, window: EndWindow, pageSize: number, after?: EndCursor): Promise<EndedJobPage> {
    return this.track(false, () => this.read((db) => listEndedJobsPage(db, filter, window, pageSize, after, this.listScanLimit)));
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

  /** A write: undecodable records are quarantined (load-active.ts). */
  loadActiveJobs(): Promise<{ jobs: Job[]; quarantined: QuarantinedRecord[] }> {
    return this.track(true, async () => {
      const { jobs, quarantined, ops } = await this.read(readActiveJobs);
      if (ops.length > 0) await this.committer.write(ops);
      return { jobs, quarantined };
    });
  }

  purgeFinishedBefore(cutoffMs: number, limit: number): Promise<number> {
    return this.track(true, async () => {
      if (!(limit >= 1)) return 0;
      const { ops, count } = await this.read((db) => planPurge(db, cutoffMs, Math.floor(limit)));
      if (count > 0) await this.committer.write(ops);
      return count;
    });
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
    this.options.onModeChange?.(next);
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
    this.assertNotFailed();
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

  private async insertJobs(
    specs: readonly JobSpec[],
    group: { name: string } | undefined,
    fingerprint: string,
    nowMs: number,
    reasons: readonly string[],
    admit: (() => void) | undefined,
    attach: ((first: Job) => ScheduleWrite) | undefined,
  ): Promise<Job[]> {
    this.assertNotFailed();
    admit?.();
    // Consecutive ids, taken in the same synchronous step as queueing the write (see insertJob).
    const first = this.nextId;
    this.nextId += specs.length;
    const jobs = specs.map((spec, i) => {
      const id = first + i;
      return newPendingJob(resolveBatchSpec(spec, first, specs.length, group), { id, uuid: jobUuidFor(id, this.uuidKey), reason: reasons[i]!, submitTimeMs: nowMs });
    });
    const ops = jobs.flatMap((job, i) =>
      createJobOps(job, { jobId: job.id, sequence: 1, state: 'PENDING', reason: reasons[i]!, timeMs: nowMs }, i === 0 ? fingerprint : ''),
    );
    if (attach) ops.push(...scheduleWriteOps(attach(jobs[0]!)));
    await this.committer.write(ops);
    return jobs;
  }

  private async insertJob(
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit: (() => void) | undefined,
    attach?: (job: Job) => ScheduleWrite,
  ): Promise<Job> {
    // The mode may have changed while a client token was read: no admission for a doomed write.
    this.assertNotFailed();
    admit?.();
    // The id is taken in the same synchronous step as queueing the write, so queue order is id
    // order and the last `meta/last-id` put of every batch carries the batch's highest id.
    const id = this.nextId++;
    const job = newPendingJob(spec, { id, uuid: jobUuidFor(id, this.uuidKey), reason, submitTimeMs: nowMs });
    const event: JobEvent = { jobId: id, sequence: 1, state: 'PENDING', reason, timeMs: nowMs };
    const ops = createJobOps(job, event, fingerprint);
    if (attach) ops.push(...scheduleWriteOps(attach(job)));
    await this.committer.write(ops);
    return job;
  }
}
