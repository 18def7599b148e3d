/** `hpcq hold` and `hpcq release`: keep pending jobs from starting, and let them start again (scontrol hold/release). */
import type { Command } from 'commander';
import { HoldJobResponse, ReleaseJobResponse } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions } from '../context.js';
import { describeError, renderFailure } from '../errors.js';
import { stateName } from '../job-view.js';
import { protoJson } from '../proto-json.js';

export function registerHold(program: Command): void {
  for (const verb of ['hold', 'release'] as const) {
    const cmd = program
      .command(verb)
      .summary(verb === 'hold' ? 'keep pending jobs from starting (scontrol hold)' : 'let held jobs start again (scontrol release)')
      .description(
        verb === 'hold'
          ? 'Hold each job given: a pending job (or the pending instances of an array job) is not\nstarted until released. An admin\'s hold (JobHeldAdmin) can be released only by an admin.'
          : 'Release each held job given (or the held instances of an array job).',
      )
      .argument('<job...>', 'job_id, <array job id>_<index> or hpcjob_uuid of each job');
    addGlobalOptions(cmd);
    cmd.action(
      action(async (ctx, _opts, ids: string[]) => {
        let exit = 0;
        for (const id of ids) {
          try {
            const res = verb === 'hold' ? await ctx.client.holdJob(id) : await ctx.client.releaseJob(id);
            if (ctx.json) ctx.printJson(verb === 'hold' ? protoJson(HoldJobResponse, res) : protoJson(ReleaseJobResponse, res));
            else if (res.job) ctx.out(`job ${res.job.jobId}: ${stateName(res.job.state)} (${res.job.reason || '-'})\n`);
          } catch (err) {
            const failure = describeError(err, { address: ctx.address, timeoutMs: ctx.timeoutMs });
            ctx.err(renderFailure(failure, ctx.json));
            exit = exit === 0 || exit === failure.exitCode ? failure.exitCode : 1;
          }
        }
        return exit;
      }),
    );
  }
}
