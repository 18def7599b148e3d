/**
 * Adapts async functions to grpc-js handlers once, so that a handler cannot answer twice, every
 * call passes the access gate first (the handler receives the principal; it never reads metadata
 * or certificates itself), every error goes through the one status table, and the audit line is
 * written when the call ends. The observer (metrics and the request log line) hears of every call
 * that ends, accepted or refused.
 */
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { AccessGate } from '../access/access-gate.js';
import type { Principal } from '../core/access-policy.js';
import { HpcqError } from '../core/errors.js';
import type { Logger } from '../logger.js';
import { toServiceError } from './grpc-status.js';

/** What every handler needs besides its own logic. */
export interface HandlerContext {
  gate: AccessGate;
  log: Logger;
  observer?: RequestObserver;
}

/** Told of every call: how it ended, and which server streams (watches) are open. Must not throw. */
export interface RequestObserver {
  /** `err` undefined: accepted. `principal` undefined: refused before the caller was known. */
  ended(method: string, principal: Principal | undefined, err: unknown, details: AuditNote): void;
  streamOpened(method: string): void;
  streamClosed(method: string): void;
}

export interface MethodOptions<Req, Res> {
  /** The RPC name in logs and the audit log. */
  method: string;
  /** Mutating calls are audited whatever their result; reads only when refused. */
  mutating?: boolean;
  /** The job and run user an audit line names. */
  auditDetails?: (req: Req, res: Res | undefined) => { jobId?: string; runUser?: string };
}

/** What a handler may add to its audit line (e.g. the account a submit resolved to). */
export interface AuditNote {
  jobId?: string;
  runUser?: string;
}

export function unary<Req, Res>(
  ctx: HandlerContext,
  options: MethodOptions<Req, Res>,
  fn: (req: Req, principal: Principal, audit: AuditNote) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    let principal: Principal | undefined;
    const note: AuditNote = {};
    const details = (res: Res | undefined) => ({ ...options.auditDetails?.(call.request, res), ...note });
    const run = async (): Promise<Res> => {
      const admission = await ctx.gate.admit(call, options.method);
      principal = admission.principal;
      try {
        return await fn(checkDecoded(call.request), admission.principal, note);
      } finally {
        admission.release();
      }
    };
    run().then(
      (res) => {
        const noted = details(res);
        ctx.gate.recordResult(principal!, options.method, options.mutating ?? false, undefined, noted);
        ctx.observer?.ended(options.method, principal, undefined, noted);
        callback(null, res);
      },
      (err: unknown) => {
        const noted = details(undefined);
        if (principal) ctx.gate.recordResult(principal, options.method, options.mutating ?? false, err, noted);
        ctx.observer?.ended(options.method, principal, err, noted);
        callback(toServiceError(err, ctx.log, options.method));
      },
    );
  };
}

/**
 * The abort reason of a server stream whose call ended. Without one, abort() makes a DOMException
 * and captures its stack: about 25 us on every watch's close, for a reason no one reads.
 */
const STREAM_ENDED = 'the call ended';

export function serverStream<Req, Res>(
  ctx: HandlerContext,
  options: MethodOptions<Req, Res>,
  fn: (req: Req, principal: Principal, call: ServerWritableStream<Req, Res>, signal: AbortSignal) => Promise<void>,
): (call: ServerWritableStream<Req, Res>) => void {
  return (call) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort(STREAM_ENDED));
    call.on('close', () => abort.abort(STREAM_ENDED));
    let principal: Principal | undefined;
    const run = async (): Promise<void> => {
      const admission = await ctx.gate.admit(call, options.method);
      principal = admission.principal;
      ctx.observer?.streamOpened(options.method);
      try {
        await fn(checkDecoded(call.request), admission.principal, call, abort.signal);
      } finally {
        ctx.observer?.streamClosed(options.method);
        admission.release();
      }
    };
    const details = () => options.auditDetails?.(call.request, undefined) ?? {};
    run().then(
      () => {
        ctx.observer?.ended(options.method, principal, undefined, details());
        call.end();
      },
      (err: unknown) => {
        if (principal) ctx.gate.recordResult(principal, options.method, options.mutating ?? false, err, details());
        ctx.observer?.ended(options.method, principal, err, details());
        if (!abort.signal.aborted) call.emit('error', toServiceError(err, ctx.log, options.method));
      },
    );
  };
}

/** Marks a request grpc-js could not decode, so the handler answers INVALID_ARGUMENT instead of INTERNAL. */
const MALFORMED = Symbol('malformed request');

/**
 * Wraps a method's request decoder: a message that is not valid protobuf becomes a marker instead
 * of an exception (which grpc-js would answer with INTERNAL before any handler ran).
 */
export function tolerantDecoder<T>(decode: (bytes: Buffer) => T): (bytes: Buffer) => T {
  return (bytes) => {
    try {
      return decode(bytes);
    } catch (err) {
      return { [MALFORMED]: (err as Error).message } as T;
    }
  };
}

function checkDecoded<Req>(request: Req): Req {
  if (request !== null && typeof request === 'object' && MALFORMED in request) {
    throw new HpcqError('InvalidParameter.MalformedRequest', 'invalid', 'the request is not a valid protobuf message of this method');
  }
  return request;
}
