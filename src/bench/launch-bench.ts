/**
 * Launch benchmark: how soon a job's own code runs after its submit, and what a burst of trivial
 * jobs costs the daemon.
 *
 * - submit -> first instruction: the job is a tiny static C program (compiled here) whose first
 *   act is to print CLOCK_MONOTONIC to its stdout file; the same clock as process.hrtime here, so
 *   the figure is measured by the job itself, not by the RUNNING state change (which is also shown).
 *   Taken one job at a time on an otherwise idle daemon.
 * - 1,000 `true` jobs submitted at once, three times: the end learnt by polling ListJobs (as squeue
 *   users do), then by a WatchJob stream per job (a heavier client: 1,000 streams), then polled
 *   again: the first burst pays one-time costs (the JIT compiling the burst's paths, the heap
 *   growing to its working size), the third shows a daemon that has run bursts before, as a
 *   long-running one has. For each: makespan and jobs/s; the daemon's CPU (utime + stime from
 *   /proc/<pid>/stat) per job, that of the launcher, and that of the supervisors and jobs it
 *   reaped; the daemon's peak RSS (VmHWM, reset before), and, sampled every 10 ms, how the largest
 *   sample splits into the daemon's own memory (RssAnon) and mapped files (RssFile: the node
 *   binary and libraries, shared and reclaimable).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { percentile } from './percentile.js';
import { mapWithConcurrency } from './concurrency.js';

export interface LaunchFigures {
  enforcement: string;
  samples: number;
  firstInstructionP50Ms: number;
  firstInstructionP99Ms: number;
  submitToRunningP50Ms: number;
  submitToRunningP99Ms: number;
  submitToCompletedP50Ms: number;
  burst: number;
  /** The burst with its end learnt by polling ListJobs (as squeue users do), then with a WatchJob stream per job, then polled again. */
  polled: BurstFigures;
  watched: BurstFigures;
  polledWarm: BurstFigures;
}

export interface BurstFigures {
  seconds: number;
  daemonCpuMsPerJob: number;
  /**
   * The launcher's own CPU per job, and that of the supervisors it reaped with the jobs they reaped
   * (the `true` itself; the cgroup set-up, accounting and removal the supervisors do).
   */
  launcherCpuMsPerJob: number;
  supervisorsCpuMsPerJob: number;
  peakRssMb: number;
  /** The largest RSS sample of the burst, split: the daemon's own pages and mapped files. */
  sampledPeak: { anonMb: number; fileMb: number };
}

const STAMP_SOURCE = `#include <stdio.h>
#include <time.h>
/* Prints CLOCK_MONOTONIC in nanoseconds: the moment the job's own code started. */
int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%lld\\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    return 0;
}
`;

/** Compiles the stamp program into a fresh world-readable directory; returns it and a writable output dir. */
function buildStamp(): { dir: string; program: string; outDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-bench-stamp-'));
  chmodSync(dir, 0o755);
  const source = join(dir, 'stamp.c');
  const program = join(dir, 'stamp');
  writeFileSync(source, STAMP_SOURCE);
  try {
    // Static: no dynamic loader between exec and main.
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-static', '-o', program, source], { stdio: 'pipe' });
  } catch {
    execFileSync(process.env.CC ?? 'cc', ['-O2', '-o', program, source], { stdio: 'pipe' });
  }
  chmodSync(program, 0o755);
  const outDir = join(dir, 'out');
  execFileSync('mkdir', ['-m', '1777', outDir]);
  return { dir, program, outDir };
}

/** The cgroup version this host would use for enforcement 'auto'. */
function cgroupLabel(): string {
  try {
    readFileSync('/sys/fs/cgroup/cgroup.controllers');
    return 'cgroup2';
  } catch {
    return 'cgroup1';
  }
}

