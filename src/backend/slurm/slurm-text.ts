/**
 * What hpcq says to Slurm and reads back, as pure functions: the sbatch arguments and batch script
 * of a job, the tag that names an hpcq job attempt in Slurm, and the parsers of squeue, scontrol
 * and sacct output with the mapping of Slurm's states to hpcq's.
 */
import type { Job, JobOutcome, JobState } from '../../core/job.js';

/** Every hpcq submission carries `hpcq:<job uuid>:<attempt>` as its --comment. */
export function slurmTag(job: Pick<Job, 'uuid' | 'attempt'>): string {
  return `hpcq:${job.uuid}:${job.attempt}`;
}

/** Slurm's --time is in whole minutes: a limit is rounded up, never down. */
export function slurmMinutes(seconds: number): number {
  return Math.max(1, Math.ceil(seconds / 60));
}

/** Single-quotes `s` for /bin/sh. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Slurm expands % in --output/--error; hpcq already expanded its own patterns, so the rest is literal. */
function literalPath(path: string): string {
  return path.replace(/%/g, '%%');
}

/** Where the batch script records the job's exit status (in the user's home, written as the user). */
export function exitRecordPath(job: Pick<Job, 'home' | 'uuid' | 'attempt'>): string {
  return `${job.home}/.hpcq/slurm/${job.uuid}.${job.attempt}.exit`;
}

/** The job's environment as hpcq gives it (HPCQ_* describe the job; the submit's env is added). */
export function jobEnvironment(job: Job): Record<string, string> {
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: job.home,
    USER: job.runUser,
    LOGNAME: job.runUser,
    SHELL: job.shell,
    ...job.env,
    HPCQ_JOB_ID: String(job.id),
    HPCQ_JOB_UUID: job.uuid,
    HPCQ_JOB_NAME: job.name,
    HPCQ_CLUSTER: job.clusterId,
    HPCQ_QUEUE: job.hpcqueueId,
    HPCQ_CORES: String(job.cores),
    HPCQ_MEM_MB: String(job.memoryLimitMb),
    HPCQ_ATTEMPT: String(job.attempt),
    ...(job.arrayInstance
      ? { HPCQ_ARRAY_JOB_ID: String(job.arrayInstance.arrayJobId), HPCQ_ARRAY_INDEX: String(job.arrayInstance.index), HPCQ_ARRAY_COUNT: String(job.arrayInstance.count) }
      : {}),
  };
}

/**
 * The sbatch arguments and the batch script (given on stdin) of one attempt of `job`: one task on
 * one node with its cores, memory and time; its output paths, directory and environment; no
 * requeue (a retry is hpcq's to decide); the tag in --comment.
 */
export function sbatchRequest(job: Job): { args: string[]; script: string } {
  const args = [
    ...commonArgs(job, slurmTag(job)),
    `--output=${literalPath(job.stdoutPath)}`,
    `--error=${literalPath(job.stderrPath)}`,
  ];
  const lines = [
    ...exportLines(jobEnvironment(job)),
    // The record is written by the job's user, in the user's home; hpcq reads it as that user.
    `hpcq_record=${shellQuote(exitRecordPath(job))}`,
  ];
  return { args, script: batchScript(job, lines) };
}

/**
 * One sbatch for every instance of a first submission of an array: `--array=0-<count-1>%<parallelism>`,
 * so Slurm throttles it, tagged with the array job's tag. Instance i is Slurm's task i; the script
 * gives it its own hpcq identity (id, uuid, exit record) from a table on SLURM_ARRAY_TASK_ID.
 * Output paths Slurm can name with its own patterns (hpcq's %a is Slurm's) are Slurm's to open, so
 * its messages (time limit, OOM) land there too; a path with %j (the instance's own hpcq id) is
 * opened by the script for each task, and Slurm's own messages then go nowhere.
 */
