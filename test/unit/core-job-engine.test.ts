// JobEngine against in-memory fakes of its ports: the use cases and dispatch, without a daemon.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { submitRequest } from '../support/submit-request.js';
import { testRunningJob } from '../support/job-spec.js';
import { resolveBatchSpec } from '../../src/core/batch.js';
import { compileConfig } from '../../src/config/load-config.js';
import type { DaemonConfig } from '../../src/config/daemon-config.js';
import type { Principal } from '../../src/core/access-policy.js';
import { HpcqError, StoreUnavailableError } from '../../src/core/errors.js';
import { isTerminal, newPendingJob, type Job, type JobEvent, type JobOutcome, type JobSpec } from '../../src/core/job.js';
import type { ClusterBackend, EndCursor, EndedJobPage, EndWindow, JobExecutor, JobFilter, JobPage, JobStore, JobTransition, QueueState, ReattachResult, UserAccount, UserDirectory } from '../../src/core/ports.js';
import type { SubmitRequest } from '../../src/core/submit-request.js';
import { JobEngine } from '../../src/engine/job-engine.js';
import { silentLogger } from '../../src/logger.js';

const HOST = { cores: 8, memoryMb: 16384, uid: 0 };
/** Two allocatable cores: two default jobs (1 core, 1024 MiB) run, a third waits. */
const CONFIG = compileConfig({ node: { cores: 2, mem_mb: 4096 } }, 'test', {}, HOST);

/** JobStore in memory; stored jobs are copies, as after an encode/decode round trip. */
class MemoryStore implements JobStore {
  readonly jobs = new Map<number, Job>();
  readonly events = new Map<number, JobEvent[]>();
  /** getJob / getJobByUuid calls. */
  reads = 0;
  /** While true, a batch that makes a job RUNNING fails, as on a full disk. */
  failRunningWrites = false;
  private lastId = 0;

  async createJob(spec: JobSpec, _fingerprint: string, nowMs: number, reason: string, admit?: () => void): Promise<{ job: Job; created: boolean }> {
    admit?.();
    const id = ++this.lastId;
    const job = newPendingJob(spec, { id, uuid: `hpcjob-${id.toString(36).padStart(8, '0')}`, reason, submitTimeMs: nowMs });
    await Promise.resolve();
    this.jobs.set(id, structuredClone(job));
    this.events.set(id, [{ jobId: id, sequence: 1, state: 'PENDING', reason, timeMs: nowMs }]);
    return { job, created: true };
  }

  async createJobs(specs: readonly JobSpec[], group: { name: string } | undefined, _fingerprint: string, nowMs: number, reasons: readonly string[], admit?: () => void) {
    admit?.();
    const first = this.lastId + 1;
    this.lastId += specs.length;
    const jobs = specs.map((spec, i) => {
      const id = first + i;
      return newPendingJob(resolveBatchSpec(spec, first, specs.length, group), { id, uuid: `hpcjob-${id.toString(36).padStart(8, '0')}`, reason: reasons[i]!, submitTimeMs: nowMs });
    });
    await Promise.resolve();
    for (const job of jobs) {
      this.jobs.set(job.id, structuredClone(job));
      this.events.set(job.id, [{ jobId: job.id, sequence: 1, state: 'PENDING', reason: job.reason, timeMs: nowMs }]);
    }
    return { first: jobs[0]!, jobs, created: true };
  }

  readonly queueStates = new Map<string, QueueState>();

  async saveQueueState(hpcqueueId: string, state: QueueState): Promise<void> {
    this.queueStates.set(hpcqueueId, state);
  }

  async loadQueueStates(): Promise<Map<string, QueueState>> {
    return new Map(this.queueStates);
  }

  async saveTransitions(transitions: readonly JobTransition[]): Promise<void> {
    await Promise.resolve();
    if (this.failRunningWrites && transitions.some((t) => t.job.state === 'RUNNING')) throw new StoreUnavailableError('disk full (test)', { diskFull: true });
    for (const t of transitions) {
      this.jobs.set(t.job.id, structuredClone(t.job));
      this.events.get(t.job.id)!.push(structuredClone(t.event));
    }
  }

  async getJob(id: number): Promise<Job | undefined> {
    this.reads++;
    const job = this.jobs.get(id);
    return job && structuredClone(job);
  }

  async getJobByUuid(uuid: string): Promise<Job | undefined> {
    this.reads++;
    const job = [...this.jobs.values()].find((j) => j.uuid === uuid);
    return job && structuredClone(job);
  }

  async listJobs(filter: JobFilter, pageSize: number): Promise<JobPage> {
    const matches = (j: Job) =>
      (filter.clusterId === undefined || j.clusterId === filter.clusterId) &&
      (filter.hpcqueueId === undefined || j.hpcqueueId === filter.hpcqueueId) &&
      (filter.runUser === undefined || j.runUser === filter.runUser) &&
      (filter.states === undefined || filter.states.length === 0 || filter.states.includes(j.state));
    return { jobs: [...this.jobs.values()].filter(matches).reverse().slice(0, pageSize).map((j) => structuredClone(j)) };
  }

