/**
 * Pure views of API messages for humans: job states, the `status` key/value view, the `list`
 * table, the `watch` lines, the `queues` table, and the exit status a finished job maps to.
 */
import { constants } from 'node:os';
import { domainState, stateToProto } from '../api/convert.js';
import { isTerminal as isTerminalState, JOB_STATES, jobStatusString } from '../core/job.js';
import { JobState, type Job, type JobEvent } from '../gen/hpcq/v1/job.js';
import type { ListQueuesResponse } from '../gen/hpcq/v1/queue_service.js';
import {
  formatBytes,
  formatCpuTime,
  formatDurationShort,
  formatElapsed,
  formatMiB,
  formatTime,
  renderKeyValues,
  renderTable,
  truncate,
  type Align,
} from './format.js';

/** State names users type: each state's job_status (pending, ..., node_fail), and squeue's short codes. */
const STATE_ALIASES: Record<string, JobState> = {
  ...Object.fromEntries(JOB_STATES.map((s) => [jobStatusString(s), stateToProto(s)])),
  canceled: JobState.JOB_STATE_CANCELLED,
  pd: JobState.JOB_STATE_PENDING,
  r: JobState.JOB_STATE_RUNNING,
  cd: JobState.JOB_STATE_COMPLETED,
  f: JobState.JOB_STATE_FAILED,
  ca: JobState.JOB_STATE_CANCELLED,
  to: JobState.JOB_STATE_TIMEOUT,
  oom: JobState.JOB_STATE_OUT_OF_MEMORY,
  nf: JobState.JOB_STATE_NODE_FAIL,
};

export const STATE_NAMES = JOB_STATES.map(jobStatusString).join(', ');

/**
 * Parses `--state` values: each may be a comma list; names are case-insensitive, `-` and `_` are
 * interchangeable, a `JOB_STATE_` prefix is allowed, and squeue's short codes (PD R CD F CA TO OOM NF)
 * work too. Duplicates are dropped; order is kept.
 */
export function parseStates(values: readonly string[]): JobState[] {
  const out: JobState[] = [];
  for (const value of values) {
    for (const raw of value.split(',')) {
      const key = raw.trim().toLowerCase().replace(/-/g, '_').replace(/^job_state_/, '');
      if (key === '') continue;
      const state = STATE_ALIASES[key];
      if (state === undefined) throw new Error(`unknown job state ${JSON.stringify(raw.trim())}; use ${STATE_NAMES}`);
      if (!out.includes(state)) out.push(state);
    }
  }
  return out;
}

/** `RUNNING`, `OUT_OF_MEMORY`, ... (falls back to the job_status string). */
export function stateName(state: JobState, jobStatus = ''): string {
  return domainState(state) ?? (jobStatus ? jobStatus.toUpperCase() : 'UNKNOWN');
}

export function isTerminal(state: JobState): boolean {
  const s = domainState(state);
  return s !== undefined && isTerminalState(s);
}

const SIGNAL_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(constants.signals).map(([name, num]) => [num, name]),
);

export function signalName(signal: number): string {
  const name = SIGNAL_NAMES[signal];
  return name ? `${signal} (${name})` : String(signal);
}

/**
 * The process exit status a finished job maps to, the way srun / sbatch --wait report it:
 * COMPLETED -> 0; a non-zero exit code -> that code (1..255); killed by signal N -> 128+N;
 * any other unsuccessful end (cancelled while pending, node failure, launch failure) -> 1.
 */
export function jobExitStatus(job: Pick<Job, 'state' | 'exitCode' | 'termSignal'>): number {
  if (job.state === JobState.JOB_STATE_COMPLETED) return 0;
  if (job.exitCode > 0 && job.exitCode <= 255) return job.exitCode;
  if (job.termSignal > 0 && job.termSignal < 128) return 128 + job.termSignal;
  return 1;
}

/** The leading keyword of a reason: `TimeLimit: wall time ...` -> `TimeLimit`. */
export function reasonKeyword(reason: string): string {
  return /^[A-Za-z][A-Za-z0-9_.]*/.exec(reason)?.[0] ?? reason;
}

