/** Schedules and their events as the proto has them. */
import type { Schedule, ScheduleEvent, ScheduleEventKind as DomainKind, ConcurrencyPolicy as DomainPolicy } from '../core/schedule.js';
import { scheduleIdText } from '../core/schedule.js';
import { ownerName } from '../engine/schedule-runner.js';
import { SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';
import { ConcurrencyPolicy, ScheduleEventKind, type Schedule as ProtoSchedule, type ScheduleEvent as ProtoEvent } from '../gen/hpcq/v1/schedule_service.js';

const POLICY_TO_PROTO: Record<DomainPolicy, ConcurrencyPolicy> = {
  allow: ConcurrencyPolicy.CONCURRENCY_POLICY_ALLOW,
  forbid: ConcurrencyPolicy.CONCURRENCY_POLICY_FORBID,
  replace: ConcurrencyPolicy.CONCURRENCY_POLICY_REPLACE,
};

const KIND_TO_PROTO: Record<DomainKind, ScheduleEventKind> = {
  fired: ScheduleEventKind.SCHEDULE_EVENT_KIND_FIRED,
  skipped: ScheduleEventKind.SCHEDULE_EVENT_KIND_SKIPPED,
  missed: ScheduleEventKind.SCHEDULE_EVENT_KIND_MISSED,
  failed: ScheduleEventKind.SCHEDULE_EVENT_KIND_FAILED,
  triggered: ScheduleEventKind.SCHEDULE_EVENT_KIND_TRIGGERED,
};

function time(ms: number | undefined): string {
  return ms !== undefined && ms > 0 ? new Date(ms).toISOString() : '';
}

export function scheduleToProto(s: Schedule, live: { nextTickMs: number | undefined; activeJobIds: readonly number[] }, events: readonly ScheduleEvent[] = []): ProtoSchedule {
  return {
    scheduleId: scheduleIdText(s.id),
    name: s.name,
    cron: s.cron,
    timeZone: s.timeZone,
    // Filled to the current proto's defaults: a template stored before a field existed lacks it.
    job: SubmitJobRequest.fromPartial(s.template as SubmitJobRequest),
    concurrencyPolicy: POLICY_TO_PROTO[s.policy],
    startingDeadlineSeconds: s.startingDeadlineSeconds,
    suspend: s.suspend,
    lastTick: time(s.lastTickMs),
    nextTick: time(live.nextTickMs),
    activeJobIds: live.activeJobIds.map(String),
    owner: ownerName(s.owner),
    createTime: time(s.createdMs),
    updateTime: time(s.updatedMs),
    clientToken: s.clientToken,
    recentEvents: events.map(scheduleEventToProto),
  };
}

export function scheduleEventToProto(e: ScheduleEvent): ProtoEvent {
  return {
    sequence: e.sequence,
    kind: KIND_TO_PROTO[e.kind],
    tickTime: time(e.tickMs),
    lastTickTime: time(e.lastTickMs),
    missedCount: e.missedCount ?? 0,
    jobId: e.jobId === undefined ? '' : String(e.jobId),
    reason: e.reason,
    eventId: e.eventId ?? '',
    time: time(e.timeMs),
  };
}
