/** hpcq.v1.QueueService. */
import type { DaemonConfig } from '../config/daemon-config.js';
import { clusterNotFound } from '../core/errors.js';
import type { EnforcementMode } from '../core/job.js';
import type { JobEngine } from '../engine/job-engine.js';
import type { ListQueuesRequest, ListQueuesResponse, QueueServiceServer } from '../gen/hpcq/v1/queue_service.js';
import type { Logger } from '../logger.js';
import { queueToProto } from './convert.js';
import { unary } from './handlers.js';

export function createQueueService(engine: JobEngine, config: DaemonConfig, enforcement: EnforcementMode, log: Logger): QueueServiceServer {
  return {
    listQueues: unary<ListQueuesRequest, ListQueuesResponse>(log, 'ListQueues', async (req) => {
      const clusters = config.clusters.filter((c) => !req.clusterId || c.clusterId === req.clusterId);
      if (clusters.length === 0) throw clusterNotFound(req.clusterId);
      const used = engine.usedResources();
      return {
        queues: clusters.flatMap((c) => c.queues.map((q) => queueToProto(q, engine.queueCounts(q.hpcqueueId)))),
        enforcement,
        nodeCores: config.nodeCores,
        nodeMemMb: config.nodeMemMb,
        freeCores: config.nodeCores - used.cores,
        freeMemMb: config.nodeMemMb - used.memMb,
      };
    }),
  };
}
