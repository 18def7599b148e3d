/**
 * Shared by test/integration/limits-daemon-*.test.ts: a real hpcqd (through the harness) with a
 * limits-test configuration, jobs whose output goes to a per-test directory of the job user (job
 * ids repeat across daemons, so the default ~/hpcq-%j.out would collide between test files), and
 * /proc and cgroupfs probes: processes carrying a per-test marker, zombies of the daemon or its
 * supervisors, job cgroup directories under the daemon's parent.
 *
 * Cleanup kills only what the tests started: processes in the job cgroups below this test's
 * daemons' parents and processes carrying this file's marker, each by pid.
 */
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseProcStat } from '../../src/exec/process-identity.js';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { cgroupParentName } from '../../src/daemon/enforcement.js';
import { call, type DaemonHandle, startDaemon, stopAll, submit, waitForEnd } from '../support/daemon-harness.js';
import { JOB_USER, uidOf } from '../support/privileged.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';
export { MIB } from '../../src/exec/limits/limiter.js';

/** kill_grace_seconds 1; a node big enough that many 1-core jobs run at once; one queue. */
export function limitsConfig(enforcement?: 'auto' | 'cgroup1' | 'cgroup2' | 'rlimit'): string {
  return `
kill_grace_seconds: 1
${enforcement ? `enforcement: ${enforcement}\n` : ''}node:
  cores: 16
  mem_mb: 8192
clusters:
  - cluster_id: hpcq-limits
    zone: test-zone
    queues:
      - hpcqueue_id: hpcq-limits
        scheduler_queue_name: limits
        default: true
        default_mem_mb: 64
        max_time_seconds: 600
        default_time_seconds: 60
`;
}

/** Whether cgroup v2 at the standard mount offers memory, cpu and pids (a pure v2 host). */
export function cgroup2HasControllers(): boolean {
  try {
    const c = readFileSync(join(CGROUP_ROOT, 'cgroup.controllers'), 'utf8').split(/\s+/);
    return ['memory', 'cpu', 'pids'].every((x) => c.includes(x));
  } catch {
    return false;
  }
}

export const hasCgroupV1 = existsSync(join(CGROUP_ROOT, 'memory', 'cgroup.procs'));

export { uidOf };

export interface LimitsDaemon {
  d: DaemonHandle;
  /** What the daemon reported in its ready line: cgroup2, cgroup1 or rlimit. */
  mode: string;
  /** Name of its cgroup parent below each hierarchy. */
  parent: string;
  /** Directory owned by the job user for this daemon's job outputs. */
  outDir: string;
}

export interface Finished {
  job: Job;
  stdout: string;
  stderr: string;
}

/** Random per-file marker: exported by jobs (`export HPCQ_LD_MARK=...`), inherited by all their processes. */
export const MARK = `hpcq-ld-${randomBytes(6).toString('hex')}`;

const parents = new Set<string>();
const outDirs = new Set<string>();
const daemons = new Set<LimitsDaemon>();

export async function startLimitsDaemon(enforcement?: 'auto' | 'cgroup1' | 'cgroup2' | 'rlimit'): Promise<LimitsDaemon> {
  const d = await startDaemon({ config: limitsConfig(enforcement) });
  const parent = cgroupParentName(join(d.stateDir, 'state'));
  parents.add(parent);
  const mode = readyMode(d);
  const outDir = mkdtempSync(join(tmpdir(), 'hpcq-ld-out-'));
  chownSync(outDir, uidOf(JOB_USER), uidOf(JOB_USER));
  outDirs.add(outDir);
  const handle = { d, mode, parent, outDir };
  daemons.add(handle);
  return handle;
}

/**
 * A daemon started again on the state directory of `l` (after its kill -9 or stop), with the same
 * configuration: the same cgroup parent and output directory; cleaned up like the first.
 */
export async function restartLimitsDaemon(l: LimitsDaemon, enforcement?: 'auto' | 'cgroup1' | 'cgroup2' | 'rlimit'): Promise<LimitsDaemon> {
  const d = await startDaemon({ stateDir: l.d.stateDir, config: limitsConfig(enforcement) });
  const handle = { ...l, d, mode: readyMode(d) };
  daemons.add(handle);
  return handle;
}

/** The enforcement mode in the daemon's ready line. */
function readyMode(d: DaemonHandle): string {
  const ready = d
    .output()
    .split('\n')
    .find((l) => l.includes('"event":"ready"'));
  return (JSON.parse(ready ?? '{}') as { enforcement?: string }).enforcement ?? '';
}

/** `export` line that marks every process of a job with this file's marker (and a per-job tag). */
export function markLine(tag: string): string {
  return `export HPCQ_LD_MARK=${MARK}-${tag};`;
}

