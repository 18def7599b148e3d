/**
 * Ports: the interfaces the engine needs from the outside world, stated in domain words.
 * Adapters implement them (store/, exec/, system/); the core and engine import only these.
 */
import type { EnforcementMode, Job, JobEvent, JobOutcome, JobSpec, JobState } from './job.js';
import type { Schedule, ScheduleEvent } from './schedule.js';

/**
 * A queue's state, like a Slurm partition's: open; draining (DRAIN: takes no new jobs, starts
 * those it holds); stopped (DOWN: takes jobs, starts none).
 */
export type QueueState = 'open' | 'draining' | 'stopped';

/** A Unix account as the daemon needs it. */
export interface UserAccount {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  /** Every group the account is in (primary and supplementary), as initgroups gives them. */
  groups: readonly { name: string; gid: number }[];
}

export interface UserDirectory {
  /** The account, or undefined if no such user exists. */
  lookup(name: string): Promise<UserAccount | undefined>;
  /** The account with this uid, or undefined if none. */
  lookupUid(uid: number): Promise<UserAccount | undefined>;
}

/** One state change to persist: the job after the change and the event that records it. */
export interface JobTransition {
  job: Job;
  previousState: JobState;
  event: JobEvent;
}

export interface JobFilter {
  clusterId?: string;
  /** hpcqueue_id of the queue. */
  hpcqueueId?: string;
  states?: readonly JobState[];
  runUser?: string;
}

export interface JobPage {
  /** Newest first. */
  jobs: Job[];
  /** Pass as `beforeId` to get the next page; undefined on the last page. */
  nextBeforeId?: number;
}

/**
 * A time window on when jobs ended (sacct -S/-E): from `fromMs` (inclusive) to `toMs` (exclusive);
 * a side left out is open.
 */
export interface EndWindow {
  fromMs?: number;
  toMs?: number;
}

/** Where a listing by end time goes on: the jobs that come after this one (ended earlier, or at the same time with a lower id). */
export interface EndCursor {
  endTimeMs: number;
  id: number;
}

export interface EndedJobPage {
  /** The latest end first; jobs ending in the same millisecond, the highest id first. */
  jobs: Job[];
  /** Pass as `after` to get the next page; undefined on the last page. */
  next?: EndCursor;
}

export interface QuarantinedRecord {
  key: string;
  error: string;
}

/** A schedule's record with the events to append, written in one batch (with a tick's job, if any). */
export interface ScheduleWrite {
  schedule: Schedule;
  events: readonly ScheduleEvent[];
  /** On creation: the fingerprint its client token (if any) is stored with. */
  created?: { fingerprint: string };
}

/** Durable schedules (ScheduleService); the same synced batches as the jobs. */
export interface ScheduleStore {
  /** Every schedule and the highest schedule id ever allocated. */
  loadSchedules(): Promise<{ schedules: Schedule[]; lastId: number }>;
  saveSchedule(write: ScheduleWrite): Promise<void>;
  /** Removes the schedule, its history and its creation token. */
  deleteSchedule(schedule: Schedule): Promise<void>;
  /** The latest `limit` events of a schedule, oldest first. */
  getScheduleEvents(id: number, limit: number): Promise<ScheduleEvent[]>;
  /** The schedule a creation token names for `owner` (ownerKeyOf), with its request's fingerprint. */
  findScheduleToken(schedule: Pick<Schedule, 'owner'>, clientToken: string): Promise<{ id: number; fingerprint: string } | undefined>;
  /** The job a client token of `runUser` names, if any (TriggerSchedule's event_id). */
  findJobByClientToken(runUser: string, clientToken: string): Promise<Job | undefined>;
}

/**
 * Durable job storage. Every write resolves only once it is synced to disk; concurrent writes
 * share one synced batch (group commit). A write is all-or-nothing.
 * Errors: StoreUnavailableError when the disk is full or the database failed.
 */
