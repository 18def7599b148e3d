/** `hpcq queues`: the queues table (ListQueues) and the node line. */
import type { Command } from 'commander';
import { ListQueuesResponse, QueueStateResponse, type Queue } from '../../gen/hpcq/v1/queue_service.js';
import { action, addGlobalOptions, optionParser } from '../context.js';
import { renderTable } from '../format.js';
import { commaList, nodeName } from '../job-query.js';
import { renderQueues } from '../job-view.js';
import { protoJson } from '../proto-json.js';

export function registerQueues(program: Command): void {
  const cmd = program
    .command('queues')
    .alias('sinfo')
    .summary('list queues and node resources')
    .description(
      'List the configured queues: cluster, hpcqueue_id, scheduler_queue_name,\n' +
        'default, priority; CORES, MEM and TIME as default/maximum; MAXRUN and\n' +
        'MAXPEND limits (- = none); PENDING and RUNNING job counts. Then the node\n' +
        'line: enforcement, free/total cores and memory.\n' +
        'With -N: one line per node and queue, as sinfo -N: NODELIST NODES\n' +
        'PARTITION STATE.\n' +
        'With --json: the ListQueuesResponse.',
    )
    .helpOption('--help', 'display help for command') // -h is sinfo's --noheader
    .option('--cluster-id <id>', 'only this cluster')
    .option('-p, --partition <queues>', 'only these queues: hpcqueue_id or scheduler_queue_name (comma list)', optionParser(commaList))
    .option('-N, --Node', 'node-oriented lines, as sinfo -N')
    .option('-h, --noheader', 'do not print the header line');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts) => {
      const res = await ctx.client.listQueues((opts.clusterId as string | undefined) ?? '');
      const wanted = opts.partition as string[] | undefined;
      if (wanted) res.queues = res.queues.filter((q) => wanted.includes(q.hpcqueueId) || wanted.includes(q.schedulerQueueName));
      if (ctx.json) {
        ctx.printJson(protoJson(ListQueuesResponse, res));
        return 0;
      }
      const text = opts.Node ? renderNodes(res, nodeName(ctx.address)) : renderQueues(res);
      ctx.out(opts.noheader ? text.slice(text.indexOf('\n') + 1) : text);
      return 0;
    }),
  );
}

/**
 * sinfo -N: this node once per local queue (its state from the queue's and the node's: drain, down,
 * idle, mix or alloc), and a Slurm queue's partition with its node count and state.
 */
export function renderNodes(res: ListQueuesResponse, node: string): string {
  const usage = res.freeCores >= res.nodeCores ? 'idle' : res.freeCores <= 0 ? 'alloc' : 'mix';
  const stateOf = (q: Queue) => (q.state === 'draining' ? 'drain' : q.state === 'stopped' ? 'down' : usage);
  const rows = res.queues.map((q) => {
    const partition = `${q.schedulerQueueName}${q.isDefault ? '*' : ''}`;
    // hpcq does not know the node names of a Slurm partition: the cluster stands for them.
    if (q.backend === 'slurm') return [q.clusterId, String(q.partitionNodes), partition, q.partitionState || 'unknown'];
    return [node, '1', partition, stateOf(q)];
  });
  return renderTable(['NODELIST', 'NODES', 'PARTITION', 'STATE'], rows, ['left', 'right', 'left', 'left']);
}

/** `hpcq queue drain|stop|resume <hpcqueue_id>`: Slurm's partition DRAIN, DOWN and UP (admins). */
export function registerQueueState(program: Command): void {
  const queue = program.command('queue').summary('drain, stop or resume a queue (admins)');
  const meaning = {
    drain: 'take no new jobs; start those already queued (Slurm DRAIN)',
    stop: 'take jobs but start none (Slurm DOWN); pending reason QueueStopped',
    resume: 'open the queue again',
  } as const;
  for (const verb of ['drain', 'stop', 'resume'] as const) {
    const cmd = queue.command(verb).summary(meaning[verb]).argument('<hpcqueue_id>', 'the queue');
    addGlobalOptions(cmd);
    cmd.action(
      action(async (ctx, _opts, id: string) => {
        const res = await ctx.client.setQueueState(verb, id);
        if (ctx.json) ctx.printJson(protoJson(QueueStateResponse, res));
        else ctx.out(`queue ${res.queue?.hpcqueueId}: ${res.queue?.state}\n`);
        return 0;
      }),
    );
  }
}
