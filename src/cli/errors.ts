/**
 * How the CLI reports failures: one `Failure` shape for server errors (with the ErrorInfo reason
 * hpcqd sends), connection problems and usage mistakes, printed as
 *   hpcq: <reason>: <message>
 * or, with --json, as one JSON object {code, status, reason, field, message} on stderr.
 * Exit status 2 for client mistakes (bad argument, unknown job, wrong state), 1 otherwise.
 */
import { status, type Metadata } from '@grpc/grpc-js';
import { errorInfoOf } from '../api/grpc-status.js';

/** A mistake in the command line found before anything was sent: exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    readonly field = '',
  ) {
    super(message);
  }
}

export interface Failure {
  /** gRPC status code (numeric, as in google.rpc.Status). */
  code: number;
  /** Its name, e.g. INVALID_ARGUMENT. */
  status: string;
  /** Stable reason, e.g. InvalidParameter.JobNameTooLong (from ErrorInfo when the server sent one). */
  reason: string;
  /** Request field at fault (snake_case), or ''. */
  field: string;
  message: string;
  /** Process exit status this failure maps to. */
  exitCode: number;
}

/** Status codes that mean "the request was wrong", not "something is broken". */
const CLIENT_ERROR_CODES: ReadonlySet<number> = new Set([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.OUT_OF_RANGE,
  status.PERMISSION_DENIED,
]);

export function exitCodeForStatus(code: number): number {
  return CLIENT_ERROR_CODES.has(code) ? 2 : 1;
}

export function statusName(code: number): string {
  return (status as unknown as Record<number, string | undefined>)[code] ?? `CODE_${code}`;
}

/** INVALID_ARGUMENT -> InvalidArgument: a reason for errors that came without an ErrorInfo. */
function pascal(name: string): string {
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('');
}

/**
 * The useful part of grpc-js's connection failure text:
 * "No connection established. Last error: Error: connect ENOENT /x.sock. Resolution note: "
 * -> "connect ENOENT /x.sock".
 */
export function connectProblem(details: string): string {
  const m = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s.exec(details);
  const text = (m?.[1] ?? details).trim();
  return text || 'unavailable';
}

interface GrpcErrorLike {
  code: number;
  details?: string;
  message?: string;
  metadata?: Metadata;
}

function isGrpcError(err: unknown): err is GrpcErrorLike {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'number' && 'metadata' in err;
}

export interface ErrorContext {
  /** The address that was tried. */
  address: string;
  /** The deadline in ms, if any, for the message of DEADLINE_EXCEEDED. */
  timeoutMs?: number | undefined;
}

/** Turns anything thrown by a command into a Failure. */
export function describeError(err: unknown, ctx: ErrorContext): Failure {
  if (err instanceof UsageError) {
    return { code: status.INVALID_ARGUMENT, status: 'INVALID_ARGUMENT', reason: 'InvalidUsage', field: err.field, message: err.message, exitCode: 2 };
  }
  if (isGrpcError(err)) {
    const info = (() => {
      try {
        return errorInfoOf(err);
      } catch {
        return undefined; // undecodable details: fall back to the plain status
      }
    })();
    const details = err.details ?? err.message ?? '';
    if (info) {
      const prefix = `${info.reason}: `;
      return {
        code: err.code,
        status: statusName(err.code),
        reason: info.reason,
        field: info.metadata.field ?? '',
        message: details.startsWith(prefix) ? details.slice(prefix.length) : details,
        exitCode: exitCodeForStatus(err.code),
      };
    }
    if (err.code === status.UNAVAILABLE) {
      return {
        code: err.code,
        status: 'UNAVAILABLE',
        reason: 'DaemonUnreachable',
        field: '',
        message:
          `cannot reach hpcqd at ${ctx.address}: ${connectProblem(details)}. ` +
          'Is hpcqd running? Give its address with --addr or HPCQ_ADDR (unix:/abs/path.sock or host:port).',
        exitCode: 1,
      };
    }
    if (err.code === status.DEADLINE_EXCEEDED) {
      const within = ctx.timeoutMs !== undefined ? ` within ${ctx.timeoutMs / 1000} s` : '';
      return {
        code: err.code,
        status: 'DEADLINE_EXCEEDED',
        reason: 'DeadlineExceeded',
        field: '',
        message: `no complete answer from hpcqd at ${ctx.address}${within} (raise it with --timeout)`,
        exitCode: 1,
      };
    }
    return {
      code: err.code,
      status: statusName(err.code),
      reason: pascal(statusName(err.code)),
      field: '',
      message: details,
      exitCode: exitCodeForStatus(err.code),
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.UNKNOWN, status: 'UNKNOWN', reason: 'ClientError', field: '', message, exitCode: 1 };
}

/** The JSON form of a failure: {code, status, reason, field, message}. */
export function failureJson(f: Failure): { code: number; status: string; reason: string; field: string; message: string } {
  return { code: f.code, status: f.status, reason: f.reason, field: f.field, message: f.message };
}

/** The text printed on stderr for a failure (with a trailing newline). */
export function renderFailure(f: Failure, json: boolean, prefix = ''): string {
  if (json) return `${JSON.stringify(failureJson(f))}\n`;
  return `hpcq: ${prefix}${f.reason}: ${f.message}\n`;
}
