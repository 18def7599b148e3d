/**
 * CgroupV2Limiter: job limits from one cgroup v2 directory per job, `<parentDir>/job_<id>`.
 *
 * Why: a cgroup is the only identity of a job that its processes cannot leave (setsid, double fork
 * and re-parenting do not change it) and the only place Linux enforces memory, CPU bandwidth and
 * process count for a group of processes as a whole.
 *
 * What it guarantees, once the job process has written "0" into the placement's cgroup.procs:
 * - memory: `memory.max` = the limit; `memory.swap.max` = 0 (no swapping around the limit, L3);
 *   `memory.oom.group` = 1, so an OOM kill takes the whole job, not one process (L2);
 * - CPU: `cpu.max` = cores × 100 ms per 100 ms: the job as a whole gets at most `cores` CPUs (L6);
 * - processes: `pids.max` = resource_limit pids, or DEFAULT_PIDS_MAX (fork bombs, L4);
 * - CPUs: `cpuset.cpus` when JobLimits.cpus is given (L7);
 * - kill: `cgroup.kill` kills every process of the job, escapees included (L10), and release()
 *   removes the directory only after `cgroup.events` says `populated 0` (L16).
 * Per-process limits cgroups do not have (NOFILE, FSIZE, CORE, explicit NPROC) go into rlimits.
 *
 * Parent setup (first prepare): creates `parentDir` and enables `+cpu +memory +pids` (and `+cpuset`
 * when available) in `cgroup.subtree_control` of the root and every directory down to `parentDir`.
 * Linux refuses that (EBUSY) in a non-root directory that has processes of its own ("no internal
 * processes"), so the daemon must not run inside `parentDir` or the directories between it and the
 * root; with systemd, put the daemon in a leaf of its delegated subtree (e.g. `<service>/daemon`)
 * and the jobs in a sibling (`<service>/jobs`). removeParentIfUnused() removes `parentDir` and the
 * directories between it and the root again once no job cgroup is left in them.
 */
import { join, relative, sep } from 'node:path';
import type { EnforcementMode } from '../../core/job.js';
import {
  backoff,
  type CgroupFs,
  isErrno,
  nodeCgroupFs,
  readPids,
  removeCgroupTree,
  sigkillIgnoringGone,
  writeCgroupFile,
} from './cgroup-fs.js';
import {
  CgroupBusyError,
  CPU_PERIOD_USEC,
  cpuQuotaUsec,
  DEFAULT_PIDS_MAX,
  type JobLimits,
  type JobPlacement,
  jobDirName,
  type Limiter,
  type LimiterReport,
  LimitSetupError,
  parseInteger,
  parseJobDirName,
  parseKeyValues,
  parseWords,
  perProcessRlimits,
  accountingReader,
  applySetup,
  cgroupPath,
  normalDir,
  type CgroupSetupStep,
  type PrepareOptions,
  type RecordedAccounting,
  removeEmptyParentChain,
  validateLimits,
} from './limiter.js';

/** Controllers a job cgroup must have; cpuset is enabled too when the host offers it. */
export const CGROUP2_REQUIRED_CONTROLLERS = ['cpu', 'memory', 'pids'] as const;

export interface CgroupV2LimiterOptions {
  /** Mount point of the cgroup2 hierarchy. Default `/sys/fs/cgroup`. */
  root?: string;
  /** Directory holding the job cgroups; must be below `root`. Default `<root>/hpcq`. */
  parentDir?: string;
  /** pids.max of a job that sets no `pids`. Default DEFAULT_PIDS_MAX (4096). */
  defaultPidsMax?: number;
  /** How long release() waits for the job's processes to die, ms. Default 10000 (covers slow exits of large jobs). */
  releaseTimeoutMs?: number;
  /** File operations; a fake in unit tests. Default: the real filesystem. */
  fs?: CgroupFs;
  /** Sends SIGKILL; used only on kernels without cgroup.kill (< 5.14). Default process.kill. */
  killPid?: (pid: number) => void;
}

export class CgroupV2Limiter implements Limiter {
  readonly mode: EnforcementMode = 'cgroup2';
  readonly root: string;
  readonly parentDir: string;
  private readonly defaultPidsMax: number;
  private readonly releaseTimeoutMs: number;
  private readonly fs: CgroupFs;
  private readonly killPid: (pid: number) => void;
  /** Controllers enabled for job cgroups, once the parent is set up. */
  private parentReady: Promise<ReadonlySet<string>> | undefined;
  /** The parent was set up (and is checked to still exist before each job). */
  private parentMade = false;

