/**
 * Retries (Tencent Batch and BatchCompute MaxRetryCount): whether an attempt that ended is followed
 * by another, and how the next one waits. Pure. The rules, per attempt:
 *
 * - COMPLETED ends the job; CANCELLED is never retried (someone asked for it to stop);
 * - FAILED is retried while attempts are left, when it exited non-zero with one of `exitCodes`
 *   (any code when empty) or was killed by a signal, or its launch failed;
 * - NODE_FAIL is retried while attempts are left (the node, not the job, failed);
 * - TIMEOUT and OUT_OF_MEMORY only with retryOnTimeout / retryOnOutOfMemory: with the same limits
 *   a second try usually ends the same way, so by default they are final, like Slurm's.
 */
import type { Job, JobOutcome } from './job.js';

export interface RetryPolicy {
  /** Further attempts after the first, 0..MAX_RETRY_COUNT. */
  maxRetryCount: number;
  retryOnTimeout: boolean;
  retryOnOutOfMemory: boolean;
  /** Exit codes a FAILED attempt is retried for; empty = any. */
  exitCodes: readonly number[];
  /** Wait before each further attempt, seconds. */
  backoffSeconds: number;
}

export const MAX_RETRY_COUNT = 10;
export const MAX_RETRY_BACKOFF_SECONDS = 3600;

/** Whether the attempt `attempt` (from 1) that ended with `outcome` is followed by another. */
export function shouldRetry(policy: RetryPolicy | undefined, attempt: number, outcome: Pick<JobOutcome, 'state' | 'exitCode' | 'termSignal'>): boolean {
  if (!policy || attempt > policy.maxRetryCount) return false;
  switch (outcome.state) {
    case 'FAILED':
      // A signal or a failed launch has no exit code to match: always eligible.
      return outcome.exitCode === 0 || policy.exitCodes.length === 0 || policy.exitCodes.includes(outcome.exitCode);
    case 'NODE_FAIL':
      return true;
    case 'TIMEOUT':
      return policy.retryOnTimeout;
    case 'OUT_OF_MEMORY':
      return policy.retryOnOutOfMemory;
    default:
      return false;
  }
}

/**
 * The job going back to PENDING for its next attempt: the attempt that ended is kept in
 * previousAttempts (its start, end, state and exit code), the run fields start afresh, and a
 * backoff makes it eligible only later (shown in the reason).
 */
export function nextAttempt(job: Job, outcome: JobOutcome): { job: Job; to: 'PENDING'; reason: string; timeMs: number } {
  const policy = job.retry!;
  const ended = outcome.exitCode !== 0 ? ` (exit ${outcome.exitCode})` : outcome.termSignal !== 0 ? ` (signal ${outcome.termSignal})` : '';
  const { usage: _previousUsage, ...rest } = job;
  const eligibleAtMs = policy.backoffSeconds > 0 ? outcome.endTimeMs + policy.backoffSeconds * 1000 : 0;
  const next: Job = {
    ...rest,
    exitCode: 0,
    termSignal: 0,
    limitHit: '',
    startTimeMs: 0,
    endTimeMs: 0,
    attempt: job.attempt + 1,
    previousAttempts: [
      ...job.previousAttempts,
      { attempt: job.attempt, state: outcome.state, reason: outcome.reason, exitCode: outcome.exitCode, termSignal: outcome.termSignal, startTimeMs: job.startTimeMs, endTimeMs: outcome.endTimeMs },
    ],
    eligibleAtMs,
    // A new attempt is a new job for a cluster's scheduler.
    backendJobId: '',
    backendSubmitting: false,
  };
  const what = `attempt ${job.attempt} ended ${outcome.state}${ended}; attempt ${job.attempt + 1} of ${policy.maxRetryCount + 1}`;
  const reason = eligibleAtMs > 0 ? `RetryBackoff: ${what} from ${new Date(eligibleAtMs).toISOString()}` : `Retry: ${what}`;
  return { job: next, to: 'PENDING', reason, timeMs: outcome.endTimeMs };
}

