import { describe, expect, it } from 'vitest';
import { arrayJobState, emptyCounts, type InstanceCounts } from '../../src/core/array-job.js';
import type { JobState } from '../../src/core/job.js';

const counts = (c: Partial<InstanceCounts>): InstanceCounts => ({ ...emptyCounts(), ...c });

describe('arrayJobState', () => {
  it.each<[string, Partial<InstanceCounts>, boolean, JobState, JobState]>([
    ['all pending', { PENDING: 3 }, false, 'PENDING', 'PENDING'],
    ['one started', { PENDING: 2, RUNNING: 1 }, false, 'PENDING', 'RUNNING'],
    ['one done, the others wait', { PENDING: 2, COMPLETED: 1 }, false, 'RUNNING', 'RUNNING'],
    ['a retried instance back to pending keeps the array running', { PENDING: 3 }, false, 'RUNNING', 'RUNNING'],
    ['all completed', { COMPLETED: 3 }, false, 'RUNNING', 'COMPLETED'],
    ['one failed, the rest completed', { COMPLETED: 2, FAILED: 1 }, false, 'RUNNING', 'FAILED'],
    ['one timed out', { COMPLETED: 2, TIMEOUT: 1 }, false, 'RUNNING', 'FAILED'],
    ['one instance cancelled by itself', { COMPLETED: 2, CANCELLED: 1 }, false, 'RUNNING', 'FAILED'],
    ['the array cancelled', { COMPLETED: 1, CANCELLED: 2 }, true, 'RUNNING', 'CANCELLED'],
    ['every instance cancelled before starting', { CANCELLED: 3 }, false, 'PENDING', 'CANCELLED'],
  ])('%s -> %s', (_title, c, cancelled, current, expected) => {
    expect(arrayJobState(counts(c), 3, cancelled, current)).toBe(expected);
  });
});
