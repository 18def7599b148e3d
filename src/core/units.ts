/**
 * Durations and memory sizes written by people, shared by the CLI (flags, batch scripts, group
 * files) and the daemon's configuration, so that `2d` or `16G` means the same everywhere.
 */

export const UNIT_SECONDS: Readonly<Record<string, number>> = { d: 86_400, h: 3_600, m: 60, s: 1 };

/**
 * Parses a duration into whole seconds. Accepted forms:
 *   `3600`              plain seconds
 *   `1h30m`, `90m`, `45s`, `2d`, `1d2h3m4s`   unit suffixes d/h/m/s (in that order)
 *   `01:30:00`, `1:30:00`   hours:minutes:seconds
 *   `30:00`             minutes:seconds
 *   `1-12:00:00`, `1-12`, `1-12:30`   Slurm's days-hours[:minutes[:seconds]]
 * Throws an Error with a readable message for anything else.
 */
export function parseDuration(text: string): number {
  const s = text.trim().toLowerCase();
  if (/^\d+$/.test(s)) return checked(Number(s), text);
  if (/^(\d+[dhms])+$/.test(s)) {
    let total = 0;
    let lastRank = -1;
    for (const m of s.matchAll(/(\d+)([dhms])/g)) {
      const unit = m[2]!;
      const rank = 'dhms'.indexOf(unit);
      if (rank <= lastRank) throw new Error(`invalid duration ${JSON.stringify(text)}: units must appear once, in the order d h m s`);
      lastRank = rank;
      total += Number(m[1]) * UNIT_SECONDS[unit]!;
    }
    return checked(total, text);
  }
  const slurm = /^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$/.exec(s);
  if (slurm) {
    const [, d, h, m, sec] = slurm;
    if (Number(h) > 23 || Number(m ?? 0) > 59 || Number(sec ?? 0) > 59) throw new Error(`invalid duration ${JSON.stringify(text)}: field out of range`);
    return checked(Number(d) * 86_400 + Number(h) * 3_600 + Number(m ?? 0) * 60 + Number(sec ?? 0), text);
  }
  const clock = /^(\d+):(\d{1,2})(?::(\d{1,2}))?$/.exec(s);
  if (clock) {
    const [, a, b, c] = clock;
    if (c === undefined) {
      // minutes:seconds
      if (Number(b) > 59) throw new Error(`invalid duration ${JSON.stringify(text)}: seconds must be below 60`);
      return checked(Number(a) * 60 + Number(b), text);
    }
    if (Number(b) > 59 || Number(c) > 59) throw new Error(`invalid duration ${JSON.stringify(text)}: minutes and seconds must be below 60`);
    return checked(Number(a) * 3_600 + Number(b) * 60 + Number(c), text);
  }
  throw new Error(`invalid duration ${JSON.stringify(text)}: use seconds (3600), units (1h30m, 90m, 45s) or [D-]HH:MM:SS (01:30:00)`);
}

function checked(seconds: number, text: string): number {
  if (!Number.isSafeInteger(seconds)) throw new Error(`invalid duration ${JSON.stringify(text)}: too large`);
  return seconds;
}

const SIZE_UNITS_MIB: Record<string, number> = { k: 1 / 1024, m: 1, g: 1024, t: 1024 * 1024 };

/**
 * Parses a memory size into MiB: a plain number is MiB; suffixes K, M, G, T (binary, optional
 * `i`/`iB`/`B`, case-insensitive) are accepted: `512`, `512M`, `4G`, `1.5GiB`. Rounds up to whole MiB.
 */
export function parseMemMiB(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt])?(?:i?b)?$/i.exec(text.trim());
  if (!m || (m[2] === undefined && m[1]!.includes('.'))) {
    throw new Error(`invalid memory size ${JSON.stringify(text)}: use MiB (512) or a suffix K/M/G/T (4G)`);
  }
  const value = Number(m[1]) * SIZE_UNITS_MIB[(m[2] ?? 'm').toLowerCase()]!;
  const mib = Math.ceil(value - 1e-9);
  if (!Number.isSafeInteger(mib)) throw new Error(`invalid memory size ${JSON.stringify(text)}: too large`);
  return mib;
}