  async listEndedJobs(filter: JobFilter, window: EndWindow, pageSize: number, after?: EndCursor): Promise<EndedJobPage> {
    const inWindow = (j: Job) => isTerminal(j.state) && j.endTimeMs >= (window.fromMs ?? 0) && (window.toMs === undefined || j.endTimeMs < window.toMs);
    const beyond = (j: Job) => after === undefined || j.endTimeMs < after.endTimeMs || (j.endTimeMs === after.endTimeMs && j.id < after.id);
    const jobs = (await this.listJobs(filter, Number.MAX_SAFE_INTEGER)).jobs.filter((j) => inWindow(j) && beyond(j)).sort((a, b) => b.endTimeMs - a.endTimeMs || b.id - a.id);
    const page = jobs.slice(0, pageSize);
    return jobs.length > pageSize ? { jobs: page, next: { endTimeMs: page.at(-1)!.endTimeMs, id: page.at(-1)!.id } } : { jobs: page };
  }

  async getEvents(jobId: number): Promise<JobEvent[]> {
    return structuredClone(this.events.get(jobId) ?? []);
  }

  async loadActiveJobs(): Promise<{ jobs: Job[]; quarantined: [] }> {
    return { jobs: [...this.jobs.values()].filter((j) => !isTerminal(j.state)).map((j) => structuredClone(j)), quarantined: [] };
  }

  async purgeFinishedBefore(): Promise<number> {
    return 0;
  }
}

/** JobExecutor that records launches and cancels; `end` reports an outcome as a supervisor would. */
class FakeExecutor implements JobExecutor {
  readonly enforcement = 'rlimit' as const;
  onEnded!: (jobId: number, outcome: JobOutcome) => Promise<void>;
  readonly launched: number[] = [];
  readonly cancelled: number[] = [];
  /** What launchBlocker() answers: set to make the state directory look full. */
  blocker: string | undefined;

  launchBlocker(): string | undefined {
    return this.blocker;
  }

  async launch(job: Job): Promise<void> {
    this.launched.push(job.id);
  }
  /** Awaited on each cancel, e.g. to end the job at once as a quick supervisor would. */
  onCancel: ((job: Job) => Promise<void>) | undefined;

  async cancel(job: Job): Promise<void> {
    this.cancelled.push(job.id);
    await this.onCancel?.(job);
  }
  async reattach(): Promise<ReattachResult> {
    return 'attached';
  }
  async sweepOrphans(): Promise<void> {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  end(jobId: number, outcome: Partial<JobOutcome> = {}): Promise<void> {
    return this.onEnded(jobId, { state: 'COMPLETED', reason: '', exitCode: 0, termSignal: 0, limitHit: '', endTimeMs: Date.now(), ...outcome });
  }
}

const ROOT: UserAccount = { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [{ name: 'root', gid: 0 }] };
const ALICE: UserAccount = { name: 'alice', uid: 1001, gid: 1001, home: '/home/alice', shell: '/bin/sh', groups: [{ name: 'alice', gid: 1001 }] };
const BOB: UserAccount = { name: 'bob', uid: 1002, gid: 1002, home: '/home/bob', shell: '/bin/sh', groups: [{ name: 'bob', gid: 1002 }] };
const ACCOUNTS = [ROOT, ALICE, BOB];
const users: UserDirectory = {
  lookup: async (name) => ACCOUNTS.find((a) => a.name === name),
  lookupUid: async (uid) => ACCOUNTS.find((a) => a.uid === uid),
};

/** A local caller, as the API builds it from the kernel's peer credentials. */
function localPrincipal(account: UserAccount): Principal {
  return { name: `uid:${account.uid}`, via: 'unix', peer: `uid:${account.uid}/pid:4242`, account };
}
/** root over the unix socket: an admin. */
const ADMIN = localPrincipal(ROOT);
/** alice (uid 1001): not an admin. */
const AS_ALICE = localPrincipal(ALICE);
/** The cancel reason ADMIN leaves. */
const CANCELLED_BY_ADMIN = 'Cancelled by uid:0 (root)';

function request(overrides: Partial<SubmitRequest> = {}): SubmitRequest {
  return { ...submitRequest({ runUser: 'alice', name: 'job', cmdLine: 'true' }), ...overrides };
}

const engines: JobEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

/** One queue `q` on a node of `cores` cores and 4 GiB. */
function oneQueueConfig(cores: number, queue: { max_running?: number; allowed_users?: string[]; allowed_groups?: string[] } = {}, extra: Record<string, unknown> = {}) {
  return compileConfig(
    { node: { cores, mem_mb: 4096 }, clusters: [{ cluster_id: 'c', zone: 'z', queues: [{ hpcqueue_id: 'q', scheduler_queue_name: 'q', default: true, ...queue }] }], ...extra },
    'test',
    {},
    HOST,
  );
}

/** Lets the dispatch passes scheduled so far run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

async function started(config: DaemonConfig = CONFIG) {
  const store = new MemoryStore();
  const executor = new FakeExecutor();
  const engine = new JobEngine({ config, store, executor, users, log: silentLogger(), daemonUid: 0 });
  engines.push(engine);
  await engine.start();
  return { store, executor, engine };
}

/** The HpcqError `promise` rejects with, as {code, kind, field}. */
async function failure(promise: Promise<unknown>): Promise<{ code: string; kind: string; field: string | undefined }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HpcqError);
  const { code, kind, field } = err as HpcqError;
  return { code, kind, field };
}

