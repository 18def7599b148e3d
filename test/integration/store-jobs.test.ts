/**
 * LevelJobStore on a real LevelDB in a temp dir: create, read, idempotency, group commit,
 * transitions, close.
 */
import { describe, expect, it } from 'vitest';
import { HpcqError, StoreUnavailableError } from '../../src/core/errors.js';
import { transition, type Job, type JobSpec } from '../../src/core/job.js';
import type { LevelJobStore } from '../../src/store/level-job-store.js';
import { testJobSpec, useTempStores } from '../support/store-fixtures.js';

/** This file's jobs: `sim`, with outputs in the user's home (tests check the expanded paths). */
function spec(overrides: Partial<JobSpec> = {}): JobSpec {
  return testJobSpec({
    name: 'sim',
    cmdLine: 'echo hi',
    memoryLimitMb: 256,
    stdoutPathTemplate: '/home/%u/%x-%j.out',
    stderrPathTemplate: '/home/%u/%x-%j.err',
    ...overrides,
  });
}

const { openStore } = useTempStores('hpcq-store-');

describe('createJob and reads', () => {
  it('stores a PENDING job with id, uuid, expanded paths and its first event', async () => {
    const store = await openStore();
    const { job, created } = await store.createJob(spec({ resourceLimits: { nofile: 64 } }), 'fp', 1_000, 'waiting for cores');
    expect(created).toBe(true);
    expect(job).toMatchObject({
      id: 1,
      state: 'PENDING',
      reason: 'waiting for cores',
      submitTimeMs: 1_000,
      startTimeMs: 0,
      endTimeMs: 0,
      exitCode: 0,
      termSignal: 0,
      enforcement: '',
      limitHit: '',
      eventCount: 1,
      stdoutPath: '/home/alice/sim-1.out',
      stderrPath: '/home/alice/sim-1.err',
      resourceLimits: { nofile: 64 },
    });
    expect(job.uuid).toMatch(/^hpcjob-[0-9a-z]{8}$/);
    expect(await store.getJob(1)).toEqual(job);
    expect(await store.getJobByUuid(job.uuid)).toEqual(job);
    expect(await store.getEvents(1)).toEqual([{ jobId: 1, sequence: 1, state: 'PENDING', reason: 'waiting for cores', timeMs: 1_000 }]);
    expect(await store.getJob(2)).toBeUndefined();
    expect(await store.getJob(-1)).toBeUndefined();
    expect(await store.getJobByUuid('hpcjob-zzzzzzzz')).toBeUndefined();
    expect(await store.getEvents(2)).toEqual([]);
    await store.close();
  });

  it('keeps ids increasing across close and reopen', async () => {
    let store = await openStore();
    const first = await Promise.all([1, 2, 3].map(() => store.createJob(spec(), 'fp', 1, '')));
    expect(first.map((r) => r.job.id).sort()).toEqual([1, 2, 3]);
    await store.close();
    store = await openStore();
    expect((await store.createJob(spec(), 'fp', 2, '')).job.id).toBe(4);
    expect((await store.getJob(2))?.id).toBe(2);
    await store.close();
  });

  it('continues after the highest id even when those jobs were purged', async () => {
    let store = await openStore();
    for (let i = 0; i < 3; i++) {
      const { job } = await store.createJob(spec(), 'fp', 1, '');
      await finish(store, job, 'COMPLETED', 10);
    }
    expect(await store.purgeFinishedBefore(100, 10)).toBe(3);
    await store.close();
    store = await openStore();
    expect((await store.createJob(spec(), 'fp', 2, '')).job.id).toBe(4);
    await store.close();
  });
});

