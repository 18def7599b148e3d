/** `hpcq list` (alias `squeue`): the jobs table (ListJobs), newest first. */
import type { Command } from 'commander';
import type { JobState, Job } from '../../gen/hpcq/v1/job.js';
import { ListJobsResponse, type ListJobsRequest } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, optionParser } from '../context.js';
import { parseInteger } from '../format.js';
import { parseStates, renderJobTable, STATE_NAMES } from '../job-view.js';
import { protoJson } from '../proto-json.js';

const collectStates = optionParser((value: string, previous: JobState[] = []) => [...previous, ...parseStates([value])]);

export function registerList(program: Command): void {
  const cmd = program
    .command('list')
    .alias('squeue')
    .summary('list jobs (squeue-like table)')
    .description(
      'List jobs, newest first: JOBID NAME USER QUEUE STATE TIME CPUS MEM CPUTIME\n' +
        'MAXMEM REASON/EXIT. TIME is the run time so far (the wall time once ended);\n' +
        'CPUTIME and MAXMEM (CPU time, peak memory) are shown for finished jobs;\n' +
        'REASON/EXIT is (reason) while pending, exit N or signal N once ended.\n' +
        'Without --all, one page; stderr then gives the next page token.\n' +
        "With --json: the ListJobsResponse (with --all, every page's jobs in one).",
    )
    .option('--cluster-id <id>', 'only jobs of this cluster')
    .option('--queue <queue>', 'only jobs of this queue (hpcqueue_id or scheduler_queue_name)')
    .option('--state <states>', `only jobs in these states; repeatable or a comma list, any case: ${STATE_NAMES} (or PD R CD F CA TO OOM NF)`, collectStates)
    .option('--user <user>', 'only jobs of this run user')
    .option('--limit <n>', 'page size (server default 100, at most 1000)', optionParser((v) => parseInteger(v, 'limit')))
    .option('--all', 'follow next_page_token and list every matching job')
    .option('--page-token <token>', 'start at this page (the next_page_token of a previous page)')
    .option('--instances', 'also list the instances of array jobs (an array is listed once by default)')
    .option('--no-header', 'do not print the header line');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts) => {
      const request: ListJobsRequest = {
        clusterId: (opts.clusterId as string | undefined) ?? '',
        queue: (opts.queue as string | undefined) ?? '',
        states: (opts.state as JobState[] | undefined) ?? [],
        runUser: (opts.user as string | undefined) ?? '',
        pageSize: (opts.limit as number | undefined) ?? 0,
        pageToken: (opts.pageToken as string | undefined) ?? '',
        includeInstances: opts.instances === true,
      };
      const jobs: Job[] = [];
      let nextPageToken = '';
      for (;;) {
        const page = await ctx.client.listJobs(request);
        jobs.push(...page.jobs);
        nextPageToken = page.nextPageToken;
        if (!opts.all || nextPageToken === '') break;
        request.pageToken = nextPageToken;
      }
      if (ctx.json) {
        ctx.printJson(protoJson(ListJobsResponse, { jobs, nextPageToken }));
        return 0;
      }
      let table = renderJobTable(jobs);
      if (opts.header === false) table = table.slice(table.indexOf('\n') + 1);
      ctx.out(table);
      if (nextPageToken) ctx.err(`(more jobs: use --all, or --page-token ${nextPageToken})\n`);
      return 0;
    }),
  );
}