/** A cluster backend that only records the cancels it is asked for. */
class CancelRecordingBackend implements ClusterBackend {
  readonly kind = 'slurm' as const;
  readonly cancels: Array<{ jobId: number; backendId: string; asAdmin: boolean }> = [];
  onReport: ClusterBackend['onReport'] = () => undefined;
  onAvailability: ClusterBackend['onAvailability'] = () => undefined;
  async submit(): Promise<string> {
    throw new Error('not in this test');
  }
  async submitArray(): Promise<string> {
    throw new Error('not in this test');
  }
  track(): void {}
  tagOf(job: Job): string {
    return `hpcq-${job.id}`;
  }
  untrack(): void {}
  async cancel(job: Job, backendId: string, asAdmin: boolean): Promise<'cancelled'> {
    this.cancels.push({ jobId: job.id, backendId, asAdmin });
    return 'cancelled';
  }
  async signal(): Promise<void> {}
  unavailable(): undefined {
    return undefined;
  }
  async partition() {
    return { state: 'up', nodes: 1, cpus: 1, idleCpus: 1, note: '' };
  }
  start(): void {}
  async stop(): Promise<void> {}
}

describe('JobEngine with a cluster another scheduler runs', () => {
  it("sends a cancel stored before a restart again as the job's own user, even one an admin asked for", async () => {
    const config = compileConfig(
      {
        node: { cores: 2, mem_mb: 4096 },
        clusters: [{ cluster_id: 'cs', zone: 'z', backend: 'slurm', slurm: { conf: '/etc/slurm/slurm.conf' }, queues: [{ hpcqueue_id: 'qs', scheduler_queue_name: 'debug', default: true }] }],
      },
      'test',
      {},
      HOST,
    );
    const store = new MemoryStore();
    const job = testRunningJob({ clusterId: 'cs', hpcqueueId: 'qs', schedulerQueueName: 'debug', runUser: 'alice', uid: 1001, gid: 1001 }, { id: 7, backendJobId: '4242', cancelRequestedBy: 'uid:0 (root)' });
    store.jobs.set(job.id, structuredClone(job));
    store.events.set(job.id, []);
    const backend = new CancelRecordingBackend();
    const engine = new JobEngine({ config, store, executor: new FakeExecutor(), users, log: silentLogger(), daemonUid: 0, backends: new Map([['cs', backend]]) });
    engines.push(engine);
    await engine.start();
    await vi.waitFor(() => expect(backend.cancels).toEqual([{ jobId: 7, backendId: '4242', asAdmin: false }]));
  });
});

