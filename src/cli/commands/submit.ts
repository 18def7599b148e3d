/** `hpcq submit`: one flag per SubmitJobRequest field; prints the EHPC response; --wait follows the job. */
import type { Command } from 'commander';
import { DependencyCondition, type Dependency } from '../../gen/hpcq/v1/job.js';
import { SubmitJobResponse, type SubmitJobRequest } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, optionParser, type CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import { commandLineFromWords, parseDuration, parseInteger, parseMemMiB, rfc3339 } from '../format.js';
import { protoJson } from '../proto-json.js';
import { followJob } from './watch.js';

interface SubmitOptions {
  clusterId?: string;
  zone?: string;
  runUser?: string;
  name: string;
  cmdLine?: string;
  inputFile?: string;
  coreLimit?: number;
  memLimit?: number;
  timeLimit?: number;
  resourceLimit?: string;
  hpcqueueId?: string;
  queue?: string;
  stdout?: string;
  stderr?: string;
  priority?: number;
  submitType: number;
  clientToken?: string;
  /** A string, or false for --no-timestamp. */
  timestamp?: string | false;
  wait?: boolean;
  quiet?: boolean;
  argv?: boolean;
  export?: Record<string, string>;
  chdir?: string;
  description?: string;
  dependency?: Dependency[];
}

const CONDITION_OF_NAME: Record<string, DependencyCondition> = {
  afterok: DependencyCondition.DEPENDENCY_CONDITION_AFTER_OK,
  afterany: DependencyCondition.DEPENDENCY_CONDITION_AFTER_ANY,
  afternotok: DependencyCondition.DEPENDENCY_CONDITION_AFTER_NOT_OK,
  after: DependencyCondition.DEPENDENCY_CONDITION_AFTER_START,
};

/** Slurm's --dependency: `afterok:12:13,afterany:14` (a bare `12` means afterok); repeatable. */
export function parseDependency(value: string, previous: Dependency[] = []): Dependency[] {
  const deps = [...previous];
  for (const item of value.split(',')) {
    const parts = item.split(':');
    const [type, ...ids] = /^\d+$/.test(parts[0] ?? '') ? ['afterok', ...parts] : parts;
    const condition = CONDITION_OF_NAME[type ?? ''];
    if (condition === undefined || ids.length === 0 || ids.some((id) => !/^\d+$/.test(id))) {
      throw new Error(`--dependency takes TYPE:ID[:ID...][,TYPE:ID...] with TYPE afterok, afterany, afternotok or after, got ${JSON.stringify(item)}`);
    }
    for (const jobId of ids) deps.push({ jobId, condition });
  }
  return deps;
}

