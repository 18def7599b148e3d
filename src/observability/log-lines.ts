/**
 * The fields of the daemon's request and job lines (pure, so their shape is tested on its own).
 * pino adds `level`, `time` (ISO 8601), `service` and `msg`:
 *
 *   {"level":30,"time":"…","service":"hpcqd","principal":"uid:0","user":"root","peer":"uid:0/pid:7",
 *    "method":"SubmitJob","jobId":"12","runUser":"alice","result":"ok","msg":"request accepted"}
 *   {"level":30,"time":"…","service":"hpcqd","jobId":12,"queue":"hpcq-normal","runUser":"alice",
 *    "from":"RUNNING","state":"FAILED","reason":"NonZeroExitCode: …","exitCode":3,"msg":"job state changed"}
 */
import type { Principal } from '../core/access-policy.js';
import { HpcqError } from '../core/errors.js';
import { isTerminal, type Job, type JobEvent, type JobState } from '../core/job.js';

/** How a call ended: accepted, refused with a reason code (any HpcqError), or failed unexpectedly. */
export type RequestResult = { result: 'ok' } | { result: 'refused'; reason: string } | { result: 'error'; reason: 'InternalError' };

const OK: RequestResult = Object.freeze({ result: 'ok' });

export function requestResult(err: unknown): RequestResult {
  if (err === undefined) return OK;
  if (err instanceof HpcqError) return { result: 'refused', reason: err.code };
  return { result: 'error', reason: 'InternalError' };
}

export const REQUEST_MESSAGES = { ok: 'request accepted', refused: 'request refused', error: 'request failed' } as const;

/** One request's line: who (unknown when the call was refused before it was authenticated), what, which job, and the outcome. */
export function requestLogFields(
  method: string,
  principal: Principal | undefined,
  outcome: RequestResult,
  details: { jobId?: string | undefined; runUser?: string | undefined },
): Record<string, unknown> {
  return {
    principal: principal?.name,
    user: principal?.account?.name,
    peer: principal?.peer,
    method,
    jobId: details.jobId || undefined,
    runUser: details.runUser || undefined,
    ...outcome,
  };
}

/** One state change's line: the job's queue and run user, and how it ended (exit code, signal, limit hit). */
export function transitionLogFields(job: Job, previousState: JobState, event: JobEvent): Record<string, unknown> {
  const ended = isTerminal(job.state);
  return {
    jobId: job.id,
    queue: job.hpcqueueId,
    runUser: job.runUser,
    from: previousState,
    state: job.state,
    reason: event.reason || undefined,
    ...(ended && { exitCode: job.exitCode, termSignal: job.termSignal || undefined, limitHit: job.limitHit || undefined }),
    ...(job.attempt > 1 && { attempt: job.attempt }),
  };
}

/** A job the daemon could not start (the engine ends it FAILED, LaunchFailed: <why>). */
export function isLaunchFailure(job: Job, event: JobEvent): boolean {
  return job.state === 'FAILED' && event.reason.startsWith('LaunchFailed');
}
