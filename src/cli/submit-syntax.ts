/**
 * Values of `hpcq submit` options that follow Slurm's syntax, shared by the command line and the
 * `#SBATCH` / `#HPCQ` directives of a batch script. Pure: no I/O.
 */
import { DependencyCondition, type Dependency } from '../gen/hpcq/v1/job.js';
import { parseInteger } from './format.js';

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
