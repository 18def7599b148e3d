import { describe, expect, it } from 'vitest';
import { shouldRetry, type RetryPolicy } from '../../src/core/retry.js';

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
