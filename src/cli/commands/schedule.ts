/**
 * `hpcq schedule`: job templates run on a cron schedule (Kubernetes CronJob, Slurm scrontab) or on
 * demand (SAE ExecJob), over hpcq.v1.ScheduleService. The template of `schedule create` is built
 * by submit's own option definitions and request builder, so it takes every flag and command form
 * of `hpcq submit` except those that belong to one submit (--begin, --hold, ...).
 */
import type { Command } from 'commander';
import { SubmitJobResponse } from '../../gen/hpcq/v1/job_service.js';
import {
  ConcurrencyPolicy,
  DeleteScheduleResponse,
  Schedule,
} from '../../gen/hpcq/v1/schedule_service.js';
import { action, addGlobalOptions, optionParser, type CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import {
  commandLineFromWords,
  formatTime,
  parseDuration,
  parseInteger,
} from '../format.js';
import { protoJson } from '../proto-json.js';
import { parseArraySpec, parseBeginTime, parseExport } from '../submit-syntax.js';
import { addSubmitOptions, buildSubmitRequest, loadBatchScript, type SubmitOptions } from './submit.js';
import { eventLine, renderScheduleShow, renderScheduleTable, scheduleJson, stateLine, watchJson } from '../schedule-view.js';

const POLICIES: Record<string, ConcurrencyPolicy> = {
  allow: ConcurrencyPolicy.CONCURRENCY_POLICY_ALLOW,
  forbid: ConcurrencyPolicy.CONCURRENCY_POLICY_FORBID,
  replace: ConcurrencyPolicy.CONCURRENCY_POLICY_REPLACE,
};

const parsePolicy = optionParser((value: string): ConcurrencyPolicy => {
  const policy = POLICIES[value.trim().toLowerCase()];
  if (policy === undefined) throw new Error(`--policy takes allow, forbid or replace, got ${JSON.stringify(value)}`);
  return policy;
});

const POLICY_HELP = 'what a tick does while a job of the schedule is still pending or running: allow (submit anyway, the default), forbid (skip the tick), replace (cancel the active jobs first)';
const DEADLINE_HELP = 'how late a tick may still start, e.g. after hpcqd was down: seconds, 10m, 01:00:00 (default 0: no deadline)';

/**
 * Submit options a template cannot take, by attribute: they belong to one submit. They are still
 * parsed (hidden from help) so that using one gets this explanation, not "unknown option".
 */
const NOT_IN_TEMPLATE: readonly (readonly [key: string, flag: string, why: string])[] = [
  ['begin', '--begin', 'ticks start when they fire (give `hpcq schedule trigger --begin` a time instead)'],
  ['hold', '-H/--hold', 'a held tick would never run (create the schedule --suspend instead)'],
  ['dependency', '-d/--dependency', 'every tick would wait for the same jobs'],
  ['wait', '--wait', 'there is no single job to wait for (follow the schedule with `hpcq schedule watch`)'],
  ['quiet', '-q/--quiet', 'it only goes with --wait'],
  ['timestamp', '--timestamp/--no-timestamp', 'a request time would be stale for every later tick'],
];
/** Accepted but hidden in `schedule create`: it prints only the schedule id anyway. */
const HIDDEN_IN_CREATE = new Set(['--begin', '--hold', '--dependency', '--wait', '--quiet', '--timestamp', '--no-timestamp', '--parsable']);

export function registerSchedule(program: Command): void {
  const schedule = program
    .command('schedule')
    .summary('run a job on a cron schedule or on demand (CronJob, scrontab, SAE ExecJob)')
    .description(
      'Schedules (ScheduleService): a job template that hpcqd submits at each tick of a\n' +
        'cron expression, as its owner; or now, with `schedule trigger`. Each tick makes\n' +
        'one job, or is recorded as skipped (forbid policy), missed (hpcqd was down) or\n' +
        'failed (the submit was refused); `schedule show` lists these events.',
    )
    // `create` passes the words after its options through as the command, as submit does.
    .enablePositionalOptions();
  registerCreate(schedule);
  registerList(schedule);
  registerShow(schedule);
  registerSuspendResume(schedule);
  registerUpdate(schedule);
  registerDelete(schedule);
  registerTrigger(schedule);
  registerWatch(schedule);
}

function registerCreate(schedule: Command): void {
  const cmd = schedule
    .command('create')
    .summary('create a schedule; its job template takes the options of hpcq submit')
    .description(
      'Create a schedule: at each tick of --cron, hpcqd submits the job the other\n' +
        'options and the command describe, exactly as `hpcq submit` would take them\n' +
        '(a command after --, --cmd-line, --argv, --input-file or a batch script file;\n' +
        '--queue, --core-limit, --mem-limit, --time-limit, --stdout, --export, -D,\n' +
        '--array, --max-retries, ...). Not in a template: --begin, -H/--hold,\n' +
        '-d/--dependency, --wait, --timestamp. Prints the schedule id; with --json the\n' +
        'Schedule.',
    )
    .addHelpText(
      'after',
      `
Cron: node-cron syntax, 5 fields (minute hour day-of-month month day-of-week)
or 6 with seconds first; read in --tz (an IANA zone, default UTC).

Examples:
  hpcq schedule create --name nightly --cron '0 2 * * *' --tz Europe/Berlin --queue normal -- ./backup.sh
  hpcq schedule create --name poll --cron '*/30 * * * * *' --policy forbid --time-limit 25s -- 'curl -fsS "$URL"'
  hpcq schedule create --name report --cron '0 8 * * 1-5' --suspend report.sh   a batch script, with its #SBATCH lines`,
    )
    .argument('[command...]', 'the command each tick runs (instead of --cmd-line), or one batch script file')
    .requiredOption('--cron <expr>', 'cron expression: 5 fields, or 6 with seconds first')
    .option('--tz <zone>', 'IANA time zone the expression is read in (default UTC)')
    .option('--policy <policy>', POLICY_HELP, parsePolicy)
    .option('--starting-deadline <duration>', DEADLINE_HELP, optionParser(parseDuration))
    .option('--suspend', 'create it suspended: no ticks until `hpcq schedule resume`');
  addSubmitOptions(cmd).passThroughOptions();
  for (const option of cmd.options) {
    if (option.long && HIDDEN_IN_CREATE.has(option.long)) option.hideHelp();
    // Shared with submit, but here they are the schedule's (the name is also its jobs').
    if (option.long === '--name') option.description = "schedule name, also its jobs' name: 1..64 of [A-Za-z0-9_-], not starting with a digit (for a batch script default: -J or the file name)";
    if (option.long === '--client-token') option.description = 'idempotency key of the schedule: creating again with it returns the schedule it made';
  }
  addGlobalOptions(cmd);
  cmd.action(action(async (ctx, opts, words: string[]) => create(ctx, cmd, opts, words)));
}

async function create(ctx: CommandContext, cmd: Command, opts: Record<string, unknown>, words: string[]): Promise<number> {
  for (const [key, flag, why] of NOT_IN_TEMPLATE) {
    if (cmd.getOptionValueSource(key) === 'cli') throw new UsageError(`a schedule's job template cannot take ${flag}: ${why}`, key);
  }
  // --client-token is the schedule's, and each tick is stamped by the daemon: neither goes into the job.
  const jobOpts: SubmitOptions = { ...(opts as unknown as SubmitOptions), clientToken: undefined, timestamp: false };
  const job = buildSubmitRequest(jobOpts, words, Date.now(), loadBatchScript(jobOpts, words));
  const created = await ctx.client.createSchedule({
    name: job.name,
    cron: opts.cron as string,
    timeZone: (opts.tz as string | undefined) ?? '',
    job,
    concurrencyPolicy: (opts.policy as ConcurrencyPolicy | undefined) ?? ConcurrencyPolicy.CONCURRENCY_POLICY_UNSPECIFIED,
    startingDeadlineSeconds: (opts.startingDeadline as number | undefined) ?? 0,
    suspend: opts.suspend === true,
    clientToken: (opts.clientToken as string | undefined) ?? '',
  });
  if (ctx.json) ctx.printJson(scheduleJson(created));
  else ctx.out(`${created.scheduleId}\n`);
  return 0;
}

function registerList(schedule: Command): void {
  const cmd = schedule
    .command('list')
    .summary('list the schedules you may see')
    .description(
      'List the schedules you may see, by id: ID NAME CRON TZ POLICY STATE LAST TICK\n' +
        'NEXT TICK (local time) ACTIVE JOBS (pending or running) OWNER.\n' +
        'With --json: the ListSchedulesResponse (every page in one).',
    )
    .addHelpText('after', '\nExample:\n  hpcq schedule list')
    .option('--no-header', 'do not print the header line');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts) => {
      const schedules: Schedule[] = [];
      let pageToken = '';
      do {
        const page = await ctx.client.listSchedules(pageToken);
        schedules.push(...page.schedules);
        pageToken = page.nextPageToken;
      } while (pageToken !== '');
      if (ctx.json) {
        ctx.printJson({ schedules: schedules.map(scheduleJson), next_page_token: '' });
        return 0;
      }
      let table = renderScheduleTable(schedules);
      if (opts.header === false) table = table.slice(table.indexOf('\n') + 1);
      ctx.out(table);
      return 0;
    }),
  );
}

