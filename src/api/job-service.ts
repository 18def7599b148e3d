/** hpcq.v1.JobService: thin transport over JobEngine. */
import { constants as osConstants } from 'node:os';
import type { DaemonConfig } from '../config/daemon-config.js';
import { clusterNotFound, HpcqError, queueNotFound } from '../core/errors.js';
import { quoteValue } from '../core/quote.js';
import type { EndCursor, EndWindow, JobFilter } from '../core/ports.js';
import type { JobEngine } from '../engine/job-engine.js';
import type {
  CancelJobRequest,
  CancelJobResponse,
  CancelJobsRequest,
  CancelJobsResponse,
  HoldJobRequest,
  HoldJobResponse,
  ReleaseJobRequest,
  ReleaseJobResponse,
  GetJobGroupRequest,
  GetJobGroupResponse,
  GetJobRequest,
  GetJobResponse,
  JobServiceServer,
  ListJobsRequest,
  ListJobsResponse,
  SubmitJobGroupRequest,
  SubmitJobGroupResponse,
  SubmitJobRequest,
  SubmitJobResponse,
  WatchJobRequest,
  WatchJobResponse,
} from '../gen/hpcq/v1/job_service.js';
import { eventToProto, groupToProto, jobToProto, stateFromProto, submitRequestFromProto } from './convert.js';
import { groupIdOf } from '../core/job.js';
import { serverStream, unary, type HandlerContext } from './handlers.js';
import { toServiceError } from './grpc-status.js';

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

export function createJobService(engine: JobEngine, config: () => DaemonConfig, ctx: HandlerContext): JobServiceServer {
  const byJobId = (req: { jobId: string }) => ({ jobId: req.jobId });
  return {
    submitJob: unary<SubmitJobRequest, SubmitJobResponse>(
      ctx,
      { method: 'SubmitJob', mutating: true, auditDetails: (req, res) => ({ jobId: res?.jobId, runUser: req.runUser || undefined }) },
      async (req, principal, audit) => {
        if (req.taskName !== '') throw new HpcqError('InvalidParameter.TaskNameOutsideGroup', 'invalid', 'task_name names a task of a job group; use SubmitJobGroup', 'task_name');
        const { job } = await engine.submit(submitRequestFromProto(req), principal);
        audit.runUser = job.runUser;
        return { action: 'HpcJobSubmitJobResponse', jobStatus: 'pending', hpcjobUuid: job.uuid, jobId: String(job.id), retCode: 0 };
      },
    ),
    getJob: unary<GetJobRequest, GetJobResponse>(ctx, { method: 'GetJob', auditDetails: byJobId }, async (req, principal) => ({
      job: jobToProto(await engine.getJob(req.jobId, principal)),
    })),
    listJobs: unary<ListJobsRequest, ListJobsResponse>(ctx, { method: 'ListJobs' }, async (req, principal) => {
      if (req.pageSize < 0) throw new HpcqError('InvalidParameterValue.Negative', 'invalid', 'page_size must not be negative', 'page_size');
      const pageSize = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
      const window = endWindow(req);
      if (window) {
        const page = await engine.listEndedJobs(listFilter(req, config()), window, principal, pageSize, decodeEndPageToken(req.pageToken), req.includeInstances);
        return { jobs: page.jobs.map(jobToProto), nextPageToken: page.next === undefined ? '' : encodeEndPageToken(page.next) };
      }
      const page = await engine.listJobs(listFilter(req, config()), principal, pageSize, decodePageToken(req.pageToken), req.includeInstances);
      return {
        jobs: page.jobs.map(jobToProto),
        nextPageToken: page.nextBeforeId === undefined ? '' : encodePageToken(page.nextBeforeId),
      };
    }),
    cancelJob: unary<CancelJobRequest, CancelJobResponse>(ctx, { method: 'CancelJob', mutating: true, auditDetails: byJobId }, async (req, principal) => ({
      job: jobToProto(await engine.cancel(req.jobId, principal)),
    })),
    cancelJobs: unary<CancelJobsRequest, CancelJobsResponse>(
      ctx,
      // The audit line names the jobs asked for (the first 20: a line stays a line).
      { method: 'CancelJobs', mutating: true, auditDetails: (req) => ({ jobId: req.jobIds.slice(0, 20).join(',') + (req.jobIds.length > 20 ? ',...' : '') || undefined, runUser: req.runUser || undefined }) },
      async (req, principal) => {
        const filter = listFilter({ clusterId: req.clusterId, queue: req.queue, states: req.states, runUser: req.runUser }, config());
        const signal = req.signal === '' ? undefined : signalNumber(req.signal);
        const result = await engine.cancelMany({ jobIds: req.jobIds, ...filter, ...(req.name ? { name: req.name } : {}), ...(signal !== undefined ? { signal } : {}) }, principal);
        return {
          jobs: result.jobs.map(jobToProto),
          // Each failure carries what a CancelJob of that job alone would have answered.
          failures: result.failures.map(({ jobId, error }) => ({ jobId, reason: error.code, message: error.message, code: toServiceError(error, ctx.log, 'CancelJobs').code ?? 0 })),
        };
      },
    ),
    submitJobGroup: unary<SubmitJobGroupRequest, SubmitJobGroupResponse>(
      ctx,
      { method: 'SubmitJobGroup', mutating: true, auditDetails: (_req, res) => ({ jobId: res?.groupId }) },
      async (req, principal) => {
        const { jobs } = await engine.submitGroup(
          { name: req.name, tasks: req.tasks.map(submitRequestFromProto), dependences: req.dependences, clientToken: req.clientToken },
          principal,
        );
        return {
          groupId: groupIdOf(jobs[0]!.group!.firstJobId),
          taskJobIds: Object.fromEntries(jobs.map((j) => [j.group!.taskName, String(j.id)])),
          retCode: 0,
        };
      },
    ),
    getJobGroup: unary<GetJobGroupRequest, GetJobGroupResponse>(ctx, { method: 'GetJobGroup' }, async (req, principal) => groupToProto(req.groupId, await engine.getGroup(req.groupId, principal))),
    holdJob: unary<HoldJobRequest, HoldJobResponse>(ctx, { method: 'HoldJob', mutating: true, auditDetails: byJobId }, async (req, principal) => ({
      job: jobToProto(await engine.hold(req.jobId, principal)),
    })),
    releaseJob: unary<ReleaseJobRequest, ReleaseJobResponse>(ctx, { method: 'ReleaseJob', mutating: true, auditDetails: byJobId }, async (req, principal) => ({
      job: jobToProto(await engine.release(req.jobId, principal)),
    })),
    watchJob: serverStream<WatchJobRequest, WatchJobResponse>(ctx, { method: 'WatchJob', auditDetails: byJobId }, async (req, principal, call, signal) => {
      await engine.watch(
        req.jobId,
        principal,
        req.includeHistory,
        (job, event) => call.write({ job: jobToProto(job), event: event ? eventToProto(event) : undefined }),
        signal,
      );
    }),
  };
}

