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
    '--parsable',
    `--job-name=${job.name}`,
    `--partition=${job.schedulerQueueName}`,
    '--nodes=1',
    '--ntasks=1',
    `--cpus-per-task=${job.cores}`,
    `--mem=${Math.max(1, job.memoryLimitMb)}M`,
    `--time=${slurmMinutes(job.timeLimitSeconds)}`,
    `--output=${literalPath(job.stdoutPath)}`,
    `--error=${literalPath(job.stderrPath)}`,
    `--chdir=${job.workingDir}`,
    `--comment=${slurmTag(job)}`,
    '--export=NONE',
    '--no-requeue',
  ];
  const command =
    job.argv.length > 0 ? job.argv.map(shellQuote).join(' ') : job.inputFile !== '' ? `/bin/sh ${shellQuote(job.inputFile)}` : `/bin/sh -c ${shellQuote(job.cmdLine)}`;
  const record = exitRecordPath(job);
  const lines = [
    '#!/bin/sh',
    '# Written by hpcq: the job, then its exit status where hpcq can find it if Slurm forgets the job.',
    ...Object.entries(jobEnvironment(job)).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    // The record is written by the job's user, in the user's home; hpcq reads it as that user.
    `hpcq_record=${shellQuote(record)}`,
    // scancel --signal --full signals this shell too: it waits for the job, which handles the
    // signal itself, instead of dying before it can record the job's status. (A handler, not an
    // ignore: an ignored signal could not be trapped by the job.)
    'trap : HUP INT USR1 USR2 ALRM',
    command,
    'hpcq_status=$?',
    'mkdir -p "${hpcq_record%/*}" 2>/dev/null && printf \'%s\\n\' "$hpcq_status" > "$hpcq_record.tmp" && mv -f "$hpcq_record.tmp" "$hpcq_record"',
    'exit "$hpcq_status"',
    '',
  ];
  return { args, script: lines.join('\n') };
}

/** One line of `squeue -h -t all -o '%i|%T|%r|%k'`. */
export interface SqueueEntry {
  slurmId: string;
  state: string;
  reason: string;
  comment: string;
}

export const SQUEUE_FORMAT = '%i|%T|%r|%k';

/** The hpcq-tagged jobs in squeue's output (other users' own jobs are ignored). */
export function parseSqueue(text: string): SqueueEntry[] {
  const entries: SqueueEntry[] = [];
  for (const line of text.split('\n')) {
    const [slurmId, state, reason, ...rest] = line.trim().split('|');
    const comment = rest.join('|');
    if (!slurmId || !state || !comment.startsWith('hpcq:')) continue;
    entries.push({ slurmId, state, reason: reason ?? '', comment });
  }
  return entries;
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