/** `exit 3` or `signal 9` for a finished job. */
export function exitSummary(job: Pick<Job, 'exitCode' | 'termSignal'>): string {
  return job.termSignal ? `signal ${job.termSignal}` : `exit ${job.exitCode}`;
}

/** The REASON/EXIT column: `(Priority)` while pending, the reason while running, exit or signal once ended. */
export function reasonOrExit(job: Job): string {
  if (job.state === JobState.JOB_STATE_PENDING) return job.reason ? `(${reasonKeyword(job.reason)})` : '';
  if (!isTerminal(job.state)) return reasonKeyword(job.reason);
  const keyword = reasonKeyword(job.reason);
  const redundant = keyword === '' || keyword === 'NonZeroExitCode' || keyword === 'Signal';
  return redundant ? exitSummary(job) : `${exitSummary(job)} (${keyword})`;
}

/** Seconds the job has run: wall time once ended, time since start while running, 0 while pending. */
export function elapsedSeconds(job: Job, nowMs: number = Date.now()): number {
  if (isTerminal(job.state) && job.usage && job.usage.wallTimeMs > 0) return job.usage.wallTimeMs / 1000;
  const start = Date.parse(job.startTime);
  if (Number.isNaN(start)) return 0;
  const end = job.endTime ? Date.parse(job.endTime) : nowMs;
  return Number.isNaN(end) ? 0 : Math.max(0, (end - start) / 1000);
}

