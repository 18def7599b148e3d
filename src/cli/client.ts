/**
 * A thin promisified client of hpcqd's public gRPC API (the generated JobService, QueueService,
 * AccessService and ScheduleService clients), with an optional per-call deadline. On a unix
 * socket the daemon knows the caller by its uid; to a TCP address the client speaks TLS (with a
 * client certificate for mutual TLS) and may send a token as `authorization: Bearer`.
 */
import { readFileSync } from 'node:fs';
import { credentials, Metadata, type CallOptions, type ChannelCredentials, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { AccessServiceClient, type CreateTokenResponse, type ReconfigureResponse, type WhoAmIResponse, type SetLogLevelResponse } from '../gen/hpcq/v1/access_service.js';
import {
  JobServiceClient,
  type CancelJobResponse,
  type CancelJobsRequest,
  type CancelJobsResponse,
  type GetJobGroupResponse,
  type GetJobResponse,
  type HoldJobResponse,
  type ReleaseJobResponse,
  type ListJobsRequest,
  type ListJobsResponse,
  type SubmitJobGroupRequest,
  type SubmitJobGroupResponse,
  type SubmitJobRequest,
  type SubmitJobResponse,
  type WatchJobResponse,
} from '../gen/hpcq/v1/job_service.js';
import { QueueServiceClient, type ListQueuesResponse, type QueueStateResponse } from '../gen/hpcq/v1/queue_service.js';
import {
  ScheduleServiceClient,
  type CreateScheduleRequest,
  type DeleteScheduleResponse,
  type ListSchedulesResponse,
  type Schedule,
  type TriggerScheduleRequest,
  type UpdateScheduleRequest,
  type WatchScheduleResponse,
} from '../gen/hpcq/v1/schedule_service.js';

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** How to reach a TCP daemon: TLS files (PEM paths) and a token. */
export interface RemoteCredentials {
  /** CA that signed the daemon's certificate; default: the system's roots. */
  caFile?: string;
  /** Client certificate and key, for mutual TLS. */
  certFile?: string;
  keyFile?: string;
  /** Sent as `authorization: Bearer <token>` (only over TLS). */
  token?: string;
}

export class HpcqClient {
  private jobService: InstanceType<typeof JobServiceClient> | undefined;
  private queueService: InstanceType<typeof QueueServiceClient> | undefined;
  private accessService: InstanceType<typeof AccessServiceClient> | undefined;
  private scheduleService: InstanceType<typeof ScheduleServiceClient> | undefined;
  private readonly channelCredentials: ChannelCredentials;
  private readonly token: string | undefined;

  constructor(
    readonly address: string,
    /** Deadline of each unary call, ms; undefined = none. */
    readonly timeoutMs?: number,
    remote: RemoteCredentials = {},
  ) {
    if (address.startsWith('unix:')) {
      this.channelCredentials = credentials.createInsecure();
    } else {
      const read = (path: string | undefined) => (path ? readFileSync(path) : null);
      this.channelCredentials = credentials.createSsl(read(remote.caFile), read(remote.keyFile), read(remote.certFile));
      this.token = remote.token;
    }
  }

  private get jobs(): InstanceType<typeof JobServiceClient> {
    this.jobService ??= new JobServiceClient(this.address, this.channelCredentials);
    return this.jobService;
  }

  private get queues(): InstanceType<typeof QueueServiceClient> {
    this.queueService ??= new QueueServiceClient(this.address, this.channelCredentials);
    return this.queueService;
  }

  private get access(): InstanceType<typeof AccessServiceClient> {
    this.accessService ??= new AccessServiceClient(this.address, this.channelCredentials);
    return this.accessService;
  }

  private get schedules(): InstanceType<typeof ScheduleServiceClient> {
    this.scheduleService ??= new ScheduleServiceClient(this.address, this.channelCredentials);
    return this.scheduleService;
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    if (this.token) metadata.set('authorization', `Bearer ${this.token}`);
    return metadata;
  }

  private callOptions(timeoutMs: number | undefined): Partial<CallOptions> {
    return timeoutMs === undefined ? {} : { deadline: new Date(Date.now() + timeoutMs) };
  }

  private unary<Req, Res>(client: object, method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(client, request, this.metadata(), this.callOptions(this.timeoutMs), (err, res) => (err ? reject(err) : resolve(res)));
    });
  }

  submitJob(request: SubmitJobRequest): Promise<SubmitJobResponse> {
    return this.unary(this.jobs, this.jobs.submitJob, request);
  }

  getJob(jobId: string): Promise<GetJobResponse> {
    return this.unary(this.jobs, this.jobs.getJob, { jobId });
  }

  listJobs(request: ListJobsRequest): Promise<ListJobsResponse> {
    return this.unary(this.jobs, this.jobs.listJobs, request);
  }

  cancelJob(jobId: string): Promise<CancelJobResponse> {
    return this.unary(this.jobs, this.jobs.cancelJob, { jobId });
  }

  /** CancelJobs: the jobs named and those matching the filters, chosen and cancelled in one step. */
  cancelJobs(request: CancelJobsRequest): Promise<CancelJobsResponse> {
    return this.unary(this.jobs, this.jobs.cancelJobs, request);
  }

  holdJob(jobId: string): Promise<HoldJobResponse> {
    return this.unary(this.jobs, this.jobs.holdJob, { jobId });
  }

  releaseJob(jobId: string): Promise<ReleaseJobResponse> {
    return this.unary(this.jobs, this.jobs.releaseJob, { jobId });
  }

  submitJobGroup(request: SubmitJobGroupRequest): Promise<SubmitJobGroupResponse> {
    return this.unary(this.jobs, this.jobs.submitJobGroup, request);
  }

  getJobGroup(groupId: string): Promise<GetJobGroupResponse> {
    return this.unary(this.jobs, this.jobs.getJobGroup, { groupId });
  }

  listQueues(clusterId = ''): Promise<ListQueuesResponse> {
    return this.unary(this.queues, this.queues.listQueues, { clusterId });
  }

  /** DrainQueue, StopQueue or ResumeQueue. */
  setQueueState(verb: 'drain' | 'stop' | 'resume', hpcqueueId: string): Promise<QueueStateResponse> {
    const method = verb === 'drain' ? this.queues.drainQueue : verb === 'stop' ? this.queues.stopQueue : this.queues.resumeQueue;
    return this.unary(this.queues, method, { hpcqueueId });
  }

  /**
   * Follows WatchJob: yields the job as it is now, then one message per state change, and ends
   * after a terminal state. `timeoutMs` bounds the whole stream (none by default).
   */
  async *watchJob(jobId: string, includeHistory: boolean, timeoutMs?: number): AsyncGenerator<WatchJobResponse> {
    const stream = this.jobs.watchJob({ jobId, includeHistory }, this.metadata(), this.callOptions(timeoutMs));
    let finished = false;
    try {
      for await (const message of stream) yield message as WatchJobResponse;
      finished = true;
    } finally {
      if (!finished) {
        // The consumer stopped early: end the call; its CANCELLED error is expected, not a failure.
        stream.on('error', () => {});
        stream.cancel();
      }
    }
  }

  whoAmI(): Promise<WhoAmIResponse> {
    return this.unary(this.access, this.access.whoAmI, {});
  }

  createToken(user: string, lifespanSeconds: number): Promise<CreateTokenResponse> {
    return this.unary(this.access, this.access.createToken, { user, lifespanSeconds });
  }

  reconfigure(): Promise<ReconfigureResponse> {
    return this.unary(this.access, this.access.reconfigure, {});
  }

  /** Sets the daemon's log level ('' = only read it); admins. */
  setLogLevel(level: string): Promise<SetLogLevelResponse> {
    return this.unary(this.access, this.access.setLogLevel, { level });
  }

  createSchedule(request: CreateScheduleRequest): Promise<Schedule> {
    return this.unary(this.schedules, this.schedules.createSchedule, request);
  }

  getSchedule(scheduleId: string, eventCount = 0): Promise<Schedule> {
    return this.unary(this.schedules, this.schedules.getSchedule, { scheduleId, eventCount });
  }

  listSchedules(pageToken = ''): Promise<ListSchedulesResponse> {
    return this.unary(this.schedules, this.schedules.listSchedules, { pageSize: 0, pageToken });
  }

  updateSchedule(request: UpdateScheduleRequest): Promise<Schedule> {
    return this.unary(this.schedules, this.schedules.updateSchedule, request);
  }

  deleteSchedule(scheduleId: string): Promise<DeleteScheduleResponse> {
    return this.unary(this.schedules, this.schedules.deleteSchedule, { scheduleId });
  }

  triggerSchedule(request: TriggerScheduleRequest): Promise<SubmitJobResponse> {
    return this.unary(this.schedules, this.schedules.triggerSchedule, request);
  }

  /** Follows WatchSchedule: the schedule now, then one message per event; ends when it is deleted. */
  async *watchSchedule(scheduleId: string, includeHistory: boolean, timeoutMs?: number): AsyncGenerator<WatchScheduleResponse> {
    const stream = this.schedules.watchSchedule({ scheduleId, includeHistory }, this.metadata(), this.callOptions(timeoutMs));
    let finished = false;
    try {
      for await (const message of stream) yield message as WatchScheduleResponse;
      finished = true;
    } finally {
      if (!finished) {
        // As in watchJob: the consumer stopped early, so its CANCELLED error is expected.
        stream.on('error', () => {});
        stream.cancel();
      }
    }
  }

  close(): void {
    this.jobService?.close();
    this.queueService?.close();
    this.accessService?.close();
    this.scheduleService?.close();
  }
}
