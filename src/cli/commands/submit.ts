/**
 * `hpcq submit`: one flag per SubmitJobRequest field; prints the EHPC response (or only the job id
 * with --parsable); --wait follows the job. `hpcq submit script.sh` submits a batch script like
 * sbatch, with its #SBATCH / #HPCQ directives (see batch-script.ts).
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Dependency, RetryPolicy } from '../../gen/hpcq/v1/job.js';
import { SubmitJobResponse, type SubmitJobRequest } from '../../gen/hpcq/v1/job_service.js';
import { jobNameFromPath, parseSlurmTime, readBatchScript, resolveOutputPath } from '../batch-script.js';
import { action, addGlobalOptions, optionParser, type CommandContext } from '../context.js';
import { UsageError } from '../errors.js';
import { commandLineFromWords, parseDuration, parseInteger, parseMemMiB, rfc3339, shellQuote } from '../format.js';
import { protoJson } from '../proto-json.js';
import { parseArraySpec, parseBeginTime, parseCores, parseDependency, parseExitCodes, parseExport, parseSlurmMem, withSlurmFlags } from '../submit-syntax.js';
import { followJob } from './watch.js';

export interface SubmitOptions {
  clusterId?: string;
  zone?: string;
  runUser?: string;
  /** Required unless a batch script gives the name (-J, else its file name). */
  name?: string;
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
  parsable?: boolean;
  array?: { count: number; parallelism: number };
  /** RFC 3339, Unix seconds, or now+<duration>. */
  begin?: string;
  hold?: boolean;
  maxRetries?: number;
  retryOnTimeout?: boolean;
  retryOnOom?: boolean;
  retryExitCodes?: number[];
  /** Seconds. */
  retryBackoff?: number;
  /** sbatch's names of timeLimit (seconds, read in Slurm's units), memLimit, queue and coreLimit. */
  time?: number;
  mem?: number;
  partition?: string;
  cpusPerTask?: number;
}

/** A batch script given as the only trailing word: its absolute path and its text (or head). */
export interface BatchScriptSource {
  /** Absolute path, sent as input_file. */
  path: string;
  text: string;
  /** The directory hpcq submit runs in: the default working directory, and the base of a relative -D. */
  cwd: string;
  /** How to name the script in messages (the word as given); default: its path. */
  displayName?: string;
}

export { parseDependency, parseExport } from '../submit-syntax.js';

const integer = (what: string) => optionParser((v) => parseInteger(v, what));

export function registerSubmit(program: Command): void {
  const cmd = program
    .command('submit')
    .summary('submit a job or a batch script (EHPC job/submitJob, like sbatch)')
    .description(
      'Submit a job. Prints the EHPC-shaped response (action, job_status,\n' +
        'hpcjob_uuid, job_id, ret_code) as JSON, with or without --json; with\n' +
        '--parsable only the job id. The command is --cmd-line, --input-file,\n' +
        'or the words after the options (options must come before the command).\n' +
        'A single word that names a file is a batch script, as with sbatch.',
    )
    .addHelpText(
      'after',
      `
Batch scripts: \`hpcq submit run.sh\` submits the file as input_file (run from
its absolute path when the job starts, executed if executable, else by /bin/sh;
it is not copied, so leave it in place) with the #SBATCH or #HPCQ directives at
its head, before its first command, as options:
  -J, --job-name        -c, --cpus-per-task   --mem (MiB, or K/M/G/T)
  -p, --partition       -D, --chdir           -d, --dependency
  -t, --time            Slurm units: a bare number is MINUTES; MM:SS,
                        HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
  -o, --output          -e, --error: %j %x %u %%; relative to the working
                        directory; -o alone takes stderr too, as with sbatch
  --export NAME=value,...   ALL or NONE first is accepted and changes nothing:
                        a job never inherits the environment of hpcq submit,
                        it starts clean plus the variables named
  --comment (the description)   -N, --nodes 1   -n, --ntasks 1
Any other option (--gres, --array, ...) is an error naming it and its line.
Options on the command line win. The name
defaults to the file name (characters other than [A-Za-z0-9_-] become _), the
working directory to the current directory. Script arguments are not supported.

Units: sbatch's flags take Slurm's units, the EHPC flags the API's:
  -t, --time 30         30 MINUTES (MM:SS, HH:MM:SS, D-HH[:MM[:SS]] as well)
  --time-limit 30       30 SECONDS (or 1h30m, 90m, 01:30:00)
  --mem 512 / --mem-limit 512   both MiB (K/M/G/T suffixes work for both)

Examples:
  hpcq submit -J sim -t 30 -p debug -c 4 --mem 2G -- ./sim   sbatch-style flags
  hpcq submit run.sh                            a batch script, with its #SBATCH lines
  hpcq submit --parsable -J big --time-limit 2h run.sh   prints only the job id; -J wins
  hpcq submit --name x -- sleep 10              cmd_line "sleep 10"
  hpcq submit --name x -- 'sleep 10; exit 3'    one word: the shell line, verbatim
  hpcq submit --name x -- sh -c 'echo "$HOME"'  several words: quoted as needed
  hpcq submit --name x --time-limit 1h30m --mem-limit 2G --wait --cmd-line ./run.sh
  hpcq submit --name x --argv -- python3 -c 'print("no shell")'   argv, no shell
  hpcq submit --name x --export OMP_PROC_BIND=true,DATA=/scratch -D /scratch/run1 -- ./sim
  hpcq submit --name x --max-retries 3 --retry-exit-codes 75 --retry-backoff 1m -- ./flaky`,
    )
    .argument('[command...]', 'the command to run (instead of --cmd-line), or one batch script file');
  addSubmitOptions(cmd).passThroughOptions();
  addGlobalOptions(cmd);
  cmd.action(action(async (ctx, opts, words: string[]) => submit(ctx, opts as unknown as SubmitOptions, words)));
}

