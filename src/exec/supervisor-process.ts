/**
 * The only code that starts or talks to the per-job supervisor (src/launcher/hpcq-supervisor.c).
 *
 * Contract with the supervisor:
 * - argv: built by `buildSupervisorArgs` (see the C file's header for the full list);
 * - stdout: one handshake line, `started <job_pid> <job_start_ticks>` or `failed <message>`;
 * - `<runDir>/<jobId>.sup`: supervisor_pid, supervisor_start_ticks, boot_id (written before the job starts;
 *   with `waitForGo`, at the go, and not at all if the launch is aborted);
 * - `<runDir>/<jobId>.exit`: the outcome, written atomically once no process of the job is left;
 *   both files are read in run-files.ts;
 * - SIGUSR1: cancel (SIGTERM to the job, SIGKILL after the grace period); during the launch it ends
 *   the launch instead (nothing of the job runs; recorded as cancelled).
 * Supervisors are started by this module's spawnSupervisor, or by SupervisorLauncher
 * (supervisor-launcher.ts) through the long-lived launcher, which the executor uses.
 *
 * The supervisor runs in its own session and outlives the daemon; after a restart the daemon finds
 * it again through the .sup file and tells it from a process that reused its pid by the start time
 * in /proc (process-identity.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { LaunchError } from '../core/ports.js';
import type { CgroupSetupStep } from './limits/limiter.js';
import { libexecPath } from '../package-root.js';
import { currentBootId, processIsAlive, processStartTicks } from './process-identity.js';
import { readSupervisorFile } from './run-files.js';

// Re-exported for callers outside src/exec/ (the daemon's state-dir lock, tests), for which this
// module is the entry point to the supervisor and its records.

/**
 * Resource limits the supervisor can set with `--rlimit NAME=SOFT[:HARD]` (HARD defaults to SOFT,
 * so the job cannot raise the limit; a higher HARD lets the kernel warn at SOFT first).
 */
export const RLIMIT_NAMES = ['AS', 'DATA', 'CPU', 'NPROC', 'NOFILE', 'FSIZE', 'CORE'] as const;
export type RlimitName = (typeof RLIMIT_NAMES)[number];

/** How the supervisor finds every process of the job besides its own descendants and process group. */
export type KillMechanism =
  /** cgroup v2 directory: SIGTERM to each pid in cgroup.procs, SIGKILL via cgroup.kill. */
  | { kind: 'cgroup2'; dir: string }
  /** cgroup v1 freezer directory: SIGTERM to each pid, SIGKILL by freeze + kill + thaw. */
  | { kind: 'cgroup1-freezer'; dir: string };

/** Everything the supervisor needs to run one job. Paths are absolute. */
export interface SupervisorSpec {
  jobId: number;
  /** Root-owned directory for the .sup and .exit files. */
  runDir: string;
  /** The account the job runs as; uid/gid as resolved for it. Never uid 0. */
  user: string;
  uid: number;
  gid: number;
  /** Working directory, entered as the user. */
  cwd: string;
  /** Output files, opened as the user (O_NOFOLLOW, truncated). Equal paths share one descriptor. */
  stdoutPath: string;
  stderrPath: string;
  /** File creation mask of the job, e.g. 0o022 (the supervisor's default). */
  umask?: number;
  /** Wall-time limit in seconds, counted on the monotonic clock from exec; 0 or absent = none. */
  timeLimitSeconds?: number;
  /** Seconds between SIGTERM and SIGKILL on timeout or cancel (supervisor default 30). */
  killGraceSeconds?: number;
  /**
   * Deadline of the launch (fork to exec of the job), counted from the supervisor's start; past it
   * the launch fails naming the step it hung in. 0 or absent: none.
   */
  launchTimeoutSeconds?: number;
  /**
   * The job starts only at the daemon's go, a byte on descriptor 3 (see SupervisorLauncher: the
   * launcher provides it); that descriptor ending without one aborts the launch, and nothing runs.
   */
  waitForGo?: boolean;
  /** cgroup.procs files the job joins before any of its code runs (one per v1 controller, or one v2 file). */
  cgroupProcs?: readonly string[];
  kill?: KillMechanism;
  /**
   * cgroup files the supervisor reads once the job's last process is gone and records in the exit
   * file (SupervisorExitRecord.accounting): the job's accounting without a cgroup file read by the
   * daemon.
   */
  accountingFiles?: readonly string[];
  /**
   * The job's cgroup set-up, made by the supervisor in this order before it starts the job: the
   * launch fails (naming the step) if a step that is not optional fails, and what it created is
   * removed. The directories it names are removed again once the job is gone (after
   * accountingFiles are read), or when the launch is aborted.
   */
  cgroupSetup?: readonly CgroupSetupStep[];
  /** Soft limits in the kernel's units (bytes, seconds, counts); hard = soft unless `rlimitsHard` names it. */
  rlimits?: Partial<Record<RlimitName, number | 'unlimited'>>;
  /**
   * Hard limits that differ from the soft value in `rlimits` (never below it), e.g. RLIMIT_CPU:
   * SIGXCPU at the soft limit, SIGKILL at the hard one. A name without a soft value is refused.
   */
  rlimitsHard?: Partial<Record<RlimitName, number | 'unlimited'>>;
  /** The job's entire environment; nothing else is passed. */
  env: Readonly<Record<string, string>>;
  /** Absolute path of the program (executed without a PATH search) and its arguments. */
  program: string;
  args: readonly string[];
}

