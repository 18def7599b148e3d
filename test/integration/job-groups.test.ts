/**
 * Job groups (SubmitJobGroup / GetJobGroup) with a real daemon and real jobs: Tencent Batch's
 * two-task pre_task -> post_task example, a diamond DAG run in a valid order, a failing task whose
 * dependents end DependencyNeverSatisfied while the other branch goes on, refusals that store
 * nothing (a loop, an unknown task, a full queue), and client_token idempotency.
 */
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import type { GetJobGroupRequest, GetJobGroupResponse, SubmitJobGroupRequest, SubmitJobGroupResponse, SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { call, emptySubmit, listJobs, reasonOf, rejection, startDaemon, stopAll, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir, removeJobUserDirs } from '../support/durability.js';
import { ensureTestUsers, isRoot, JOB_USER, need } from '../support/privileged.js';

afterEach(async () => {
  await stopAll();
  removeJobUserDirs();
});

const ready = () => need(isRoot && ensureTestUsers(), 'root and the test accounts');

/** A task that appends its name to `<dir>/runs`, then runs `cmd`. */
function task(dir: string, taskName: string, cmd = 'true', more: Partial<SubmitJobRequest> = {}): SubmitJobRequest {
  return { ...emptySubmit, taskName, runUser: JOB_USER, cmdLine: `echo ${taskName} >> ${dir}/runs; ${cmd}`, stdoutRedirectPath: `${dir}/%j.out`, stderrRedirectPath: `${dir}/%j.err`, ...more };
}
const edge = (startTask: string, endTask: string) => ({ startTask, endTask });

function submitGroup(d: DaemonHandle, req: Partial<SubmitJobGroupRequest>): Promise<SubmitJobGroupResponse> {
  return call<SubmitJobGroupRequest, SubmitJobGroupResponse>(d.jobs.submitJobGroup, d.jobs, { name: 'group', tasks: [], dependences: [], clientToken: '', ...req });
}
function getGroup(d: DaemonHandle, groupId: string): Promise<GetJobGroupResponse> {
  return call<GetJobGroupRequest, GetJobGroupResponse>(d.jobs.getJobGroup, d.jobs, { groupId });
}
async function waitForGroup(d: DaemonHandle, res: SubmitJobGroupResponse): Promise<Map<string, Job>> {
  const ended = new Map<string, Job>();
  for (const [name, jobId] of Object.entries(res.taskJobIds)) ended.set(name, await waitForEnd(d, jobId));
  return ended;
}

describe('job groups', () => {
  it("Tencent's example: pre_task then post_task, in one group", async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('group-tencent');
    const res = await submitGroup(d, { name: 'tencent-example', tasks: [task(dir, 'pre_task', 'sleep 0.2'), task(dir, 'post_task')], dependences: [edge('pre_task', 'post_task')] });
    expect(res.retCode).toBe(0);
    expect(res.groupId).toMatch(/^group-\d+$/);
    const ended = await waitForGroup(d, res);
    expect([...ended.values()].map((j) => j.jobStatus)).toEqual(['completed', 'completed']);
    expect(Date.parse(ended.get('post_task')!.startTime)).toBeGreaterThanOrEqual(Date.parse(ended.get('pre_task')!.endTime));
    const group = await getGroup(d, res.groupId);
    expect(group).toMatchObject({ groupId: res.groupId, name: 'tencent-example', finished: true, counts: { completed: 2 } });
    expect(group.tasks.map((t) => [t.taskName, t.job!.groupId, t.job!.name])).toEqual([
      ['pre_task', res.groupId, 'pre_task'],
      ['post_task', res.groupId, 'post_task'],
    ]);
  });

  it('a diamond runs in a valid order; a failing task cancels its dependents while the other branch goes on', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('group-diamond');
    const diamond = await submitGroup(d, {
      name: 'diamond',
      tasks: [task(dir, 'd'), task(dir, 'b', 'sleep 0.2'), task(dir, 'c'), task(dir, 'a')],
      dependences: [edge('a', 'b'), edge('a', 'c'), edge('b', 'd'), edge('c', 'd')],
    });
    const ended = await waitForGroup(d, diamond);
    const runs = linesOf(join(dir, 'runs'));
    expect(runs).toHaveLength(4);
    expect(runs[0]).toBe('a');
    expect(runs[3]).toBe('d');
    expect([...ended.values()].every((j) => j.jobStatus === 'completed')).toBe(true);

    const dir2 = makeJobUserDir('group-branch');
    const branches = await submitGroup(d, {
      name: 'branches',
      tasks: [task(dir2, 'root'), task(dir2, 'bad', 'exit 5'), task(dir2, 'after_bad'), task(dir2, 'good', 'sleep 0.3'), task(dir2, 'after_good')],
      dependences: [edge('root', 'bad'), edge('bad', 'after_bad'), edge('root', 'good'), edge('good', 'after_good')],
    });
    const done = await waitForGroup(d, branches);
    expect(done.get('bad')!.jobStatus).toBe('failed');
    expect(done.get('after_bad')).toMatchObject({ jobStatus: 'cancelled', reason: expect.stringMatching(/^DependencyNeverSatisfied: job \d+ ended FAILED/) });
    expect(done.get('after_good')!.jobStatus).toBe('completed');
    expect((await getGroup(d, branches.groupId)).counts).toEqual({ completed: 3, failed: 1, cancelled: 1 });
  });

  it("BatchCompute's example: a DAG with an array task (instances, retries) and a task after the whole array", async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('group-batchcompute');
    // Instance 1 of `split` fails its first attempt; its retry succeeds; `merge` waits for all three.
    const split = task(dir, 'split', `echo "$HPCQ_ARRAY_INDEX.$HPCQ_ATTEMPT" >> ${dir}/parts; [ "$HPCQ_ARRAY_INDEX.$HPCQ_ATTEMPT" != 1.1 ]`, {
      array: { count: 3, parallelism: 2 },
      retry: { maxRetryCount: 1, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0 },
    });
    const res = await submitGroup(d, { name: 'batchcompute-example', tasks: [task(dir, 'prepare'), split, task(dir, 'merge')], dependences: [edge('prepare', 'split'), edge('split', 'merge')] });
    const ended = await waitForGroup(d, res);
    expect(ended.get('split')).toMatchObject({ jobStatus: 'completed', array: { count: 3, parallelism: 2 }, instanceCounts: { completed: 3 } });
    expect(ended.get('merge')!.jobStatus).toBe('completed');
    expect(linesOf(join(dir, 'parts')).sort()).toEqual(['0.1', '1.1', '1.2', '2.1']);
    expect(linesOf(join(dir, 'runs'))).toEqual(['prepare', 'split', 'split', 'split', 'split', 'merge']);
    const group = await getGroup(d, res.groupId);
    expect(group.tasks.map((t) => t.taskName)).toEqual(['prepare', 'split', 'merge']);
    expect(group).toMatchObject({ finished: true, counts: { completed: 3 } });
  });

  it('a loop, an unknown task or a full queue refuses the whole group and stores nothing', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('group-refused');
    const loop = await rejection(submitGroup(d, { tasks: [task(dir, 'a'), task(dir, 'b')], dependences: [edge('a', 'b'), edge('b', 'a')] }));
    expect(loop).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameterValue.DependenceUnfeasible' });
    const unknown = await rejection(submitGroup(d, { tasks: [task(dir, 'a')], dependences: [edge('a', 'zz')] }));
    expect(unknown).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameterValue.DependenceNotFoundTaskName' });
    const badTask = await rejection(submitGroup(d, { tasks: [task(dir, 'a'), task(dir, 'b', 'true', { memLimit: -1 })] }));
    expect(badTask).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameterValue.Negative', field: 'tasks.1.mem_limit' });
    // hpcq-debug takes at most 3 pending jobs: 4 tasks there cannot all fit, so none is stored.
    const full = await rejection(submitGroup(d, { tasks: ['a', 'b', 'c', 'e'].map((n) => task(dir, n, 'true', { hpcqueueId: 'hpcq-debug' })) }));
    expect(full).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: 'LimitExceeded.JobQuota' });
    expect((await listJobs(d)).jobs).toEqual([]);
  });

  it('client_token makes the group idempotent: the same request returns the same group, another is refused', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('group-token');
    const req = { name: 'tokened', tasks: [task(dir, 'x'), task(dir, 'y')], dependences: [edge('x', 'y')], clientToken: 'group-token-1' };
    const first = await submitGroup(d, req);
    const again = await submitGroup(d, req);
    expect(again).toEqual(first);
    const changed = await submitGroup(d, { ...req, dependences: [] }).catch((e: ServiceError) => e);
    expect(reasonOf(changed)).toMatchObject({ code: status.ALREADY_EXISTS, reason: 'IdempotentParameterMismatch' });
    await waitForGroup(d, first);
    expect((await listJobs(d)).jobs).toHaveLength(2);
  });
});