describe('JobEngine', () => {
  it('starts nothing while the executor has no room for run records, and starts the jobs once there is', async () => {
    const { executor, engine } = await started();
    executor.blocker = 'StateDirFull: 0 KiB free';
    const { job } = await engine.submit(request(), ADMIN);
    await settle();
    expect(executor.launched).toEqual([]);
    expect((await engine.getJob(String(job.id), ADMIN)).state).toBe('PENDING');
    executor.blocker = undefined;
    // The engine looks again by itself (no submit or job end needed).
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]), { timeout: 3000 });
    expect((await engine.getJob(String(job.id), ADMIN)).state).toBe('RUNNING');
  });

  it('refuses calls until started and after stop', async () => {
    const engine = new JobEngine({ config: CONFIG, store: new MemoryStore(), executor: new FakeExecutor(), users, log: silentLogger(), daemonUid: 0 });
    expect(await failure(engine.getJob('1', ADMIN))).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
    expect(await failure(engine.submit(request(), ADMIN))).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
    await engine.start();
    await engine.submit(request(), ADMIN);
    await engine.stop();
    expect(await failure(engine.getJob('1', ADMIN))).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
  });

  it('starts what fits the node and keeps the rest pending with its reason, in memory', async () => {
    const { store, executor, engine } = await started();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push((await engine.submit(request(), ADMIN)).job.id);
    await vi.waitFor(() => expect(executor.launched).toEqual(ids.slice(0, 2)));
    expect((await engine.getJob(String(ids[0]), ADMIN)).state).toBe('RUNNING');
    expect(await engine.getJob(String(ids[2]), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'Resources' });
    // The RUNNING records are durable, with the executor's enforcement; the pending reason is not stored.
    expect(store.jobs.get(ids[0]!)).toMatchObject({ state: 'RUNNING', enforcement: 'rlimit', eventCount: 2 });
    expect(store.jobs.get(ids[2]!)!.reason).toBe('Priority');
    expect(engine.queueCounts('hpcq-normal')).toEqual({ pending: 1, running: 2 });
    expect(engine.usedResources()).toEqual({ cores: 2, memMb: 2048 });

    // An outcome frees its cores: the pending job starts.
    await executor.end(ids[0]!, { state: 'FAILED', reason: 'NonZeroExitCode: main process exited with 3', exitCode: 3 });
    expect(store.jobs.get(ids[0]!)).toMatchObject({ state: 'FAILED', exitCode: 3, eventCount: 3 });
    await vi.waitFor(() => expect(executor.launched).toEqual(ids));
    expect(engine.queueCounts('hpcq-normal')).toEqual({ pending: 0, running: 2 });
  });

  it('a second report of an ended job changes nothing', async () => {
    const { store, executor, engine } = await started();
    const { job } = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    await executor.end(job.id);
    await executor.end(job.id, { state: 'NODE_FAIL', reason: 'late' });
    expect(store.jobs.get(job.id)).toMatchObject({ state: 'COMPLETED', eventCount: 3 });
    expect(store.events.get(job.id)!.map((e) => e.state)).toEqual(['PENDING', 'RUNNING', 'COMPLETED']);
  });

  it('finds jobs by id and by uuid, and names what is wrong with a bad job_id', async () => {
    const { engine } = await started();
    const { job } = await engine.submit(request(), ADMIN);
    expect((await engine.getJob(String(job.id), ADMIN)).id).toBe(job.id);
    expect((await engine.getJob(job.uuid, ADMIN)).id).toBe(job.id);
    expect(await failure(engine.getJob('999', ADMIN))).toEqual({ code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' });
    expect(await failure(engine.getJob('hpcjob-zzzzzzzz', ADMIN))).toEqual({ code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' });
    expect(await failure(engine.getJob('', ADMIN))).toEqual({ code: 'MissingParameter.JobId', kind: 'invalid', field: 'job_id' });
    expect(await failure(engine.getJob('12x', ADMIN))).toEqual({ code: 'InvalidParameter.JobIdMalformed', kind: 'invalid', field: 'job_id' });
    expect(await failure(engine.cancel('999', ADMIN))).toEqual({ code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' });
  });

  it('cancels a pending job at once and answers with the stored job, without reading it back', async () => {
    const { store, executor, engine } = await started();
    for (let i = 0; i < 2; i++) await engine.submit(request(), ADMIN);
    const { job } = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toHaveLength(2));
    const reads = store.reads;
    const cancelled = await engine.cancel(String(job.id), ADMIN);
    expect(cancelled).toMatchObject({ id: job.id, state: 'CANCELLED', reason: CANCELLED_BY_ADMIN, startTimeMs: 0 });
    expect(cancelled).toEqual(store.jobs.get(job.id));
    expect(store.reads).toBe(reads);
    expect(executor.cancelled).toEqual([]);
    expect(await failure(engine.cancel(String(job.id), ADMIN))).toEqual({ code: 'FailedOperation.JobAlreadyFinished', kind: 'precondition', field: 'job_id' });
  });

  it('asks the supervisor to end a running job; the outcome carries who cancelled it', async () => {
    const { store, executor, engine } = await started();
    const { job } = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    const answer = await engine.cancel(job.uuid, ADMIN);
    expect(answer.state).toBe('RUNNING');
    expect(executor.cancelled).toEqual([job.id]);
    // A repeated cancel while it ends does not ask again.
    await engine.cancel(String(job.id), AS_ALICE);
    expect(executor.cancelled).toEqual([job.id]);
    await executor.end(job.id, { state: 'CANCELLED', reason: 'Cancelled', termSignal: 15 });
    expect(store.jobs.get(job.id)).toMatchObject({ state: 'CANCELLED', reason: CANCELLED_BY_ADMIN, termSignal: 15 });
  });

  it('enforces max_pending per queue, counting only jobs to be created', async () => {
    const config = compileConfig(
      { node: { cores: 1, mem_mb: 4096 }, clusters: [{ cluster_id: 'c', zone: 'z', queues: [{ hpcqueue_id: 'q', scheduler_queue_name: 'q', default: true, max_pending: 2 }] }] },
      'test',
      {},
      HOST,
    );
    const { executor, engine } = await started(config);
    const first = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([first.job.id]));
    // Two submits at once: both are admitted against the quota before either is stored.
    await Promise.all([engine.submit(request(), ADMIN), engine.submit(request(), ADMIN)]);
    expect(await failure(engine.submit(request(), ADMIN))).toEqual({ code: 'LimitExceeded.JobQuota', kind: 'exhausted', field: 'hpcqueue_id' });
    expect(engine.queueCounts('q')).toEqual({ pending: 2, running: 1 });
  });
});

describe('JobEngine dispatch', () => {
  it('gives a reason only to the jobs a pass examined; the others keep theirs', async () => {
    const { executor, engine } = await started(oneQueueConfig(4, { max_running: 1 }));
    const first = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([first.job.id]));
    const [second, third] = await Promise.all([engine.submit(request(), ADMIN), engine.submit(request(), ADMIN)]);
    await settle();
    // The queue is at max_running: its first pending job says so, and the pass leaves the rest of it.
    expect(await engine.getJob(String(second!.job.id), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'QueueMaxRunning' });
    expect(await engine.getJob(String(third!.job.id), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'Priority' });

    await executor.end(first.job.id);
    await vi.waitFor(() => expect(executor.launched).toEqual([first.job.id, second!.job.id]));
    await settle();
    expect(await engine.getJob(String(third!.job.id), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'QueueMaxRunning' });
  });

  it('a job submitted while the node is full is next in line and shows Resources', async () => {
    const { executor, engine } = await started(oneQueueConfig(1));
    const running = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([running.job.id]));
    const next = await engine.submit(request(), ADMIN);
    const after = await engine.submit(request(), ADMIN);
    await settle();
    expect(await engine.getJob(String(next.job.id), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'Resources' });
    expect(await engine.getJob(String(after.job.id), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'Priority' });
  });

  it('a job put back to pending after a failed RUNNING write is dispatched in id order again', async () => {
    const { store, executor, engine } = await started(oneQueueConfig(1));
    const running = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([running.job.id]));
    const waiting: number[] = [];
    for (let i = 0; i < 3; i++) waiting.push((await engine.submit(request(), ADMIN)).job.id);

    // The core frees up, but the first waiting job's RUNNING write fails: it goes back to pending
    // behind the jobs submitted after it, and must still come first.
    store.failRunningWrites = true;
    await executor.end(running.job.id);
    await vi.waitFor(async () => expect(await engine.getJob(String(waiting[0]), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'StoreUnavailable' }));
    store.failRunningWrites = false;
    await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([running.job.id, waiting[0]]));
    await settle();
    expect(executor.launched).toEqual([running.job.id, waiting[0]]);
    expect(engine.queueCounts('q')).toEqual({ pending: 3, running: 1 });
  });
});

