/**
 * Typed errors with stable reason codes. The `code` is what clients see (google.rpc.ErrorInfo.reason
 * and the start of the status message); it never changes once released. The `kind` decides the
 * gRPC status code (one table in api/grpc-status.ts).
 */
import { quoteValue } from './quote.js';

/** Broad class of failure; api/grpc-status.ts maps each to one gRPC status code. */
export type ErrorKind =
  | 'invalid' // INVALID_ARGUMENT: the request itself is wrong.
  | 'not_found' // NOT_FOUND: a named job, queue or cluster does not exist.
  | 'already_exists' // ALREADY_EXISTS: client_token reused with another request.
  | 'precondition' // FAILED_PRECONDITION: valid request, wrong state (cancel a finished job).
  | 'exhausted' // RESOURCE_EXHAUSTED: quota reached, disk full.
  | 'unauthenticated' // UNAUTHENTICATED: no identity could be established (bad or expired token).
  | 'permission' // PERMISSION_DENIED: not allowed to act for that user.
  | 'unavailable' // UNAVAILABLE: the daemon cannot take writes now (store failed, shutting down).
  | 'internal'; // INTERNAL: a bug or corrupt data.

export class HpcqError extends Error {
  override readonly name: string = 'HpcqError';
  constructor(
    /** Stable reason, e.g. `InvalidParameter.JobNameTooLong`. */
    readonly code: string,
    readonly kind: ErrorKind,
    message: string,
    /** The request field at fault, if one is (snake_case as in the proto). */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Thrown by request validation; always names the field. */
export function invalidParameter(code: string, field: string, message: string): HpcqError {
  return new HpcqError(code, 'invalid', message, field);
}

/** Thrown when a job id / uuid does not match any stored job. */
export function jobNotFound(idOrUuid: string): HpcqError {
  return new HpcqError('ResourceNotFound.Job', 'not_found', `job ${quoteValue(idOrUuid)} does not exist`, 'job_id');
}

/** Thrown when a request names a cluster that is not configured. */
export function clusterNotFound(clusterId: string): HpcqError {
  return new HpcqError('ResourceNotFound.Cluster', 'not_found', `cluster ${quoteValue(clusterId)} does not exist`, 'cluster_id');
}

/** Thrown when a request names a queue that is not configured (in `clusterId`, when given). */
export function queueNotFound(queue: string, field: string, clusterId?: string): HpcqError {
  const where = clusterId === undefined ? '' : ` in cluster ${clusterId}`;
  return new HpcqError('ResourceNotFound.Queue', 'not_found', `queue ${quoteValue(queue)} does not exist${where}`, field);
}

/** Thrown by the store when a write cannot be made durable (disk full, I/O error, closed). */
export class StoreUnavailableError extends HpcqError {
  override readonly name = 'StoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown; diskFull?: boolean }) {
    super(
      options?.diskFull ? 'ResourceInsufficient.DiskFull' : 'ResourceUnavailable.Store',
      options?.diskFull ? 'exhausted' : 'unavailable',
      message,
      undefined,
      options,
    );
  }
}

/** Thrown when a caller exceeds its request rate; `retryAfterMs` goes to the client as google.rpc.RetryInfo. */
export class RequestLimitError extends HpcqError {
  override readonly name = 'RequestLimitError';
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super('RequestLimitExceeded', 'exhausted', message);
  }
}
