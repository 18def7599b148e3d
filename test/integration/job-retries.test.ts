/**
 * Retries (Tencent Batch / BatchCompute MaxRetryCount) with a real daemon and real jobs: a job
 * failing twice then succeeding, exhausted retries, OOM not retried by default, a backoff shown as
 * the pending reason, cancel during a backoff, and kill -9 between an attempt's end and its retry.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobState, type Job, type RetryPolicy } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { cancelJob, getJob, rejection, startDaemon, submit, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';

const daemons = cleanUpJobTests();
const ready = canRunJobs;
const retry = (p: Partial<RetryPolicy>): RetryPolicy => ({ maxRetryCount: 0, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0, ...p });

/** A job of JOB_USER that appends `$HPCQ_ATTEMPT` to `<dir>/attempts`, then runs `cmd`. */
function job(dir: string, name: string, cmd: string, more: Partial<SubmitJobRequest> = {}): Partial<SubmitJobRequest> {
  return { name, runUser: JOB_USER, cmdLine: `echo "$HPCQ_ATTEMPT" >> ${dir}/attempts; ${cmd}`, stdoutRedirectPath: `${dir}/%j.out`, stderrRedirectPath: `${dir}/%j.err`, ...more };
}

describe('retries', () => {
  it('a job failing twice then succeeding ends COMPLETED at attempt 3 with every attempt in its history', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('retry-third');
    // Fails with 3 on its first two attempts, succeeds on the third.
    const res = await submit(d, job(dir, 'flaky', '[ "$HPCQ_ATTEMPT" -ge 3 ] || exit 3', { retry: retry({ maxRetryCount: 3 }) }));
    const ended = await waitForEnd(d, res.jobId);
    expect(ended).toMatchObject({ jobStatus: 'completed', attempt: 3, exitCode: 0 });
    expect(ended.previousAttempts.map((a) => [a.attempt, a.state, a.exitCode])).toEqual([
      [1, JobState.JOB_STATE_FAILED, 3],
      [2, JobState.JOB_STATE_FAILED, 3],
    ]);
    for (const a of ended.previousAttempts) {
      expect(a.reason).toBe('NonZeroExitCode: main process exited with 3');
      expect(Date.parse(a.endTime)).toBeGreaterThanOrEqual(Date.parse(a.startTime));
    }
    expect(Date.parse(ended.startTime)).toBeGreaterThanOrEqual(Date.parse(ended.previousAttempts[1]!.endTime));
    expect(linesOf(join(dir, 'attempts'))).toEqual(['1', '2', '3']);
    const history: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = d.jobs.watchJob({ jobId: res.jobId, includeHistory: true });
      stream.on('data', (m: { event?: { jobStatus: string; reason: string } }) => m.event && history.push(`${m.event.jobStatus}${m.event.reason.startsWith('Retry') ? ' (retry)' : ''}`));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    expect(history).toEqual(['pending', 'running', 'pending (retry)', 'running', 'pending (retry)', 'running', 'completed']);
  });

  it('retries run out: FAILED at attempt 1 + max_retry_count; an exit code not listed is final at once', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('retry-exhausted');
    const always = await submit(d, job(dir, 'always', 'exit 2', { retry: retry({ maxRetryCount: 2 }) }));
    expect(await waitForEnd(d, always.jobId)).toMatchObject({ jobStatus: 'failed', attempt: 3, exitCode: 2 });
    const unlisted = await submit(d, job(dir, 'unlisted', 'exit 2', { retry: retry({ maxRetryCount: 2, exitCodes: [75] }) }));
    expect(await waitForEnd(d, unlisted.jobId)).toMatchObject({ jobStatus: 'failed', attempt: 1 });
    const tooMany = await rejection(submit(d, job(dir, 'tooMany', 'true', { retry: retry({ maxRetryCount: 11 }) })));
    expect(tooMany).toMatchObject({ reason: 'InvalidParameterValue.MaxRetryCount', field: 'retry.max_retry_count' });
  });

  it('an OOM is not retried by default', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('retry-oom');
    // Allocates far beyond its 64 MiB (python3 is not needed: a shell variable doubling).
    const hog = 'x=1234567890; while :; do x="$x$x"; done';
    const res = await submit(d, job(dir, 'hog', hog, { memLimit: 64, retry: retry({ maxRetryCount: 2 }) }));
    const ended = await waitForEnd(d, res.jobId, 60_000);
    expect(ended.jobStatus).toBe('out_of_memory');
    expect(ended.attempt).toBe(1);
  });

  it('a backoff keeps the job PENDING with reason RetryBackoff; cancelling it then ends it for good', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('retry-backoff');
    const res = await submit(d, job(dir, 'backoff', 'exit 1', { retry: retry({ maxRetryCount: 5, backoffSeconds: 30 }) }));
    const waiting = await waitForJob(d, res.jobId, (j: Job) => j.attempt === 2);
    expect(waiting.jobStatus).toBe('pending');
    expect(waiting.reason).toMatch(/^RetryBackoff: attempt 1 ended FAILED \(exit 1\); attempt 2 of 6 from /);
    await new Promise((r) => setTimeout(r, 500));
    expect((await getJob(d, res.jobId)).jobStatus).toBe('pending');
    await cancelJob(d, res.jobId);
    expect(await waitForEnd(d, res.jobId)).toMatchObject({ jobStatus: 'cancelled', attempt: 2 });
    expect(linesOf(join(dir, 'attempts'))).toEqual(['1']);
  });

  it('kill -9 between an attempt\'s end and its retry: the next attempt runs exactly once', async () => {
    if (!ready()) return;
    let d = await startDaemon();
    daemons.push(d);
    const dir = makeJobUserDir('retry-crash');
    const res = await submit(d, job(dir, 'crashy', `[ "$HPCQ_ATTEMPT" -ge 2 ] && exit 0; while [ ! -e ${dir}/go ]; do sleep 0.05; done; exit 1`, { retry: retry({ maxRetryCount: 2 }) }));
    await waitForJob(d, res.jobId, (j: Job) => j.jobStatus === 'running');
    await d.kill9();
    // The first attempt fails while no daemon runs.
    execFileSync('runuser', ['-u', JOB_USER, '--', 'touch', `${dir}/go`]);
    await new Promise((r) => setTimeout(r, 500));
    d = await startDaemon({ stateDir: d.stateDir });
    daemons.push(d);
    expect(await waitForEnd(d, res.jobId)).toMatchObject({ jobStatus: 'completed', attempt: 2 });
    expect(linesOf(join(dir, 'attempts'))).toEqual(['1', '2']);
  });
});