  constructor(options: CgroupV2LimiterOptions = {}) {
    // Normalized once: every job path is built from these by plain concatenation (cgroupPath).
    this.root = normalDir(options.root ?? '/sys/fs/cgroup');
    this.parentDir = normalDir(options.parentDir ?? join(this.root, 'hpcq'));
    const rel = relative(this.root, this.parentDir);
    if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) {
      throw new LimitSetupError(`cgroup parent ${this.parentDir} must be a directory below ${this.root}`);
    }
    this.defaultPidsMax = options.defaultPidsMax ?? DEFAULT_PIDS_MAX;
    this.releaseTimeoutMs = options.releaseTimeoutMs ?? 10_000;
    this.fs = options.fs ?? nodeCgroupFs;
    this.killPid = options.killPid ?? sigkillIgnoringGone;
  }

  jobDir(jobId: number): string {
    return cgroupPath(this.parentDir, jobDirName(jobId));
  }

  async prepare(jobId: number, limits: JobLimits, options: PrepareOptions = {}): Promise<JobPlacement> {
    const dir = this.jobDir(jobId);
    validateLimits(limits);
    const controllers = await this.ensureParent();
    if (limits.cpus !== undefined && !controllers.has('cpuset')) {
      throw new LimitSetupError(`job ${jobId} asks for cpus ${limits.cpus} but the cpuset controller is not available in ${this.parentDir}`);
    }
    const setup = this.setupSteps(dir, limits);
    if (!options.deferSetup) await applySetup(this.fs, setup, `the cgroup of job ${jobId}`);
    return {
      cgroupProcsFiles: [cgroupPath(dir, 'cgroup.procs')],
      kill: { kind: 'cgroup2', dir },
      rlimits: perProcessRlimits(limits.resourceLimits),
      rlimitsHard: {},
      accountingFiles: CgroupV2Limiter.accountingFiles(dir),
      cgroupDirs: [dir],
      ...(options.deferSetup ? { setup } : {}),
    };
  }

  /**
   * The job's directory, then its limits. memory.swap.max (absent without swap accounting) and
   * memory.oom.group (absent before Linux 4.19: an OOM kill then takes one process and the rest may
   * keep running) are optional.
   */
  private setupSteps(dir: string, limits: JobLimits): CgroupSetupStep[] {
    const steps: CgroupSetupStep[] = [
      { mkdir: dir },
      { write: cgroupPath(dir, 'pids.max'), value: String(limits.resourceLimits.pids ?? this.defaultPidsMax) },
      { write: cgroupPath(dir, 'memory.max'), value: String(limits.memoryLimitBytes) },
      { write: cgroupPath(dir, 'memory.swap.max'), value: '0', optional: true },
      { write: cgroupPath(dir, 'memory.oom.group'), value: '1', optional: true },
      { write: cgroupPath(dir, 'cpu.max'), value: `${cpuQuotaUsec(limits.cores)} ${CPU_PERIOD_USEC}` },
    ];
    if (limits.cpus !== undefined) steps.push({ write: cgroupPath(dir, 'cpuset.cpus'), value: limits.cpus });
    return steps;
  }

  private forgetParent(): void {
    this.parentMade = false;
    this.parentReady = undefined;
  }

  /** Creates the parent and enables the controllers down to it; once per limiter (again after a failure). */
  private async ensureParent(): Promise<ReadonlySet<string>> {
    // Made again if it was removed behind the daemon's back (one stat per job).
    if (this.parentMade && !(await this.fs.exists(this.parentDir))) this.forgetParent();
    this.parentReady ??= this.setUpParent().then(
      (controllers) => {
        this.parentMade = true;
        return controllers;
      },
      (err: unknown) => {
        this.parentReady = undefined;
        throw err;
      },
    );
    return this.parentReady;
  }

  private async setUpParent(): Promise<ReadonlySet<string>> {
    const fs = this.fs;
    const available = new Set(parseWords(await fs.read(cgroupPath(this.root, 'cgroup.controllers'))));
    const missing = CGROUP2_REQUIRED_CONTROLLERS.filter((c) => !available.has(c));
    if (missing.length > 0) {
      throw new LimitSetupError(
        `cgroup2 at ${this.root} lacks the ${missing.join(', ')} controller(s) (offers: ${[...available].join(' ') || 'none'}); ` +
          'on a hybrid host they are bound to cgroup v1 hierarchies',
      );
    }
    const wanted: string[] = [...CGROUP2_REQUIRED_CONTROLLERS];
    // cpuset is optional: without it, only jobs that name cpus are refused (in prepare()).
    let cpuset = available.has('cpuset');
    // Enable in the root and every directory down to the parent, so job dirs get the controllers.
    const chain = [this.root];
    for (const part of relative(this.root, this.parentDir).split(sep)) chain.push(cgroupPath(chain[chain.length - 1]!, part));
    for (const [i, dir] of chain.entries()) {
      if (i > 0) {
        try {
          await fs.mkdir(dir);
        } catch (err) {
          throw new LimitSetupError(`cannot create cgroup ${dir}: ${String(err)}`, { cause: err });
        }
      }
      const subtree = new Set(parseWords(await fs.read(cgroupPath(dir, 'cgroup.subtree_control'))));
      const toEnable = wanted.filter((c) => !subtree.has(c));
      if (toEnable.length > 0) {
        try {
          await writeCgroupFile(fs, cgroupPath(dir, 'cgroup.subtree_control'), toEnable.map((c) => `+${c}`).join(' '));
        } catch (err) {
          const hint = isErrno(err, 'EBUSY') ? ' (the directory has processes of its own; move them to a leaf cgroup)' : '';
          throw new LimitSetupError(`cannot enable ${toEnable.join(', ')} in ${dir}${hint}: ${String(err)}`, { cause: err });
        }
      }
      if (cpuset && !subtree.has('cpuset')) {
        cpuset = await writeCgroupFile(fs, cgroupPath(dir, 'cgroup.subtree_control'), '+cpuset').then(
          () => true,
          () => false,
        );
      }
    }
    return new Set(cpuset ? [...wanted, 'cpuset'] : wanted);
  }

  /** Every file collect() reads, for the supervisor to read once the job is gone. */
  private static accountingFiles(dir: string): string[] {
    return [cgroupPath(dir, 'memory.events'), cgroupPath(dir, 'cpu.stat'), cgroupPath(dir, 'memory.peak')];
  }

  async collect(jobId: number, recorded?: RecordedAccounting): Promise<LimiterReport | undefined> {
    const dir = this.jobDir(jobId);
    if (!recorded?.size && !(await this.fs.exists(dir))) return undefined;
    const read = accountingReader(this.fs, recorded);
    const events = parseKeyValues(await read(cgroupPath(dir, 'memory.events')));
    const cpu = parseKeyValues(await read(cgroupPath(dir, 'cpu.stat')));
    return {
      userCpuUsec: cpu.get('user_usec') ?? 0,
      systemCpuUsec: cpu.get('system_usec') ?? 0,
      peakMemoryBytes: parseInteger(await read(cgroupPath(dir, 'memory.peak'))) ?? 0,
      oomKills: Math.max(events.get('oom_kill') ?? 0, events.get('oom_group_kill') ?? 0),
      oomKillsCounted: events.has('oom_kill'),
      memoryLimitHits: events.get('max') ?? 0,
      totalCpuUsec: cpu.get('usage_usec') ?? 0,
      cpuThrottledPeriods: cpu.get('nr_throttled') ?? 0,
    };
  }

  async release(jobId: number): Promise<void> {
    const dir = this.jobDir(jobId);
    if (!(await this.fs.exists(dir))) return;
    const deadline = Date.now() + this.releaseTimeoutMs;
    const hasKillFile = await this.fs.exists(cgroupPath(dir, 'cgroup.kill'));
    const pause = backoff();
    for (;;) {
      const populated = await this.isPopulated(dir);
      if (populated === undefined) return; // removed meanwhile
      if (!populated) break;
      if (hasKillFile) {
        // Kills the whole subtree; forks racing with it are killed too (the kernel blocks them).
        await writeCgroupFile(this.fs, cgroupPath(dir, 'cgroup.kill'), '1').catch((err: unknown) => {
          if (!isErrno(err, 'ENOENT')) throw err;
        });
      } else {
        await this.killListedPids(dir);
      }
      if (Date.now() > deadline) {
        throw new CgroupBusyError(`processes of job ${jobId} survive in ${dir} ${this.releaseTimeoutMs} ms after SIGKILL`);
      }
      await pause();
    }
    await removeCgroupTree(this.fs, dir, deadline).catch((err: unknown) => {
      throw new CgroupBusyError(`cannot remove ${dir} of job ${jobId}: ${String(err)}`, { cause: err });
    });
  }

  /** `populated` from cgroup.events; undefined when the directory is gone. */
  private async isPopulated(dir: string): Promise<boolean | undefined> {
    const text = await this.fs.read(cgroupPath(dir, 'cgroup.events'));
    if (text === undefined) return (await this.fs.exists(dir)) ? (await readPids(this.fs, cgroupPath(dir, 'cgroup.procs'))).length > 0 : undefined;
    return parseKeyValues(text).get('populated') === 1;
  }

  /**
   * Fallback for kernels without cgroup.kill (< 5.14): SIGKILL every listed pid, subtree included.
   * Without a freeze a listed process may exit and its pid be reused before the kill: a narrow race
   * that cgroup.kill does not have.
   */
  private async killListedPids(dir: string): Promise<void> {
    for (const child of await this.fs.listDirs(dir)) await this.killListedPids(cgroupPath(dir, child));
    for (const pid of await readPids(this.fs, cgroupPath(dir, 'cgroup.procs'))) this.killPid(pid);
  }

  async listJobIds(): Promise<number[]> {
    const ids = (await this.fs.listDirs(this.parentDir)).map(parseJobDirName).filter((id) => id !== undefined);
    return ids.sort((a, b) => a - b);
  }

  async removeParentIfUnused(): Promise<boolean> {
    // Forget the set-up parent first, so a prepare() from now on creates it again. The controllers
    // enabled in the root's cgroup.subtree_control stay: other cgroups may rely on them.
    this.forgetParent();
    return removeEmptyParentChain(this.fs, this.root, relative(this.root, this.parentDir));
  }
}
