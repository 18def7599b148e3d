/**
 * Helpers of the durability and chaos tests: where a harness daemon keeps its database, run files
 * and cgroups; reading every job with ListJobs; and removing whatever a test's jobs left behind
 * (supervisors outlive the daemon by design, so killing the daemon is not enough). Following a job
 * with WatchJob is in daemon-harness.ts, checks of the raw database in store-fixtures.ts.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { cgroupParentName } from '../../src/daemon/enforcement.js';
import { processIsAlive } from '../../src/exec/process-identity.js';
import { parseSupervisorRecord, type SupervisorRecord } from '../../src/exec/run-files.js';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import { JobServiceClient } from '../../src/gen/hpcq/v1/job_service.js';
import { listJobs, type DaemonHandle } from './daemon-harness.js';
import { JOB_USER } from './privileged.js';

/** The daemon's state directory inside a harness directory (HPCQ_STATE_DIR). */
export const daemonStateDir = (harnessDir: string) => join(harnessDir, 'state');
export const databaseDir = (harnessDir: string) => join(harnessDir, 'state', 'db');
export const runDir = (harnessDir: string) => join(harnessDir, 'state', 'run');

export function readSupervisorRecord(harnessDir: string, jobId: string | number): SupervisorRecord {
  return parseSupervisorRecord(readFileSync(join(runDir(harnessDir), `${jobId}.sup`), 'utf8'));
}

/** Every job, all pages of ListJobs. */
export async function listAllJobs(d: DaemonHandle): Promise<Job[]> {
  const jobs: Job[] = [];
  let pageToken = '';
  for (;;) {
    const page = await listJobs(d, { pageSize: 1000, pageToken });
    jobs.push(...page.jobs);
    if (!page.nextPageToken) return jobs;
    pageToken = page.nextPageToken;
  }
}

/** A JobService client that reconnects quickly to a daemon restarted on the same socket. */
export function reconnectingClient(address: string): InstanceType<typeof JobServiceClient> {
  return new JobServiceClient(address, credentials.createInsecure(), {
    // The default backoff grows to two minutes; a daemon restarted within a second must be found again.
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.min_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 300,
  });
}

/** Waits until the daemon's output matches `pattern` (event-driven on its output streams). */
export function waitForOutput(d: DaemonHandle, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  if (pattern.test(d.output())) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!pattern.test(d.output())) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`daemon output did not match ${pattern} within ${timeoutMs} ms:\n${d.output().slice(-4000)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      d.proc.stdout?.off('data', check);
      d.proc.stderr?.off('data', check);
    };
    // The harness appends to its buffer in its own 'data' listener, registered before ours.
    d.proc.stdout?.on('data', check);
    d.proc.stderr?.on('data', check);
  });
}

/** A fresh directory in the job user's home, owned by that user; removed by `removeJobUserDirs`. */
const jobUserDirs = new Set<string>();
export function makeJobUserDir(prefix: string): string {
  const dir = join(`/home/${JOB_USER}`, `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  execFileSync('install', ['-d', '-o', JOB_USER, '-m', '0755', dir]);
  jobUserDirs.add(dir);
  return dir;
}
export function removeJobUserDirs(): void {
  for (const dir of jobUserDirs) rmSync(dir, { recursive: true, force: true });
  jobUserDirs.clear();
}

/** Lines of a file (empty lines dropped); [] if it does not exist. */
export function linesOf(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : [];
}

export function countBy(values: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

/** True while `pid` is a process that has not exited (a zombie counts as exited). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Polls `cond` (cheap, local) until it holds; for effects no RPC reports, e.g. a cgroup removed. */
export async function eventually(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- cgroups -------------------------------------------------------------------------------------

/** Mount points that may hold this daemon's cgroup parent: every v1 hierarchy, and v2. */
function cgroupMounts(): string[] {
  const mounts: string[] = [];
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (mountPoint && (type === 'cgroup' || type === 'cgroup2')) mounts.push(mountPoint);
  }
  return mounts;
}

/** The job's cgroup directories that exist now. */
export function jobCgroupDirs(harnessDir: string, jobId: string | number): string[] {
  const parent = cgroupParentName(daemonStateDir(harnessDir));
  return cgroupMounts()
    .map((m) => join(m, parent, `job_${jobId}`))
    .filter((d) => existsSync(d));
}

function pidsIn(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Kills every supervisor (from the .sup files) and every job process (from the job cgroups) of a
 * harness directory, then removes the cgroups and their parent. For afterEach, after the daemons.
 */
export async function killJobsOf(harnessDir: string): Promise<void> {
  const run = runDir(harnessDir);
  if (existsSync(run)) {
    for (const name of readdirSync(run)) {
      if (!name.endsWith('.sup')) continue;
      try {
        const sup = parseSupervisorRecord(readFileSync(join(run, name), 'utf8'));
        if (processIsAlive(sup.supervisorPid, sup.supervisorStartTicks)) process.kill(sup.supervisorPid, 'SIGKILL');
      } catch {
        // gone or a fake record
      }
    }
  }
  const parentName = cgroupParentName(daemonStateDir(harnessDir));
  for (const mount of cgroupMounts()) {
    const parent = join(mount, parentName);
    if (!existsSync(parent)) continue;
    for (const child of readdirSync(parent, { withFileTypes: true })) {
      if (!child.isDirectory()) continue;
      const dir = join(parent, child.name);
      for (let attempt = 0; attempt < 100 && pidsIn(dir).length > 0; attempt++) {
        for (const pid of pidsIn(dir)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      try {
        rmdirSync(dir);
      } catch {
        // still busy; nothing more a test can do
      }
    }
    try {
      rmdirSync(parent);
    } catch {
      // not empty
    }
  }
}
