/** hpcq.v1.QueueService: every caller sees every queue and its totals, and whether it may use it. */
import type { DaemonConfig } from '../config/daemon-config.js';
import { isAdmin, queueAllows } from '../core/access-policy.js';
import { clusterNotFound } from '../core/errors.js';
import type { EnforcementMode } from '../core/job.js';
import type { JobEngine } from '../engine/job-engine.js';
import type { ListQueuesRequest, ListQueuesResponse, QueueServiceServer, QueueStateRequest, QueueStateResponse } from '../gen/hpcq/v1/queue_service.js';
import type { QueueState } from '../core/ports.js';
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
        queues: await Promise.all(
          clusters.flatMap((c) =>
            c.queues.map(async (q) =>
              queueToProto(q, engine.queueCounts(q.hpcqueueId), admin || queueAllows(q, principal.account), engine.queueState(q.hpcqueueId), {
                kind: c.backend,
                partition: await engine.partitionOf(q.hpcqueueId),
              }),
            ),
          ),
        ),
        enforcement,
        nodeCores: current.nodeCores,
        nodeMemMb: current.nodeMemMb,
        freeCores: current.nodeCores - used.cores,
        freeMemMb: current.nodeMemMb - used.memMb,
      };
    }),
    drainQueue: setState('DrainQueue', 'draining'),
    stopQueue: setState('StopQueue', 'stopped'),
    resumeQueue: setState('ResumeQueue', 'open'),
  };

  function setState(method: string, state: QueueState) {
    return unary<QueueStateRequest, QueueStateResponse>(ctx, { method, mutating: true }, async (req, principal) => {
      await engine.setQueueState(req.hpcqueueId, state, principal);
      const q = config().clusters.flatMap((c) => c.queues).find((x) => x.hpcqueueId === req.hpcqueueId)!;
      return { queue: queueToProto(q, engine.queueCounts(q.hpcqueueId), true, engine.queueState(q.hpcqueueId)) };
    });
  }
}
