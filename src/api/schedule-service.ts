/**
 * hpcq.v1.ScheduleService: transport over ScheduleRunner. A schedule's template is validated as a
 * submit of the caller when it is set (create, or update with `job`), and again at every tick as
 * its owner (whoever set it last), so nobody gains rights through someone else's schedule.
 */
import { createHash } from 'node:crypto';
import { checkTimeZone, compileCron } from '../core/cron.js';
import { HpcqError } from '../core/errors.js';
import type { Principal } from '../core/access-policy.js';
import { checkEventId, checkScheduleFields, checkTemplate, type Schedule, type ConcurrencyPolicy as DomainPolicy } from '../core/schedule.js';
import type { SubmitRequest } from '../core/submit-request.js';
import { checkClientToken } from '../core/validate-submit.js';
import type { JobEngine } from '../engine/job-engine.js';
import { ownerOf, type ScheduleEntry, type ScheduleRunner } from '../engine/schedule-runner.js';
import {
  ConcurrencyPolicy,
  type CreateScheduleRequest,
  type DeleteScheduleRequest,
  type DeleteScheduleResponse,
  type GetScheduleRequest,
  type ListSchedulesRequest,
  type ListSchedulesResponse,
  type Schedule as ProtoSchedule,
  type ScheduleServiceServer,
  type TriggerScheduleRequest,
  type UpdateScheduleRequest,
  type WatchScheduleRequest,
  type WatchScheduleResponse,
} from '../gen/hpcq/v1/schedule_service.js';
import type { SubmitJobRequest, SubmitJobResponse } from '../gen/hpcq/v1/job_service.js';
import { serverStream, unary, type HandlerContext } from './handlers.js';
import { scheduleEventToProto, scheduleToProto } from './schedule-convert.js';

/** Most schedules one owner may have (admins are not capped). */
export const MAX_SCHEDULES_PER_OWNER = 1000;
const MAX_PAGE_SIZE = 1000;

const POLICY_OF_PROTO: Record<number, DomainPolicy> = {
  [ConcurrencyPolicy.CONCURRENCY_POLICY_UNSPECIFIED]: 'allow',
  [ConcurrencyPolicy.CONCURRENCY_POLICY_ALLOW]: 'allow',
  [ConcurrencyPolicy.CONCURRENCY_POLICY_FORBID]: 'forbid',
  [ConcurrencyPolicy.CONCURRENCY_POLICY_REPLACE]: 'replace',
};

