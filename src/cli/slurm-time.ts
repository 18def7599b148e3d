/**
 * Times as sacct's -S/--starttime and -E/--endtime take them, read in the local time zone:
 *   YYYY-MM-DD[THH:MM[:SS]]     2026-03-01, 2026-03-01T08:30
 *   MMDD[YY], MM/DD[/YY], MM.DD[.YY]   a day
 *   HH:MM[:SS]                  today at that time
 *   now[{+|-}count[seconds|minutes|hours|days|weeks]]   now-2hours, now-1day, now-90 (seconds)
 *   today, midnight, noon, fika (15:00), teatime (16:00), tomorrow
 * An RFC 3339 time with a zone (2026-03-01T08:30:00Z) is taken as well. Pure: no I/O.
 */

const UNIT_MS: ReadonlyArray<[RegExp, number]> = [
  [/^(s|sec|secs|second|seconds)?$/, 1_000],
  [/^(m|min|mins|minute|minutes)$/, 60_000],
  [/^(h|hr|hrs|hour|hours)$/, 3_600_000],
  [/^(d|day|days)$/, 86_400_000],
  [/^(w|week|weeks)$/, 604_800_000],
];

function localDay(year: number, month: number, day: number, h = 0, m = 0, s = 0): number {
  const date = new Date(year, month - 1, day, h, m, s, 0);
  // new Date rolls 2026-02-30 over into March: refuse what is not a real day and time.
  if (date.getFullYear() !== year || date.getMonth() !== month - 1 || date.getDate() !== day || date.getHours() !== h || date.getMinutes() !== m) {
    throw new Error('no such date or time');
  }
  return date.getTime();
}

/** A two-digit year as Slurm reads it: this century. */
function fullYear(yy: string | undefined, now: Date): number {
  if (yy === undefined) return now.getFullYear();
  return yy.length === 4 ? Number(yy) : 2000 + Number(yy);
}

/** Milliseconds since the epoch of a sacct time; throws an Error saying which forms are taken. */
export function parseSacctTime(text: string, nowMs: number = Date.now()): number {
  const s = text.trim().toLowerCase();
  const now = new Date(nowMs);
  const today = (h = 0, m = 0, sec = 0) => localDay(now.getFullYear(), now.getMonth() + 1, now.getDate(), h, m, sec);
  try {
    let m: RegExpExecArray | null;
    if ((m = /^now(?:([+-])(\d+)([a-z]*))?$/.exec(s))) {
      if (!m[1]) return nowMs;
      const unit = UNIT_MS.find(([re]) => re.test(m![3]!));
      if (!unit) throw new Error(`unknown unit ${JSON.stringify(m[3])}`);
      return nowMs + (m[1] === '-' ? -1 : 1) * Number(m[2]) * unit[1];
    }
    switch (s) {
      case 'today':
      case 'midnight':
        return today();
      case 'noon':
        return today(12);
      case 'fika':
        return today(15);
      case 'teatime':
        return today(16);
      case 'tomorrow':
        // The Date constructor rolls the day over (and knows daylight saving time).
        return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1).getTime();
    }
    if (/^\d{4}-\d{2}-\d{2}t\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:\d{2})$/.test(s)) return Date.parse(text.trim());
    if ((m = /^(\d{4})-(\d{2})-(\d{2})(?:t(\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(s))) {
      return localDay(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0));
    }
    if ((m = /^(\d{2})(\d{2})(\d{2})?$/.exec(s)) || (m = /^(\d{1,2})([/.])(\d{1,2})(?:\2(\d{2}|\d{4}))?$/.exec(s))) {
      const [month, day, yy] = m.length === 4 ? [m[1], m[2], m[3]] : [m[1], m[3], m[4]];
      return localDay(fullYear(yy, now), Number(month), Number(day));
    }
    if ((m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(s))) return today(Number(m[1]), Number(m[2]), Number(m[3] ?? 0));
  } catch (err) {
    throw new Error(`invalid time ${JSON.stringify(text)}: ${(err as Error).message}`);
  }
  throw new Error(
    `invalid time ${JSON.stringify(text)}: use YYYY-MM-DD[THH:MM[:SS]], MM/DD[/YY], HH:MM[:SS], now[-+count[unit]] (now-2hours), today, midnight or tomorrow`,
  );
}