function registerShow(schedule: Command): void {
  const cmd = schedule
    .command('show')
    .summary("show a schedule, its job template and its latest events")
    .description(
      "Show a schedule: its fields, its job template (command, queue, run user, ...)\n" +
        'and its latest events, newest last: when, what (fired, skipped, missed, failed,\n' +
        'triggered), the tick (for missed: the range and how many), the job, the reason.\n' +
        'With --json: the Schedule, recent_events included.',
    )
    .addHelpText('after', '\nExamples:\n  hpcq schedule show sched-3\n  hpcq schedule show sched-3 --events 100 --json')
    .argument('<schedule>', 'schedule_id (sched-<n>)')
    .option('--events <n>', 'how many of the latest events to show, 0..1000', optionParser((v) => parseInteger(v, 'event count')), 20);
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts, id: string) => {
      const s = await ctx.client.getSchedule(id, opts.events as number);
      if (ctx.json) ctx.printJson(scheduleJson(s));
      else ctx.out(renderScheduleShow(s));
      return 0;
    }),
  );
}

function registerSuspendResume(schedule: Command): void {
  for (const verb of ['suspend', 'resume'] as const) {
    const cmd = schedule
      .command(verb)
      .summary(verb === 'suspend' ? 'stop a schedule from ticking (its running jobs are left alone)' : 'let a suspended schedule tick again')
      .description(
        verb === 'suspend'
          ? 'Suspend a schedule: its ticks pass unrecorded and trigger is refused (JobSuspend)\nuntil it is resumed. Jobs it already made are not touched.'
          : 'Resume a suspended schedule from the next tick on; the ticks it passed while\nsuspended are not made up for.',
      )
      .addHelpText('after', `\nExample:\n  hpcq schedule ${verb} sched-3`)
      .argument('<schedule>', 'schedule_id (sched-<n>)');
    addGlobalOptions(cmd);
    cmd.action(
      action(async (ctx, _opts, id: string) => {
        printChanged(ctx, await ctx.client.updateSchedule({ scheduleId: id, job: undefined, suspend: verb === 'suspend' }));
        return 0;
      }),
    );
  }
}

