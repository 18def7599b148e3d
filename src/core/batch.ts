/**
 * Jobs stored together in one batch (a job group's tasks, an array job and its instances) name
 * each other before their ids exist: a negative id is a job of the same batch, -1 its first, -2
 * its second, and so on. The store resolves them once the batch's first id is known. Pure.
 */
import { resolveBatchDependency } from './dependency.js';
import type { JobSpec } from './job.js';

/** `spec` as stored at position i of a batch whose first id is `firstJobId`. */
export function resolveBatchSpec(spec: JobSpec, firstJobId: number, batchSize: number, group: { name: string } | undefined): JobSpec {
  const resolved: JobSpec = { ...spec, dependsOn: spec.dependsOn.map((d) => resolveBatchDependency(d, firstJobId)) };
  // The instances of an array task belong to their array, not to the group.
  if (group && !spec.arrayInstance) resolved.group = { firstJobId, size: batchSize, name: group.name, taskName: spec.group?.taskName ?? '' };
  if (spec.arrayInstance && spec.arrayInstance.arrayJobId < 0) {
    resolved.arrayInstance = { ...spec.arrayInstance, arrayJobId: firstJobId - spec.arrayInstance.arrayJobId - 1 };
  }
  return resolved;
}
