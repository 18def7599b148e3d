/** The access section of the embedded default configuration, spelled out for the unit tests. */
import type { AccessConfig } from '../../src/config/daemon-config.js';

export const DEFAULT_ACCESS: AccessConfig = {
  adminGroups: [],
  minUid: 1000,
  allowRootGroup: false,
  jobVisibility: 'own',
  principals: [],
  rateLimit: { perSecond: 20, burst: 40, adminsExempt: true },
  maxConnections: 4096,
  maxConnectionsPerUid: 128,
  maxStreamsPerPrincipal: 256,
  firstRequestTimeoutMs: 10_000,
  auditLogPath: '/var/lib/hpcq/audit.log',
};