describe('JobEngine.watch', () => {
  it('sends the job as it is now, its history if asked, then each change until it ends', async () => {
    const { executor, engine } = await started();
    const { job } = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    const seen: Array<[string, string | undefined]> = [];
    const watching = engine.watch(String(job.id), ADMIN, true, (j, e) => seen.push([j.state, e?.state]), new AbortController().signal);
    await vi.waitFor(() => expect(seen).toHaveLength(3));
    await executor.end(job.id);
    await watching;
    expect(seen).toEqual([
      ['RUNNING', undefined],
      ['RUNNING', 'PENDING'],
      ['RUNNING', 'RUNNING'],
      ['COMPLETED', 'COMPLETED'],
    ]);
  });

  it('ends at once for a finished job, and when the signal aborts', async () => {
    const { store, executor, engine } = await started();
    const { job } = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    const abort = new AbortController();
    const seen: string[] = [];
    const watching = engine.watch(job.uuid, ADMIN, false, (j) => seen.push(j.state), abort.signal);
    await vi.waitFor(() => expect(seen).toEqual(['RUNNING']));
    abort.abort();
    await watching;
    await executor.end(job.id);
    const after: string[] = [];
    const reads = store.reads;
    await engine.watch(String(job.id), ADMIN, false, (j) => after.push(j.state), new AbortController().signal);
    expect(after).toEqual(['COMPLETED']);
    // Found in the store once; a finished job is not read again for the snapshot.
    expect(store.reads).toBe(reads + 1);
  });

  it('endWatches ends open watches with UNAVAILABLE and refuses new ones', async () => {
    const { executor, engine } = await started();
    const { job } = await engine.submit(request(), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    let seen = 0;
    const watching = engine.watch(String(job.id), ADMIN, false, () => seen++, new AbortController().signal);
    await vi.waitFor(() => expect(seen).toBe(1));
    engine.endWatches();
    expect(await failure(watching)).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
    expect(await failure(engine.watch(String(job.id), ADMIN, false, () => undefined, new AbortController().signal))).toMatchObject({
      code: 'ResourceUnavailable.ShuttingDown',
      kind: 'unavailable',
    });
  });
});

describe('JobEngine access control', () => {
  /** A job of alice and one of bob, both submitted by an admin on a node where neither can start. */
  async function jobsOfAliceAndBob(extra: Record<string, unknown> = {}) {
    const setup = await started(oneQueueConfig(1, {}, extra));
    const { executor, engine } = setup;
    const blocker = await engine.submit(request({ runUser: 'alice' }), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([blocker.job.id]));
    const alices = await engine.submit(request({ runUser: '' }), AS_ALICE);
    const bobs = await engine.submit(request({ runUser: 'bob' }), ADMIN);
    return { ...setup, blocker: blocker.job, alices: alices.job, bobs: bobs.job };
  }

  it("a non-admin finds another user's job nowhere: get, cancel and watch answer NOT_FOUND, list leaves it out", async () => {
    const { store, engine, blocker, alices, bobs } = await jobsOfAliceAndBob();
    expect(alices).toMatchObject({ runUser: 'alice', uid: 1001 });
    const notFound = { code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' };
    for (const id of [String(bobs.id), bobs.uuid]) {
      expect(await failure(engine.getJob(id, AS_ALICE)), id).toEqual(notFound);
      expect(await failure(engine.cancel(id, AS_ALICE)), id).toEqual(notFound);
      expect(await failure(engine.watch(id, AS_ALICE, false, () => undefined, new AbortController().signal)), id).toEqual(notFound);
    }
    // The same answer as for a job that does not exist: the id reveals nothing.
    expect(await failure(engine.getJob('999', AS_ALICE))).toEqual(notFound);
    expect(store.jobs.get(bobs.id)).toMatchObject({ state: 'PENDING' });

    // Its own jobs it sees and lists, newest first; naming bob lists nothing.
    expect((await engine.getJob(String(alices.id), AS_ALICE)).id).toBe(alices.id);
    expect((await engine.listJobs({}, AS_ALICE, 100)).jobs.map((j) => j.id)).toEqual([alices.id, blocker.id]);
    expect((await engine.listJobs({ runUser: 'alice' }, AS_ALICE, 100)).jobs.map((j) => j.id)).toEqual([alices.id, blocker.id]);
    expect((await engine.listJobs({ runUser: 'bob' }, AS_ALICE, 100)).jobs).toEqual([]);
    expect((await engine.listJobs({ runUser: 'nobody' }, AS_ALICE, 100)).jobs).toEqual([]);
    // An admin lists everyone's.
    expect((await engine.listJobs({}, ADMIN, 100)).jobs.map((j) => j.id)).toEqual([bobs.id, alices.id, blocker.id]);
    expect((await engine.listJobs({ runUser: 'bob' }, ADMIN, 100)).jobs.map((j) => j.id)).toEqual([bobs.id]);

    // It cancels its own job, and the reason names it.
    expect(await engine.cancel(String(alices.id), AS_ALICE)).toMatchObject({ state: 'CANCELLED', reason: 'Cancelled by uid:1001 (alice)' });
  });

  it("with job_visibility: all a non-admin sees another user's job but may not cancel it", async () => {
    const { store, executor, engine, alices, bobs, blocker } = await jobsOfAliceAndBob({ access: { job_visibility: 'all' } });
    expect((await engine.getJob(String(bobs.id), AS_ALICE)).runUser).toBe('bob');
    expect((await engine.getJob(bobs.uuid, AS_ALICE)).id).toBe(bobs.id);
    expect((await engine.listJobs({}, AS_ALICE, 100)).jobs.map((j) => j.id)).toEqual([bobs.id, alices.id, blocker.id]);
    expect((await engine.listJobs({ runUser: 'bob' }, AS_ALICE, 100)).jobs.map((j) => j.id)).toEqual([bobs.id]);
    expect(await failure(engine.cancel(String(bobs.id), AS_ALICE))).toEqual({ code: 'OperationDenied.JobNotOwned', kind: 'permission', field: 'job_id' });
    expect(store.jobs.get(bobs.id)).toMatchObject({ state: 'PENDING', eventCount: 1 });
    expect(await engine.getJob(String(bobs.id), ADMIN)).toMatchObject({ state: 'PENDING' });
    expect(executor.cancelled).toEqual([]);
  });

  it('a job its queue no longer takes after a reload fails at launch and never runs', async () => {
    const { store, executor, engine } = await started(oneQueueConfig(1));
    const blocker = await engine.submit(request({ runUser: 'bob' }), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([blocker.job.id]));
    const { job } = await engine.submit(request({ runUser: '' }), AS_ALICE);
    await settle();
    expect(await engine.getJob(String(job.id), ADMIN)).toMatchObject({ state: 'PENDING', reason: 'Resources' });

    engine.reconfigure(oneQueueConfig(1, { allowed_users: ['someone-else'] }));
    // The core frees up: the waiting job is dispatched, and the policy is checked again before launch.
    await executor.end(blocker.job.id);
    await vi.waitFor(() => expect(store.jobs.get(job.id)?.state).toBe('FAILED'));
    expect(store.jobs.get(job.id)!.reason).toMatch(/^LaunchFailed: OperationDenied\.QueueNotAllowed/);
    expect(store.events.get(job.id)!.map((e) => e.state)).toEqual(['PENDING', 'RUNNING', 'FAILED']);
    expect(executor.launched).toEqual([blocker.job.id]);
    expect(engine.queueCounts('q')).toEqual({ pending: 0, running: 0 });
    expect(engine.usedResources()).toEqual({ cores: 0, memMb: 0 });
    // New submits of alice are refused by the reloaded policy up front.
    expect(await failure(engine.submit(request({ runUser: '' }), AS_ALICE))).toEqual({ code: 'OperationDenied.QueueNotAllowed', kind: 'permission', field: 'hpcqueue_id' });
  });

  it('refuses a reload that removes a queue still holding jobs, and changes nothing', async () => {
    const twoQueues = (queues: Record<string, unknown>[]) =>
      compileConfig({ node: { cores: 1, mem_mb: 4096 }, clusters: [{ cluster_id: 'c', zone: 'z', queues }] }, 'test', {}, HOST);
    const q = { hpcqueue_id: 'q', scheduler_queue_name: 'q', default: true };
    const r = { hpcqueue_id: 'r', scheduler_queue_name: 'r' };
    const { executor, engine } = await started(twoQueues([q, r]));
    const blocker = await engine.submit(request({ hpcqueueId: 'q' }), ADMIN);
    await vi.waitFor(() => expect(executor.launched).toEqual([blocker.job.id]));
    const pending = await engine.submit(request({ hpcqueueId: 'r' }), ADMIN);
    expect(engine.queueCounts('r')).toEqual({ pending: 1, running: 0 });

    // Without r, and with q closed to alice: refused as a whole.
    let thrown: unknown;
    try {
      engine.reconfigure(twoQueues([{ ...q, allowed_users: ['someone-else'] }]));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(HpcqError);
    expect(thrown).toMatchObject({ code: 'FailedOperation.QueueInUse', kind: 'precondition' });
    expect((thrown as HpcqError).message).toContain('r');

    // Still the old configuration: r takes jobs and q takes alice's.
    expect(engine.queueCounts('r')).toEqual({ pending: 1, running: 0 });
    const another = await engine.submit(request({ hpcqueueId: 'r' }), ADMIN);
    expect(another.job.hpcqueueId).toBe('r');
    const alices = await engine.submit(request({ runUser: '', hpcqueueId: 'q' }), AS_ALICE);
    expect(alices.job.hpcqueueId).toBe('q');
    await engine.cancel(String(another.job.id), ADMIN);
    await engine.cancel(String(alices.job.id), ADMIN);
    // The waiting job of r still starts when the core frees up.
    await executor.end(blocker.job.id);
    await vi.waitFor(() => expect(executor.launched).toEqual([blocker.job.id, pending.job.id]));
    expect(() => engine.reconfigure(twoQueues([q]))).toThrow(expect.objectContaining({ code: 'FailedOperation.QueueInUse' }));

    // Once r is empty it may go.
    await executor.end(pending.job.id);
    expect(engine.queueCounts('r')).toEqual({ pending: 0, running: 0 });
    expect(() => engine.reconfigure(twoQueues([q]))).not.toThrow();
    expect(await failure(engine.submit(request({ hpcqueueId: 'r' }), ADMIN))).toMatchObject({ code: 'ResourceNotFound.Queue' });
  });
});

describe('JobEngine.cancelMany (CancelJobs)', () => {
  /** Records the size of every batch of transitions the store is given. */
  function countBatches(store: MemoryStore): number[] {
    const sizes: number[] = [];
    const save = store.saveTransitions.bind(store);
    store.saveTransitions = (transitions) => {
      sizes.push(transitions.length);
      return save(transitions);
    };
    return sizes;
  }

  it('cancels a running and a pending job together: the pending one never starts, even when the running one ends at once', async () => {
    const { store, executor, engine } = await started(oneQueueConfig(1));
    const running = (await engine.submit(request(), ADMIN)).job;
    await vi.waitFor(() => expect(executor.launched).toEqual([running.id]));
    const pending = (await engine.submit(request(), ADMIN)).job;
    // A quick supervisor: the running job ends during the cancel, and dispatch passes may run
    // before the cancel returns (cancelling one job after the other would let the pending one start).
    executor.onCancel = async (job) => {
      void executor.end(job.id, { state: 'CANCELLED', reason: 'Cancelled', termSignal: 15 });
      await settle();
    };
    const result = await engine.cancelMany({ jobIds: [String(running.id), String(pending.id)] }, ADMIN);
    expect(result.failures).toEqual([]);
    expect(result.jobs.map((j) => j.id)).toEqual([running.id, pending.id]);
    expect(result.jobs[1]).toMatchObject({ state: 'CANCELLED', reason: CANCELLED_BY_ADMIN });
    await vi.waitFor(() => expect(store.jobs.get(running.id)).toMatchObject({ state: 'CANCELLED', reason: CANCELLED_BY_ADMIN }));
    await settle();
    expect(executor.launched).toEqual([running.id]);
    expect(store.events.get(pending.id)!.map((e) => e.state)).toEqual(['PENDING', 'CANCELLED']);
  });

  it('cancels every pending job matching the filters in one batch, and never everything', async () => {
    const { store, executor, engine } = await started(oneQueueConfig(1));
    const blocker = (await engine.submit(request({ name: 'sweep' }), ADMIN)).job;
    await vi.waitFor(() => expect(executor.launched).toEqual([blocker.id]));
    const sweeps = [(await engine.submit(request({ name: 'sweep' }), ADMIN)).job, (await engine.submit(request({ name: 'sweep' }), ADMIN)).job];
    const other = (await engine.submit(request({ name: 'other' }), ADMIN)).job;
    const bobs = (await engine.submit(request({ runUser: 'bob', name: 'sweep' }), ADMIN)).job;
    const batches = countBatches(store);
    const result = await engine.cancelMany({ jobIds: [], runUser: 'alice', name: 'sweep', states: ['PENDING'] }, ADMIN);
    expect(result).toEqual({ jobs: sweeps.map((j) => expect.objectContaining({ id: j.id, state: 'CANCELLED' })), failures: [] });
    expect(batches).toEqual([2]);
    for (const job of [blocker, other, bobs]) expect(store.jobs.get(job.id)!.state, String(job.id)).toBe(job.id === blocker.id ? 'RUNNING' : 'PENDING');
    expect(executor.cancelled).toEqual([]);
    // The running one goes through its supervisor.
    expect((await engine.cancelMany({ jobIds: [], name: 'sweep', states: ['RUNNING'] }, ADMIN)).jobs.map((j) => j.id)).toEqual([blocker.id]);
    expect(executor.cancelled).toEqual([blocker.id]);

    expect(await failure(engine.cancelMany({ jobIds: [], states: ['PENDING'] }, ADMIN))).toEqual({ code: 'InvalidParameter.NoJobsSelected', kind: 'invalid', field: 'job_ids' });
    expect(await failure(engine.cancelMany({ jobIds: [], runUser: 'alice', states: ['COMPLETED'] }, ADMIN))).toEqual({ code: 'InvalidParameterValue.JobState', kind: 'invalid', field: 'states' });
    expect(store.jobs.get(other.id)!.state).toBe('PENDING');
  });

  it('never matches jobs the caller may not see; those it sees but may not act on are failures', async () => {
    for (const visibility of ['own', 'all'] as const) {
      const { store, engine, executor } = await started(oneQueueConfig(1, {}, { access: { job_visibility: visibility } }));
      const blocker = (await engine.submit(request({ runUser: 'bob' }), ADMIN)).job;
      await vi.waitFor(() => expect(executor.launched).toEqual([blocker.id]));
      const alices = (await engine.submit(request({ runUser: '' }), AS_ALICE)).job;
      const bobs = (await engine.submit(request({ runUser: 'bob' }), ADMIN)).job;
      const byName = await engine.cancelMany({ jobIds: [], name: 'job' }, AS_ALICE);
      expect(byName.jobs.map((j) => j.id), visibility).toEqual([alices.id]);
      const notOwned = (id: number) => ({ jobId: String(id), error: expect.objectContaining({ code: 'OperationDenied.JobNotOwned' }) });
      expect(byName.failures, visibility).toEqual(visibility === 'all' ? [notOwned(blocker.id), notOwned(bobs.id)] : []);
      const named = await engine.cancelMany({ jobIds: [String(bobs.id)] }, AS_ALICE);
      expect(named.failures[0]?.error.code, visibility).toBe(visibility === 'all' ? 'OperationDenied.JobNotOwned' : 'ResourceNotFound.Job');
      expect(store.jobs.get(bobs.id)!.state).toBe('PENDING');
      expect(executor.cancelled).toEqual([]);
      await engine.stop();
    }
  });

  it('reports named jobs that ended or are outside the filters, and cancels an array with its instances', async () => {
    const { store, executor, engine } = await started(oneQueueConfig(1));
    const done = (await engine.submit(request(), ADMIN)).job;
    await vi.waitFor(() => expect(executor.launched).toEqual([done.id]));
    await executor.end(done.id);
    const array = (await engine.submit(request({ name: 'arr', array: { count: 3, parallelism: 0 } }), ADMIN)).job;
    await vi.waitFor(() => expect(executor.launched).toEqual([done.id, array.id + 1]));
    const other = (await engine.submit(request({ name: 'x' }), ADMIN)).job;
    const result = await engine.cancelMany({ jobIds: [String(array.id), String(done.id), String(other.id), '999'], name: 'arr' }, ADMIN);
    expect(result.jobs.map((j) => j.id)).toEqual([array.id]);
    expect(Object.fromEntries(result.failures.map((f) => [f.jobId, f.error.code]))).toEqual({
      [String(done.id)]: 'FailedOperation.JobAlreadyFinished',
      [String(other.id)]: 'FailedOperation.JobNotMatched',
      '999': 'ResourceNotFound.Job',
    });
    expect([array.id + 2, array.id + 3].map((id) => store.jobs.get(id)!.state)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(executor.cancelled).toEqual([array.id + 1]);
    await executor.end(array.id + 1, { state: 'CANCELLED', reason: 'Cancelled', termSignal: 15 });
    await vi.waitFor(() => expect(store.jobs.get(array.id)).toMatchObject({ state: 'CANCELLED', reason: CANCELLED_BY_ADMIN }));
    expect(store.jobs.get(other.id)!.state).toBe('PENDING');
  });
});
