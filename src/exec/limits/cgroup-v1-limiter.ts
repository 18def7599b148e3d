/**
 * CgroupV1Limiter: job limits from cgroup v1, one directory `<mount>/<parentName>/job_<id>` in each
 * of the memory, cpu, cpuacct, pids and freezer hierarchies (and cpuset when the job names cpus).
 * Hierarchies that are co-mounted (`cpu,cpuacct` on one mount) share one directory.
 *
 * Why: hosts with the v1 or the hybrid layout (v1 controllers plus an empty cgroup2 mount at
 * /sys/fs/cgroup/unified) cannot use cgroup2 for limits, and a v1 cgroup is still the only job
 * identity its processes cannot leave.
 *
 * What it guarantees, once the job process has written "0" into every placement cgroup.procs:
 * - memory: `memory.limit_in_bytes` = the limit and `memory.memsw.limit_in_bytes` = the same value
 *   where swap accounting exists, so memory + swap never exceeds the limit (L3);
 *   `memory.swappiness` = 0 where writable. v1 has no `memory.oom.group`: an OOM kill takes one
 *   process (the largest) and the rest of the job may keep running (L2: the executor decides);
 * - CPU: `cpu.cfs_quota_us` = cores × `cpu.cfs_period_us` (100 ms) for the job as a whole (L6);
 * - processes: `pids.max` = resource_limit pids, or DEFAULT_PIDS_MAX (L4);
 * - CPUs: with JobLimits.cpus, `cpuset.cpus` = those CPUs and `cpuset.mems` copied from the parent
 *   (a new v1 cpuset starts EMPTY and refuses tasks); without, the job stays in its cpuset (L7);
 * - kill: release() freezes the freezer cgroup, SIGKILLs every pid listed in any of the job's
 *   cgroup.procs, thaws, and repeats until every directory is empty; then rmdirs them (L10, L16).
 *   Frozen processes cannot exit, so a listed pid cannot be reused by another process before the
 *   SIGKILL. A process killed while still joining (in memory but not yet in freezer) has no such
 *   protection; its pid is read and killed within microseconds, an accepted race.
 *
 * Parents: `<mount>/<parentName>` is created in each hierarchy at the first prepare() and removed
 * by removeParentIfUnused() once no job cgroup is left in it.
 *
 * Accounting (collect): OOM kills from `memory.oom_control` `oom_kill` (Linux >= 4.13); before that,
 * `oomKillsCounted` is false and `memoryLimitHits` (max of memory.failcnt and memory.memsw.failcnt:
 * with memsw the limit is usually hit on the memsw counter) plus a main process that died of a
 * SIGKILL the supervisor did not send is the evidence (failcnt is no use on new kernels: on 6.18
 * both counters stayed 0 through an OOM kill that oom_kill counted). Peak from `memory.max_usage_in_bytes`
 * (includes page cache). CPU from cpuacct.usage_user/usage_sys (ns) where present, else
 * cpuacct.stat (USER_HZ ticks; USER_HZ is 100 on every Linux ABI); total from cpuacct.usage (ns).
 */
