import { describe, expect, it } from 'vitest';
import { newPendingJob } from '../../src/core/job.js';
import { nextAttempt, shouldRetry, type RetryPolicy } from '../../src/core/retry.js';
import { testJobSpec } from '../support/job-spec.js';

const POLICY: RetryPolicy = { maxRetryCount: 2, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0 };
const ended = (state: 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMEOUT' | 'OUT_OF_MEMORY' | 'NODE_FAIL', exitCode = 0, termSignal = 0) => ({ state, exitCode, termSignal });

describe('shouldRetry', () => {
  it.each<[string, RetryPolicy | undefined, number, ReturnType<typeof ended>, boolean]>([
    ['no policy: never', undefined, 1, ended('FAILED', 1), false],
    ['FAILED with attempts left', POLICY, 1, ended('FAILED', 1), true],
    ['FAILED on the last allowed attempt (1 + 2 retries)', POLICY, 3, ended('FAILED', 1), false],
    ['FAILED on the second attempt', POLICY, 2, ended('FAILED', 1), true],
    ['COMPLETED: never', POLICY, 1, ended('COMPLETED'), false],
    ['CANCELLED: never', POLICY, 1, ended('CANCELLED', 0, 15), false],
    ['NODE_FAIL: the node failed, not the job', POLICY, 1, ended('NODE_FAIL'), true],
    ['TIMEOUT: not by default', POLICY, 1, ended('TIMEOUT', 0, 9), false],
    ['TIMEOUT with retryOnTimeout', { ...POLICY, retryOnTimeout: true }, 1, ended('TIMEOUT', 0, 9), true],
    ['OUT_OF_MEMORY: not by default', POLICY, 1, ended('OUT_OF_MEMORY', 0, 9), false],
    ['OUT_OF_MEMORY with retryOnOutOfMemory', { ...POLICY, retryOnOutOfMemory: true }, 1, ended('OUT_OF_MEMORY', 0, 9), true],
    ['FAILED with a listed exit code', { ...POLICY, exitCodes: [75, 3] }, 1, ended('FAILED', 3), true],
    ['FAILED with an unlisted exit code', { ...POLICY, exitCodes: [75] }, 1, ended('FAILED', 3), false],
    ['FAILED by a signal: no exit code to match, retried', { ...POLICY, exitCodes: [75] }, 1, ended('FAILED', 0, 11), true],
  ])('%s', (_title, policy, attempt, outcome, expected) => {
    expect(shouldRetry(policy, attempt, outcome)).toBe(expected);
  });
});

describe('nextAttempt', () => {
  const policy: RetryPolicy = { ...POLICY, backoffSeconds: 10 };
  const running = { ...newPendingJob(testJobSpec({ retry: policy }), { id: 5, uuid: 'hpcjob-00000005', reason: '', submitTimeMs: 1_000 }), state: 'RUNNING' as const, startTimeMs: 2_000, exitCode: 0, usage: { userCpuUsec: 1, systemCpuUsec: 1, peakMemoryBytes: 1, wallTimeMs: 1 } };

  it('keeps the ended attempt, starts the run fields afresh and waits out the backoff', () => {
    const next = nextAttempt(running, { state: 'FAILED', reason: 'NonZeroExitCode: main process exited with 3', exitCode: 3, termSignal: 0, limitHit: '', endTimeMs: 5_000 });
    expect(next.to).toBe('PENDING');
    expect(next.timeMs).toBe(5_000);
    expect(next.reason).toBe(`RetryBackoff: attempt 1 ended FAILED (exit 3); attempt 2 of 3 from ${new Date(15_000).toISOString()}`);
    expect(next.job).toMatchObject({ attempt: 2, startTimeMs: 0, endTimeMs: 0, exitCode: 0, eligibleAtMs: 15_000 });
    expect(next.job).not.toHaveProperty('usage');
    expect(next.job.previousAttempts).toEqual([{ attempt: 1, state: 'FAILED', reason: 'NonZeroExitCode: main process exited with 3', exitCode: 3, termSignal: 0, startTimeMs: 2_000, endTimeMs: 5_000 }]);
  });

  it('without a backoff it is eligible at once, and the reason says Retry', () => {
    const job = { ...running, retry: POLICY };
    const next = nextAttempt(job, { state: 'NODE_FAIL', reason: 'NodeFail: lost', exitCode: 0, termSignal: 0, limitHit: '', endTimeMs: 5_000 });
    expect(next.reason).toBe('Retry: attempt 1 ended NODE_FAIL; attempt 2 of 3');
    expect(next.job.eligibleAtMs).toBe(0);
  });
});