describe('client tokens', () => {
  it('returns the original job for the same token and fingerprint', async () => {
    const store = await openStore();
    const a = await store.createJob(spec({ clientToken: 't1' }), 'fp-a', 1, '');
    const b = await store.createJob(spec({ clientToken: 't1' }), 'fp-a', 2, '');
    expect(b).toEqual({ job: a.job, created: false });
    expect((await store.listJobs({}, 10)).jobs).toHaveLength(1);
    await store.close();
  });

  it('rejects the same token with another fingerprint', async () => {
    const store = await openStore();
    await store.createJob(spec({ clientToken: 't1' }), 'fp-a', 1, '');
    const err = await store.createJob(spec({ clientToken: 't1', cores: 2 }), 'fp-b', 2, '').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HpcqError);
    expect(err).toMatchObject({ code: 'IdempotentParameterMismatch', kind: 'already_exists', field: 'client_token' });
    expect((err as Error).message).toMatch(/client_token "t1" was used with a different request/);
    await store.close();
  });

  it('creates exactly one job for 50 concurrent calls with one token', async () => {
    const store = await openStore();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.createJob(spec({ clientToken: 'same' }), 'fp', i, '')),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    expect((await store.listJobs({}, 100)).jobs).toHaveLength(1);
    await store.close();
  });

  it('rejects concurrent calls whose fingerprint differs from the one that won', async () => {
    const store = await openStore();
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.createJob(spec({ clientToken: 'same' }), `fp-${i % 2}`, i, '')),
    );
    const ok = settled.filter((s) => s.status === 'fulfilled');
    const bad = settled.filter((s) => s.status === 'rejected');
    expect(ok).toHaveLength(10);
    expect(bad).toHaveLength(10);
    for (const s of bad) expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'IdempotentParameterMismatch' });
    expect((await store.listJobs({}, 100)).jobs).toHaveLength(1);
    await store.close();
  });

  it('scopes tokens by run user', async () => {
    const store = await openStore();
    const alice = await store.createJob(spec({ runUser: 'alice', clientToken: 'shared' }), 'fp-a', 1, '');
    const bob = await store.createJob(spec({ runUser: 'bob', clientToken: 'shared' }), 'fp-b', 1, '');
    expect(bob.created).toBe(true);
    expect(bob.job.id).not.toBe(alice.job.id);
    await store.close();
  });

  it('admits a new job only after the token check, once per token', async () => {
    const store = await openStore();
    let admitted = 0;
    let full = false;
    const admit = () => {
      if (full) throw new HpcqError('LimitExceeded.JobQuota', 'exhausted', 'queue full');
      admitted += 1;
    };
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.createJob(spec({ clientToken: 'once' }), 'fp', 1, '', admit)),
    );
    expect(admitted).toBe(1);
    expect(new Set(results.map((r) => r.job.id)).size).toBe(1);
    full = true;
    // A retry of the stored request is answered although the queue is full...
    expect(await store.createJob(spec({ clientToken: 'once' }), 'fp', 2, '', admit)).toEqual({ job: results[0]?.job, created: false });
    // ...a new request is refused with the admission error and stores nothing.
    await expect(store.createJob(spec({ clientToken: 'new' }), 'fp', 2, '', admit)).rejects.toMatchObject({ code: 'LimitExceeded.JobQuota' });
    await expect(store.createJob(spec(), 'fp', 2, '', admit)).rejects.toMatchObject({ code: 'LimitExceeded.JobQuota' });
    full = false;
    expect((await store.createJob(spec({ clientToken: 'new' }), 'fp', 3, '', admit)).created).toBe(true);
    expect((await store.listJobs({}, 10)).jobs).toHaveLength(2);
    await store.close();
  });

  it('lets a waiting call create the job when the call that claimed the token stored nothing', async () => {
    const store = await openStore();
    let calls = 0;
    const admit = () => {
      calls += 1;
      if (calls === 1) throw new HpcqError('LimitExceeded.JobQuota', 'exhausted', 'queue full');
    };
    const settled = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => store.createJob(spec({ clientToken: 'retry' }), 'fp', i, '', admit)),
    );
    expect(settled[0]).toMatchObject({ status: 'rejected', reason: { code: 'LimitExceeded.JobQuota' } });
    expect(settled.slice(1).every((s) => s.status === 'fulfilled')).toBe(true);
    const ok = settled.slice(1).map((s) => (s as PromiseFulfilledResult<{ job: Job; created: boolean }>).value);
    expect(ok.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(ok.map((r) => r.job.id)).size).toBe(1);
    expect(calls).toBe(2);
    expect((await store.listJobs({}, 10)).jobs).toEqual([ok[0]?.job]);
    await store.close();
  });

  it('survives a reopen', async () => {
    let store = await openStore();
    const original = await store.createJob(spec({ clientToken: 'durable' }), 'fp', 1, '');
    await store.close();
    store = await openStore();
    expect(await store.createJob(spec({ clientToken: 'durable' }), 'fp', 2, '')).toEqual({ job: original.job, created: false });
    await expect(store.createJob(spec({ clientToken: 'durable' }), 'other', 2, '')).rejects.toMatchObject({
      code: 'IdempotentParameterMismatch',
    });
    await store.close();
  });
});

