/** The one place that maps between generated proto types and domain types. */
import type { QueueConfig } from '../config/daemon-config.js';
import { groupIdOf, isTerminal, JOB_STATES, jobStatusString, type Job as DomainJob, type JobEvent as DomainJobEvent, type JobState as DomainJobState } from '../core/job.js';
import type { SubmitRequest } from '../core/submit-request.js';
import { scheduleIdText } from '../core/schedule.js';
import type { PartitionInfo } from '../core/ports.js';
import { HpcqError } from '../core/errors.js';
import { DependencyCondition, JobState, type Job, type JobEvent } from '../gen/hpcq/v1/job.js';
import type { DependencyCondition as DomainDependencyCondition } from '../core/dependency.js';
import type { GetJobGroupResponse, SubmitJobRequest } from '../gen/hpcq/v1/job_service.js';
import type { Queue } from '../gen/hpcq/v1/queue_service.js';

/** The proto request has exactly the domain's fields, so it is passed on as is (no copy per submit). */
export function submitRequestFromProto(req: SubmitJobRequest): SubmitRequest {
  return req;
}

export function stateToProto(state: DomainJobState): JobState {
  return (JOB_STATES.indexOf(state) + 1) as JobState;
}

/** The domain state of a proto state; undefined for JOB_STATE_UNSPECIFIED and unknown values. */
export function domainState(state: JobState): DomainJobState | undefined {
  return JOB_STATES[state - 1];
}

export function stateFromProto(state: JobState): DomainJobState {
  const s = domainState(state);
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
    argv: [...job.argv],
    envNames: Object.keys(job.env),
    workingDir: job.workingDir,
    description: job.description,
    dependsOn: job.dependsOn.map((d) => ({ jobId: String(d.jobId), condition: CONDITION_TO_PROTO[d.condition] })),
    retry: job.retry ? { ...job.retry, exitCodes: [...job.retry.exitCodes] } : undefined,
    attempt: job.attempt,
    groupId: job.group ? groupIdOf(job.group.firstJobId) : '',
    array: job.array ? { ...job.array } : undefined,
    instanceCounts: job.instanceCounts ? countsByStatus(job.instanceCounts) : {},
    arrayJobId: job.arrayInstance ? String(job.arrayInstance.arrayJobId) : '',
    arrayIndex: job.arrayInstance?.index ?? 0,
    beginTime: time(job.eligibleAtMs),
    heldBy: job.heldBy,
    scheduleId: job.schedule ? scheduleIdText(job.schedule.scheduleId) : '',
    scheduleTickTime: time(job.schedule?.tickMs ?? 0),
    schedulerJobId: job.backendJobId,
    taskName: job.group?.taskName ?? '',
    previousAttempts: job.previousAttempts.map((a) => ({
      attempt: a.attempt,
      state: stateToProto(a.state),
      reason: a.reason,
      exitCode: a.exitCode,
      termSignal: a.termSignal,
      startTime: time(a.startTimeMs),
      endTime: time(a.endTimeMs),
    })),
  };
}

const CONDITION_TO_PROTO: Record<DomainDependencyCondition, DependencyCondition> = {
  afterok: DependencyCondition.DEPENDENCY_CONDITION_AFTER_OK,
  afterany: DependencyCondition.DEPENDENCY_CONDITION_AFTER_ANY,
  afternotok: DependencyCondition.DEPENDENCY_CONDITION_AFTER_NOT_OK,
  after: DependencyCondition.DEPENDENCY_CONDITION_AFTER_START,
};

export function eventToProto(event: DomainJobEvent): JobEvent {
  return {
    state: stateToProto(event.state),
    jobStatus: jobStatusString(event.state),
    reason: event.reason,
    time: time(event.timeMs),
    sequence: event.sequence,
  };
}

export function queueToProto(q: QueueConfig, counts: { pending: number; running: number }, usable: boolean, state: string, backend: { kind: string; partition?: PartitionInfo | undefined } = { kind: 'local' }): Queue {
  const p = backend.partition;
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
    allowedGroups: [...q.allowedGroups],
    allowedUsers: [...q.allowedUsers],
    usable,
    state,
    backend: backend.kind,
    partitionState: p?.state ?? '',
    partitionNodes: p?.nodes ?? 0,
    partitionCpus: p?.cpus ?? 0,
    partitionIdleCpus: p?.idleCpus ?? 0,
    partitionNote: p?.note ?? '',
  };
}

/** A group's answer: its jobs in task order, whether all have ended, and counts by job_status. */
export function groupToProto(groupId: string, jobs: readonly DomainJob[]): GetJobGroupResponse {
  const counts: Record<string, number> = {};
  for (const job of jobs) counts[jobStatusString(job.state)] = (counts[jobStatusString(job.state)] ?? 0) + 1;
  return {
    groupId,
    name: jobs[0]?.group?.name ?? '',
    tasks: jobs.map((job) => ({ taskName: job.group?.taskName ?? '', job: jobToProto(job) })),
    finished: jobs.every((job) => isTerminal(job.state)),
    counts,
  };
}

/** Non-zero instance counts keyed by EHPC's job_status strings. */
function countsByStatus(counts: Readonly<Record<DomainJobState, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const state of JOB_STATES) if (counts[state] > 0) out[jobStatusString(state)] = counts[state];
  return out;
}