/** How the supervisor process itself ended (not the job: that is in the exit file). */
export interface SupervisorExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /**
   * The job's exit record (the text of its .exit file) as the launcher read it once the supervisor
   * had ended; absent when there was none or the launcher left it to the file.
   */
  exitRecord?: string;
}

/** A started job: what to persist to find and verify it again after a daemon restart. */
export interface SupervisorHandle {
  supervisorPid: number;
  /** Field 22 of /proc/<pid>/stat of the supervisor. */
  supervisorStartTicks: number;
  bootId: string;
  jobPid: number;
  /** Field 22 of /proc/<pid>/stat of the job's main process. */
  jobStartTicks: number;
  /** Settles when the supervisor exits while this daemon still runs (its exit file is then written). */
  exited: Promise<SupervisorExit>;
  /**
   * Set when `exited` will never settle: the launcher died before the supervisor ended (the run
   * files and the executor's watch and liveness sweep then tell how the job ends).
   */
  exitNotReported?: true;
}

export interface SpawnSupervisorOptions {
  /** The supervisor binary; default `supervisorPath()`. */
  executable?: string;
}

/** Absolute path of the compiled supervisor, `dist/libexec/hpcq-supervisor` in the package root. */
export function supervisorPath(): string {
  return libexecPath('hpcq-supervisor');
}

// The checks build their message only when they fail (`fail` with a template): these run for
// every launch, and eager messages (a JSON copy of every path) were a fair part of what a trivial
// job allocated. `check` is for fixed messages.
function fail(what: string): never {
  throw new RangeError(`invalid supervisor spec: ${what}`);
}

function check(ok: boolean, what: string): void {
  if (!ok) fail(what);
}

const isNulFreeString = (value: string) => typeof value === 'string' && !value.includes('\0');

function checkString(value: string, field: string): void {
  if (!isNulFreeString(value)) fail(`${field} must be a string without NUL`);
}

function checkPath(value: string, field: string): void {
  checkString(value, field);
  if (!isAbsolute(value)) fail(`${field} must be an absolute path (got ${JSON.stringify(value)})`);
}

function checkInt(value: number, field: string, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) fail(`${field} must be an integer in [${min}, ${max}]`);
}

/**
 * The supervisor's argv (without the executable), in a fixed order. Pure. Throws RangeError on a
 * spec the supervisor would refuse (relative paths, uid 0, bad numbers, env keys with '=').
 */
