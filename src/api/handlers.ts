/**
 * Adapts async functions to grpc-js handlers once, so that a handler cannot answer twice and every
 * error goes through the one status table.
 */
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { Logger } from '../logger.js';
import { toServiceError } from './grpc-status.js';

export function unary<Req, Res>(
  log: Logger,
  method: string,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err, log, method)),
    );
  };
}

export function serverStream<Req, Res>(
  log: Logger,
  method: string,
  fn: (req: Req, call: ServerWritableStream<Req, Res>, signal: AbortSignal) => Promise<void>,
): (call: ServerWritableStream<Req, Res>) => void {
  return (call) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    call.on('close', () => abort.abort());
    fn(call.request, call, abort.signal).then(
      () => call.end(),
      (err: unknown) => {
        if (!abort.signal.aborted) call.emit('error', toServiceError(err, log, method));
      },
    );
  };
}
