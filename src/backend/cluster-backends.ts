/** The backends of the configured clusters that another scheduler runs (backend: slurm). */
import type { DaemonConfig } from '../config/daemon-config.js';
import type { ClusterBackend, UserDirectory } from '../core/ports.js';
import type { Logger } from '../logger.js';
import { SlurmBackend } from './slurm/slurm-backend.js';
import { SlurmCommands } from './slurm/slurm-commands.js';

export function createClusterBackends(config: DaemonConfig, users: UserDirectory, log: Logger): Map<string, ClusterBackend> {
  const backends = new Map<string, ClusterBackend>();
  for (const cluster of config.clusters) {
    if (cluster.backend !== 'slurm' || !cluster.slurm) continue;
    const s = cluster.slurm;
    const commands = new SlurmCommands({
      ...(s.binDir !== undefined ? { binDir: s.binDir } : {}),
      env: s.conf !== undefined ? { SLURM_CONF: s.conf } : {},
      timeoutMs: s.commandTimeoutSeconds * 1000,
    });
    backends.set(cluster.clusterId, new SlurmBackend({ clusterId: cluster.clusterId, commands, users, log, pollIntervalMs: s.pollIntervalSeconds * 1000 }));
  }
  return backends;
}