export function createScheduleService(runner: ScheduleRunner, engine: JobEngine, ctx: HandlerContext, now: () => number = Date.now): ScheduleServiceServer {
  const byId = (req: { scheduleId: string }) => ({ jobId: req.scheduleId || undefined });
  const view = (entry: ScheduleEntry, events: Parameters<typeof scheduleToProto>[2] = []) =>
    scheduleToProto(entry.schedule, { nextTickMs: runner.nextTick(entry), activeJobIds: runner.activeJobIds(entry) }, events);

  /** The template validated as `principal` would submit it; its errors name `job.<field>`. */
  async function checkedTemplate(job: SubmitJobRequest | undefined, principal: Principal): Promise<{ template: SubmitRequest; runUser: string; runUid: number }> {
    if (!job) throw new HpcqError('MissingParameter.ScheduleJob', 'invalid', 'job (the template each tick submits) is required', 'job');
    const template: SubmitRequest = job;
    checkTemplate(template);
    try {
      const { spec } = await engine.validate(template, principal);
      return { template, runUser: spec.runUser, runUid: spec.uid };
    } catch (err) {
      if (err instanceof HpcqError) throw new HpcqError(err.code, err.kind, err.message, `job${err.field ? `.${err.field}` : ''}`);
      throw err;
    }
  }

  return {
    createSchedule: unary<CreateScheduleRequest, ProtoSchedule>(
      ctx,
      { method: 'CreateSchedule', mutating: true, auditDetails: (_req, res) => ({ jobId: res?.scheduleId }) },
      async (req, principal) => {
        const policy = policyOf(req.concurrencyPolicy, 'concurrency_policy');
        checkScheduleFields({ name: req.name, startingDeadlineSeconds: req.startingDeadlineSeconds });
        const timeZone = req.timeZone || 'UTC';
        compileCron(req.cron, timeZone);
        checkClientToken(req.clientToken);
        const checked = await checkedTemplate(req.job, principal);
        const owner = ownerOf(principal);
        const fingerprint = createHash('sha256').update(JSON.stringify([req.name, req.cron, timeZone, checked.template, policy, req.startingDeadlineSeconds, req.suspend])).digest('base64url').slice(0, 32);
        const entry = await runner.create(async (id) => {
          if (req.clientToken !== '') {
            const stored = await runner.findCreateToken(owner, req.clientToken);
            if (stored) {
              if (stored.fingerprint !== fingerprint) throw new HpcqError('IdempotentParameterMismatch', 'already_exists', `client_token ${JSON.stringify(req.clientToken)} was used with a different request`, 'client_token');
              return { existing: stored.id };
            }
          }
          if (!runner.isAdmin(principal) && runner.countOwnedBy(owner) >= MAX_SCHEDULES_PER_OWNER) {
            throw new HpcqError('LimitExceeded.ScheduleQuota', 'exhausted', `${principal.name} already has ${MAX_SCHEDULES_PER_OWNER} schedules (the most one owner may have)`);
          }
          const t = now();
          const schedule: Schedule = {
            id,
            name: req.name,
            cron: req.cron,
            timeZone,
            template: checked.template,
            policy,
            startingDeadlineSeconds: req.startingDeadlineSeconds,
            suspend: req.suspend,
            owner,
            runUser: checked.runUser,
            runUid: checked.runUid,
            createdMs: t,
            updatedMs: t,
            lastTickMs: 0,
            anchorMs: t,
            eventCount: 0,
            clientToken: req.clientToken,
          };
          return { schedule, fingerprint };
        });
        return view(entry);
      },
    ),

    getSchedule: unary<GetScheduleRequest, ProtoSchedule>(ctx, { method: 'GetSchedule', auditDetails: byId }, async (req, principal) => {
      if (req.eventCount < 0 || req.eventCount > 1000) throw new HpcqError('InvalidParameterValue.EventCount', 'invalid', 'event_count must be 0..1000', 'event_count');
      const entry = await runner.visible(req.scheduleId, principal);
      return view(entry, await runner.events(entry, req.eventCount));
    }),

    listSchedules: unary<ListSchedulesRequest, ListSchedulesResponse>(ctx, { method: 'ListSchedules' }, async (req, principal) => {
      if (req.pageSize < 0) throw new HpcqError('InvalidParameterValue.Negative', 'invalid', 'page_size must not be negative', 'page_size');
      const after = req.pageToken === '' ? 0 : Number(/^s(\d{1,15})$/.exec(req.pageToken)?.[1] ?? NaN);
      if (!Number.isSafeInteger(after)) throw new HpcqError('InvalidParameter.PageToken', 'invalid', 'page_token is not one this server issued', 'page_token');
      const { entries, more } = await runner.list(principal, Math.min(req.pageSize || 100, MAX_PAGE_SIZE), after);
      return { schedules: entries.map((e) => view(e)), nextPageToken: more ? `s${entries.at(-1)!.schedule.id}` : '' };
    }),

    updateSchedule: unary<UpdateScheduleRequest, ProtoSchedule>(ctx, { method: 'UpdateSchedule', mutating: true, auditDetails: byId }, async (req, principal) => {
      const entry = await runner.actable(req.scheduleId, principal);
      const policy = req.concurrencyPolicy === undefined ? undefined : policyOf(req.concurrencyPolicy, 'concurrency_policy');
      const checked = req.job ? await checkedTemplate(req.job, principal) : undefined;
      await runner.exclusive(entry, async () => {
        const s = entry.schedule;
        const t = now();
        const next: Schedule = {
          ...s,
          cron: req.cron ?? s.cron,
          timeZone: req.timeZone === undefined ? s.timeZone : req.timeZone || 'UTC',
          policy: policy ?? s.policy,
          startingDeadlineSeconds: req.startingDeadlineSeconds ?? s.startingDeadlineSeconds,
          suspend: req.suspend ?? s.suspend,
          updatedMs: t,
          ...(checked ? { template: checked.template, runUser: checked.runUser, runUid: checked.runUid, owner: ownerOf(principal) } : {}),
        };
        checkScheduleFields(next);
        checkTimeZone(next.timeZone);
        compileCron(next.cron, next.timeZone);
        // Ticks before a new expression or a resume are not this schedule's to catch up.
        if (next.cron !== s.cron || next.timeZone !== s.timeZone || (s.suspend && !next.suspend)) next.anchorMs = t;
        await runner.update(entry, next);
      });
      return view(entry);
    }),

    deleteSchedule: unary<DeleteScheduleRequest, DeleteScheduleResponse>(ctx, { method: 'DeleteSchedule', mutating: true, auditDetails: byId }, async (req, principal) => {
      const entry = await runner.actable(req.scheduleId, principal);
      await runner.exclusive(entry, () => runner.delete(entry));
      return { scheduleId: req.scheduleId };
    }),

    triggerSchedule: unary<TriggerScheduleRequest, SubmitJobResponse>(
      ctx,
      { method: 'TriggerSchedule', mutating: true, auditDetails: (req, res) => ({ jobId: res?.jobId ?? req.scheduleId }) },
      async (req, principal) => {
        checkEventId(req.eventId);
        const entry = await runner.actable(req.scheduleId, principal);
        const o = req.overrides;
        const overrides = o ? { argv: o.argv, cmdLine: o.cmdLine, env: o.env, arrayCount: o.arrayCount, beginTime: o.beginTime } : undefined;
        const job = await runner.exclusive(entry, () => runner.trigger(entry, principal, req.eventId, overrides));
        return { action: 'HpcJobSubmitJobResponse', jobStatus: 'pending', hpcjobUuid: job.uuid, jobId: String(job.id), retCode: 0 };
      },
    ),

    watchSchedule: serverStream<WatchScheduleRequest, WatchScheduleResponse>(ctx, { method: 'WatchSchedule', auditDetails: byId }, async (req, principal, call, signal) => {
      const entry = await runner.visible(req.scheduleId, principal);
      await runner.watches.follow(
        entry.schedule.id,
        () => entry.schedule,
        req.includeHistory ? () => runner.events(entry, 1000) : undefined,
        (_schedule, event) => call.write({ schedule: view(entry), event: event ? scheduleEventToProto(event) : undefined }),
        signal,
      );
    }),
  };
}

function policyOf(value: number, field: string): DomainPolicy {
  const policy = POLICY_OF_PROTO[value];
  if (!policy) throw new HpcqError('InvalidParameterValue.ConcurrencyPolicy', 'invalid', `unknown concurrency_policy ${value}`, field);
  return policy;
}
