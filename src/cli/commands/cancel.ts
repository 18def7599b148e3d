/**
 * `hpcq cancel` (alias `scancel`): cancels the jobs named and those matching scancel's filters
 * (-u, --me, -n, -t, -p) with one CancelJobs request, so no job can start between the choice and
 * the cancel; non-zero exit if any job could not be cancelled.
 */
import { status } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { constants } from 'node:os';
import { JobState, type Job } from '../../gen/hpcq/v1/job.js';
import { CancelJobResponse, type CancelFailure, type CancelJobsRequest } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, type CommandContext } from '../context.js';
import { describeError, exitCodeForStatus, failureJson, renderFailure, statusName, UsageError, type Failure } from '../errors.js';
import { commaList, selectedUsers } from '../job-query.js';
import { exitSummary, isTerminal, parseStates, stateName } from '../job-view.js';
import { protoJson } from '../proto-json.js';
import { followJob } from './watch.js';

/** A job that was not cancelled, and why. */
type JobFailure = Failure & { jobId: string };

export function registerCancel(program: Command): void {
  const cmd = program
    .command('cancel')
    .alias('scancel')
    .summary('cancel jobs, by id or by filter (scancel-like)')
    .description(
      'Cancel the jobs given and every pending or running job matching all the\n' +
        'filters (-u, --me, -n, -p; -t narrows them), all in one request: none of them\n' +
        'can start in between. Ids and filters together cancel the ids that match the\n' +
        'filters. Without ids or a filter nothing is cancelled. A pending job is\n' +
        'CANCELLED at once; a running one stays RUNNING until its processes are gone\n' +
        '(--wait follows it to the end).\n' +
        'Prints one line per job; failures go to stderr. Exit status: 0 if every\n' +
        'cancel was accepted, 2 if every failure was a client error (unknown job,\n' +
        'already finished, not yours), else 1.\n' +
        'With --json: a JSON array of CancelJobResponse, one per accepted cancel (the\n' +
        'final job with --wait); each failure is a JSON object {code, status, reason,\n' +
        'field, message, job_id} on stderr.',
    )
    .argument('[job...]', 'job_id, <array job id>_<index> or hpcjob_uuid of each job (commas work too)')
    .option('-u, --user <user>', 'every job of this run user')
    .option('--me', 'every job of your own account')
    .option('-n, --name <name>', 'every job with this name (--jobname too)')
    .option('-t, --state <state>', 'only jobs in this state: PENDING or RUNNING (PD, R)')
    .option('-p, --partition <queue>', 'every job of this queue: hpcqueue_id or scheduler_queue_name')
    .option('--cluster-id <id>', 'every job of this cluster')
    .option('-s, --signal <signal>', 'send this signal (USR1, SIGTERM, 10) to the running jobs instead of cancelling them')
    .option('--wait', 'wait until each cancelled job has reached its final state')
    .addOption(program.createOption('--jobname <name>').hideHelp());
  cmd.addHelpText(
    'after',
    `
--signal (scancel --signal): the signal goes to the running jobs' process
groups (on a Slurm cluster, scancel --signal --full); the jobs are not
cancelled and go on, or end as the signal makes them. Pending jobs are left alone.

Example: hpcq scancel --signal USR1 -n checkpointing-sim`,
  );
  addGlobalOptions(cmd);
  cmd.action(action(async (ctx, opts, words: string[]) => cancel(ctx, opts, words.flatMap((w) => commaList(w)))));
}

