/**
 * `hpcq history` (alias `sacct`): finished jobs that ended in a time window (ListJobs with
 * end_after / end_before), the latest end first, in sacct's columns; takes sacct's flags.
 */
import type { Command } from 'commander';
import { JobState, type Job } from '../../gen/hpcq/v1/job.js';
import { ListJobsResponse, type ListJobsRequest } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, optionParser } from '../context.js';
import { UsageError } from '../errors.js';
import { commaList, listAcross, matchesFilters, namedJobs, nodeName, parseStateOption, selectedUsers } from '../job-query.js';
import { STATE_NAMES } from '../job-view.js';
import { protoJson } from '../proto-json.js';
import { parseSacctFormat, renderSacct, SACCT_DEFAULT_FORMAT, SACCT_FIELD_NAMES, type SacctColumn } from '../sacct-format.js';
import { parseSacctTime } from '../slurm-time.js';

const list = optionParser(commaList);
const time = optionParser((value: string) => parseSacctTime(value));
const TIME_FORMS = 'YYYY-MM-DD[THH:MM[:SS]], MM/DD[/YY], HH:MM[:SS], now[-count[unit]] (now-2hours, now-1day), today, midnight';

export function registerHistory(program: Command): void {
  const cmd = program
    .command('history')
    .alias('sacct')
    .summary('list finished jobs that ended in a time window (sacct-like)')
    .description(
      'List finished jobs that ended from -S (default: midnight today, as sacct)\n' +
        'until -E (default: now), the latest end first, in sacct\'s columns\n' +
        `${SACCT_DEFAULT_FORMAT}.\n` +
        `Times are local: ${TIME_FORMS}.\n` +
        'With -j the jobs named are shown whatever their state or end time.\n' +
        'With --json: the ListJobsResponse.',
    )
    .option('-S, --starttime <time>', 'jobs that ended at or after this time (default: midnight today)', time)
    .option('-E, --endtime <time>', 'jobs that ended before this time (default: no limit)', time)
    .option('-u, --user <users>', 'only jobs of these run users (comma list)', list)
    .option('--me', 'only your own jobs (the account the daemon knows you as)')
    .option('-r, --partition <queues>', 'only jobs of these queues: hpcqueue_id or scheduler_queue_name (comma list)', list)
    .option('-s, --state <states>', `only these end states (comma list): ${STATE_NAMES} or CD F CA TO OOM NF`, optionParser(parseStateOption))
    .option('-j, --jobs <ids>', 'only these jobs, whatever their state or end time (comma list)', list)
    .option('--name <names>', 'only jobs with these names (comma list)', list)
    .option('-o, --format <fields>', `sacct's fields, comma-separated, each optionally with %width (JobName%30): ${SACCT_FIELD_NAMES.replace(/,/g, ', ')}`, optionParser(parseSacctFormat))
    .option('-n, --noheader', 'do not print the header lines')
    .option('-p, --parsable', 'values separated by |, with a | at the end of each line')
    .option('-P, --parsable2', 'values separated by |, none at the end')
    .option('-X, --allocations', 'accepted for sacct habits: hpcq jobs have no steps, so every line is a job')
    .option('--cluster-id <id>', 'only jobs of this cluster')
    .option('--instances', 'also list the instances of array jobs');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts) => {
      const columns = (opts.format as SacctColumn[] | undefined) ?? parseSacctFormat(SACCT_DEFAULT_FORMAT);
      const stateOpt = opts.state as JobState[] | 'all' | undefined;
      const states = stateOpt === 'all' ? [] : (stateOpt ?? []);
      const active = states.filter((s) => s === JobState.JOB_STATE_PENDING || s === JobState.JOB_STATE_RUNNING);
      const ids = (opts.jobs as string[] | undefined) ?? [];
      if (active.length > 0 && ids.length === 0) throw new UsageError('history lists finished jobs: for pending and running ones use hpcq squeue', 'states');
      const users = await selectedUsers(ctx, opts.user as string[] | undefined, opts.me as boolean | undefined);
      const queues = (opts.partition as string[] | undefined) ?? [];
      const names = (opts.name as string[] | undefined) ?? [];
      let jobs: Job[];
      let exit = 0;
      if (ids.length > 0) {
        const named = await namedJobs(ctx, ids);
        exit = named.failed;
        jobs = named.jobs.filter((j) => matchesFilters(j, { users, queues, names, states }));
      } else {
        const from = (opts.starttime as number | undefined) ?? parseSacctTime('midnight');
        const to = opts.endtime as number | undefined;
        if (to !== undefined && to < from) throw new UsageError(`the end time (-E) is before the start time (-S)`, 'end_before');
        const request: ListJobsRequest = {
          clusterId: (opts.clusterId as string | undefined) ?? '',
          queue: '',
          states,
          runUser: '',
          pageSize: 1000,
          pageToken: '',
          includeInstances: opts.instances === true,
          endAfter: new Date(Math.max(0, from)).toISOString(),
          ...(to !== undefined ? { endBefore: new Date(Math.max(0, to)).toISOString() } : {}),
        };
        ({ jobs } = await listAcross(ctx, request, { users, queues, allPages: true }));
        if (names.length > 0) jobs = jobs.filter((j) => names.includes(j.name));
      }
      if (ctx.json) {
        ctx.printJson(protoJson(ListJobsResponse, { jobs, nextPageToken: '' }));
        return exit;
      }
      const parsable = opts.parsable ? 'trailing' : opts.parsable2 ? 'between' : undefined;
      ctx.out(renderSacct(columns, jobs, { noHeader: opts.noheader === true, ...(parsable ? { parsable } : {}), node: nodeName(ctx.address) }));
      return exit;
    }),
  );
}
