/**
 * Starts job supervisors through one long-lived launcher process (src/launcher/hpcq-launcher.c)
 * instead of forking the daemon for each: a fork of a process of a few hundred KiB instead of the
 * daemon's 100+ MiB, and none of it on the event loop.
 *
 * Same contract as `spawnSupervisor` (supervisor-process.ts): `launch` resolves with a
 * SupervisorHandle once the job's program was executed, or rejects with LaunchError carrying the
 * supervisor's message; `exited` settles when the supervisor ends while the launcher still runs,
 * with the job's exit record as the launcher read it then (so the daemon reads no file per job).
 * `removeRunFiles` has the launcher remove a finished job's run files, in its next write.
 * The supervisor gets the same command line (only `--job-id N --run-dir D --args-from-stdin`), no
 * environment, cwd / and its own session; the rest of its arguments go through a memfd on its stdin.
 *
 * With `durable`, the job is set up while the daemon stores it as RUNNING: the supervisor does
 * everything up to the exec, and the job's program runs only once `durable` resolved (the go); if
 * it rejects (the abort), nothing of the job runs and no run file is written. The go and the abort
 * reach the supervisor through a pipe the launcher holds; a launcher that dies aborts them all.
 *
 * The launcher is started on the first launch and again after it died. When it dies with launches
 * in flight, each is decided by what is alive: a supervisor of the job still running is attached
 * (its run files and the executor's watch and liveness sweep then tell how it ends: it is detached
 * and outlives the launcher by design); otherwise the launch fails with LaunchError, and the
 * executor still finds an exit file a supervisor may have written. A supervisor forked but not yet
 * executed dies with the launcher (PR_SET_PDEATHSIG), so it cannot start a job unnoticed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { basename } from 'node:path';
import { LaunchError } from '../core/ports.js';
import { libexecPath } from '../package-root.js';
import { currentBootId, findSupervisorProcesses, processIsAlive } from './process-identity.js';
import { supervisorFilePath } from './run-files.js';
import { buildSupervisorArgs, parseHandshake, supervisorPath, type SupervisorExit, type SupervisorHandle, type SupervisorSpec } from './supervisor-process.js';

/** Absolute path of the compiled launcher, next to the supervisor in dist/libexec. */
export function launcherPath(): string {
  return libexecPath('hpcq-launcher');
}

export interface SupervisorLauncherOptions {
  /** The supervisor binary the launcher executes; default `supervisorPath()`. */
  supervisorExecutable?: string;
  /** The launcher binary; default `launcherPath()`. */
  launcherExecutable?: string;
}

/** Output lines kept from a supervisor that fails without a handshake (its usage errors). */
const MAX_DETAIL_LINES = 8;
const SIGNAL_NAMES: Record<number, NodeJS.Signals> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

interface Launch {
  spec: SupervisorSpec;
  pid: number;
  startTicks: number;
  /** Lines before the handshake (diagnostics). */
  detail: string[];
  failed?: string;
  settled: boolean;
  resolve: (handle: SupervisorHandle) => void;
  reject: (err: LaunchError) => void;
  exited: Promise<SupervisorExit>;
  setExited: (exit: SupervisorExit) => void;
  onSpawned: ((pid: number, startTicks: number) => void) | undefined;
  waitsForGo: boolean;
  /** The job's exit record, from the launcher's `record` line before its `exit` line. */
  exitRecord?: string;
}

/** Longest a removal of run files waits for another write to the launcher to ride in. */
const REMOVAL_DELAY_MS = 200;

/** How long a supervisor whose launcher died may take to show whether its go came. */
const GO_DECIDED_WITHIN_MS = 5_000;

/**
 * Whether a supervisor that waited for its go got it: its .sup file appears (go), or it ends
 * without one (abort). Undecided after GO_DECIDED_WITHIN_MS: taken as started, so that the run
 * files and the liveness sweep decide rather than a second launch.
 */
