/**
 * The limiter: the half of limit enforcement that runs in the daemon. It creates and configures a
 * job's cgroups before launch, reads their accounting after the job ends, and removes them. The
 * other half is the per-job supervisor (C): its job process writes "0" into every file of
 * `JobPlacement.cgroupProcsFiles` (so the job's first instruction already runs inside its limits),
 * sets `JobPlacement.rlimits`, drops privileges and execs; it kills the whole job through
 * `JobPlacement.kill`.
 *
 * Three interchangeable implementations, chosen once at start by detect-enforcement.ts:
 * - CgroupV2Limiter ('cgroup2'): memory, CPU bandwidth and process count enforced for the job as a
 *   whole by one cgroup v2 directory; the whole job is killed with `cgroup.kill`.
 * - CgroupV1Limiter ('cgroup1'): the same limits from one directory per v1 hierarchy (memory, cpu,
 *   cpuacct, pids, freezer, optionally cpuset); the whole job is killed by freeze + SIGKILL + thaw.
 * - RlimitLimiter ('rlimit'): no cgroups; per-process setrlimit only. Weaker — see its header.
 */
import { join, normalize, sep } from 'node:path';
import type { EnforcementMode, ResourceLimits } from '../../core/job.js';
import type { RlimitName } from '../supervisor-process.js';
import { type CgroupFs, isErrno, writeCgroupFile } from './cgroup-fs.js';

/** Names of the resource limits the supervisor sets with setrlimit(2) before exec. */
export type { RlimitName };

/** What the limiter needs of a job. */
export interface JobLimits {
  /** CPU cores the job may use (CPU bandwidth: cores × 100 ms per 100 ms period). */
  cores: number;
  memoryLimitBytes: number;
  timeLimitSeconds: number;
  resourceLimits: ResourceLimits;
  /**
   * Addition to the brief: CPUs the job is pinned to, in cpuset list syntax ("0-3,8"). Omitted: no
   * cpuset placement (the job may run on every CPU the daemon may use, throttled to `cores`).
   * Ignored in rlimit mode (the supervisor could use sched_setaffinity, which the job can undo).
   */
  cpus?: string;
}

/** How the supervisor kills every process of the job. */
export type KillTarget =
  /** Write "1" to `<dir>/cgroup.kill` (Linux >= 5.14), then wait for `cgroup.events` populated 0. */
  | { kind: 'cgroup2'; dir: string }
  /** Write FROZEN to `<freezerDir>/freezer.state`, SIGKILL every pid in `cgroup.procs`, THAWED. */
  | { kind: 'cgroup1'; freezerDir: string }
  /**
   * The supervisor's own process tree and process group. The supervisor is a child subreaper, so
   * setsid'ed and double-forked processes stay in its tree; processes started outside it (cron,
   * systemd --user, ssh) are missed.
   */
  | { kind: 'process-tree' };

/** Where and how a job runs: handed to the supervisor. */
export interface JobPlacement {
  /** Absolute paths; the job process writes "0" into each, in this order, before exec. */
  cgroupProcsFiles: string[];
  kill: KillTarget;
  /**
   * setrlimit values, soft and hard alike unless `rlimitsHard` names a higher hard limit. Units are
   * the kernel's: AS, DATA, FSIZE, CORE in bytes; CPU in seconds; NPROC and NOFILE in counts.
   */
  rlimits: Partial<Record<RlimitName, number>>;
  /**
   * Addition to the brief: hard limits that differ from the soft value in `rlimits`. Used for CPU in
   * rlimit mode: the kernel sends SIGXCPU at the soft limit (the job used more than its allowance)
   * and SIGKILL at the hard limit (RELIABILITY L13). With soft = hard Linux sends only SIGKILL.
   */
  rlimitsHard: Partial<Record<RlimitName, number>>;
  /**
   * The files collect() reads, and the job's cgroup directories: the supervisor reads the first
   * and removes the second itself once the job is gone (collect() then gets what it read). Absent
   * in rlimit mode.
   */
  accountingFiles?: string[];
  cgroupDirs?: string[];
  /**
   * With prepare(..., { deferSetup: true }): the job's cgroup set-up, left to the supervisor, which
   * makes it in order before it starts the job (and removes what it made if a step fails). Absent
   * when prepare() made it itself, and in rlimit mode.
   */
  setup?: CgroupSetupStep[];
}

/**
 * One step of a job's cgroup set-up: a directory to create (an existing one is kept), or a value
 * to write in one write(2). An `optional` write may fail (a file the kernel lacks, a value it
 * refuses) without failing the job: swappiness, swap and OOM-group settings are best effort.
 */
export type CgroupSetupStep = { mkdir: string } | { write: string; value: string; optional?: boolean };

/**
 * Makes the set-up steps with `fs` (what the supervisor does in C, for prepare() without
 * deferSetup). On a failed step, removes the directories it created and throws LimitSetupError
 * saying it could not set up `what`.
 */
