/**
 * Values of `hpcq submit` options that follow Slurm's syntax, shared by the command line and the
 * `#SBATCH` / `#HPCQ` directives of a batch script. Pure: no I/O.
 */
import { DependencyCondition, type Dependency } from '../gen/hpcq/v1/job.js';
import { UsageError } from './errors.js';
import { parseDuration, parseInteger, parseMemMiB } from './format.js';

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

/** --retry-exit-codes 1,2,75: comma-separated integers; repeatable. */
export function parseExitCodes(value: string, previous: number[] = []): number[] {
  const codes = [...previous];
  for (const item of value.split(',')) {
    if (item.trim() === '') continue;
    codes.push(parseInteger(item, 'exit code'));
  }
  if (codes.length === 0) throw new Error(`--retry-exit-codes takes a comma-separated list of exit codes, got ${JSON.stringify(value)}`);
  return codes;
}

/**
 * --array in Slurm's syntax, for hpcq's arrays of `count` instances indexed from 0: `N` (N
 * instances), `0-M` (M+1 instances), each optionally with `%P` (at most P running at once).
 * Other index sets (`1-10`, `0-9:2`, `1,3,5`) cannot be expressed and are refused.
 */
export function parseArraySpec(value: string): { count: number; parallelism: number } {
  const m = /^(?:(\d+)|0-(\d+))(?:%(\d+))?$/.exec(value.trim());
  if (!m) throw new Error(`--array takes N, 0-M or either with %P (instances are indexed from 0), got ${JSON.stringify(value)}`);
  const count = m[1] !== undefined ? Number(m[1]) : Number(m[2]) + 1;
  if (count < 1) throw new Error('--array needs at least one instance');
  return { count, parallelism: m[3] !== undefined ? Number(m[3]) : 0 };
}

/** --begin: an absolute time as the daemon takes it (RFC 3339 or Unix seconds), or now+<duration>. */
export function parseBeginTime(value: string, nowMs: number = Date.now()): string {
  const v = value.trim();
  const relative = /^now\+(.+)$/i.exec(v);
  if (relative) return new Date(nowMs + parseDuration(relative[1]!) * 1000).toISOString();
  if (/^\d{9,11}$/.test(v) || !Number.isNaN(Date.parse(v))) return v;
  throw new Error(`--begin takes RFC 3339 (2026-01-02T03:04:05Z), Unix seconds or now+<duration>, got ${JSON.stringify(value)}`);
}

/** sbatch --mem: MiB or a K/M/G/T size; 0 (Slurm: all of the node's memory) is refused. */
export function parseSlurmMem(value: string): number {
  const mib = parseMemMiB(value);
  if (mib === 0) throw new Error("--mem=0 (all of the node's memory) is not supported: give a size");
  return mib;
}

/** sbatch -c: a core count of at least 1. */
export function parseCores(value: string): number {
  const n = parseInteger(value, 'core count');
  if (n < 1) throw new Error(`the core count must be at least 1, got ${n}`);
  return n;
}

/** The submit options that sbatch names differently from EHPC, both ways. */
export interface SbatchNamedOptions {
  /** -t/--time, already read in Slurm's units: seconds. */
  time?: number;
  mem?: number;
  cpusPerTask?: number;
  partition?: string;
  timeLimit?: number;
  memLimit?: number;
  coreLimit?: number;
  queue?: string;
}

/**
 * The sbatch-named flags (-t, --mem, -c, -p) set the same fields as the EHPC ones (--time-limit,
 * --mem-limit, --core-limit, --queue), each read in its own units; giving both of a pair is a mistake.
 */
export function withSlurmFlags<T extends SbatchNamedOptions>(opts: T): T {
  const pairs = [
    ['time', 'timeLimit', '-t/--time', '--time-limit'],
    ['mem', 'memLimit', '--mem', '--mem-limit'],
    ['cpusPerTask', 'coreLimit', '-c/--cpus-per-task', '--core-limit'],
    ['partition', 'queue', '-p/--partition', '--queue'],
  ] as const;
  const out: Record<string, unknown> = { ...(opts as Record<string, unknown>) };
  for (const [slurm, ehpc, slurmFlag, ehpcFlag] of pairs) {
    if (opts[slurm] === undefined) continue;
    if (opts[ehpc] !== undefined) throw new UsageError(`give ${slurmFlag} or ${ehpcFlag}, not both`, ehpc);
    out[ehpc] = opts[slurm];
    delete out[slurm];
  }
  return out as unknown as T;
}
