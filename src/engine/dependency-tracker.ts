/**
 * Holds pending jobs until their dependencies are met, and ends those whose dependencies never can
 * be (the rules are in core/dependency.ts). A dependent is:
 *
 * - waiting: followed (by the ids it names); dispatch passes it over (isWaiting);
 * - released: every dependency satisfied; the engine may start it (onSatisfied);
 * - ended: a dependency can never be met; the engine cancels it (onNeverSatisfied), and that end
 *   is in turn judged for its own dependents: nothing waits for ever.
 *
 * A dependent is judged again whenever a job it names starts or ends durably (jobChanged), and
 * once more at start-up (reviewAll), so parents that ended while the daemon was down count too.
 * Judging is idempotent: a dependent judged twice is released or ended once.
 */
import { dependentStatus } from '../core/dependency.js';
import { isTerminal, type Job, type JobState } from '../core/job.js';
import type { Logger } from '../logger.js';

export interface DependencyTrackerDeps {
  /** A pending or running job, from memory. */
  activeJob(id: number): Job | undefined;
  /** A job as stored (for ended ones). */
  storedJob(id: number): Promise<Job | undefined>;
  /** Every dependency of this pending job is satisfied: it may be dispatched. */
  onSatisfied(job: Job): void;
  /** A dependency of this pending job can never be met: end it with `reason`. */
  onNeverSatisfied(job: Job, reason: string): Promise<void>;
  log: Logger;
}

export class DependencyTracker {
  /** Pending jobs whose dependencies are not all satisfied yet. */
  private readonly waiting = new Set<number>();
  /** Job id -> the waiting jobs that name it. */
  private readonly dependents = new Map<number, Set<number>>();

  constructor(private readonly deps: DependencyTrackerDeps) {}

  get size(): number {
    return this.waiting.size;
  }

  isWaiting(jobId: number): boolean {
    return this.waiting.has(jobId);
  }

  /** Holds a pending job that has dependencies; judges it now unless `reviewNow` is false (start-up). */
  follow(job: Job, reviewNow = true): void {
    if (job.dependsOn.length === 0) return;
    this.waiting.add(job.id);
    for (const dep of job.dependsOn) {
      let set = this.dependents.get(dep.jobId);
      if (!set) this.dependents.set(dep.jobId, (set = new Set()));
      set.add(job.id);
    }
    if (reviewNow) void this.review(job.id);
  }

  /** Judges every waiting job (at start-up, once dispatching may begin). */
  reviewAll(): void {
    for (const id of this.waiting) void this.review(id);
  }

  /** A job's change is durable: it no longer waits if it left PENDING; the jobs naming it are judged again. */
  jobChanged(job: Job, previousState: JobState): void {
    if (previousState === 'PENDING') this.waiting.delete(job.id);
    const named = this.dependents.get(job.id);
    if (!named) return;
    for (const child of [...named]) void this.review(child);
    // An ended job's state is final: every dependent has been judged on it for good.
    if (isTerminal(job.state)) this.dependents.delete(job.id);
  }

  private async review(jobId: number): Promise<void> {
    try {
      const job = this.deps.activeJob(jobId);
      if (!job || job.state !== 'PENDING' || !this.waiting.has(jobId)) return this.forget(jobId);
      const states = new Map<number, JobState | undefined>();
      for (const dep of job.dependsOn) {
        states.set(dep.jobId, this.deps.activeJob(dep.jobId)?.state ?? (await this.deps.storedJob(dep.jobId))?.state);
      }
      const verdict = dependentStatus(job.dependsOn, (id) => states.get(id));
      // Re-read after the awaits: the job may have been cancelled or judged meanwhile.
      const current = this.deps.activeJob(jobId);
      if (!current || current.state !== 'PENDING' || !this.waiting.has(jobId)) return;
      if (verdict.status === 'satisfied') {
        this.forget(jobId);
        this.deps.onSatisfied(current);
      } else if (verdict.status === 'never') {
        this.forget(jobId);
        await this.deps.onNeverSatisfied(current, verdict.reason!);
      }
    } catch (err) {
      // The job stays held; the next start-up judges it again.
      this.deps.log.error({ err, jobId }, 'could not judge the dependencies of a job');
    }
  }

  private forget(jobId: number): void {
    this.waiting.delete(jobId);
    for (const dep of this.deps.activeJob(jobId)?.dependsOn ?? []) {
      const set = this.dependents.get(dep.jobId);
      set?.delete(jobId);
      if (set?.size === 0) this.dependents.delete(dep.jobId);
    }
  }
}
