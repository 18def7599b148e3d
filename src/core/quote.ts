/**
 * Quoting of client-supplied strings for error messages and the audit log: bounded in length, so a
 * huge field is never echoed whole into a gRPC status, and escaped, so it cannot steer the terminal
 * that finally shows it.
 */

// JSON.stringify escapes C0 controls but leaves these: C1 controls (U+009B is a CSI to many
// terminals), the line and paragraph separators, and the bidi marks and overrides that make text
// display in another order than it reads.
const UNSAFE_AFTER_JSON = /[\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** JSON.stringify, with every character that could mislead a terminal escaped too. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE_AFTER_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The first `max` UTF-16 code units of `value`, one fewer if the cut would split a surrogate pair. */
export function truncateUtf16(value: string, max: number): string {
  if (value.length <= max) return value;
  const last = value.charCodeAt(max - 1);
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}

/** `value` JSON-quoted, cut to `max` characters with `…(N more)` inside the quotes if longer. */
export function quoteValue(value: string, max = 128): string {
  const head = truncateUtf16(value, max);
  return safeJson(head.length === value.length ? value : `${head}…(${value.length - head.length} more)`);
}
