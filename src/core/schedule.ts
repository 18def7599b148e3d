/**
 * Schedules: a job template run on a cron schedule (Kubernetes CronJob, Slurm scrontab) or on
 * demand (Alibaba SAE ExecJob). The types and the pure decisions live here; the runner
 * (engine/schedule-runner.ts) fires ticks and the store keeps them.
 *
 * Exactly once per tick: the runner stores a tick's job and the schedule's `lastTickMs` in one
 * synced batch, so after a crash at any instant a tick either has its job (and lastTickMs says so)
 * or has neither; a tick not handled by the time the daemon is back is "due" and planDueTicks
 * decides what becomes of it (one catch-up run at most, the rest recorded as missed).
 */
import type { CronClock } from './cron.js';
import { invalidParameter } from './errors.js';
import type { SubmitRequest } from './submit-request.js';

export type ConcurrencyPolicy = 'allow' | 'forbid' | 'replace';

/** Whose rights a schedule's ticks submit with: a local account (by uid) or a certificate subject. */
export type ScheduleOwner = { kind: 'account'; uid: number; name: string } | { kind: 'certificate'; subject: string };

export interface Schedule {
  id: number;
  name: string;
  cron: string;
  /** IANA zone the cron expression is read in. */
  timeZone: string;
  /** The job a tick submits; validated as the owner at creation and again at every tick. */
  template: SubmitRequest;
  policy: ConcurrencyPolicy;
  /** How late a tick may still start; 0 = no deadline. */
  startingDeadlineSeconds: number;
  suspend: boolean;
  owner: ScheduleOwner;
  /** The account the template runs as (for who may see and change the schedule). */
  runUser: string;
  runUid: number;
  createdMs: number;
  updatedMs: number;
  /** The latest tick handled (fired, skipped, failed or missed); 0 = none yet. */
  lastTickMs: number;
  /**
   * Ticks at or before this time are not the schedule's to handle: it did not exist, was
   * suspended, or had another cron expression then. Set on create, resume and cron changes.
   */
  anchorMs: number;
  /** Events recorded so far (the sequence of the latest). */
  eventCount: number;
  clientToken: string;
}

export type ScheduleEventKind = 'fired' | 'skipped' | 'missed' | 'failed' | 'triggered';

export interface ScheduleEvent {
  scheduleId: number;
  sequence: number;
  kind: ScheduleEventKind;
  /** The tick (for triggered: the time of the trigger); for missed: the first missed tick. */
  tickMs: number;
  /** For missed: the last missed tick. */
  lastTickMs?: number;
  /** For missed: how many ticks; 0 when too many to count. */
  missedCount?: number;
  jobId?: number;
  reason: string;
  eventId?: string;
  timeMs: number;
}

/** The schedule id clients see. */
export function scheduleIdText(id: number): string {
  return `sched-${id}`;
}

