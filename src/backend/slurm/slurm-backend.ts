/**
 * SlurmBackend: a cluster whose jobs Slurm runs. hpcq keeps the job (its states, limits, retries,
 * dependencies and holds); Slurm places and runs each attempt.
 *
 * - Submission as the job's user (slurm-commands.ts), tagged `hpcq:<uuid>:<attempt>` in --comment.
 *   When an attempt may already have reached Slurm (an sbatch that failed or timed out, or a crash
 *   after the engine stored "submitting"), the tag is looked for first: one hpcq attempt is never
 *   two Slurm jobs.
 * - Tracking: one `squeue` for all the cluster's tracked jobs per poll, never one call per job.
 * - A job gone from squeue before its end was seen gets its true outcome from sacct (accounting),
 *   else scontrol (still in slurmctld's memory), else the exit status the batch script recorded,
 *   else NODE_FAIL saying the outcome was lost: never COMPLETED by default.
 * - slurmctld unreachable: every job keeps its state, pending ones show SlurmUnavailable, and
 *   tracking goes on when it answers again.
 */
import type { Job, JobOutcome } from '../../core/job.js';
import type { ArrayTaskOf, BackendReport, ClusterBackend, PartitionInfo, UserDirectory } from '../../core/ports.js';
import type { Logger } from '../../logger.js';
import { CommandSlots } from './command-slots.js';
import { failureText, type SlurmCommands } from './slurm-commands.js';
import { SINFO_FORMAT, SQUEUE_FORMAT, exitRecordPath, observe, parseExitRecord, parseSacct, parseScontrolJob, parseSinfo, parseSqueue, sbatchArrayRequest, sbatchRequest, slurmTag, type SqueueEntry } from './slurm-text.js';

export interface SlurmBackendOptions {
  clusterId: string;
  commands: SlurmCommands;
  users: UserDirectory;
  log: Logger;
  pollIntervalMs: number;
  now?: () => number;
}

/** sbatch processes at once per cluster. */
const MAX_CONCURRENT_SBATCH = 8;

interface Tracked {
  job: Job;
  slurmId: string;
  /** The --comment Slurm shows for it: the job's own tag, or its array job's for an array task. */
  tag: string;
  /** The last observation reported, so that only changes are reported. */
  last: string;
  /** Tracked since (ms): a job absent from a squeue that started before this is not judged missing. */
  sinceMs: number;
}

export class SlurmBackend implements ClusterBackend {
  readonly kind = 'slurm' as const;
  onReport: (jobId: number, report: BackendReport) => void = () => undefined;
  onAvailability: (unavailableReason: string | undefined) => void = () => undefined;
  private readonly tracked = new Map<number, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;
  private unavailableReason: string | undefined;
  private readonly now: () => number;
  /** A few sbatch at a time: hundreds at once only fight slurmctld (and this node) for CPU. */
  private readonly sbatchSlots = new CommandSlots(MAX_CONCURRENT_SBATCH);
  /** Exit records of jobs whose end was reported, removed (as their users) at the next poll. */
  private spentRecords = new Map<number, { job: Job; paths: string[] }>();

