/**
 * A SubmitJobRequest as a client sends it: every field at its proto default (ts-proto's
 * fromPartial), then `fields`. Tests name only what they mean, and a new request field needs no
 * fixture change.
 */
import { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';

export function submitRequest(fields: Partial<SubmitJobRequest> = {}): SubmitJobRequest {
  return { ...SubmitJobRequest.fromPartial({}), ...fields };
}
