/** `hpcq queues`: the queues table (ListQueues) and the node line. */
import type { Command } from 'commander';
import { ListQueuesResponse } from '../../gen/hpcq/v1/queue_service.js';
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
