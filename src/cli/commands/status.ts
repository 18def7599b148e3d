/** `hpcq status`: the key: value view of one job (GetJob). */
import type { Command } from 'commander';
import { GetJobResponse } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions } from '../context.js';
import { renderJobStatus } from '../job-view.js';
import { protoJson } from '../proto-json.js';

export function registerStatus(program: Command): void {
  const cmd = program
    .command('status')
    .summary('show one job')
    .description('Show one job: state, reason, exit code and signal, times, queue, limits, enforcement, limit hit and usage.')
    .argument('<job>', 'job_id or hpcjob_uuid');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, _opts, id: string) => {
      const res = await ctx.client.getJob(id);
      if (ctx.json) ctx.printJson(protoJson(GetJobResponse, res));
      else if (res.job) ctx.out(renderJobStatus(res.job));
      return 0;
    }),
  );
}