/** --export NAME=value[,NAME=value]...; repeatable (Slurm's --export with explicit values). */
export function parseExport(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const env = { ...previous };
  for (const item of value.split(',')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`--export takes NAME=value[,NAME=value...], got ${JSON.stringify(item)} (ALL and NONE are not supported: the job always gets a clean environment)`);
    env[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return env;
}

const integer = (what: string) => optionParser((v) => parseInteger(v, what));

export function registerSubmit(program: Command): void {
  const cmd = program
    .command('submit')
    .summary('submit a job (EHPC job/submitJob)')
    .description(
      'Submit a job. Prints the EHPC-shaped response (action, job_status,\n' +
        'hpcjob_uuid, job_id, ret_code) as JSON, with or without --json.\n' +
        'The command is --cmd-line, --input-file, or the words after the options\n' +
        '(options must come before the command).',
    )
    .addHelpText(
      'after',
      `
Examples:
  hpcq submit --name x -- sleep 10              cmd_line "sleep 10"
  hpcq submit --name x -- 'sleep 10; exit 3'    one word: the shell line, verbatim
  hpcq submit --name x -- sh -c 'echo "$HOME"'  several words: quoted as needed
  hpcq submit --name x --time-limit 1h30m --mem-limit 2G --wait -- ./run.sh
  hpcq submit --name x --argv -- python3 -c 'print("no shell")'   argv, no shell
  hpcq submit --name x --export OMP_PROC_BIND=true,DATA=/scratch -D /scratch/run1 -- ./run.sh`,
    )
    .argument('[command...]', 'the command to run (instead of --cmd-line)')
    .requiredOption('--name <name>', 'job name: 1..64 of [A-Za-z0-9_-], not starting with a digit (required)')
    .option('--cmd-line <command>', 'shell command line, run by /bin/sh -c as the run user')
    .option('--input-file <path>', 'absolute path of a script to run instead of a command line')
    .option('--cluster-id <id>', 'cluster (default: the only configured cluster)')
    .option('--zone <zone>', 'zone; must match the cluster\'s')
    .option('--run-user <user>', 'Unix account the job runs as (default: the invoking user)')
    .option('--core-limit <cores>', 'cores (default: the queue\'s)', integer('core limit'))
    .option('--mem-limit <mib>', 'memory in MiB, or with a K/M/G/T suffix: 512, 4G (default: the queue\'s)', optionParser(parseMemMiB))
    .option('--time-limit <duration>', 'wall time: seconds (5400), 1h30m, 90m or 01:30:00 (default: the queue\'s)', optionParser(parseDuration))
    .option('--resource-limit <limits>', 'key=value[,key=value]: pids, nofile, fsize (MiB), core (MiB), nproc')
    .option('--hpcqueue-id <id>', 'queue by hpcqueue_id')
    .option('--queue <name>', 'queue by scheduler_queue_name (default: the cluster\'s default queue)')
    .option('--stdout <path>', 'stdout_redirect_path: absolute or ~/...; %j job id, %x name, %u user (default ~/hpcq-%j.out)')
    .option('--stderr <path>', 'stderr_redirect_path (default ~/hpcq-%j.err)')
    .option('--priority <n>', 'priority within the queue, higher first (0..10000)', integer('priority'))
    .option('--submit-type <n>', 'submit_type: 0 console, 1 cli', integer('submit type'), 1)
    .option('--client-token <token>', 'idempotency key: resubmitting the same request with it returns the original job')
    .option('--timestamp <time>', 'request time, RFC 3339 or Unix seconds (default: now)')
    .option('--no-timestamp', 'send no timestamp')
    .option('--argv', 'run the trailing words as an argument vector, without a shell (argv[0] is looked up in PATH)')
    .option('--export <vars>', 'NAME=value[,NAME=value...]: variables added to the job\'s environment (repeatable)', optionParser(parseExport))
    .option('-D, --chdir <dir>', 'absolute directory the job starts in, entered as the run user (default: its home)')
    .option('-d, --dependency <list>', 'wait for other jobs: afterok:ID[:ID...], afterany:, afternotok:, after: (Slurm syntax; comma-separated, repeatable)', optionParser(parseDependency))
    .option('--description <text>', 'free text kept with the job, at most 1024 characters')
    .option('--wait', 'follow the job until it ends and exit with its exit status (like sbatch --wait): 0 if COMPLETED, its exit code if it exited non-zero, 128+N if killed by signal N, else 1')
    .option('-q, --quiet', 'with --wait: do not print state changes on stderr')
    .passThroughOptions();
  addGlobalOptions(cmd);
  cmd.action(action(async (ctx, opts, words: string[]) => submit(ctx, opts as unknown as SubmitOptions, words)));
}

export function buildSubmitRequest(opts: SubmitOptions, words: readonly string[], nowMs: number = Date.now()): SubmitJobRequest {
  if (words.length > 0 && (opts.cmdLine !== undefined || opts.inputFile !== undefined)) {
    throw new UsageError('give the command either as trailing words or with --cmd-line / --input-file, not both', 'cmd_line');
  }
  if (opts.argv && words.length === 0) throw new UsageError('--argv runs the trailing words: give them after --', 'argv');
  return {
    timestamp: opts.timestamp === false ? '' : (opts.timestamp ?? rfc3339(nowMs)),
    clusterId: opts.clusterId ?? '',
    zone: opts.zone ?? '',
    // Empty: the daemon runs the job as the caller's own account (known from the kernel or token).
    runUser: opts.runUser ?? '',
    name: opts.name,
    cmdLine: words.length > 0 && !opts.argv ? commandLineFromWords(words) : (opts.cmdLine ?? ''),
    inputFile: opts.inputFile ?? '',
    coreLimit: opts.coreLimit ?? 0,
    memLimit: opts.memLimit ?? 0,
    timeLimit: opts.timeLimit ?? 0,
    resourceLimit: opts.resourceLimit ?? '',
    hpcqueueId: opts.hpcqueueId ?? '',
    schedulerQueueName: opts.queue ?? '',
    stdoutRedirectPath: opts.stdout ?? '',
    stderrRedirectPath: opts.stderr ?? '',
    priority: opts.priority ?? 0,
    submitType: opts.submitType,
    clientToken: opts.clientToken ?? '',
    argv: opts.argv ? [...words] : [],
    env: opts.export ?? {},
    workingDir: opts.chdir ?? '',
    description: opts.description ?? '',
    dependsOn: opts.dependency ?? [],
    retry: undefined,
    taskName: '',
  };
}

async function submit(ctx: CommandContext, opts: SubmitOptions, words: string[]): Promise<number> {
  const request = buildSubmitRequest(opts, words);
  const response = await ctx.client.submitJob(request);
  // The EHPC contract: always this JSON, --json or not.
  ctx.printJson(protoJson(SubmitJobResponse, response));
  if (!opts.wait) return 0;
  const job = await followJob(ctx, response.jobId, {
    history: false,
    onChange: ctx.json || opts.quiet ? undefined : (line) => ctx.err(`${line}\n`),
  });
  return job.exitStatus;
}
