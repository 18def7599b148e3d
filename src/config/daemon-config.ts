/** The compiled, frozen configuration every component receives from the composition root. */
import type { EnforcementRequest } from '../core/policy.js';

export interface QueueConfig {
  clusterId: string;
  zone: string;
  hpcqueueId: string;
  schedulerQueueName: string;
  isDefault: boolean;
  priority: number;
  maxCores: number;
  defaultCores: number;
  maxMemMb: number;
  defaultMemMb: number;
  maxTimeSeconds: number;
  defaultTimeSeconds: number;
  /** 0 = unlimited. */
  maxRunning: number;
  maxPending: number;
  /** Per user; 0 = no cap. */
  maxRunningPerUser: number;
  maxPendingPerUser: number;
  /** Groups whose members may use the queue; with allowedUsers empty too, everyone may. */
  allowedGroups: readonly string[];
  allowedUsers: readonly string[];
}

export interface ClusterConfig {
  clusterId: string;
  zone: string;
  /** local: this node runs the jobs; slurm: Slurm does (partition = scheduler_queue_name). */
  backend: 'local' | 'slurm';
  slurm?: SlurmConfig;
  queues: readonly QueueConfig[];
}

export interface SlurmConfig {
  binDir?: string;
  conf?: string;
  pollIntervalSeconds: number;
  commandTimeoutSeconds: number;
}

export interface DaemonConfig {
  stateDir: string;
  /** gRPC addresses as grpc-js takes them: `unix:/abs/path` or `host:port`. */
  listen: readonly string[];
  /** TLS for TCP listeners; undefined when only unix sockets are configured. */
  tls: TlsConfig | undefined;
  /** host:port serving /metrics (plain HTTP); absent = no metrics. */
  metricsListen?: string;
  access: AccessConfig;
  killGraceSeconds: number;
  enforcement: EnforcementRequest;
  requireEnforcement: boolean;
  clockSkewSeconds: number;
  /** Most instances of one array job. */
  maxArrayCount: number;
  jobUmask: number;
  nodeCores: number;
  nodeMemMb: number;
  retentionMaxAgeDays: number;
  /** node-cron expression of the purge, or '' for every hour at minute 17. */
  retentionSchedule: string;
  clusters: readonly ClusterConfig[];
}

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  clientCaFile: string | undefined;
}

/** A principal named in the access policy (a certificate subject, or a local account). */
export interface PrincipalRule {
  name: string;
  /** User names, or `@group` for every member of the group. */
  runUsers: readonly string[];
  admin: boolean;
}

export interface AccessConfig {
  adminGroups: readonly string[];
  minUid: number;
  allowRootGroup: boolean;
  jobVisibility: 'own' | 'all';
  principals: readonly PrincipalRule[];
  rateLimit: { perSecond: number; burst: number; adminsExempt: boolean };
  maxConnections: number;
  maxConnectionsPerUid: number;
  maxStreamsPerPrincipal: number;
  firstRequestTimeoutMs: number;
  auditLogPath: string;
}