export function sbatchArrayRequest(array: Job, instances: readonly Job[]): { args: string[]; script: string } {
  const count = array.array!.count;
  if (instances.length !== count) throw new RangeError(`array job ${array.id} has ${count} instances, ${instances.length} given`);
  const first = instances[0]!;
  const stdout = slurmArrayPath(first.stdoutPathTemplate, array);
  const stderr = slurmArrayPath(first.stderrPathTemplate, array);
  const byScript = stdout === undefined || stderr === undefined;
  const throttle = array.array!.parallelism > 0 ? `%${array.array!.parallelism}` : '';
  const args = [
    ...commonArgs(first, slurmTag(array)),
    `--array=0-${count - 1}${throttle}`,
    `--output=${byScript ? '/dev/null' : stdout}`,
    `--error=${byScript ? '/dev/null' : stderr}`,
  ];
  const table = instances.map((job, index) => {
    if (job.arrayInstance?.index !== index) throw new RangeError(`instance ${job.id} is not instance ${index} of array job ${array.id}`);
    const own = [`HPCQ_JOB_ID=${job.id}`, `HPCQ_JOB_UUID=${shellQuote(job.uuid)}`, `hpcq_record=${shellQuote(exitRecordPath(job))}`];
    if (byScript) own.push(`hpcq_out=${shellQuote(job.stdoutPath)}`, `hpcq_err=${shellQuote(job.stderrPath)}`);
    return `  ${index}) ${own.join('; ')} ;;`;
  });
  const lines = [
    ...exportLines(jobEnvironment(first)),
    'case "$SLURM_ARRAY_TASK_ID" in',
    ...table,
    `  *) echo "hpcq: task $SLURM_ARRAY_TASK_ID is not an instance of array job ${array.id}" >&2; exit 1 ;;`,
    'esac',
    'HPCQ_ARRAY_INDEX=$SLURM_ARRAY_TASK_ID',
    'export HPCQ_JOB_ID HPCQ_JOB_UUID HPCQ_ARRAY_INDEX',
    ...(byScript ? ['if [ "$hpcq_out" = "$hpcq_err" ]; then exec >"$hpcq_out" 2>&1; else exec >"$hpcq_out" 2>"$hpcq_err"; fi'] : []),
  ];
  return { args, script: batchScript(first, lines) };
}

/**
 * An hpcq path template as a Slurm --array path: %a is Slurm's task index, %A the hpcq array
 * job's id, %x and %u are the job's; undefined when it needs %j (each instance's own hpcq id).
 */
export function slurmArrayPath(template: string, array: Pick<Job, 'id' | 'name' | 'runUser'>): string | undefined {
  if (/%j/.test(template.replace(/%%/g, ''))) return undefined;
  return template.replace(/%([xuaA%])/g, (_m, c: string) => (c === 'a' ? '%a' : c === '%' ? '%%' : literalPath(c === 'x' ? array.name : c === 'u' ? array.runUser : String(array.id))));
}

function commonArgs(job: Job, tag: string): string[] {
  return [
    '--parsable',
    `--job-name=${job.name}`,
    `--partition=${job.schedulerQueueName}`,
    '--nodes=1',
    '--ntasks=1',
    `--cpus-per-task=${job.cores}`,
    `--mem=${Math.max(1, job.memoryLimitMb)}M`,
    `--time=${slurmMinutes(job.timeLimitSeconds)}`,
    `--chdir=${job.workingDir}`,
    `--comment=${tag}`,
    // The job's environment is what the script exports over sbatch's own, which SlurmCommands
    // keeps clean (PATH, LANG, HOME, USER, LOGNAME and the cluster's SLURM_CONF). Not
    // --export=NONE: Slurm 22.05 then rebuilds the environment on the node for every job, which
    // halved the rate at which a node runs short jobs (measured: 300 `true` jobs in 15 s instead
    // of 7.5 s).
    '--export=ALL',
    '--no-requeue',
  ];
}

function exportLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
}

