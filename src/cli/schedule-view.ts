/** How `hpcq schedule` shows schedules and their events: tables, the show view, watch lines, --json. */
import { SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';
import {
  ConcurrencyPolicy,
  Schedule,
  ScheduleEventKind,
  WatchScheduleResponse,
  concurrencyPolicyToJSON,
  scheduleEventKindToJSON,
  type ScheduleEvent,
} from '../gen/hpcq/v1/schedule_service.js';
import {
  formatDurationShort,
  formatMiB,
  formatTime,
  renderKeyValues,
  renderTable,
  rfc3339,
  shellQuote,
  truncate,
  type Align,
} from './format.js';
import { protoJson } from './proto-json.js';

/**
 * The Schedule as --json prints it. protoJson renames map keys to snake_case too; the template's
 * env keys are variable names (data), so they are put back as they are.
 */
export function scheduleJson(s: Schedule): unknown {
  const json = protoJson(Schedule, s) as Record<string, Record<string, unknown>>;
  if (s.job && json.job) json.job.env = { ...s.job.env };
  return json;
}

export function watchJson(m: WatchScheduleResponse): unknown {
  const json = protoJson(WatchScheduleResponse, m) as Record<string, unknown>;
  if (m.schedule) json.schedule = scheduleJson(m.schedule);
  return json;
}

const orDash = (text: string) => (text === '' ? '-' : text);
const policyName = (p: ConcurrencyPolicy) => (p === ConcurrencyPolicy.CONCURRENCY_POLICY_UNSPECIFIED ? 'allow' : concurrencyPolicyToJSON(p).replace(/^CONCURRENCY_POLICY_/, '').toLowerCase());
const kindName = (k: ScheduleEventKind) => scheduleEventKindToJSON(k).replace(/^SCHEDULE_EVENT_KIND_/, '').toLowerCase();
const stateName = (s: Schedule) => (s.suspend ? 'suspended' : 'active');

/** `uid:1001 (alice)` -> `alice`; a certificate subject stays as it is. */
export function ownerShort(owner: string): string {
  return /^uid:\d+ \((.+)\)$/.exec(owner)?.[1] ?? owner;
}

const TABLE_HEADERS = ['ID', 'NAME', 'CRON', 'TZ', 'POLICY', 'STATE', 'LAST TICK', 'NEXT TICK', 'ACTIVE JOBS', 'OWNER'] as const;

/** The `schedule list` table. */
export function renderScheduleTable(schedules: readonly Schedule[]): string {
  const rows = schedules.map((s) => [
    s.scheduleId,
    truncate(s.name, 24),
    s.cron,
    s.timeZone,
    policyName(s.concurrencyPolicy),
    stateName(s),
    orDash(formatTime(s.lastTick)),
    orDash(formatTime(s.nextTick)),
    orDash(truncate(s.activeJobIds.join(','), 24)),
    ownerShort(s.owner),
  ]);
  return renderTable(TABLE_HEADERS, rows);
}

/** The template's command as the user gave it. */
function templateCommand(job: SubmitJobRequest): string {
  if (job.inputFile) return `${job.inputFile} (script)`;
  if (job.argv.length > 0) return `${job.argv.map(shellQuote).join(' ')} (argv, no shell)`;
  return job.cmdLine;
}

const QUEUE_DEFAULT = "the queue's default";

/** The `schedule show` view: the schedule's fields, its template, its latest events. */
export function renderScheduleShow(s: Schedule): string {
  const job = s.job ?? SubmitJobRequest.fromPartial({});
  const fields = renderKeyValues([
    ['Schedule', s.scheduleId],
    ['Name', s.name],
    ['Cron', `${s.cron} (${s.timeZone})`],
    ['Policy', policyName(s.concurrencyPolicy)],
    ['State', stateName(s)],
    ['Starting deadline', s.startingDeadlineSeconds > 0 ? `${formatDurationShort(s.startingDeadlineSeconds)} (${s.startingDeadlineSeconds} s)` : 'none'],
    ['Last tick', orDash(formatTime(s.lastTick))],
    ['Next tick', orDash(formatTime(s.nextTick))],
    ['Active jobs', orDash(s.activeJobIds.join(', '))],
    ['Owner', s.owner],
    ['Created', orDash(formatTime(s.createTime))],
    ['Updated', orDash(formatTime(s.updateTime))],
    ['Client token', orDash(s.clientToken)],
  ]);
  const envNames = Object.keys(job.env);
  const template = renderKeyValues([
    ['Job name', job.name],
    ['Command', templateCommand(job)],
    ['Queue', job.schedulerQueueName || job.hpcqueueId || "the cluster's default"],
    // An empty run_user means the owner's own account, as with submit.
    ['Run user', job.runUser || `${ownerShort(s.owner)} (the owner)`],
    ['Working dir', job.workingDir || "the run user's home"],
    // 0 = the queue's default, decided at each tick.
    ['Cores', job.coreLimit > 0 ? String(job.coreLimit) : QUEUE_DEFAULT],
    ['Memory limit', job.memLimit > 0 ? formatMiB(job.memLimit, true) : QUEUE_DEFAULT],
    ['Time limit', job.timeLimit > 0 ? formatDurationShort(job.timeLimit) : QUEUE_DEFAULT],
    ['Array', job.array ? `${job.array.count} instances${job.array.parallelism > 0 ? `, at most ${job.array.parallelism} at once` : ''}` : undefined],
    ['Env', envNames.length > 0 ? envNames.join(', ') : undefined],
  ]);
  const indent = (text: string) => text.replace(/^(?=.)/gm, '  ');
  return `${fields}\nJob template:\n${indent(template)}\n${renderEvents(s.recentEvents)}`;
}

/** The events part of `schedule show`: a TIME KIND TICK JOB REASON table, newest last. */
export function renderEvents(events: readonly ScheduleEvent[]): string {
  if (events.length === 0) return 'Events: none yet\n';
  const align: Align[] = ['left', 'left', 'left', 'right', 'left'];
  const rows = events.map((e) => [orDash(formatTime(e.time)), kindName(e.kind), tickText(e), orDash(e.jobId), eventDetail(e)]);
  return `Events (latest ${events.length}, newest last):\n${renderTable(['TIME', 'KIND', 'TICK', 'JOB', 'REASON'], rows, align)}`;
}

/** The tick an event is about; for missed ticks `first..last (N ticks)`. */
function tickText(e: ScheduleEvent): string {
  const tick = orDash(formatTime(e.tickTime));
  if (e.kind !== ScheduleEventKind.SCHEDULE_EVENT_KIND_MISSED || !e.lastTickTime || e.lastTickTime === e.tickTime) return tick;
  return `${tick}..${formatTime(e.lastTickTime)} (${e.missedCount > 0 ? e.missedCount : 'many'} ticks)`;
}

function eventDetail(e: ScheduleEvent): string {
  return [e.eventId ? `event_id ${e.eventId}` : '', e.reason].filter((t) => t !== '').join('; ');
}

/** One `schedule watch` line for an event: `<time>  sched-3  fired  tick <t>  job 12  <reason>`. */
export function eventLine(scheduleId: string, e: ScheduleEvent): string {
  const parts = [orDash(formatTime(e.time)), scheduleId, kindName(e.kind).padEnd(9), `tick ${tickText(e)}`];
  if (e.jobId) parts.push(`job ${e.jobId}`);
  const detail = eventDetail(e);
  if (detail) parts.push(detail);
  return parts.join('  ').trimEnd();
}

/** The first `schedule watch` line: the schedule as it is now. */
export function stateLine(s: Schedule, nowMs: number = Date.now()): string {
  const next = s.nextTick ? `next tick ${formatTime(s.nextTick)}` : '';
  return [formatTime(rfc3339(nowMs)), s.scheduleId, stateName(s).padEnd(9), next].join('  ').trimEnd();
}