/** utime + stime of a process (or, with `reaped`, of its children it waited for), ms (clock ticks of 10 ms); 0 if it is gone. */
function processCpuMs(pid: number, reaped = false): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return reaped ? (Number(fields[13]) + Number(fields[14])) * 10 : (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** The daemon's direct children that stay (the launcher), not the per-job supervisors. */
function helperPids(daemonPid: number): number[] {
  let children: number[];
  try {
    children = readFileSync(`/proc/${daemonPid}/task/${daemonPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return children.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'hpcq-supervisor';
    } catch {
      return false;
    }
  });
}

const helpersCpuMs = (daemonPid: number, reaped = false) => helperPids(daemonPid).reduce((sum, pid) => sum + processCpuMs(pid, reaped), 0);

/**
 * `burst` trivial jobs submitted at once on a fresh connection; resolves when all are done, learnt
 * by polling ListJobs every 20 ms or by one WatchJob stream per job (500 open at a time).
 */
async function trivialBurst(daemon: BenchDaemon, runUser: string, burst: number, doneBy: 'poll' | 'watch'): Promise<BurstFigures> {
  // Peak RSS of the burst alone: writing 5 to clear_refs resets VmHWM to the current RSS.
  writeFileSync(`/proc/${daemon.pid}/clear_refs`, '5');
  const cpu0 = daemon.cpuMs();
  const launcher0 = helpersCpuMs(daemon.pid);
  const reaped0 = helpersCpuMs(daemon.pid, true);
  // A fresh connection for the burst: after hundreds of cancelled watch streams, grpc-js's client
  // session was seen to fail with "Session closed with error code 2" (a client-side error).
  const client = daemon.newClient();
  const sampledPeak = { anonMb: 0, fileMb: 0 };
  const sampler = setInterval(() => {
    const now = daemon.rssBreakdownMb();
    if (now.anon + now.file > sampledPeak.anonMb + sampledPeak.fileMb) Object.assign(sampledPeak, { anonMb: now.anon, fileMb: now.file });
  }, 10);
  const t0 = performance.now();
  const ids = await Promise.all(
    Array.from({ length: burst }, () => daemon.submit({ name: 'burst', runUser, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' }, client)),
  );
  if (doneBy === 'watch') {
    // At most 100 watch streams at once: the daemon serves 128 concurrent calls per connection.
    const ended = await mapWithConcurrency(ids, 100, ({ jobId }) => daemon.waitFor(jobId, ENDED, client));
    const failed = ended.filter((s) => s !== 'completed').length;
    if (failed > 0) throw new Error(`${failed} of ${burst} trivial jobs did not complete`);
  } else {
    while (await daemon.anyActive(client)) await sleep(20);
  }
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const figures: BurstFigures = {
    seconds,
    daemonCpuMsPerJob: (daemon.cpuMs() - cpu0) / burst,
    launcherCpuMsPerJob: (helpersCpuMs(daemon.pid) - launcher0) / burst,
    supervisorsCpuMsPerJob: (helpersCpuMs(daemon.pid, true) - reaped0) / burst,
    peakRssMb: daemon.peakRssMb(),
    sampledPeak,
  };
  client.close();
  if (doneBy === 'poll') {
    if (await daemon.anyNotCompleted()) throw new Error(`some of the ${burst} trivial jobs did not complete`);
  }
  return figures;
}

const ENDED = ['completed', 'failed', 'node_fail', 'cancelled', 'timeout', 'out_of_memory'];

export async function launchRun(runUser: string, enforcement: 'auto' | 'rlimit', samples: number, burst: number): Promise<LaunchFigures> {
  const stamp = buildStamp();
  const daemon = await BenchDaemon.start(benchConfig({ cores: availableParallelism(), enforcement }));
  try {
    const toFirst: number[] = [];
    const toRunning: number[] = [];
    const toCompleted: number[] = [];
    for (let i = 0; i < samples; i++) {
      const out = join(stamp.outDir, `${i}.out`);
      const t0 = process.hrtime.bigint();
      const { jobId } = await daemon.submit({ name: 'latency', runUser, argv: [stamp.program], stdoutRedirectPath: out, stderrRedirectPath: '/dev/null' });
      // The first message is the current job: 'running' or already 'completed' both mean it started.
      await daemon.waitFor(jobId, ['running', ...ENDED]);
      toRunning.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const state = await daemon.waitFor(jobId, ENDED);
      toCompleted.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (state !== 'completed') throw new Error(`stamp job ${jobId} ended ${state}`);
      toFirst.push(Number(BigInt(readFileSync(out, 'utf8').trim()) - t0) / 1e6);
    }
    for (const list of [toFirst, toRunning, toCompleted]) list.sort((a, b) => a - b);

    const polled = await trivialBurst(daemon, runUser, burst, 'poll');
    const watched = await trivialBurst(daemon, runUser, burst, 'watch');
    const polledWarm = await trivialBurst(daemon, runUser, burst, 'poll');
    return {
      enforcement: enforcement === 'auto' ? cgroupLabel() : 'rlimit',
      samples,
      firstInstructionP50Ms: percentile(toFirst, 50),
      firstInstructionP99Ms: percentile(toFirst, 99),
      submitToRunningP50Ms: percentile(toRunning, 50),
      submitToRunningP99Ms: percentile(toRunning, 99),
      submitToCompletedP50Ms: percentile(toCompleted, 50),
      burst,
      polled,
      watched,
      polledWarm,
    };
  } finally {
    await daemon.close();
    rmSync(stamp.dir, { recursive: true, force: true });
  }
}

