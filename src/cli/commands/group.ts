/**
 * `hpcq group`: job groups (SubmitJobGroup / GetJobGroup, Tencent Batch's Job.Tasks +
 * Dependences). `group submit` sends a YAML group file (see group-file.ts), `group status`
 * shows each task's job.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { JOB_STATES, jobStatusString } from '../../core/job.js';
import { GetJobGroupResponse, SubmitJobGroupResponse } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, type CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import { renderTable } from '../format.js';
import { parseGroupFile } from '../group-file.js';
import { reasonOrExit, stateName } from '../job-view.js';
import { protoJson } from '../proto-json.js';

const FILE_FORMAT = `
The group file (YAML):
  name: pipeline              # required: the group's name (job-name rules)
  client_token: run-42        # optional idempotency key (--client-token wins)
  defaults:                   # optional: every task takes these unless it sets the key
    queue: normal
    mem_limit: 2G
  tasks:
    - task_name: pre_task     # required, unique
      cmd_line: ./prepare.sh  # exactly one of cmd_line, argv (a list), input_file
      core_limit: 2
      mem_limit: 4G           # MiB, or with a K/M/G/T suffix
      time_limit: 1h          # seconds, or 1h30m / 90m / 01:30:00
    - task_name: post_task
      argv: [python3, post.py]
  dependences:                # end_task runs after start_task completed
    - {start_task: pre_task, end_task: post_task}
    - "pre_task -> post_task" # the same; "a -> b -> c" is a chain

Other task keys: name (default: the task_name), queue (scheduler_queue_name),
hpcqueue_id, run_user, env (NAME: "value"), working_dir, stdout, stderr
(%j %x %u), description, priority, resource_limit, cluster_id, zone, and
retry: {max_retry_count, retry_on_timeout, retry_on_out_of_memory,
exit_codes, backoff_seconds}. working_dir defaults to the current directory
(as with sbatch); relative input_file, stdout and stderr are relative to
the working directory. defaults may set any task key but task_name, name
and the command; env and retry are replaced whole, not merged. An unknown
key or a value of the wrong type is an error naming the key and the task.

Examples:
  hpcq group submit pipeline.yaml
  hpcq group submit --parsable --client-token run-42 pipeline.yaml
  hpcq group status group-17`;

export function registerGroup(program: Command): void {
  const group = program
    .command('group')
    .summary('submit and inspect job groups (a DAG of tasks)')
    .description(
      'Job groups (SubmitJobGroup / GetJobGroup): tasks with dependences between them,\n' +
        'validated whole and stored all or nothing. A task runs after the tasks it\n' +
        'depends on completed; when one fails, its dependents end DependencyNeverSatisfied.',
    );

  const submitCmd = group
    .command('submit')
    .summary('submit a job group from a YAML file')
    .description(
      'Submit the job group a YAML file describes. Prints the response (group_id,\n' +
        'task_job_ids, ret_code) as JSON, with or without --json; with --parsable\n' +
        'only the group id. "-" reads the file from standard input.',
    )
    .addHelpText('after', FILE_FORMAT)
    .argument('<file>', 'the group file (YAML)')
    .option('--client-token <token>', 'idempotency key of the group (overrides the file\'s client_token)')
    .option('--parsable', 'print only the group id and a newline, not the JSON response');
  addGlobalOptions(submitCmd);
  submitCmd.action(action(async (ctx, opts, file: string) => submitGroup(ctx, opts, file)));

  const statusCmd = group
    .command('status')
    .summary('show a job group')
    .description(
      "Show a job group: each task's job id, state and reason or exit, then the\n" +
        'per-state counts and whether the group has finished. --json prints the\n' +
        'GetJobGroupResponse.',
    )
    .argument('<group>', 'group_id (group-<n>)');
  addGlobalOptions(statusCmd);
  statusCmd.action(
    action(async (ctx, _opts, groupId: string) => {
      const res = await ctx.client.getJobGroup(groupId);
      if (ctx.json) ctx.printJson(groupStatusJson(res));
      else ctx.out(renderGroupStatus(res));
      return 0;
    }),
  );
}

function readGroupFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : resolve(file), 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the group file ${file}: ${(err as Error).message}`, 'file');
  }
}

async function submitGroup(ctx: CommandContext, opts: Record<string, unknown>, file: string): Promise<number> {
  const request = parseGroupFile(readGroupFile(file), { cwd: process.cwd(), source: file === '-' ? 'stdin' : file });
  if (typeof opts.clientToken === 'string') request.clientToken = opts.clientToken;
  const response = await ctx.client.submitJobGroup(request);
  if (opts.parsable === true) ctx.out(`${response.groupId}\n`);
  else ctx.printJson(groupSubmitJson(response));
  return 0;
}

/**
 * protoJson renames every object key to snake_case, map keys included; the maps' keys are data
 * (task names, job states), so they are put back as the daemon sent them.
 */
export function groupSubmitJson(res: SubmitJobGroupResponse): unknown {
  return { ...(protoJson(SubmitJobGroupResponse, res) as object), task_job_ids: { ...res.taskJobIds } };
}

export function groupStatusJson(res: GetJobGroupResponse): unknown {
  return { ...(protoJson(GetJobGroupResponse, res) as object), counts: { ...res.counts } };
}

/** The per-state counts in the order of the job's life (pending, running, completed, ...). */
export function countsLine(counts: Readonly<Record<string, number>>): string {
  const order = JOB_STATES.map(jobStatusString) as string[];
  const rank = (s: string) => (order.includes(s) ? order.indexOf(s) : order.length);
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([state, n]) => `${state} ${n}`)
    .join(', ');
}

/** The `group status` view: a TASK / JOBID / STATE / REASON/EXIT table and a summary line. */
export function renderGroupStatus(res: GetJobGroupResponse): string {
  const rows = res.tasks.map((t) => (t.job ? [t.taskName, t.job.jobId, stateName(t.job.state, t.job.jobStatus), reasonOrExit(t.job)] : [t.taskName, '', 'UNKNOWN', '']));
  const table = renderTable(['TASK', 'JOBID', 'STATE', 'REASON/EXIT'], rows, ['left', 'right', 'left', 'left']);
  const counts = countsLine(res.counts);
  return `${table}group ${res.groupId} (${res.name}): ${res.tasks.length} task${res.tasks.length === 1 ? '' : 's'}${counts ? `, ${counts}` : ''}; ${res.finished ? 'finished' : 'not finished'}\n`;
}