async function goGotThrough(spec: SupervisorSpec, supervisor: { pid: number; startTicks: number }): Promise<boolean> {
  const supFile = supervisorFilePath(spec.runDir, spec.jobId);
  for (const until = Date.now() + GO_DECIDED_WITHIN_MS; Date.now() < until; await sleep(20)) {
    if (existsSync(supFile)) return true;
    if (!processIsAlive(supervisor.pid, supervisor.startTicks)) return existsSync(supFile);
  }
  return true;
}

export class SupervisorLauncher {
  private proc: ChildProcess | undefined;
  private readonly inFlight = new Map<number, Launch>();
  private nextRequest = 1;
  private readonly supervisorExecutable: string;
  private readonly launcherExecutable: string;

  constructor(options: SupervisorLauncherOptions = {}) {
    this.supervisorExecutable = options.supervisorExecutable ?? supervisorPath();
    this.launcherExecutable = options.launcherExecutable ?? launcherPath();
  }

  /** The launcher's pid, if one runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /**
   * `onSpawned` is told the supervisor's identity as soon as it is forked, before its handshake:
   * it may be signalled from then on (a cancel during the launch).
   */
  launch(spec: SupervisorSpec, onSpawned?: (pid: number, startTicks: number) => void, durable?: Promise<unknown>): Promise<SupervisorHandle> {
    let block: string;
    try {
      // --job-id N --run-dir D are the launcher's to put on the command line; the rest goes on stdin.
      block = `${buildSupervisorArgs({ ...spec, waitForGo: durable !== undefined }).slice(4).join('\0')}\0`;
    } catch (err) {
      return Promise.reject(new LaunchError((err as Error).message));
    }
    let proc: ChildProcess;
    try {
      proc = this.proc ?? this.startLauncher();
    } catch (err) {
      return Promise.reject(new LaunchError(`cannot start the supervisor launcher ${this.launcherExecutable}: ${(err as Error).message}`));
    }
    const request = this.nextRequest++;
    const frame = launcherFrame(`${durable ? 'P' : 'S'}${request}\0${spec.jobId}\0${spec.runDir}\0`, block);
    durable?.then(
      () => this.send(proc, launcherFrame(`G${request}\0`)),
      () => this.send(proc, launcherFrame(`A${request}\0`)),
    );
    return new Promise<SupervisorHandle>((resolve, reject) => {
      let setExited!: (exit: SupervisorExit) => void;
      const exited = new Promise<SupervisorExit>((res) => (setExited = res));
      this.inFlight.set(request, { spec, pid: 0, startTicks: 0, detail: [], settled: false, resolve, reject, exited, setExited, onSpawned, waitsForGo: durable !== undefined });
      (proc.stdout as unknown as { ref(): void }).ref();
      this.send(proc, frame);
    });
  }

  /**
   * Has the running launcher remove a job's run files (.sup, .exit); false when no launcher runs
   * (then the caller removes them). The request rides in the next write to the launcher (a launch's
   * or a go's, which a burst makes at once) or goes on its own after REMOVAL_DELAY_MS: each write
   * wakes the launcher, which costs the daemon's thread more than the removal. Frames are served in
   * order, so a later launch of the same job id comes after the removal.
   */
  removeRunFiles(runDir: string, jobId: number): boolean {
    const proc = this.proc;
    if (!proc || !takesFrames(proc)) return false;
    this.removals.push(launcherFrame(`R${jobId}\0${runDir}\0`));
    this.removalTimer ??= setTimeout(() => {
      this.removalTimer = undefined;
      if (this.proc === proc && this.removals.length > 0) this.send(proc);
    }, REMOVAL_DELAY_MS).unref();
    return true;
  }

  /** Removal requests not yet written (see removeRunFiles). */
  private removals: Buffer[] = [];
  private removalTimer: NodeJS.Timeout | undefined;

