/**
 * Job groups (Tencent Batch's Job.Tasks + Dependences, BatchCompute's DAG job): the shape of a group
 * checked before anything is stored. Pure. Each task has a unique name; each dependence says
 * end_task runs after start_task completed; the graph must be acyclic. The tasks themselves are
 * validated as jobs (validate-submit.ts).
 */
import { invalidParameter } from './errors.js';
import { quoteValue } from './quote.js';
import { JOB_NAME_MAX, JOB_NAME_RE } from './validate-submit.js';

/** Most tasks in one group (the bench's 1,000-task DAG fits). */
export const GROUP_TASKS_MAX = 1000;

/** Which tasks each task waits for, by index: parents[i] are the start tasks of task i. */
export interface GroupShape {
  parents: number[][];
}

export function checkGroupShape(name: string, taskNames: readonly string[], dependences: readonly { startTask: string; endTask: string }[]): GroupShape {
  if (name === '') throw invalidParameter('MissingParameter.JobGroupName', 'name', 'the group needs a name');
  if (name.length > JOB_NAME_MAX || !JOB_NAME_RE.test(name)) {
    throw invalidParameter('InvalidParameter.JobGroupName', 'name', `group name ${quoteValue(name)} must be 1..${JOB_NAME_MAX} of [A-Za-z0-9_-], not starting with a digit`);
  }
  if (taskNames.length === 0) throw invalidParameter('MissingParameter.Tasks', 'tasks', 'a group needs at least one task');
  if (taskNames.length > GROUP_TASKS_MAX) throw invalidParameter('InvalidParameter.TooManyTasks', 'tasks', `a group may have at most ${GROUP_TASKS_MAX} tasks`);
  const index = new Map<string, number>();
  for (const [i, task] of taskNames.entries()) {
    const field = `tasks.${i}.task_name`;
    if (task === '') throw invalidParameter('MissingParameter.TaskName', field, `task ${i} needs a task_name`);
    if (task.length > JOB_NAME_MAX) throw invalidParameter('InvalidParameter.TaskNameTooLong', field, `task_name must be at most ${JOB_NAME_MAX} characters, got ${task.length}`);
    if (!JOB_NAME_RE.test(task)) throw invalidParameter('InvalidParameter.TaskName', field, `task_name ${quoteValue(task)} may contain only letters, digits, - and _, and must not start with a digit`);
    if (index.has(task)) throw invalidParameter('InvalidParameter.TaskNameDuplicate', field, `task_name ${task} is used twice`);
    index.set(task, i);
  }
  const parents: number[][] = taskNames.map(() => []);
  for (const [i, dep] of dependences.entries()) {
    const start = index.get(dep.startTask);
    const end = index.get(dep.endTask);
    if (start === undefined || end === undefined) {
      const missing = start === undefined ? dep.startTask : dep.endTask;
      throw invalidParameter('InvalidParameterValue.DependenceNotFoundTaskName', `dependences.${i}`, `dependence names task ${quoteValue(missing)}, which the group does not have`);
    }
    if (!parents[end]!.includes(start)) parents[end]!.push(start);
  }
  assertAcyclic(parents, taskNames);
  return { parents };
}

/** Kahn's algorithm: every task must be reachable in some order; what remains is a loop. */
function assertAcyclic(parents: readonly number[][], taskNames: readonly string[]): void {
  const waiting = parents.map((p) => p.length);
  const children: number[][] = parents.map(() => []);
  parents.forEach((ps, child) => ps.forEach((p) => children[p]!.push(child)));
  const ready = waiting.flatMap((n, i) => (n === 0 ? [i] : []));
  let ordered = 0;
  while (ready.length > 0) {
    const task = ready.pop()!;
    ordered++;
    for (const child of children[task]!) if (--waiting[child]! === 0) ready.push(child);
  }
  if (ordered < taskNames.length) {
    const inLoop = waiting.flatMap((n, i) => (n > 0 ? [taskNames[i]!] : [])).slice(0, 5);
    throw invalidParameter('InvalidParameterValue.DependenceUnfeasible', 'dependences', `the dependences form a loop (through ${inLoop.join(', ')})`);
  }
}
