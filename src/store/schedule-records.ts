/**
 * How schedules are stored: the record, its history and its creation token, as batch operations
 * the store writes on their own or inside a tick job's batch (the job and the tick together).
 */
import type { Schedule, ScheduleEvent, ScheduleEventKind } from '../core/schedule.js';
import type { ScheduleWrite } from '../core/ports.js';
import type { BatchOp } from './job-ops.js';
import { RecordDecodeError, parseObject } from './job-codec.js';
import { META_LAST_SCHEDULE_ID_KEY, scheduleEventKey, scheduleKey, scheduleTokenKey } from './keys.js';

/** Schema version of schedule records and events (the same as job records': job-codec.ts parseObject checks it). */
const RECORD_VERSION = 1;
/** Events kept per schedule: each write of event n deletes event n - KEPT_EVENTS. */
export const KEPT_EVENTS = 1000;
const EVENT_KINDS: ReadonlySet<string> = new Set<ScheduleEventKind>(['fired', 'skipped', 'missed', 'failed', 'triggered']);

/** The key a creation token is stored under: per owner, so owners never share tokens. */
export function ownerKeyOf(s: Pick<Schedule, 'owner'>): string {
  return s.owner.kind === 'account' ? `uid:${s.owner.uid}` : `cert:${s.owner.subject}`;
}

export function scheduleWriteOps(write: ScheduleWrite): BatchOp[] {
  const { schedule } = write;
  const ops: BatchOp[] = [
    { type: 'put', key: scheduleKey(schedule.id), value: JSON.stringify({ v: RECORD_VERSION, ...schedule }) },
  ];
  // Only a creation moves the counter (ids are taken in order), so a deleted id is never reused.
  if (write.created) ops.push({ type: 'put', key: META_LAST_SCHEDULE_ID_KEY, value: String(schedule.id) });
  for (const event of write.events) {
    const { scheduleId: _id, sequence: _seq, ...rest } = event;
    ops.push({ type: 'put', key: scheduleEventKey(schedule.id, event.sequence), value: JSON.stringify({ v: RECORD_VERSION, ...rest }) });
    if (event.sequence > KEPT_EVENTS) ops.push({ type: 'del', key: scheduleEventKey(schedule.id, event.sequence - KEPT_EVENTS) });
  }
  if (write.created && schedule.clientToken !== '') {
    ops.push({ type: 'put', key: scheduleTokenKey(ownerKeyOf(schedule), schedule.clientToken), value: JSON.stringify({ id: schedule.id, fingerprint: write.created.fingerprint }) });
  }
  return ops;
}

export function decodeSchedule(raw: string, expectedId: number): Schedule {
  const obj = parseObject(raw, `schedule ${expectedId}`);
  if (obj.id !== expectedId) throw new RecordDecodeError(`schedule record has id ${JSON.stringify(obj.id)}, expected ${expectedId}`);
  for (const f of ['name', 'cron', 'timeZone', 'policy', 'runUser', 'clientToken'] as const) {
    if (typeof obj[f] !== 'string') throw new RecordDecodeError(`schedule ${expectedId}: field ${f} is not a string`);
  }
  for (const f of ['lastTickMs', 'anchorMs', 'eventCount', 'startingDeadlineSeconds', 'runUid'] as const) {
    if (typeof obj[f] !== 'number') throw new RecordDecodeError(`schedule ${expectedId}: field ${f} is not a number`);
  }
  if (typeof obj.template !== 'object' || obj.template === null || typeof obj.owner !== 'object' || obj.owner === null) {
    throw new RecordDecodeError(`schedule ${expectedId}: template or owner missing`);
  }
  const { v: _v, ...schedule } = obj;
  return schedule as unknown as Schedule;
}

export function decodeScheduleEvent(raw: string, scheduleId: number, sequence: number): ScheduleEvent {
  const obj = parseObject(raw, `event ${sequence} of schedule ${scheduleId}`);
  if (typeof obj.kind !== 'string' || !EVENT_KINDS.has(obj.kind) || typeof obj.tickMs !== 'number' || typeof obj.timeMs !== 'number') {
    throw new RecordDecodeError(`event ${sequence} of schedule ${scheduleId} is malformed`);
  }
  const { v: _v, ...rest } = obj;
  return { ...(rest as unknown as Omit<ScheduleEvent, 'scheduleId' | 'sequence'>), scheduleId, sequence };
}

export function decodeScheduleToken(raw: string): { id: number; fingerprint: string } {
  const obj = JSON.parse(raw) as { id?: unknown; fingerprint?: unknown };
  if (typeof obj.id !== 'number' || typeof obj.fingerprint !== 'string') throw new RecordDecodeError('schedule token entry is malformed');
  return { id: obj.id, fingerprint: obj.fingerprint };
}
