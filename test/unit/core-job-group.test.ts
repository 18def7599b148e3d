import { describe, expect, it } from 'vitest';
import { HpcqError } from '../../src/core/errors.js';
import { checkGroupShape } from '../../src/core/job-group.js';

const dep = (startTask: string, endTask: string) => ({ startTask, endTask });
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return err instanceof HpcqError ? `${err.code}@${err.field}` : String(err);
  }
}

describe('checkGroupShape', () => {
  it("gives each task its parents: Tencent's pre_task -> post_task, and a diamond", () => {
    expect(checkGroupShape('g', ['pre_task', 'post_task'], [dep('pre_task', 'post_task')]).parents).toEqual([[], [0]]);
    expect(checkGroupShape('g', ['a', 'b', 'c', 'd'], [dep('a', 'b'), dep('a', 'c'), dep('b', 'd'), dep('c', 'd'), dep('a', 'b')]).parents).toEqual([[], [0], [0], [1, 2]]);
  });

  it.each([
    ['a loop', ['a', 'b', 'c'], [dep('a', 'b'), dep('b', 'c'), dep('c', 'a')], 'InvalidParameterValue.DependenceUnfeasible@dependences'],
    ['a task on itself', ['a'], [dep('a', 'a')], 'InvalidParameterValue.DependenceUnfeasible@dependences'],
    ['an unknown start task', ['a'], [dep('x', 'a')], 'InvalidParameterValue.DependenceNotFoundTaskName@dependences.0'],
    ['an unknown end task', ['a'], [dep('a', 'y')], 'InvalidParameterValue.DependenceNotFoundTaskName@dependences.0'],
    ['duplicate task names', ['a', 'a'], [], 'InvalidParameter.TaskNameDuplicate@tasks.1.task_name'],
    ['an empty task name', ['a', ''], [], 'MissingParameter.TaskName@tasks.1.task_name'],
    ['a task name with a space', ['a b'], [], 'InvalidParameter.TaskName@tasks.0.task_name'],
    ['a task name over 64 characters', ['t'.repeat(65)], [], 'InvalidParameter.TaskNameTooLong@tasks.0.task_name'],
    ['no tasks', [], [], 'MissingParameter.Tasks@tasks'],
  ])('%s is refused', (_title, tasks, deps, expected) => {
    expect(codeOf(() => checkGroupShape('g', tasks, deps))).toBe(expected);
  });

  it('a long chain and a wide fan-out are fine', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `t${i}`);
    expect(codeOf(() => checkGroupShape('chain', names, names.slice(1).map((n, i) => dep(names[i]!, n))))).toBe('ok');
    expect(codeOf(() => checkGroupShape('fan', names, names.slice(1).map((n) => dep('t0', n))))).toBe('ok');
  });

  it('the group name follows the job-name rules', () => {
    expect(codeOf(() => checkGroupShape('', ['a'], []))).toBe('MissingParameter.JobGroupName@name');
    expect(codeOf(() => checkGroupShape('9lives', ['a'], []))).toBe('InvalidParameter.JobGroupName@name');
  });
});
