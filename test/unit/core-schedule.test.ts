/** Cron reading (node-cron, zones, DST) and the pure decisions about due ticks and overrides. */
import { describe, expect, it } from 'vitest';
import { compileCron } from '../../src/core/cron.js';
import { HpcqError } from '../../src/core/errors.js';
import { applyOverrides, checkTemplate, planDueTicks, type JobOverrides } from '../../src/core/schedule.js';
import type { SubmitRequest } from '../../src/core/submit-request.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof HpcqError ? `${err.code} ${err.field}` : String(err);
  }
  return undefined;
}

describe('compileCron', () => {
  it('gives the first tick strictly after a time, with or without a seconds field', () => {
    const every2s = compileCron('*/2 * * * * *');
    expect(iso(every2s.next(at('2026-12-04T10:00:00.000Z')))).toBe('2026-12-04T10:00:02.000Z');
    expect(iso(every2s.next(at('2026-12-04T10:00:01.999Z')))).toBe('2026-12-04T10:00:02.000Z');
    const hourly = compileCron('15 * * * *');
    expect(iso(hourly.next(at('2026-12-04T10:15:00.000Z')))).toBe('2026-12-04T11:15:00.000Z');
  });

  it('reads the expression in its zone and skips a time that DST leaves out', () => {
    const berlin = compileCron('30 2 * * *', 'Europe/Berlin');
    expect(iso(berlin.next(at('2026-01-10T12:00:00Z')))).toBe('2026-01-11T01:30:00.000Z');
    // 29 March 2026: clocks jump from 02:00 to 03:00 in Berlin, so 02:30 happens next on the 30th.
    expect(iso(berlin.next(at('2026-03-28T12:00:00Z')))).toBe('2026-03-30T00:30:00.000Z');
    expect(iso(compileCron('0 9 * * 1', 'America/New_York').next(at('2026-12-04T00:00:00Z')))).toBe('2026-12-07T14:00:00.000Z');
  });

  it('refuses a malformed expression or an unknown zone by field', () => {
    expect(codeOf(() => compileCron('61 * * * *'))).toBe('InvalidParameter.CronExpression cron');
    expect(codeOf(() => compileCron('* * * *'))).toBe('InvalidParameter.CronExpression cron');
    expect(codeOf(() => compileCron('0 0 31 2 *'))).toBe('InvalidParameter.CronExpression cron');
    expect(codeOf(() => compileCron(''))).toBe('MissingParameter.CronExpression cron');
    expect(codeOf(() => compileCron('* * * * *', 'Mars/Olympus'))).toBe('InvalidParameter.TimeZone time_zone');
  });
});

describe('planDueTicks', () => {
  const perSecond = compileCron('* * * * * *');
  const base = at('2026-12-04T10:00:00Z');

  it('nothing is due before the next tick', () => {
    expect(planDueTicks(perSecond, base, base + 999, 0)).toBeUndefined();
  });

  it('fires the one due tick', () => {
    expect(planDueTicks(perSecond, base, base + 1000, 0)).toEqual({ fire: base + 1000, latestMs: base + 1000 });
  });

  it('after an outage fires only the latest tick and records the others as one missed range', () => {
    expect(planDueTicks(perSecond, base, base + 5500, 0)).toEqual({ fire: base + 5000, missed: { firstMs: base + 1000, lastMs: base + 4000, count: 4 }, latestMs: base + 5000 });
  });

  it('a latest tick later than the starting deadline is missed too', () => {
    expect(planDueTicks(perSecond, base, base + 5500, 1)).toEqual({ fire: base + 5000, missed: { firstMs: base + 1000, lastMs: base + 4000, count: 4 }, latestMs: base + 5000 });
    const hourly = compileCron('0 * * * *');
    expect(planDueTicks(hourly, base, base + 3 * 3600_000 + 600_000, 300)).toEqual({ missed: { firstMs: base + 3600_000, lastMs: base + 3 * 3600_000, count: 3 }, latestMs: base + 3 * 3600_000 });
  });

  it('a day of a per-second schedule costs a bounded walk: the range is exact, the count unknown (0)', () => {
    const now = base + 86_400_000 + 300;
    const plan = planDueTicks(perSecond, base, now, 0)!;
    expect(plan.fire).toBe(base + 86_400_000);
    expect(plan.missed).toEqual({ firstMs: base + 1000, lastMs: base + 86_399_000, count: 0 });
  });
});

describe('applyOverrides and checkTemplate', () => {
  const template = { cmdLine: 'run.sh', inputFile: '', argv: [], env: { A: '1', B: '2' }, array: undefined, beginTime: '' } as unknown as SubmitRequest;
  const none: JobOverrides = { argv: [], cmdLine: '', env: {}, arrayCount: 0, beginTime: '' };

  it('replaces the command, merges the environment, sets replicas and time', () => {
    expect(applyOverrides(template, none)).toMatchObject({ cmdLine: 'run.sh', env: { A: '1', B: '2' } });
    expect(applyOverrides(template, { ...none, argv: ['/bin/echo', 'x'], env: { B: 'two', C: '3' }, arrayCount: 4, beginTime: '2030-01-01T00:00:00Z' })).toMatchObject({
      cmdLine: '',
      argv: ['/bin/echo', 'x'],
      env: { A: '1', B: 'two', C: '3' },
      array: { count: 4, parallelism: 0 },
      beginTime: '2030-01-01T00:00:00Z',
    });
    expect(codeOf(() => applyOverrides(template, { ...none, argv: ['x'], cmdLine: 'y' }))).toBe('InvalidParameter.CommandConflict overrides.cmd_line');
  });

  it('refuses template fields that belong to one submit', () => {
    const ok = { clientToken: '', timestamp: '', beginTime: '', hold: false, dependsOn: [], taskName: '' } as unknown as SubmitRequest;
    expect(codeOf(() => checkTemplate(ok))).toBeUndefined();
    expect(codeOf(() => checkTemplate({ ...ok, hold: true }))).toBe('InvalidParameter.ScheduleTemplate job.hold');
    expect(codeOf(() => checkTemplate({ ...ok, dependsOn: [{ jobId: '1', condition: 0 }] }))).toBe('InvalidParameter.ScheduleTemplate job.depends_on');
    expect(codeOf(() => checkTemplate({ ...ok, beginTime: 'x' }))).toBe('InvalidParameter.ScheduleTemplate job.begin_time');
  });
});
