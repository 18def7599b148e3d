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
}

export interface ClusterConfig {
  clusterId: string;
  zone: string;
  queues: readonly QueueConfig[];
}

export interface DaemonConfig {
  stateDir: string;
  /** gRPC addresses as grpc-js takes them: `unix:/abs/path` or `host:port`. */
  listen: readonly string[];
  allowRemoteTcp: boolean;
  killGraceSeconds: number;
  enforcement: EnforcementRequest;
  requireEnforcement: boolean;
  clockSkewSeconds: number;
  jobUmask: number;
  nodeCores: number;
  nodeMemMb: number;
  retentionMaxAgeDays: number;
  retentionSchedule: string;
  clusters: readonly ClusterConfig[];
}
