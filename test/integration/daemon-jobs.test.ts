// A real hpcqd over its unix socket running real jobs as the unprivileged test user.
import { readFileSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { JobState } from '../../src/gen/hpcq/v1/job.js';
import type { ListQueuesRequest, ListQueuesResponse } from '../../src/gen/hpcq/v1/queue_service.js';
import { call, getJob, startDaemon, stopAll, submit, waitForEnd } from '../support/daemon-harness.js';
import { isRoot, JOB_USER, need } from '../support/privileged.js';

afterEach(stopAll);

const canRunAsJobUser = () => need(isRoot, 'root, to run jobs as the test user');
const uidOf = (user: string) => Number(execFileSync('id', ['-u', user]).toString().trim());

describe('jobs run end to end', () => {
  it('runs a job as run_user, writes its output as that user, and completes', async () => {
    if (!canRunAsJobUser()) return;
    const d = await startDaemon();
    const res = await submit(d, { name: 'hello', runUser: JOB_USER, cmdLine: 'echo out-$HPCQ_JOB_ID; echo err >&2; id -un' });
    expect(res).toMatchObject({ action: 'HpcJobSubmitJobResponse', jobStatus: 'pending', retCode: 0 });
    expect(res.hpcjobUuid).toMatch(/^hpcjob-[0-9a-z]{8}$/);
    expect(res.jobId).toMatch(/^\d+$/);
    const job = await waitForEnd(d, res.jobId);
    expect(job.state).toBe(JobState.JOB_STATE_COMPLETED);
    expect(job.jobStatus).toBe('completed');
    expect(job.exitCode).toBe(0);
    expect(job.stdoutPath).toBe(`/home/${JOB_USER}/hpcq-${res.jobId}.out`);
    expect(readFileSync(job.stdoutPath, 'utf8')).toBe(`out-${res.jobId}\n${JOB_USER}\n`);
    expect(readFileSync(job.stderrPath, 'utf8')).toBe('err\n');
    expect(statSync(job.stdoutPath).uid).toBe(uidOf(JOB_USER));
    expect(job.enforcement).toBe('cgroup1');
    expect(job.usage?.wallTimeMs).toBeGreaterThanOrEqual(0);
    expect(job.startTime).not.toBe('');
    expect(job.endTime).not.toBe('');
  });

  it('records a non-zero exit code as FAILED', async () => {
    if (!canRunAsJobUser()) return;
    const d = await startDaemon();
    const res = await submit(d, { name: 'exits-3', runUser: JOB_USER, cmdLine: 'exit 3' });
    const job = await waitForEnd(d, res.jobId);
    expect(job.jobStatus).toBe('failed');
    expect(job.exitCode).toBe(3);
    expect(job.reason).toContain('NonZeroExitCode');
  });

  it('lists queues with counts', async () => {
    const d = await startDaemon();
    const res = await call<ListQueuesRequest, ListQueuesResponse>(d.queues.listQueues, d.queues, { clusterId: '' });
    expect(res.queues.map((q) => q.hpcqueueId)).toEqual(['hpcq-normal', 'hpcq-debug']);
  });
});