  constructor(private readonly o: SlurmBackendOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.stopped = false;
    this.schedulePoll(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
  }

  unavailable(): string | undefined {
    return this.unavailableReason;
  }

  async submit(job: Job, mayExist: boolean, asArrayTask?: ArrayTaskOf): Promise<string> {
    const find = async () => {
      const queue = await this.listQueue();
      const own = queue.find((e) => e.comment === slurmTag(job))?.slurmId;
      return own ?? (asArrayTask ? findArrayTask(queue, asArrayTask) : undefined);
    };
    return this.sbatchSlots.run(() => this.submitOnce(job, mayExist, find, () => sbatchRequest(job)));
  }

  async submitArray(array: Job, instances: readonly Job[], mayExist: boolean): Promise<string> {
    const tag = slurmTag(array);
    const find = async () => (await this.findByTag(tag))?.split('_')[0];
    return this.sbatchSlots.run(() => this.submitOnce(array, mayExist, find, () => sbatchArrayRequest(array, instances)));
  }

  /** One sbatch as the job's user, looked for first when an earlier try may have reached Slurm. */
  private async submitOnce(job: Job, mayExist: boolean, find: () => Promise<string | undefined>, request: () => { args: string[]; script: string }): Promise<string> {
    const user = await this.account(job);
    if (mayExist) {
      const found = await find();
      if (found) return found;
    }
    const { args, script } = request();
    const r = await this.o.commands.run('sbatch', args, { user, input: script });
    const id = /^(\d+)/.exec(r.stdout.trim())?.[1];
    if (r.code === 0 && id) {
      this.markAvailable();
      return id;
    }
    // sbatch may have created the job and failed afterwards (or timed out): look before anyone
    // submits this attempt again.
    const found = await find().catch(() => undefined);
    if (found) {
      this.o.log.warn({ jobId: job.id, slurmId: found, err: failureText('sbatch', r) }, 'sbatch reported a failure but had created the job; tracking it');
      return found;
    }
    throw new Error(failureText('sbatch', r));
  }

  tagOf(job: Job): string {
    return slurmTag(job);
  }

  track(job: Job, slurmId: string, arrayTag?: string): void {
    this.tracked.set(job.id, { job, slurmId, tag: arrayTag ?? slurmTag(job), last: '', sinceMs: this.now() });
  }

  untrack(jobId: number): void {
    this.tracked.delete(jobId);
  }

  async cancel(job: Job, slurmId: string, asAdmin: boolean): Promise<'cancelled' | 'already-ended'> {
    const user = asAdmin ? undefined : await this.account(job);
    const r = await this.o.commands.run('scancel', [slurmId], user ? { user } : {});
    if (r.code === 0) return 'cancelled';
    if (/already completed|Invalid job id/i.test(r.stderr)) return 'already-ended';
    throw new Error(failureText('scancel', r));
  }

  async partition(name: string): Promise<PartitionInfo> {
    const r = await this.o.commands.run('sinfo', ['-h', '-p', name, '-o', SINFO_FORMAT]);
    if (r.code !== 0) return { state: 'unavailable', nodes: 0, cpus: 0, idleCpus: 0, note: failureText('sinfo', r) };
    const info = parseSinfo(r.stdout);
    return info ? { ...info, note: '' } : { state: 'unknown', nodes: 0, cpus: 0, idleCpus: 0, note: `Slurm has no partition ${name}` };
  }

  async signal(job: Job, slurmId: string, signal: number, asAdmin: boolean): Promise<void> {
    const user = asAdmin ? undefined : await this.account(job);
    // --full: the batch shell and every process of the job, as scancel --signal does for users.
    const r = await this.o.commands.run('scancel', [`--signal=${signal}`, '--full', slurmId], user ? { user } : {});
    if (r.code !== 0) throw new Error(failureText('scancel', r));
  }

  // ---- tracking ----

  private schedulePoll(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.polling = this.poll()
        .catch((err: unknown) => this.o.log.error({ err, clusterId: this.o.clusterId }, 'Slurm poll failed'))
        .finally(() => {
          this.polling = undefined;
          this.schedulePoll(this.o.pollIntervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  /** One squeue for every tracked job; reports what changed. */
  private async poll(): Promise<void> {
    await this.removeSpentRecords();
    if (this.tracked.size === 0) return;
    const startedMs = this.now();
    const r = await this.o.commands.run('squeue', ['-h', '-a', '-t', 'all', '-o', SQUEUE_FORMAT]);
    if (r.code !== 0) return this.markUnavailable(failureText('squeue', r));
    this.markAvailable();
    // A job is known by its tag (a Slurm id may come again after Slurm's state was reset); an
    // array task by its id, checked against its array's tag.
    const byTag = new Map<string, SqueueEntry>();
    const tasks = new Map<string, SqueueEntry>();
    for (const e of parseSqueue(r.stdout)) (e.slurmId.includes('_') ? tasks.set(e.slurmId, e) : byTag.set(e.comment, e));
    for (const t of [...this.tracked.values()]) {
      if (this.stopped) return;
      const task = t.slurmId.includes('_') ? tasks.get(t.slurmId) : undefined;
      const entry = task ? (task.comment === t.tag ? task : undefined) : byTag.get(t.tag);
      if (entry) await this.observed(t, entry.state, entry.reason);
      else if (t.sinceMs < startedMs) await this.vanished(t);
    }
  }

  private async observed(t: Tracked, state: string, reason: string): Promise<void> {
    const o = observe(state, reason);
    if (o.kind === 'pending') return this.report(t, `pending ${o.reason}`, { kind: 'pending', reason: o.reason });
    if (o.kind === 'running') return this.report(t, 'running', { kind: 'running', timeMs: this.now() });
    if (o.kind === 'ended') return this.ended(t, { state: o.state, reason: o.reason, exitCode: 0, termSignal: 0, limitHit: o.limitHit, endTimeMs: this.now() });
    // FAILED: squeue does not show the exit code.
    const exit = (await this.fromScontrol(t))?.exit ?? (await this.fromExitRecord(t));
    return this.ended(t, { state: 'FAILED', reason: o.reason, exitCode: exit?.exitCode ?? 0, termSignal: exit?.termSignal ?? 0, limitHit: '', endTimeMs: this.now() });
  }

  /** Gone from squeue before its end was seen: the truth from accounting, slurmctld, or the job's record. */
  private async vanished(t: Tracked): Promise<void> {
    const sacct = await this.o.commands.run('sacct', ['-n', '-P', '-X', '-o', 'State,ExitCode', '-j', t.slurmId]);
    const acct = sacct.code === 0 ? parseSacct(sacct.stdout) : undefined;
    const known = acct ?? (await this.fromScontrol(t));
    if (known) {
      const o = observe(known.state, '');
      if (o.kind === 'pending' || o.kind === 'running') return; // Not gone after all.
      if (o.kind === 'ended' && o.state !== 'COMPLETED' && o.state !== 'FAILED') {
        return this.ended(t, { state: o.state, reason: o.reason, exitCode: known.exit?.exitCode ?? 0, termSignal: known.exit?.termSignal ?? 0, limitHit: o.limitHit, endTimeMs: this.now() });
      }
      if (known.exit) return this.ended(t, fromExit(known.exit, this.now()));
    }
    const recorded = await this.fromExitRecord(t);
    if (recorded) return this.ended(t, fromExit(recorded, this.now()));
    return this.ended(t, {
      state: 'NODE_FAIL',
      reason: `OutcomeLost: Slurm job ${t.slurmId} left the queue before its end was seen, and neither accounting, slurmctld nor the job's exit record knows how it ended`,
      exitCode: 0,
      termSignal: 0,
      limitHit: '',
      endTimeMs: this.now(),
    });
  }

  private async fromScontrol(t: Tracked): Promise<ReturnType<typeof parseScontrolJob>> {
    const r = await this.o.commands.run('scontrol', ['show', 'job', '-o', t.slurmId]);
    return r.code === 0 ? parseScontrolJob(r.stdout) : undefined;
  }

  /** The status the batch script wrote, read as the job's user (never a user's file as root). */
  private async fromExitRecord(t: Tracked): Promise<{ exitCode: number; termSignal: number } | undefined> {
    const user = await this.account(t.job).catch(() => undefined);
    if (!user) return undefined;
    const r = await this.o.commands.run('cat', [exitRecordPath(t.job)], { user });
    return r.code === 0 ? parseExitRecord(r.stdout) : undefined;
  }

  private ended(t: Tracked, outcome: JobOutcome): void {
    this.tracked.delete(t.job.id);
    this.onReport(t.job.id, { kind: 'ended', outcome });
    const spent = this.spentRecords.get(t.job.uid) ?? { job: t.job, paths: [] };
    spent.paths.push(exitRecordPath(t.job));
    this.spentRecords.set(t.job.uid, spent);
  }

  /**
   * Every job leaves its exit record in its user's home; once its end was reported (and, a poll
   * later, stored by the engine) nobody needs it: removed as the user, a few hundred per command.
   */
  private async removeSpentRecords(): Promise<void> {
    const spent = [...this.spentRecords.values()];
    this.spentRecords = new Map();
    for (const { job, paths } of spent) {
      const user = await this.account(job).catch(() => undefined);
      if (!user) continue;
      for (let i = 0; i < paths.length; i += 500) await this.o.commands.run('rm', ['-f', '--', ...paths.slice(i, i + 500)], { user });
    }
  }

  private report(t: Tracked, key: string, report: BackendReport): void {
    if (t.last === key) return;
    t.last = key;
    this.onReport(t.job.id, report);
  }

  private markUnavailable(reason: string): void {
    const was = this.unavailableReason;
    this.unavailableReason = reason;
    if (was === undefined) {
      this.o.log.warn({ clusterId: this.o.clusterId, reason }, 'Slurm is unavailable; jobs keep their states');
      this.onAvailability(reason);
    }
    for (const t of this.tracked.values()) {
      if (t.last.startsWith('pending')) this.report(t, 'pending unavailable', { kind: 'pending', reason: `SlurmUnavailable: ${reason}` });
    }
  }

  private markAvailable(): void {
    if (this.unavailableReason === undefined) return;
    this.unavailableReason = undefined;
    this.o.log.info({ clusterId: this.o.clusterId }, 'Slurm answers again');
    this.onAvailability(undefined);
  }

  /** The Slurm job of a tag, if Slurm has one (squeue shows finished jobs for MinJobAge too). */
  private async findByTag(tag: string): Promise<string | undefined> {
    return (await this.listQueue()).find((e) => e.comment === tag)?.slurmId;
  }

  private async listQueue(): Promise<SqueueEntry[]> {
    const r = await this.o.commands.run('squeue', ['-h', '-a', '-t', 'all', '-o', SQUEUE_FORMAT]);
    if (r.code !== 0) throw new Error(failureText('squeue', r));
    return parseSqueue(r.stdout);
  }

  private async account(job: Job) {
    const user = await this.o.users.lookup(job.runUser);
    if (!user || user.uid !== job.uid) throw new Error(`account ${job.runUser} (uid ${job.uid}) no longer exists as it did at submit`);
    return user;
  }
}

function fromExit(exit: { exitCode: number; termSignal: number }, endTimeMs: number): JobOutcome {
  const ok = exit.exitCode === 0 && exit.termSignal === 0;
  return { state: ok ? 'COMPLETED' : 'FAILED', reason: ok ? '' : 'Slurm: FAILED', exitCode: exit.exitCode, termSignal: exit.termSignal, limitHit: '', endTimeMs };
}

/** An array instance's task in a squeue listing, if its array went to Slurm as one sbatch. */
function findArrayTask(queue: readonly SqueueEntry[], of: ArrayTaskOf): string | undefined {
  const suffix = `_${of.index}`;
  return queue.find((e) => e.comment === of.arrayTag && e.slurmId.endsWith(suffix))?.slurmId;
}
