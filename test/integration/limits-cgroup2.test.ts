/**
 * Job limits on a real cgroup v2 kernel, through the real daemon over gRPC, with jobs of the
 * unprivileged test user: what limits-daemon-cgroup.test.ts (which runs in either cgroup mode)
 * does not check for v2 itself. The limits a job's first instruction sees in its cgroup, accounting
 * read from cpu.stat and memory.peak, and a daemon killed with -9 while jobs run: the jobs' cgroups
 * outlive it and keep enforcing, and the next daemon records their true outcome. (The whole-job
 * OOM kill of memory.oom.group is checked by limits-daemon-cgroup.test.ts, which runs here too.)
 *
 * A cgroup v1 or hybrid host skips this file (its cgroup2 mount has no controllers): there
 * cgroup2-vm.test.ts runs it inside a VM that has only cgroup v2 (HPCQ_TEST_IN_CGROUP2_VM=1),
 * where it must run, and fails rather than skips under HPCQ_TEST_REQUIRE_PRIVILEGED=1.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, type TestContext } from 'vitest';
import { parseKeyValues } from '../../src/exec/limits/limiter.js';
import { isRunning, waitForJob } from '../support/daemon-harness.js';
import { gidOf, isRoot, JOB_USER, need } from '../support/privileged.js';
import { spawnSupervisor } from '../../src/exec/supervisor-process.js';
import { parseExitRecord } from '../../src/exec/run-files.js';
import { runDir } from '../support/durability.js';
import {
  CGROUP_ROOT,
  cancel,
  cgroup2HasControllers,
  cleanUp,
  expectAccounting,
  finish,
  jobCgroupDirs,
  jobCgroupFile,
  type LimitsDaemon,
  markLine,
  MARK,
  MIB,
  procInfo,
  processesMarked,
  restartLimitsDaemon,
  run,
  startLimitsDaemon,
  submitTo,
  uidOf,
  waitUntil,
} from './limits-daemon-support.js';

const inVm = process.env.HPCQ_TEST_IN_CGROUP2_VM === '1';

/** Whether this test runs here: in the cgroup v2 VM it must (a failure under CI's switch). */
function v2Available(ctx: TestContext): boolean {
  if (!inVm && !cgroup2HasControllers()) {
    ctx.skip('no cgroup v2 controllers on this host: cgroup2-vm.test.ts runs this file in a cgroup v2 VM');
  }
  return need(isRoot && cgroup2HasControllers(), 'root and cgroup v2 with the cpu, memory and pids controllers');
}

/** A daemon on auto that chose cgroup2, as it must on a v2-only kernel (never a silent rlimit). */
async function daemon(): Promise<LimitsDaemon> {
  const l = await startLimitsDaemon();
  expect(l.mode).toBe('cgroup2');
  return l;
}

/** The job's cgroup directory; it exists from launch until the daemon released it. */
const jobDir = (l: LimitsDaemon, jobId: string) => join(CGROUP_ROOT, l.parent, `job_${jobId}`);

async function expectNoJobCgroups(l: LimitsDaemon): Promise<void> {
  await waitUntil('job cgroups removed', () => jobCgroupDirs(l.parent).length === 0, 10_000).catch(() => undefined);
  expect(jobCgroupDirs(l.parent)).toEqual([]);
}

