/**
 * Pure formatting and parsing helpers of the hpcq CLI: durations, sizes, times and tables.
 * Nothing here does I/O, so every function is unit-tested directly.
 */

import { UNIT_SECONDS } from '../core/units.js';

// The duration and size parsers live in core: the daemon's configuration reads the same units.
export { parseDuration, parseMemMiB } from '../core/units.js';

/** Parses a signed decimal integer strictly (no `1e3`, no `12abc`). */
export function parseInteger(text: string, what = 'value'): number {
  const t = text.trim();
  if (!/^[+-]?\d+$/.test(t)) throw new Error(`invalid ${what} ${JSON.stringify(text)}: expected an integer`);
  const n = Number(t);
  if (!Number.isSafeInteger(n)) throw new Error(`invalid ${what} ${JSON.stringify(text)}: too large`);
  return n;
}

/**
 * Elapsed time the way squeue prints TIME: `M:SS`, `H:MM:SS`, `D-HH:MM:SS`.
 * Negative or non-finite input prints as `0:00`.
 */
export function formatElapsed(seconds: number): string {
  const total = Number.isFinite(seconds) && seconds > 0 ? Math.floor(seconds) : 0;
  const d = Math.floor(total / 86_400);
  const h = Math.floor((total % 86_400) / 3_600);
  const m = Math.floor((total % 3_600) / 60);
  const s = total % 60;
  const mmss = `${String(m).padStart(h > 0 || d > 0 ? 2 : 1, '0')}:${String(s).padStart(2, '0')}`;
  if (d > 0) return `${d}-${String(h).padStart(2, '0')}:${mmss}`;
  if (h > 0) return `${h}:${mmss}`;
  return mmss;
}

/** A compact duration with units: `1h30m`, `45s`, `2d`, `0s`. */
export function formatDurationShort(seconds: number): string {
  let rest = Number.isFinite(seconds) && seconds > 0 ? Math.floor(seconds) : 0;
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest %= size;
  }
  return out;
}

/** CPU time from microseconds: `0.012s`, `12.35s` below a minute, else like formatElapsed. */
export function formatCpuTime(usec: number): string {
  const seconds = Math.max(0, usec) / 1e6;
  if (seconds < 10) return `${seconds.toFixed(3)}s`;
  if (seconds < 60) return `${seconds.toFixed(2)}s`;
  return formatElapsed(seconds);
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * Bytes, human-readable with binary units: `512 B`, `1.5 KiB`, `12.3 MiB`, `4 GiB`.
 * With `compact`, the Slurm-like short form without the space and `iB`: `512B`, `1.5K`, `12.3M`, `4G`.
 */
export function formatBytes(bytes: number, compact = false): string {
  let value = Math.max(0, Number.isFinite(bytes) ? bytes : 0);
  let i = 0;
  while (value >= 1024 && i < BYTE_UNITS.length - 1) {
    value /= 1024;
    i++;
  }
  const num = i === 0 ? String(Math.round(value)) : trimZeros(value >= 100 ? value.toFixed(0) : value.toFixed(1));
  const unit = BYTE_UNITS[i]!;
  return compact ? `${num}${unit.charAt(0)}` : `${num} ${unit}`;
}

/** MiB (limits in the API are MiB): `256M`, `1G`, `1.5G`; with `long`: `256 MiB`, `1 GiB`. */
export function formatMiB(mib: number, long = false): string {
  if (!Number.isFinite(mib) || mib <= 0) return long ? '0 MiB' : '0';
  return formatBytes(mib * 1024 * 1024, !long);
}

function trimZeros(text: string): string {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

/**
 * An RFC 3339 time as the local wall-clock time Slurm prints: `2026-01-02T03:04:05`.
 * Empty input gives `''`; unparsable input is returned unchanged.
 */
export function formatTime(rfc3339: string): string {
  if (!rfc3339) return '';
  const ms = Date.parse(rfc3339);
  if (Number.isNaN(ms)) return rfc3339;
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Now (or `ms`) as RFC 3339 in UTC without fractional seconds, e.g. `2026-01-02T03:04:05Z`. */
export function rfc3339(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export type Align = 'left' | 'right';

/**
 * Renders rows as a plain-text table: a header line, columns separated by two spaces, padded to
 * the widest cell, `right`-aligned columns padded on the left. Trailing spaces are trimmed.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    widths
      .map((w, i) => {
        const cell = cells[i] ?? '';
        return align[i] === 'right' ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** `key: value` lines with the values aligned; entries with an `undefined` value are left out. */
export function renderKeyValues(entries: readonly (readonly [string, string | undefined])[]): string {
  const shown = entries.filter((e): e is readonly [string, string] => e[1] !== undefined);
  const width = Math.max(0, ...shown.map(([k]) => k.length + 1));
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`.trimEnd()).join('\n') + '\n';
}

/** Cuts a cell to `max` characters, marking the cut with `…`. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** Quotes one word for /bin/sh when it needs it: `a b` -> `'a b'`, `it's` -> `'it'\''s'`. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The cmd_line for the words after `hpcq submit ... --`: one word is taken verbatim as a shell
 * command line (`-- 'sleep 10; exit 3'`); several words are an argument vector, each word
 * shell-quoted as needed (`-- sh -c 'echo a b'` runs exactly that), like srun.
 */
export function commandLineFromWords(words: readonly string[]): string {
  if (words.length === 1) return words[0]!;
  return words.map(shellQuote).join(' ');
}
