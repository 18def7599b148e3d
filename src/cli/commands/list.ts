/**
 * `hpcq list` (alias `squeue`): the jobs table (ListJobs), newest first. Like squeue it shows the
 * pending and running jobs unless asked for others, and takes squeue's flags: -u, --me, -p, -t,
 * -j, -n, -o and -h.
 */
import type { Command } from 'commander';
import { JobState, type Job } from '../../gen/hpcq/v1/job.js';
import { ListJobsResponse, type ListJobsRequest } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, optionParser } from '../context.js';
import { parseInteger } from '../format.js';
import { commaList, listAcross, matchesFilters, namedJobs, nodeName, parseStateOption, selectedUsers } from '../job-query.js';
import { renderJobTable, STATE_NAMES } from '../job-view.js';
import { protoJson } from '../proto-json.js';
import { parseSqueueFormat, renderSqueueFormat, type FormatPart } from '../squeue-format.js';

const ACTIVE = [JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING];
const states = optionParser(parseStateOption);
const list = optionParser(commaList);

export function registerList(program: Command): void {
  const cmd = program
    .command('list')
    .alias('squeue')
    .summary('list jobs (squeue-like: pending and running ones unless -t or -a)')
    .description(
      'List jobs, newest first: JOBID NAME USER QUEUE STATE TIME CPUS MEM CPUTIME\n' +
        'MAXMEM REASON/EXIT, or the fields of -o. TIME is the run time so far (the\n' +
        'wall time once ended); CPUTIME and MAXMEM (CPU time, peak memory) are shown\n' +
        'for finished jobs; REASON/EXIT is (reason) while pending, exit N or signal N\n' +
        'once ended.\n' +
        'Like squeue: only PENDING and RUNNING jobs unless -t, -a or -j says\n' +
        'otherwise (finished jobs by end time: hpcq history). Every page is listed,\n' +
        'unless --limit or --page-token asks for one (stderr then gives the next\n' +
        'page token).\n' +
        "With --json: the ListJobsResponse (every page's jobs in one).",
    )
    .helpOption('--help', 'display help for command') // -h is squeue's --noheader
    .option('-a, --all', 'every state, finished jobs too, and every page')
    .option('-t, --states <states>', `only these states (comma list, repeatable, any case): ${STATE_NAMES}, squeue's codes PD R CD F CA TO OOM NF, or all (default: pending,running; with -j: all)`, states)
    .option('-u, --user <users>', 'only jobs of these run users (comma list)', list)
    .option('--me', 'only your own jobs (the account the daemon knows you as)')
    .option('-p, --partition <queues>', 'only jobs of these queues: hpcqueue_id or scheduler_queue_name (comma list)', list)
    .option('-j, --jobs <ids>', 'only these jobs: job_id, <array job id>_<index> or hpcjob_uuid (comma list)', list)
    .option('-n, --name <names>', 'only jobs with these names (comma list)', list)
    .option('-o, --format <format>', "squeue's output format: %[.][size]field, e.g. \"%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R\"", optionParser(parseSqueueFormat))
    .option('-h, --noheader', 'do not print the header line')
    .option('--cluster-id <id>', 'only jobs of this cluster')
    .option('--limit <n>', 'one page of this size (server default 100, at most 1000)', optionParser((v) => parseInteger(v, 'limit')))
    .option('--page-token <token>', 'one page, starting here (the next_page_token of a previous page)')
    .option('--instances', 'also list the instances of array jobs (an array is listed once by default)')
    .option('--no-header', 'do not print the header line (as -h)')
    // Earlier names of -t and -p, kept for scripts.
    .addOption(hidden(program, '--state <states>', states))
    .addOption(hidden(program, '--queue <queues>', list));
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts) => {
      const format = opts.format as FormatPart[] | undefined;
      const ids = (opts.jobs as string[] | undefined) ?? [];
      const chosen = mergeStates(opts.states as JobState[] | 'all' | undefined, opts.state as JobState[] | 'all' | undefined);
      const wanted = chosen ?? (opts.all || ids.length > 0 ? 'all' : ACTIVE);
      const users = await selectedUsers(ctx, opts.user as string[] | undefined, opts.me as boolean | undefined);
      const queues = [...((opts.partition as string[] | undefined) ?? []), ...((opts.queue as string[] | undefined) ?? [])];
      const names = (opts.name as string[] | undefined) ?? [];
      let jobs: Job[];
      let nextPageToken = '';
      let exit = 0;
      if (ids.length > 0) {
        const named = await namedJobs(ctx, ids);
        exit = named.failed;
        jobs = named.jobs.filter((j) => matchesFilters(j, { users, queues, names, ...(wanted === 'all' ? {} : { states: wanted }) }));
      } else {
        const allPages = opts.all === true || (opts.limit === undefined && opts.pageToken === undefined);
        const request: ListJobsRequest = {
          clusterId: (opts.clusterId as string | undefined) ?? '',
          queue: '',
          states: wanted === 'all' ? [] : wanted,
          runUser: '',
          // Every page wanted: the largest pages, the fewest calls.
          pageSize: (opts.limit as number | undefined) ?? (allPages ? 1000 : 0),
          pageToken: (opts.pageToken as string | undefined) ?? '',
          includeInstances: opts.instances === true,
        };
        ({ jobs, nextPageToken } = await listAcross(ctx, request, { users, queues, allPages }));
        if (names.length > 0) jobs = jobs.filter((j) => names.includes(j.name));
      }
      if (ctx.json) {
        ctx.printJson(protoJson(ListJobsResponse, { jobs, nextPageToken }));
        return exit;
      }
      const noHeader = opts.noheader === true || opts.header === false;
      if (format) {
        ctx.out(renderSqueueFormat(format, jobs, { node: nodeName(ctx.address), nowMs: Date.now() }, noHeader));
      } else {
        const table = renderJobTable(jobs);
        ctx.out(noHeader ? table.slice(table.indexOf('\n') + 1) : table);
      }
      if (nextPageToken) ctx.err(`(more jobs: --page-token ${nextPageToken}, or leave out --limit to list every page)\n`);
      return exit;
    }),
  );
}

function mergeStates(a: JobState[] | 'all' | undefined, b: JobState[] | 'all' | undefined): JobState[] | 'all' | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a === 'all' || b === 'all' ? 'all' : [...new Set([...a, ...b])];
}

/** An option kept working but not shown in the help. */
function hidden<T>(program: Command, flags: string, parse: (value: string, previous: T) => T) {
  return program.createOption(flags).argParser(parse).hideHelp();
}
