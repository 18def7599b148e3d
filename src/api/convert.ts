/** The one place that maps between generated proto types and domain types. */
import type { QueueConfig } from '../config/daemon-config.js';
import { JOB_STATES, jobStatusString, type Job as DomainJob, type JobEvent as DomainJobEvent, type JobState as DomainJobState } from '../core/job.js';
import type { SubmitRequest } from '../core/submit-request.js';
import { HpcqError } from '../core/errors.js';
import { JobState, type Job, type JobEvent } from '../gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';
import type { Queue } from '../gen/hpcq/v1/queue_service.js';

export function submitRequestFromProto(req: SubmitJobRequest): SubmitRequest {
  return {
    timestamp: req.timestamp,
    clusterId: req.clusterId,
    zone: req.zone,
    runUser: req.runUser,
    name: req.name,
    cmdLine: req.cmdLine,
    inputFile: req.inputFile,
    coreLimit: req.coreLimit,
    memLimit: req.memLimit,
    timeLimit: req.timeLimit,
    resourceLimit: req.resourceLimit,
    hpcqueueId: req.hpcqueueId,
    schedulerQueueName: req.schedulerQueueName,
    stdoutRedirectPath: req.stdoutRedirectPath,
    stderrRedirectPath: req.stderrRedirectPath,
    priority: req.priority,
    submitType: req.submitType,
    clientToken: req.clientToken,
  };
}

export function stateToProto(state: DomainJobState): JobState {
  return (JOB_STATES.indexOf(state) + 1) as JobState;
}

export function stateFromProto(state: JobState): DomainJobState {
  const s = JOB_STATES[state - 1];
  if (!s) throw new HpcqError('InvalidParameterValue.JobState', 'invalid', `unknown job state ${state}`, 'states');
  return s;
}

function time(ms: number): string {
  return ms > 0 ? new Date(ms).toISOString() : '';
}

export function jobToProto(job: DomainJob): Job {
  return {
    jobId: String(job.id),
    hpcjobUuid: job.uuid,
    name: job.name,
    clusterId: job.clusterId,
    zone: job.zone,
    hpcqueueId: job.hpcqueueId,
    schedulerQueueName: job.schedulerQueueName,
    runUser: job.runUser,
    cmdLine: job.cmdLine,
    inputFile: job.inputFile,
    coreLimit: job.cores,
    memLimit: job.memoryLimitMb,
    timeLimit: job.timeLimitSeconds,
    resourceLimit: job.resourceLimit,
    priority: job.priority,
    state: stateToProto(job.state),
    jobStatus: jobStatusString(job.state),
    reason: job.reason,
    exitCode: job.exitCode,
    termSignal: job.termSignal,
    submitTime: time(job.submitTimeMs),
    startTime: time(job.startTimeMs),
    endTime: time(job.endTimeMs),
    stdoutPath: job.stdoutPath,
    stderrPath: job.stderrPath,
    enforcement: job.enforcement,
    limitHit: job.limitHit,
    usage: job.usage
      ? {
          cpuTimeUsec: job.usage.userCpuUsec + job.usage.systemCpuUsec,
          userCpuUsec: job.usage.userCpuUsec,
          systemCpuUsec: job.usage.systemCpuUsec,
          peakMemoryBytes: job.usage.peakMemoryBytes,
          wallTimeMs: job.usage.wallTimeMs,
        }
      : undefined,
    submitType: job.submitType,
    clientToken: job.clientToken,
  };
}

export function eventToProto(event: DomainJobEvent): JobEvent {
  return {
    state: stateToProto(event.state),
    jobStatus: jobStatusString(event.state),
    reason: event.reason,
    time: time(event.timeMs),
    sequence: event.sequence,
  };
}

export function queueToProto(q: QueueConfig, counts: { pending: number; running: number }): Queue {
  return {
    clusterId: q.clusterId,
    zone: q.zone,
    hpcqueueId: q.hpcqueueId,
    schedulerQueueName: q.schedulerQueueName,
    isDefault: q.isDefault,
    priority: q.priority,
    maxCores: q.maxCores,
    defaultCores: q.defaultCores,
    maxMemMb: q.maxMemMb,
    defaultMemMb: q.defaultMemMb,
    maxTimeSeconds: q.maxTimeSeconds,
    defaultTimeSeconds: q.defaultTimeSeconds,
    maxRunning: q.maxRunning,
    maxPending: q.maxPending,
    pendingCount: counts.pending,
    runningCount: counts.running,
  };
}
