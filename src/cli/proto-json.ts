/**
 * JSON output of API messages for scripts (`--json`, and the EHPC response of `submit`).
 *
 * The shape is the message's proto3 JSON with three deliberate choices:
 *  - field names are the proto names in snake_case (`hpcjob_uuid`, `exit_code`), as in the
 *    .proto files and the EHPC API, not the camelCase of the generated `toJSON`;
 *  - every scalar field is present, defaults included (`"ret_code": 0`, `"exit_code": 0`), so
 *    scripts never have to treat a missing key as zero; an unset message field is left out;
 *  - enums are their names (`"JOB_STATE_COMPLETED"`), 64-bit integers are JSON numbers.
 * Values come from the generated `toJSON` (enum names, rounding); the decoded message supplies
 * the defaults that proto3 JSON leaves out.
 */

export interface ToJson<T> {
  toJSON(message: T): unknown;
}

/** camelCase -> snake_case, the inverse of protobuf's JSON name mapping. */
export function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Merges the canonical JSON (`json`) over the decoded message (`raw`), renaming keys to snake_case. */
export function mergeProtoJson(raw: unknown, json: unknown): unknown {
  if (Array.isArray(raw)) {
    const list = Array.isArray(json) ? json : [];
    return raw.map((item, i) => mergeProtoJson(item, list[i]));
  }
  if (isPlainObject(raw)) {
    const canonical = isPlainObject(json) ? json : {};
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
      if (value === undefined) continue;
      out[snakeCase(key)] = mergeProtoJson(value, canonical[key]);
    }
    return out;
  }
  if (raw instanceof Uint8Array) return json ?? Buffer.from(raw).toString('base64');
  return json === undefined ? raw : json;
}

/** The message as a plain JSON value (see the file comment for the shape). */
export function protoJson<T>(fns: ToJson<T>, message: T): unknown {
  return mergeProtoJson(message, fns.toJSON(message));
}

/** Pretty-printed (2 spaces) with a trailing newline. */
export function stringifyJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