const LIST_HEADERS = ['JOBID', 'NAME', 'USER', 'QUEUE', 'STATE', 'TIME', 'CPUS', 'MEM', 'CPUTIME', 'MAXMEM', 'REASON/EXIT'] as const;
const LIST_ALIGN: Align[] = ['right', 'left', 'left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'left'];

/** One `list` row; CPUTIME and MAXMEM are filled in for finished jobs only. */
export function jobRow(job: Job, nowMs: number = Date.now()): string[] {
  const done = isTerminal(job.state) && job.usage !== undefined;
  return [
    job.jobId,
    truncate(job.name, 24),
    job.runUser,
    job.schedulerQueueName || job.hpcqueueId,
    stateName(job.state, job.jobStatus),
    formatElapsed(elapsedSeconds(job, nowMs)),
    String(job.coreLimit),
    formatMiB(job.memLimit),
    done ? formatCpuTime(job.usage!.cpuTimeUsec) : '',
    done ? formatBytes(job.usage!.peakMemoryBytes, true) : '',
    reasonOrExit(job),
  ];
}

/** The squeue-like table of `list`. */
export function renderJobTable(jobs: readonly Job[], nowMs: number = Date.now()): string {
  return renderTable(LIST_HEADERS, jobs.map((j) => jobRow(j, nowMs)), LIST_ALIGN);
}

function orDash(text: string): string {
  return text === '' ? '-' : text;
}

function memoryLimit(mib: number): string {
  const human = formatMiB(mib, true);
  return human === `${mib} MiB` ? human : `${human} (${mib} MiB)`;
}

/** The key: value view of `status`. */
export function renderJobStatus(job: Job, nowMs: number = Date.now()): string {
  const ended = isTerminal(job.state);
  const u = job.usage;
  return renderKeyValues([
    ['Job ID', job.jobId],
    ['UUID', job.hpcjobUuid],
    ['Name', job.name],
    ['State', `${stateName(job.state, job.jobStatus)} (${job.jobStatus})`],
    ['Reason', orDash(job.reason)],
    ['Exit code', ended ? String(job.exitCode) : '-'],
    ['Signal', ended && job.termSignal ? signalName(job.termSignal) : '-'],
    ['Limit hit', orDash(job.limitHit)],
    ['User', job.runUser],
    ['Cluster', `${job.clusterId}${job.zone ? ` (zone ${job.zone})` : ''}`],
    ['Queue', `${job.schedulerQueueName} (${job.hpcqueueId})`],
    // On a cluster Slurm runs: the attempt's Slurm job, for squeue/sacct/scontrol there.
    ...(job.schedulerJobId ? [['Scheduler job', job.schedulerJobId] as [string, string]] : []),
    ['Priority', String(job.priority)],
    job.inputFile ? ['Input file', job.inputFile] : ['Command', job.cmdLine],
    ['Cores', String(job.coreLimit)],
    ['Memory limit', memoryLimit(job.memLimit)],
    ['Time limit', `${formatDurationShort(job.timeLimit)} (${job.timeLimit} s)`],
    ['Resource limit', orDash(job.resourceLimit)],
    ['Enforcement', orDash(job.enforcement)],
    ['Submitted', orDash(formatTime(job.submitTime))],
    ['Started', orDash(formatTime(job.startTime))],
    ['Ended', orDash(formatTime(job.endTime))],
    ['Elapsed', job.startTime ? formatElapsed(elapsedSeconds(job, nowMs)) : '-'],
    ['Stdout', orDash(job.stdoutPath)],
    ['Stderr', orDash(job.stderrPath)],
    ['CPU time', u ? `${formatCpuTime(u.cpuTimeUsec)} (user ${formatCpuTime(u.userCpuUsec)}, system ${formatCpuTime(u.systemCpuUsec)})` : '-'],
    ['Peak memory', u ? `${formatBytes(u.peakMemoryBytes)} (${u.peakMemoryBytes} bytes)` : '-'],
    ['Wall time', u ? `${formatElapsed(u.wallTimeMs / 1000)} (${(u.wallTimeMs / 1000).toFixed(3)} s)` : '-'],
    ['Submit type', `${job.submitType}${job.submitType === 0 ? ' (console)' : job.submitType === 1 ? ' (cli)' : ''}`],
    ['Client token', orDash(job.clientToken)],
  ]);
}

/** When the job entered its current state, for the first watch line (which carries no event). */
function currentStateTime(job: Job): string {
  if (isTerminal(job.state)) return job.endTime;
  if (job.state === JobState.JOB_STATE_RUNNING) return job.startTime;
  return job.submitTime;
}

/**
 * One `watch` line: `<local time>  job <id>  <STATE>  <detail>`; the detail is the reason, and
 * for a finished job also the exit code or signal.
 */
export function watchLine(job: Job, event: JobEvent | undefined): string {
  const state = event ? event.state : job.state;
  const reason = event ? event.reason : job.reason;
  const time = formatTime(event ? event.time : currentStateTime(job)) || '-';
  const parts = [time, `job ${job.jobId}`, stateName(state, event?.jobStatus ?? job.jobStatus).padEnd(13)];
  const detail: string[] = [];
  // The final outcome is known only when this line reports the job's current (terminal) state.
  if (isTerminal(state) && state === job.state) detail.push(exitSummary(job));
  if (reason) detail.push(reason);
  if (detail.length) parts.push(detail.join('  '));
  return parts.join('  ').trimEnd();
}

/** The `queues` table plus the node line. */
export function renderQueues(res: ListQueuesResponse): string {
  const headers = ['CLUSTER', 'QUEUE_ID', 'NAME', 'DEFAULT', 'PRIO', 'CORES', 'MEM', 'TIME', 'MAXRUN', 'MAXPEND', 'PENDING', 'RUNNING'];
  const align: Align[] = ['left', 'left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'];
  const limit = (n: number) => (n > 0 ? String(n) : '-');
  const rows = res.queues.map((q) => [
    q.clusterId,
    q.hpcqueueId,
    q.schedulerQueueName,
    q.isDefault ? 'yes' : '',
    String(q.priority),
    `${q.defaultCores}/${q.maxCores}`,
    `${formatMiB(q.defaultMemMb)}/${formatMiB(q.maxMemMb)}`,
    `${formatDurationShort(q.defaultTimeSeconds)}/${formatDurationShort(q.maxTimeSeconds)}`,
    limit(q.maxRunning),
    limit(q.maxPending),
    String(q.pendingCount),
    String(q.runningCount),
  ]);
  return `${renderTable(headers, rows, align)}\n${nodeLine(res)}\n`;
}

export function nodeLine(res: ListQueuesResponse): string {
  return (
    `node: enforcement ${res.enforcement || 'unknown'}, cores ${res.freeCores}/${res.nodeCores} free, ` +
    `memory ${formatMiB(res.freeMemMb)}/${formatMiB(res.nodeMemMb)} free`
  );
}
