// JobEngine against in-memory fakes of its ports: the use cases and dispatch, without a daemon.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileConfig } from '../../src/config/load-config.js';
import { HpcqError, StoreUnavailableError } from '../../src/core/errors.js';
import { isTerminal, newPendingJob, type Job, type JobEvent, type JobOutcome, type JobSpec } from '../../src/core/job.js';
import type { JobExecutor, JobFilter, JobPage, JobStore, JobTransition, ReattachResult, UserAccount, UserDirectory } from '../../src/core/ports.js';
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

  async listJobs(_filter: JobFilter, pageSize: number): Promise<JobPage> {
    return { jobs: [...this.jobs.values()].reverse().slice(0, pageSize).map((j) => structuredClone(j)) };
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

  async launch(job: Job): Promise<void> {
    this.launched.push(job.id);
  }
  async cancel(job: Job): Promise<void> {
    this.cancelled.push(job.id);
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

const ALICE: UserAccount = { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice', shell: '/bin/sh' };
const users: UserDirectory = { lookup: async (name) => (name === ALICE.name ? ALICE : undefined) };

function request(overrides: Partial<SubmitRequest> = {}): SubmitRequest {
  return {
    timestamp: '',
    clusterId: '',
    zone: '',
    runUser: 'alice',
    name: 'job',
    cmdLine: 'true',
    inputFile: '',
    coreLimit: 0,
    memLimit: 0,
    timeLimit: 0,
    resourceLimit: '',
    hpcqueueId: '',
    schedulerQueueName: '',
    stdoutRedirectPath: '',
    stderrRedirectPath: '',
    priority: 0,
    submitType: 0,
    clientToken: '',
    ...overrides,
  };
}

const engines: JobEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

/** One queue `q` on a node of `cores` cores and 4 GiB. */
function oneQueueConfig(cores: number, queue: { max_running?: number } = {}) {
  return compileConfig(
    { node: { cores, mem_mb: 4096 }, clusters: [{ cluster_id: 'c', zone: 'z', queues: [{ hpcqueue_id: 'q', scheduler_queue_name: 'q', default: true, ...queue }] }] },
    'test',
    {},
    HOST,
  );
}

/** Lets the dispatch passes scheduled so far run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

async function started(config = CONFIG) {
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

describe('JobEngine', () => {
  it('refuses calls until started and after stop', async () => {
    const engine = new JobEngine({ config: CONFIG, store: new MemoryStore(), executor: new FakeExecutor(), users, log: silentLogger(), daemonUid: 0 });
    expect(await failure(engine.getJob('1'))).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
    expect(await failure(engine.submit(request()))).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
    await engine.start();
    await engine.submit(request());
    await engine.stop();
    expect(await failure(engine.getJob('1'))).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
  });

  it('starts what fits the node and keeps the rest pending with its reason, in memory', async () => {
    const { store, executor, engine } = await started();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push((await engine.submit(request())).job.id);
    await vi.waitFor(() => expect(executor.launched).toEqual(ids.slice(0, 2)));
    expect((await engine.getJob(String(ids[0]))).state).toBe('RUNNING');
    expect(await engine.getJob(String(ids[2]))).toMatchObject({ state: 'PENDING', reason: 'Resources' });
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
    const { job } = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    await executor.end(job.id);
    await executor.end(job.id, { state: 'NODE_FAIL', reason: 'late' });
    expect(store.jobs.get(job.id)).toMatchObject({ state: 'COMPLETED', eventCount: 3 });
    expect(store.events.get(job.id)!.map((e) => e.state)).toEqual(['PENDING', 'RUNNING', 'COMPLETED']);
  });

  it('finds jobs by id and by uuid, and names what is wrong with a bad job_id', async () => {
    const { engine } = await started();
    const { job } = await engine.submit(request());
    expect((await engine.getJob(String(job.id))).id).toBe(job.id);
    expect((await engine.getJob(job.uuid)).id).toBe(job.id);
    expect(await failure(engine.getJob('999'))).toEqual({ code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' });
    expect(await failure(engine.getJob('hpcjob-zzzzzzzz'))).toEqual({ code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' });
    expect(await failure(engine.getJob(''))).toEqual({ code: 'MissingParameter.JobId', kind: 'invalid', field: 'job_id' });
    expect(await failure(engine.getJob('12x'))).toEqual({ code: 'InvalidParameter.JobIdMalformed', kind: 'invalid', field: 'job_id' });
    expect(await failure(engine.cancel('999', 'tester'))).toEqual({ code: 'ResourceNotFound.Job', kind: 'not_found', field: 'job_id' });
  });

  it('cancels a pending job at once and answers with the stored job, without reading it back', async () => {
    const { store, executor, engine } = await started();
    for (let i = 0; i < 2; i++) await engine.submit(request());
    const { job } = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toHaveLength(2));
    const reads = store.reads;
    const cancelled = await engine.cancel(String(job.id), 'tester');
    expect(cancelled).toMatchObject({ id: job.id, state: 'CANCELLED', reason: 'Cancelled by tester', startTimeMs: 0 });
    expect(cancelled).toEqual(store.jobs.get(job.id));
    expect(store.reads).toBe(reads);
    expect(executor.cancelled).toEqual([]);
    expect(await failure(engine.cancel(String(job.id), 'tester'))).toEqual({ code: 'FailedOperation.JobAlreadyFinished', kind: 'precondition', field: 'job_id' });
  });

  it('asks the supervisor to end a running job; the outcome carries who cancelled it', async () => {
    const { store, executor, engine } = await started();
    const { job } = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    const answer = await engine.cancel(job.uuid, 'tester');
    expect(answer.state).toBe('RUNNING');
    expect(executor.cancelled).toEqual([job.id]);
    // A repeated cancel while it ends does not ask again.
    await engine.cancel(String(job.id), 'someone else');
    expect(executor.cancelled).toEqual([job.id]);
    await executor.end(job.id, { state: 'CANCELLED', reason: 'Cancelled', termSignal: 15 });
    expect(store.jobs.get(job.id)).toMatchObject({ state: 'CANCELLED', reason: 'Cancelled by tester', termSignal: 15 });
  });

  it('enforces max_pending per queue, counting only jobs to be created', async () => {
    const config = compileConfig(
      { node: { cores: 1, mem_mb: 4096 }, clusters: [{ cluster_id: 'c', zone: 'z', queues: [{ hpcqueue_id: 'q', scheduler_queue_name: 'q', default: true, max_pending: 2 }] }] },
      'test',
      {},
      HOST,
    );
    const { executor, engine } = await started(config);
    const first = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([first.job.id]));
    // Two submits at once: both are admitted against the quota before either is stored.
    await Promise.all([engine.submit(request()), engine.submit(request())]);
    expect(await failure(engine.submit(request()))).toEqual({ code: 'LimitExceeded.JobQuota', kind: 'exhausted', field: 'hpcqueue_id' });
    expect(engine.queueCounts('q')).toEqual({ pending: 2, running: 1 });
  });
});

describe('JobEngine dispatch', () => {
  it('gives a reason only to the jobs a pass examined; the others keep theirs', async () => {
    const { executor, engine } = await started(oneQueueConfig(4, { max_running: 1 }));
    const first = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([first.job.id]));
    const [second, third] = await Promise.all([engine.submit(request()), engine.submit(request())]);
    await settle();
    // The queue is at max_running: its first pending job says so, and the pass leaves the rest of it.
    expect(await engine.getJob(String(second!.job.id))).toMatchObject({ state: 'PENDING', reason: 'QueueMaxRunning' });
    expect(await engine.getJob(String(third!.job.id))).toMatchObject({ state: 'PENDING', reason: 'Priority' });

    await executor.end(first.job.id);
    await vi.waitFor(() => expect(executor.launched).toEqual([first.job.id, second!.job.id]));
    await settle();
    expect(await engine.getJob(String(third!.job.id))).toMatchObject({ state: 'PENDING', reason: 'QueueMaxRunning' });
  });

  it('a job submitted while the node is full is next in line and shows Resources', async () => {
    const { executor, engine } = await started(oneQueueConfig(1));
    const running = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([running.job.id]));
    const next = await engine.submit(request());
    const after = await engine.submit(request());
    await settle();
    expect(await engine.getJob(String(next.job.id))).toMatchObject({ state: 'PENDING', reason: 'Resources' });
    expect(await engine.getJob(String(after.job.id))).toMatchObject({ state: 'PENDING', reason: 'Priority' });
  });

  it('a job put back to pending after a failed RUNNING write is dispatched in id order again', async () => {
    const { store, executor, engine } = await started(oneQueueConfig(1));
    const running = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([running.job.id]));
    const waiting: number[] = [];
    for (let i = 0; i < 3; i++) waiting.push((await engine.submit(request())).job.id);

    // The core frees up, but the first waiting job's RUNNING write fails: it goes back to pending
    // behind the jobs submitted after it, and must still come first.
    store.failRunningWrites = true;
    await executor.end(running.job.id);
    await vi.waitFor(async () => expect(await engine.getJob(String(waiting[0]))).toMatchObject({ state: 'PENDING', reason: 'StoreUnavailable' }));
    store.failRunningWrites = false;
    await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([running.job.id, waiting[0]]));
    await settle();
    expect(executor.launched).toEqual([running.job.id, waiting[0]]);
    expect(engine.queueCounts('q')).toEqual({ pending: 3, running: 1 });
  });
});

describe('JobEngine.watch', () => {
  it('sends the job as it is now, its history if asked, then each change until it ends', async () => {
    const { executor, engine } = await started();
    const { job } = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    const seen: Array<[string, string | undefined]> = [];
    const watching = engine.watch(String(job.id), true, (j, e) => seen.push([j.state, e?.state]), new AbortController().signal);
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
    const { job } = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    const abort = new AbortController();
    const seen: string[] = [];
    const watching = engine.watch(job.uuid, false, (j) => seen.push(j.state), abort.signal);
    await vi.waitFor(() => expect(seen).toEqual(['RUNNING']));
    abort.abort();
    await watching;
    await executor.end(job.id);
    const after: string[] = [];
    const reads = store.reads;
    await engine.watch(String(job.id), false, (j) => after.push(j.state), new AbortController().signal);
    expect(after).toEqual(['COMPLETED']);
    // Found in the store once; a finished job is not read again for the snapshot.
    expect(store.reads).toBe(reads + 1);
  });

  it('endWatches ends open watches with UNAVAILABLE and refuses new ones', async () => {
    const { executor, engine } = await started();
    const { job } = await engine.submit(request());
    await vi.waitFor(() => expect(executor.launched).toEqual([job.id]));
    let seen = 0;
    const watching = engine.watch(String(job.id), false, () => seen++, new AbortController().signal);
    await vi.waitFor(() => expect(seen).toBe(1));
    engine.endWatches();
    expect(await failure(watching)).toMatchObject({ code: 'ResourceUnavailable.ShuttingDown', kind: 'unavailable' });
    expect(await failure(engine.watch(String(job.id), false, () => undefined, new AbortController().signal))).toMatchObject({
      code: 'ResourceUnavailable.ShuttingDown',
      kind: 'unavailable',
    });
  });
});
