/**
 * The compiled configuration written back in the file's own snake_case keys, for `hpcqd --check`:
 * the effective configuration (defaults, file, environment, flags) as a file that loads back to
 * the same DaemonConfig, so an admin can read it, diff it or copy it.
 */
import { stringify } from 'yaml';
import type { DaemonConfig, QueueConfig } from './daemon-config.js';
import type { z } from 'zod';
import type { configSchema } from './schema.js';

/** What the file may say: the schema's input, with every value the compiled one. */
type ConfigFileInput = z.input<typeof configSchema>;

export function toConfigFile(config: DaemonConfig): ConfigFileInput {
  const { access, tls } = config;
  return {
    state_dir: config.stateDir,
    listen: [...config.listen],
    tls: tls ? { cert_file: tls.certFile, key_file: tls.keyFile, ...(tls.clientCaFile !== undefined && { client_ca_file: tls.clientCaFile }) } : {},
    access: {
      admin_groups: [...access.adminGroups],
      min_uid: access.minUid,
      allow_root_group: access.allowRootGroup,
      job_visibility: access.jobVisibility,
      principals: access.principals.map((p) => ({ name: p.name, run_users: [...p.runUsers], admin: p.admin })),
      rate_limit: { submits_per_second: access.rateLimit.perSecond, burst: access.rateLimit.burst, admins_exempt: access.rateLimit.adminsExempt },
      max_connections: access.maxConnections,
      max_connections_per_uid: access.maxConnectionsPerUid,
      max_streams_per_principal: access.maxStreamsPerPrincipal,
      first_request_timeout_seconds: access.firstRequestTimeoutMs / 1000,
      audit_log: access.auditLogPath,
    },
    kill_grace_seconds: config.killGraceSeconds,
    enforcement: config.enforcement,
    require_enforcement: config.requireEnforcement,
    clock_skew_seconds: config.clockSkewSeconds,
    max_array_count: config.maxArrayCount,
    job_umask: `0${config.jobUmask.toString(8).padStart(3, '0')}`,
    // The node's cores and memory as detected or configured; reserved_mem_mb only matters for
    // detection, which a non-zero mem_mb replaces, so it is left out.
    node: { cores: config.nodeCores, mem_mb: config.nodeMemMb },
    retention: { finished_job_max_age_days: config.retentionMaxAgeDays, schedule: config.retentionSchedule },
    // Always written, '' when off: the printed file names every key.
    metrics_listen: config.metricsListen ?? '',
    clusters: config.clusters.map((c) => ({
      cluster_id: c.clusterId,
      zone: c.zone,
      backend: c.backend,
      ...(c.slurm
        ? {
            slurm: {
              ...(c.slurm.binDir !== undefined ? { bin_dir: c.slurm.binDir } : {}),
              ...(c.slurm.conf !== undefined ? { conf: c.slurm.conf } : {}),
              poll_interval_seconds: c.slurm.pollIntervalSeconds,
              command_timeout_seconds: c.slurm.commandTimeoutSeconds,
            },
          }
        : {}),
      queues: c.queues.map(toQueueFile),
    })),
  };
}

function toQueueFile(q: QueueConfig) {
  return {
    hpcqueue_id: q.hpcqueueId,
    scheduler_queue_name: q.schedulerQueueName,
    default: q.isDefault,
    priority: q.priority,
    // The effective maxima (0 in the file means the node's, already resolved).
    max_cores: q.maxCores,
    default_cores: q.defaultCores,
    max_mem_mb: q.maxMemMb,
    default_mem_mb: q.defaultMemMb,
    max_time_seconds: q.maxTimeSeconds,
    default_time_seconds: q.defaultTimeSeconds,
    max_running: q.maxRunning,
    max_pending: q.maxPending,
    max_running_per_user: q.maxRunningPerUser,
    max_pending_per_user: q.maxPendingPerUser,
    allowed_groups: [...q.allowedGroups],
    allowed_users: [...q.allowedUsers],
  };
}

/** The effective configuration as YAML (plain numbers: seconds, days, MiB), no line folding. */
export function printConfig(config: DaemonConfig): string {
  return stringify(toConfigFile(config), { lineWidth: 0 });
}
