import { describe, expect, it } from 'vitest';
import { dependencyStatus, dependentStatus, resolveBatchDependency, type DependencyCondition, type DependencyStatus } from '../../src/core/dependency.js';
import { JOB_STATES, type JobState } from '../../src/core/job.js';

// The expected table, written out independently: Slurm's afterok / afterany / afternotok / after.
const EXPECTED: Record<DependencyCondition, Record<JobState, DependencyStatus>> = {
  afterok: { PENDING: 'waiting', RUNNING: 'waiting', COMPLETED: 'satisfied', FAILED: 'never', CANCELLED: 'never', TIMEOUT: 'never', OUT_OF_MEMORY: 'never', NODE_FAIL: 'never' },
  afterany: { PENDING: 'waiting', RUNNING: 'waiting', COMPLETED: 'satisfied', FAILED: 'satisfied', CANCELLED: 'satisfied', TIMEOUT: 'satisfied', OUT_OF_MEMORY: 'satisfied', NODE_FAIL: 'satisfied' },
  afternotok: { PENDING: 'waiting', RUNNING: 'waiting', COMPLETED: 'never', FAILED: 'satisfied', CANCELLED: 'satisfied', TIMEOUT: 'satisfied', OUT_OF_MEMORY: 'satisfied', NODE_FAIL: 'satisfied' },
  after: { PENDING: 'waiting', RUNNING: 'satisfied', COMPLETED: 'satisfied', FAILED: 'satisfied', CANCELLED: 'satisfied', TIMEOUT: 'satisfied', OUT_OF_MEMORY: 'satisfied', NODE_FAIL: 'satisfied' },
};

describe('dependencyStatus', () => {
  const rows = (Object.keys(EXPECTED) as DependencyCondition[]).flatMap((c) => JOB_STATES.map((s) => [c, s, EXPECTED[c][s]] as const));
  it.each(rows)('%s on a %s job -> %s', (condition, state, expected) => {
    expect(dependencyStatus(condition, state)).toBe(expected);
  });
});

describe('dependentStatus', () => {
  const states: Record<number, JobState> = { 1: 'COMPLETED', 2: 'RUNNING', 3: 'FAILED' };
  const stateOf = (id: number) => states[id];
  it('satisfied only when every dependency is', () => {
    expect(dependentStatus([{ jobId: 1, condition: 'afterok' }, { jobId: 3, condition: 'afterany' }], stateOf)).toEqual({ status: 'satisfied' });
    expect(dependentStatus([{ jobId: 1, condition: 'afterok' }, { jobId: 2, condition: 'afterok' }], stateOf)).toEqual({ status: 'waiting' });
  });
  it('never as soon as one is never, naming the job, its end and the condition, even while others wait', () => {
    expect(dependentStatus([{ jobId: 2, condition: 'afterok' }, { jobId: 3, condition: 'afterok' }], stateOf)).toEqual({
      status: 'never',
      reason: 'DependencyNeverSatisfied: job 3 ended FAILED (afterok)',
    });
  });
  it('a job that no longer exists can never satisfy it', () => {
    expect(dependentStatus([{ jobId: 9, condition: 'afterany' }], stateOf)).toMatchObject({ status: 'never', reason: expect.stringContaining('job 9 no longer exists') });
  });
  it('no dependencies: satisfied', () => {
    expect(dependentStatus([], stateOf)).toEqual({ status: 'satisfied' });
  });
});

describe('resolveBatchDependency', () => {
  it('turns -1, -2 ... into the ids of the batch\'s first, second ... job; leaves real ids alone', () => {
    expect(resolveBatchDependency({ jobId: -1, condition: 'afterok' }, 40)).toEqual({ jobId: 40, condition: 'afterok' });
    expect(resolveBatchDependency({ jobId: -3, condition: 'afterany' }, 40)).toEqual({ jobId: 42, condition: 'afterany' });
    expect(resolveBatchDependency({ jobId: 7, condition: 'afterok' }, 40)).toEqual({ jobId: 7, condition: 'afterok' });
  });
});