/** The batch script: the set-up lines, the job's command, then its exit status recorded. */
function batchScript(job: Job, setup: readonly string[]): string {
  // A cmd_line runs in a subshell of the script, as `sh -c` would run it but without a second
  // shell to exec: its syntax errors, `exit` and traps stay inside it (a subshell starts with the
  // default signal actions), and the script still records its status.
  const command =
    job.argv.length > 0 ? job.argv.map(shellQuote).join(' ') : job.inputFile !== '' ? `/bin/sh ${shellQuote(job.inputFile)}` : `(eval ${shellQuote(job.cmdLine)})`;
  const lines = [
    '#!/bin/sh',
    '# Written by hpcq: the job, then its exit status where hpcq can find it if Slurm forgets the job.',
    ...setup,
    // scancel --signal --full signals this shell too: it waits for the job, which handles the
    // signal itself, instead of dying before it can record the job's status. (A handler, not an
    // ignore: an ignored signal could not be trapped by the job.)
    'trap : HUP INT USR1 USR2 ALRM',
    command,
    'hpcq_status=$?',
    // Builtins only, but for the first job's mkdir: every process here is time the node's cores
    // spend on each job. hpcq reads the record only once Slurm no longer runs the job, so the
    // script has finished (or was killed: then the record is empty or missing, and the outcome
    // is reported lost rather than guessed).
    '[ -d "${hpcq_record%/*}" ] || mkdir -p "${hpcq_record%/*}" 2>/dev/null',
    'printf \'%s\\n\' "$hpcq_status" 2>/dev/null > "$hpcq_record"',
    'exit "$hpcq_status"',
    '',
  ];
  return lines.join('\n');
}

/** One job (or one array task) of `squeue -h -t all -o SQUEUE_FORMAT`. */
export interface SqueueEntry {
  /** `1234`, or `1234_5` for task 5 of array job 1234. */
  slurmId: string;
  state: string;
  reason: string;
  comment: string;
}

/** Id, state, reason, array task indices (%K: `N/A`, `5`, or `2-9%2` for tasks still pending together), comment. */
export const SQUEUE_FORMAT = '%i|%T|%r|%K|%k';

/**
 * The hpcq-tagged jobs in squeue's output (other users' own jobs are ignored). Array tasks still
 * pending together (`1234_[2-9%2]`) come back one entry per task.
 */
