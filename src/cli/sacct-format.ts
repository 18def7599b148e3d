/**
 * sacct's output for `hpcq history`: -o/--format takes comma-separated field names, each with an
 * optional `%width` (JobID,JobName%30,State). As in sacct, columns have a fixed width, a longer
 * value is cut and ends in `+`, JobID is left-justified and the others right-justified, and a line
 * of dashes follows the header; -p/-P print `|`-separated values instead. Pure: no I/O.
 */
import { JobState, type Job } from '../gen/hpcq/v1/job.js';
import { formatBytes, formatCpuTime, formatMiB, formatTime } from './format.js';
import { elapsedSeconds, reasonKeyword, stateName } from './job-view.js';

interface FieldSpec {
  /** The name as sacct prints it in the header. */
  name: string;
  width: number;
  value: (job: Job, ctx: { nowMs: number; node: string }) => string;
}

/** sacct's [D-]HH:MM:SS, zero-padded (Elapsed, Timelimit). */
export function formatSacctDuration(seconds: number): string {
  const total = Number.isFinite(seconds) && seconds > 0 ? Math.floor(seconds) : 0;
  const p = (n: number) => String(n).padStart(2, '0');
  const d = Math.floor(total / 86_400);
  const hms = `${p(Math.floor((total % 86_400) / 3_600))}:${p(Math.floor((total % 3_600) / 60))}:${p(total % 60)}`;
  return d > 0 ? `${d}-${hms}` : hms;
}

const jobId = (j: Job) => (j.arrayJobId ? `${j.arrayJobId}_${j.arrayIndex}` : j.jobId);

const FIELD_LIST: FieldSpec[] = [
  { name: 'JobID', width: 12, value: jobId },
  { name: 'JobIDRaw', width: 12, value: (j) => j.jobId },
  { name: 'JobName', width: 10, value: (j) => j.name },
  { name: 'User', width: 9, value: (j) => j.runUser },
  { name: 'Partition', width: 10, value: (j) => j.schedulerQueueName || j.hpcqueueId },
  { name: 'Cluster', width: 10, value: (j) => j.clusterId },
  { name: 'AllocCPUS', width: 10, value: (j) => String(j.coreLimit) },
  { name: 'NCPUS', width: 10, value: (j) => String(j.coreLimit) },
  { name: 'ReqMem', width: 10, value: (j) => formatMiB(j.memLimit) },
  { name: 'State', width: 10, value: (j) => stateName(j.state, j.jobStatus) },
  // sacct's exit code is <code>:<signal>.
  { name: 'ExitCode', width: 8, value: (j) => `${j.exitCode}:${j.termSignal}` },
  { name: 'Elapsed', width: 10, value: (j, c) => formatSacctDuration(elapsedSeconds(j, c.nowMs)) },
  { name: 'Timelimit', width: 10, value: (j) => formatSacctDuration(j.timeLimit) },
  { name: 'Submit', width: 19, value: (j) => formatTime(j.submitTime) || 'Unknown' },
  { name: 'Start', width: 19, value: (j) => formatTime(j.startTime) || 'None' },
  { name: 'End', width: 19, value: (j) => formatTime(j.endTime) || (j.state === JobState.JOB_STATE_RUNNING ? 'Unknown' : 'None') },
  { name: 'TotalCPU', width: 10, value: (j) => (j.usage ? formatCpuTime(j.usage.cpuTimeUsec) : '') },
  { name: 'MaxRSS', width: 10, value: (j) => (j.usage ? formatBytes(j.usage.peakMemoryBytes, true) : '') },
  { name: 'Reason', width: 20, value: (j) => reasonKeyword(j.reason) || 'None' },
  { name: 'NodeList', width: 15, value: (j, c) => (j.startTime ? c.node : 'None assigned') },
  { name: 'WorkDir', width: 20, value: (j) => j.workingDir },
  { name: 'Comment', width: 15, value: (j) => j.description },
  { name: 'Priority', width: 10, value: (j) => String(j.priority) },
];
const FIELDS = new Map(FIELD_LIST.map((f) => [f.name.toLowerCase(), f]));

export const SACCT_FIELD_NAMES = FIELD_LIST.map((f) => f.name).join(',');
/** What `hpcq history` shows without -o. */
export const SACCT_DEFAULT_FORMAT = 'JobID,JobName,User,Partition,State,ExitCode,Elapsed,Start,End';

export interface SacctColumn {
  field: FieldSpec;
  width: number;
}

/** Parses -o (case-insensitive names, as sacct); throws an Error naming an unknown field. */
export function parseSacctFormat(spec: string): SacctColumn[] {
  const columns: SacctColumn[] = [];
  for (const item of spec.split(',')) {
    const m = /^\s*([A-Za-z]+)(?:%(\d+))?\s*$/.exec(item);
    if (!m) throw new Error(`invalid format item ${JSON.stringify(item)}: use Name or Name%width, comma-separated`);
    const field = FIELDS.get(m[1]!.toLowerCase());
    if (!field) throw new Error(`unknown sacct field ${JSON.stringify(m[1])} (hpcq knows ${SACCT_FIELD_NAMES})`);
    columns.push({ field, width: m[2] !== undefined ? Math.max(1, Number(m[2])) : field.width });
  }
  return columns;
}

/** A cell of a column: cut to its width (a value ends in `+` then; a header is only cut), justified. */
function fit(value: string, column: SacctColumn, header = false): string {
  const cut = value.length <= column.width ? value : header ? value.slice(0, column.width) : `${value.slice(0, column.width - 1)}+`;
  return column.field.name.startsWith('JobID') ? cut.padEnd(column.width) : cut.padStart(column.width);
}

export interface SacctRenderOptions {
  noHeader?: boolean;
  /** `|` after every value (-p), or between values only (-P); undefined: fixed-width columns. */
  parsable?: 'trailing' | 'between';
  nowMs?: number;
  /** The node jobs ran on (NodeList). */
  node?: string;
}

/** The lines sacct would print for `jobs`, each ending in a newline. */
export function renderSacct(columns: readonly SacctColumn[], jobs: readonly Job[], options: SacctRenderOptions = {}): string {
  const ctx = { nowMs: options.nowMs ?? Date.now(), node: options.node ?? '' };
  const lines: string[] = [];
  if (options.parsable) {
    const join = (cells: string[]) => cells.join('|') + (options.parsable === 'trailing' ? '|' : '');
    if (!options.noHeader) lines.push(join(columns.map((c) => c.field.name)));
    for (const job of jobs) lines.push(join(columns.map((c) => c.field.value(job, ctx))));
  } else {
    if (!options.noHeader) {
      lines.push(columns.map((c) => fit(c.field.name, c, true)).join(' ').trimEnd());
      lines.push(columns.map((c) => '-'.repeat(c.width)).join(' '));
    }
    for (const job of jobs) lines.push(columns.map((c) => fit(c.field.value(job, ctx), c)).join(' ').trimEnd());
  }
  return lines.map((l) => `${l}\n`).join('');
}
