// client_token idempotency against a real hpcqd (RELIABILITY-TESTS I7 I8 I9, D2's retry half).
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { getJob, isRunning, listJobs, reasonOf, rejection, startDaemon, stopAll, submit, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import { isRoot, JOB_USER, need, OTHER_USER } from '../support/privileged.js';

const canRunJobs = () => need(isRoot, 'root, to run jobs as the test users');

afterEach(stopAll);

const jobsOf = async (d: DaemonHandle) => (await listJobs(d)).jobs;

const REQUEST: Partial<SubmitJobRequest> = {
  name: 'idem',
  runUser: JOB_USER,
  cmdLine: 'true',
  stdoutRedirectPath: '/dev/null',
  stderrRedirectPath: '/dev/null',
};

function expectMismatch(got: ReturnType<typeof reasonOf>): void {
  expect({ code: got.code, reason: got.reason, field: got.field }).toEqual({
    code: status.ALREADY_EXISTS,
    reason: 'IdempotentParameterMismatch',
    field: 'client_token',
  });
  expect(got.message.startsWith('IdempotentParameterMismatch: ')).toBe(true);
}

describe('SubmitJob with client_token', () => {
  it('the same token with the same request returns the same job_id and uuid; one job is stored', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, clientToken: 'tok-same-1' };
    const first = await submit(d, req);
    const second = await submit(d, req);
    expect(second).toEqual(first);
    expect(first).toMatchObject({ action: 'HpcJobSubmitJobResponse', jobStatus: 'pending', retCode: 0 });
    const jobs = await jobsOf(d);
    expect(jobs.map((j) => [j.jobId, j.hpcjobUuid, j.clientToken])).toEqual([[first.jobId, first.hpcjobUuid, 'tok-same-1']]);
    // After the job finished, a retry still answers with the original job and stores nothing new.
    await waitForEnd(d, first.jobId);
    expect(await submit(d, req)).toEqual(first);
    expect(await jobsOf(d)).toHaveLength(1);
    // The next job without a token gets the next id: the retries consumed none.
    expect((await submit(d, REQUEST)).jobId).toBe(String(Number(first.jobId) + 1));
  });

  it('a retry with another timestamp is the same request (the timestamp is not part of it)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, clientToken: 'tok-ts' };
    const first = await submit(d, { ...req, timestamp: new Date(Date.now() - 2000).toISOString() });
    const retry = await submit(d, { ...req, timestamp: String(Math.floor(Date.now() / 1000)) });
    expect(retry).toEqual(first);
    expect(await jobsOf(d)).toHaveLength(1);
  });

  it('the same token with a different request is ALREADY_EXISTS IdempotentParameterMismatch and stores nothing', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, clientToken: 'tok-mismatch' };
    const first = await submit(d, req);
    const variants: Array<Partial<SubmitJobRequest>> = [
      { cmdLine: 'true ' },
      { name: 'idem2' },
      { priority: 5 },
      { memLimit: 300 },
      { hpcqueueId: 'hpcq-debug' },
      { stdoutRedirectPath: '/dev/zero' },
      { resourceLimit: 'pids=100' },
      { submitType: 1 },
    ];
    for (const change of variants) expectMismatch(await rejection(submit(d, { ...req, ...change })));
    const jobs = await jobsOf(d);
    expect(jobs.map((j) => j.jobId)).toEqual([first.jobId]);
    expect((await getJob(d, first.jobId)).cmdLine).toBe('true');
    // The original request is still answered with the original job.
    expect(await submit(d, req)).toEqual(first);
  });

  it('a request that resolves to the same job spec is the same request (defaults spelled out or not)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    // normal is the default queue of the only cluster: naming it, the cluster and the zone changes nothing.
    const first = await submit(d, { ...REQUEST, clientToken: 'tok-defaults' });
    const spelled = await submit(d, {
      ...REQUEST,
      clientToken: 'tok-defaults',
      clusterId: 'hpcq-test',
      zone: 'test-zone',
      hpcqueueId: 'hpcq-normal',
      schedulerQueueName: 'normal',
      coreLimit: 1,
      memLimit: 256,
      timeLimit: 600,
    });
    expect(spelled).toEqual(first);
    expect(await jobsOf(d)).toHaveLength(1);
  });

  it('20 concurrent submits with one token create exactly one job and all get its id', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, clientToken: 'tok-concurrent', cmdLine: 'sleep 1' };
    const results = await Promise.all(Array.from({ length: 20 }, () => submit(d, req)));
    const ids = new Set(results.map((r) => `${r.jobId}/${r.hpcjobUuid}`));
    expect(ids.size).toBe(1);
    const jobs = await jobsOf(d);
    expect(jobs).toHaveLength(1);
    expect(`${jobs[0]!.jobId}/${jobs[0]!.hpcjobUuid}`).toBe([...ids][0]);
    expect((await waitForEnd(d, jobs[0]!.jobId)).jobStatus).toBe('completed');
  });

  it('20 concurrent submits with one token but two different requests: one job, the other request mismatches', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const a = { ...REQUEST, clientToken: 'tok-race', cmdLine: 'echo a' };
    const b = { ...REQUEST, clientToken: 'tok-race', cmdLine: 'echo b' };
    const settled = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => submit(d, i % 2 === 0 ? a : b)));
    const jobs = await jobsOf(d);
    expect(jobs).toHaveLength(1);
    const winner = jobs[0]!.cmdLine === 'echo a' ? 0 : 1;
    settled.forEach((s, i) => {
      if (i % 2 === winner) {
        expect(s.status).toBe('fulfilled');
        if (s.status === 'fulfilled') expect(s.value.jobId).toBe(jobs[0]!.jobId);
      } else {
        expect(s.status).toBe('rejected');
        if (s.status === 'rejected') expectMismatch(reasonOf(s.reason));
      }
    });
  });

  it('tokens are scoped per run_user: the same token for two users makes two jobs, each retried separately', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const token = 'tok-shared-by-users';
    const forJob = await submit(d, { ...REQUEST, runUser: JOB_USER, clientToken: token });
    const forOther = await submit(d, { ...REQUEST, runUser: OTHER_USER, clientToken: token });
    expect(forOther.jobId).not.toBe(forJob.jobId);
    expect(forOther.hpcjobUuid).not.toBe(forJob.hpcjobUuid);
    expect(await submit(d, { ...REQUEST, runUser: JOB_USER, clientToken: token })).toEqual(forJob);
    expect(await submit(d, { ...REQUEST, runUser: OTHER_USER, clientToken: token })).toEqual(forOther);
    const jobs = await jobsOf(d);
    expect(jobs.map((j) => [j.jobId, j.runUser])).toEqual([
      [forOther.jobId, OTHER_USER],
      [forJob.jobId, JOB_USER],
    ]);
    // A different request under one user's token is still a mismatch for that user only.
    expectMismatch(await rejection(submit(d, { ...REQUEST, runUser: OTHER_USER, clientToken: token, cmdLine: 'false' })));
  });

  it('different tokens (and no token) with the same request make separate jobs', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const a = await submit(d, { ...REQUEST, clientToken: 'tok-a' });
    const b = await submit(d, { ...REQUEST, clientToken: 'tok-b' });
    const c = await submit(d, REQUEST);
    const e = await submit(d, REQUEST);
    expect(new Set([a.jobId, b.jobId, c.jobId, e.jobId]).size).toBe(4);
    expect(await jobsOf(d)).toHaveLength(4);
  });

  it('a retry of a stored request is answered with the original job even when the queue is full (max_pending)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const debug = { ...REQUEST, hpcqueueId: 'hpcq-debug', cmdLine: 'sleep 100', timeLimit: 60 };
    const runner = await submit(d, { ...debug, name: 'runner' });
    await waitForJob(d, runner.jobId, isRunning);
    // debug: max_running 1, max_pending 3. The token's job is one of the three pending jobs.
    const tokened = await submit(d, { ...debug, name: 'tokened', clientToken: 'tok-full-queue' });
    await submit(d, { ...debug, name: 'filler-1' });
    await submit(d, { ...debug, name: 'filler-2' });
    // The retry creates nothing, so the quota has nothing to refuse: the client gets its job back.
    expect(await submit(d, { ...debug, name: 'tokened', clientToken: 'tok-full-queue' })).toEqual(tokened);
    expect(await jobsOf(d)).toHaveLength(4);
  });

  it('20 concurrent retries of one token into a queue with max_pending 3 all get the one job (retries are not new submits)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, hpcqueueId: 'hpcq-debug', clientToken: 'tok-small-queue' };
    const settled = await Promise.allSettled(Array.from({ length: 20 }, () => submit(d, req)));
    const refused = settled.filter((s) => s.status === 'rejected').map((s) => reasonOf((s as PromiseRejectedResult).reason).reason);
    expect(refused).toEqual([]);
    expect(await jobsOf(d)).toHaveLength(1);
  });

  it('tokens are case-sensitive', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const lower = await submit(d, { ...REQUEST, clientToken: 'tok-case' });
    const upper = await submit(d, { ...REQUEST, clientToken: 'TOK-CASE' });
    expect(upper.jobId).not.toBe(lower.jobId);
  });

  it('the token -> job mapping survives a daemon restart (I9)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, clientToken: 'tok-restart', runUser: OTHER_USER };
    const first = await submit(d, req);
    await waitForEnd(d, first.jobId);
    expect(await d.stop()).toBe(0);

    const again = await startDaemon({ stateDir: d.stateDir });
    expect(await submit(again, req)).toEqual(first);
    expectMismatch(await rejection(submit(again, { ...req, cmdLine: 'echo changed' })));
    expect((await jobsOf(again)).map((j) => j.jobId)).toEqual([first.jobId]);
    // The id counter survived too: a new job gets the next id, not a reused one.
    expect((await submit(again, REQUEST)).jobId).toBe(String(Number(first.jobId) + 1));
  });

  it('the token -> job mapping survives a kill -9 right after the submit was acknowledged (D2 retry)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const req = { ...REQUEST, clientToken: 'tok-kill9', hpcqueueId: 'hpcq-debug', cmdLine: 'sleep 1' };
    const first = await submit(d, req);
    await d.kill9();

    const again = await startDaemon({ stateDir: d.stateDir });
    expect(await submit(again, req)).toEqual(first);
    expect((await jobsOf(again)).map((j) => j.jobId)).toEqual([first.jobId]);
    await waitForEnd(again, first.jobId);
  });
});