export interface JobStore {
  /**
   * Stores a new job with its id, uuid, first event (PENDING) and client token in one batch.
   * `fingerprint` identifies the request for idempotency: the same (runUser, clientToken) with the
   * same fingerprint returns the original job with created=false; with another fingerprint throws
   * HpcqError IdempotentParameterMismatch. Concurrent calls with one token create one job.
   * `admit` runs synchronously just before a new job is queued for writing (never for a token hit);
   * if it throws, nothing is written and createJob rejects with that error. `attach` (a schedule's
   * tick or trigger) gives schedule records written in the new job's batch (never for a token hit).
   */
  createJob(
    spec: JobSpec,
    fingerprint: string,
    nowMs: number,
    reason: string,
    admit?: () => void,
    attach?: (job: Job) => ScheduleWrite,
  ): Promise<{ job: Job; created: boolean }>;
  /**
   * Stores new jobs (a group's tasks, or an array job and its instances) in one synced batch,
   * with consecutive ids (all or nothing). In `specs`, negative ids name jobs of the same batch
   * (-1 the first): see core/batch.ts; with `group`, each job gets its group membership. The first spec's client token, if any, makes the
   * batch idempotent like createJob: a repeat returns the first job of the stored group with
   * created=false. `admit` runs as in createJob.
   */
  createJobs(
    specs: readonly JobSpec[],
    group: { name: string } | undefined,
    fingerprint: string,
    nowMs: number,
    reasons: readonly string[],
    admit?: () => void,
    attach?: (first: Job) => ScheduleWrite,
  ): Promise<{ first: Job; jobs?: Job[]; created: boolean }>;
  /** Stores a queue's state (open, draining, stopped), synced. */
  saveQueueState(hpcqueueId: string, state: QueueState): Promise<void>;
  /** Every stored queue state. */
  loadQueueStates(): Promise<Map<string, QueueState>>;
  /** Persists state changes (record, index moves, events) in one synced batch. */
  saveTransitions(transitions: readonly JobTransition[]): Promise<void>;
  getJob(id: number): Promise<Job | undefined>;
  getJobByUuid(uuid: string): Promise<Job | undefined>;
  /** Served from indexes; the cost depends on the page, not on the history. */
  listJobs(filter: JobFilter, pageSize: number, beforeId?: number): Promise<JobPage>;
  /**
   * Finished jobs that ended in `window` and match `filter`, the latest end first, from the
   * end-time index: the cost depends on the window's page, not on the history.
   */
  listEndedJobs(filter: JobFilter, window: EndWindow, pageSize: number, after?: EndCursor): Promise<EndedJobPage>;
  /** The job's state changes, oldest first. */
  getEvents(jobId: number): Promise<JobEvent[]>;
  /**
   * PENDING and RUNNING jobs, read from the state index (finished jobs are not scanned).
   * Records that cannot be decoded are moved aside and returned in `quarantined`.
   */
  loadActiveJobs(): Promise<{ jobs: Job[]; quarantined: QuarantinedRecord[] }>;
  /** Deletes up to `limit` finished jobs that ended before `cutoffMs`, with indexes, events and tokens. */
  purgeFinishedBefore(cutoffMs: number, limit: number): Promise<number>;
}

/**
 * Runs jobs: places each into its limits under a supervisor process that outlives the daemon.
 * The executor calls `onEnded` exactly once per job it launched or re-attached.
 */
export interface JobExecutor {
  readonly enforcement: EnforcementMode;
  /**
   * Why no job can be started now, or undefined. The executor's run records live in the state
   * directory: while it has no room, a launch would fail the job for the daemon's own lack of disk,
   * so the engine keeps jobs pending (reason StateDirFull) and tries again.
   */
  launchBlocker?(): string | undefined;
  /**
   * Starts the job as its user. Resolves once its first instruction runs inside its limits, or once
   * a launch failure its supervisor recorded has gone through onEnded (FAILED, LaunchFailed).
   * Rejects with LaunchError when the job could not be started and nothing recorded it (reason in
   * the message); nothing of it is left running then.
   *
   * `durable` (given only to an executor with `launchesAhead`) settles when the job's RUNNING state
   * is stored: the executor may set the job up meanwhile, but its first instruction runs only after
   * `durable` resolved; if it rejects, nothing of the job runs and launch rejects.
   */
  launch(job: Job, durable?: Promise<unknown>): Promise<void>;
  /** Whether launch() takes `durable` (the engine then launches while the RUNNING write is under way). */
  readonly launchesAhead?: boolean;
  /** Asks the job's supervisor to end it (SIGTERM, SIGKILL after the grace period). */
  cancel(job: Job): Promise<void>;
  /** Sends `signal` to the running job's processes (its process group); the job goes on. */
  signal?(job: Job, signal: number): Promise<void>;
  /**
   * Re-attaches to a job that was RUNNING when the daemon stopped: if its supervisor is alive,
   * onEnded follows when it ends; if it ended while the daemon was down, onEnded is called with its
   * true outcome; if its supervisor is gone (or its pid now belongs to another process), onEnded is
   * called with NODE_FAIL. Returns 'not-started' (and never calls onEnded) when the job provably
   * never ran: the daemon stopped after storing RUNNING but before a supervisor of it started; the
   * caller launches it then.
   */
  reattach(job: Job): Promise<ReattachResult>;
  /** Kills and removes what is left of jobs not in `runningJobIds` (cgroups, run files). */
  sweepOrphans(runningJobIds: ReadonlySet<number>): Promise<void>;
  /**
   * Called once with the outcome of every job that ends. The executor keeps the job's exit record
   * and cgroup until the returned promise resolves (the outcome is durably stored), so a crash in
   * between loses nothing. Set by the engine before start().
   */
  onEnded: (jobId: number, outcome: JobOutcome) => Promise<void>;
  start(): Promise<void>;
  /**
   * Stops watching; supervisors and their jobs keep running. Idempotent. Waits for each launch
   * only until its supervisor has what it needs without this process (with `launchesAhead`: the
   * go or abort that follows the RUNNING write), never for a launch stuck before its job's exec.
   */
  stop(): Promise<void>;
}

