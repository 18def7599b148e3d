/**
 * The job as the domain sees it, and its state machine.
 *
 * States (Slurm's words):
 * - PENDING: stored, waiting for its queue and for free cores and memory on the node.
 * - RUNNING: the write-ahead record is stored and its supervisor started (or is starting) it.
 * - COMPLETED: main process exited 0.
 * - FAILED: main process exited non-zero, died of a signal, or could not be launched.
 * - CANCELLED: CancelJob while pending or running.
 * - TIMEOUT: wall time (or rlimit CPU time) over time_limit.
 * - OUT_OF_MEMORY: the memory limit killed a process of the job.
 * - NODE_FAIL: the supervisor or the node was lost; the outcome is unknown, never reported as success.
 *
 * Transitions: PENDING -> RUNNING | CANCELLED; RUNNING -> any terminal state. Terminal states are final.
 */

export const JOB_STATES = [
  'PENDING',
  'RUNNING',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
] as const;
export type JobState = (typeof JOB_STATES)[number];

/** A job's uuid: `hpcjob-` + 8 lowercase base-36 characters (made by the store). */
export const JOB_UUID_PATTERN = /^hpcjob-[0-9a-z]{8}$/;

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
]);

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.has(state);
}

const ALLOWED: Record<JobState, readonly JobState[]> = {
  // PENDING -> PENDING: held or released (the change is kept in the event log).
  PENDING: ['RUNNING', 'CANCELLED', 'PENDING'],
  // RUNNING -> PENDING: the attempt ended and the job's retry policy gives it another.
  // RUNNING -> RUNNING: a cancel was asked for (who asked is stored, to outlive a restart).
  RUNNING: ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL', 'PENDING', 'RUNNING'],
  COMPLETED: [],
  FAILED: [],
  CANCELLED: [],
  TIMEOUT: [],
  OUT_OF_MEMORY: [],
  NODE_FAIL: [],
};

export function canTransition(from: JobState, to: JobState): boolean {
  return ALLOWED[from].includes(to);
}

import type { JobDependency } from './dependency.js';
import type { RetryPolicy } from './retry.js';

/** EHPC's lowercase job_status string for a state. */
export function jobStatusString(state: JobState): string {
  return state.toLowerCase();
}

/** How limits are enforced for a job. */
export type EnforcementMode = 'cgroup2' | 'cgroup1' | 'rlimit';

/** Which limit ended a job, for OUT_OF_MEMORY and TIMEOUT. */
export type LimitHit = 'memory' | 'time' | 'cpu_time' | '';

/** Parsed `resource_limit`: every value optional; sizes in MiB as documented in the proto. */
export interface ResourceLimits {
  /** Max processes/threads in the job (cgroup pids.max; RLIMIT_NPROC in rlimit mode). */
  pids?: number;
  /** RLIMIT_NOFILE: max open files per process. */
  nofile?: number;
  /** RLIMIT_FSIZE in MiB: largest file a process may write. */
  fsizeMb?: number;
  /** RLIMIT_CORE in MiB: core dump size (0 = no core files). */
  coreMb?: number;
  /** RLIMIT_NPROC: processes of the user host-wide (kernel semantics). */
  nproc?: number;
}

/** What a job consumed; filled in when it ends. */
export interface JobUsage {
  userCpuUsec: number;
  systemCpuUsec: number;
  peakMemoryBytes: number;
  wallTimeMs: number;
}

/** A validated submission with every default resolved: what the store persists and the executor runs. */
export interface JobSpec {
  name: string;
  clusterId: string;
  zone: string;
  /** hpcqueue_id of the queue the job went to. */
  hpcqueueId: string;
  schedulerQueueName: string;
  runUser: string;
  /** Resolved account of runUser at submit time. */
  uid: number;
  gid: number;
  home: string;
  shell: string;
  cmdLine: string;
  inputFile: string;
  cores: number;
  memoryLimitMb: number;
  timeLimitSeconds: number;
  /** The request's resource_limit string as given (canonical form). */
  resourceLimit: string;
  resourceLimits: ResourceLimits;
  priority: number;
  /** stdout/stderr paths with %j %x %u still unexpanded (the id is not known yet) and ~ resolved. */
  stdoutPathTemplate: string;
  stderrPathTemplate: string;
  submitType: number;
  clientToken: string;
  /** Timestamp the client sent, as given. */
  clientTimestamp: string;
  /** The command as an argument vector, run without a shell; empty unless submitted that way. */
  argv: readonly string[];
  /** Variables the submit added to the job's environment. */
  env: Readonly<Record<string, string>>;
  /** Directory the job starts in, entered as the user: the request's working_dir, else home. */
  workingDir: string;
  description: string;
  /** Jobs this one waits for (resolved to ids at submit). */
  dependsOn: readonly JobDependency[];
  /** Further attempts after a failed one; undefined = none. */
  retry?: RetryPolicy;
  /** The job group this job is a task of (SubmitJobGroup); undefined otherwise. */
  group?: JobGroupMembership;
  /** On an array job: its instances (which are jobs of their own, with the next ids). */
  array?: ArraySpec;
  /** On an instance of an array job: which array, and its index there. */
  arrayInstance?: ArrayInstance;
  /** begin_time: not started before this (Unix ms); undefined = any time. */
  beginAtMs?: number;
  /** Held at submit (submit's hold), by a user or an admin. */
  holdAtSubmit?: 'user' | 'admin';
  /** The schedule that made the job and the tick it was made for (a trigger: its time). */
  schedule?: { scheduleId: number; tickMs: number };
}

