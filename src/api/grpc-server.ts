/**
 * The gRPC server: JobService, QueueService, AccessService, grpc.health.v1.Health and server
 * reflection. It binds no port itself: src/access/connections.ts accepts every connection (reading
 * the peer's identity) and injects it here.
 *
 * Lifecycle: start() listens and serves (health SERVING); setNotServing() begins a shutdown (health
 * NOT_SERVING, for good); stop() stops accepting, drains in-flight RPCs until the deadline
 * (tryShutdown), then forces (forceShutdown). Idempotent. While serving, setJobStoreWritable(false)
 * marks JobService and the server as a whole NOT_SERVING (submits would fail); QueueService and
 * AccessService stay SERVING.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, type ServerInterceptingCall, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { HealthImplementation } from 'grpc-health-check';
import type { AuditLog } from '../access/audit-log.js';
import { ConnectionRegistry, type TlsMaterial } from '../access/connections.js';
import type { AccessConfig, TlsConfig } from '../config/daemon-config.js';
import { AccessServiceService, type AccessServiceServer } from '../gen/hpcq/v1/access_service.js';
import { JobServiceService, type JobServiceServer } from '../gen/hpcq/v1/job_service.js';
import { QueueServiceService, type QueueServiceServer } from '../gen/hpcq/v1/queue_service.js';
import { ScheduleServiceService, type ScheduleServiceServer } from '../gen/hpcq/v1/schedule_service.js';
import type { Logger } from '../logger.js';
import { tolerantDecoder } from './handlers.js';
import { addLazyReflection } from './lazy-reflection.js';
import { decodeSubmitJobRequest } from './submit-decoder.js';

/** Largest request accepted: SubmitJob carries at most ~70 KiB (64 KiB cmd_line + paths). */
const MAX_RECEIVE_BYTES = 1024 * 1024;
/**
 * Concurrent RPCs per connection (RELIABILITY I11), as nginx's and Envoy's defaults (128, 100):
 * HTTP/2 clients queue further calls until one ends. Every open call holds its stream, grpc-js
 * call and request in the daemon; 1,000 submits sent at once from one connection took the
 * daemon's peak RSS from 114 to 130 MiB with a limit of 1000 instead of 128, for no more jobs/s.
 */
export const MAX_CONCURRENT_STREAMS = 128;

/** Health-checked names: the server as a whole ('') and each service. */
const HEALTH_NAMES = ['', 'hpcq.v1.JobService', 'hpcq.v1.QueueService', 'hpcq.v1.AccessService', 'hpcq.v1.ScheduleService'] as const;

function protoDir(): string {
  // dist/api/ or src/api/ -> package root -> proto/
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
}

export class GrpcServer {
  private readonly server: Server = new Server({
    // Every call, health and reflection included, shows its connection is in use (the
    // first-call deadline closes only connections that never make one). The call itself is
    // passed on: a ServerInterceptingCall around it would only relay every event. grpc-js's type
    // asks for a ServerInterceptingCall, but it chains interceptors from its own base call, which
    // is none either: any ServerInterceptingCallInterface works.
    interceptors: [
      (_method, call) => {
        this.connections.markUsed(call.getPeer());
        return call as ServerInterceptingCall;
      },
    ],
    'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    // Close idle connections after 5 minutes (RELIABILITY I12).
    'grpc.max_connection_idle_ms': 5 * 60_000,
    // Ping every connection each minute; one that cannot answer within 20 s (a peer gone, or one
    // holding half a frame) is closed.
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
  });
  private readonly clusterHealth = new Map<string, boolean>();
  private readonly health = new HealthImplementation(Object.fromEntries(HEALTH_NAMES.map((name) => [name, 'NOT_SERVING'])));
  private state: 'created' | 'serving' | 'draining' | 'stopped' = 'created';
  private jobStoreWritable = true;
  /** Accepts and identifies every connection; the access gate asks it who is calling. */
  readonly connections: ConnectionRegistry;

  constructor(
    private readonly addresses: readonly string[],
    private readonly tls: TlsConfig | undefined,
    limits: AccessConfig,
    audit: AuditLog,
    private readonly log: Logger,
  ) {
    this.connections = new ConnectionRegistry(this.server.createConnectionInjector(ServerCredentials.createInsecure()), limits, audit, log);
    this.health.addToServer(this.server);
    addLazyReflection(this.server, () =>
      loadSync(['hpcq/v1/job_service.proto', 'hpcq/v1/queue_service.proto', 'hpcq/v1/access_service.proto', 'hpcq/v1/schedule_service.proto'], { includeDirs: [protoDir()] }),
    );
  }