export function buildSupervisorArgs(spec: SupervisorSpec): string[] {
  checkInt(spec.jobId, 'jobId', 1, Number.MAX_SAFE_INTEGER);
  checkPath(spec.runDir, 'runDir');
  checkString(spec.user, 'user');
  check(spec.user.length > 0 && !spec.user.includes('/'), 'user must be a non-empty name');
  checkInt(spec.uid, 'uid', 1, 0xfffffffe); // never root: the supervisor refuses too
  checkInt(spec.gid, 'gid', 0, 0xfffffffe);
  checkPath(spec.cwd, 'cwd');
  checkPath(spec.stdoutPath, 'stdoutPath');
  checkPath(spec.stderrPath, 'stderrPath');
  checkPath(spec.program, 'program');

  const args = [
    '--job-id', String(spec.jobId),
    '--run-dir', spec.runDir,
    '--user', spec.user,
    '--uid', String(spec.uid),
    '--gid', String(spec.gid),
    '--cwd', spec.cwd,
    '--stdout', spec.stdoutPath,
    '--stderr', spec.stderrPath,
  ];
  if (spec.umask !== undefined) {
    checkInt(spec.umask, 'umask', 0, 0o777);
    args.push('--umask', spec.umask.toString(8).padStart(4, '0'));
  }
  if (spec.timeLimitSeconds !== undefined && spec.timeLimitSeconds !== 0) {
    checkInt(spec.timeLimitSeconds, 'timeLimitSeconds', 0, 315_360_000);
    args.push('--time-limit', String(spec.timeLimitSeconds));
  }
  if (spec.killGraceSeconds !== undefined) {
    checkInt(spec.killGraceSeconds, 'killGraceSeconds', 0, 86_400);
    args.push('--kill-grace', String(spec.killGraceSeconds));
  }
  if (spec.launchTimeoutSeconds !== undefined && spec.launchTimeoutSeconds !== 0) {
    checkInt(spec.launchTimeoutSeconds, 'launchTimeoutSeconds', 0, 86_400);
    args.push('--launch-timeout', String(spec.launchTimeoutSeconds));
  }
  if (spec.waitForGo) args.push('--go-fd', '3');
  const cgroupProcs = spec.cgroupProcs ?? [];
  check(cgroupProcs.length <= 16, 'at most 16 cgroupProcs');
  for (const file of cgroupProcs) {
    checkPath(file, 'cgroupProcs');
    args.push('--cgroup-procs', file);
  }
  if (spec.kill) {
    checkPath(spec.kill.dir, 'kill.dir');
    args.push(spec.kill.kind === 'cgroup2' ? '--kill-cgroup2' : '--kill-cgroup1-freezer', spec.kill.dir);
  }
  const setup = spec.cgroupSetup ?? [];
  check(setup.length <= 64, 'at most 64 cgroupSetup steps');
  for (const step of setup) {
    if ('mkdir' in step) {
      checkPath(step.mkdir, 'cgroupSetup.mkdir');
      args.push('--cgroup-mkdir', step.mkdir);
      continue;
    }
    checkPath(step.write, 'cgroupSetup.write');
    checkString(step.value, 'cgroupSetup.value');
    check(!step.value.includes('=') && !step.value.includes('\n'), 'cgroupSetup.value must have no = or newline');
    args.push(step.optional ? '--cgroup-write-optional' : '--cgroup-write', `${step.write}=${step.value}`);
  }
  const accountingFiles = spec.accountingFiles ?? [];
  check(accountingFiles.length <= 16, 'at most 16 accountingFiles');
  for (const file of accountingFiles) {
    checkPath(file, 'accountingFiles');
    args.push('--account', file);
  }
  for (const name of Object.keys(spec.rlimitsHard ?? {})) {
    if (!(RLIMIT_NAMES as readonly string[]).includes(name)) fail(`rlimitsHard.${name} is not a known rlimit`);
    if (spec.rlimits?.[name as RlimitName] === undefined) fail(`rlimitsHard.${name} needs a soft value in rlimits.${name}`);
  }
  for (const name of RLIMIT_NAMES) {
    const value = spec.rlimits?.[name];
    if (value === undefined) continue;
    if (value !== 'unlimited') checkInt(value, `rlimits.${name}`, 0, Number.MAX_SAFE_INTEGER);
    const hard = spec.rlimitsHard?.[name];
    if (hard === undefined || hard === value) {
      args.push('--rlimit', `${name}=${value}`);
      continue;
    }
    if (hard !== 'unlimited') {
      checkInt(hard, `rlimitsHard.${name}`, 0, Number.MAX_SAFE_INTEGER);
      if (value === 'unlimited' || hard < value) fail(`rlimitsHard.${name} (${hard}) must not be below rlimits.${name} (${value})`);
    }
    args.push('--rlimit', `${name}=${value}:${hard}`);
  }
  const envKeys = Object.keys(spec.env);
  check(envKeys.length <= 4096, 'at most 4096 env entries');
  for (const key of envKeys) {
    const value = spec.env[key] ?? '';
    if (key.length === 0 || key.includes('=')) fail(`env key ${JSON.stringify(key)} must be non-empty without '='`);
    checkString(key, 'env key');
    if (!isNulFreeString(value)) fail(`env.${key} must be a string without NUL`);
    args.push('--env', `${key}=${value}`);
  }
  for (const arg of spec.args) checkString(arg, 'args');
  args.push('--', spec.program, ...spec.args);
  return args;
}

/** Parses the handshake line (without the newline). */
export function parseHandshake(
  line: string,
): { ok: true; jobPid: number; jobStartTicks: number } | { ok: false; message: string } {
  const started = /^started (\d+) (\d+)$/.exec(line);
  if (started) return { ok: true, jobPid: Number(started[1]), jobStartTicks: Number(started[2]) };
  if (line.startsWith('failed ')) return { ok: false, message: line.slice('failed '.length) };
  return { ok: false, message: `unexpected answer from the job supervisor: ${JSON.stringify(line.slice(0, 200))}` };
}

const MAX_HANDSHAKE = 8192;
const MAX_STDERR = 4096;

