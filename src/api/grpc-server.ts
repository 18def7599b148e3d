/**
 * The gRPC server: JobService, QueueService, grpc.health.v1.Health and server reflection, bound to
 * the configured addresses. A unix socket is created mode 0600 (only root, or the daemon's own
 * user, may connect until authentication exists).
 *
 * Lifecycle: start() binds and serves (health SERVING); setNotServing() begins a shutdown (health
 * NOT_SERVING, for good); stop() drains in-flight RPCs until the deadline (tryShutdown), then
 * forces (forceShutdown). Idempotent. While serving, setJobStoreWritable(false) marks JobService
 * and the server as a whole NOT_SERVING (submits would fail); QueueService stays SERVING.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { JobServiceService, type JobServiceServer } from '../gen/hpcq/v1/job_service.js';
import { QueueServiceService, type QueueServiceServer } from '../gen/hpcq/v1/queue_service.js';
import type { Logger } from '../logger.js';
import { decodeSubmitJobRequest } from './submit-decoder.js';

/** Largest request accepted: SubmitJob carries at most ~70 KiB (64 KiB cmd_line + paths). */
const MAX_RECEIVE_BYTES = 1024 * 1024;
/** Bounds concurrent RPCs per connection (RELIABILITY I11). */
const MAX_CONCURRENT_STREAMS = 1000;

/** Health-checked names: the server as a whole ('') and each service. */
const HEALTH_NAMES = ['', 'hpcq.v1.JobService', 'hpcq.v1.QueueService'] as const;

function protoDir(): string {
  // dist/api/ or src/api/ -> package root -> proto/
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
}

export class GrpcServer {
  private readonly server = new Server({
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    // Close idle connections after 5 minutes (RELIABILITY I12).
    'grpc.max_connection_idle_ms': 5 * 60_000,
  });
  private readonly health = new HealthImplementation(Object.fromEntries(HEALTH_NAMES.map((name) => [name, 'NOT_SERVING'])));
  private state: 'created' | 'serving' | 'draining' | 'stopped' = 'created';
  private jobStoreWritable = true;
  /** Addresses actually bound (a TCP port 0 resolves to the chosen port). */
  readonly boundAddresses: string[] = [];

  constructor(
    private readonly addresses: readonly string[],
    services: { jobs: JobServiceServer; queues: QueueServiceServer },
    private readonly log: Logger,
  ) {
    this.server.addService(
      { ...JobServiceService, submitJob: { ...JobServiceService.submitJob, requestDeserialize: (b: Buffer) => decodeSubmitJobRequest(b) } },
      services.jobs,
    );
    this.server.addService(QueueServiceService, services.queues);
    this.health.addToServer(this.server);
    const definition = loadSync(['hpcq/v1/job_service.proto', 'hpcq/v1/queue_service.proto'], { includeDirs: [protoDir()] });
    new ReflectionService(definition).addToServer(this.server);
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`GrpcServer.start() in state ${this.state}`);
    for (const address of this.addresses) {
      const socket = unixSocketPath(address);
      if (socket !== undefined) removeStaleSocket(socket);
      else this.log.warn({ address }, 'listening on TCP WITHOUT authentication or TLS: anyone who can reach this port can run jobs as any user');
      const port = await new Promise<number>((resolve, reject) =>
        this.server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      if (socket !== undefined) chmodSync(socket, 0o600);
      this.boundAddresses.push(socket !== undefined ? address : address.replace(/:\d+$/, `:${port}`));
    }
    this.state = 'serving';
    this.applyHealth();
    this.log.info({ addresses: this.boundAddresses }, 'gRPC server listening');
  }

  /** Marks the server NOT_SERVING for good (first step of shutdown) without closing it. */
  setNotServing(): void {
    if (this.state === 'serving' || this.state === 'created') this.state = 'draining';
    for (const name of HEALTH_NAMES) this.health.setStatus(name, 'NOT_SERVING');
  }

  /** Whether the job store takes writes; see the lifecycle above. */
  setJobStoreWritable(writable: boolean): void {
    this.jobStoreWritable = writable;
    if (this.state === 'serving') this.applyHealth();
  }

  private applyHealth(): void {
    for (const name of HEALTH_NAMES) {
      const serving = this.jobStoreWritable || name === 'hpcq.v1.QueueService';
      this.health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
    }
  }

  async stop(deadlineMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.setNotServing();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn('RPCs still in flight at the shutdown deadline; closing them');
        this.server.forceShutdown();
        resolve();
      }, deadlineMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    for (const address of this.boundAddresses) {
      const socket = unixSocketPath(address);
      if (socket !== undefined) removeStaleSocket(socket);
    }
  }
}

/** The socket path of a `unix:` address, else undefined (TCP). */
function unixSocketPath(address: string): string | undefined {
  return address.startsWith('unix:') ? address.slice('unix:'.length) : undefined;
}

/** Removes a leftover socket file; refuses to delete anything that is not a socket. */
function removeStaleSocket(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`listen path ${path} exists and is not a socket; refusing to remove it`);
  unlinkSync(path);
}
