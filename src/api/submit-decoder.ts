/**
 * Decodes SubmitJobRequest without letting an int64 beyond 2^53 become an INTERNAL error.
 * ts-proto's decoder (forceLong=number) throws on such values, and grpc-js would answer INTERNAL
 * before any handler runs. Here the out-of-range fields are decoded separately and carried as
 * +/-Infinity, so validation answers INVALID_ARGUMENT naming the field.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';

/** Field numbers of the int64 fields of SubmitJobRequest (proto/hpcq/v1/job_service.proto). */
const INT64_FIELDS = { 9: 'memLimit', 10: 'timeLimit' } as const;

export function decodeSubmitJobRequest(bytes: Uint8Array): SubmitJobRequest {
  try {
    return SubmitJobRequest.decode(bytes);
  } catch (err) {
    if (!(err instanceof Error) || !/SAFE_INTEGER/.test(err.message)) throw err;
  }
  // Split the message into the int64 fields we read ourselves and the rest, decoded as usual.
  const reader = new BinaryReader(bytes);
  const rest: Uint8Array[] = [];
  const wide: Partial<Record<'memLimit' | 'timeLimit', number>> = {};
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [fieldNo, wireType] = reader.tag();
    const name = (INT64_FIELDS as Record<number, 'memLimit' | 'timeLimit'>)[fieldNo];
    if (name && wireType === WireType.Varint) {
      const value = Number(reader.int64());
      wide[name] = Number.isSafeInteger(value) ? value : value > 0 ? Infinity : -Infinity;
    } else {
      reader.skip(wireType, fieldNo);
      rest.push(bytes.subarray(start, reader.pos));
    }
  }
  const merged = new Uint8Array(rest.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of rest) {
    merged.set(part, offset);
    offset += part.length;
  }
  return { ...SubmitJobRequest.decode(merged), ...wide };
}