/** An array job's instances: `count` of them, at most `parallelism` running at once (0 = no cap). */
export interface ArraySpec {
  count: number;
  parallelism: number;
}

/** An instance's place: the array job's id; instance i has id arrayJobId + 1 + i. */
export interface ArrayInstance {
  arrayJobId: number;
  index: number;
  count: number;
}

/** A task's place in its group. The group's jobs have consecutive ids from `firstJobId`. */
export interface JobGroupMembership {
  firstJobId: number;
  size: number;
  name: string;
  taskName: string;
}

/** The group id clients see for a group whose first job is `firstJobId`. */
export function groupIdOf(firstJobId: number): string {
  return `group-${firstJobId}`;
}

/** A stored job. Times are Unix milliseconds (0 = not reached). */
export interface Job extends JobSpec {
  /** Decimal, increasing. */
  id: number;
  /** `hpcjob-` + 8 lowercase base-36 characters. */
  uuid: string;
  state: JobState;
  /** Why pending, or why it ended. */
  reason: string;
  exitCode: number;
  termSignal: number;
  submitTimeMs: number;
  startTimeMs: number;
  endTimeMs: number;
  stdoutPath: string;
  stderrPath: string;
  enforcement: EnforcementMode | '';
  limitHit: LimitHit;
  usage?: JobUsage;
  /** Number of events in the job's event log. */
  eventCount: number;
  /** The attempt the job is on, from 1. */
  attempt: number;
  /** Attempts that ended before this one, oldest first. */
  previousAttempts: readonly JobAttemptRecord[];
  /** Not started before this time (begin_time, or a retry's backoff); 0 = any time. */
  eligibleAtMs: number;
  /** Who holds the job back (HoldJob, or hold at submit): '' = nobody. */
  heldBy: '' | 'user' | 'admin';
  /**
   * On a cluster run by another scheduler (Slurm): the current attempt's job id there ('' = not
   * handed yet), and whether it is being handed (stored before sbatch runs, so that after a crash the
   * attempt is looked for there before it is submitted again).
   */
  backendJobId: string;
  backendSubmitting: boolean;
  /** Who asked to cancel the running job (stored before the cancel is sent, so a restart keeps it). */
  cancelRequestedBy?: string;
  /** On an array job: its instances by state (live in memory; stored with each state change). */
  instanceCounts?: Readonly<Record<JobState, number>>;
}

/** How one attempt of a job ended (the job went on to another). */
export interface JobAttemptRecord {
  attempt: number;
  state: JobState;
  reason: string;
  exitCode: number;
  termSignal: number;
  startTimeMs: number;
  endTimeMs: number;
}

/** One stored state change. */
export interface JobEvent {
  jobId: number;
  /** 1-based position in the job's log. */
  sequence: number;
  state: JobState;
  reason: string;
  timeMs: number;
}

/** The terminal outcome of a run, decided by the executor and applied by the engine. */
export interface JobOutcome {
  state: Exclude<JobState, 'PENDING' | 'RUNNING'>;
  reason: string;
  exitCode: number;
  termSignal: number;
  limitHit: LimitHit;
  usage?: JobUsage;
  endTimeMs: number;
}

/** What a job holds besides its spec. */
export type JobRunFields = Omit<Job, keyof JobSpec>;

/**
 * A new PENDING job. Built field by field (buildJob): V8 builds an object literal that adds
 * properties after a spread, like `{ ...spec, id, uuid, ... }`, through a slow path, about 18 µs
 * per job on the submit path (measured), where the plain literal costs under 1 µs.
 */
export function newPendingJob(spec: JobSpec, f: { id: number; uuid: string; reason: string; submitTimeMs: number }): Job {
  const names = { id: f.id, name: spec.name, runUser: spec.runUser, ...(spec.arrayInstance ? { arrayJobId: spec.arrayInstance.arrayJobId, arrayIndex: spec.arrayInstance.index } : {}) };
  return buildJob(spec, {
    id: f.id,
    uuid: f.uuid,
    state: 'PENDING',
    reason: f.reason,
    exitCode: 0,
    termSignal: 0,
    submitTimeMs: f.submitTimeMs,
    startTimeMs: 0,
    endTimeMs: 0,
    stdoutPath: expandRedirectPath(spec.stdoutPathTemplate, names),
    stderrPath: expandRedirectPath(spec.stderrPathTemplate, names),
    enforcement: '',
    limitHit: '',
    eventCount: 1,
    attempt: 1,
    previousAttempts: [],
    eligibleAtMs: spec.beginAtMs ?? 0,
    heldBy: spec.holdAtSubmit ?? '',
    backendJobId: '',
    backendSubmitting: false,
  });
}