/** What JobExecutor.reattach found: a job it follows (or has ended), or one that never ran. */
export type ReattachResult = 'attached' | 'not-started';

/** Thrown by JobExecutor.launch when a job could not be started. */
export class LaunchError extends Error {
  override readonly name = 'LaunchError';
}

/** What a cluster's scheduler says about a job it was handed (BackendReport), in hpcq's terms. */
export type BackendReport =
  | { kind: 'pending'; reason: string }
  | { kind: 'running'; timeMs: number }
  | { kind: 'ended'; outcome: JobOutcome };

/**
 * An array instance whose first attempt may have reached the scheduler inside its array's single
 * submission: looked for as task `index` of the submission tagged `arrayTag`.
 */
export interface ArrayTaskOf {
  arrayTag: string;
  index: number;
}

/**
 * A cluster whose jobs another scheduler runs (Slurm): the seam under the engine. The engine keeps
 * each job and hands every attempt that may start to the backend, which reports what became of it.
 */
export interface ClusterBackend {
  readonly kind: 'slurm';
  /**
   * Hands one attempt to the scheduler as the job's user; resolves with its id there. With
   * `mayExist` (an earlier try may have reached the scheduler) the attempt is looked for first.
   */
  submit(job: Job, mayExist: boolean, asArrayTask?: ArrayTaskOf): Promise<string>;
  /**
   * Hands the first attempt of every instance of an array as one submission (Slurm's --array,
   * throttled to the array's parallelism); resolves with the array's id there, whose task i is
   * instance i (`<id>_<i>`). With `mayExist` the array is looked for first.
   */
  submitArray(array: Job, instances: readonly Job[], mayExist: boolean): Promise<string>;
  /** Follows a handed attempt (an array task: with its array's tag): onReport hears of its changes, and of its end exactly once. */
  track(job: Job, backendId: string, arrayTag?: string): void;
  /** The tag an array's single submission carries (what `arrayTag` and ArrayTaskOf name). */
  tagOf(job: Job): string;
  untrack(jobId: number): void;
  /** Cancels as the job's user, or as root for an admin. */
  cancel(job: Job, backendId: string, asAdmin: boolean): Promise<'cancelled' | 'already-ended'>;
  /** Sends a signal to the job's processes there (scancel --signal), as the user or as root for an admin. */
  signal(job: Job, backendId: string, signal: number, asAdmin: boolean): Promise<void>;
  /** Why the scheduler cannot be reached now; undefined when it answers. */
  unavailable(): string | undefined;
  /** A partition (queue) as the scheduler reports it now. */
  partition(name: string): Promise<PartitionInfo>;
  start(): void;
  stop(): Promise<void>;
  onReport: (jobId: number, report: BackendReport) => void;
  /** Told when the scheduler stops answering (why) and when it answers again (undefined). */
  onAvailability: (unavailableReason: string | undefined) => void;
}

/** A scheduler's partition: its state (up, down, drain, inact; "unavailable" with a note), nodes and CPUs. */
export interface PartitionInfo {
  state: string;
  nodes: number;
  cpus: number;
  idleCpus: number;
  note: string;
}
