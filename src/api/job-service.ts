/** hpcq.v1.JobService: thin transport over JobEngine. */
import type { DaemonConfig } from '../config/daemon-config.js';
import { clusterNotFound, HpcqError, queueNotFound } from '../core/errors.js';
import { quoteValue } from '../core/quote.js';
import type { JobFilter } from '../core/ports.js';
import type { JobEngine } from '../engine/job-engine.js';
import type {
  CancelJobRequest,
  CancelJobResponse,
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
      const page = await engine.listJobs(listFilter(req, config()), principal, pageSize, decodePageToken(req.pageToken), req.includeInstances);
      return {
        jobs: page.jobs.map(jobToProto),
        nextPageToken: page.nextBeforeId === undefined ? '' : encodePageToken(page.nextBeforeId),
      };
    }),
    cancelJob: unary<CancelJobRequest, CancelJobResponse>(ctx, { method: 'CancelJob', mutating: true, auditDetails: byJobId }, async (req, principal) => ({
      job: jobToProto(await engine.cancel(req.jobId, principal)),
    })),
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

function listFilter(req: ListJobsRequest, config: DaemonConfig): JobFilter {
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