describe('group commit', () => {
  it('puts 200 concurrent creates into far fewer synced batches', async () => {
    const store = await openStore();
    const before = store.stats();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.createJob(spec(), 'fp', i, '')));
    const after = store.stats();
    const batches = after.batches - before.batches;
    expect(new Set(results.map((r) => r.job.id)).size).toBe(200);
    expect(after.writes - before.writes).toBe(200);
    expect(batches).toBeLessThanOrEqual(20);
    expect(after.maxBatchWrites).toBeGreaterThan(10);
    await store.close();
  });

  it('close() writes everything queued before closing', async () => {
    let store = await openStore();
    const pending = Array.from({ length: 30 }, (_, i) => store.createJob(spec(), 'fp', i, ''));
    await store.close();
    const ids = (await Promise.all(pending)).map((r) => r.job.id);
    await store.close(); // idempotent
    await expect(store.createJob(spec(), 'fp', 1, '')).rejects.toBeInstanceOf(StoreUnavailableError);
    store = await openStore();
    for (const id of ids) expect(await store.getJob(id)).toBeDefined();
    await store.close();
  });
});

async function finish(store: LevelJobStore, job: Job, to: 'COMPLETED' | 'FAILED' | 'CANCELLED', endMs: number): Promise<Job> {
  const running = transition(job, 'RUNNING', '', endMs - 1);
  const ended = transition(running.job, to, 'done', endMs);
  await store.saveTransitions([
    { job: running.job, previousState: job.state, event: running.event },
    { job: ended.job, previousState: 'RUNNING', event: ended.event },
  ]);
  return ended.job;
}

