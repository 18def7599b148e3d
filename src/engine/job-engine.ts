/**
 * JobEngine runs the use cases (submit, get, list, cancel, watch) and the dispatch loop against the
 * ports. It holds the active jobs (PENDING and RUNNING) in memory; finished jobs live only in the
 * store.
 *
 * Lifecycle:
 * - created: nothing loaded; calls are refused.
 * - starting (start()): active jobs loaded from the store, running jobs re-attached through the
 *   executor (outcomes of jobs that ended while the daemon was down are stored now), orphaned
 *   cgroups and run files swept. Calls are refused and nothing is dispatched yet: a job launched
 *   now would have its fresh cgroup taken for an orphan.
 * - started: dispatching on; jobs that were RUNNING but provably never started (the daemon stopped
 *   between storing RUNNING and spawning the supervisor) are launched first.
 * - stopped (stop()): no new dispatch, in-flight launches and writes awaited; running jobs stay
 *   with their supervisors. Idempotent; waits for a start() in progress.
 *
 * Dispatch is event-driven: a submit, a job end, a cancel or a failed launch schedules one pass
 * (coalesced with setImmediate); there is no polling tick. A job becomes RUNNING durably (synced)
 * before its supervisor is spawned, and is launched again after a restart only when the executor
 * proves that no supervisor of it ever got to start it, so a crash can never start it twice.
 * Outcomes are stored one at a time per job, so a second report of an ended job is a no-op.
 */
import type { DaemonConfig, QueueConfig } from '../config/daemon-config.js';
import {
  assertQueueAllows,
  isAdmin,
  assertRunnableAccount,
  listScope,
  mayActOnJob,
  mayViewJob,
  type AccessContext,
  type Principal,
} from '../core/access-policy.js';
import { createHash } from 'node:crypto';
import { arrayJobState, emptyCounts, INSTANCE_ID_PATTERN, type InstanceCounts } from '../core/array-job.js';
import { checkGroupShape } from '../core/job-group.js';
import { quoteValue } from '../core/quote.js';
import { nextAttempt, shouldRetry } from '../core/retry.js';
import { HpcqError, jobNotFound, StoreUnavailableError } from '../core/errors.js';
import { isTerminal, JOB_UUID_PATTERN, transition, type Job, type JobEvent, type JobOutcome, type JobSpec, type JobState } from '../core/job.js';
import {
  LaunchError,
  type BackendReport,
  type ClusterBackend,
  type EndCursor,
  type EndedJobPage,
  type EndWindow,
  type JobExecutor,
  type JobFilter,
  type JobPage,
  type JobStore,
  type JobTransition,
  type PartitionInfo,
  type QueueState,
  type ScheduleWrite,
  type UserAccount,
  type UserDirectory,
} from '../core/ports.js';
import { planDispatch, type RunningJobView } from '../core/scheduler.js';
import type { SubmitRequest } from '../core/submit-request.js';
import { checkClientToken, validateSubmit } from '../core/validate-submit.js';
import type { Logger } from '../logger.js';
import { ActiveJobs } from './active-jobs.js';
import { DependencyTracker } from './dependency-tracker.js';
import { PendingRoom, type RoomRequest } from './pending-room.js';
import { InFlight } from './in-flight.js';
import { JobWatches } from './job-watches.js';

export interface JobEngineDeps {
  config: DaemonConfig;
  store: JobStore;
  executor: JobExecutor;
  users: UserDirectory;
  log: Logger;
  daemonUid: number;
  now?: () => number;
  /** Told of every state change once it is durable (metrics, logs). Must not throw or block. */
  onTransition?: (job: Job, previousState: JobState, event: JobEvent) => void;
  /** Told how long each dispatch pass took and how many jobs it started (metrics). */
  onDispatchPass?: (ms: number, started: number) => void;
  /** Clusters another scheduler runs (Slurm), by cluster_id; the others run on this node. */
  backends?: ReadonlyMap<string, ClusterBackend>;
}

/** Most attempts handed to cluster backends in one dispatch pass (each is an sbatch). */
const HAND_PER_PASS = 64;
/** Delay before handing again an attempt whose submission failed (scheduler unreachable). */
const BACKEND_RETRY_MS = 2000;

/**
 * A submit made by a schedule (a tick or a trigger): the job carries the schedule, its client token
 * and fingerprint are the schedule's (a trigger's event_id), and `attach` gives the schedule records
 * stored in the job's own batch, so the job and the tick are durable together or not at all.
 */
export interface ScheduleOrigin {
  scheduleId: number;
  tickMs: number;
  clientToken: string;
  fingerprint: string;
  attach: (job: Job) => ScheduleWrite;
}

/** Delay before retrying a state write that failed (disk full, store reopening). */
const WRITE_RETRY_MS = 1000;