export function submitTo(l: LimitsDaemon, req: Partial<SubmitJobRequest>): Promise<{ jobId: string }> {
  return submit(l.d, {
    runUser: JOB_USER,
    name: 'limits-test',
    stdoutRedirectPath: join(l.outDir, '%j.out'),
    stderrRedirectPath: join(l.outDir, '%j.err'),
    ...req,
  });
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export async function finish(l: LimitsDaemon, jobId: string, timeoutMs = 45_000): Promise<Finished> {
  const job = await waitForEnd(l.d, jobId, timeoutMs);
  return { job, stdout: readOrEmpty(job.stdoutPath), stderr: readOrEmpty(job.stderrPath) };
}

/** Submits and follows the job to its end (WatchJob). */
export async function run(l: LimitsDaemon, req: Partial<SubmitJobRequest>, timeoutMs?: number): Promise<Finished> {
  const { jobId } = await submitTo(l, req);
  return finish(l, jobId, timeoutMs);
}

export function cancel(l: LimitsDaemon, jobId: string): Promise<unknown> {
  return call(l.d.jobs.cancelJob, l.d.jobs, { jobId });
}

/** The accounting every finished job must carry (issue: CPU time, peak memory, mechanism, limit hit). */
export function expectAccounting(job: Job, mode: string): void {
  expect(job.enforcement).toBe(mode);
  expect(job.usage, `usage of job ${job.jobId}`).toBeDefined();
  const u = job.usage!;
  expect(u.cpuTimeUsec).toBe(u.userCpuUsec + u.systemCpuUsec);
  expect(u.cpuTimeUsec).toBeGreaterThanOrEqual(0);
  expect(u.peakMemoryBytes).toBeGreaterThan(0);
  expect(u.wallTimeMs).toBeGreaterThanOrEqual(0);
  expect(job.endTime).not.toBe('');
  if (job.jobStatus === 'out_of_memory') expect(job.limitHit).toBe('memory');
  else if (job.jobStatus === 'timeout') expect(['time', 'cpu_time']).toContain(job.limitHit);
  else expect(job.limitHit).toBe('');
}

// ---- /proc probes ------------------------------------------------------------------------------

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  uid: number;
  comm: string;
}

export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const stat = parseProcStat(text);
    if (stat === undefined) return undefined;
    const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
    return { pid, ppid: stat.ppid, state: stat.state, uid, comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')) };
  } catch {
    return undefined;
  }
}

export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/**
 * Live (non-zombie) processes of the job user whose environment or command line contains `marker`.
 * (The job's supervisor runs as root and carries the job's command line too; it may still be
 * exiting when the daemon has already recorded the job's end.)
 */
export function processesMarked(marker: string): ProcInfo[] {
  const jobUid = uidOf(JOB_USER);
  const found: ProcInfo[] = [];
  for (const pid of allPids()) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/environ`, 'latin1') + '\0' + readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    if (!text.includes(marker)) continue;
    const info = procInfo(pid);
    if (info && info.uid === jobUid && info.state !== 'Z' && info.state !== 'X') found.push(info);
  }
  return found;
}

/** Zombies whose parent is the daemon or one of its supervisors (children of the daemon). */
export function zombiesOf(daemonPid: number): ProcInfo[] {
  const infos = allPids()
    .map(procInfo)
    .filter((p): p is ProcInfo => p !== undefined);
  const reapers = new Set([daemonPid, ...infos.filter((p) => p.ppid === daemonPid).map((p) => p.pid)]);
  return infos.filter((p) => p.state === 'Z' && reapers.has(p.ppid));
}

export async function waitUntil(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- cgroupfs probes ----------------------------------------------------------------------------

/** The daemon's parent directory in every hierarchy that has one (v1 controllers, or the v2 root). */
export function parentDirs(parent: string): string[] {
  const dirs: string[] = [];
  if (existsSync(join(CGROUP_ROOT, parent, 'cgroup.procs'))) dirs.push(join(CGROUP_ROOT, parent));
  for (const entry of readdirSync(CGROUP_ROOT)) {
    const dir = join(CGROUP_ROOT, entry, parent);
    if (existsSync(join(dir, 'cgroup.procs'))) dirs.push(dir);
  }
  return dirs;
}

/** `job_*` directories left under the daemon's parent, in any hierarchy. */
export function jobCgroupDirs(parent: string): string[] {
  return parentDirs(parent).flatMap((dir) =>
    readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name.startsWith('job_'))
      .map((e) => join(dir, e.name)),
  );
}

/** A file of the job's cgroup of `controller` (v1) or of its only cgroup (v2). */
export function jobCgroupFile(l: LimitsDaemon, jobId: string, controller: string, file: string): string {
  return l.mode === 'cgroup2' ? join(CGROUP_ROOT, l.parent, `job_${jobId}`, file) : join(CGROUP_ROOT, controller, l.parent, `job_${jobId}`, file);
}

function pidsIn(dir: string): number[] {
  return readOrEmpty(join(dir, 'cgroup.procs'))
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/**
 * After a test: stop the daemons gracefully (a stopping daemon finishes the releases it started),
 * then kill what a failed test may have left (members of this run's job cgroups, processes with
 * this file's marker, each by pid), and remove this run's cgroup parents and output dirs.
 */
export async function cleanUp(): Promise<void> {
  await Promise.allSettled([...daemons].map(({ d }) => d.stop()));
  daemons.clear();
  await stopAll();
  for (const parent of parents) {
    for (let round = 0; round < 50; round++) {
      const jobDirs = jobCgroupDirs(parent);
      const freezers = jobDirs.filter((d) => existsSync(join(d, 'freezer.state')));
      for (const f of freezers) writeOrIgnore(join(f, 'freezer.state'), 'FROZEN');
      const pids = new Set(jobDirs.flatMap(pidsIn));
      for (const pid of pids) killPid(pid);
      for (const f of freezers) writeOrIgnore(join(f, 'freezer.state'), 'THAWED');
      for (const p of processesMarked(MARK)) killPid(p.pid);
      if (pids.size === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const dir of jobCgroupDirs(parent)) rmdirOrIgnore(dir);
    for (const dir of parentDirs(parent)) rmdirOrIgnore(dir);
  }
  parents.clear();
  for (const dir of outDirs) rmSync(dir, { recursive: true, force: true });
  outDirs.clear();
}

function writeOrIgnore(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch {
    /* gone */
  }
}

function rmdirOrIgnore(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    /* busy or gone: reported by the test's own assertions */
  }
}
