/**
 * Job dependencies (Slurm's --dependency, Tencent Batch's Dependences): when a dependent may start,
 * judged on the states of the jobs it names. Pure. Each dependency is, at any moment:
 *
 * - waiting: its job has not reached the point the condition needs;
 * - satisfied: it has (and will stay so: the states it looks at are final or past);
 * - never: it can no longer be met (afterok on a job that ended otherwise, afternotok on a job
 *   that completed). The engine then ends the dependent CANCELLED / DependencyNeverSatisfied,
 *   which is itself an end its own dependents are judged on: nothing waits for ever.
 *
 * A dependent starts when every dependency is satisfied, and is never satisfied as soon as one is never.
 */
import { isTerminal, type JobState } from './job.js';

/** Slurm's names: afterok, afterany, afternotok, after (= after start). */
export type DependencyCondition = 'afterok' | 'afterany' | 'afternotok' | 'after';

export const DEPENDENCY_CONDITIONS: readonly DependencyCondition[] = ['afterok', 'afterany', 'afternotok', 'after'];

/** One stored dependency of a job. */
export interface JobDependency {
  jobId: number;
  condition: DependencyCondition;
}

export type DependencyStatus = 'waiting' | 'satisfied' | 'never';

/** The status of one dependency, given the state of the job it names. */
export function dependencyStatus(condition: DependencyCondition, parent: JobState): DependencyStatus {
  switch (condition) {
    case 'after':
      return parent === 'PENDING' ? 'waiting' : 'satisfied';
    case 'afterany':
      return isTerminal(parent) ? 'satisfied' : 'waiting';
    case 'afterok':
      if (!isTerminal(parent)) return 'waiting';
      return parent === 'COMPLETED' ? 'satisfied' : 'never';
    case 'afternotok':
      if (!isTerminal(parent)) return 'waiting';
      return parent === 'COMPLETED' ? 'never' : 'satisfied';
  }
}

/**
 * The status of a dependent: never as soon as one dependency is never (naming it), satisfied when
 * all are, else waiting. `stateOf` gives each named job's state (undefined: the job is gone).
 */
export function dependentStatus(
  dependencies: readonly JobDependency[],
  stateOf: (jobId: number) => JobState | undefined,
): { status: DependencyStatus; reason?: string } {
  let waiting = false;
  for (const dep of dependencies) {
    const state = stateOf(dep.jobId);
    if (state === undefined) {
      return { status: 'never', reason: `DependencyNeverSatisfied: job ${dep.jobId} no longer exists (${dep.condition})` };
    }
    const status = dependencyStatus(dep.condition, state);
    if (status === 'never') return { status, reason: `DependencyNeverSatisfied: job ${dep.jobId} ended ${state} (${dep.condition})` };
    if (status === 'waiting') waiting = true;
  }
  return { status: waiting ? 'waiting' : 'satisfied' };
}

/**
 * In a batch of new jobs stored together (a job group), a dependency may name a job of the same
 * batch before its id exists: jobId -1 is the batch's first job, -2 its second, and so on. This
 * gives the real id once the batch's first id is known.
 */
export function resolveBatchDependency(dep: JobDependency, firstJobId: number): JobDependency {
  return dep.jobId < 0 ? { ...dep, jobId: firstJobId - dep.jobId - 1 } : dep;
}