/** Every option of `hpcq submit`, in help order (`hpcq schedule create` takes them too, for its job template). */
export function addSubmitOptions(cmd: Command): Command {
  return cmd
    .option('-J, --name <name>', 'job name: 1..64 of [A-Za-z0-9_-], not starting with a digit (required, except for a batch script)')
    .option('--cmd-line <command>', 'shell command line, run by /bin/sh -c as the run user')
    .option('--input-file <path>', 'absolute path of a script to run instead of a command line (its directives are not read)')
    .option('--cluster-id <id>', 'cluster (default: the only configured cluster)')
    .option('--zone <zone>', 'zone; must match the cluster\'s')
    .option('--run-user <user>', 'Unix account the job runs as (default: the invoking user)')
    .option('--core-limit <cores>', 'cores (default: the queue\'s)', integer('core limit'))
    .option('--mem-limit <mib>', 'memory in MiB, or with a K/M/G/T suffix: 512, 4G (default: the queue\'s)', optionParser(parseMemMiB))
    .option('--time-limit <duration>', 'wall time: seconds (5400), 1h30m, 90m or 01:30:00 (default: the queue\'s)', optionParser(parseDuration))
    .option('-t, --time <time>', 'wall time in Slurm\'s units: a bare number is MINUTES (30), or MM:SS, HH:MM:SS, D-HH[:MM[:SS]] (instead of --time-limit)', optionParser(parseSlurmTime))
    .option('--mem <size>', 'memory as sbatch --mem: MiB, or with a K/M/G/T suffix (instead of --mem-limit)', optionParser(parseSlurmMem))
    .option('-c, --cpus-per-task <cores>', 'cores, as sbatch -c (instead of --core-limit)', optionParser(parseCores))
    .option('-p, --partition <name>', 'queue by scheduler_queue_name or hpcqueue_id, as sbatch -p (instead of --queue)')
    .option('--resource-limit <limits>', 'key=value[,key=value]: pids, nofile, fsize (MiB), core (MiB), nproc')
    .option('--hpcqueue-id <id>', 'queue by hpcqueue_id')
    .option('--queue <name>', 'queue by scheduler_queue_name (default: the cluster\'s default queue)')
    .option('--stdout <path>', 'stdout_redirect_path: absolute or ~/...; %j job id, %x name, %u user (default ~/hpcq-%j.out)')
    .option('--stderr <path>', 'stderr_redirect_path (default ~/hpcq-%j.err; for a batch script given -o or --stdout: the same file)')
    .option('--priority <n>', 'priority within the queue, higher first (0..10000)', integer('priority'))
    .option('--submit-type <n>', 'submit_type: 0 console, 1 cli', integer('submit type'), 1)
    .option('--client-token <token>', 'idempotency key: resubmitting the same request with it returns the original job')
    .option('--timestamp <time>', 'request time, RFC 3339 or Unix seconds (default: now)')
    .option('--no-timestamp', 'send no timestamp')
    .option('--argv', 'run the trailing words as an argument vector, without a shell (argv[0] is looked up in PATH)')
    .option('--export <vars>', 'NAME=value[,NAME=value...]: variables added to the job\'s clean environment (repeatable)', optionParser(parseExport))
    .option('-D, --chdir <dir>', 'absolute directory the job starts in, entered as the run user (default: its home; for a batch script: the current directory)')
    .option('-d, --dependency <list>', 'wait for other jobs: afterok:ID[:ID...], afterany:, afternotok:, after: (Slurm syntax; comma-separated, repeatable)', optionParser(parseDependency))
    .option('--description <text>', 'free text kept with the job, at most 1024 characters')
    .option('--max-retries <n>', 'run the job again up to n more times when an attempt fails (FAILED or NODE_FAIL)', integer('retry count'))
    .option('--retry-on-timeout', 'with --max-retries: also retry an attempt that hit its time limit')
    .option('--retry-on-oom', 'with --max-retries: also retry an attempt that ran out of memory')
    .option('--retry-exit-codes <codes>', 'with --max-retries: retry a failed attempt only if it exited with one of these (comma-separated, repeatable)', optionParser(parseExitCodes))
    .option('--retry-backoff <duration>', 'with --max-retries: wait this long before each further attempt (seconds, 1m, 00:01:00)', optionParser(parseDuration))
    .option('-a, --array <spec>', 'run N instances (Slurm syntax: N or 0-M, with %P for at most P at once); each sees HPCQ_ARRAY_INDEX', optionParser(parseArraySpec))
    .option('--begin <time>', 'do not start before this time: RFC 3339, Unix seconds, or now+<duration> (now+90s, now+2h)', optionParser((value: string) => parseBeginTime(value)))
    .option('-H, --hold', 'submit the job held: it starts only after hpcq release (like sbatch -H)')
    .option('--parsable', 'print only the job id and a newline (like sbatch --parsable), not the JSON response')
    .option('--wait', 'follow the job until it ends and exit with its exit status (like sbatch --wait): 0 if COMPLETED, its exit code if it exited non-zero, 128+N if killed by signal N, else 1')
    .option('-q, --quiet', 'with --wait: do not print state changes on stderr');
}