function registerUpdate(schedule: Command): void {
  const cmd = schedule
    .command('update')
    .summary("change a schedule's cron, zone, policy or deadline")
    .description(
      "Change the given fields of a schedule. The job template cannot be changed from\n" +
        'the command line: delete the schedule and create it again. A new cron or zone\n' +
        'takes effect from now on (earlier ticks are not made up for).',
    )
    .addHelpText('after', "\nExamples:\n  hpcq schedule update sched-3 --cron '0 3 * * *' --tz UTC\n  hpcq schedule update sched-3 --policy forbid --starting-deadline 10m")
    .argument('<schedule>', 'schedule_id (sched-<n>)')
    .option('--cron <expr>', 'new cron expression: 5 fields, or 6 with seconds first')
    .option('--tz <zone>', 'new IANA time zone ("" for UTC)')
    .option('--policy <policy>', POLICY_HELP, parsePolicy)
    .option('--starting-deadline <duration>', DEADLINE_HELP, optionParser(parseDuration));
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts, id: string) => {
      const changes = {
        cron: opts.cron as string | undefined,
        timeZone: opts.tz as string | undefined,
        concurrencyPolicy: opts.policy as ConcurrencyPolicy | undefined,
        startingDeadlineSeconds: opts.startingDeadline as number | undefined,
      };
      if (Object.values(changes).every((v) => v === undefined)) throw new UsageError('give at least one of --cron, --tz, --policy, --starting-deadline');
      printChanged(ctx, await ctx.client.updateSchedule({ scheduleId: id, job: undefined, ...changes }));
      return 0;
    }),
  );
}

function registerDelete(schedule: Command): void {
  const cmd = schedule
    .command('delete')
    .summary('delete a schedule and its history (its jobs are left alone)')
    .addHelpText('after', '\nExample:\n  hpcq schedule delete sched-3')
    .argument('<schedule>', 'schedule_id (sched-<n>)');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, _opts, id: string) => {
      const res = await ctx.client.deleteSchedule(id);
      if (ctx.json) ctx.printJson(protoJson(DeleteScheduleResponse, res));
      else ctx.out(`schedule ${res.scheduleId} deleted\n`);
      return 0;
    }),
  );
}