export function parseSqueue(text: string): SqueueEntry[] {
  const entries: SqueueEntry[] = [];
  for (const line of text.split('\n')) {
    const [id, state, reason, tasks, ...rest] = line.trim().split('|');
    const comment = rest.join('|');
    if (!id || !state || !comment.startsWith('hpcq:')) continue;
    const grouped = /^(\d+)_\[/.exec(id);
    if (!grouped) {
      entries.push({ slurmId: id, state, reason: reason ?? '', comment });
      continue;
    }
    for (const index of taskIndices(tasks ?? '')) entries.push({ slurmId: `${grouped[1]}_${index}`, state, reason: reason ?? '', comment });
  }
  return entries;
}

/** Slurm's task index list: `2-9%2`, `0,3,5-7`, `0-9:2` (the throttle after % is not an index). */
export function taskIndices(text: string): number[] {
  const indices: number[] = [];
  for (const part of text.replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = Math.max(1, Number(m[3] ?? 1));
    for (let i = from; i <= to && indices.length < 1_000_000; i += step) indices.push(i);
  }
  return indices;
}

/** What a Slurm state says about an hpcq job. */
export type SlurmObservation =
  | { kind: 'pending'; reason: string }
  | { kind: 'running' }
  | { kind: 'ended'; state: Exclude<JobState, 'PENDING' | 'RUNNING'>; reason: string; limitHit: JobOutcome['limitHit'] }
  /** Ended FAILED, but the exit code must be read elsewhere (squeue does not show it). */
  | { kind: 'failed-needs-exit-code'; reason: string };

const RUNNING_STATES = new Set(['RUNNING', 'COMPLETING', 'CONFIGURING', 'STAGE_OUT', 'SUSPENDED', 'RESIZING', 'SIGNALING', 'STOPPED']);
const PENDING_STATES = new Set(['PENDING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD']);

/** Maps a Slurm job state (long form, e.g. OUT_OF_MEMORY) and reason to hpcq's. */
export function observe(state: string, reason: string): SlurmObservation {
  const s = state.replace(/\+$/, '').toUpperCase();
  if (PENDING_STATES.has(s)) return { kind: 'pending', reason: `Slurm: ${reason || s}` };
  if (RUNNING_STATES.has(s)) return { kind: 'running' };
  switch (s) {
    case 'COMPLETED':
      return { kind: 'ended', state: 'COMPLETED', reason: '', limitHit: '' };
    case 'FAILED':
      return { kind: 'failed-needs-exit-code', reason: `Slurm: FAILED (${reason || 'NonZeroExitCode'})` };
    case 'TIMEOUT':
    case 'DEADLINE':
      return { kind: 'ended', state: 'TIMEOUT', reason: `Slurm: ${s}`, limitHit: 'time' };
    case 'OUT_OF_MEMORY':
      return { kind: 'ended', state: 'OUT_OF_MEMORY', reason: 'Slurm: OUT_OF_MEMORY', limitHit: 'memory' };
    case 'CANCELLED':
      return { kind: 'ended', state: 'CANCELLED', reason: 'Slurm: CANCELLED', limitHit: '' };
    case 'NODE_FAIL':
    case 'BOOT_FAIL':
      return { kind: 'ended', state: 'NODE_FAIL', reason: `Slurm: ${s}`, limitHit: '' };
    case 'PREEMPTED':
      return { kind: 'ended', state: 'FAILED', reason: 'Slurm: PREEMPTED', limitHit: '' };
    default:
      // A state this hpcq does not know: not an end it could report truthfully.
      return { kind: 'pending', reason: `Slurm: ${s}` };
  }
}

/** Slurm's `ExitCode=<code>:<signal>`. */
export function parseExitCode(text: string): { exitCode: number; termSignal: number } | undefined {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  return m ? { exitCode: Number(m[1]), termSignal: Number(m[2]) } : undefined;
}

/** State and exit code from `scontrol show job -o <id>`; undefined when Slurm no longer knows it. */
export function parseScontrolJob(text: string): { state: string; reason: string; exit?: { exitCode: number; termSignal: number } } | undefined {
  const field = (name: string) => new RegExp(`(?:^|\\s)${name}=(\\S*)`).exec(text)?.[1];
  const state = field('JobState');
  if (!state) return undefined;
  const exitText = field('ExitCode');
  const exit = exitText === undefined ? undefined : parseExitCode(exitText);
  return { state, reason: field('Reason') ?? '', ...(exit ? { exit } : {}) };
}

/** The job's own line of `sacct -n -P -X -o State,ExitCode -j <id>`; undefined if none. */
export function parseSacct(text: string): { state: string; exit?: { exitCode: number; termSignal: number } } | undefined {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (!line) return undefined;
  const [rawState, exitText] = line.trim().split('|');
  // sacct shows "CANCELLED by 1001".
  const state = rawState?.split(' ')[0];
  if (!state) return undefined;
  const exit = exitText === undefined ? undefined : parseExitCode(exitText);
  return { state, ...(exit ? { exit } : {}) };
}

/** The exit status the batch script recorded: a shell status (128 + n for signal n). */
export function parseExitRecord(text: string): { exitCode: number; termSignal: number } | undefined {
  const m = /^(\d{1,3})\s*$/.exec(text);
  if (!m) return undefined;
  const status = Number(m[1]);
  return status > 128 && status < 128 + 65 ? { exitCode: 0, termSignal: status - 128 } : { exitCode: status, termSignal: 0 };
}

/** `sinfo -h -p <partition> -o '%a|%D|%C'`: one line per node state; %C is allocated/idle/other/total CPUs. */
export const SINFO_FORMAT = '%a|%D|%C';

export function parseSinfo(text: string): { state: string; nodes: number; cpus: number; idleCpus: number } | undefined {
  let state = '';
  let nodes = 0;
  let cpus = 0;
  let idleCpus = 0;
  for (const line of text.split('\n')) {
    const [avail, n, c] = line.trim().split('|');
    const m = /^(\d+)\/(\d+)\/(\d+)\/(\d+)$/.exec(c ?? '');
    if (!avail || !m) continue;
    state = avail;
    nodes += Number(n);
    idleCpus += Number(m[2]);
    cpus += Number(m[4]);
  }
  return state === '' ? undefined : { state, nodes, cpus, idleCpus };
}