export class JobEngine {
  /**
   * Held, future and dependent jobs are parked: out of the dispatch order until they may start; so
   * are jobs handed to a cluster's scheduler. Jobs another scheduler runs hold none of this node.
   */
  private readonly active = new ActiveJobs(
    (job) => job.heldBy !== '' || this.backingOff.has(job.id) || this.dependencies.isWaiting(job.id) || this.handed.has(job.id),
    (job) => this.backendOf(job) === undefined,
  );
  /** Pending jobs handed (or being handed) to their cluster's scheduler. */
  private readonly handed = new Set<number>();
  /** Queues of clusters another scheduler runs (handed over), and of this node (planned here). */
  private remoteQueues: ReadonlySet<string> = new Set();
  private localQueues: ReadonlySet<string> = new Set();
  /** A pass is due once an unreachable scheduler may answer again. */
  private backendRetryScheduled = false;
  /** Reports of a backend about one job, applied one after another. */
  private readonly backendReports = new Map<number, Promise<void>>();
  /** The configuration in force; replaced by reconfigure(). */
  private config: DaemonConfig;
  /** Every queue by hpcqueue_id; a QueueConfig carries the priority and max_running the scheduler reads. */
  private queues: ReadonlyMap<string, QueueConfig>;
  private readonly watches = new JobWatches();
  /** Jobs whose RUNNING record is being written or whose supervisor is being spawned. */
  private readonly launching = new Map<number, Promise<void>>();
  /** Running jobs a CancelJob asked to end, with who asked. */
  private readonly cancelRequested = new Map<number, string>();
  /** Of those, the ones an admin asked to end (scancel as root on a Slurm cluster). */
  private readonly cancelAsAdmin = new Set<number>();
  /** max_pending and max_pending_per_user, with the submits being stored counted. */
  private readonly pendingRoom = new PendingRoom({
    queuePending: (id) => this.active.countsOf(id).pending,
    userPending: (id, user) => this.userPending(id, user),
  });
  private readonly inFlight = new InFlight();
  /** Outcome writes in progress, per job: a later report waits for the earlier one, then sees it. */
  private readonly recording = new Map<number, Promise<void>>();
  private dispatchScheduled = false;
  /** Why the last dispatch pass could start nothing at all (the executor's launchBlocker), if so. */
  private launchBlocker: string | undefined;
  /** Queues not open (draining or stopped), as stored; the others are open. */
  private queueStates = new Map<string, QueueState>();
  /** Pending jobs someone holds (heldBy): dispatch passes them over until they are released. */
  private readonly held = new Set<number>();
  /** Pending jobs waiting out a retry backoff (their eligibleAtMs): dispatch passes them over. */
  private readonly backingOff = new Set<number>();
  /** Pending jobs held by their dependencies: dispatch passes them over. */
  private readonly dependencies: DependencyTracker;
  /**
   * Array jobs whose instances have not all ended: the array job itself (never in `active`: it
   * does not run) and its instances' states, counted as their changes become durable.
   */
  private readonly arrays = new Map<number, { job: Job; counts: InstanceCounts; cancelledBy?: string }>();
  private state: 'created' | 'starting' | 'started' | 'stopped' = 'created';
  private starting: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: JobEngineDeps) {
    this.now = deps.now ?? Date.now;
    this.config = deps.config;
    this.queues = queuesById(deps.config);
    this.splitQueues(this.queues);
    this.dependencies = new DependencyTracker({
      activeJob: (id) => this.active.get(id),
      storedJob: (id) => this.deps.store.getJob(id),
      onSatisfied: (job) => {
        this.active.set({ ...job, reason: 'Priority' });
        this.scheduleDispatch();
      },
      onNeverSatisfied: async (job, reason) => {
        await this.applyTransitions([{ job, to: 'CANCELLED', reason }]);
      },
      log: deps.log,
    });
    deps.executor.onEnded = (jobId, outcome) => this.recordOutcome(jobId, outcome);
    for (const backend of deps.backends?.values() ?? []) backend.onReport = (jobId, report) => this.backendReported(jobId, report);
  }

  start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`JobEngine.start() in state ${this.state}`);
    this.state = 'starting';
    this.starting = this.startNow();
    return this.starting;
  }

  private async startNow(): Promise<void> {
    const { store, executor, log } = this.deps;
    this.queueStates = await store.loadQueueStates();
    const loaded = await store.loadActiveJobs();
    const { quarantined } = loaded;
    let jobs = loaded.jobs;
    for (const q of quarantined) log.error({ key: q.key, error: q.error }, 'job record could not be decoded; moved to quarantine');
    const arrayJobs = jobs.filter((j) => j.array !== undefined);
    jobs = jobs.filter((j) => j.array === undefined);
    for (const job of jobs) this.remember(job);
    // Before re-attaching, which may record an end at once: a cancel asked for says who asked.
    for (const job of jobs) if (job.state === 'RUNNING' && job.cancelRequestedBy !== undefined) this.cancelRequested.set(job.id, job.cancelRequestedBy);
    await this.loadArrays(arrayJobs);
    // Before anything can be dispatched: a dependent is held until its jobs are judged again.
    for (const job of jobs) {
      if (job.state !== 'PENDING') continue;
      this.dependencies.follow(job, false);
      this.holdUntilEligible(job);
      this.active.refresh(job.id);
    }
    await executor.start();
    // Jobs another scheduler runs are its: tracked again, never re-attached or launched here.
    for (const job of jobs) this.followRemote(job);
    const running = jobs.filter((j) => j.state === 'RUNNING' && this.backendOf(j) === undefined);
    const notStarted: Job[] = [];
    for (const job of running) {
      if (this.state !== 'starting') return;
      if ((await executor.reattach(job)) === 'not-started') notStarted.push(job);
    }
    await executor.sweepOrphans(new Set(running.map((j) => j.id)));
    if (this.state !== 'starting') return;
    this.state = 'started';
    for (const backend of this.deps.backends?.values() ?? []) backend.start();
    for (const job of jobs) if (!notStarted.includes(job)) this.resumeCancel(job);
    // Parents may have ended while the daemon was down (or just before it stopped).
    this.dependencies.reviewAll();
    // An array job whose last instance change was stored just before a crash follows it now.
    for (const id of this.arrays.keys()) this.followArray(id);
    for (const job of notStarted) {
      log.warn({ jobId: job.id }, 'the daemon stopped after marking the job RUNNING but before its supervisor started it; it never ran, launching it now');
      this.beginLaunch(job.id, Promise.resolve());
    }
    log.info(
      { pending: jobs.length - running.length, running: running.length, relaunched: notStarted.length, quarantined: quarantined.length },
      'job engine started',
    );
    this.scheduleDispatch();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    await this.starting?.catch(() => undefined);
    for (const backend of this.deps.backends?.values() ?? []) await backend.stop();
    await this.inFlight.drain();
    await this.deps.executor.stop();
  }

  /**
   * Ends every open WatchJob with UNAVAILABLE and refuses new ones: a watch lasts as long as its
   * job, so it would only hold up the RPC drain of a shutdown. Clients watch again after restart.
   */
  endWatches(): void {
    this.watches.endAll();
  }

  // ---- use cases -------------------------------------------------------------------------------

  /**
   * Applies a reloaded configuration: access policy, queue limits, new queues. Refused (nothing
   * changes) when a queue that still has pending or running jobs would disappear.
   */
  reconfigure(next: DaemonConfig): void {
    const nextQueues = queuesById(next);
    const orphaned = [...this.queues.keys()].filter((id) => !nextQueues.has(id) && this.active.countsOf(id).pending + this.active.countsOf(id).running > 0);
    if (orphaned.length > 0) {
      throw new HpcqError('FailedOperation.QueueInUse', 'precondition', `queues ${orphaned.join(', ')} still have pending or running jobs; keep them until those end`);
    }
    this.config = next;
    this.queues = nextQueues;
    this.splitQueues(nextQueues);
    this.scheduleDispatch();
  }

  async submit(req: SubmitRequest, principal: Principal, origin?: ScheduleOrigin): Promise<{ job: Job; created: boolean }> {
    this.assertStarted();
    const validated = await this.validate(req, principal);
    const { queue } = validated;
    let { spec, fingerprint } = validated;
    if (origin) {
      spec = { ...spec, clientToken: origin.clientToken, schedule: { scheduleId: origin.scheduleId, tickMs: origin.tickMs } };
      fingerprint = origin.fingerprint;
    }
    this.assertQueueTakesJobs(queue);
    this.assertBackendTakes(spec);
    if (spec.array) return this.submitArray(spec, queue, fingerprint, origin?.attach);
    // The quota is checked only for a job about to be created: a client_token retry of a stored job
    // gets its original answer even when the queue is full.
    let release: (() => void) | undefined;
    const admit = () => {
      release = this.pendingRoom.reserve([{ queue, runUser: spec.runUser, jobs: 1, userJobs: 1 }], 'hpcqueue_id');
    };
    try {
      const result = await this.track(this.deps.store.createJob(spec, fingerprint, this.now(), firstReason(spec), admit, origin?.attach));
      if (result.created && this.state === 'started') this.takeNewJobs([result.job]);
      return { job: this.active.get(result.job.id) ?? result.job, created: result.created };
    } finally {
      release?.();
    }
  }

  /** Validates a submit as `principal` would make it, storing nothing (a schedule's template). */
  validate(req: SubmitRequest, principal: Principal): ReturnType<typeof validateSubmit> {
    return validateSubmit(req, {
      principal,
      findDependency: (idOrUuid) => this.findDependencyId(idOrUuid, principal),
      config: this.config,
      users: this.deps.users,
      daemonUid: this.deps.daemonUid,
      nowMs: this.now(),
    });
  }

  /**
   * Submits a DAG of jobs (Tencent Batch's Job.Tasks + Dependences): the shape and every task are
   * validated first, every queue's max_pending is checked for all of its tasks at once, and the
   * jobs are stored in one synced batch: all or nothing. A task waits for the tasks it depends on
   * (afterok): when one fails, its dependents end DependencyNeverSatisfied; other branches go on.
   */
  async submitGroup(
    req: { name: string; tasks: readonly SubmitRequest[]; dependences: readonly { startTask: string; endTask: string }[]; clientToken: string },
    principal: Principal,
  ): Promise<{ jobs: Job[]; created: boolean }> {
    this.assertStarted();
    const { parents } = checkGroupShape(req.name, req.tasks.map((t) => t.taskName), req.dependences);
    checkClientToken(req.clientToken);
    const specs: JobSpec[] = [];
    /** Where each task's job is in the batch (an array task's instances follow it). */
    const position: number[] = [];
    const room: RoomRequest[] = [];
    const fingerprints: string[] = [];
    for (const [i, task] of req.tasks.entries()) {
      let validated;
      try {
        validated = await validateSubmit(
          { ...task, name: task.name || task.taskName, clientToken: `${i}` },
          { principal, findDependency: (id) => this.findDependencyId(id, principal), config: this.config, users: this.deps.users, daemonUid: this.deps.daemonUid, nowMs: this.now() },
        );
      } catch (err) {
        // Name the task the problem is in.
        if (err instanceof HpcqError) throw new HpcqError(err.code, err.kind, `task ${task.taskName}: ${err.message}`, err.field ? `tasks.${i}.${err.field}` : `tasks.${i}`);
        throw err;
      }
      const { spec, queue } = validated;
      this.assertQueueTakesJobs(queue);
      fingerprints.push(validated.fingerprint);
      position.push(specs.length);
      const taskSpec: JobSpec = { ...spec, clientToken: i === 0 ? req.clientToken : '', group: { firstJobId: 0, size: 0, name: req.name, taskName: task.taskName } };
      specs.push(taskSpec);
      // An array task's instances follow it in the batch (their array job id is its position).
      if (spec.array) specs.push(...instanceSpecs(taskSpec, position[i]!));
      room.push({ queue, runUser: spec.runUser, jobs: spec.array?.count ?? 1, userJobs: 1 });
    }
    // A task waits for the tasks it depends on (an array task: for the whole array), and so do
    // its instances; the other tasks' positions are known only now.
    for (const [i, pos] of position.entries()) {
      const internal = parents[i]!.map((p) => ({ jobId: -(position[p]! + 1), condition: 'afterok' as const }));
      const end = i + 1 < position.length ? position[i + 1]! : specs.length;
      for (let k = pos; k < end; k++) specs[k] = { ...specs[k]!, dependsOn: [...specs[k]!.dependsOn, ...internal] };
    }
    const fingerprint = req.clientToken === '' ? '' : createHash('sha256').update(JSON.stringify([req.name, req.dependences, fingerprints])).digest('base64url').slice(0, 32);
    let release: (() => void) | undefined;
    const admit = () => {
      release = this.pendingRoom.reserve(room, 'tasks');
    };
    try {
      const reasons = specs.map(firstReason);
      const result = await this.track(this.deps.store.createJobs(specs, { name: req.name }, fingerprint, this.now(), reasons, admit));
      if (result.created && result.jobs && this.state === 'started') this.takeNewJobs(result.jobs);
      const jobs = result.jobs ? result.jobs.filter((j) => !j.arrayInstance).map((j) => this.arrays.get(j.id)?.job ?? j) : await this.groupJobs(result.first);
      return { jobs, created: result.created };
    } finally {
      release?.();
    }
  }

  /** The jobs of a group (group-<first job id>) the principal may see; NOT_FOUND if none. */
  async getGroup(groupId: string, principal: Principal): Promise<Job[]> {
    this.assertStarted();
    const m = /^group-(\d{1,15})$/.exec(groupId);
    if (!m) throw new HpcqError('InvalidParameter.GroupIdMalformed', 'invalid', 'group_id must be group-<number>', 'group_id');
    const first = await this.findVisibleJob(m[1]!, principal).catch(() => undefined);
    if (!first?.group || first.group.firstJobId !== first.id) throw new HpcqError('ResourceNotFound.JobGroup', 'not_found', `job group ${quoteValue(groupId)} does not exist`, 'group_id');
    return this.groupJobs(first);
  }

  /** Every job still stored of the group whose first job is `first`, in task order. */
  private async groupJobs(first: Job): Promise<Job[]> {
    const jobs: Job[] = [];
    for (let id = first.id; id < first.id + (first.group?.size ?? 1); id++) {
      const job = id === first.id ? first : (this.active.get(id) ?? this.arrays.get(id)?.job ?? (await this.deps.store.getJob(id)));
      // An array task's instances are in the batch too; the group lists its tasks.
      if (job && !job.arrayInstance) jobs.push(this.active.get(job.id) ?? this.arrays.get(job.id)?.job ?? job);
    }
    return jobs;
  }

  async getJob(idOrUuid: string, principal: Principal): Promise<Job> {
    this.assertStarted();
    return this.findVisibleJob(idOrUuid, principal);
  }

  /** Lists the jobs `principal` may see that match `filter` (its run_user narrowed by the policy). */
  async listJobs(filter: JobFilter, principal: Principal, pageSize: number, beforeId?: number, includeInstances = false): Promise<JobPage> {
    this.assertStarted();
    const requested = filter.runUser ? await this.deps.users.lookup(filter.runUser) : undefined;
    const scope = listScope(principal, filter.runUser ?? '', requested, this.accessContext());
    if (scope === 'nothing') return { jobs: [] };
    const page = includeInstances
      ? await this.deps.store.listJobs({ ...filter, ...scope }, pageSize, beforeId)
      : await this.listWithoutInstances({ ...filter, ...scope }, pageSize, beforeId);
    // The store may lag the in-memory state by an in-flight write; show the freshest view.
    return { ...page, jobs: page.jobs.map((j) => this.active.get(j.id) ?? this.arrays.get(j.id)?.job ?? j) };
  }

  /** A page of jobs without array instances (an array is listed once, as its array job). */
  private async listWithoutInstances(filter: JobFilter, pageSize: number, beforeId?: number): Promise<JobPage> {
    const jobs: Job[] = [];
    let next = beforeId;
    // Bounded: a page after 20 store pages of instances may come back short (with a token to go on).
    for (let round = 0; round < 20 && jobs.length < pageSize; round++) {
      const page = await this.deps.store.listJobs(filter, pageSize, next);
      for (const job of page.jobs) if (!job.arrayInstance && jobs.length < pageSize) jobs.push(job);
      next = page.nextBeforeId;
      if (next === undefined) break;
    }
    const last = jobs.at(-1);
    // Go on after the last job returned, unless the store has nothing after it.
    return next === undefined && jobs.length < pageSize ? { jobs } : { jobs, ...(last ? { nextBeforeId: last.id } : next !== undefined ? { nextBeforeId: next } : {}) };
  }

  /** Cancels a pending job at once; asks a running job's supervisor to end it (CANCELLED follows). */
  async cancel(idOrUuid: string, principal: Principal): Promise<Job> {
    this.assertStarted();
    const found = await this.findVisibleJob(idOrUuid, principal);
    if (!mayActOnJob(principal, await this.accountOf(found), this.accessContext())) {
      throw new HpcqError('OperationDenied.JobNotOwned', 'permission', `${principal.name} may not cancel job ${found.id} of ${found.runUser}`, 'job_id');
    }
    const requestedBy = describePrincipal(principal);
    const asAdmin = isAdmin(principal, this.accessContext());
    if (found.array) return this.cancelArray(found, requestedBy, asAdmin);
    // Only PENDING and RUNNING jobs are active.
    const job = this.active.get(found.id);
    if (!job) throw new HpcqError('FailedOperation.JobAlreadyFinished', 'precondition', `job ${found.id} already ended (${found.state})`, 'job_id');
    if (this.isWithBackend(job)) {
      await this.cancelRemote(job, requestedBy, asAdmin);
      return this.freshest(job);
    }
    if (job.state === 'PENDING') {
      const [cancelled] = await this.applyTransitions([{ job, to: 'CANCELLED', reason: `Cancelled by ${requestedBy}` }]);
      return cancelled!;
    }
    await this.cancelRunning(job, requestedBy);
    return this.freshest(job);
  }

  /** Sends a signal to a running job (scancel --signal): through its supervisor's host or its cluster's scheduler. */
  private async signalRunning(job: Job, signal: number, asAdmin: boolean): Promise<void> {
    const backend = this.backendOf(job);
    if (backend) return backend.signal(job, job.backendJobId, signal, asAdmin);
    await this.launching.get(job.id);
    if (!this.deps.executor.signal) throw new HpcqError('FailedOperation.SignalUnsupported', 'precondition', 'this executor cannot deliver signals', 'signal');
    try {
      await this.deps.executor.signal(this.active.get(job.id) ?? job, signal);
    } catch (err) {
      if (err instanceof LaunchError) throw new HpcqError('FailedOperation.JobNotRunning', 'precondition', `job ${job.id}: ${err.message}`, 'job_id');
      throw err;
    }
  }

  /** Asks a running job's supervisor to end it (once; CANCELLED follows when it has ended). */
  private async cancelRunning(job: Job, requestedBy: string): Promise<void> {
    if (this.cancelRequested.has(job.id)) return;
    this.cancelRequested.set(job.id, requestedBy);
    const launch = this.launching.get(job.id);
    // Told at once as well: a launch that hangs before the job runs is cancelled, not waited out.
    if (launch && this.active.get(job.id)?.state === 'RUNNING') await this.deps.executor.cancel(this.active.get(job.id)!);
    if (launch) await launch;
    const current = await this.storeCancelRequest(job.id, requestedBy);
    if (current?.state === 'RUNNING') await this.deps.executor.cancel(current);
  }

  /**
   * Stores who asked to cancel a running job before the cancel is sent, so that its end says so
   * even if the daemon restarts in between. A store that is down does not hold the cancel up.
   */
  private async storeCancelRequest(jobId: number, requestedBy: string): Promise<Job | undefined> {
    const current = this.active.get(jobId);
    if (current?.state !== 'RUNNING' || current.cancelRequestedBy !== undefined) return current;
    try {
      await this.applyTransitions([{ job: { ...current, cancelRequestedBy: requestedBy }, to: 'RUNNING', reason: `CancelRequested by ${requestedBy}` }]);
    } catch (err) {
      this.deps.log.warn({ jobId, err: (err as Error).message }, 'could not store who asked to cancel the job; cancelling it anyway');
    }
    return this.active.get(jobId);
  }

  /** At start-up, once re-attached: a cancel asked for before the restart is still wanted. */
  private resumeCancel(loaded: Job): void {
    const job = this.active.get(loaded.id);
    if (job?.state !== 'RUNNING' || job.cancelRequestedBy === undefined) return;
    const backend = this.backendOf(job);
    // Sent again: the daemon may have stopped between storing the request and sending it. To the
    // other scheduler as the job's own user, whoever asked: the request was allowed when it was
    // made, the owner may always cancel its job there, and a Slurm job id that names someone
    // else's job by now (ids are reused) is then refused instead of cancelled as root.
    const resend = backend ? backend.cancel(job, job.backendJobId, false) : this.deps.executor.cancel(job);
    void this.track(Promise.resolve(resend).catch((err: unknown) => this.deps.log.warn({ jobId: job.id, err: (err as Error).message }, 'could not send a cancel again after the restart')));
  }

  /**
   * Follows a job: `onJob` first gets the job as it is now (with the stored history if asked), then
   * every state change; the returned promise resolves after a terminal state or when `signal` aborts.
   */
  async watch(
    idOrUuid: string,
    principal: Principal,
    includeHistory: boolean,
    onJob: (job: Job, event?: JobEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.assertStarted();
    this.watches.assertOpen();
    const found = await this.findVisibleJob(idOrUuid, principal);
    await this.watches.follow(found.id, includeHistory, onJob, signal, {
      current: () => this.freshest(found),
      history: () => this.deps.store.getEvents(found.id),
    });
  }

  /** Pending and running counts of a queue, from memory. */
  queueCounts(hpcqueueId: string): { pending: number; running: number } {
    return { ...this.active.countsOf(hpcqueueId) };
  }

  /** Cores and memory (MiB) held by running jobs. */
  usedResources(): { cores: number; memMb: number } {
    return this.active.used;
  }

  // ---- dispatch --------------------------------------------------------------------------------

  private scheduleDispatch(): void {
    if (this.dispatchScheduled || this.state !== 'started') return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      if (this.state !== 'started') return;
      try {
        const t0 = performance.now();
        const started = this.dispatch();
        this.deps.onDispatchPass?.(performance.now() - t0, started);
      } catch (err) {
        this.deps.log.error({ err }, 'dispatch failed');
      }
    });
  }

  /**
   * One pass: starts what the plan allows (their RUNNING writes and launches go on in the background).
   * The plan reads the pending jobs from the front of each queue's order and examines a bounded
   * number of them (see scheduler.ts); only those get a new reason, the others keep theirs.
   */
  /** Returns how many jobs the pass started. */
  private dispatch(): number {
    if (this.active.pendingTotal === 0) return 0;
    const remote = this.remoteQueues;
    if (remote.size > 0) this.handToBackends();
    // Planned even when the node is full: the pass then examines only the job next in line (so it
    // shows Resources) and the first job of each queue at max_running.
    const running: RunningJobView[] = [];
    for (const j of this.active.running()) {
      if (remote.has(j.hpcqueueId)) continue;
      running.push({ hpcqueueId: j.hpcqueueId, cores: j.cores, memoryLimitMb: j.memoryLimitMb, expectedEndMs: j.startTimeMs + j.timeLimitSeconds * 1000 });
    }
    const plan = planDispatch({
      pending: this.withoutQueues(this.pendingView(), remote),
      running,
      queues: this.queues,
      nodeCores: this.config.nodeCores,
      nodeMemMb: this.config.nodeMemMb,
      nowMs: this.now(),
    });
    // Pending reasons change often; they are shown from memory and not written to the store.
    for (const [id, reason] of plan.waiting) {
      const job = this.active.get(id);
      if (job && job.state === 'PENDING' && job.reason !== reason) this.active.set({ ...job, reason });
    }
    for (const id of this.cappedByUser.splice(0)) {
      const job = this.active.get(id);
      if (job && job.state === 'PENDING' && job.reason !== 'QueueMaxRunningPerUser') this.active.set({ ...job, reason: 'QueueMaxRunningPerUser' });
    }
    if (plan.start.length === 0) return 0;
    // No room for the jobs' run records: starting them now would fail them for the daemon's own
    // lack of disk. They wait until there is room again (checked every WRITE_RETRY_MS). Asked only
    // when a job is about to start: a statfs per pass would cost every submit.
    const blocker = this.deps.executor.launchBlocker?.();
    if (blocker !== this.launchBlocker) {
      if (blocker !== undefined) this.deps.log.warn({ reason: blocker }, 'no job is started while the state directory has no room');
      else this.deps.log.info('the state directory has room again; starting jobs');
      this.launchBlocker = blocker;
    }
    if (blocker !== undefined) {
      setTimeout(() => this.scheduleDispatch(), WRITE_RETRY_MS).unref();
      return 0;
    }
    const starting = plan.start.map((id) => ({ ...this.active.get(id)!, enforcement: this.deps.executor.enforcement }));
    const stored = this.applyTransitions(starting.map((job) => ({ job, to: 'RUNNING' as const, reason: '' })));
    for (const job of starting) this.beginLaunch(job.id, stored);
    return starting.length;
  }

  /**
   * Launches the job once its RUNNING state is stored (`stored` resolves), or, with an executor
   * that `launchesAhead`, sets it up meanwhile (the job itself starts only once stored); tracked
   * for stop().
   */
  private beginLaunch(jobId: number, stored: Promise<unknown>): void {
    const revert = (err: unknown) => this.revertToPending(jobId, err);
    const started: Promise<unknown> = this.deps.executor.launchesAhead ? Promise.all([this.launch(jobId, stored), stored.catch(revert)]) : stored.then(() => this.launch(jobId), revert);
    const launch = started.then(
      () => undefined,
      (err: unknown) => this.deps.log.error({ err, jobId }, 'launch failed and its outcome could not be stored'),
    );
    this.launching.set(jobId, launch);
    const settled = launch.finally(() => this.launching.delete(jobId));
    // stop() waits for the RUNNING write (tracked by applyTransitions), and the executor's stop
    // for the go that follows it (JobExecutor.stop), but not for a launch ahead of it that is stuck
    // before its job's exec: its supervisor ends it at the launch deadline, for the next start to find.
    if (!this.deps.executor.launchesAhead) void this.track(settled);
  }

  /** `stored`: the RUNNING write, when the launch overlaps it (see beginLaunch). */
  private async launch(jobId: number, stored?: Promise<unknown>): Promise<void> {
    const job = this.active.get(jobId);
    if (!job || job.state !== 'RUNNING') return;
    try {
      await this.assertStillAllowed(job);
      const launched = this.deps.executor.launch(job, stored);
      // A cancel that came before the launch began reaches it too (one during it is passed on by cancelRunning).
      if (this.cancelRequested.has(jobId)) await this.deps.executor.cancel(job);
      await launched;
    } catch (err) {
      // RUNNING was never stored: nothing of the job ran, and it is pending again (revertToPending).
      if (stored && !(await stored.then(() => true, () => false))) return;
      // Stopped meanwhile (the launcher is gone): the next start re-attaches to the job's
      // supervisor, or launches the job again if none had it.
      if (this.state === 'stopped') return;
      const message = err instanceof LaunchError ? err.message : `internal error: ${(err as Error).message}`;
      if (!(err instanceof LaunchError)) this.deps.log.error({ err, jobId }, 'launch failed unexpectedly');
      await this.recordOutcome(jobId, {
        state: 'FAILED',
        reason: `LaunchFailed: ${message}`,
        exitCode: 0,
        termSignal: 0,
        limitHit: '',
        endTimeMs: this.now(),
      });
      return;
    }
    if (this.cancelRequested.has(jobId)) await this.deps.executor.cancel(this.active.get(jobId) ?? job);
  }

  /** The RUNNING write failed (applyTransitions restored PENDING in memory): retry later. */
  private revertToPending(jobId: number, err: unknown): void {
    this.deps.log.error({ err, jobId }, 'could not store RUNNING state; job stays pending');
    const job = this.active.get(jobId);
    if (job?.state === 'PENDING') this.active.set({ ...job, reason: 'StoreUnavailable' });
    setTimeout(() => this.scheduleDispatch(), WRITE_RETRY_MS).unref();
  }

  /**
   * Stores how a running job ended; resolves once durable (retrying while the store is down).
   * Serialized per job: a second report waits for the first and then finds the job ended.
   */
  private recordOutcome(jobId: number, outcome: JobOutcome): Promise<void> {
    const previous = this.recording.get(jobId);
    const next = (previous ? previous.catch(() => undefined) : Promise.resolve()).then(() => this.recordOutcomeNow(jobId, outcome));
    this.recording.set(jobId, next);
    const forget = () => {
      if (this.recording.get(jobId) === next) this.recording.delete(jobId);
    };
    next.then(forget, forget);
    return next;
  }

  private async recordOutcomeNow(jobId: number, outcome: JobOutcome): Promise<void> {
    const job = this.active.get(jobId) ?? (await this.deps.store.getJob(jobId));
    if (!job || isTerminal(job.state)) return;
    if (job.state !== 'RUNNING') {
      this.deps.log.error({ jobId, state: job.state }, 'outcome for a job that is not running; ignored');
      return;
    }
    const cancelledBy = this.cancelRequested.get(jobId);
    const reason = outcome.state === 'CANCELLED' && cancelledBy ? `Cancelled by ${cancelledBy}` : outcome.reason;
    // A job someone asked to cancel is never given another attempt, whatever its last one did.
    const change =
      !cancelledBy && shouldRetry(job.retry, job.attempt, outcome)
        ? nextAttempt(job, outcome)
        : {
            job: { ...job, exitCode: outcome.exitCode, termSignal: outcome.termSignal, limitHit: outcome.limitHit, ...(outcome.usage ? { usage: outcome.usage } : {}) },
            to: outcome.state,
            reason,
            timeMs: outcome.endTimeMs,
          };
    for (;;) {
      try {
        const stored = this.applyTransitions([change]);
        if (change.to === 'PENDING') this.holdUntilEligible(change.job);
        // Its processes are gone (the supervisor wrote the exit record after killing them all), so
        // its cores and memory are free now: the next job's RUNNING write can share this batch.
        // (The pass sees the job ended in memory; nothing it plans with changes once it is stored.)
        this.scheduleDispatch();
        await stored;
        break;
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || this.state === 'stopped') throw err;
        this.deps.log.warn({ jobId, err: err.message }, 'could not store job outcome; retrying');
        await new Promise((r) => setTimeout(r, WRITE_RETRY_MS));
      }
    }
    this.cancelRequested.delete(jobId);
    this.cancelAsAdmin.delete(jobId);
  }

  // ---- dependencies ----------------------------------------------------------------------------

  /** The id of a job a dependency names, if `principal` may see it; else NOT_FOUND naming depends_on. */
  private async findDependencyId(idOrUuid: string, principal: Principal): Promise<number> {
    try {
      return (await this.findVisibleJob(idOrUuid, principal)).id;
    } catch (err) {
      if (err instanceof HpcqError && err.code === 'ResourceNotFound.Job') throw new HpcqError(err.code, err.kind, err.message, 'depends_on');
      throw err;
    }
  }

  /** Each queue's pending jobs without those still waiting for their dependencies or a retry backoff. */
  private pendingNotWaiting(): ReadonlyMap<string, Iterable<Job>> {
    const dependencies = this.dependencies;
    const backingOff = this.backingOff;
    const held = this.held;
    // Room left under each queue's max_running_per_user, per user, counting this pass's starts.
    const userRoom = new Map<string, number>();
    const perUserCap = (job: Job) => this.queues.get(job.hpcqueueId)?.maxRunningPerUser ?? 0;
    // Jobs handed to a cluster's scheduler hold their room there as running jobs do here.
    let holdingJobs: Job[] | undefined;
    const holding = () => (holdingJobs ??= [...this.active.running(), ...[...this.handed].map((id) => this.active.get(id)).filter((j): j is Job => j !== undefined)]);
    if (this.hasPerUserRunningCaps()) {
      for (const job of holding()) {
        const cap = perUserCap(job);
        if (cap === 0) continue;
        const key = `${job.hpcqueueId}\0${job.runUser}`;
        userRoom.set(key, (userRoom.get(key) ?? cap) - 1);
      }
    }
    const cappedByUser = this.cappedByUser;
    // Room left under each capped array's parallelism, counting what this pass may start.
    const room = new Map<number, number>();
    for (const [id, { job }] of this.arrays) if (job.array!.parallelism > 0) room.set(id, job.array!.parallelism);
    if (room.size > 0) {
      for (const job of holding()) {
        const arrayId = job.arrayInstance?.arrayJobId;
        if (arrayId !== undefined && room.has(arrayId)) room.set(arrayId, room.get(arrayId)! - 1);
      }
    }
    const view = new Map<string, Iterable<Job>>();
    for (const [queue, jobs] of this.active.pendingByQueue) {
      view.set(queue, {
        *[Symbol.iterator]() {
          for (const job of jobs) {
            if (dependencies.isWaiting(job.id) || backingOff.has(job.id) || held.has(job.id)) continue;
            const cap = perUserCap(job);
            if (cap > 0) {
              const key = `${job.hpcqueueId}\0${job.runUser}`;
              const left = userRoom.get(key) ?? cap;
              if (left <= 0) {
                // Shown as the reason after the pass (a bounded number of them).
                if (cappedByUser.length < 1000) cappedByUser.push(job.id);
                continue;
              }
              userRoom.set(key, left - 1);
            }
            const arrayId = job.arrayInstance?.arrayJobId;
            const left = arrayId === undefined ? undefined : room.get(arrayId);
            if (left !== undefined) {
              if (left <= 0) continue;
              room.set(arrayId!, left - 1);
            }
            yield job;
          }
        },
      });
    }
    return view;
  }

  // ---- arrays ----------------------------------------------------------------------------------

  /**
   * Submits an array job: the array job and its `count` instances (each a job of its own, with
   * the next ids) in one synced batch; every instance counts against the queue's max_pending.
   */
  private async submitArray(spec: JobSpec, queue: QueueConfig, fingerprint: string, attach?: (first: Job) => ScheduleWrite): Promise<{ job: Job; created: boolean }> {
    const { count } = spec.array!;
    const instances = instanceSpecs(spec, 0);
    let release: (() => void) | undefined;
    const admit = () => {
      // Its instances for the queue's cap; one job for its user's.
      release = this.pendingRoom.reserve([{ queue, runUser: spec.runUser, jobs: count, userJobs: 1 }], 'array.count');
    };
    try {
      const batch = [spec, ...instances];
      const result = await this.track(this.deps.store.createJobs(batch, undefined, fingerprint, this.now(), batch.map(firstReason), admit, attach));
      if (result.created && result.jobs && this.state === 'started') this.takeNewJobs(result.jobs);
      return { job: this.arrays.get(result.first.id)?.job ?? result.first, created: result.created };
    } finally {
      release?.();
    }
  }

  /**
   * Takes jobs just stored into memory: array jobs into `arrays` (all their instances pending),
   * the others into `active`, held by their dependencies if they have any; then dispatches.
   */
  private takeNewJobs(jobs: readonly Job[]): void {
    for (const job of jobs) {
      if (job.array) {
        const counts = emptyCounts();
        counts.PENDING = job.array.count;
        this.arrays.set(job.id, { job: { ...job, instanceCounts: { ...counts } }, counts });
      } else {
        this.remember(job);
      }
    }
    for (const job of jobs) {
      if (job.array) continue;
      this.dependencies.follow(job);
      this.holdUntilEligible(job);
      this.active.refresh(job.id);
    }
    this.scheduleDispatch();
  }

  /** Array jobs not ended at start-up: their instances counted from memory and, for ended ones, the store. */
  private async loadArrays(arrayJobs: readonly Job[]): Promise<void> {
    for (const job of arrayJobs) {
      const counts = emptyCounts();
      for (let id = job.id + 1; id <= job.id + job.array!.count; id++) {
        // An instance purged or lost counts as cancelled: it will never run.
        const state = this.active.get(id)?.state ?? (await this.deps.store.getJob(id))?.state ?? 'CANCELLED';
        counts[state]++;
      }
      this.arrays.set(job.id, { job: { ...job, instanceCounts: { ...counts } }, counts });
    }
  }

  /** Keeps an array job in `arrays` (it never runs, so never in `active`), any other job in `active`. */
  private remember(job: Job): void {
    if (!job.array) {
      if (job.state === 'PENDING' && job.heldBy !== '') this.held.add(job.id);
      else this.held.delete(job.id);
      // A job queued in a stopped queue says so (dispatch does not look at that queue).
      if (job.state === 'PENDING' && job.reason === 'Priority' && this.queueStates.get(job.hpcqueueId) === 'stopped') job = { ...job, reason: 'QueueStopped' };
      return this.active.set(job);
    }
    const entry = this.arrays.get(job.id);
    if (entry) entry.job = { ...job, instanceCounts: { ...entry.counts } };
  }

  /** An instance's change is durable: count it, and move its array job on if its state follows. */
  private instanceChanged(instance: Job, previousState: JobState): void {
    const entry = this.arrays.get(instance.arrayInstance!.arrayJobId);
    if (!entry) return;
    entry.counts[previousState]--;
    entry.counts[instance.state]++;
    entry.job = { ...entry.job, instanceCounts: { ...entry.counts } };
    this.followArray(entry.job.id);
  }

  /** Stores the array job's state when its instances' counts call for another. */
  private followArray(arrayJobId: number): void {
    const entry = this.arrays.get(arrayJobId);
    if (!entry) return;
    const { job, counts } = entry;
    const next = arrayJobState(counts, job.array!.count, entry.cancelledBy !== undefined, job.state);
    if (next === job.state) return;
    const unfinished = job.array!.count - counts.COMPLETED;
    const reason =
      next === 'CANCELLED'
        ? entry.cancelledBy ? `Cancelled by ${entry.cancelledBy}` : 'ArrayInstancesCancelled: no instance started'
        : next === 'FAILED'
          ? `ArrayInstancesFailed: ${unfinished} of ${job.array!.count} instances did not complete`
          : '';
    void this.track(this.applyTransitions([{ job, to: next, reason }])).catch((err: unknown) =>
      this.deps.log.error({ err, jobId: arrayJobId }, 'could not store the state of an array job; it follows its instances again after a restart'),
    );
  }

  /** Cancels an array: its pending instances at once, its running ones through their supervisors. */
  private async cancelArray(arrayJob: Job, requestedBy: string, asAdmin: boolean): Promise<Job> {
    const entry = this.arrays.get(arrayJob.id);
    if (!entry) throw new HpcqError('FailedOperation.JobAlreadyFinished', 'precondition', `job ${arrayJob.id} already ended (${arrayJob.state})`, 'job_id');
    entry.cancelledBy ??= requestedBy;
    const instances: Job[] = [];
    for (let id = arrayJob.id + 1; id <= arrayJob.id + arrayJob.array!.count; id++) {
      const job = this.active.get(id);
      if (job) instances.push(job);
    }
    const remote = instances.filter((j) => this.isWithBackend(j));
    const pending = instances.filter((j) => j.state === 'PENDING' && !remote.includes(j));
    if (pending.length > 0) await this.applyTransitions(pending.map((job) => ({ job, to: 'CANCELLED' as const, reason: `Cancelled by ${requestedBy}` })));
    await Promise.all(remote.map((j) => this.cancelRemote(j, requestedBy, asAdmin)));
    await Promise.all(instances.filter((j) => j.state === 'RUNNING' && !remote.includes(j)).map((j) => this.cancelRunning(j, requestedBy)));
    return this.freshest(entry.job);
  }

  /** Jobs a pass skipped for their user's max_running_per_user: their reason is set after it. */
  private readonly cappedByUser: number[] = [];

  private hasPerUserRunningCaps(): boolean {
    for (const q of this.queues.values()) if (q.maxRunningPerUser > 0) return true;
    return false;
  }

  /**
   * A user's pending jobs in a queue (an array with instances still waiting counts once). A walk of
   * every pending job (parked ones too), made only for queues with max_pending_per_user.
   */
  private userPending(hpcqueueId: string, runUser: string): number {
    let pending = 0;
    for (const job of this.active.pending()) if (job.hpcqueueId === hpcqueueId && job.runUser === runUser && !job.arrayInstance) pending++;
    for (const { job, counts } of this.arrays.values()) if (job.hpcqueueId === hpcqueueId && job.runUser === runUser && counts.PENDING > 0) pending++;
    return pending;
  }

  private hasCappedArrays(): boolean {
    for (const { job } of this.arrays.values()) if (job.array!.parallelism > 0) return true;
    return false;
  }

  // ---- schedules -------------------------------------------------------------------------------

  /** Told once a job made by a schedule (not an array instance) has durably ended. */
  onScheduledJobEnded: ((job: Job) => void) | undefined;

  /** The active (pending or running) jobs made by schedules, array jobs included, instances not. */
  activeScheduledJobs(): Job[] {
    const jobs: Job[] = [];
    for (const { job } of this.arrays.values()) if (job.schedule) jobs.push(job);
    for (const job of this.active.pending()) if (job.schedule && !job.arrayInstance) jobs.push(job);
    for (const job of this.active.running()) if (job.schedule && !job.arrayInstance) jobs.push(job);
    return jobs;
  }

  /** Whether the job is pending or running (an array: while any instance has not ended). */
  isActive(jobId: number): boolean {
    return this.active.get(jobId) !== undefined || this.arrays.has(jobId);
  }

  /** Cancels a job for a schedule's REPLACE policy (no caller to check: the schedule made it). */
  async cancelFor(jobId: number, requestedBy: string): Promise<void> {
    this.assertStarted();
    const array = this.arrays.get(jobId);
    if (array) {
      await this.cancelArray(array.job, requestedBy, true);
      return;
    }
    const job = this.active.get(jobId);
    if (job && this.isWithBackend(job)) await this.cancelRemote(job, requestedBy, true);
    else if (job?.state === 'PENDING') await this.applyTransitions([{ job, to: 'CANCELLED', reason: `Cancelled by ${requestedBy}` }]);
    else if (job?.state === 'RUNNING') await this.cancelRunning(job, requestedBy);
  }

  // ---- clusters another scheduler runs (Slurm) -------------------------------------------------

  private backendOf(job: Pick<Job, 'clusterId'>): ClusterBackend | undefined {
    return this.deps.backends?.get(job.clusterId);
  }

  /** The partition behind a queue of a cluster another scheduler runs; undefined for a local queue. */
  async partitionOf(hpcqueueId: string): Promise<PartitionInfo | undefined> {
    const queue = this.queues.get(hpcqueueId);
    const backend = queue && this.deps.backends?.get(queue.clusterId);
    return backend ? backend.partition(queue.schedulerQueueName) : undefined;
  }

  /** Whether the job's cluster scheduler has (or may have) the job: cancels go through it. */
  private isWithBackend(job: Job): boolean {
    return this.backendOf(job) !== undefined && (this.handed.has(job.id) || job.backendSubmitting || job.backendJobId !== '' || job.state === 'RUNNING');
  }

  /** The queues of clusters another scheduler runs, and the node's own: fixed until the next reconfigure. */
  private splitQueues(queues: ReadonlyMap<string, QueueConfig>): void {
    const remote = new Set<string>();
    for (const q of queues.values()) if (this.deps.backends?.has(q.clusterId)) remote.add(q.hpcqueueId);
    this.remoteQueues = remote;
    this.localQueues = new Set([...queues.keys()].filter((id) => !remote.has(id)));
  }

  /** A cluster's scheduler enforces cores, memory and time; resource_limit keys it cannot are refused. */
  private assertBackendTakes(spec: JobSpec): void {
    if (this.backendOf(spec) && spec.resourceLimit !== '') {
      throw new HpcqError(
        'InvalidParameter.ResourceLimitUnsupported',
        'invalid',
        `cluster ${spec.clusterId} is run by Slurm, which does not enforce resource_limit ${quoteValue(spec.resourceLimit)}; leave it empty there`,
        'resource_limit',
      );
    }
  }

  /** At start-up: a job handed before the restart is followed again (or handed again, looking first). */
  private followRemote(job: Job): void {
    const backend = this.backendOf(job);
    if (!backend || isTerminal(job.state) || job.array) return;
    if (job.backendJobId !== '') {
      if (job.state === 'PENDING') this.handed.add(job.id);
      this.active.refresh(job.id);
      const array = job.arrayInstance && job.backendJobId.includes('_') ? this.arrays.get(job.arrayInstance.arrayJobId)?.job : undefined;
      backend.track(job, job.backendJobId, array && backend.tagOf(array));
    }
    // backendSubmitting without an id: the next pass hands it again, looking for it first.
  }

  /** Hands the pending jobs of remote queues that may start to their schedulers (bounded per pass). */
  private handToBackends(): void {
    let budget = HAND_PER_PASS - this.handArraysWhole(HAND_PER_PASS);
    const view = this.withoutQueues(this.pendingView(), this.localQueues);
    // Handed jobs per queue, counted once per pass (they hold room under max_running).
    const handedByQueue = new Map<string, number>();
    for (const id of this.handed) {
      const queueId = this.active.get(id)?.hpcqueueId;
      if (queueId !== undefined) handedByQueue.set(queueId, (handedByQueue.get(queueId) ?? 0) + 1);
    }
    for (const [queueId, jobs] of view) {
      const queue = this.queues.get(queueId)!;
      const backend = this.deps.backends!.get(queue.clusterId)!;
      const down = backend.unavailable();
      if (down !== undefined) {
        // Nothing is handed while the scheduler does not answer; the jobs say why they wait.
        const reason = `SlurmUnavailable: ${down}`;
        const waiting = [...limit(jobs, 1000)].filter((j) => j.reason !== reason);
        for (const job of waiting) this.active.set({ ...job, reason });
        if (!this.backendRetryScheduled) {
          this.backendRetryScheduled = true;
          setTimeout(() => {
            this.backendRetryScheduled = false;
            this.scheduleDispatch();
          }, BACKEND_RETRY_MS).unref();
        }
        continue;
      }
      let room = queue.maxRunning > 0 ? queue.maxRunning - this.active.countsOf(queueId).running - (handedByQueue.get(queueId) ?? 0) : Infinity;
      const hand: Job[] = [];
      for (const job of jobs) {
        if (budget <= 0 || room <= 0) break;
        hand.push(job);
        budget--;
        room--;
      }
      // Parked before the first await, so the next pass does not hand them again.
      for (const job of hand) {
        this.handed.add(job.id);
        this.active.refresh(job.id);
        void this.track(this.handToBackend(job.id, backend));
      }
      if (budget <= 0) {
        this.scheduleDispatch();
        return;
      }
    }
  }

  /**
   * Arrays of remote queues whose instances may all start now, each handed as one submission
   * (Slurm's --array, throttled by Slurm to the array's parallelism). An array that does not
   * qualify as a whole (an instance held, waiting, retried or already handed; a queue cap hpcq
   * counts per job) has its instances handed one by one, throttled by hpcq. Returns the number of
   * submissions begun.
   */
  private handArraysWhole(budget: number): number {
    let begun = 0;
    for (const { job: array, counts } of this.arrays.values()) {
      if (begun >= budget) break;
      if (counts.PENDING !== array.array!.count || this.localQueues.has(array.hpcqueueId)) continue;
      const queue = this.queues.get(array.hpcqueueId);
      const backend = queue && this.deps.backends?.get(queue.clusterId);
      if (!queue || !backend || backend.unavailable() !== undefined || this.queueState(queue.hpcqueueId) === 'stopped') continue;
      if (queue.maxRunningPerUser > 0) continue;
      const startable = (j: Job | undefined): j is Job =>
        j !== undefined && j.state === 'PENDING' && j.attempt === 1 && j.backendJobId === '' && !this.handed.has(j.id) && !this.held.has(j.id) && !this.dependencies.isWaiting(j.id) && !this.backingOff.has(j.id);
      if (!startable(this.active.get(array.id + 1))) continue; // the usual case of a waiting array, without a walk
      const instances = this.instancesOf(array);
      if (!instances || !instances.every(startable)) continue;
      // "Submitting" is stored for all instances in one batch: all of them or none carry it.
      const submitting = instances.filter((j) => j.backendSubmitting).length;
      if (submitting !== 0 && submitting !== instances.length) continue;
      if (queue.maxRunning > 0) {
        let holding = this.active.countsOf(queue.hpcqueueId).running;
        for (const id of this.handed) if (this.active.get(id)?.hpcqueueId === queue.hpcqueueId) holding++;
        if (queue.maxRunning - holding < instances.length) continue;
      }
      for (const job of instances) {
        this.handed.add(job.id);
        this.active.refresh(job.id);
      }
      begun++;
      void this.track(this.handArrayToBackend(array.id, backend));
    }
    return begun;
  }

  /** Every instance of an array job from memory, by index; undefined if one is not active. */
  private instancesOf(array: Job): Job[] | undefined {
    const instances: Job[] = [];
    for (let id = array.id + 1; id <= array.id + array.array!.count; id++) {
      const job = this.active.get(id);
      if (!job) return undefined;
      instances.push(job);
    }
    return instances;
  }

  /** handToBackend for a whole array: "submitting" on every instance, one submission, then each instance's task id. */
  private async handArrayToBackend(arrayJobId: number, backend: ClusterBackend): Promise<void> {
    const array = this.arrays.get(arrayJobId)?.job;
    let instances = array && this.instancesOf(array);
    const release = () => {
      for (let id = arrayJobId + 1; id <= arrayJobId + (array?.array?.count ?? 0); id++) {
        this.handed.delete(id);
        this.active.refresh(id);
      }
    };
    if (!array || !instances || instances.some((j) => j.state !== 'PENDING')) {
      release();
      return this.scheduleDispatch();
    }
    let arrayBackendId: string;
    try {
      const mayExist = instances[0]!.backendSubmitting;
      if (!mayExist) instances = await this.applyTransitions(instances.map((job) => ({ job: { ...job, backendSubmitting: true }, to: 'PENDING' as const, reason: 'SlurmSubmitting' })));
      arrayBackendId = await backend.submitArray(array, instances, mayExist);
    } catch (err) {
      const why = (err as Error).message;
      this.deps.log.warn({ jobId: arrayJobId, err: why }, 'could not hand the array job to its cluster scheduler; trying again');
      for (const job of instances) {
        const current = this.active.get(job.id);
        if (current?.state === 'PENDING') this.active.set({ ...current, reason: `SlurmUnavailable: ${why}` });
      }
      setTimeout(() => {
        release();
        this.scheduleDispatch();
      }, BACKEND_RETRY_MS).unref();
      return;
    }
    // Cancels asked for meanwhile waited for the ids (cancelRemote); every instance is still pending.
    const current = instances.map((j) => this.active.get(j.id)).filter((j): j is Job => j?.state === 'PENDING');
    const taskId = (job: Job) => `${arrayBackendId}_${job.arrayInstance!.index}`;
    const stored = await this.applyTransitions(current.map((job) => ({ job: { ...job, backendJobId: taskId(job), backendSubmitting: false }, to: 'PENDING' as const, reason: `Slurm: submitted as job ${taskId(job)}` })));
    const tag = backend.tagOf(array);
    for (const job of stored) backend.track(job, job.backendJobId, tag);
    for (const job of stored) {
      const cancelledBy = this.cancelRequested.get(job.id);
      if (cancelledBy !== undefined) await this.cancelRemote(job, cancelledBy, this.cancelAsAdmin.has(job.id));
    }
  }

  /**
   * One attempt to its cluster's scheduler: "submitting" is stored first, so that after a crash or
   * a failed sbatch the attempt is looked for before it is submitted again; then the scheduler's id.
   */
  private async handToBackend(jobId: number, backend: ClusterBackend): Promise<void> {
    let job = this.active.get(jobId);
    if (!job || job.state !== 'PENDING') return void this.handed.delete(jobId);
    const mayExist = job.backendSubmitting;
    let backendId: string;
    try {
      if (!mayExist) [job] = await this.applyTransitions([{ job: { ...job, backendSubmitting: true }, to: 'PENDING', reason: 'SlurmSubmitting' }]);
      // A first attempt of an array instance may have gone to the scheduler inside its array's single submission.
      const array = job!.arrayInstance && job!.attempt === 1 ? this.arrays.get(job!.arrayInstance.arrayJobId)?.job : undefined;
      backendId = await backend.submit(job!, mayExist, mayExist && array ? { arrayTag: backend.tagOf(array), index: job!.arrayInstance!.index } : undefined);
    } catch (err) {
      const why = (err as Error).message;
      this.deps.log.warn({ jobId, err: why }, 'could not hand the job to its cluster scheduler; trying again');
      const current = this.active.get(jobId);
      if (current?.state === 'PENDING') this.active.set({ ...current, reason: `SlurmUnavailable: ${why}` });
      setTimeout(() => {
        this.handed.delete(jobId);
        this.active.refresh(jobId);
        this.scheduleDispatch();
      }, BACKEND_RETRY_MS).unref();
      return;
    }
    const current = this.active.get(jobId);
    if (!current || current.state !== 'PENDING') return void this.handed.delete(jobId);
    const [stored] = await this.applyTransitions([{ job: { ...current, backendJobId: backendId, backendSubmitting: false }, to: 'PENDING', reason: `Slurm: submitted as job ${backendId}` }]);
    backend.track(stored!, backendId);
    const cancelledBy = this.cancelRequested.get(jobId);
    if (cancelledBy !== undefined) await this.cancelRemote(stored!, cancelledBy, this.cancelAsAdmin.has(jobId));
  }

  /** A backend's report, applied after the job's earlier ones. */
  private backendReported(jobId: number, report: BackendReport): void {
    const previous = this.backendReports.get(jobId) ?? Promise.resolve();
    const next = previous
      .then(() => this.applyBackendReport(jobId, report))
      .catch((err: unknown) => this.deps.log.error({ err, jobId }, 'could not apply what the cluster scheduler reported'));
    this.backendReports.set(jobId, next);
    void this.track(next.finally(() => this.backendReports.get(jobId) === next && this.backendReports.delete(jobId)));
  }

  private async applyBackendReport(jobId: number, report: BackendReport): Promise<void> {
    const job = this.active.get(jobId);
    if (!job) return;
    if (report.kind === 'pending') {
      if (job.state === 'PENDING' && job.reason !== report.reason) this.active.set({ ...job, reason: report.reason });
      return;
    }
    if (job.state === 'PENDING') {
      this.handed.delete(jobId);
      const cancelled = report.kind === 'ended' && report.outcome.state === 'CANCELLED';
      if (cancelled) {
        const by = this.cancelRequested.get(jobId);
        this.cancelRequested.delete(jobId);
        this.cancelAsAdmin.delete(jobId);
        await this.applyTransitions([{ job, to: 'CANCELLED', reason: by ? `Cancelled by ${by}` : report.outcome.reason, timeMs: report.outcome.endTimeMs }]);
        return;
      }
      await this.applyTransitions([{ job, to: 'RUNNING', reason: '', timeMs: report.kind === 'running' ? report.timeMs : report.outcome.endTimeMs }]);
    }
    if (report.kind === 'ended') await this.recordOutcome(jobId, report.outcome);
  }

  /**
   * Cancels a job its cluster's scheduler has (or is being given): scancel as the user (as root for
   * an admin). A pending job that Slurm confirms cancelled ends CANCELLED at once; a running one
   * when the scheduler reports its end.
   */
  private async cancelRemote(job: Job, requestedBy: string, asAdmin: boolean): Promise<void> {
    const backend = this.backendOf(job)!;
    this.cancelRequested.set(job.id, requestedBy);
    if (asAdmin) this.cancelAsAdmin.add(job.id);
    if (job.backendJobId === '') return; // Being handed: cancelled once it has its id.
    if (job.state === 'RUNNING') job = (await this.storeCancelRequest(job.id, requestedBy)) ?? job;
    const result = await backend.cancel(job, job.backendJobId, asAdmin);
    const current = this.active.get(job.id);
    if (result === 'cancelled' && current?.state === 'PENDING') {
      backend.untrack(job.id);
      this.handed.delete(job.id);
      this.cancelRequested.delete(job.id);
      this.cancelAsAdmin.delete(job.id);
      await this.applyTransitions([{ job: current, to: 'CANCELLED', reason: `Cancelled by ${requestedBy}` }]);
    }
  }

  // ---- queue states ----------------------------------------------------------------------------

  /** A queue's state: open unless drained or stopped. */
  queueState(hpcqueueId: string): QueueState {
    return this.queueStates.get(hpcqueueId) ?? 'open';
  }

  /**
   * Drains (takes no new jobs, starts those it holds), stops (takes jobs, starts none) or resumes a
   * queue, like Slurm's partition DRAIN / DOWN / UP. Stored, so it survives restarts. Admins only.
   */
  async setQueueState(hpcqueueId: string, state: QueueState, principal: Principal): Promise<QueueState> {
    this.assertStarted();
    if (!isAdmin(principal, this.accessContext())) {
      throw new HpcqError('OperationDenied.AdminRequired', 'permission', `changing a queue's state needs an admin; ${principal.name} is not one`, 'hpcqueue_id');
    }
    if (!this.queues.has(hpcqueueId)) throw new HpcqError('ResourceNotFound.Queue', 'not_found', `queue ${quoteValue(hpcqueueId)} does not exist`, 'hpcqueue_id');
    await this.track(this.deps.store.saveQueueState(hpcqueueId, state));
    if (state === 'open') this.queueStates.delete(hpcqueueId);
    else this.queueStates.set(hpcqueueId, state);
    // A stopped queue's jobs say why they wait; resumed, they wait for the usual reasons again.
    const reason = state === 'stopped' ? 'QueueStopped' : 'Priority';
    for (const job of [...(this.active.pendingByQueue.get(hpcqueueId) ?? [])]) {
      if (job.reason === 'QueueStopped' || state === 'stopped') this.active.set({ ...job, reason });
    }
    this.deps.log.info({ hpcqueueId, state }, 'queue state changed');
    this.scheduleDispatch();
    return state;
  }

  private assertQueueTakesJobs(queue: QueueConfig): void {
    if (this.queueState(queue.hpcqueueId) === 'draining') {
      throw new HpcqError('OperationDenied.QueueDraining', 'precondition', `queue ${queue.hpcqueueId} is draining: it takes no new jobs`, 'hpcqueue_id');
    }
  }

  /** Each queue's pending jobs that may start now, in dispatch order. */
  private pendingView(): ReadonlyMap<string, Iterable<Job>> {
    return !this.hasCappedArrays() && !this.hasPerUserRunningCaps() ? this.active.pendingByQueue : this.pendingNotWaiting();
  }

  /** The pending view without stopped queues (nothing of theirs starts) and without `excluded`. */
  private withoutQueues(pending: ReadonlyMap<string, Iterable<Job>>, excluded: ReadonlySet<string>): ReadonlyMap<string, Iterable<Job>> {
    let anyStopped = false;
    for (const state of this.queueStates.values()) if (state === 'stopped') anyStopped = true;
    if (!anyStopped && excluded.size === 0) return pending;
    return new Map([...pending].filter(([queue]) => this.queueState(queue) !== 'stopped' && !excluded.has(queue)));
  }

  // ---- hold and release ------------------------------------------------------------------------

  /**
   * Holds a pending job (or every pending instance of an array) back from dispatch, as Slurm's
   * scontrol hold: reason JobHeldUser, or JobHeldAdmin when an admin holds it.
   */
  async hold(idOrUuid: string, principal: Principal): Promise<Job> {
    this.assertStarted();
    const found = await this.findActable(idOrUuid, principal, 'hold');
    const heldBy = isAdmin(principal, this.accessContext()) ? 'admin' : 'user';
    const reason = heldBy === 'admin' ? 'JobHeldAdmin' : 'JobHeldUser';
    const pending = this.pendingTargets(found);
    const targets = pending.filter((j) => j.heldBy !== heldBy && !this.isWithBackend(j));
    if (pending.every((j) => this.isWithBackend(j))) {
      throw new HpcqError('FailedOperation.JobWithScheduler', 'precondition', `job ${found.id} is already with its cluster's scheduler (Slurm); cancel it instead`, 'job_id');
    }
    if (targets.length > 0) await this.applyTransitions(targets.map((job) => ({ job: { ...job, heldBy }, to: 'PENDING' as const, reason })));
    return this.freshest(found);
  }

  /** Releases a held job (or an array's held instances); an admin's hold needs an admin. */
  async release(idOrUuid: string, principal: Principal): Promise<Job> {
    this.assertStarted();
    const found = await this.findActable(idOrUuid, principal, 'release');
    const admin = isAdmin(principal, this.accessContext());
    const targets = this.pendingTargets(found).filter((j) => j.heldBy !== '');
    if (targets.length === 0) throw new HpcqError('FailedOperation.JobNotHeld', 'precondition', `job ${found.id} is not held`, 'job_id');
    if (!admin && targets.some((j) => j.heldBy === 'admin')) {
      throw new HpcqError('OperationDenied.AdminHold', 'permission', `job ${found.id} was held by an admin; only an admin releases it`, 'job_id');
    }
    const now = this.now();
    await this.applyTransitions(targets.map((job) => ({ job: { ...job, heldBy: '' as const }, to: 'PENDING' as const, reason: job.eligibleAtMs > now ? 'BeginTime' : 'Priority' })));
    this.scheduleDispatch();
    return this.freshest(found);
  }

  /** A job the principal may act on, for hold/release: NOT_FOUND if invisible, JobNotOwned if only visible. */
  private async findActable(idOrUuid: string, principal: Principal, what: string): Promise<Job> {
    const found = await this.findVisibleJob(idOrUuid, principal);
    if (!mayActOnJob(principal, await this.accountOf(found), this.accessContext())) {
      throw new HpcqError('OperationDenied.JobNotOwned', 'permission', `${principal.name} may not ${what} job ${found.id} of ${found.runUser}`, 'job_id');
    }
    return found;
  }

  /** The pending jobs a hold or release of `job` acts on: itself, or an array's pending instances. */
  private pendingTargets(job: Job): Job[] {
    if (job.array) {
      const instances: Job[] = [];
      for (let id = job.id + 1; id <= job.id + job.array.count; id++) {
        const instance = this.active.get(id);
        if (instance?.state === 'PENDING') instances.push(instance);
      }
      if (instances.length === 0) throw new HpcqError('FailedOperation.JobNotPending', 'precondition', `array job ${job.id} has no pending instances`, 'job_id');
      return instances;
    }
    const current = this.active.get(job.id);
    if (current?.state !== 'PENDING') throw new HpcqError('FailedOperation.JobNotPending', 'precondition', `job ${job.id} is ${(current ?? job).state}, not PENDING`, 'job_id');
    return [current];
  }

  // ---- retries ---------------------------------------------------------------------------------

  /** Keeps a retried job out of dispatch until its backoff has passed (survives restarts: eligibleAtMs is stored). */
  private holdUntilEligible(job: Job): void {
    const delayMs = job.eligibleAtMs - this.now();
    if (delayMs <= 0) return;
    this.backingOff.add(job.id);
    this.active.refresh(job.id);
    setTimeout(() => {
      this.backingOff.delete(job.id);
      this.active.refresh(job.id);
      this.scheduleDispatch();
    }, delayMs).unref();
  }

  // ---- access ----------------------------------------------------------------------------------

  private accessContext(): AccessContext {
    return { access: this.config.access, daemonUid: this.deps.daemonUid };
  }

  /** The job a job_id / uuid names, if `principal` may see it; else ResourceNotFound.Job as if there were none. */
  private async findVisibleJob(idOrUuid: string, principal: Principal): Promise<Job> {
    const job = await this.findJob(idOrUuid);
    if (!mayViewJob(principal, await this.accountOf(job), this.accessContext())) throw jobNotFound(idOrUuid);
    return job;
  }

  /**
   * The account a job runs as, for access decisions: as NSS has it now, or, when the account is
   * gone or its uid changed, the stored uid with no groups (so a new owner of the name gains nothing).
   */
  private async accountOf(job: Job): Promise<UserAccount> {
    const account = await this.deps.users.lookup(job.runUser).catch(() => undefined);
    if (account && account.uid === job.uid) return account;
    return { name: job.runUser, uid: job.uid, gid: job.gid, home: job.home, shell: job.shell, groups: [] };
  }

  /**
   * The policy again, just before a job starts: its account must still exist unchanged, still be
   * one jobs may run as, and its queue must still take it (a reload may have changed either).
   * Throws LaunchError (the job ends FAILED, LaunchFailed: <reason>) and nothing of it runs.
   */
  private async assertStillAllowed(job: Job): Promise<void> {
    const account = await this.deps.users.lookup(job.runUser);
    if (!account) throw new LaunchError(`OperationDenied.RunUserNotFound: account ${job.runUser} no longer exists`);
    if (account.uid !== job.uid || account.gid !== job.gid) {
      throw new LaunchError(`OperationDenied.RunUserChanged: account ${job.runUser} is now uid ${account.uid} gid ${account.gid}, was ${job.uid}/${job.gid} at submit`);
    }
    try {
      assertRunnableAccount(account, this.accessContext());
      const queue = this.queues.get(job.hpcqueueId);
      if (queue) assertQueueAllows(queue, account);
    } catch (err) {
      if (err instanceof HpcqError) throw new LaunchError(`${err.code}: ${err.message}`);
      throw err;
    }
  }

  // ---- history: finished jobs by end time (ListJobs with end_after / end_before) ----------------

  /**
   * The finished jobs `principal` may see that ended in `window` and match `filter`, the latest end
   * first (sacct -S/-E). Scoped like listJobs; array instances are left out unless asked for.
   */
  async listEndedJobs(filter: JobFilter, window: EndWindow, principal: Principal, pageSize: number, after?: EndCursor, includeInstances = false): Promise<EndedJobPage> {
    this.assertStarted();
    const requested = filter.runUser ? await this.deps.users.lookup(filter.runUser) : undefined;
    const scope = listScope(principal, filter.runUser ?? '', requested, this.accessContext());
    if (scope === 'nothing') return { jobs: [] };
    const scoped = { ...filter, ...scope };
    if (includeInstances) return this.deps.store.listEndedJobs(scoped, window, pageSize, after);
    // As listWithoutInstances: bounded, so a page after many store pages of instances may come back short.
    const jobs: Job[] = [];
    let next = after;
    for (let round = 0; round < 20 && jobs.length < pageSize; round++) {
      const page = await this.deps.store.listEndedJobs(scoped, window, pageSize, next);
      for (const job of page.jobs) if (!job.arrayInstance && jobs.length < pageSize) jobs.push(job);
      next = page.next;
      if (next === undefined) break;
    }
    const last = jobs.at(-1);
    if (next === undefined && jobs.length < pageSize) return { jobs };
    return { jobs, ...(last ? { next: { endTimeMs: last.endTimeMs, id: last.id } } : next !== undefined ? { next } : {}) };
  }

  // ---- cancelling many jobs at once (CancelJobs: scancel with several ids or with filters) --------

  /**
   * Cancels the jobs named in `selection.jobIds` and every active job matching all its filters. The
   * ids and the run users' accounts are looked up first; then, without yielding to the event loop,
   * the jobs are chosen from memory and every pending one is cancelled in one applyTransitions
   * batch (which updates memory before its first await), so no dispatch pass can start any of them
   * in between. Running jobs are then asked to end, and jobs with a cluster's scheduler are
   * cancelled there, exactly as cancel() does. A job the caller may not see is never matched; one
   * it may see but not act on, or a named one that cannot be cancelled, is a failure entry.
   */
  async cancelMany(selection: CancelSelection, principal: Principal): Promise<CancelManyResult> {
    this.assertStarted();
    const { jobIds, states = [], signal } = selection;
    const hasFilter = Boolean(selection.runUser || selection.name || selection.hpcqueueId || selection.clusterId);
    if (jobIds.length === 0 && !hasFilter) {
      throw new HpcqError('InvalidParameter.NoJobsSelected', 'invalid', 'name jobs in job_ids or give run_user, name, queue or cluster_id: CancelJobs never cancels every job', 'job_ids');
    }
    const inactive = states.find((st) => st !== 'PENDING' && st !== 'RUNNING');
    if (inactive !== undefined) throw new HpcqError('InvalidParameterValue.JobState', 'invalid', `only PENDING and RUNNING jobs can be cancelled, not ${inactive}`, 'states');
    const failures: CancelManyResult['failures'] = [];
    const fail = (jobId: string, error: HpcqError) => failures.push({ jobId, error });
    // Named jobs: found (and their visibility checked) before the selection; store reads are async.
    const named: Array<{ asked: string; job: Job }> = [];
    for (const asked of jobIds) {
      try {
        named.push({ asked, job: await this.findVisibleJob(asked, principal) });
      } catch (err) {
        if (!(err instanceof HpcqError)) throw err;
        fail(asked, err);
      }
    }
    // Accounts decide visibility and ownership; NSS lookups are async, so they are made before the
    // synchronous selection (again for run users that appeared meanwhile, a bounded number of times).
    const accounts = new Map<string, UserAccount | undefined>();
    for (let round = 0; round < 3; round++) {
      const missing = new Set<string>();
      for (const job of this.cancelCandidates(named.map((n) => n.job), hasFilter)) if (!accounts.has(job.runUser)) missing.add(job.runUser);
      if (missing.size === 0) break;
      await Promise.all([...missing].map(async (user) => accounts.set(user, await this.deps.users.lookup(user).catch(() => undefined))));
    }
    // ---- from here to the first await: no dispatch pass can run ----
    const ctx = this.accessContext();
    const requestedBy = describePrincipal(principal);
    const asAdmin = isAdmin(principal, ctx);
    const matches = (job: Job): string | undefined => {
      if (selection.runUser && job.runUser !== selection.runUser) return `its run user is ${job.runUser}`;
      if (selection.name && job.name !== selection.name) return `its name is ${job.name}`;
      if (selection.hpcqueueId && job.hpcqueueId !== selection.hpcqueueId) return `its queue is ${job.hpcqueueId}`;
      if (selection.clusterId && job.clusterId !== selection.clusterId) return `its cluster is ${job.clusterId}`;
      if (states.length > 0 && !states.includes(job.state)) return `it is ${job.state}`;
      return undefined;
    };
    const targets: Job[] = [];
    const chosen = new Set<number>();
    const take = (job: Job, asked: string, isNamed: boolean) => {
      if (chosen.has(job.id)) return;
      const looked = accounts.get(job.runUser);
      const account = looked && looked.uid === job.uid ? looked : { name: job.runUser, uid: job.uid, gid: job.gid, home: job.home, shell: job.shell, groups: [] };
      if (!isNamed && !mayViewJob(principal, account, ctx)) return;
      chosen.add(job.id);
      if (!mayActOnJob(principal, account, ctx)) {
        fail(asked, new HpcqError('OperationDenied.JobNotOwned', 'permission', `${principal.name} may not cancel job ${job.id} of ${job.runUser}`, 'job_id'));
        return;
      }
      targets.push(job);
    };
    for (const { asked, job: found } of named) {
      const job = found.array ? this.arrays.get(found.id)?.job : this.active.get(found.id);
      if (!job) {
        fail(asked, new HpcqError('FailedOperation.JobAlreadyFinished', 'precondition', `job ${found.id} already ended (${found.state})`, 'job_id'));
        continue;
      }
      const mismatch = matches(job);
      if (mismatch !== undefined) {
        fail(asked, new HpcqError('FailedOperation.JobNotMatched', 'precondition', `job ${job.id} does not match the filters: ${mismatch}`, 'job_id'));
        continue;
      }
      take(job, asked, true);
    }
    if (hasFilter) {
      const found = [...this.cancelCandidates([], true)].filter((job) => matches(job) === undefined).sort((a, b) => a.id - b.id);
      for (const job of found) take(job, String(job.id), false);
    }
    // Every pending job in one batch; running ones through their supervisors; remote ones via their scheduler.
    const batch: Array<{ job: Job; to: JobState; reason: string }> = [];
    /** The target (a job, or the array an instance is of) each part of the work cancels. */
    const batchTargets: number[] = [];
    const asks: Array<{ targetId: number; jobId: number; done: Promise<unknown> }> = [];
    const handled = new Set<number>();
    const reason = `Cancelled by ${requestedBy}`;
    const cancelOne = (job: Job, targetId: number) => {
      // A named instance of a named (or matched) array is cancelled once.
      if (handled.has(job.id)) return;
      handled.add(job.id);
      if (signal !== undefined) {
        // scancel --signal: running jobs get the signal and go on; pending ones are left alone.
        if (job.state === 'RUNNING') asks.push({ targetId, jobId: job.id, done: this.signalRunning(job, signal, asAdmin) });
      } else if (this.isWithBackend(job)) asks.push({ targetId, jobId: job.id, done: this.cancelRemote(job, requestedBy, asAdmin) });
      else if (job.state === 'PENDING') {
        batch.push({ job, to: 'CANCELLED', reason });
        batchTargets.push(targetId);
      } else if (job.state === 'RUNNING') asks.push({ targetId, jobId: job.id, done: this.cancelRunning(job, requestedBy) });
    };
    for (const job of targets) {
      const entry = job.array ? this.arrays.get(job.id) : undefined;
      if (!entry) {
        cancelOne(job, job.id);
        continue;
      }
      // As cancelArray: the array job follows its instances and ends CANCELLED (not for a signal).
      if (signal === undefined) entry.cancelledBy ??= requestedBy;
      for (let id = job.id + 1; id <= job.id + job.array!.count; id++) {
        const instance = this.active.get(id);
        if (instance) cancelOne(instance, job.id);
      }
    }
    const stored = batch.length > 0 ? this.applyTransitions(batch) : Promise.resolve([]);
    // ---- the selection is in effect: awaiting is safe from here on ----
    const storeError = await stored.then(
      () => undefined,
      (err: unknown) => err,
    );
    const failed = new Map<number, HpcqError>();
    if (storeError !== undefined) {
      if (!(storeError instanceof HpcqError)) throw storeError;
      for (const id of batchTargets) failed.set(id, storeError);
    }
    for (const { targetId, jobId, done } of asks) {
      await done.catch((err: unknown) => {
        if (!(err instanceof HpcqError)) this.deps.log.error({ err, jobId }, 'cancelling a job of a CancelJobs request failed');
        const why = err instanceof HpcqError ? err : new HpcqError('FailedOperation.CancelFailed', 'internal', `job ${jobId} could not be cancelled; see the hpcqd log`, 'job_id');
        if (!failed.has(targetId)) failed.set(targetId, why);
      });
    }
    const jobs: Job[] = [];
    for (const job of targets) {
      const why = failed.get(job.id);
      if (why) fail(String(job.id), why);
      else jobs.push(await this.freshest(job));
    }
    return { jobs, failures };
  }

  /**
   * The active jobs CancelJobs may choose from, freshest views: the named ones and, with filters,
   * every pending or running job and array job (an array's instances go with it, not on their own).
   */
  private *cancelCandidates(named: readonly Job[], everyActive: boolean): Generator<Job> {
    for (const job of named) {
      const current = job.array ? this.arrays.get(job.id)?.job : this.active.get(job.id);
      if (current) yield current;
    }
    if (!everyActive) return;
    for (const { job } of this.arrays.values()) yield job;
    for (const job of this.active.pending()) if (!job.arrayInstance) yield job;
    for (const job of this.active.running()) if (!job.arrayInstance) yield job;
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /**
   * Applies state changes in memory at once (so dispatch sees them) and stores them in one synced
   * batch. Watches hear of a change only after it is durable. Resolves with the changed jobs.
   */
  private async applyTransitions(changes: Array<{ job: Job; to: JobState; reason: string; timeMs?: number }>): Promise<Job[]> {
    const transitions: JobTransition[] = changes.map(({ job, to, reason, timeMs }) => {
      const { job: next, event } = transition(job, to, reason, timeMs ?? this.now());
      return { job: next, previousState: job.state, event };
    });
    for (const t of transitions) this.remember(t.job);
    try {
      await this.track(this.deps.store.saveTransitions(transitions));
    } catch (err) {
      // The batch is all-or-nothing: the store still holds the previous states, so memory must too.
      for (const { job } of changes) this.remember(job);
      throw err;
    }
    for (const t of transitions) {
      this.watches.publish(t.job, t.event);
      if (t.previousState === 'PENDING') this.backingOff.delete(t.job.id);
      // Dependents are judged on a durable state only (a failed write changes nothing).
      this.dependencies.jobChanged(t.job, t.previousState);
      if (t.job.arrayInstance) this.instanceChanged(t.job, t.previousState);
      if (t.job.array && isTerminal(t.job.state)) this.arrays.delete(t.job.id);
      if (t.job.schedule && !t.job.arrayInstance && isTerminal(t.job.state)) this.onScheduledJobEnded?.(t.job);
      this.deps.onTransition?.(t.job, t.previousState, t.event);
    }
    return transitions.map((t) => t.job);
  }

  /** The job a job_id / hpcjob uuid names, freshest view; throws ResourceNotFound.Job if none. */
  private async findJob(idOrUuid: string): Promise<Job> {
    let job: Job | undefined;
    if (/^\d{1,15}$/.test(idOrUuid)) {
      const id = Number(idOrUuid);
      job = this.active.get(id) ?? this.arrays.get(id)?.job ?? (await this.deps.store.getJob(id));
    } else if (JOB_UUID_PATTERN.test(idOrUuid)) {
      const stored = await this.deps.store.getJobByUuid(idOrUuid);
      job = stored && (this.active.get(stored.id) ?? this.arrays.get(stored.id)?.job ?? stored);
    } else if (INSTANCE_ID_PATTERN.test(idOrUuid)) {
      const [, arrayId, index] = INSTANCE_ID_PATTERN.exec(idOrUuid)!;
      const array = await this.findJob(arrayId!);
      if (array.array && Number(index) < array.array.count) {
        const id = array.id + 1 + Number(index);
        job = this.active.get(id) ?? (await this.deps.store.getJob(id));
      }
    } else if (idOrUuid === '') {
      throw new HpcqError('MissingParameter.JobId', 'invalid', 'job_id is required', 'job_id');
    } else {
      throw new HpcqError('InvalidParameter.JobIdMalformed', 'invalid', 'job_id must be a numeric job id, <array job id>_<index> or an hpcjob-xxxxxxxx uuid', 'job_id');
    }
    if (!job) throw jobNotFound(idOrUuid);
    return job;
  }

  /** `job` as it is now: from memory while active, else as stored (a finished job is final as it is). */
  private async freshest(job: Job): Promise<Job> {
    if (isTerminal(job.state)) return job;
    return this.active.get(job.id) ?? this.arrays.get(job.id)?.job ?? (await this.deps.store.getJob(job.id)) ?? job;
  }

  private assertStarted(): void {
    if (this.state !== 'started') throw new HpcqError('ResourceUnavailable.ShuttingDown', 'unavailable', 'hpcqd is not accepting requests (starting or stopping)');
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    return this.inFlight.track(promise);
  }
}

