/**
 * squeue's -o/--format for `hpcq squeue`: `%[.][size]type` fields between literal text, e.g.
 * `%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R`. As in Slurm, a size pads the field to that width and
 * cuts a longer value to it, `.` right-justifies, and a field without a size is printed as it is.
 * Pure: no I/O.
 */
import { JobState, type Job } from '../gen/hpcq/v1/job.js';
import { formatElapsed, formatMiB, formatTime } from './format.js';
import { elapsedSeconds, isTerminal, reasonKeyword, stateName } from './job-view.js';

/** What a field may need besides the job: the node the jobs run on and the time "now". */
export interface SqueueContext {
  /** The node name shown for running and finished jobs (%N, %R). */
  node: string;
  nowMs: number;
}

interface FieldSpec {
  header: string;
  value: (job: Job, ctx: SqueueContext) => string;
}

/** squeue's short state codes (%t). */
const SHORT_STATE: Record<number, string> = {
  [JobState.JOB_STATE_PENDING]: 'PD',
  [JobState.JOB_STATE_RUNNING]: 'R',
  [JobState.JOB_STATE_COMPLETED]: 'CD',
  [JobState.JOB_STATE_FAILED]: 'F',
  [JobState.JOB_STATE_CANCELLED]: 'CA',
  [JobState.JOB_STATE_TIMEOUT]: 'TO',
  [JobState.JOB_STATE_OUT_OF_MEMORY]: 'OOM',
  [JobState.JOB_STATE_NODE_FAIL]: 'NF',
};

export function shortState(state: JobState): string {
  return SHORT_STATE[state] ?? '?';
}

/** Array instances are shown as Slurm shows array tasks: <array job id>_<index>. */
function slurmJobId(job: Job): string {
  return job.arrayJobId ? `${job.arrayJobId}_${job.arrayIndex}` : job.jobId;
}

/** %R: why a job waits or failed, in parentheses; else the node it ran on. */
function nodeOrReason(job: Job, ctx: SqueueContext): string {
  const keyword = reasonKeyword(job.reason);
  if (job.state === JobState.JOB_STATE_PENDING) return `(${keyword || 'None'})`;
  if (job.state === JobState.JOB_STATE_RUNNING || job.state === JobState.JOB_STATE_COMPLETED) return ctx.node;
  return keyword ? `(${keyword})` : ctx.node;
}

const orNA = (text: string) => text || 'N/A';

const FIELDS: Record<string, FieldSpec> = {
  i: { header: 'JOBID', value: slurmJobId },
  A: { header: 'JOBID', value: (j) => j.jobId },
  F: { header: 'ARRAY_JOB_ID', value: (j) => j.arrayJobId || j.jobId },
  K: { header: 'ARRAY_TASK_ID', value: (j) => (j.arrayJobId ? String(j.arrayIndex) : 'N/A') },
  j: { header: 'NAME', value: (j) => j.name },
  u: { header: 'USER', value: (j) => j.runUser },
  T: { header: 'STATE', value: (j) => stateName(j.state, j.jobStatus) },
  t: { header: 'ST', value: (j) => shortState(j.state) },
  M: { header: 'TIME', value: (j, c) => formatElapsed(elapsedSeconds(j, c.nowMs)) },
  l: { header: 'TIME_LIMIT', value: (j) => formatElapsed(j.timeLimit) },
  L: {
    header: 'TIME_LEFT',
    value: (j, c) => (isTerminal(j.state) ? '0:00' : formatElapsed(Math.max(0, j.timeLimit - elapsedSeconds(j, c.nowMs)))),
  },
  D: { header: 'NODES', value: () => '1' },
  R: { header: 'NODELIST(REASON)', value: nodeOrReason },
  N: { header: 'NODELIST', value: (j, c) => (j.state === JobState.JOB_STATE_PENDING ? '' : c.node) },
  r: { header: 'REASON', value: (j) => reasonKeyword(j.reason) || 'None' },
  P: { header: 'PARTITION', value: (j) => j.schedulerQueueName || j.hpcqueueId },
  C: { header: 'CPUS', value: (j) => String(j.coreLimit) },
  m: { header: 'MIN_MEMORY', value: (j) => formatMiB(j.memLimit) },
  V: { header: 'SUBMIT_TIME', value: (j) => orNA(formatTime(j.submitTime)) },
  S: { header: 'START_TIME', value: (j) => orNA(formatTime(j.startTime)) },
  e: { header: 'END_TIME', value: (j) => orNA(formatTime(j.endTime)) },
  p: { header: 'PRIORITY', value: (j) => String(j.priority) },
  k: { header: 'COMMENT', value: (j) => j.description },
  Z: { header: 'WORK_DIR', value: (j) => j.workingDir },
  o: { header: 'COMMAND', value: (j) => j.cmdLine || j.argv.join(' ') || j.inputFile },
};

export const SQUEUE_FIELD_LETTERS = Object.keys(FIELDS).join('');

export type FormatPart = { text: string } | { field: string; width?: number; right: boolean };

/** Parses a squeue -o format; throws an Error naming an unknown field. */
export function parseSqueueFormat(spec: string): FormatPart[] {
  const parts: FormatPart[] = [];
  let text = '';
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (c !== '%') {
      text += c;
      continue;
    }
    const m = /^%(\.?)(\d*)([A-Za-z%])/.exec(spec.slice(i));
    if (!m) throw new Error(`invalid format ${JSON.stringify(spec)}: a % must be followed by [.][size] and a field letter`);
    i += m[0].length - 1;
    if (m[3] === '%') {
      text += '%';
      continue;
    }
    if (!FIELDS[m[3]!]) throw new Error(`unknown squeue format field %${m[3]} (hpcq knows %${SQUEUE_FIELD_LETTERS.split('').join(' %')})`);
    if (m[1] === '.' && m[2] === '') throw new Error(`invalid format field ${m[0]}: right-justifying (.) needs a size, as in %.8${m[3]}`);
    if (text) parts.push({ text });
    text = '';
    parts.push({ field: m[3]!, right: m[1] === '.', ...(m[2] ? { width: Number(m[2]) } : {}) });
  }
  if (text) parts.push({ text });
  return parts;
}

function cell(value: string, part: { width?: number; right: boolean }): string {
  if (part.width === undefined) return value;
  const cut = value.slice(0, part.width);
  return part.right ? cut.padStart(part.width) : cut.padEnd(part.width);
}

/** One output line per job (and the header line unless `noHeader`), each ending in a newline. */
export function renderSqueueFormat(parts: readonly FormatPart[], jobs: readonly Job[], ctx: SqueueContext, noHeader = false): string {
  const line = (value: (part: { field: string; width?: number; right: boolean }) => string) =>
    parts.map((p) => ('text' in p ? p.text : cell(value(p), p))).join('').trimEnd() + '\n';
  let out = noHeader ? '' : line((p) => FIELDS[p.field]!.header);
  for (const job of jobs) out += line((p) => FIELDS[p.field]!.value(job, ctx));
  return out;
}