/** Seconds of a bash `times` figure ("0m1.234s"). */
function seconds(figure: string): number {
  const m = /^(\d+)m([\d.]+)s$/.exec(figure);
  if (!m) throw new Error(`not a times figure: ${figure}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

describe('job limits on a cgroup v2 kernel', () => {
  // One daemon for these tests: each leaves nothing behind (checked), and where the VM is
  // emulated a daemon start costs seconds.
  afterAll(cleanUp);
  let shared: Promise<LimitsDaemon> | undefined;
  const sharedDaemon = () => (shared ??= daemon());

  it("the job's first instruction already runs in its cgroup under its limits", async (ctx) => {
    if (!v2Available(ctx)) return ctx.skip();
    const l = await sharedDaemon();
    // The job's first program reads its own cgroup's limits (the files are world-readable).
    const { jobId } = await submitTo(l, {
      memLimit: 96,
      coreLimit: 2,
      resourceLimit: 'pids=50',
      cmdLine: 'cg=$(sed -n "s/^0:://p" /proc/self/cgroup); cd /sys/fs/cgroup$cg && echo "$cg" && cat memory.max memory.oom.group cpu.max pids.max',
    });
    const { job, stdout, stderr } = await finish(l, jobId);
    expect(job.jobStatus, stderr).toBe('completed');
    expectAccounting(job, 'cgroup2');
    expect(stdout.split('\n')).toEqual([`/${l.parent}/job_${jobId}`, String(96 * MIB), '1', '200000 100000', '50', '']);
    await expectNoJobCgroups(l);
  });

  it('accounting comes from cpu.stat and memory.peak: a 100 MiB buffer and a second of CPU are reported', async (ctx) => {
    if (!v2Available(ctx)) return ctx.skip();
    const l = await sharedDaemon();
    // dd fills a 100 MiB buffer (every page touched); the spinner burns a second of CPU; `times`
    // prints the CPU time the shell and its children used, as the job itself measured it.
    const { job, stdout, stderr } = await run(l, {
      memLimit: 256,
      cmdLine: "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; timeout 1 /bin/sh -c 'while :; do :; done'; times",
    });
    expect(job.jobStatus, stderr).toBe('completed');
    expectAccounting(job, 'cgroup2');
    const u = job.usage!;
    expect(u.peakMemoryBytes).toBeGreaterThanOrEqual(100 * MIB);
    expect(u.peakMemoryBytes).toBeLessThanOrEqual(256 * MIB);
    const own = stdout
      .trim()
      .split(/\s+/)
      .map(seconds)
      .reduce((a, b) => a + b, 0);
    const reported = u.cpuTimeUsec / 1e6;
    console.log(`[limits-cgroup2] peak ${(u.peakMemoryBytes / MIB).toFixed(1)} MiB; CPU reported ${reported.toFixed(3)} s, measured by the job ${own.toFixed(3)} s`);
    expect(own).toBeGreaterThan(0.5);
    // Both figures are the kernel's accounting of the same processes (the cgroup's also counts
    // the supervisor's short-lived job process before exec).
    expect(reported).toBeGreaterThanOrEqual(own * 0.9);
    expect(reported).toBeLessThanOrEqual(own * 1.1 + 0.1);
  });
});

describe('the fast way into a cgroup v2', () => {
  it("the job's process is created inside its cgroup (clone3 CLONE_INTO_CGROUP), never migrated into it", async (ctx) => {
    if (!v2Available(ctx)) return;
    const name = `hpcq-clone3-${process.pid}`;
    const cg = join(CGROUP_ROOT, name);
    const runDir = mkdtempSync(join(tmpdir(), 'hpcq-clone3-run-'));
    const out = join(tmpdir(), `${name}.out`);
    mkdirSync(cg);
    try {
      const handle = await spawnSupervisor({
        jobId: 1,
        runDir,
        user: JOB_USER,
        uid: uidOf(JOB_USER),
        gid: gidOf(JOB_USER),
        cwd: '/',
        stdoutPath: out,
        stderrPath: '/dev/null',
        cgroupProcs: [join(cg, 'cgroup.procs')],
        kill: { kind: 'cgroup2', dir: cg },
        env: { PATH: '/usr/bin:/bin' },
        program: '/bin/cat',
        args: ['/proc/self/cgroup'],
      });
      await handle.exited;
      // The supervisor says how the job got there; the job saw itself there from its first instruction.
      expect(readFileSync(join(runDir, '1.exit'), 'utf8')).toContain('cgroup_entry=clone3\n');
      expect(readFileSync(out, 'utf8')).toBe(`0::/${name}\n`);
    } finally {
      rmSync(out, { force: true });
      rmSync(runDir, { recursive: true, force: true });
      rmdirSync(cg);
    }
  });
});

describe('a cgroup v2 job across a daemon kill -9', () => {
  afterEach(cleanUp);

  it('goes on being enforced while no daemon runs; the next daemon records its OOM and removes its cgroup', async (ctx) => {
    if (!v2Available(ctx)) return ctx.skip();
    const l = await daemon();
    const { jobId } = await submitTo(l, {
      memLimit: 64,
      cmdLine: `${markLine('oom-down')} while [ ! -e ${l.outDir}/go ]; do sleep 0.1; done; exec dd if=/dev/zero of=/dev/null bs=512M count=1`,
    });
    await waitForJob(l.d, jobId, isRunning);
    await waitUntil('the job to run', () => processesMarked(`${MARK}-oom-down`).length === 1, 20_000);
    await l.d.kill9();

    // With no daemon: the job's memory limit still holds, and the kernel kills it.
    const events = jobCgroupFile(l, jobId, 'memory', 'memory.events');
    readFileSync(events); // its cgroup outlived the daemon
    writeFileSync(join(l.outDir, 'go'), '');
    await waitUntil('the job to end', () => processesMarked(`${MARK}-oom-down`).length === 0, 20_000);
    // Its supervisor recorded the OOM kill from the cgroup, then removed the cgroup: no daemon needed.
    const exitFile = join(runDir(l.d.stateDir), `${jobId}.exit`);
    await waitUntil('the exit record', () => existsSync(exitFile), 20_000);
    const record = parseExitRecord(readFileSync(exitFile, 'utf8'));
    expect(parseKeyValues(record.accounting.get(events)).get('oom_kill') ?? 0).toBeGreaterThan(0);
    expect(record.cgroupsRemoved).toBe(true);
    expect(existsSync(dirname(events))).toBe(false);

    const again = await restartLimitsDaemon(l);
    expect(again.mode).toBe('cgroup2');
    const { job } = await finish(again, jobId);
    expect(job.jobStatus).toBe('out_of_memory');
    expect(job.limitHit).toBe('memory');
    expect(job.termSignal).toBe(9);
    expectAccounting(job, 'cgroup2');
    await expectNoJobCgroups(again);
  });

  it('is re-attached: its setsid and double-forked processes stay in its cgroup, and a cancel kills them all', async (ctx) => {
    if (!v2Available(ctx)) return ctx.skip();
    const l = await daemon();
    const pids = join(l.outDir, 'escapees.pids');
    const { jobId } = await submitTo(l, {
      cmdLine:
        `${markLine('reattach')} ` +
        `setsid /bin/sh -c 'trap "" TERM; echo $$ >> ${pids}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & ` +
        `( setsid /bin/sh -c 'echo $$ >> ${pids}; exec sleep 1000' </dev/null >/dev/null 2>&1 & ); ` +
        'exec sleep 1000',
    });
    const escapees = () => readOrEmpty(pids).split('\n').filter(Boolean).map(Number);
    await waitUntil('both escapees running', () => escapees().length === 2, 20_000);
    await l.d.kill9();

    const cgroupOf = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim();
    for (const pid of escapees()) {
      expect(procInfo(pid)?.uid).toBe(uidOf(JOB_USER));
      expect(cgroupOf(pid)).toBe(`0::/${l.parent}/job_${jobId}`);
    }
    const again = await restartLimitsDaemon(l);
    expect((await waitForJob(again.d, jobId, isRunning)).jobStatus).toBe('running');
    expect(processesMarked(`${MARK}-reattach`).length).toBeGreaterThanOrEqual(3); // nothing was killed by the restart
    await cancel(again, jobId);
    const { job } = await finish(again, jobId);
    expect(job.jobStatus).toBe('cancelled');
    expectAccounting(job, 'cgroup2');
    expect(processesMarked(`${MARK}-reattach`)).toEqual([]);
    for (const pid of escapees()) expect(['Z', undefined]).toContain(procInfo(pid)?.state);
    expect(readOrEmpty(join(jobDir(l, jobId), 'cgroup.procs'))).toBe('');
    await expectNoJobCgroups(again);
  });
});

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

