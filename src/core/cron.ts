/**
 * Cron expressions, read by node-cron: its syntax (5 fields, or 6 with seconds first; ranges,
 * steps, names, `L`, `#`) and its time-zone handling (DST gaps are skipped, as node-cron does).
 *
 * The daemon needs "the first tick after time T" for any T (a schedule's stored last tick after a
 * restart), which node-cron computes (TimeMatcher.getNextMatch) but exposes only from "now"
 * (getNextRuns). The matcher of a task that is created and never started is used for that; the
 * unit tests pin the behaviour, so a node-cron upgrade that changes it fails them, not the daemon.
 */
import { createTask, validateDetailed } from 'node-cron';
import { invalidParameter } from './errors.js';
import { quoteValue } from './quote.js';

/** A compiled expression in its zone. */
export interface CronClock {
  /** The first tick strictly after `afterMs` (Unix ms, whole seconds), or undefined if none. */
  next(afterMs: number): number | undefined;
}

interface TimeMatcher {
  getNextMatch(date: Date): Date;
}

/** Longest cron expression accepted (node-cron parses anything; this bounds what is stored). */
const CRON_MAX = 256;

/** Throws InvalidParameter.TimeZone unless `zone` is an IANA zone this Node knows. */
export function checkTimeZone(zone: string, field = 'time_zone'): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    throw invalidParameter('InvalidParameter.TimeZone', field, `time_zone ${quoteValue(zone)} is not an IANA time zone (e.g. UTC, Europe/Berlin)`);
  }
}

/**
 * Compiles `expression` in `zone` (an IANA name; default UTC). Throws InvalidParameter.CronExpression
 * naming the field of the expression at fault, or InvalidParameter.TimeZone.
 */
export function compileCron(expression: string, zone = 'UTC', field = 'cron'): CronClock {
  if (expression.trim() === '') throw invalidParameter('MissingParameter.CronExpression', field, 'cron is required, e.g. "*/5 * * * *"');
  if (expression.length > CRON_MAX) throw invalidParameter('InvalidParameter.CronExpression', field, `cron must be at most ${CRON_MAX} characters`);
  const detail = validateDetailed(expression);
  if (!detail.valid) {
    const why = detail.errors.map((e) => (e.field === 'expression' ? e.message : `${e.field}: ${e.message}`)).join('; ');
    throw invalidParameter('InvalidParameter.CronExpression', field, `cron ${quoteValue(expression)} is not valid: ${why}`);
  }
  checkTimeZone(zone);
  const task = createTask(expression, () => undefined, { timezone: zone });
  const matcher = (task as unknown as { timeMatcher?: TimeMatcher }).timeMatcher;
  // Never started; destroyed so that node-cron's task registry does not keep it.
  void task.destroy();
  if (typeof matcher?.getNextMatch !== 'function') throw new Error('node-cron no longer exposes TimeMatcher.getNextMatch; see src/core/cron.ts');
  return {
    next(afterMs) {
      try {
        const next = matcher.getNextMatch(new Date(Math.floor(afterMs / 1000) * 1000)).getTime();
        return Number.isFinite(next) && next > afterMs ? next : undefined;
      } catch {
        // An expression that never matches (e.g. 31 February) makes the walker give up.
        return undefined;
      }
    },
  };
}