import { dirname, join, sep } from 'node:path';
import type { EnforcementMode } from '../../core/job.js';
import {
  backoff,
  type CgroupFs,
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

export type CgroupV1Controller = 'memory' | 'cpu' | 'cpuacct' | 'pids' | 'freezer' | 'cpuset';

/** Mount directory of each v1 controller; co-mounted controllers name the same directory. */
export interface CgroupV1Mounts {
  memory: string;
  cpu: string;
  cpuacct: string;
  pids: string;
  freezer: string;
  /** Optional: only jobs that name cpus use it. */
  cpuset?: string;
}

/** The usual layout: each controller at `<root>/<controller>` (symlinks resolve co-mounts). */
export function standardV1Mounts(root = '/sys/fs/cgroup'): CgroupV1Mounts {
  return {
    memory: join(root, 'memory'),
    cpu: join(root, 'cpu'),
    cpuacct: join(root, 'cpuacct'),
    pids: join(root, 'pids'),
    freezer: join(root, 'freezer'),
    cpuset: join(root, 'cpuset'),
  };
}

/** USER_HZ, the unit of cpuacct.stat: 100 on every Linux ABI (sysconf(_SC_CLK_TCK)). */
const USER_HZ = 100;

export interface CgroupV1LimiterOptions {
  /** Where each controller is mounted. Default standardV1Mounts(). */
  mounts?: CgroupV1Mounts;
  /** Path of the parent below each mount (may have several components). Default `hpcq`. */
  parentName?: string;
  /** pids.max of a job that sets no `pids`. Default DEFAULT_PIDS_MAX (4096). */
  defaultPidsMax?: number;
  /** How long release() waits for the job's processes to die, ms. Default 10000. */
  releaseTimeoutMs?: number;
  /** File operations; a fake in unit tests. Default: the real filesystem. */
  fs?: CgroupFs;
  /** Sends SIGKILL, ignoring a process that is gone. Default process.kill. */
  killPid?: (pid: number) => void;
}

/** The order the job joins its cgroups: freezer first, so it is killable by release() at once. */
const JOIN_ORDER: readonly CgroupV1Controller[] = ['freezer', 'memory', 'pids', 'cpu', 'cpuacct', 'cpuset'];

export class CgroupV1Limiter implements Limiter {
  readonly mode: EnforcementMode = 'cgroup1';
  readonly mounts: Readonly<CgroupV1Mounts>;
  readonly parentName: string;
  private readonly defaultPidsMax: number;
  private readonly releaseTimeoutMs: number;
  private readonly fs: CgroupFs;
  private readonly killPid: (pid: number) => void;
  private parentReady: Promise<void> | undefined;
  private cpusetParentReady: Promise<void> | undefined;
  /** Whether swap is accounted (memsw files exist), learnt once per parent set-up. */
  private memswKnown: Promise<boolean> | undefined;
  /** The parents were set up (and are checked to still exist before each job). */
  private parentsMade = false;
  /** The parent in each hierarchy but cpuset: what is checked before every job. */
  private readonly parentDirs: readonly string[];
  /** The cpuset parent, checked too once a job used it. */
  private readonly cpusetParentDir: string | undefined;

  constructor(options: CgroupV1LimiterOptions = {}) {
    // Normalized once: every job path is built from these by plain concatenation (cgroupPath).
    const m = options.mounts ?? standardV1Mounts();
    this.mounts = Object.freeze({
      memory: normalDir(m.memory),
      cpu: normalDir(m.cpu),
      cpuacct: normalDir(m.cpuacct),
      pids: normalDir(m.pids),
      freezer: normalDir(m.freezer),
      ...(m.cpuset !== undefined ? { cpuset: normalDir(m.cpuset) } : {}),
    });
    const parentName = normalDir(options.parentName ?? 'hpcq');
    if (parentName === '.' || parentName.startsWith('..') || parentName.startsWith(sep)) {
      throw new LimitSetupError(`cgroup parent name ${JSON.stringify(options.parentName)} must be a relative path below each mount`);
    }
    this.parentName = parentName;
    this.parentDirs = [...new Set([this.mounts.freezer, this.mounts.memory, this.mounts.pids, this.mounts.cpu, this.mounts.cpuacct])].map((dir) => cgroupPath(dir, parentName));
    this.cpusetParentDir = this.mounts.cpuset === undefined ? undefined : cgroupPath(this.mounts.cpuset, parentName);
    this.defaultPidsMax = options.defaultPidsMax ?? DEFAULT_PIDS_MAX;
    this.releaseTimeoutMs = options.releaseTimeoutMs ?? 10_000;
    this.fs = options.fs ?? nodeCgroupFs;
    this.killPid = options.killPid ?? sigkillIgnoringGone;
  }

  /** The job directory of each controller (co-mounted controllers share one). */
  jobDirs(jobId: number): Record<Exclude<CgroupV1Controller, 'cpuset'>, string> & { cpuset?: string } {
    const name = jobDirName(jobId);
    const dir = (mount: string) => cgroupPath(mount, this.parentName, name);
    return {
      freezer: dir(this.mounts.freezer),
      memory: dir(this.mounts.memory),
      pids: dir(this.mounts.pids),
      cpu: dir(this.mounts.cpu),
      cpuacct: dir(this.mounts.cpuacct),
      ...(this.mounts.cpuset !== undefined ? { cpuset: dir(this.mounts.cpuset) } : {}),
    };
  }

  /** Distinct job directories in join order; cpuset only when `withCpuset`. */
  private distinctDirs(jobId: number, withCpuset: boolean): string[] {
    const dirs = this.jobDirs(jobId);
    const result: string[] = [];
    for (const c of JOIN_ORDER) {
      if (c === 'cpuset' && !withCpuset) continue;
      const d = dirs[c];
      if (d !== undefined && !result.includes(d)) result.push(d);
    }
    return result;
  }

  async prepare(jobId: number, limits: JobLimits, options: PrepareOptions = {}): Promise<JobPlacement> {
    validateLimits(limits);
    const withCpuset = limits.cpus !== undefined;
    if (withCpuset && this.mounts.cpuset === undefined) {
      throw new LimitSetupError(`job ${jobId} asks for cpus ${limits.cpus} but no cpuset hierarchy is mounted`);
    }
    await this.ensureParents(withCpuset);
    const dirs = this.jobDirs(jobId);
    const all = this.distinctDirs(jobId, withCpuset);
    const setup = await this.setupSteps(dirs, all, limits);
    if (!options.deferSetup) await applySetup(this.fs, setup, `cgroups of job ${jobId}`);
    return {
      cgroupProcsFiles: all.map((d) => cgroupPath(d, 'cgroup.procs')),
      kill: { kind: 'cgroup1', freezerDir: dirs.freezer },
      rlimits: perProcessRlimits(limits.resourceLimits),
      rlimitsHard: {},
      accountingFiles: this.accountingFiles(dirs),
      cgroupDirs: all,
      ...(options.deferSetup ? { setup } : {}),
    };
  }

  private forgetParents(): void {
    this.parentsMade = false;
    this.parentReady = undefined;
    this.cpusetParentReady = undefined;
    this.memswKnown = undefined;
  }

  /** Whether the parents set up so far still exist (one stat each). */
  private async parentsPresent(): Promise<boolean> {
    for (const dir of this.parentDirs) if (!(await this.fs.exists(dir))) return false;
    if (this.cpusetParentReady && this.cpusetParentDir !== undefined && !(await this.fs.exists(this.cpusetParentDir))) return false;
    return true;
  }

  /**
   * The job's directories, then its limits. Memory: memsw is opened to unlimited (-1) first, so
   * the memory limit can then move either way (the kernel keeps memory <= memsw), then closed to
   * the limit: no read of the current values is needed, for a new or a re-used directory alike.
   */
  private async setupSteps(dirs: ReturnType<CgroupV1Limiter['jobDirs']>, all: readonly string[], limits: JobLimits): Promise<CgroupSetupStep[]> {
    const limit = String(limits.memoryLimitBytes);
    const memsw = cgroupPath(dirs.memory, 'memory.memsw.limit_in_bytes');
    const withMemsw = await this.swapAccounted();
    const steps: CgroupSetupStep[] = all.map((d) => ({ mkdir: d }));
    if (withMemsw) steps.push({ write: memsw, value: '-1' });
    steps.push({ write: cgroupPath(dirs.memory, 'memory.limit_in_bytes'), value: limit });
    if (withMemsw) steps.push({ write: memsw, value: limit });
    // Best effort: keeps the job out of swap below its limit; refused on some kernels/configs.
    steps.push({ write: cgroupPath(dirs.memory, 'memory.swappiness'), value: '0', optional: true });
    steps.push({ write: cgroupPath(dirs.cpu, 'cpu.cfs_period_us'), value: String(CPU_PERIOD_USEC) });
    steps.push({ write: cgroupPath(dirs.cpu, 'cpu.cfs_quota_us'), value: String(cpuQuotaUsec(limits.cores)) });
    steps.push({ write: cgroupPath(dirs.pids, 'pids.max'), value: String(limits.resourceLimits.pids ?? this.defaultPidsMax) });
    if (limits.cpus !== undefined && dirs.cpuset !== undefined) {
      const parentMems = (await this.fs.read(cgroupPath(dirname(dirs.cpuset), 'cpuset.mems')))?.trim() ?? '';
      steps.push({ write: cgroupPath(dirs.cpuset, 'cpuset.cpus'), value: limits.cpus });
      steps.push({ write: cgroupPath(dirs.cpuset, 'cpuset.mems'), value: parentMems });
    }
    return steps;
  }

  /** Whether the kernel accounts swap (memsw files exist), as the memory parent shows; asked once. */
  private swapAccounted(): Promise<boolean> {
    this.memswKnown ??= this.fs.exists(cgroupPath(this.mounts.memory, this.parentName, 'memory.memsw.limit_in_bytes'));
    return this.memswKnown;
  }

  private async ensureParents(withCpuset: boolean): Promise<void> {
    // Set up once; made again if a parent was removed behind the daemon's back (one stat each).
    if (this.parentsMade && !(await this.parentsPresent())) this.forgetParents();
    this.parentReady ??= this.setUpParents(
      [this.mounts.freezer, this.mounts.memory, this.mounts.pids, this.mounts.cpu, this.mounts.cpuacct],
      false,
    ).then(() => {
      this.parentsMade = true;
    }, (err: unknown) => {
      this.parentReady = undefined;
      throw err;
    });
    if (!withCpuset || this.mounts.cpuset === undefined) return this.parentReady;
    this.cpusetParentReady ??= this.setUpParents([this.mounts.cpuset], true).catch((err: unknown) => {
      this.cpusetParentReady = undefined;
      throw err;
    });
    return Promise.all([this.parentReady, this.cpusetParentReady]).then(() => undefined);
  }

  /**
   * mkdir -p of the parent in each mount. A cpuset dir with empty cpus or mems (as every new v1
   * cpuset starts) gets its parent's, or no job below it could run.
   */
  private async setUpParents(mounts: string[], cpuset: boolean): Promise<void> {
    for (const mount of new Set(mounts)) {
      if (!(await this.fs.exists(cgroupPath(mount, 'cgroup.procs')))) {
        throw new LimitSetupError(`${mount} is not a mounted cgroup v1 hierarchy`);
      }
      let dir = mount;
      for (const part of this.parentName.split(sep)) {
        const parent = dir;
        dir = cgroupPath(dir, part);
        await this.fs.mkdir(dir);
        if (!cpuset) continue;
        for (const file of ['cpuset.cpus', 'cpuset.mems']) {
          if (((await this.fs.read(cgroupPath(dir, file))) ?? '').trim() !== '') continue;
          await writeCgroupFile(this.fs, cgroupPath(dir, file), (await this.fs.read(cgroupPath(parent, file)))?.trim() ?? '');
        }
      }
    }
  }

  /** Every file collect() reads, for the supervisor to read once the job is gone. */
  private accountingFiles(dirs: ReturnType<CgroupV1Limiter['jobDirs']>): string[] {
    return [
      cgroupPath(dirs.memory, 'memory.oom_control'),
      cgroupPath(dirs.memory, 'memory.max_usage_in_bytes'),
      cgroupPath(dirs.memory, 'memory.failcnt'),
      cgroupPath(dirs.memory, 'memory.memsw.failcnt'),
      cgroupPath(dirs.cpuacct, 'cpuacct.usage_user'),
      cgroupPath(dirs.cpuacct, 'cpuacct.usage_sys'),
      cgroupPath(dirs.cpuacct, 'cpuacct.stat'),
      cgroupPath(dirs.cpuacct, 'cpuacct.usage'),
      cgroupPath(dirs.cpu, 'cpu.stat'),
    ];
  }

  async collect(jobId: number, recorded?: RecordedAccounting): Promise<LimiterReport | undefined> {
    const dirs = this.jobDirs(jobId);
    const fs = this.fs;
    const read = accountingReader(fs, recorded);
    if (!recorded?.size && !(await fs.exists(dirs.memory)) && !(await fs.exists(dirs.cpuacct))) return undefined;
    const oomControl = parseKeyValues(await read(cgroupPath(dirs.memory, 'memory.oom_control')));
    const usageUserNs = parseInteger(await read(cgroupPath(dirs.cpuacct, 'cpuacct.usage_user')));
    const usageSysNs = parseInteger(await read(cgroupPath(dirs.cpuacct, 'cpuacct.usage_sys')));
    // The coarser cpuacct.stat (ticks) only on kernels without the nanosecond split (before 4.6).
    const stat = usageUserNs === undefined || usageSysNs === undefined ? parseKeyValues(await read(cgroupPath(dirs.cpuacct, 'cpuacct.stat'))) : new Map<string, number>();
    const ticksToUsec = 1_000_000 / USER_HZ;
    return {
      userCpuUsec: usageUserNs !== undefined ? Math.round(usageUserNs / 1000) : (stat.get('user') ?? 0) * ticksToUsec,
      systemCpuUsec: usageSysNs !== undefined ? Math.round(usageSysNs / 1000) : (stat.get('system') ?? 0) * ticksToUsec,
      peakMemoryBytes: parseInteger(await read(cgroupPath(dirs.memory, 'memory.max_usage_in_bytes'))) ?? 0,
      oomKills: oomControl.get('oom_kill') ?? 0,
      oomKillsCounted: oomControl.has('oom_kill'),
      memoryLimitHits: Math.max(
        parseInteger(await read(cgroupPath(dirs.memory, 'memory.failcnt'))) ?? 0,
        parseInteger(await read(cgroupPath(dirs.memory, 'memory.memsw.failcnt'))) ?? 0,
      ),
      totalCpuUsec: Math.round((parseInteger(await read(cgroupPath(dirs.cpuacct, 'cpuacct.usage'))) ?? 0) / 1000),
      cpuThrottledPeriods: parseKeyValues(await read(cgroupPath(dirs.cpu, 'cpu.stat'))).get('nr_throttled') ?? 0,
    };
  }

  async release(jobId: number): Promise<void> {
    const fs = this.fs;
    const candidates = this.distinctDirs(jobId, true);
    const existing: string[] = [];
    for (const d of candidates) if (await fs.exists(d)) existing.push(d);
    if (existing.length === 0) return;
    const freezerDir = this.jobDirs(jobId).freezer;
    const canFreeze = existing.includes(freezerDir) && (await fs.exists(cgroupPath(freezerDir, 'freezer.state')));
    const deadline = Date.now() + this.releaseTimeoutMs;
    const pause = backoff();
    let killRounds = 0;
    for (;;) {
      const pids = await this.listedPids(existing);
      if (pids.size === 0) break;
      // The deadline counts only after one round of killing, however slow the host was to get here.
      if (killRounds > 0 && Date.now() > deadline) {
        throw new CgroupBusyError(`processes ${[...pids].join(' ')} of job ${jobId} survive ${this.releaseTimeoutMs} ms after SIGKILL`);
      }
      killRounds++;
      if (canFreeze) await this.freeze(freezerDir, deadline);
      try {
        // Re-read: what was listed before the freeze may have forked since.
        for (const pid of await this.listedPids(existing)) this.killPid(pid);
      } finally {
        if (canFreeze) await writeCgroupFile(fs, cgroupPath(freezerDir, 'freezer.state'), 'THAWED').catch(() => undefined);
      }
      await pause();
    }
    for (const d of existing) {
      await removeCgroupTree(fs, d, deadline).catch((err: unknown) => {
        throw new CgroupBusyError(`cannot remove ${d} of job ${jobId}: ${String(err)}`, { cause: err });
      });
    }
  }

  /** Writes FROZEN and waits (bounded) until the kernel reports FROZEN, not FREEZING. */
  private async freeze(freezerDir: string, deadline: number): Promise<void> {
    const state = cgroupPath(freezerDir, 'freezer.state');
    await writeCgroupFile(this.fs, state, 'FROZEN');
    // A task in uninterruptible sleep keeps the cgroup FREEZING; kill anyway after a short wait.
    const freezeDeadline = Math.min(deadline, Date.now() + 1000);
    const pause = backoff(20);
    while ((await this.fs.read(state))?.trim() === 'FREEZING' && Date.now() < freezeDeadline) await pause();
  }

  private async listedPids(dirs: string[]): Promise<Set<number>> {
    const pids = new Set<number>();
    for (const d of dirs) {
      for (const child of await this.fs.listDirs(d)) for (const pid of await this.listedPids([cgroupPath(d, child)])) pids.add(pid);
      for (const pid of await readPids(this.fs, cgroupPath(d, 'cgroup.procs'))) pids.add(pid);
    }
    return pids;
  }

  async listJobIds(): Promise<number[]> {
    const ids = new Set<number>();
    for (const mount of this.distinctMounts()) {
      for (const name of await this.fs.listDirs(cgroupPath(mount, this.parentName))) {
        const id = parseJobDirName(name);
        if (id !== undefined) ids.add(id);
      }
    }
    return [...ids].sort((a, b) => a - b);
  }

  /** Every mount the parent may exist in, cpuset included (its parent is made for jobs with cpus). */
  private distinctMounts(): Set<string> {
    return new Set(Object.values(this.mounts).filter((m): m is string => m !== undefined));
  }

  async removeParentIfUnused(): Promise<boolean> {
    // Forget the set-up parents first, so a prepare() from now on creates them again.
    this.forgetParents();
    let allRemoved = true;
    // Every mount, even after a busy one: each hierarchy's parent is independent of the others.
    for (const mount of this.distinctMounts()) {
      if (!(await removeEmptyParentChain(this.fs, mount, this.parentName))) allRemoved = false;
    }
    return allRemoved;
  }
}