/** The retry policy of the --max-retries / --retry-* flags; undefined when none is given. */
export function retryPolicy(opts: SubmitOptions): RetryPolicy | undefined {
  const refinements = opts.retryOnTimeout === true || opts.retryOnOom === true || opts.retryExitCodes !== undefined || opts.retryBackoff !== undefined;
  if (opts.maxRetries === undefined) {
    if (refinements) throw new UsageError('--retry-on-timeout, --retry-on-oom, --retry-exit-codes and --retry-backoff need --max-retries N', 'retry');
    return undefined;
  }
  return {
    maxRetryCount: opts.maxRetries,
    retryOnTimeout: opts.retryOnTimeout === true,
    retryOnOutOfMemory: opts.retryOnOom === true,
    exitCodes: opts.retryExitCodes ?? [],
    backoffSeconds: opts.retryBackoff ?? 0,
  };
}

/** Copies the options that are set (not undefined). */
function definedOnly<T extends object>(opts: T): Partial<T> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The options of `hpcq submit script.sh`: the script's directives, overridden by the command
 * line's options, with the script as input_file, its file name as the default name and `cwd` as
 * the default working directory. Like sbatch, a relative -o/-e of a directive is relative to the
 * working directory, and -o without -e (from either side) sends stderr to the same file.
 * --export and --dependency on the command line replace the directive's, as any option does.
 */
export function mergeBatchScript(opts: SubmitOptions, script: BatchScriptSource): SubmitOptions {
  if (opts.cmdLine !== undefined || opts.inputFile !== undefined || opts.argv) {
    throw new UsageError('a batch script is the command: do not give --cmd-line, --input-file or --argv with it', 'input_file');
  }
  if (!posix.isAbsolute(script.path)) throw new UsageError(`the batch script path must be absolute, got ${JSON.stringify(script.path)}`, 'input_file');
  const fromScript = readBatchScript(script.text, script.displayName ?? script.path, script.cwd);
  const merged: SubmitOptions = { ...opts, ...definedOnly(fromScript), ...definedOnly(opts) };
  merged.inputFile = script.path;
  merged.name ??= jobNameFromPath(script.path);
  merged.chdir ??= script.cwd;
  // Directive paths may be relative to the working directory (the command line's stay as given).
  if (opts.stdout === undefined && merged.stdout !== undefined) merged.stdout = resolveOutputPath(merged.stdout, merged.chdir);
  if (opts.stderr === undefined && merged.stderr !== undefined) merged.stderr = resolveOutputPath(merged.stderr, merged.chdir);
  merged.stderr ??= merged.stdout;
  return merged;
}

