/**
 * JobExecutor that runs each job under its own supervisor process (src/launcher), placed into its
 * limits by the Limiter before the job's first instruction, and able to outlive the daemon.
 *
 * Per job, the executor moves through:
 * - launching: limits prepared, supervisor being spawned; exit files are ignored (launch() reports
 *   a failed launch itself, so it is recorded once).
 * - attached: the supervisor runs the job; we know its pid and start time.
 * - finishing: the exit file is read, accounting collected, the outcome handed to the engine
 *   (`onEnded`, which stores it durably); only then are the cgroups released and the run files
 *   removed, so a crash at any point loses nothing.
 * An attached supervisor that vanishes without an exit file means the job was lost: NODE_FAIL.
 *
 * Notification is event-driven: the supervisor's exit (when it is our child) and an fs.watch on the
 * run directory (for supervisors re-attached after a restart); a slow liveness sweep catches a
 * supervisor that was killed without writing its exit file.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { decideOutcome } from '../core/outcome.js';
import type { EnforcementMode, Job, JobOutcome } from '../core/job.js';
import { LaunchError, type JobExecutor } from '../core/ports.js';
import type { Logger } from '../logger.js';
import { MIB, type JobPlacement, type Limiter } from './limits/limiter.js';
import {
  currentBootId,
  processIsAlive,
  readExitFile,
  readSupervisorFile,
  removeRunFiles,
  signalSupervisor,
  spawnSupervisor,
  type SupervisorExitRecord,
  type SupervisorSpec,
} from './supervisor-process.js';

export interface SupervisedExecutorOptions {
  /** Root-only directory for the supervisors' .sup and .exit files. */
  runDir: string;
  limiter: Limiter;
  killGraceSeconds: number;
  jobUmask: number;
  log: Logger;
  /** Supervisor binary; default the built one. */
  supervisorExecutable?: string;
}

/** How often attached supervisors are checked for having vanished without an exit file. */
const LIVENESS_SWEEP_MS = 5_000;
const SIGKILL = 9;

interface TrackedJob {
  job: Job;
  phase: 'launching' | 'attached';
  supervisorPid: number;
  supervisorStartTicks: number;
  finishing?: Promise<void>;
}

/** Runs a script given as input_file as the user: directly if executable (honours #!), else with sh. */
const RUN_INPUT_FILE = 'if [ -x "$1" ]; then exec "$1"; fi; exec /bin/sh "$1"';

export class SupervisedExecutor implements JobExecutor {
  readonly enforcement: EnforcementMode;
  onEnded: (jobId: number, outcome: JobOutcome) => Promise<void> = async () => {
    throw new Error('SupervisedExecutor.onEnded was not set');
  };
  private readonly tracked = new Map<number, TrackedJob>();
  private watcher: FSWatcher | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private bootId = '';

  constructor(private readonly options: SupervisedExecutorOptions) {
    this.enforcement = options.limiter.mode;
  }

