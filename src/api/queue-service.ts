/** hpcq.v1.QueueService: every caller sees every queue and its totals, and whether it may use it. */
import type { DaemonConfig } from '../config/daemon-config.js';
import { isAdmin, queueAllows } from '../core/access-policy.js';
import { clusterNotFound } from '../core/errors.js';
import type { EnforcementMode } from '../core/job.js';
import type { JobEngine } from '../engine/job-engine.js';
import type { ListQueuesRequest, ListQueuesResponse, QueueServiceServer } from '../gen/hpcq/v1/queue_service.js';
import { queueToProto } from './convert.js';
import { unary, type HandlerContext } from './handlers.js';

export function createQueueService(engine: JobEngine, config: () => DaemonConfig, daemonUid: number, enforcement: EnforcementMode, ctx: HandlerContext): QueueServiceServer {
  return {
    listQueues: unary<ListQueuesRequest, ListQueuesResponse>(ctx, { method: 'ListQueues' }, async (req, principal) => {
      const current = config();
      const clusters = current.clusters.filter((c) => !req.clusterId || c.clusterId === req.clusterId);
      if (clusters.length === 0) throw clusterNotFound(req.clusterId);
      const used = engine.usedResources();
      const admin = isAdmin(principal, { access: current.access, daemonUid });
      return {
        queues: clusters.flatMap((c) => c.queues.map((q) => queueToProto(q, engine.queueCounts(q.hpcqueueId), admin || queueAllows(q, principal.account)))),
        enforcement,
        nodeCores: current.nodeCores,
        nodeMemMb: current.nodeMemMb,
        freeCores: current.nodeCores - used.cores,
        freeMemMb: current.nodeMemMb - used.memMb,
      };
    }),
  };
}
