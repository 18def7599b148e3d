/** `hpcq cancel`: cancels each job given; non-zero exit if any cancel failed. */
import type { Command } from 'commander';
import { JobState, type Job } from '../../gen/hpcq/v1/job.js';
import { CancelJobResponse } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions } from '../context.js';
import { describeError, failureJson, renderFailure } from '../errors.js';
import { exitSummary, isTerminal, stateName } from '../job-view.js';
import { protoJson } from '../proto-json.js';
import { followJob } from './watch.js';

export function registerCancel(program: Command): void {
  const cmd = program
    .command('cancel')
    .alias('scancel')
    .summary('cancel jobs')
    .description(
      'Cancel each job given. A pending job is CANCELLED at once; a running one\n' +
        'stays RUNNING until its processes are gone (--wait follows it to the end).\n' +
        'Prints one line per job; failures go to stderr. Exit status: 0 if every\n' +
        'cancel was accepted, 2 if every failure was a client error (unknown job,\n' +
        'already finished), else 1.\n' +
        'With --json: a JSON array of CancelJobResponse, one per accepted cancel (the\n' +
        'final job with --wait); each failure is a JSON object {code, status, reason,\n' +
        'field, message, job_id} on stderr.',
    )
    .argument('<job...>', 'job_id or hpcjob_uuid of each job')
    .option('--wait', 'wait until each cancelled job has reached its final state');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts, ids: string[]) => {
      const responses: unknown[] = [];
      let exit = 0;
      for (const id of ids) {
        try {
          let job = (await ctx.client.cancelJob(id)).job;
          if (job && opts.wait && !isTerminal(job.state)) job = (await followJob(ctx, job.jobId, { history: false })).job;
          if (ctx.json) responses.push(protoJson(CancelJobResponse, { job }));
          else if (job) ctx.out(`${cancelLine(job)}\n`);
        } catch (err) {
          const failure = describeError(err, { address: ctx.address, timeoutMs: ctx.timeoutMs });
          if (ctx.json) ctx.err(`${JSON.stringify({ ...failureJson(failure), job_id: id })}\n`);
          else ctx.err(renderFailure(failure, false, `${id}: `));
          exit = exit === 1 || failure.exitCode === 1 ? 1 : 2;
        }
      }
      if (ctx.json) ctx.printJson(responses);
      return exit;
    }),
  );
}

/** `job 12 (hpcjob-abc12345): CANCELLED` / `...: RUNNING, cancel requested; ...`. */
export function cancelLine(job: Job): string {
  const head = `job ${job.jobId} (${job.hpcjobUuid}): ${stateName(job.state, job.jobStatus)}`;
  if (job.state === JobState.JOB_STATE_CANCELLED) return head;
  if (!isTerminal(job.state)) return `${head}, cancel requested; it ends once its processes are gone (hpcq watch ${job.jobId})`;
  return `${head} (${exitSummary(job)})`;
}
