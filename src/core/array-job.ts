/**
 * Array jobs (Slurm --array, Tencent TaskInstanceNum, BatchCompute InstanceCount, SAE Replicas):
 * an array job never runs itself; its instances are jobs of their own, and its state follows
 * theirs. Pure. The array job is:
 *
 * - PENDING until an instance starts;
 * - RUNNING while any instance runs or still waits, once one has started;
 * - COMPLETED when every instance completed; CANCELLED when the array was cancelled (or every
 *   instance ended without starting); otherwise FAILED, once every instance has ended.
 */
import { isTerminal, JOB_STATES, type JobState } from './job.js';

export type InstanceCounts = Record<JobState, number>;

export function emptyCounts(): InstanceCounts {
  return Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as InstanceCounts;
}

/** The array job's state, from its instances' counts. */
export function arrayJobState(counts: InstanceCounts, count: number, cancelRequested: boolean, current: JobState): JobState {
  let ended = 0;
  for (const state of JOB_STATES) if (isTerminal(state)) ended += counts[state];
  const started = current === 'RUNNING' || counts.RUNNING > 0 || ended - counts.CANCELLED > 0;
  if (ended >= count) {
    if (counts.COMPLETED === count) return 'COMPLETED';
    return cancelRequested || !started ? 'CANCELLED' : 'FAILED';
  }
  return started ? 'RUNNING' : 'PENDING';
}

/** `<array job id>_<index>`: an instance as Slurm names it. */
export const INSTANCE_ID_PATTERN = /^(\d{1,15})_(\d{1,7})$/;