  /** Adds the hpcq services; every request decoder answers a malformed message with INVALID_ARGUMENT. */
  addServices(services: { jobs: JobServiceServer; queues: QueueServiceServer; access: AccessServiceServer; schedules: ScheduleServiceServer }): void {
    const jobs = { ...JobServiceService, submitJob: { ...JobServiceService.submitJob, requestDeserialize: decodeSubmitJobRequest } };
    this.server.addService(tolerant(jobs), services.jobs as unknown as UntypedServiceImplementation);
    this.server.addService(tolerant(QueueServiceService), services.queues as unknown as UntypedServiceImplementation);
    this.server.addService(tolerant(AccessServiceService), services.access as unknown as UntypedServiceImplementation);
    this.server.addService(tolerant(ScheduleServiceService), services.schedules as unknown as UntypedServiceImplementation);
  }

  get boundAddresses(): readonly string[] {
    return this.connections.boundAddresses;
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`GrpcServer.start() in state ${this.state}`);
    for (const address of this.addresses) {
      if (address.startsWith('unix:')) await this.connections.listenUnix(address.slice('unix:'.length));
      else await this.connections.listenTls(address, loadTlsMaterial(this.tls));
    }
    this.state = 'serving';
    this.applyHealth();
    this.log.info({ addresses: this.boundAddresses, mutualTls: this.tls?.clientCaFile !== undefined }, 'gRPC server listening');
  }

  /** Rereads the TLS files (on reload); new connections use them. */
  reloadTls(tls: TlsConfig | undefined): void {
    if (tls && this.addresses.some((a) => !a.startsWith('unix:'))) this.connections.setTls(loadTlsMaterial(tls));
  }

  /** Marks the server NOT_SERVING for good (first step of shutdown) without closing it. */
  setNotServing(): void {
    if (this.state === 'serving' || this.state === 'created') this.state = 'draining';
    for (const name of [...HEALTH_NAMES, ...this.clusterHealth.keys()]) this.health.setStatus(name, 'NOT_SERVING');
  }

  /**
   * The health of a cluster another scheduler runs, as `hpcq.cluster.<cluster_id>`: NOT_SERVING
   * while its scheduler does not answer (its jobs keep their states and nothing is handed to it).
   * The server's own health does not follow it: the other clusters are served.
   */
  setClusterHealth(clusterId: string, serving: boolean): void {
    const name = `hpcq.cluster.${clusterId}`;
    this.clusterHealth.set(name, serving);
    if (this.state === 'serving') this.health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
  }

  /** Whether the job store takes writes; see the lifecycle above. */
  setJobStoreWritable(writable: boolean): void {
    this.jobStoreWritable = writable;
    if (this.state === 'serving') this.applyHealth();
  }

  private applyHealth(): void {
    for (const [name, serving] of this.clusterHealth) this.health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
    for (const name of HEALTH_NAMES) {
      // Only submits (and ticks) need the job store; queues, identity and tokens are served without it.
      const serving = this.jobStoreWritable || (name !== '' && name !== 'hpcq.v1.JobService' && name !== 'hpcq.v1.ScheduleService');
      this.health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
    }
  }

  async stop(deadlineMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.setNotServing();
    this.connections.stop();
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
  }
}

/** A service definition whose request decoders never throw (see tolerantDecoder). */
function tolerant(definition: ServiceDefinition): ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [name, { ...method, requestDeserialize: tolerantDecoder(method.requestDeserialize) }]),
  ) as ServiceDefinition;
}

/** The server certificate, key and client CA; the key must be private to the daemon's user. */
function loadTlsMaterial(tls: TlsConfig | undefined): TlsMaterial {
  if (!tls) throw new Error('a TCP listener needs tls.cert_file and tls.key_file');
  const key = statSync(tls.keyFile);
  if ((key.mode & 0o077) !== 0) throw new Error(`tls.key_file ${tls.keyFile} is readable or writable by others (mode ${(key.mode & 0o777).toString(8)}); chmod 600 it`);
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ca: tls.clientCaFile === undefined ? undefined : readFileSync(tls.clientCaFile),
  };
}
