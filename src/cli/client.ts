/**
 * A thin promisified client of hpcqd's public gRPC API (the generated JobService and QueueService
 * clients), with an optional per-call deadline.
 */
import { credentials, Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import {
  JobServiceClient,
  type CancelJobResponse,
  type GetJobResponse,
  type ListJobsRequest,
  type ListJobsResponse,
  type SubmitJobRequest,
  type SubmitJobResponse,
  type WatchJobResponse,
} from '../gen/hpcq/v1/job_service.js';
import { QueueServiceClient, type ListQueuesResponse } from '../gen/hpcq/v1/queue_service.js';

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export class HpcqClient {
  private jobService: InstanceType<typeof JobServiceClient> | undefined;
  private queueService: InstanceType<typeof QueueServiceClient> | undefined;

  constructor(
    readonly address: string,
    /** Deadline of each unary call, ms; undefined = none. */
    readonly timeoutMs?: number,
  ) {}

  private get jobs(): InstanceType<typeof JobServiceClient> {
    this.jobService ??= new JobServiceClient(this.address, credentials.createInsecure());
    return this.jobService;
  }

  private get queues(): InstanceType<typeof QueueServiceClient> {
    this.queueService ??= new QueueServiceClient(this.address, credentials.createInsecure());
    return this.queueService;
  }

  private callOptions(timeoutMs: number | undefined): Partial<CallOptions> {
    return timeoutMs === undefined ? {} : { deadline: new Date(Date.now() + timeoutMs) };
  }

  private unary<Req, Res>(client: object, method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(client, request, new Metadata(), this.callOptions(this.timeoutMs), (err, res) => (err ? reject(err) : resolve(res)));
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

  listQueues(clusterId = ''): Promise<ListQueuesResponse> {
    return this.unary(this.queues, this.queues.listQueues, { clusterId });
  }

  /**
   * Follows WatchJob: yields the job as it is now, then one message per state change, and ends
   * after a terminal state. `timeoutMs` bounds the whole stream (none by default).
   */
  async *watchJob(jobId: string, includeHistory: boolean, timeoutMs?: number): AsyncGenerator<WatchJobResponse> {
    const stream = this.jobs.watchJob({ jobId, includeHistory }, new Metadata(), this.callOptions(timeoutMs));
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

  close(): void {
    this.jobService?.close();
    this.queueService?.close();
  }
}