  /**
   * Frames of one tick (a dispatch pass) go to the launcher in one write, after the removals
   * waiting for one. A dead launcher's are dropped.
   */
  private send(proc: ChildProcess, frame?: Buffer): void {
    if (!takesFrames(proc)) return;
    const stdin = proc.stdin!;
    if (!stdin.writableCorked) {
      stdin.cork();
      process.nextTick(() => stdin.uncork());
    }
    for (const removal of this.removals.splice(0)) stdin.write(removal);
    if (frame) stdin.write(frame);
  }

  /** Ends the launcher (its stdin closes, after the removals still waiting); supervisors it started keep running. */
  close(): void {
    if (this.proc && this.removals.length > 0) this.send(this.proc);
    if (this.removalTimer) clearTimeout(this.removalTimer);
    this.removalTimer = undefined;
    this.proc?.stdin?.end();
    this.proc = undefined;
  }

  private startLauncher(): ChildProcess {
    // No environment and no job data: the command line names only the supervisor and the daemon.
    const proc = spawn(this.launcherExecutable, ['--supervisor', this.supervisorExecutable, '--parent', String(process.pid)], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: {},
      cwd: '/',
    });
    this.proc = proc;
    proc.stdin!.on('error', () => undefined);
    proc.stdout!.setEncoding('utf8');
    let buffered = '';
    proc.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        this.onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
    let failure: string | undefined;
    // 'close' follows and settles what is in flight.
    proc.on('error', (err) => (failure = `cannot run the supervisor launcher ${this.launcherExecutable}: ${err.message}`));
    proc.on('close', () => this.onLauncherGone(proc, failure));
    proc.unref();
    unrefStream(proc.stdin);
    unrefStream(proc.stdout);
    return proc;
  }

  private onLine(line: string): void {
    const m = /^(\w+) (\d+)(?: (.*))?$/.exec(line);
    const launch = m ? this.inFlight.get(Number(m[2])) : undefined;
    if (!m || !launch) return;
    const [, kind, request, rest = ''] = m;
    switch (kind) {
      case 'spawned': {
        const [pid, ticks] = rest.split(' ').map(Number);
        launch.pid = pid ?? 0;
        launch.startTicks = ticks ?? 0;
        launch.onSpawned?.(launch.pid, launch.startTicks);
        return;
      }
      case 'spawnfailed':
        this.inFlight.delete(Number(request));
        return this.fail(launch, `cannot start the job supervisor: ${rest}`);
      case 'line':
        return this.onSupervisorLine(launch, rest);
      case 'record':
        launch.exitRecord = decodeRecordLine(rest);
        return;
      case 'exit': {
        this.inFlight.delete(Number(request));
        this.idleUnlessBusy();
        const [code, signal] = rest.split(' ').map(Number);
        const exit: SupervisorExit = { code: code! >= 0 ? code! : null, signal: signal ? (SIGNAL_NAMES[signal] ?? (`SIG${signal}` as NodeJS.Signals)) : null };
        if (launch.exitRecord !== undefined) exit.exitRecord = launch.exitRecord;
        launch.setExited(exit);
        if (launch.failed !== undefined) return this.fail(launch, launch.failed);
        const why = exit.signal ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`;
        const detail = launch.detail.join('\n').trim();
        return this.fail(launch, `job supervisor ${why} before starting the job${detail ? `: ${detail}` : ''}`);
      }
    }
  }

  private onSupervisorLine(launch: Launch, text: string): void {
    if (launch.settled || launch.failed !== undefined) return;
    if (!text.startsWith('started ') && !text.startsWith('failed ')) {
      if (launch.detail.length < MAX_DETAIL_LINES) launch.detail.push(text);
      return;
    }
    const answer = parseHandshake(text);
    // A failed launch: the exit file is already written; settled once the supervisor has ended, so
    // the caller may clean up the run files without racing it.
    if (!answer.ok) {
      launch.failed = answer.message;
      return;
    }
    launch.settled = true;
    launch.resolve({
      supervisorPid: launch.pid,
      supervisorStartTicks: launch.startTicks,
      bootId: currentBootId(),
      jobPid: answer.jobPid,
      jobStartTicks: answer.jobStartTicks,
      exited: launch.exited,
    });
  }

  private fail(launch: Launch, message: string): void {
    if (launch.settled) return;
    launch.settled = true;
    launch.reject(new LaunchError(message));
  }

  /** Only launches in flight keep the daemon's event loop alive for the launcher. */
  private idleUnlessBusy(): void {
    if (this.inFlight.size === 0 && this.proc) unrefStream(this.proc.stdout);
  }

  /**
   * Told when a launcher ends: the supervisors it started that still run will have their ends
   * reported by nobody (their handles' `exited` never settles).
   */
  onGone: () => void = () => undefined;

  /** The launcher died or was closed: decide each unanswered launch by what is alive (see the header). */
  private onLauncherGone(proc: ChildProcess, failure: string | undefined): void {
    if (this.proc === proc) this.proc = undefined;
    const launches = [...this.inFlight.values()];
    this.inFlight.clear();
    if (launches.some((l) => l.settled)) this.onGone();
    const unanswered = launches.filter((l) => !l.settled);
    if (unanswered.length === 0) return;
    const byRunDir = new Map<string, ReturnType<typeof findSupervisorProcesses>>();
    const scan = (runDir: string) => {
      let found = byRunDir.get(runDir);
      if (!found) byRunDir.set(runDir, (found = findSupervisorProcesses(runDir, process.getuid?.() ?? 0, basename(this.supervisorExecutable))));
      return found;
    };
    const why = failure ?? `the supervisor launcher ended (exit ${proc.exitCode ?? proc.signalCode}) before the job supervisor answered`;
    for (const launch of unanswered) {
      const alive = launch.pid > 0 ? (processIsAlive(launch.pid, launch.startTicks) ? { pid: launch.pid, startTicks: launch.startTicks } : undefined) : scan(launch.spec.runDir).get(launch.spec.jobId);
      if (!alive || launch.failed !== undefined) {
        this.fail(launch, launch.failed ?? why);
        continue;
      }
      const attach = () => {
        launch.settled = true;
        launch.resolve({ supervisorPid: alive.pid, supervisorStartTicks: alive.startTicks, bootId: currentBootId(), jobPid: 0, jobStartTicks: 0, exited: launch.exited, exitNotReported: true });
      };
      if (!launch.waitsForGo) {
        attach();
        continue;
      }
      // Whether its go got through is told by its .sup file (written at the go, before the job
      // runs); one that had none aborts at once, without a trace.
      void goGotThrough(launch.spec, alive).then((through) => (through ? attach() : this.fail(launch, why)));
    }
  }
}

/** Whether the launcher's stdin still takes frames (a dead or closed launcher's are dropped). */
function takesFrames(proc: ChildProcess): boolean {
  return proc.stdin !== null && !proc.stdin.destroyed && !proc.stdin.writableEnded;
}

/**
 * A `record` line's text: the exit file's bytes, with %XX for those the launcher escaped (all
 * non-ASCII among them). decodeURIComponent decodes it when the bytes are UTF-8 (always, from our
 * supervisor); other bytes decode as readFileSync(..., 'utf8') would read them.
 */
function decodeRecordLine(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return Buffer.from(text.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1').toString('utf8');
  }
}

/** A request to the launcher: its length (u32 little-endian), then `head` and `body` as UTF-8, written straight into one buffer. */
function launcherFrame(head: string, body = ''): Buffer {
  const text = head + body;
  const length = Buffer.byteLength(text);
  const frame = Buffer.allocUnsafe(4 + length);
  frame.writeUInt32LE(length, 0);
  frame.write(text, 4);
  return frame;
}

function unrefStream(stream: unknown): void {
  (stream as { unref?: () => void } | null)?.unref?.();
}
