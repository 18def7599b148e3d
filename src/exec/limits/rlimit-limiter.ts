/**
 * RlimitLimiter: limits without cgroups, as setrlimit(2) values the supervisor applies to the job
 * process before exec. The fallback for hosts where no cgroup hierarchy is usable; chosen only by
 * `enforcement: auto` on such a host or by `enforcement: rlimit` explicitly.
 *
 * What it sets:
 * - memory: RLIMIT_AS = the memory limit (or RLIMIT_DATA with `memoryRlimit: 'DATA'`);
 * - CPU time: RLIMIT_CPU soft = cores × time limit + 1 s (the +1: the limit has 1 s granularity,
 *   so SIGXCPU at the soft limit means the process really used more than its allowance), hard =
 *   soft + `cpuKillGraceSeconds`, where the kernel sends SIGKILL (RELIABILITY L13);
 * - processes: RLIMIT_NPROC = resource_limit nproc, else pids, else DEFAULT_PIDS_MAX;
 * - NOFILE, FSIZE, CORE from resource_limit, as in the cgroup modes.
 *
 * What it cannot guarantee (say so to users; `require_enforcement` refuses this mode unless the
 * admin chose it):
 * - Every rlimit is per PROCESS: a job of N processes may use N × the memory limit and each of
 *   them cores × time limit of CPU time. There is no job-wide memory or CPU-time cap.
 * - No CPU bandwidth limit: a job with cores=1 may keep every core of the node busy.
 * - RLIMIT_AS counts virtual address space, not memory used: a program that reserves a large
 *   mapping and touches little of it (JVMs, Go and Julia runtimes, CUDA, address sanitizer) fails
 *   with ENOMEM although it would fit — a false positive (RELIABILITY L14). RLIMIT_DATA (Linux >= 4.7:
 *   heap and private writable mappings) skips PROT_NONE reservations, so it has fewer false positives,
 *   but it still counts writable mappings that are never touched, and misses shared mappings and
 *   the stack.
 * - Memory over the limit is not an OOM kill: the kernel refuses the allocation, the job sees ENOMEM
 *   (malloc returns NULL, mmap and brk fail) and usually exits non-zero ("memory exhausted") or dies
 *   of SIGSEGV/SIGABRT. Nothing tells the daemon that memory was the cause, so such a job is
 *   reported as FAILED, never OUT_OF_MEMORY, with limit_hit empty. collect() has no accounting to
 *   offer; CPU time and peak memory (the largest RSS of one process) come from the supervisor's rusage.
 * - RLIMIT_NPROC counts every process and thread of the job's user on the whole host (other jobs,
 *   login sessions), not of the job (RELIABILITY L5); and when the user already has more, the job's
 *   exec fails with EAGAIN.
 * - Kill is by process tree (`process-tree`): the supervisor is a child subreaper, so setsid'ed and
 *   double-forked processes are re-parented to it and still found and killed (RELIABILITY L10). What
 *   escapes is anything the job gets started outside its tree (cron, at, systemd --user, ssh to
 *   the node), and the tree walk can lag behind a very fast forker; a cgroup has neither gap.
 */
import type { EnforcementMode } from '../../core/job.js';
import {
  DEFAULT_PIDS_MAX,
  type JobLimits,
  type JobPlacement,
  type Limiter,
  type LimiterReport,
  perProcessRlimits,
  type RlimitName,
  validateLimits,
} from './limiter.js';

export interface RlimitLimiterOptions {
  /** Which rlimit carries the memory limit. Default 'AS' (address space; see the header on false positives). */
  memoryRlimit?: 'AS' | 'DATA';
  /** RLIMIT_NPROC of a job that sets neither nproc nor pids. Default DEFAULT_PIDS_MAX (4096). */
  defaultNproc?: number;
  /** Seconds of CPU time between SIGXCPU (soft) and SIGKILL (hard). Default 30, like kill_grace_seconds. */
  cpuKillGraceSeconds?: number;
}

export class RlimitLimiter implements Limiter {
  readonly mode: EnforcementMode = 'rlimit';
  private readonly memoryRlimit: 'AS' | 'DATA';
  private readonly defaultNproc: number;
  private readonly cpuKillGraceSeconds: number;

  constructor(options: RlimitLimiterOptions = {}) {
    this.memoryRlimit = options.memoryRlimit ?? 'AS';
    this.defaultNproc = options.defaultNproc ?? DEFAULT_PIDS_MAX;
    this.cpuKillGraceSeconds = options.cpuKillGraceSeconds ?? 30;
  }

  /** Pure: the placement of a job (prepare() without the promise). */
  placementFor(limits: JobLimits): JobPlacement {
    validateLimits(limits);
    const cpuSeconds = Math.ceil(limits.cores * limits.timeLimitSeconds) + 1;
    const rlimits: Partial<Record<RlimitName, number>> = {
      ...perProcessRlimits(limits.resourceLimits),
      [this.memoryRlimit]: limits.memoryLimitBytes,
      CPU: cpuSeconds,
      NPROC: limits.resourceLimits.nproc ?? limits.resourceLimits.pids ?? this.defaultNproc,
    };
    return {
      cgroupProcsFiles: [],
      kill: { kind: 'process-tree' },
      rlimits,
      rlimitsHard: { CPU: cpuSeconds + this.cpuKillGraceSeconds },
    };
  }

  async prepare(_jobId: number, limits: JobLimits): Promise<JobPlacement> {
    return this.placementFor(limits);
  }

  async collect(_jobId: number): Promise<LimiterReport | undefined> {
    return undefined;
  }

  async release(_jobId: number): Promise<void> {}

  async listJobIds(): Promise<number[]> {
    return [];
  }

  /** No cgroups, so no parent to remove. */
  async removeParentIfUnused(): Promise<boolean> {
    return true;
  }
}
