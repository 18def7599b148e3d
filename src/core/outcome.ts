/**
 * Decides how a run ended from what the supervisor and the limiter observed. Pure.
 * Precedence: launch failure > cancel > memory limit > time limit > CPU-time limit > exit status.
 * An OOM kill anywhere in the job wins over the main process's exit code: a job whose child was
 * OOM-killed is OUT_OF_MEMORY even when the main process exits 0 (never reported as success).
 */
import type { JobOutcome, JobUsage } from './job.js';

export interface RunObservation {
  launchError?: string;
  /** Main process exit code when it exited, else undefined. */
  exitCode?: number;
  /** Signal that killed the main process, else undefined. */
  signal?: number;
  timedOut: boolean;
  cancelled: boolean;
  /** OOM kills counted by the memory cgroup (0 where unknown). */
  oomKills: number;
  /**
   * RLIMIT_CPU soft limit in seconds when it is enforced (rlimit mode), else undefined. The kernel
   * ends a job over it with SIGXCPU (soft) then SIGKILL (hard).
   */
  cpuTimeLimitSeconds?: number;
  usage?: JobUsage;
  endTimeMs: number;
  cancelledBy?: string;
}

const SIGKILL = 9;
const SIGXCPU = 24;

export function decideOutcome(o: RunObservation): JobOutcome {
  const base = { exitCode: o.exitCode ?? 0, termSignal: o.signal ?? 0, endTimeMs: o.endTimeMs, ...(o.usage ? { usage: o.usage } : {}) };
  if (o.launchError !== undefined) {
    return { ...base, state: 'FAILED', reason: `LaunchFailed: ${o.launchError}`, limitHit: '' };
  }
  if (o.cancelled) return { ...base, state: 'CANCELLED', reason: o.cancelledBy ? `Cancelled by ${o.cancelledBy}` : 'Cancelled', limitHit: '' };
  if (o.oomKills > 0) {
    return { ...base, state: 'OUT_OF_MEMORY', reason: `OutOfMemory: ${o.oomKills} process(es) killed by the memory limit`, limitHit: 'memory' };
  }
  if (o.timedOut) return { ...base, state: 'TIMEOUT', reason: 'TimeLimit: wall time reached time_limit', limitHit: 'time' };
  if (o.cpuTimeLimitSeconds !== undefined && (o.signal === SIGXCPU || o.signal === SIGKILL) && usedCpuTimeLimit(o)) {
    // RLIMIT_CPU sends SIGXCPU at the soft limit and SIGKILL at the hard one; a SIGKILL of a job far
    // below its CPU allowance came from someone else and stays a plain FAILED.
    return { ...base, state: 'TIMEOUT', reason: 'TimeLimit: CPU time reached cores x time_limit (RLIMIT_CPU)', limitHit: 'cpu_time' };
  }
  if (o.signal !== undefined && o.signal !== 0) {
    return { ...base, state: 'FAILED', reason: `Signal: main process killed by signal ${o.signal}`, limitHit: '' };
  }
  if (o.exitCode === 0) return { ...base, state: 'COMPLETED', reason: '', limitHit: '' };
  return { ...base, state: 'FAILED', reason: `NonZeroExitCode: main process exited with ${o.exitCode}`, limitHit: '' };
}

/**
 * Whether the job's CPU time reached its RLIMIT_CPU soft limit. 10% slack: the kernel checks the
 * limit on its tick while the supervisor's rusage lags it slightly (measured 9.9 s at an 11 s limit).
 */
function usedCpuTimeLimit(o: RunObservation): boolean {
  if (o.cpuTimeLimitSeconds === undefined || !o.usage) return false;
  const usedSeconds = (o.usage.userCpuUsec + o.usage.systemCpuUsec) / 1e6;
  return usedSeconds >= 0.9 * o.cpuTimeLimitSeconds;
}
