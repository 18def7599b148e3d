// A real hpcqd over its unix socket running real jobs as the unprivileged test user.
import { readFileSync, rmSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { JobState } from '../../src/gen/hpcq/v1/job.js';
import { listQueues, startDaemon, stopAll, submit, waitForEnd } from '../support/daemon-harness.js';
import { isRoot, JOB_USER, need, uidOf } from '../support/privileged.js';

afterEach(stopAll);

const canRunAsJobUser = () => need(isRoot, 'root, to run jobs as the test user');

describe('jobs run end to end', () => {
  it('runs a job as run_user, writes its output as that user, and completes', async () => {
    if (!canRunAsJobUser()) return;
    const d = await startDaemon();
    // No redirect paths: the default ~/hpcq-%j.out/.err in the job user's home, removed afterwards.
    const res = await submit(d, { name: 'hello', runUser: JOB_USER, cmdLine: 'echo out-$HPCQ_JOB_ID; echo err >&2; id -un' });
    const outputs = [`/home/${JOB_USER}/hpcq-${res.jobId}.out`, `/home/${JOB_USER}/hpcq-${res.jobId}.err`];
    try {
      expect(res).toMatchObject({ action: 'HpcJobSubmitJobResponse', jobStatus: 'pending', retCode: 0 });
      expect(res.hpcjobUuid).toMatch(/^hpcjob-[0-9a-z]{8}$/);
      expect(res.jobId).toMatch(/^\d+$/);
      const job = await waitForEnd(d, res.jobId);
      expect(job.state).toBe(JobState.JOB_STATE_COMPLETED);
      expect(job.jobStatus).toBe('completed');
      expect(job.exitCode).toBe(0);
      expect([job.stdoutPath, job.stderrPath]).toEqual(outputs);
      expect(readFileSync(job.stdoutPath, 'utf8')).toBe(`out-${res.jobId}\n${JOB_USER}\n`);
      expect(readFileSync(job.stderrPath, 'utf8')).toBe('err\n');
      expect(statSync(job.stdoutPath).uid).toBe(uidOf(JOB_USER));
      // The job records the enforcement the daemon reports for the node.
      expect(job.enforcement).toBe((await listQueues(d)).enforcement);
      expect(job.enforcement).not.toBe('');
      expect(job.usage?.wallTimeMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(job.startTime)).toBeGreaterThanOrEqual(Date.parse(job.submitTime));
      expect(Date.parse(job.endTime)).toBeGreaterThanOrEqual(Date.parse(job.startTime));
    } finally {
      for (const path of outputs) rmSync(path, { force: true });
    }
  });

  it('records a non-zero exit code as FAILED', async () => {
    if (!canRunAsJobUser()) return;
    const d = await startDaemon();
    const res = await submit(d, { name: 'exits-3', runUser: JOB_USER, cmdLine: 'exit 3', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
    const job = await waitForEnd(d, res.jobId);
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.jobStatus).toBe('failed');
    expect(job.exitCode).toBe(3);
    expect(job.reason).toContain('NonZeroExitCode');
  });

  it('lists the configured queues with their limits, empty counts and the node', async () => {
    const d = await startDaemon();
    const res = await listQueues(d);
    expect(res.queues.map((q) => q.hpcqueueId)).toEqual(['hpcq-normal', 'hpcq-debug']);
    expect(res.queues[1]).toMatchObject({
      clusterId: 'hpcq-test',
      zone: 'test-zone',
      hpcqueueId: 'hpcq-debug',
      schedulerQueueName: 'debug',
      isDefault: false,
      priority: 20,
      maxCores: 2,
      maxMemMb: 1024,
      defaultMemMb: 128,
      maxTimeSeconds: 60,
      defaultTimeSeconds: 30,
      maxRunning: 1,
      maxPending: 3,
      pendingCount: 0,
      runningCount: 0,
    });
    expect(res.queues[0]).toMatchObject({ hpcqueueId: 'hpcq-normal', isDefault: true, priority: 10, defaultMemMb: 256, pendingCount: 0, runningCount: 0 });
    expect(res).toMatchObject({ nodeCores: 4, nodeMemMb: 4096, freeCores: 4, freeMemMb: 4096 });
  });
});
