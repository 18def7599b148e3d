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
 * Re-attaching after a restart (reattach) decides from the run files and the processes alive:
 * - an exit file: the job ended while the daemon was down -> its true outcome;
 * - a .sup file: the supervisor is verified by pid + start time + boot id; alive -> attached,
 *   gone -> NODE_FAIL, another boot -> NODE_FAIL;
 * - no run file, but a supervisor process of this job (root's, `--job-id <id> --run-dir <runDir>`)
 *   was alive when the executor started: it is still starting (the daemon died right after
 *   spawning it) -> attached to that process;
 * - no run file and no such process: the daemon stopped between storing RUNNING and the go of
 *   the supervisor (or the supervisor died before writing .sup, which precedes the job's exec), so
 *   the job never ran -> 'not-started', and the engine launches it. Supervisors are started while
 *   RUNNING is being stored (launchesAhead) but write no run file and run nothing before the go,
 *   which the launcher gives only once RUNNING is durable; one whose go never came (the daemon or
 *   the launcher died) ends without a trace. The process scan is taken before
 *   any run file is read, so "no process then, no file afterwards" proves that no supervisor will
 *   still start it. That proof holds only within one boot: the supervisor does not fsync its run
 *   files (the page cache survives any crash but the node's), so after a node crash a missing .sup
 *   proves nothing -> NODE_FAIL. Whether the RUNNING record may predate this boot is told by the
 *   boot marker `<runDir>/daemon-boot`: the boot id of the last start whose re-attach phase was
 *   fully resolved. It is written (synced) at the end of that phase (sweepOrphans), and only once
 *   the NODE_FAIL of every such unprovable job is stored, so it never vouches for a RUNNING record
 *   of an earlier boot.
 *
 * Notification is event-driven: the launcher's report of the supervisor's end, which carries the
 * exit record (so the daemon's thread reads no file per job), and, only while some attached job has
 * no such report coming (re-attached after a restart, or its launcher died), an fs.watch on the
 * run directory; a slow liveness sweep catches a supervisor that was killed without writing its
 * exit file.
 */
import { mkdirSync, readFileSync, statSync, statfsSync, watch, type FSWatcher } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decideOutcome } from '../core/outcome.js';
import type { EnforcementMode, Job, JobOutcome } from '../core/job.js';
import { LaunchError, type JobExecutor, type ReattachResult } from '../core/ports.js';
import type { Logger } from '../logger.js';
import { MIB, type JobPlacement, type KillTarget, type Limiter } from './limits/limiter.js';
import { currentBootId, findSupervisorProcesses, processIsAlive, type ProcessIdentity } from './process-identity.js';
import {
  jobIdsWithRunFiles,
  parseRunFileName,
  readBootMarker,
  parseExitRecord,
  readExitFile,
  readSupervisorFile,
  removeRunFiles,
  writeBootMarker,
  type SupervisorExitRecord,
  type SupervisorRecord,
} from './run-files.js';
import { SupervisorLauncher } from './supervisor-launcher.js';
import {
  signalSupervisor,
  supervisorPath,
  type KillMechanism,
  type SupervisorHandle,
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
  /** The launcher that starts supervisors (hpcq-launcher); default the built one. */
  launcherExecutable?: string;
  /** Deadline of a job's launch (fork to exec), from its supervisor's start; default 30 s, 0 = none. */
  launchTimeoutSeconds?: number;
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
  /** Set when the job was found lost: why, so that a failed NODE_FAIL write is retried. */
  lostReason?: string;
  /** Cancel asked while launching: sent to the supervisor as soon as it exists. */
  cancelWanted?: boolean;
  /** The launcher will report the supervisor's end with the exit record: no watch needed for it. */
  endReported?: boolean;
  /**
   * Settles once the launch no longer needs this process: its supervisor was sent the go (or the
   * abort) with the RUNNING write settled, or the launch ended. What stop() waits for.
   */
  handedOver?: Promise<void>;
}

const DEFAULT_LAUNCH_TIMEOUT_SECONDS = 30;

const noop = (): void => undefined;

/** Runs a script given as input_file as the user: directly if executable (honours #!), else with sh. */
const RUN_INPUT_FILE = 'if [ -x "$1" ]; then exec "$1"; fi; exec /bin/sh "$1"';

/** Room the run records (.sup, .exit) of a launch need, with margin; below it jobs stay pending. */
const MIN_FREE_BYTES_TO_LAUNCH = 1024 * 1024;
/** Free space under which every launch checks again; above it, once per RUN_DIR_RECHECK_MS. */
const PLENTY_FREE_BYTES = 256 * 1024 * 1024;
/** How long a launch takes the run directory's room and presence as last checked. */
const RUN_DIR_RECHECK_MS = 1000;

export class SupervisedExecutor implements JobExecutor {
  /** Jobs whose ended attempt is being handed over and released, by id (see launch). */
  private readonly handingOver = new Map<number, Promise<void>>();
  /** Launches in progress, from the call of launch() on (before they are tracked): for cancel. */
  private readonly launches = new Map<number, TrackedJob>();
  /** Until when a statfs found plenty of room (ms): no statfs per launch in a burst. */
  private roomKnownUntilMs = 0;
  /** Until when the run directory is known to be there (ms): no stat per launch in a burst. */
  private runDirCheckedUntilMs = 0;

  /** Why jobs cannot start now: the run directory's filesystem is (nearly) full. */
  launchBlocker(): string | undefined {
    const now = Date.now();
    if (now < this.roomKnownUntilMs) return undefined;
    try {
      const fs = statfsSync(this.options.runDir);
      const free = fs.bavail * fs.bsize;
      if (free < MIN_FREE_BYTES_TO_LAUNCH) return `StateDirFull: ${Math.floor(free / 1024)} KiB free under ${this.options.runDir}`;
      // Run records take about 1 KiB a job: with this much free, a second of launches cannot fill it.
      if (free >= PLENTY_FREE_BYTES) this.roomKnownUntilMs = now + RUN_DIR_RECHECK_MS;
    } catch {
      // statfs itself failing says nothing about space; the launch reports its own error.
    }
    return undefined;
  }

  readonly enforcement: EnforcementMode;
  /** Jobs are set up while their RUNNING state is stored; their program runs once it is (launch's `durable`). */
  readonly launchesAhead = true;
  onEnded: (jobId: number, outcome: JobOutcome) => Promise<void> = async () => {
    throw new Error('SupervisedExecutor.onEnded was not set');
  };
  private readonly tracked = new Map<number, TrackedJob>();
  private watcher: FSWatcher | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private bootId = '';
  private stopped = false;
  /** The boot marker as start() found it: '' if missing. */
  private markedBootId = '';
  /** Jobs found lost only because their RUNNING record may predate this boot. */
  private readonly lostToReboot: number[] = [];
  /** Supervisor processes of this run directory alive when start() ran, by job id. */
  private supervisorsAtStart = new Map<number, ProcessIdentity>();
  private readonly executable: string;
  /** Starts the supervisors: one long-lived small process, started on the first launch. */
  private readonly launcher: SupervisorLauncher;
  /** Inode of the run directory being watched: another one means it was removed and made again. */
  private watchedRunDirIno = 0;

  constructor(private readonly options: SupervisedExecutorOptions) {
    this.enforcement = options.limiter.mode;
    this.executable = options.supervisorExecutable ?? supervisorPath();
    this.launcher = new SupervisorLauncher({ supervisorExecutable: this.executable, ...(options.launcherExecutable ? { launcherExecutable: options.launcherExecutable } : {}) });
    this.launcher.onGone = () => this.launcherGone();
  }

  async start(): Promise<void> {
    this.bootId = currentBootId();
    this.markedBootId = readBootMarker(this.options.runDir);
    // Taken before any run file is read (reattach): see the header.
    this.supervisorsAtStart = findSupervisorProcesses(this.options.runDir, process.getuid?.() ?? 0, basename(this.executable));
    // Watched from the start: re-attached jobs follow (reattach); syncWatch() stops it once none is left.
    this.watchRunDir();
    this.sweepTimer = setInterval(() => this.sweepLiveness(), LIVENESS_SWEEP_MS);
    this.sweepTimer.unref();
  }

  /**
   * Waits for launches only until their supervisors have the go (or abort) (see JobExecutor.stop):
   * a launch stuck before its job's exec is ended by its supervisor at the launch deadline, and
   * recorded for the next start to find.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.launches.values()].map((entry) => entry.handedOver));
    this.watcher?.close();
    this.watcher = undefined;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.launcher.close();
    await Promise.allSettled([...this.tracked.values()].map((t) => t.finishing));
    await this.removeCgroupParentIfIdle();
  }

  /**
   * A daemon that stops with no job left removes its cgroup parent, so daemons on throwaway state
   * dirs (benchmarks, CI, trials) leave no empty cgroups behind. Jobs still tracked keep it: their
   * supervisors outlive the daemon, and the next start re-attaches to them and their cgroups.
   */
  private async removeCgroupParentIfIdle(): Promise<void> {
    const { limiter, log } = this.options;
    if (limiter.mode === 'rlimit') return; // no cgroups
    const jobIds = [...this.tracked.keys()];
    if (jobIds.length > 0) {
      log.info({ jobIds }, 'cgroup parent kept: jobs are still running');
      return;
    }
    try {
      if (await limiter.removeParentIfUnused()) {
        log.info({ enforcement: limiter.mode }, 'cgroup parent removed: no jobs left');
      } else {
        // Job cgroups the daemon does not track (an orphan whose release failed), or an ancestor shared with others.
        log.info({ enforcement: limiter.mode, jobIds: await limiter.listJobIds() }, 'cgroup parent kept: it is not empty');
      }
    } catch (err) {
      log.warn({ err }, 'could not remove the cgroup parent');
    }
  }

  async launch(job: Job, durable?: Promise<unknown>): Promise<void> {
    if (this.stopped) throw new LaunchError('hpcqd is stopping');
    const entry: TrackedJob = { job, phase: 'launching', supervisorPid: 0, supervisorStartTicks: 0 };
    this.launches.set(job.id, entry);
    let framed!: () => void;
    const sentToLauncher = new Promise<void>((resolve) => (framed = resolve));
    const launching = this.launchTracked(entry, durable, framed);
    // The launcher sends the go (or abort) as `durable` settles, in a callback registered when the
    // launch was framed: awaiting `durable` after that comes after it.
    const handedOver = durable ? Promise.race([launching, sentToLauncher.then(() => durable)]) : launching;
    entry.handedOver = handedOver.then(noop, noop);
    try {
      await launching;
    } finally {
      if (this.launches.get(job.id) === entry) this.launches.delete(job.id);
    }
  }

  private async launchTracked(entry: TrackedJob, durable: Promise<unknown> | undefined, framed: () => void): Promise<void> {
    const { job } = entry;
    // A retried job reuses its id, and so its cgroups and run files: the previous attempt's are
    // released first (handOver), or their removal would hit the new attempt's.
    await this.handingOver.get(job.id);
    // The previous attempt's run files went with a frame to the launcher (handOverNow); if that
    // launcher died before serving it, they would still be here, and its exit record taken for
    // this attempt's. Retries are few: they remove them themselves.
    if (job.attempt > 1) await removeRunFiles(this.options.runDir, job.id);
    try {
      // Checked at most once a second here (and by every liveness sweep): a supervisor makes the
      // directory again itself if it finds it gone when it writes its records.
      const now = Date.now();
      if (now >= this.runDirCheckedUntilMs) {
        this.ensureRunDir();
        this.runDirCheckedUntilMs = now + RUN_DIR_RECHECK_MS;
      }
    } catch (err) {
      throw new LaunchError(`the run directory ${this.options.runDir} is missing and cannot be made: ${(err as Error).message}`);
    }
    const { limiter, runDir, log } = this.options;
    this.tracked.set(job.id, entry);
    let placement: JobPlacement;
    try {
      placement = await limiter.prepare(job.id, {
        cores: job.cores,
        memoryLimitBytes: job.memoryLimitMb * MIB,
        timeLimitSeconds: job.timeLimitSeconds,
        resourceLimits: job.resourceLimits,
      }, { deferSetup: true });
    } catch (err) {
      this.tracked.delete(job.id);
      await limiter.release(job.id).catch(() => undefined);
      throw new LaunchError(`could not set up ${limiter.mode} limits: ${(err as Error).message}`);
    }
    let handle: SupervisorHandle;
    try {
      const launched = this.launcher.launch(this.supervisorSpec(job, placement), (pid, startTicks) => {
        entry.supervisorPid = pid;
        entry.supervisorStartTicks = startTicks;
        if (entry.cancelWanted) signalSupervisor(pid, startTicks, 'cancel');
      }, durable);
      framed();
      handle = await launched;
    } catch (err) {
      // A supervisor that could not start the job recorded why in its exit file: that record is
      // finished like any other (kept until the FAILED outcome is stored), so a crash in between
      // cannot turn the launch failure into a lost job.
      if ((await readExitFile(runDir, job.id).catch(() => undefined)) !== undefined) {
        entry.phase = 'attached';
        this.finishIfEnded(job.id);
        await entry.finishing;
        return;
      }
      this.tracked.delete(job.id);
      await limiter.release(job.id).catch((e: unknown) => log.warn({ err: e, jobId: job.id }, 'release after failed launch'));
      await removeRunFiles(runDir, job.id);
      throw err;
    }
    entry.phase = 'attached';
    entry.supervisorPid = handle.supervisorPid;
    entry.supervisorStartTicks = handle.supervisorStartTicks;
    entry.endReported = handle.exitNotReported !== true;
    if (!entry.endReported) this.syncWatch();
    void handle.exited.then((exit) => this.finishIfEnded(job.id, { supervisorGone: true, recordText: exit.exitRecord }));
  }

  /** The launcher ended: the supervisors it started report their ends through their run files now. */
  private launcherGone(): void {
    for (const entry of this.tracked.values()) entry.endReported = false;
    this.syncWatch();
    // An end that came between the launcher's last report and the watch is read now.
    for (const [jobId, entry] of this.tracked) if (entry.phase === 'attached') this.finishIfEnded(jobId);
  }

  /**
   * Watches the run directory while some attached job's end will not be reported by the launcher;
   * otherwise not: its inotify events (about ten per job) cost the daemon's thread more than the
   * job's exit record itself.
   */
  private syncWatch(): void {
    let needed = false;
    for (const entry of this.tracked.values()) if (entry.phase === 'attached' && !entry.endReported) needed = true;
    if (needed && !this.watcher && !this.stopped) this.watchRunDir();
    if (!needed && this.watcher) {
      this.watcher.close();
      this.watcher = undefined;
    }
  }

  async cancel(job: Job): Promise<void> {
    const entry = this.launches.get(job.id) ?? this.tracked.get(job.id);
    if (entry?.phase === 'launching') {
      // The supervisor ends a launch it is told to cancel (the job never runs): CANCELLED follows.
      entry.cancelWanted = true;
      if (entry.supervisorPid > 0) signalSupervisor(entry.supervisorPid, entry.supervisorStartTicks, 'cancel');
      return;
    }
    if (!entry || entry.phase !== 'attached') return;
    if (!signalSupervisor(entry.supervisorPid, entry.supervisorStartTicks, 'cancel')) {
      this.finishIfEnded(job.id, { supervisorGone: true });
    }
  }

  /**
   * scancel --signal: the signal goes to the job's process group (the job's main process is the
   * supervisor's only child and leads its own session and group). The child is checked to be the
   * job's user's, so a recycled pid is never signalled.
   */
  async signal(job: Job, signal: number): Promise<void> {
    const entry = this.tracked.get(job.id);
    if (!entry || entry.phase !== 'attached' || !processIsAlive(entry.supervisorPid, entry.supervisorStartTicks)) {
      throw new LaunchError('the job has no running processes to signal');
    }
    let children: number[];
    try {
      children = readFileSync(`/proc/${entry.supervisorPid}/task/${entry.supervisorPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      children = [];
    }
    const main = children.find((pid) => /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] === String(job.uid));
    if (main === undefined) throw new LaunchError('the job has no running processes to signal');
    try {
      process.kill(-main, signal);
    } catch (err) {
      throw new LaunchError(`could not signal the job: ${(err as Error).message}`);
    }
  }

  async reattach(job: Job): Promise<ReattachResult> {
    const { runDir, log } = this.options;
    const entry: TrackedJob = { job, phase: 'attached', supervisorPid: 0, supervisorStartTicks: 0 };
    this.tracked.set(job.id, entry);
    if (await this.exitRecord(job.id)) {
      this.finishIfEnded(job.id);
      return 'attached';
    }
    let sup: SupervisorRecord | undefined;
    try {
      sup = await readSupervisorFile(runDir, job.id);
    } catch (err) {
      // Written atomically by the supervisor, so damage is not a torn write: do not guess.
      this.finishLost(job.id, `NodeFail: the job supervisor's record is unreadable (${(err as Error).message})`);
      return 'attached';
    }
    if (!sup) {
      const starting = this.supervisorsAtStart.get(job.id);
      if (starting) {
        entry.supervisorPid = starting.pid;
        entry.supervisorStartTicks = starting.startTicks;
        log.warn({ jobId: job.id, supervisorPid: starting.pid }, 're-attached to a job supervisor that was still starting');
        if (!processIsAlive(starting.pid, starting.startTicks)) this.finishIfEnded(job.id, { supervisorGone: true });
        return 'attached';
      }
      if (this.markedBootId !== this.bootId) {
        this.lostToReboot.push(job.id);
        this.finishLost(job.id, 'NodeFail: the node restarted after the job was marked running; whether it started is unknown');
        return 'attached';
      }
      this.tracked.delete(job.id);
      return 'not-started';
    }
    if (sup.bootId !== this.bootId) {
      this.finishLost(job.id, 'NodeFail: the node rebooted while the job was running');
      return 'attached';
    }
    entry.supervisorPid = sup.supervisorPid;
    entry.supervisorStartTicks = sup.supervisorStartTicks;
    if (!processIsAlive(sup.supervisorPid, sup.supervisorStartTicks)) {
      this.finishIfEnded(job.id, { supervisorGone: true });
      return 'attached';
    }
    log.info({ jobId: job.id, supervisorPid: sup.supervisorPid }, 're-attached to running job');
    return 'attached';
  }

  /** Also ends the re-attach phase: the boot marker is brought up to date (see the header). */
  async sweepOrphans(runningJobIds: ReadonlySet<number>): Promise<void> {
    const { limiter, runDir, log } = this.options;
    // Every re-attached job is known now: the watch stays only if one of them still runs.
    this.syncWatch();
    for (const id of await limiter.listJobIds()) {
      if (runningJobIds.has(id)) continue;
      log.warn({ jobId: id }, 'removing cgroup of a job that is not running');
      await limiter.release(id).catch((err: unknown) => log.error({ err, jobId: id }, 'could not remove orphaned cgroup'));
    }
    for (const id of await jobIdsWithRunFiles(runDir)) {
      if (!runningJobIds.has(id)) await removeRunFiles(runDir, id, { temporaries: true });
    }
    if (this.markedBootId === this.bootId) return;
    if (this.lostToReboot.length === 0) await this.markBoot();
    else void this.markBootWhenResolved();
  }

  /** Writes the boot marker once every job lost to a reboot has its NODE_FAIL stored. */
  private async markBootWhenResolved(): Promise<void> {
    const unresolved = () => this.lostToReboot.filter((id) => this.tracked.has(id));
    for (let ids = unresolved(); ids.length > 0; ids = unresolved()) {
      // Stopped first: the marker stays as it was, and the next start decides again.
      if (this.stopped) return;
      // A failed NODE_FAIL write is retried by the liveness sweep: wait for that retry.
      await Promise.allSettled(ids.map((id) => this.tracked.get(id)?.finishing ?? sleep(LIVENESS_SWEEP_MS, undefined, { ref: false })));
    }
    await this.markBoot();
  }

  private async markBoot(): Promise<void> {
    const { runDir, log } = this.options;
    try {
      await writeBootMarker(runDir, this.bootId);
      this.markedBootId = this.bootId;
    } catch (err) {
      log.warn({ err }, 'could not write the boot marker; jobs interrupted before their supervisor started will be NODE_FAIL after the next restart');
    }
  }

  // ---- internals -------------------------------------------------------------------------------

  private supervisorSpec(job: Job, placement: JobPlacement): SupervisorSpec {
    const kill = killMechanism(placement.kill);
    return {
      jobId: job.id,
      runDir: this.options.runDir,
      user: job.runUser,
      uid: job.uid,
      gid: job.gid,
      // Entered as the user by the supervisor: a directory the user cannot enter fails the job.
      cwd: job.workingDir,
      stdoutPath: job.stdoutPath,
      stderrPath: job.stderrPath,
      umask: this.options.jobUmask,
      timeLimitSeconds: job.timeLimitSeconds,
      killGraceSeconds: this.options.killGraceSeconds,
      launchTimeoutSeconds: this.options.launchTimeoutSeconds ?? DEFAULT_LAUNCH_TIMEOUT_SECONDS,
      cgroupProcs: placement.cgroupProcsFiles,
      ...(kill ? { kill } : {}),
      cgroupSetup: placement.setup ?? [],
      accountingFiles: placement.accountingFiles ?? [],
      rlimits: placement.rlimits,
      rlimitsHard: placement.rlimitsHard,
      env: jobEnvironment(job),
      ...jobCommand(job),
    };
  }

  private async exitRecord(jobId: number): Promise<SupervisorExitRecord | undefined> {
    try {
      return await readExitFile(this.options.runDir, jobId);
    } catch (err) {
      this.options.log.error({ err, jobId }, 'unreadable exit file');
      return { status: 'launch_failed', exitCode: 0, signal: 0, timedOut: false, cancelled: false, jobPid: 0, startMs: 0, endMs: Date.now(), utimeUs: 0, stimeUs: 0, maxrssKb: 0, accounting: new Map(), cgroupsRemoved: false, error: `unreadable exit record: ${(err as Error).message}` };
    }
  }

  /**
   * Finishes the job if its exit file exists (or `recordText`, the file's text as the launcher read
   * it, is given); with supervisorGone and no exit file, the job is lost.
   */
  private finishIfEnded(jobId: number, opts: { supervisorGone?: boolean; recordText?: string | undefined } = {}): void {
    const entry = this.tracked.get(jobId);
    if (this.stopped || !entry || entry.phase !== 'attached' || entry.finishing) return;
    entry.finishing = (async () => {
      const record = (opts.recordText !== undefined ? this.parseReportedRecord(jobId, opts.recordText) : undefined) ?? (await this.exitRecord(jobId));
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

  /** The launcher's copy of an exit record; undefined (the file is read instead) if it does not parse. */
  private parseReportedRecord(jobId: number, text: string): SupervisorExitRecord | undefined {
    try {
      return parseExitRecord(text);
    } catch (err) {
      this.options.log.warn({ err, jobId }, "the launcher's copy of the exit record does not parse; reading the file");
      return undefined;
    }
  }

  private finishLost(jobId: number, reason: string): void {
    const entry = this.tracked.get(jobId);
    if (this.stopped || !entry || entry.finishing) return;
    entry.lostReason = reason;
    entry.finishing = this.lost(jobId, reason).catch((err: unknown) => {
      this.options.log.error({ err, jobId }, 'could not record lost job; will retry');
      entry.finishing = undefined;
    });
  }

  private async complete(jobId: number, record: SupervisorExitRecord): Promise<void> {
    const { limiter } = this.options;
    const job = this.tracked.get(jobId)?.job;
    const report = await limiter.collect(jobId, record.accounting);
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
      // The rlimit limiter's RLIMIT_CPU soft limit is cores x time_limit (+1 s).
      ...(limiter.mode === 'rlimit' && job ? { cpuTimeLimitSeconds: job.cores * job.timeLimitSeconds } : {}),
      usage: {
        userCpuUsec: report ? report.userCpuUsec : record.utimeUs,
        systemCpuUsec: report ? report.systemCpuUsec : record.stimeUs,
        peakMemoryBytes: report?.peakMemoryBytes || record.maxrssKb * 1024,
        wallTimeMs: record.startMs > 0 ? Math.max(0, record.endMs - record.startMs) : 0,
      },
      endTimeMs: record.endMs || Date.now(),
    });
    await this.handOver(jobId, outcome, record.cgroupsRemoved);
  }

  private async lost(jobId: number, reason: string): Promise<void> {
    const entry = this.tracked.get(jobId);
    this.options.log.error({ jobId, supervisorPid: entry?.supervisorPid }, reason);
    await this.handOver(jobId, { state: 'NODE_FAIL', reason, exitCode: 0, termSignal: 0, limitHit: '', endTimeMs: Date.now() });
  }

  /**
   * Gives the outcome to the engine; once it is stored, kills leftovers and removes the job's
   * traces (its cgroups only if its supervisor did not: `cgroupsRemoved`).
   */
  private handOver(jobId: number, outcome: JobOutcome, cgroupsRemoved = false): Promise<void> {
    const done = this.handOverNow(jobId, outcome, cgroupsRemoved);
    const settled: Promise<void> = done.then(
      () => undefined,
      () => undefined,
    );
    this.handingOver.set(jobId, settled);
    void settled.then(() => {
      if (this.handingOver.get(jobId) === settled) this.handingOver.delete(jobId);
    });
    return done;
  }

  private async handOverNow(jobId: number, outcome: JobOutcome, cgroupsRemoved: boolean): Promise<void> {
    await this.onEnded(jobId, outcome);
    // The supervisor already killed what was left and removed the cgroups (the usual case).
    if (!cgroupsRemoved) {
      await this.options.limiter
        .release(jobId)
        .catch((err: unknown) => this.options.log.error({ err, jobId }, 'could not release job cgroups; they are removed at the next start'));
    }
    // Untracked only after the release: stop() waits for tracked jobs before removing the parent.
    this.tracked.delete(jobId);
    this.syncWatch();
    if (!this.launcher.removeRunFiles(this.options.runDir, jobId)) await removeRunFiles(this.options.runDir, jobId);
  }

  /**
   * Catches what the events missed: a supervisor that died without an exit file, an exit-file
   * event lost by fs.watch, and a finish that failed (e.g. the store was unavailable) to retry.
   */
  /** Watches the run directory for exit records (a new watch when the directory was recreated). */
  private watchRunDir(): void {
    this.watcher?.close();
    this.watcher = watch(this.options.runDir, (_event, filename) => {
      const file = typeof filename === 'string' ? parseRunFileName(filename) : undefined;
      if (file?.kind === 'exit' && !file.temporary) this.finishIfEnded(file.jobId);
    });
    this.watcher.on('error', (err) => this.options.log.error({ err }, 'run directory watch failed'));
    this.watchedRunDirIno = statSync(this.options.runDir).ino;
  }

  /**
   * The run directory is the daemon's to keep: if someone removed it (or replaced it), it is made
   * again, 0700, and watched again, so launches go on and supervisors (which recreate it too when
   * they write a record) report their jobs' true outcomes.
   */
  private ensureRunDir(): void {
    if (this.stopped) return;
    let ino: number | undefined;
    try {
      ino = statSync(this.options.runDir).ino;
    } catch {
      mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
      this.options.log.warn({ runDir: this.options.runDir }, 'the run directory had been removed; made it again');
      ino = statSync(this.options.runDir).ino;
    }
    if (this.watcher && ino !== this.watchedRunDirIno) this.watchRunDir();
  }

  private sweepLiveness(): void {
    try {
      this.ensureRunDir();
    } catch (err) {
      this.options.log.error({ err }, 'cannot make the run directory again');
    }
    for (const [jobId, entry] of this.tracked) {
      if (entry.phase !== 'attached' || entry.finishing) continue;
      if (entry.lostReason !== undefined) this.finishLost(jobId, entry.lostReason);
      else if (entry.supervisorPid === 0) this.finishIfEnded(jobId);
      else if (!processIsAlive(entry.supervisorPid, entry.supervisorStartTicks)) this.finishIfEnded(jobId, { supervisorGone: true });
    }
  }
}

/** What the supervisor is told to kill the job by; none for a process tree (it always kills its own tree). */
function killMechanism(kill: KillTarget): KillMechanism | undefined {
  switch (kill.kind) {
    case 'cgroup2':
      return { kind: 'cgroup2', dir: kill.dir };
    case 'cgroup1':
      return { kind: 'cgroup1-freezer', dir: kill.freezerDir };
    case 'process-tree':
      return undefined;
  }
}

/** The job's entire environment: an allow-list, nothing of the daemon's. */
/**
 * What the supervisor executes: cmd_line through /bin/sh -c; input_file through RUN_INPUT_FILE;
 * argv with no shell at all, through env(1), which only looks argv[0] up in the job's PATH and
 * execs it with the other words untouched (`--` ends env's own options).
 */
function jobCommand(job: Job): { program: string; args: string[] } {
  if (job.argv.length > 0) return { program: '/usr/bin/env', args: ['--', ...job.argv] };
  if (job.cmdLine !== '') return { program: '/bin/sh', args: ['-c', job.cmdLine] };
  return { program: '/bin/sh', args: ['-c', RUN_INPUT_FILE, 'hpcq-job', job.inputFile] };
}

/**
 * The job's whole environment: the login basics, then the submit's variables (which may replace
 * them, e.g. PATH or OMP_NUM_THREADS), then hpcq's own HPCQ_* (names a submit may not use).
 */
function jobEnvironment(job: Job): Record<string, string> {
  return {
    HOME: job.home,
    USER: job.runUser,
    LOGNAME: job.runUser,
    SHELL: job.shell,
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    OMP_NUM_THREADS: String(job.cores),
    ...job.env,
    HPCQ_JOB_ID: String(job.id),
    HPCQ_JOB_UUID: job.uuid,
    HPCQ_JOB_NAME: job.name,
    HPCQ_QUEUE: job.schedulerQueueName,
    HPCQ_CLUSTER: job.clusterId,
    HPCQ_CORES: String(job.cores),
    HPCQ_MEM_MB: String(job.memoryLimitMb),
    HPCQ_ATTEMPT: String(job.attempt),
    ...(job.arrayInstance
      ? {
          HPCQ_ARRAY_JOB_ID: String(job.arrayInstance.arrayJobId),
          HPCQ_ARRAY_INDEX: String(job.arrayInstance.index),
          HPCQ_ARRAY_COUNT: String(job.arrayInstance.count),
        }
      : {}),
  };
}
