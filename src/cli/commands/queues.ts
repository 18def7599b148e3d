/** `hpcq queues`: the queues table (ListQueues) and the node line. */
import type { Command } from 'commander';
import { ListQueuesResponse, QueueStateResponse } from '../../gen/hpcq/v1/queue_service.js';
import { action, addGlobalOptions } from '../context.js';
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
        'With --json: the ListQueuesResponse.',
    )
    .option('--cluster-id <id>', 'only this cluster');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts) => {
      const res = await ctx.client.listQueues((opts.clusterId as string | undefined) ?? '');
      if (ctx.json) ctx.printJson(protoJson(ListQueuesResponse, res));
      else ctx.out(renderQueues(res));
      return 0;
    }),
  );
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
