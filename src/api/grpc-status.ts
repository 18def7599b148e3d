/**
 * The one table from domain errors to gRPC statuses. Known errors (HpcqError) keep their reason,
 * sent as google.rpc.ErrorInfo in grpc-status-details-bin and at the start of the message.
 * Anything else becomes INTERNAL with a generic message; the stack goes to the log only.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { HpcqError, RequestLimitError, type ErrorKind } from '../core/errors.js';
import { Any } from '../gen/google/protobuf/any.js';
import { ErrorInfo, RetryInfo } from '../gen/google/rpc/error_details.js';
import { Status } from '../gen/google/rpc/status.js';
import type { Logger } from '../logger.js';

const CODE_OF_KIND: Record<ErrorKind, status> = {
  invalid: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  precondition: status.FAILED_PRECONDITION,
  exhausted: status.RESOURCE_EXHAUSTED,
  unauthenticated: status.UNAUTHENTICATED,
  permission: status.PERMISSION_DENIED,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

export const ERROR_DOMAIN = 'hpcq';

export function toServiceError(err: unknown, log: Logger, method: string): Partial<ServiceError> {
  if (err instanceof HpcqError) {
    return statusError(CODE_OF_KIND[err.kind], err.code, err.message, err.field, err instanceof RequestLimitError ? err.retryAfterMs : undefined);
  }
  log.error({ err, method }, 'unexpected error in RPC handler');
  return statusError(status.INTERNAL, 'InternalError', 'internal error; see the hpcqd log');
}

/** Longest status message sent; client values inside are quoted at most 128 characters already. */
const MAX_MESSAGE_CHARS = 1024;

function statusError(code: status, reason: string, message: string, field?: string, retryAfterMs?: number): Partial<ServiceError> {
  const details = `${reason}: ${message}`.slice(0, MAX_MESSAGE_CHARS);
  const info = ErrorInfo.encode({ reason, domain: ERROR_DOMAIN, metadata: field ? { field } : {} }).finish();
  const anys = [Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Buffer.from(info) })];
  if (retryAfterMs !== undefined) {
    const retry = RetryInfo.encode({ retryDelay: { seconds: Math.floor(retryAfterMs / 1000), nanos: (retryAfterMs % 1000) * 1_000_000 } }).finish();
    anys.push(Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: Buffer.from(retry) }));
  }
  const body = Status.encode({ code, message: details, details: anys }).finish();
  const metadata = new Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(body));
  return { code, details, metadata };
}

/** Client side: the RetryInfo delay (ms) of a failed call, if the server sent one. */
export function retryDelayMsOf(err: { metadata?: Metadata }): number | undefined {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  if (!raw || typeof raw === 'string') return undefined;
  const any = Status.decode(raw).details.find((d) => d.typeUrl.endsWith('/google.rpc.RetryInfo'));
  if (!any) return undefined;
  const delay = RetryInfo.decode(any.value).retryDelay;
  return delay ? delay.seconds * 1000 + Math.round(delay.nanos / 1_000_000) : undefined;
}

/** Client side: the ErrorInfo of a failed call, if the server sent one. */
export function errorInfoOf(err: { metadata?: Metadata }): ErrorInfo | undefined {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  if (!raw || typeof raw === 'string') return undefined;
  const decoded = Status.decode(raw);
  const any = decoded.details.find((d) => d.typeUrl.endsWith('/google.rpc.ErrorInfo'));
  return any ? ErrorInfo.decode(any.value) : undefined;
}