async function cancel(ctx: CommandContext, opts: Record<string, unknown>, ids: string[]): Promise<number> {
  const users = await selectedUsers(ctx, opts.user === undefined ? undefined : [opts.user as string], opts.me as boolean | undefined);
  if (users.length > 1) throw new UsageError('-u and --me name different users: give one of them', 'run_user');
  const request: CancelJobsRequest = {
    jobIds: ids,
    runUser: users[0] ?? '',
    name: ((opts.name ?? opts.jobname) as string | undefined) ?? '',
    states: opts.state !== undefined ? cancellableStates(opts.state as string) : [],
    queue: (opts.partition as string | undefined) ?? '',
    clusterId: (opts.clusterId as string | undefined) ?? '',
    signal: '',
  };
  if (opts.signal !== undefined) {
    // The daemon checks the name; a signal reaches only a job that runs (scancel --signal leaves
    // pending jobs alone too), and the job is not cancelled.
    request.signal = opts.signal as string;
    request.states = [JobState.JOB_STATE_RUNNING];
  }
  const filtered = request.runUser !== '' || request.name !== '' || request.queue !== '' || request.clusterId !== '';
  if (ids.length === 0 && !filtered) {
    throw new UsageError('give job ids, or select jobs with -u, --me, -n or -p (-t only narrows them): hpcq cancel never cancels every job', 'job_ids');
  }
  let jobs: Job[];
  let failures: JobFailure[];
  try {
    const res = await ctx.client.cancelJobs(request);
    jobs = res.jobs;
    failures = res.failures.map(failureOf);
  } catch (err) {
    // A daemon older than CancelJobs: one CancelJob per id, as before (no filters there).
    if ((err as { code?: number }).code !== status.UNIMPLEMENTED || filtered || request.states.length > 0) throw err;
    ({ jobs, failures } = await cancelEach(ctx, ids));
  }
  const responses: unknown[] = [];
  for (let job of jobs) {
    if (opts.wait && !isTerminal(job.state)) job = (await followJob(ctx, job.jobId, { history: false })).job;
    if (ctx.json) responses.push(protoJson(CancelJobResponse, { job }));
    else ctx.out(`${cancelLine(job)}\n`);
  }
  let exit = 0;
  for (const failure of failures) {
    if (ctx.json) ctx.err(`${JSON.stringify({ ...failureJson(failure), job_id: failure.jobId })}\n`);
    else ctx.err(renderFailure(failure, false, `${failure.jobId}: `));
    exit = exit === 1 || failure.exitCode === 1 ? 1 : 2;
  }
  if (ctx.json) ctx.printJson(responses);
  return exit;
}

/** -t: PENDING and/or RUNNING (names or squeue codes); a finished job cannot be cancelled. */
function cancellableStates(value: string): JobState[] {
  let states: JobState[];
  try {
    states = parseStates([value]);
  } catch (err) {
    throw new UsageError((err as Error).message, 'states');
  }
  if (states.some((s) => s !== JobState.JOB_STATE_PENDING && s !== JobState.JOB_STATE_RUNNING)) {
    throw new UsageError(`-t takes PENDING or RUNNING (PD, R): only those jobs can be cancelled, got ${JSON.stringify(value)}`, 'states');
  }
  return states;
}

function failureOf(f: CancelFailure): JobFailure {
  return { code: f.code, status: statusName(f.code), reason: f.reason, field: 'job_id', message: f.message, exitCode: exitCodeForStatus(f.code), jobId: f.jobId };
}

/** The per-job fallback for a daemon without CancelJobs. */
async function cancelEach(ctx: CommandContext, ids: readonly string[]): Promise<{ jobs: Job[]; failures: JobFailure[] }> {
  const jobs: Job[] = [];
  const failures: JobFailure[] = [];
  for (const id of ids) {
    try {
      const { job } = await ctx.client.cancelJob(id);
      if (job) jobs.push(job);
    } catch (err) {
      failures.push({ ...describeError(err, { address: ctx.address, timeoutMs: ctx.timeoutMs }), jobId: id });
    }
  }
  return { jobs, failures };
}

/** `job 12 (hpcjob-abc12345): CANCELLED` / `...: RUNNING, cancel requested; ...`. */
export function cancelLine(job: Job): string {
  const head = `job ${job.jobId} (${job.hpcjobUuid}): ${stateName(job.state, job.jobStatus)}`;
  if (job.state === JobState.JOB_STATE_CANCELLED) return head;
  if (!isTerminal(job.state)) return `${head}, cancel requested; it ends once its processes are gone (hpcq watch ${job.jobId})`;
  return `${head} (${exitSummary(job)})`;
}