function listFilter(req: Pick<ListJobsRequest, 'clusterId' | 'queue' | 'states' | 'runUser'>, config: DaemonConfig): JobFilter {
  const filter: JobFilter = {};
  if (req.clusterId) {
    if (!config.clusters.some((c) => c.clusterId === req.clusterId)) throw clusterNotFound(req.clusterId);
    filter.clusterId = req.clusterId;
  }
  if (req.queue) {
    const matches = config.clusters
      .filter((c) => !req.clusterId || c.clusterId === req.clusterId)
      .flatMap((c) => c.queues)
      .filter((q) => q.hpcqueueId === req.queue || q.schedulerQueueName === req.queue);
    if (matches.length === 0) throw queueNotFound(req.queue, 'queue');
    if (matches.length > 1) {
      throw new HpcqError('InvalidParameter.AmbiguousQueue', 'invalid', `queue name ${quoteValue(req.queue)} exists in several clusters; give cluster_id or the hpcqueue_id`, 'queue');
    }
    filter.hpcqueueId = matches[0]!.hpcqueueId;
  }
  if (req.states.length > 0) filter.states = [...new Set(req.states.map(stateFromProto))];
  if (req.runUser) filter.runUser = req.runUser;
  return filter;
}

function encodePageToken(beforeId: number): string {
  return Buffer.from(`v1:${beforeId}`).toString('base64url');
}

function decodePageToken(token: string): number | undefined {
  if (!token) return undefined;
  const m = /^v1:(\d{1,15})$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw new HpcqError('InvalidParameter.PageToken', 'invalid', 'page_token is not a token this server issued', 'page_token');
  return Number(m[1]);
}

/** The end-time window of a ListJobs, when end_after or end_before is present (else a plain listing). */
function endWindow(req: ListJobsRequest): EndWindow | undefined {
  if (req.endAfter === undefined && req.endBefore === undefined) return undefined;
  const window: EndWindow = {};
  if (req.endAfter) window.fromMs = parseWindowTime(req.endAfter, 'end_after');
  if (req.endBefore) window.toMs = parseWindowTime(req.endBefore, 'end_before');
  if (window.fromMs !== undefined && window.toMs !== undefined && window.fromMs > window.toMs) {
    throw new HpcqError('InvalidParameterValue.EndWindow', 'invalid', `end_after ${quoteValue(req.endAfter!)} is later than end_before ${quoteValue(req.endBefore!)}`, 'end_after');
  }
  return window;
}

/** An RFC 3339 time with its zone (Z or an offset), as milliseconds. */
function parseWindowTime(text: string, field: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw new HpcqError('InvalidParameterValue.Time', 'invalid', `${field} must be an RFC 3339 time with a zone (2026-01-02T03:04:05Z), got ${quoteValue(text)}`, field);
  return Math.max(0, ms);
}

// Tokens of an end-time listing continue after (end time, id); they are told apart from id tokens.
function encodeEndPageToken(next: EndCursor): string {
  return Buffer.from(`e1:${next.endTimeMs}:${next.id}`).toString('base64url');
}

function decodeEndPageToken(token: string): EndCursor | undefined {
  if (!token) return undefined;
  const m = /^e1:(\d{1,16}):(\d{1,15})$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m) throw new HpcqError('InvalidParameter.PageToken', 'invalid', 'page_token is not a token this server issued for a listing by end time', 'page_token');
  return { endTimeMs: Number(m[1]), id: Number(m[2]) };
}

/** A signal given by name (USR1, SIGUSR1) or number, as scancel --signal takes it; SIGKILL/SIGSTOP too. */
function signalNumber(text: string): number {
  const upper = text.trim().toUpperCase();
  const n = /^\d{1,2}$/.test(upper) ? Number(upper) : osConstants.signals[(upper.startsWith('SIG') ? upper : `SIG${upper}`) as NodeJS.Signals];
  if (n === undefined || !Object.values(osConstants.signals).includes(n) || n === 0) {
    throw new HpcqError('InvalidParameterValue.Signal', 'invalid', `signal ${quoteValue(text)} is not a signal name (USR1, SIGTERM) or number`, 'signal');
  }
  return n;
}