/**
 * A copy of `job` with exactly the Job fields in one fixed order, so that every job in memory
 * shares one hidden class: the codec uses it on decoded records, which would otherwise keep the
 * JSON's field order and any unknown field. resourceLimits is copied, not shared.
 */
export function copyJob(job: Job): Job {
  return buildJob(job, job);
}

function buildJob(spec: JobSpec, run: JobRunFields): Job {
  const job: Job = {
    name: spec.name,
    clusterId: spec.clusterId,
    zone: spec.zone,
    hpcqueueId: spec.hpcqueueId,
    schedulerQueueName: spec.schedulerQueueName,
    runUser: spec.runUser,
    uid: spec.uid,
    gid: spec.gid,
    home: spec.home,
    shell: spec.shell,
    cmdLine: spec.cmdLine,
    inputFile: spec.inputFile,
    cores: spec.cores,
    memoryLimitMb: spec.memoryLimitMb,
    timeLimitSeconds: spec.timeLimitSeconds,
    resourceLimit: spec.resourceLimit,
    resourceLimits: { ...spec.resourceLimits },
    priority: spec.priority,
    stdoutPathTemplate: spec.stdoutPathTemplate,
    stderrPathTemplate: spec.stderrPathTemplate,
    submitType: spec.submitType,
    clientToken: spec.clientToken,
    clientTimestamp: spec.clientTimestamp,
    // Records stored before these fields existed have none of them.
    argv: spec.argv ?? [],
    env: spec.env ?? {},
    workingDir: spec.workingDir ?? spec.home,
    description: spec.description ?? '',
    dependsOn: spec.dependsOn ?? [],
    id: run.id,
    uuid: run.uuid,
    state: run.state,
    reason: run.reason,
    exitCode: run.exitCode,
    termSignal: run.termSignal,
    submitTimeMs: run.submitTimeMs,
    startTimeMs: run.startTimeMs,
    endTimeMs: run.endTimeMs,
    stdoutPath: run.stdoutPath,
    stderrPath: run.stderrPath,
    enforcement: run.enforcement,
    limitHit: run.limitHit,
    eventCount: run.eventCount,
    attempt: run.attempt ?? 1,
    previousAttempts: run.previousAttempts ?? [],
    eligibleAtMs: run.eligibleAtMs ?? 0,
    heldBy: run.heldBy ?? '',
    backendJobId: run.backendJobId ?? '',
    backendSubmitting: run.backendSubmitting ?? false,
  };
  if (spec.retry !== undefined) job.retry = spec.retry;
  if (spec.group !== undefined) job.group = spec.group;
  if (spec.array !== undefined) job.array = spec.array;
  if (spec.arrayInstance !== undefined) job.arrayInstance = spec.arrayInstance;
  if (spec.beginAtMs !== undefined) job.beginAtMs = spec.beginAtMs;
  if (spec.holdAtSubmit !== undefined) job.holdAtSubmit = spec.holdAtSubmit;
  if (spec.schedule !== undefined) job.schedule = spec.schedule;
  if (run.usage !== undefined) job.usage = run.usage;
  if (run.instanceCounts !== undefined) job.instanceCounts = run.instanceCounts;
  if (run.cancelRequestedBy !== undefined) job.cancelRequestedBy = run.cancelRequestedBy;
  return job;
}

/**
 * Expands %j (job id), %x (job name), %u (user), %A (array job id, else the job id), %a (array
 * index, else 0) and %% in a redirect path, like Slurm.
 */
export function expandRedirectPath(template: string, job: { id: number; name: string; runUser: string; arrayJobId?: number; arrayIndex?: number }): string {
  return template.replace(/%([jxuaA%])/g, (_m, c: string) =>
    c === 'j' ? String(job.id) : c === 'x' ? job.name : c === 'u' ? job.runUser : c === 'A' ? String(job.arrayJobId ?? job.id) : c === 'a' ? String(job.arrayIndex ?? 0) : '%',
  );
}

/** Applies a state change in memory, enforcing the state machine. Returns the new job and its event. */
export function transition(job: Job, to: JobState, reason: string, timeMs: number): { job: Job; event: JobEvent } {
  if (!canTransition(job.state, to)) {
    throw new Error(`illegal job state change ${job.state} -> ${to} for job ${job.id}`);
  }
  const sequence = job.eventCount + 1;
  const next: Job = { ...job, state: to, reason, eventCount: sequence };
  if (to === 'RUNNING' && job.state !== 'RUNNING') next.startTimeMs = timeMs;
  if (isTerminal(to)) next.endTimeMs = timeMs;
  return { job: next, event: { jobId: job.id, sequence, state: to, reason, timeMs } };
}