export async function applySetup(fs: CgroupFs, steps: readonly CgroupSetupStep[], what: string): Promise<void> {
  const created: string[] = [];
  try {
    for (const step of steps) {
      if ('mkdir' in step) {
        if (await fs.mkdir(step.mkdir)) created.push(step.mkdir);
      } else if (step.optional) {
        await fs.write(step.write, step.value).catch(() => undefined);
      } else {
        await writeCgroupFile(fs, step.write, step.value);
      }
    }
  } catch (err) {
    for (const dir of created.reverse()) await fs.rmdir(dir).catch(() => undefined);
    throw new LimitSetupError(`cannot set up ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Accounting files as the supervisor read them (path -> contents; a file it could not read is
 * absent). collect() reads these instead of the cgroup, which may already be gone.
 */
export type RecordedAccounting = ReadonlyMap<string, string>;

/** A reader of cgroup files: from a recorded set when given one (absent = no such file), else live. */
export function accountingReader(
  fs: { read(path: string): Promise<string | undefined> },
  recorded: RecordedAccounting | undefined,
): (path: string) => Promise<string | undefined> {
  return recorded && recorded.size > 0 ? async (path) => recorded.get(path) : (path) => fs.read(path);
}

/** What the job's cgroups accounted, read after the job ended. */
export interface LimiterReport {
  userCpuUsec: number;
  systemCpuUsec: number;
  /**
   * Highest memory charged to the job (v2 `memory.peak`, v1 `memory.max_usage_in_bytes`); includes
   * page cache, so it can exceed the sum of RSS. 0 when the kernel does not track it (v2 before 5.19).
   */
  peakMemoryBytes: number;
  /** Processes the kernel's OOM killer killed inside the job. */
  oomKills: number;
  /**
   * Addition: false when the kernel has no OOM-kill counter (cgroup v1 before Linux 4.13); `oomKills`
   * is then 0, and `memoryLimitHits > 0` together with the main process dying of a SIGKILL the
   * supervisor did not send is the only evidence of an OOM kill.
   */
  oomKillsCounted: boolean;
  /** Addition: times the memory limit was reached (v2 memory.events `max`; v1 failcnt, memsw included). */
  memoryLimitHits: number;
  /** Addition: total CPU time (v2 cpu.stat usage_usec; v1 cpuacct.usage), finer than user+system on v1. */
  totalCpuUsec: number;
  /** Addition: CPU quota periods in which the job was throttled (cpu.stat nr_throttled); RELIABILITY L6. */
  cpuThrottledPeriods: number;
}

export interface PrepareOptions {
  /**
   * Set up the parents only and return the job's own set-up as placement.setup, for the supervisor
   * to make: the daemon's one thread then creates no cgroup and writes no limit per job.
   */
  deferSetup?: boolean;
}

export interface Limiter {
  readonly mode: EnforcementMode;
  /**
   * Creates and configures the job's cgroups. Idempotent: calling it again for the same job rewrites
   * the limits and returns the same placement. When it rejects, nothing it created is left behind.
   */
  prepare(jobId: number, limits: JobLimits, options?: PrepareOptions): Promise<JobPlacement>;
  /**
   * The job's accounting; undefined when there is nothing to read (rlimit mode, or already
   * released). From `recorded` (what the supervisor read of placement.accountingFiles) when that
   * is non-empty, else from the cgroup files.
   */
  collect(jobId: number, recorded?: RecordedAccounting): Promise<LimiterReport | undefined>;
  /**
   * Kills whatever is left of the job, waits until its cgroups are empty and removes them.
   * Idempotent and tolerant of directories that are already gone. Rejects (CgroupBusyError) when
   * processes survive the bounded wait (e.g. stuck in uninterruptible I/O); call again later.
   */
  release(jobId: number): Promise<void>;
  /** Jobs whose cgroups exist, ascending: for orphan cleanup when the daemon starts. */
  listJobIds(): Promise<number[]>;
  /**
   * Removes the daemon's parent cgroup directories (in every hierarchy, each component of the
   * parent path, deepest first) unless they still hold something: the kernel refuses to rmdir a
   * cgroup with child cgroups or processes, so a job's cgroup, and the parent above it, are never
   * touched. For a daemon stopping with no job left, so that daemons on throwaway state dirs leave
   * no cgroups behind. Resolves whether none of them is left; a later prepare() sets them up again.
   */
  removeParentIfUnused(): Promise<boolean>;
}

/**
 * pids.max when the job sets no `pids`: 4096 processes+threads. A fork bomb (RELIABILITY L4) without
 * it exhausts the host's pid space (kernel.pid_max is 32768 on many hosts) and takes the node down
 * with every other job on it; 4096 is far above what a node-local job needs (one MPI rank per core
 * with a few dozen threads each on a 64-core node is ~2000) and far below pid_max.
 */
export const DEFAULT_PIDS_MAX = 4096;

/** CFS period: 100 ms, the kernel default; quota = cores × period. */
export const CPU_PERIOD_USEC = 100_000;

export const MIB = 1024 * 1024;

/** Thrown by release() when a job's processes survive the kill and the bounded wait. */
export class CgroupBusyError extends Error {
  override readonly name = 'CgroupBusyError';
}

/** Thrown by prepare() when the job's limits cannot be applied (bad input or a cgroupfs refusal). */
export class LimitSetupError extends Error {
  override readonly name = 'LimitSetupError';
}

/** `path` normalized without a trailing slash: what cgroupPath builds on. */
export function normalDir(path: string): string {
  return normalize(path).replace(/(.)\/+$/, '$1');
}

/**
 * Joins a normalized absolute directory and names that hold no slash at either end (cgroup mounts,
 * the parent, job directories, control files): path.join normalizes its whole result every time,
 * and the ~60 paths a cgroup v1 job's set-up, accounting and removal name cost ~45 KB of garbage
 * per job with it (a quarter of all the daemon allocated per trivial job).
 */
export function cgroupPath(dir: string, ...names: string[]): string {
  return `${dir}/${names.join('/')}`;
}

/** The cgroup directory name of a job. */
export function jobDirName(jobId: number): string {
  if (!Number.isSafeInteger(jobId) || jobId < 0) throw new LimitSetupError(`invalid job id ${jobId}`);
  return `job_${jobId}`;
}

/** The job id of a cgroup directory name, or undefined for anything that is not a job dir. */
export function parseJobDirName(name: string): number | undefined {
  const m = /^job_(\d{1,15})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * rmdir of `<base>/<relPath>`, then of each of its ancestors up to (not including) `base`, deepest
 * first. Stops at the first directory that is not empty (EBUSY from cgroupfs, ENOTEMPTY elsewhere):
 * it holds job cgroups, or is an ancestor shared with something else, and so does everything above
 * it. A directory already gone is skipped. Resolves whether none of them is left.
 */
export async function removeEmptyParentChain(fs: CgroupFs, base: string, relPath: string): Promise<boolean> {
  const parts = relPath.split(sep).filter(Boolean);
  for (let depth = parts.length; depth > 0; depth--) {
    const dir = join(base, ...parts.slice(0, depth));
    try {
      await fs.rmdir(dir);
    } catch (err) {
      if (isErrno(err, 'EBUSY', 'ENOTEMPTY')) return false;
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }
  return true;
}

/** Checks the numbers every implementation relies on. */
export function validateLimits(limits: JobLimits): void {
  if (!(Number.isFinite(limits.cores) && limits.cores > 0)) {
    throw new LimitSetupError(`cores must be a positive number, got ${limits.cores}`);
  }
  if (!(Number.isSafeInteger(limits.memoryLimitBytes) && limits.memoryLimitBytes > 0)) {
    throw new LimitSetupError(`memoryLimitBytes must be a positive integer, got ${limits.memoryLimitBytes}`);
  }
  if (!(Number.isSafeInteger(limits.timeLimitSeconds) && limits.timeLimitSeconds > 0)) {
    throw new LimitSetupError(`timeLimitSeconds must be a positive integer, got ${limits.timeLimitSeconds}`);
  }
  if (limits.cpus !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(limits.cpus)) {
    throw new LimitSetupError(`cpus must be a CPU list like "0-3,8", got ${JSON.stringify(limits.cpus)}`);
  }
}

/** CPU bandwidth quota per CPU_PERIOD_USEC; at least 1 ms, the kernel's minimum. */
export function cpuQuotaUsec(cores: number): number {
  return Math.max(1000, Math.round(cores * CPU_PERIOD_USEC));
}

/**
 * The per-process rlimits every mode sets, because cgroups have no equivalent: NOFILE, FSIZE and
 * CORE from resource_limit (sizes MiB -> bytes), and NPROC when `nproc` is given explicitly.
 */
export function perProcessRlimits(resourceLimits: ResourceLimits): Partial<Record<RlimitName, number>> {
  const rlimits: Partial<Record<RlimitName, number>> = {};
  if (resourceLimits.nofile !== undefined) rlimits.NOFILE = resourceLimits.nofile;
  if (resourceLimits.fsizeMb !== undefined) rlimits.FSIZE = resourceLimits.fsizeMb * MIB;
  if (resourceLimits.coreMb !== undefined) rlimits.CORE = resourceLimits.coreMb * MIB;
  if (resourceLimits.nproc !== undefined) rlimits.NPROC = resourceLimits.nproc;
  return rlimits;
}

/** The words of a list file (cgroup.controllers, cgroup.subtree_control); [] when it is absent. */
export function parseWords(text: string | undefined): string[] {
  return (text ?? '').split(/\s+/).filter(Boolean);
}

/** Parses `key value` lines (memory.events, cpu.stat, cpuacct.stat, memory.oom_control). */
export function parseKeyValues(text: string | undefined): Map<string, number> {
  const values = new Map<string, number>();
  if (text === undefined) return values;
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\d+)\s*$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  return values;
}

/** A single integer file ("123\n"); undefined when absent or not a number ("max"). */
export function parseInteger(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}