/**
 * Starts the job under a new supervisor (detached: own session, survives the daemon). Resolves once
 * the job's program was executed inside its cgroups and limits. Rejects with LaunchError (message
 * from the supervisor, e.g. `open stdout /home/u/x.out: Too many levels of symbolic links`) when the
 * job could not be started; the supervisor has then exited and nothing of the job runs.
 */
export function spawnSupervisor(spec: SupervisorSpec, options: SpawnSupervisorOptions = {}): Promise<SupervisorHandle> {
  let args: string[];
  try {
    args = buildSupervisorArgs(spec);
  } catch (err) {
    return Promise.reject(new LaunchError((err as Error).message));
  }
  const executable = options.executable ?? supervisorPath();
  return new Promise<SupervisorHandle>((resolve, reject) => {
    let child: ChildProcess;
    try {
      // No environment: the supervisor needs none and passes the job only its --env entries.
      // Only what identifies the supervisor is on its command line (readable by every user in
      // /proc); the job's user, paths, environment and command go through stdin.
      child = spawn(executable, [...args.slice(0, 4), '--args-from-stdin'], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: {}, cwd: '/' });
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(Buffer.from(args.slice(4).map((a) => `${a}\0`).join('')));
    } catch (err) {
      reject(new LaunchError(`cannot start the job supervisor ${executable}: ${(err as Error).message}`));
      return;
    }
    // Always listening for 'exit' keeps libuv reaping the supervisor: never a zombie of ours.
    const exited = new Promise<SupervisorExit>((res) => child.once('exit', (code, signal) => res({ code, signal })));
    let settled = false;
    let stdout = '';
    let stderr = '';
    const stdoutStream = child.stdout!;
    const stderrStream = child.stderr!;
    const detach = (): void => {
      stdoutStream.destroy();
      stderrStream.destroy();
      child.unref();
    };
    const fail = (message: string): void => {
      if (settled) return;
      settled = true;
      detach();
      reject(new LaunchError(message));
    };

    stdoutStream.setEncoding('utf8');
    stderrStream.setEncoding('utf8');
    stdoutStream.on('error', () => {});
    stderrStream.on('error', () => {});
    stderrStream.on('data', (chunk: string) => {
      if (stderr.length < MAX_STDERR) stderr += chunk.slice(0, MAX_STDERR - stderr.length);
    });
    stdoutStream.on('data', (chunk: string) => {
      if (settled) return;
      stdout += chunk;
      const nl = stdout.indexOf('\n');
      if (nl < 0) {
        if (stdout.length > MAX_HANDSHAKE) fail('job supervisor sent an over-long handshake');
        return;
      }
      const answer = parseHandshake(stdout.slice(0, nl));
      if (!answer.ok) {
        // The exit file is already written; wait for the supervisor to end so the caller may clean
        // up the run files without racing it.
        settled = true;
        void exited.then(() => {
          detach();
          reject(new LaunchError(answer.message));
        });
        return;
      }
      settled = true;
      const supervisorPid = child.pid!;
      detach();
      const started = (supervisorStartTicks: number): void =>
        resolve({ supervisorPid, supervisorStartTicks, bootId: currentBootId(), jobPid: answer.jobPid, jobStartTicks: answer.jobStartTicks, exited });
      // Not reaped yet (Node sets the exit code when it reaps), so the pid is still the supervisor's:
      // its start time comes from /proc, synchronously. Only a supervisor already gone (a job that
      // ended at once) is looked up in its .sup file, an async read kept off the usual launch path.
      const ticks = child.exitCode === null && child.signalCode === null ? processStartTicks(supervisorPid) : undefined;
      if (ticks !== undefined) return started(ticks);
      void readSupervisorFile(spec.runDir, spec.jobId)
        .catch(() => undefined)
        .then((record) => started(record?.supervisorStartTicks ?? 0));
    });
    child.on('error', (err) => fail(`cannot start the job supervisor ${executable}: ${err.message}`));
    // 'close' comes after both the exit and the end of its output: no line by then means it died early.
    child.on('close', (code, signal) => {
      const why = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
      fail(`job supervisor ${why} before starting the job${detail}`);
    });
  });
}

/**
 * Asks a supervisor to cancel its job (SIGUSR1), only after verifying pid + start time. Returns
 * false if that supervisor is gone (its exit file is then written or the job was lost).
 */
export function signalSupervisor(pid: number, startTicks: number, action: 'cancel'): boolean {
  if (action !== 'cancel') throw new RangeError(`unknown supervisor action ${String(action)}`);
  if (!processIsAlive(pid, startTicks)) return false;
  try {
    process.kill(pid, 'SIGUSR1');
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}