function registerTrigger(schedule: Command): void {
  const cmd = schedule
    .command('trigger')
    .summary("run a schedule's job now (SAE ExecJob), optionally with overrides")
    .description(
      "Submit the schedule's job now. A command after -- replaces the template's, read\n" +
        'as by `hpcq submit` (a shell command line; with --argv an argument vector).\n' +
        'The same --event-id always answers with the job its first trigger made.\n' +
        'Refused on a suspended schedule (JobSuspend) and, under the forbid policy, while\n' +
        'its job is active (JobForbidPolicy). Prints the response as submit does.',
    )
    .addHelpText(
      'after',
      `
Examples:
  hpcq schedule trigger sched-3
  hpcq schedule trigger --parsable --event-id deploy-42 sched-3
  hpcq schedule trigger --export MODE=full --array 4 --begin now+10m sched-3
  hpcq schedule trigger sched-3 -- './backup.sh --full'
  hpcq schedule trigger --argv sched-3 -- python3 report.py --week`,
    )
    .argument('<schedule>', 'schedule_id (sched-<n>)')
    .argument('[command...]', "a command replacing the template's (after --)")
    .option('--event-id <id>', 'idempotency key: a trigger with the same id returns the same job')
    .option('--argv', 'run the words after -- as an argument vector, without a shell')
    .option('--export <vars>', "NAME=value[,NAME=value...]: variables added to (or replacing) the template's (repeatable)", optionParser(parseExport))
    .option('-a, --array <n>', "run N instances (N or 0-M) instead of the template's count", optionParser(parseInstanceCount))
    .option('--begin <time>', 'do not start before this time: RFC 3339, Unix seconds, or now+<duration>', optionParser((value: string) => parseBeginTime(value)))
    .option('--parsable', 'print only the job id and a newline, not the JSON response');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts, id: string, words: string[]) => {
      if (opts.argv === true && words.length === 0) throw new UsageError('--argv runs the trailing words: give them after --', 'argv');
      const res = await ctx.client.triggerSchedule({
        scheduleId: id,
        eventId: (opts.eventId as string | undefined) ?? '',
        overrides: {
          // Submit's distinction: the words are argv with --argv, else one shell command line.
          argv: opts.argv === true ? words : [],
          cmdLine: opts.argv !== true && words.length > 0 ? commandLineFromWords(words) : '',
          env: (opts.export as Record<string, string> | undefined) ?? {},
          arrayCount: (opts.array as number | undefined) ?? 0,
          beginTime: (opts.begin as string | undefined) ?? '',
        },
      });
      // As submit: the EHPC-shaped response, --json or not.
      if (opts.parsable === true) ctx.out(`${res.jobId}\n`);
      else ctx.printJson(protoJson(SubmitJobResponse, res));
      return 0;
    }),
  );
}

/** trigger --array: the override carries a count only (the template's %P limit stays). */
function parseInstanceCount(value: string): number {
  const spec = parseArraySpec(value);
  if (spec.parallelism > 0) throw new Error("trigger --array takes N or 0-M; the template's %P limit is kept");
  return spec.count;
}

function registerWatch(schedule: Command): void {
  const cmd = schedule
    .command('watch')
    .summary("follow a schedule's events as they happen")
    .description(
      'Follow a schedule (WatchSchedule): a line with its state, then one line per\n' +
        'event as it happens, until Ctrl-C or the schedule is deleted. With --json,\n' +
        'each WatchScheduleResponse is one JSON object per line (JSON Lines).',
    )
    .addHelpText('after', '\nExamples:\n  hpcq schedule watch sched-3\n  hpcq schedule watch --history --json sched-3 | jq -c .event')
    .argument('<schedule>', 'schedule_id (sched-<n>)')
    .option('--history', 'first replay the stored events (up to 1,000)');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts, id: string) => {
      let lastSequence = 0;
      for await (const message of ctx.client.watchSchedule(id, opts.history === true, ctx.streamTimeoutMs)) {
        if (ctx.json) {
          ctx.out(`${JSON.stringify(watchJson(message))}\n`);
          continue;
        }
        const s = message.schedule;
        if (!s) continue;
        const e = message.event;
        // Sequences only grow; a repeat would be an overlap of history and live events.
        if (e && e.sequence <= lastSequence) continue;
        if (e) lastSequence = e.sequence;
        ctx.out(`${e ? eventLine(s.scheduleId, e) : stateLine(s)}\n`);
      }
      // The stream ends normally only when the schedule is deleted.
      if (!ctx.json) ctx.err(`schedule ${id} was deleted\n`);
      return 0;
    }),
  );
}

function printChanged(ctx: CommandContext, s: Schedule): void {
  if (ctx.json) ctx.printJson(scheduleJson(s));
  else ctx.out(`schedule ${s.scheduleId}: ${s.suspend ? 'suspended' : `active, next tick ${formatTime(s.nextTick) || '-'}`}\n`);
}