/**
 * The SubmitJobRequest of the options and the trailing words. With `script` (the words are then
 * just the script's path), the script's directives fill in what the command line leaves out.
 */
export function buildSubmitRequest(opts: SubmitOptions, words: readonly string[], nowMs: number = Date.now(), script?: BatchScriptSource): SubmitJobRequest {
  opts = withSlurmFlags(opts);
  if (script) {
    if (words.length > 1) throw scriptArgumentsError(words, script.path);
    opts = mergeBatchScript(opts, script);
    words = [];
  }
  if (words.length > 0 && (opts.cmdLine !== undefined || opts.inputFile !== undefined)) {
    throw new UsageError('give the command either as trailing words or with --cmd-line / --input-file, not both', 'cmd_line');
  }
  if (opts.argv && words.length === 0) throw new UsageError('--argv runs the trailing words: give them after --', 'argv');
  if (opts.name === undefined) throw new UsageError('--name is required (it is optional only for a batch script, which -J or its file name names)', 'name');
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
    retry: retryPolicy(opts),
    array: opts.array,
    beginTime: opts.begin ?? '',
    hold: opts.hold === true,
    // Only jobs of a group (SubmitJobGroup) have a task name.
    taskName: '',
  };
}

function scriptArgumentsError(words: readonly string[], path: string): UsageError {
  return new UsageError(
    `${words[0]} is a file, so it is submitted as a batch script, which takes no arguments (${words.slice(1).join(' ')}); ` +
      `to run it with arguments, give the command line: --cmd-line ${shellQuote(commandLineFromWords([path, ...words.slice(1)]))}`,
    'input_file',
  );
}

/** Directives are at the head of a script: this much of it is read. */
const SCRIPT_HEAD_BYTES = 1024 * 1024;

/**
 * The batch script the trailing words name, if they do: their first word is an existing regular
 * file and no other form of command (--cmd-line, --input-file, --argv) is given. Reads its head
 * as the invoking user. Undefined when the words are a command line.
 */
export function loadBatchScript(opts: SubmitOptions, words: readonly string[], cwd: string = process.cwd()): BatchScriptSource | undefined {
  const word = words[0];
  if (word === undefined || word === '' || opts.argv || opts.cmdLine !== undefined || opts.inputFile !== undefined) return undefined;
  const path = resolve(cwd, word);
  try {
    if (!statSync(path).isFile()) return undefined;
  } catch {
    return undefined; // no such file: a command line
  }
  if (words.length > 1) throw scriptArgumentsError(words, path);
  let text: string;
  try {
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(SCRIPT_HEAD_BYTES);
      let length = 0;
      for (let n; length < buffer.length && (n = readSync(fd, buffer, length, buffer.length - length, null)) > 0; ) length += n;
      text = buffer.subarray(0, length).toString('utf8');
      // Cut off a last line that may be incomplete.
      if (length === buffer.length) text = text.slice(0, text.lastIndexOf('\n') + 1);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw new UsageError(`cannot read the batch script ${word}: ${(err as Error).message}`, 'input_file');
  }
  return { path, text, cwd, displayName: word };
}

async function submit(ctx: CommandContext, opts: SubmitOptions, words: string[]): Promise<number> {
  const script = loadBatchScript(opts, words);
  const request = buildSubmitRequest(opts, words, Date.now(), script);
  const response = await ctx.client.submitJob(request);
  if (opts.parsable) {
    ctx.out(`${response.jobId}\n`);
  } else {
    // The EHPC contract: always this JSON, --json or not.
    ctx.printJson(protoJson(SubmitJobResponse, response));
  }
  if (!opts.wait) return 0;
  const job = await followJob(ctx, response.jobId, {
    history: false,
    onChange: ctx.json || opts.quiet ? undefined : (line) => ctx.err(`${line}\n`),
  });
  return job.exitStatus;
}