describe('saveTransitions', () => {
  it('updates the record, moves index entries and appends events', async () => {
    const store = await openStore();
    const { job } = await store.createJob(spec(), 'fp', 1, 'queued');
    const started = transition(job, 'RUNNING', 'started', 5);
    await store.saveTransitions([{ job: started.job, previousState: 'PENDING', event: started.event }]);
    expect(await store.getJob(job.id)).toEqual(started.job);
    expect((await store.listJobs({ states: ['PENDING'] }, 10)).jobs).toEqual([]);
    expect((await store.listJobs({ states: ['RUNNING'] }, 10)).jobs).toEqual([started.job]);
    expect((await store.listJobs({ runUser: 'alice', states: ['PENDING'] }, 10)).jobs).toEqual([]);
    expect((await store.listJobs({ clusterId: 'c1', states: ['RUNNING'] }, 10)).jobs).toEqual([started.job]);

    const ended = transition(started.job, 'FAILED', 'exit 3', 9);
    await store.saveTransitions([{ job: { ...ended.job, exitCode: 3 }, previousState: 'RUNNING', event: ended.event }]);
    expect((await store.listJobs({ hpcqueueId: 'q1', states: ['RUNNING'] }, 10)).jobs).toEqual([]);
    expect((await store.listJobs({ hpcqueueId: 'q1', states: ['FAILED'] }, 10)).jobs.map((j) => j.exitCode)).toEqual([3]);
    expect((await store.getEvents(job.id)).map((e) => [e.sequence, e.state, e.reason])).toEqual([
      [1, 'PENDING', 'queued'],
      [2, 'RUNNING', 'started'],
      [3, 'FAILED', 'exit 3'],
    ]);
    await store.close();
  });

  it('applies several transitions of one job in one call', async () => {
    const store = await openStore();
    const { job } = await store.createJob(spec(), 'fp', 1, '');
    const done = await finish(store, job, 'COMPLETED', 10);
    for (const state of ['PENDING', 'RUNNING'] as const) {
      expect((await store.listJobs({ states: [state] }, 10)).jobs).toEqual([]);
      expect((await store.listJobs({ runUser: 'alice', states: [state] }, 10)).jobs).toEqual([]);
    }
    expect((await store.listJobs({ states: ['COMPLETED'] }, 10)).jobs).toEqual([done]);
    expect((await store.loadActiveJobs()).jobs).toEqual([]);
    await store.close();
  });

  it('refuses a transition whose event belongs to another job', async () => {
    const store = await openStore();
    const { job } = await store.createJob(spec(), 'fp', 1, '');
    const started = transition(job, 'RUNNING', '', 2);
    await expect(
      store.saveTransitions([{ job: started.job, previousState: 'PENDING', event: { ...started.event, jobId: 99 } }]),
    ).rejects.toThrow(/belongs to job 99/);
    expect((await store.getJob(job.id))?.state).toBe('PENDING');
    await store.close();
  });
});

describe('createJobs (job groups and arrays)', () => {
  it('stores an array job and 1,000 instances in one synced batch, with consecutive ids and resolved references', async () => {
    const store = await openStore();
    const arraySpec = spec({ array: { count: 1000, parallelism: 5 } });
    const { array: _array, ...plain } = arraySpec;
    const instances: JobSpec[] = Array.from({ length: 1000 }, (_, index) => ({ ...plain, arrayInstance: { arrayJobId: -1, index, count: 1000 } }));
    const before = store.stats().batches;
    const { jobs, created } = await store.createJobs([arraySpec, ...instances], undefined, '', 5, ['Array', ...instances.map(() => 'Priority')]);
    expect(store.stats().batches - before).toBe(1);
    expect(created).toBe(true);
    expect(jobs!.map((j) => j.id)).toEqual(Array.from({ length: 1001 }, (_, i) => jobs![0]!.id + i));
    expect(jobs![0]).toMatchObject({ array: { count: 1000, parallelism: 5 } });
    expect(jobs![1000]!.arrayInstance).toEqual({ arrayJobId: jobs![0]!.id, index: 999, count: 1000 });
    expect(await store.getJob(jobs![500]!.id)).toEqual(jobs![500]);
    await store.close();
  });

  it('a group gets its membership and its tasks\' references to each other resolved', async () => {
    const store = await openStore();
    const tasks: JobSpec[] = [spec({ group: { firstJobId: 0, size: 0, name: 'g', taskName: 'a' } }), spec({ group: { firstJobId: 0, size: 0, name: 'g', taskName: 'b' }, dependsOn: [{ jobId: -1, condition: 'afterok' }] })];
    const { jobs } = await store.createJobs(tasks, { name: 'g' }, '', 5, ['Priority', 'Dependency']);
    const [a, b] = jobs!;
    expect(a!.group).toEqual({ firstJobId: a!.id, size: 2, name: 'g', taskName: 'a' });
    expect(b!.dependsOn).toEqual([{ jobId: a!.id, condition: 'afterok' }]);
    await store.close();
  });
});