  async start(): Promise<void> {
    this.bootId = currentBootId();
    this.watcher = watch(this.options.runDir, (_event, filename) => {
      const m = typeof filename === 'string' ? /^(\d+)\.exit$/.exec(filename) : null;
      if (m) this.finishIfEnded(Number(m[1]));
    });
    this.watcher.on('error', (err) => this.options.log.error({ err }, 'run directory watch failed'));
    this.sweepTimer = setInterval(() => this.sweepLiveness(), LIVENESS_SWEEP_MS);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.tracked.values()].map((t) => t.finishing));
  }

  async launch(job: Job): Promise<void> {
    const { limiter, runDir, log } = this.options;
    const entry: TrackedJob = { job, phase: 'launching', supervisorPid: 0, supervisorStartTicks: 0 };
    this.tracked.set(job.id, entry);
    let placement: JobPlacement;
    try {
      placement = await limiter.prepare(job.id, {
        cores: job.cores,
        memoryLimitBytes: job.memoryLimitMb * MIB,
        timeLimitSeconds: job.timeLimitSeconds,
        resourceLimits: job.resourceLimits,
      });
    } catch (err) {
      this.tracked.delete(job.id);
      await limiter.release(job.id).catch(() => undefined);
      throw new LaunchError(`could not set up ${limiter.mode} limits: ${(err as Error).message}`);
    }
    try {
      const handle = await spawnSupervisor(this.supervisorSpec(job, placement), {
        ...(this.options.supervisorExecutable ? { executable: this.options.supervisorExecutable } : {}),
      });
      entry.phase = 'attached';
      entry.supervisorPid = handle.supervisorPid;
      entry.supervisorStartTicks = handle.supervisorStartTicks;
      void handle.exited.then(() => this.finishIfEnded(job.id, { supervisorGone: true }));
    } catch (err) {
      this.tracked.delete(job.id);
      await limiter.release(job.id).catch((e: unknown) => log.warn({ err: e, jobId: job.id }, 'release after failed launch'));
      await removeRunFiles(runDir, job.id);
      throw err;
    }
  }

  async cancel(job: Job): Promise<void> {
    const entry = this.tracked.get(job.id);
    if (!entry || entry.phase !== 'attached') return;
    if (!signalSupervisor(entry.supervisorPid, entry.supervisorStartTicks, 'cancel')) {
      this.finishIfEnded(job.id, { supervisorGone: true });
    }
  }

  async reattach(job: Job): Promise<void> {
    const { runDir } = this.options;
    const entry: TrackedJob = { job, phase: 'attached', supervisorPid: 0, supervisorStartTicks: 0 };
    this.tracked.set(job.id, entry);
    if (await this.exitRecord(job.id)) return this.finishIfEnded(job.id);
    const sup = await readSupervisorFile(runDir, job.id).catch(() => undefined);
    if (!sup) return this.finishLost(job.id, 'NodeFail: the daemon stopped while launching the job; it never started or its supervisor is gone');
    if (sup.bootId !== this.bootId) return this.finishLost(job.id, 'NodeFail: the node rebooted while the job was running');
    entry.supervisorPid = sup.supervisorPid;
    entry.supervisorStartTicks = sup.supervisorStartTicks;
    if (!processIsAlive(sup.supervisorPid, sup.supervisorStartTicks)) return this.finishIfEnded(job.id, { supervisorGone: true });
    this.options.log.info({ jobId: job.id, supervisorPid: sup.supervisorPid }, 're-attached to running job');
  }

  async sweepOrphans(runningJobIds: ReadonlySet<number>): Promise<void> {
    const { limiter, runDir, log } = this.options;
    for (const id of await limiter.listJobIds()) {
      if (runningJobIds.has(id)) continue;
      log.warn({ jobId: id }, 'removing cgroup of a job that is not running');
      await limiter.release(id).catch((err: unknown) => log.error({ err, jobId: id }, 'could not remove orphaned cgroup'));
    }
    for (const name of await readdir(runDir)) {
      const m = /^(\d+)\.(sup|exit)(\.tmp)?$/.exec(name);
      if (m && !runningJobIds.has(Number(m[1]))) await removeRunFiles(runDir, Number(m[1]));
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private supervisorSpec(job: Job, placement: JobPlacement): SupervisorSpec {
    const kill = placement.kill;
    return {
      jobId: job.id,
      runDir: this.options.runDir,
      user: job.runUser,
      uid: job.uid,
      gid: job.gid,
      cwd: job.home,
      stdoutPath: job.stdoutPath,
      stderrPath: job.stderrPath,
      umask: this.options.jobUmask,
      timeLimitSeconds: job.timeLimitSeconds,
      killGraceSeconds: this.options.killGraceSeconds,
      cgroupProcs: placement.cgroupProcsFiles,
      ...(kill.kind === 'cgroup2' ? { kill: { kind: 'cgroup2', dir: kill.dir } } : {}),
      ...(kill.kind === 'cgroup1' ? { kill: { kind: 'cgroup1-freezer', dir: kill.freezerDir } } : {}),
      rlimits: placement.rlimits,
      env: jobEnvironment(job),
      program: '/bin/sh',
      args: job.cmdLine !== '' ? ['-c', job.cmdLine] : ['-c', RUN_INPUT_FILE, 'hpcq-job', job.inputFile],
    };
  }

  private async exitRecord(jobId: number): Promise<SupervisorExitRecord | undefined> {
    try {
      return await readExitFile(this.options.runDir, jobId);
    } catch (err) {
      this.options.log.error({ err, jobId }, 'unreadable exit file');
      return { status: 'launch_failed', exitCode: 0, signal: 0, timedOut: false, cancelled: false, jobPid: 0, startMs: 0, endMs: Date.now(), utimeUs: 0, stimeUs: 0, maxrssKb: 0, error: `unreadable exit record: ${(err as Error).message}` };
    }
  }

  /** Finishes the job if its exit file exists; with supervisorGone and no exit file, the job is lost. */
  private finishIfEnded(jobId: number, opts: { supervisorGone?: boolean } = {}): void {
    const entry = this.tracked.get(jobId);
    if (!entry || entry.phase !== 'attached' || entry.finishing) return;
    entry.finishing = (async () => {
      const record = await this.exitRecord(jobId);
      if (!record) {
        if (opts.supervisorGone) await this.lost(jobId, 'NodeFail: the job supervisor ended without recording an exit status');
        else entry.finishing = undefined;
        return;
      }
      await this.complete(jobId, record);
    })().catch((err: unknown) => {
      this.options.log.error({ err, jobId }, 'could not finish job; will retry');
      entry.finishing = undefined;
    });
  }

  private finishLost(jobId: number, reason: string): void {
    const entry = this.tracked.get(jobId);
    if (!entry || entry.finishing) return;
    entry.finishing = this.lost(jobId, reason).catch((err: unknown) => {
      this.options.log.error({ err, jobId }, 'could not record lost job; will retry');
      entry.finishing = undefined;
    });
  }

  private async complete(jobId: number, record: SupervisorExitRecord): Promise<void> {
    const { limiter } = this.options;
    const report = await limiter.collect(jobId);
    const killedBySigkill = record.status === 'signaled' && record.signal === SIGKILL;
    // cgroup v1 before Linux 4.13 counts no OOM kills: a limit hit plus a SIGKILL we did not send is one.
    const inferredOom = report && !report.oomKillsCounted && report.memoryLimitHits > 0 && killedBySigkill && !record.timedOut && !record.cancelled ? 1 : 0;
    const outcome = decideOutcome({
      ...(record.status === 'launch_failed' ? { launchError: record.error ?? 'unknown launch failure' } : {}),
      ...(record.status === 'exited' ? { exitCode: record.exitCode } : {}),
      ...(record.status === 'signaled' ? { signal: record.signal } : {}),
      timedOut: record.timedOut,
      cancelled: record.cancelled,
      oomKills: (report?.oomKills ?? 0) + inferredOom,
      cpuTimeLimitEnforced: limiter.mode === 'rlimit',
      usage: {
        userCpuUsec: report ? report.userCpuUsec : record.utimeUs,
        systemCpuUsec: report ? report.systemCpuUsec : record.stimeUs,
        peakMemoryBytes: report?.peakMemoryBytes || record.maxrssKb * 1024,
        wallTimeMs: record.startMs > 0 ? Math.max(0, record.endMs - record.startMs) : 0,
      },
      endTimeMs: record.endMs || Date.now(),
    });
    await this.handOver(jobId, outcome);
  }

  private async lost(jobId: number, reason: string): Promise<void> {
    const entry = this.tracked.get(jobId);
    this.options.log.error({ jobId, supervisorPid: entry?.supervisorPid }, reason);
    await this.handOver(jobId, { state: 'NODE_FAIL', reason, exitCode: 0, termSignal: 0, limitHit: '', endTimeMs: Date.now() });
  }

  /** Gives the outcome to the engine; once it is stored, kills leftovers and removes the job's traces. */
  private async handOver(jobId: number, outcome: JobOutcome): Promise<void> {
    await this.onEnded(jobId, outcome);
    this.tracked.delete(jobId);
    await this.options.limiter
      .release(jobId)
      .catch((err: unknown) => this.options.log.error({ err, jobId }, 'could not release job cgroups; they are removed at the next start'));
    await removeRunFiles(this.options.runDir, jobId);
  }

  private sweepLiveness(): void {
    for (const [jobId, entry] of this.tracked) {
      if (entry.phase !== 'attached' || entry.finishing || entry.supervisorPid === 0) continue;
      if (!processIsAlive(entry.supervisorPid, entry.supervisorStartTicks)) this.finishIfEnded(jobId, { supervisorGone: true });
    }
  }
}

/** The job's entire environment: an allow-list, nothing of the daemon's. */
export function jobEnvironment(job: Job): Record<string, string> {
  return {
    HOME: job.home,
    USER: job.runUser,
    LOGNAME: job.runUser,
    SHELL: job.shell,
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HPCQ_JOB_ID: String(job.id),
    HPCQ_JOB_UUID: job.uuid,
    HPCQ_JOB_NAME: job.name,
    HPCQ_QUEUE: job.schedulerQueueName,
    HPCQ_CLUSTER: job.clusterId,
    HPCQ_CORES: String(job.cores),
    HPCQ_MEM_MB: String(job.memoryLimitMb),
    OMP_NUM_THREADS: String(job.cores),
  };
}