/** What CancelJobs cancels: jobs by id, and/or every active job matching all the filters given. */
export interface CancelSelection {
  /** job_id, <array job id>_<index> or hpcjob uuid of each named job. */
  jobIds: readonly string[];
  runUser?: string;
  name?: string;
  /** PENDING and/or RUNNING; empty = both. */
  states?: readonly JobState[];
  hpcqueueId?: string;
  clusterId?: string;
  /** scancel --signal: this signal number goes to the running jobs selected, which are not cancelled. */
  signal?: number;
}

export interface CancelManyResult {
  /** The jobs whose cancel was accepted, as they are now. */
  jobs: Job[];
  /** Named or matched jobs that were not cancelled, with why (the error a CancelJob would give). */
  failures: Array<{ jobId: string; error: HpcqError }>;
}

/** The reason a new job is stored with: why it waits, most binding first. */
function firstReason(spec: JobSpec): string {
  if (spec.array) return `Array: ${spec.array.count} instances`;
  if (spec.holdAtSubmit) return spec.holdAtSubmit === 'admin' ? 'JobHeldAdmin' : 'JobHeldUser';
  if (spec.dependsOn.length > 0) return 'Dependency';
  return spec.beginAtMs !== undefined ? 'BeginTime' : 'Priority';
}

/**
 * The instances of an array job stored at batch position `arrayPosition`: jobs of their own, with
 * the array job's request but no array of their own, no client token and no group membership.
 */
function instanceSpecs(arraySpec: JobSpec, arrayPosition: number): JobSpec[] {
  const { array, group: _group, ...plain } = arraySpec;
  const count = array!.count;
  return Array.from({ length: count }, (_, index) => ({ ...plain, clientToken: '', arrayInstance: { arrayJobId: -(arrayPosition + 1), index, count } }));
}

function queuesById(config: DaemonConfig): ReadonlyMap<string, QueueConfig> {
  return new Map(config.clusters.flatMap((c) => c.queues.map((q) => [q.hpcqueueId, q] as const)));
}

/** How a cancel reason names who asked: `uid:1001 (alice)` or the certificate subject. */
function describePrincipal(principal: Principal): string {
  return principal.account && principal.via !== 'certificate' ? `${principal.name} (${principal.account.name})` : principal.name;
}

/** The first `n` items of an iterable. */
function* limit<T>(items: Iterable<T>, n: number): Generator<T> {
  if (n <= 0) return;
  for (const item of items) {
    yield item;
    if (--n <= 0) return;
  }
}