/** The number in `sched-<n>`, or undefined if `text` is not a schedule id. */
export function parseScheduleId(text: string): number | undefined {
  const m = /^sched-(\d{1,15})$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Where ticks are looked for after: the later of the last handled tick and the anchor. */
export function tickBase(s: Pick<Schedule, 'lastTickMs' | 'anchorMs'>): number {
  return Math.max(s.lastTickMs, s.anchorMs);
}

/** What to do with the ticks that are due: fire one, and/or record a range as missed. */
export interface DuePlan {
  fire?: number;
  missed?: { firstMs: number; lastMs: number; count: number };
  /** The latest due tick: the schedule's lastTickMs once the plan is carried out. */
  latestMs: number;
}

/** Most ticks walked one by one before looking only near `now` (a long outage of a per-second schedule). */
const WALK_LIMIT = 100;

/**
 * The due ticks of a schedule (after `afterMs`, at or before `nowMs`): the latest is fired if it is
 * within the starting deadline (0 = none), every earlier one is missed (at most one catch-up run,
 * as Kubernetes does, but the schedule never stops because of how many it missed). Undefined when
 * nothing is due. Costs at most a few hundred cron steps however long the outage was.
 */
export function planDueTicks(clock: CronClock, afterMs: number, nowMs: number, deadlineSeconds: number): DuePlan | undefined {
  const first = clock.next(afterMs);
  if (first === undefined || first > nowMs) return undefined;
  let previous: number | undefined;
  let latest = first;
  let count = 1;
  for (;;) {
    const next = clock.next(latest);
    if (next === undefined || next > nowMs) break;
    if (count >= WALK_LIMIT) {
      ({ previous, latest } = latestTwoBefore(clock, latest, nowMs));
      count = 0;
      break;
    }
    previous = latest;
    latest = next;
    count++;
  }
  const inTime = deadlineSeconds <= 0 || nowMs - latest <= deadlineSeconds * 1000;
  if (inTime) {
    return previous === undefined ? { fire: latest, latestMs: latest } : { fire: latest, missed: { firstMs: first, lastMs: previous, count: count === 0 ? 0 : count - 1 }, latestMs: latest };
  }
  return { missed: { firstMs: first, lastMs: latest, count }, latestMs: latest };
}

/**
 * The last two ticks in (`knownMs`, `nowMs`] (`knownMs` itself is a tick), looking back from now
 * in doubling windows so that a per-second schedule after a day down costs a few steps, not 86,400.
 */
function latestTwoBefore(clock: CronClock, knownMs: number, nowMs: number): { previous: number; latest: number } {
  for (let windowMs = 64_000; ; windowMs *= 2) {
    const start = Math.max(knownMs, nowMs - windowMs);
    const found = lastTicksIn(clock, start, nowMs);
    if (found.length >= 2) return { previous: found[found.length - 2]!, latest: found[found.length - 1]! };
    if (start === knownMs) return found.length === 1 ? { previous: knownMs, latest: found[0]! } : { previous: knownMs, latest: knownMs };
  }
}

/** The ticks in (startMs, nowMs], keeping only the last few once there are many. */
function lastTicksIn(clock: CronClock, startMs: number, nowMs: number): number[] {
  const ticks: number[] = [];
  for (let t = clock.next(startMs); t !== undefined && t <= nowMs; t = clock.next(t)) {
    ticks.push(t);
    if (ticks.length > 8) ticks.shift();
  }
  return ticks;
}

/** Overrides of one TriggerSchedule (SAE ExecJob's Command/CommandArgs, Envs, Replicas, Time). */
export interface JobOverrides {
  argv: readonly string[];
  cmdLine: string;
  env: Readonly<Record<string, string>>;
  arrayCount: number;
  beginTime: string;
}

/** The template with a trigger's overrides applied (unset fields keep the template's). */
export function applyOverrides(template: SubmitRequest, o: JobOverrides | undefined): SubmitRequest {
  if (!o) return template;
  if (o.argv.length > 0 && o.cmdLine !== '') {
    throw invalidParameter('InvalidParameter.CommandConflict', 'overrides.cmd_line', 'give overrides.argv or overrides.cmd_line, not both');
  }
  if (o.arrayCount < 0) throw invalidParameter('InvalidParameterValue.ArrayCount', 'overrides.array_count', 'overrides.array_count must not be negative');
  const command =
    o.argv.length > 0 ? { argv: o.argv, cmdLine: '', inputFile: '' } : o.cmdLine !== '' ? { argv: [], cmdLine: o.cmdLine, inputFile: '' } : {};
  return {
    ...template,
    ...command,
    env: { ...template.env, ...o.env },
    ...(o.arrayCount > 0 ? { array: { count: o.arrayCount, parallelism: template.array?.parallelism ?? 0 } } : {}),
    ...(o.beginTime !== '' ? { beginTime: o.beginTime } : {}),
  };
}

/**
 * Fields a template may not carry: they belong to one submit, not to every tick (a client token or
 * timestamp would refuse the second tick; depends_on and hold would tie every run to one job).
 */
export function checkTemplate(t: SubmitRequest): void {
  const refuse = (field: string, why: string) => {
    throw invalidParameter('InvalidParameter.ScheduleTemplate', `job.${field}`, `a schedule's job may not set ${field}: ${why}`);
  };
  if (t.clientToken !== '') refuse('client_token', 'each tick is made idempotent by the schedule itself');
  if (t.timestamp !== '') refuse('timestamp', 'it would be stale for every later tick');
  if (t.beginTime !== '') refuse('begin_time', 'ticks start when they fire (TriggerSchedule takes overrides.begin_time)');
  if (t.hold) refuse('hold', 'a held tick would never run; suspend the schedule instead');
  if (t.dependsOn.length > 0) refuse('depends_on', 'every tick would wait for the same jobs');
  if (t.taskName !== '') refuse('task_name', 'it names a task of a job group');
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** Schedule fields besides the template: name, deadline. */
export function checkScheduleFields(f: { name: string; startingDeadlineSeconds: number }): void {
  if (f.name === '') throw invalidParameter('MissingParameter.ScheduleName', 'name', 'name is required');
  if (!NAME_RE.test(f.name)) {
    throw invalidParameter('InvalidParameter.ScheduleName', 'name', 'name must be 1..64 letters, digits, - and _, not starting with a digit or -');
  }
  if (!Number.isSafeInteger(f.startingDeadlineSeconds) || f.startingDeadlineSeconds < 0 || f.startingDeadlineSeconds > 366 * 86_400) {
    throw invalidParameter('InvalidParameterValue.StartingDeadline', 'starting_deadline_seconds', 'starting_deadline_seconds must be 0 (no deadline) to 31622400 (a year)');
  }
}

/** event_id of a TriggerSchedule: like a client token (printable ASCII, at most 64). */
export function checkEventId(eventId: string): void {
  if (eventId.length > 64 || !/^[\x21-\x7e]*$/.test(eventId)) {
    throw invalidParameter('InvalidParameter.EventId', 'event_id', 'event_id must be at most 64 printable ASCII characters without spaces');
  }
}
