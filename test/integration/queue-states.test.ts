/**
 * Queue states like Slurm's partitions, with a real daemon: a draining queue refuses submits and
 * still starts what it holds; a stopped queue takes jobs and starts none (QueueStopped); both are
 * stored and survive a restart; only admins change them (the CLI as an ordinary user).
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { QueueStateRequest, QueueStateResponse } from '../../src/gen/hpcq/v1/queue_service.js';
import { hpcqAs } from '../support/as-user.js';
import { blockDebugQueue, call, cancelJob, getJob, listQueues, rejection, startDaemon, submit, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';

const daemons = cleanUpJobTests();
const ready = canRunJobs;

const setState = (d: DaemonHandle, verb: 'drainQueue' | 'stopQueue' | 'resumeQueue', hpcqueueId: string) =>
  call<QueueStateRequest, QueueStateResponse>(d.queues[verb], d.queues, { hpcqueueId });
const quick = { runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' };
const stateOf = async (d: DaemonHandle, id: string) => (await listQueues(d)).queues.find((q) => q.hpcqueueId === id)!.state;

describe('queue states', () => {
  it('a draining queue refuses new jobs and still starts the ones it holds', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const queued = await submit(d, { ...quick, name: 'queued', hpcqueueId: 'hpcq-debug' });
    expect((await setState(d, 'drainQueue', 'hpcq-debug')).queue).toMatchObject({ hpcqueueId: 'hpcq-debug', state: 'draining' });
    expect(await stateOf(d, 'hpcq-debug')).toBe('draining');
    expect(await rejection(submit(d, { ...quick, name: 'refused', hpcqueueId: 'hpcq-debug' }))).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: 'OperationDenied.QueueDraining',
    });
    // Other queues still take jobs.
    expect((await waitForEnd(d, (await submit(d, { ...quick, name: 'elsewhere' })).jobId)).jobStatus).toBe('completed');
    await cancelJob(d, blocker.jobId);
    expect((await waitForEnd(d, queued.jobId)).jobStatus).toBe('completed');
  });

  it('a stopped queue takes jobs but starts none, also after a restart; resume starts them', async () => {
    if (!ready()) return;
    let d = await startDaemon();
    daemons.push(d);
    await setState(d, 'stopQueue', 'hpcq-normal');
    const waiting = await submit(d, { ...quick, name: 'waiting' });
    await new Promise((r) => setTimeout(r, 500));
    expect(await getJob(d, waiting.jobId)).toMatchObject({ jobStatus: 'pending', reason: 'QueueStopped' });
    expect(await d.stop()).toBe(0);
    d = await startDaemon({ stateDir: d.stateDir });
    daemons.push(d);
    expect(await stateOf(d, 'hpcq-normal')).toBe('stopped');
    await new Promise((r) => setTimeout(r, 500));
    expect((await getJob(d, waiting.jobId)).jobStatus).toBe('pending');
    expect((await setState(d, 'resumeQueue', 'hpcq-normal')).queue!.state).toBe('open');
    expect((await waitForEnd(d, waiting.jobId)).jobStatus).toBe('completed');
  });

  it('only admins change a queue\'s state; an unknown queue is NOT_FOUND', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const run = await hpcqAs(JOB_USER, d.address, ['queue', 'stop', 'hpcq-normal']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('OperationDenied.AdminRequired');
    expect(await stateOf(d, 'hpcq-normal')).toBe('open');
    expect(await rejection(setState(d, 'drainQueue', 'no-such-queue'))).toMatchObject({ code: status.NOT_FOUND, reason: 'ResourceNotFound.Queue' });
  });
});
