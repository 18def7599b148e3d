/**
 * Telling processes apart, from /proc: a process is its pid AND its start time (field 22 of
 * /proc/<pid>/stat, clock ticks since boot), so a pid reused after the original ended is never taken
 * for it; a boot is its /proc/sys/kernel/random/boot_id. Never a bare kill(pid, 0).
 *
 * Also the scan for supervisor processes that re-attach relies on (findSupervisorProcesses).
 * Everything here is synchronous: /proc is in-kernel and answers in microseconds.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** A process as the daemon verifies it: pid + start time. */
export interface ProcessIdentity {
  pid: number;
  startTicks: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) may contain spaces and ')', so fields are
 * counted after the last ')'. Returns undefined if the text is not a stat line.
 */
export function parseProcStat(text: string): { state: string; ppid: number; startTicks: number } | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 1).trim().split(/\s+/); // fields[0] is field 3
  const state = fields[0];
  const ppid = Number(fields[1]);
  const startTicks = Number(fields[19]);
  if (!state || !Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTicks)) return undefined;
  return { state, ppid, startTicks };
}

/** /proc/<pid>/stat parsed, or undefined if there is no such process. */
function readProcStat(pid: number): ReturnType<typeof parseProcStat> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** A zombie (Z) or dying (X) process has ended; only its pid is left. */
function hasEnded(state: string): boolean {
  return state === 'Z' || state === 'X';
}

/** Start time (field 22, clock ticks since boot) of a process, or undefined if there is no such process. */
export function processStartTicks(pid: number): number | undefined {
  return readProcStat(pid)?.startTicks;
}

/**
 * True only if `pid` exists, is not a zombie, and started at `startTicks`: a pid reused by another
 * process after the original ended is not "alive". Compare boot ids separately across reboots.
 */
export function processIsAlive(pid: number, startTicks: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.startTicks === startTicks && !hasEnded(stat.state);
}

let bootId: string | undefined;

/** This boot's id (/proc/sys/kernel/random/boot_id, read once); a different one in a .sup file means a reboot. */
export function currentBootId(): string {
  return (bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
}

/**
 * Supervisor processes serving `runDir`, by job id: live processes named `executableName` whose REAL
 * uid is `uid` (a job user cannot pose as one) and whose arguments begin
 * `--job-id <id> --run-dir <runDir>` (buildSupervisorArgs' order). Right after its fork, the job's
 * child still looks the same: the parent is taken then. The name (/proc/<pid>/comm) is checked
 * first because reading another process's cmdline can block on its memory map lock, and only
 * supervisors are worth that.
 */
export function findSupervisorProcesses(runDir: string, uid: number, executableName: string): Map<number, ProcessIdentity> {
  // The kernel keeps the first 15 bytes of the executable's name as comm.
  const comm = `${executableName.slice(0, 15)}\n`;
  const candidates: Array<ProcessIdentity & { jobId: number; ppid: number }> = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return new Map();
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8') !== comm) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv[1] !== '--job-id' || argv[3] !== '--run-dir' || argv[4] !== runDir || !/^\d{1,15}$/.test(argv[2] ?? '')) continue;
      const realUid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      const stat = readProcStat(pid);
      if (realUid !== String(uid) || stat === undefined || hasEnded(stat.state)) continue;
      candidates.push({ jobId: Number(argv[2]), pid, ppid: stat.ppid, startTicks: stat.startTicks });
    } catch {
      // The process ended while we looked, or is not readable: not a supervisor of ours.
    }
  }
  const found = new Map<number, ProcessIdentity>();
  for (const c of candidates) {
    const isChildOfSupervisor = candidates.some((other) => other.pid === c.ppid && other.jobId === c.jobId);
    if (!isChildOfSupervisor) found.set(c.jobId, { pid: c.pid, startTicks: c.startTicks });
  }
  return found;
}
