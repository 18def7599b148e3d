/**
 * Job limits through the real daemon with the host's cgroup enforcement (cgroup1 on a hybrid host,
 * cgroup2 where the v2 hierarchy has the controllers), over gRPC, with jobs of the unprivileged test
 * user (RELIABILITY L1, L2, L4, L6, L8-L12, L16, L17, K1). Expectations that differ between the
 * cgroup versions are chosen from what the daemon reports (`job.enforcement`, its ready line).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DAEMON_MAIN, getJob } from '../support/daemon-harness.js';
import { isRoot, JOB_USER, need } from '../support/privileged.js';
import {
  cancel,
  cgroup2HasControllers,
  cleanUp,
  expectAccounting,
  finish,
  hasCgroupV1,
  jobCgroupDirs,
  jobCgroupFile,
  limitsConfig,
  type LimitsDaemon,
  markLine,
  MARK,
  MIB,
  procInfo,
  processesMarked,
  run,
  startLimitsDaemon,
  submitTo,
  uidOf,
  waitUntil,
  zombiesOf,
} from './limits-daemon-support.js';

afterEach(cleanUp);

const cgroupsAvailable = () => need(isRoot && (hasCgroupV1 || cgroup2HasControllers()), 'root with writable cgroup v1 (or cgroup v2 with memory, cpu, pids)');

async function daemon(): Promise<LimitsDaemon> {
  const l = await startLimitsDaemon();
  expect(['cgroup1', 'cgroup2']).toContain(l.mode);
  return l;
}

/** Once the daemon reported the job's end, its cgroups are removed right after (bounded wait). */
async function expectNoJobCgroups(l: LimitsDaemon): Promise<void> {
  await waitUntil('job cgroups removed', () => jobCgroupDirs(l.parent).length === 0, 10_000).catch(() => undefined);
  expect(jobCgroupDirs(l.parent)).toEqual([]);
}

/**
 * Leaves processes a process-group kill misses: a setsid'ed sleeper that ignores SIGTERM and a
 * double-forked one (its parent subshell is gone, so it is re-parented). Each appends its pid to
 * `<outDir>/<tag>.pids`; the main process waits for both, then runs `tail`.
 */
function escapeesScript(l: LimitsDaemon, tag: string, tail: string): string {
  const pids = join(l.outDir, `${tag}.pids`);
  return (
    `${markLine(tag)} ` +
    `setsid /bin/sh -c 'trap "" TERM; echo $$ >> ${pids}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & ` +
    `( setsid /bin/sh -c 'echo $$ >> ${pids}; exec sleep 1000' </dev/null >/dev/null 2>&1 & ); ` +
    `while [ "$(cat ${pids} 2>/dev/null | wc -l)" -lt 2 ]; do sleep 0.05; done; ` +
    tail
  );
}

/** The escapees' pids, once both have written them. */
function escapeePids(l: LimitsDaemon, tag: string): number[] {
  try {
    return readFileSync(join(l.outDir, `${tag}.pids`), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('job limits through the daemon (host cgroup mode)', () => {
  it('memory hog: allocating 512 MiB under mem_limit 64 is OUT_OF_MEMORY; peak <= limit (L1, L12)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    // dd's first act is to allocate and fill a 512 MiB buffer: no escape window before the limit.
    const { job, stderr } = await run(l, { memLimit: 64, cmdLine: 'exec dd if=/dev/zero of=/dev/null bs=512M count=1' });
    expect(job.jobStatus, stderr).toBe('out_of_memory');
    expect(job.limitHit).toBe('memory');
    expect(job.reason).toMatch(/^OutOfMemory: \d+ process\(es\) killed by the memory limit$/);
    expect(job.termSignal).toBe(9);
    expectAccounting(job, l.mode);
    expect(job.usage!.peakMemoryBytes).toBeGreaterThan(32 * MIB);
    expect(job.usage!.peakMemoryBytes).toBeLessThanOrEqual(64 * MIB + 4 * MIB);
    console.log(`[limits-daemon] ${l.mode} OOM peak ${(job.usage!.peakMemoryBytes / MIB).toFixed(1)} MiB of 64 MiB`);
    await expectNoJobCgroups(l);
  });

  it('OOM kill of a child while the main process exits 0 is OUT_OF_MEMORY, not COMPLETED (L2)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { job, stdout } = await run(l, {
      memLimit: 64,
      cmdLine: 'dd if=/dev/zero of=/dev/null bs=512M count=1 2>/dev/null; echo "child status $?"; exit 0',
    });
    expect(job.jobStatus).toBe('out_of_memory');
    expect(job.limitHit).toBe('memory');
    expectAccounting(job, l.mode);
    if (l.mode === 'cgroup1') {
      // v1 has no memory.oom.group: only dd (the largest) is killed, the shell goes on and exits 0.
      expect(stdout).toBe('child status 137\n');
      expect(job.exitCode).toBe(0);
      expect(job.termSignal).toBe(0);
    }
    if (l.mode === 'cgroup2') {
      // memory.oom.group=1: dd and the shell are killed together, the shell never learns of dd's end.
      expect(stdout).toBe('');
      expect(job.termSignal).toBe(9);
      const killed = Number(/^OutOfMemory: (\d+) process\(es\) killed/.exec(job.reason)?.[1]);
      expect(killed, job.reason).toBeGreaterThanOrEqual(2);
    }
    await expectNoJobCgroups(l);
  });

  it('fork bomb is held at pids=32; the daemon keeps answering; nothing of the job remains (L4)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    // The main process execs sleep right away (no fork of its own to fail), so the job ends by its
    // time limit while the bomb runs in the background.
    const { jobId } = await submitTo(l, {
      timeLimit: 4,
      resourceLimit: 'pids=32',
      cmdLine: `${markLine('bomb')} b() { b | b & }; b 2>/dev/null; exec sleep 1000`,
    });
    const events = jobCgroupFile(l, jobId, 'pids', 'pids.events');
    const current = jobCgroupFile(l, jobId, 'pids', 'pids.current');
    const maxHits = () => Number(/^max (\d+)$/m.exec(readFileSync(events, 'utf8'))?.[1] ?? 0);
    await waitUntil('forks refused by pids.max', () => {
      try {
        return maxHits() > 0;
      } catch {
        return false;
      }
    });
    expect(Number(readFileSync(current, 'utf8'))).toBeLessThanOrEqual(32);
    const refusedForks = maxHits(); // read now: the job's cgroup is removed once it ends
    expect(processesMarked(`${MARK}-bomb`).length).toBeLessThanOrEqual(32);
    const t0 = Date.now();
    const during = await getJob(l.d, jobId);
    const getJobMs = Date.now() - t0;
    expect(during.jobStatus).toBe('running');
    expect(getJobMs).toBeLessThan(5000);
    // Another job of the same user is not affected by this job's pids limit.
    const other = await run(l, { cmdLine: 'echo unaffected' });
    expect(other.job.jobStatus).toBe('completed');
    expect(other.stdout).toBe('unaffected\n');

    const { job } = await finish(l, jobId);
    expect(job.jobStatus).toBe('timeout');
    expect(job.limitHit).toBe('time');
    expectAccounting(job, l.mode);
    console.log(`[limits-daemon] fork bomb: ${refusedForks} forks refused; GetJob during the bomb took ${getJobMs} ms`);
    expect(processesMarked(`${MARK}-bomb`)).toEqual([]);
    await expectNoJobCgroups(l);
  });

  it('CPU hog: 4 busy processes with core_limit 1 get about one core (L6)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { job } = await run(l, {
      coreLimit: 1,
      cmdLine: "for i in 1 2 3 4; do timeout 3 /bin/sh -c 'while :; do :; done' & done; wait; exit 0",
    });
    expect(job.jobStatus).toBe('completed');
    expectAccounting(job, l.mode);
    const u = job.usage!;
    const ratio = u.cpuTimeUsec / (u.wallTimeMs * 1000);
    console.log(`[limits-daemon] ${l.mode} CPU hog: ${u.cpuTimeUsec} us CPU in ${u.wallTimeMs} ms wall = ${ratio.toFixed(3)} cores (limit 1)`);
    expect(u.wallTimeMs).toBeGreaterThanOrEqual(2900);
    expect(ratio).toBeLessThanOrEqual(1.3);
    // Only shows that the spinners ran; other test files may load the host.
    expect(ratio).toBeGreaterThan(0.3);
  });

  it('cancel kills setsid and double-forked grandchildren, SIGTERM-ignoring ones included (K1, L10)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { jobId } = await submitTo(l, { cmdLine: escapeesScript(l, 'cancel', 'exec sleep 1000') });
    await waitUntil('both escapees running', () => escapeePids(l, 'cancel').length === 2);
    const escapees = escapeePids(l, 'cancel').map((pid) => procInfo(pid));
    expect(escapees.map((p) => p?.uid)).toEqual([uidOf(JOB_USER), uidOf(JOB_USER)]);
    await cancel(l, jobId);
    const { job } = await finish(l, jobId);
    expect(job.jobStatus).toBe('cancelled');
    expectAccounting(job, l.mode);
    // The supervisor records the end only once no process of the job is left: no polling here.
    expect(processesMarked(`${MARK}-cancel`)).toEqual([]);
    await expectNoJobCgroups(l);
  });

  it('time limit kills setsid and double-forked grandchildren too (L8, L10)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { job } = await run(l, { timeLimit: 2, cmdLine: escapeesScript(l, 'timeout', 'exec sleep 1000') });
    expect(escapeePids(l, 'timeout')).toHaveLength(2);
    expect(job.jobStatus).toBe('timeout');
    expect(job.limitHit).toBe('time');
    expect(job.termSignal).toBe(15);
    expectAccounting(job, l.mode);
    expect(processesMarked(`${MARK}-timeout`)).toEqual([]);
    await expectNoJobCgroups(l);
  });

  it('when the main process exits 0, the grandchildren it left are killed; COMPLETED (L10)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { job } = await run(l, { cmdLine: escapeesScript(l, 'leftover', 'exit 0') });
    expect(escapeePids(l, 'leftover')).toHaveLength(2);
    expect(job.jobStatus).toBe('completed');
    expect(job.exitCode).toBe(0);
    expectAccounting(job, l.mode);
    expect(processesMarked(`${MARK}-leftover`)).toEqual([]);
    await expectNoJobCgroups(l);
  });

  it('a job ignoring SIGTERM is SIGKILLed after the grace period: TIMEOUT (L9)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { job } = await run(l, { timeLimit: 2, cmdLine: `${markLine('term')} trap '' TERM; while :; do sleep 1; done` });
    expect(job.jobStatus).toBe('timeout');
    expect(job.limitHit).toBe('time');
    expect(job.termSignal).toBe(9);
    expectAccounting(job, l.mode);
    // time limit 2 s + grace 1 s; the upper bound only says "it ended".
    expect(job.usage!.wallTimeMs).toBeGreaterThanOrEqual(2900);
    expect(job.usage!.wallTimeMs).toBeLessThan(20_000);
    expect(processesMarked(`${MARK}-term`)).toEqual([]);
  });

  it('200 short jobs leave no job cgroup and no zombie of the daemon or its supervisors (L16, L17)', { timeout: 240_000 }, async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const ids = await Promise.all(Array.from({ length: 200 }, (_, i) => submitTo(l, { name: `short-${i}`, cmdLine: 'true' }).then((r) => r.jobId)));
    const jobs = await Promise.all(ids.map((id) => finish(l, id, 200_000)));
    for (const { job } of jobs) {
      expect(job.jobStatus).toBe('completed');
      expectAccounting(job, l.mode);
    }
    await expectNoJobCgroups(l);
    await waitUntil('no zombies of the daemon', () => zombiesOf(l.d.proc.pid!).length === 0, 5000).catch(() => undefined);
    expect(zombiesOf(l.d.proc.pid!)).toEqual([]);
  });

  it("the job's first process is already in its cgroups (L12)", async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { jobId } = await submitTo(l, { cmdLine: 'exec cat /proc/self/cgroup' });
    const { job, stdout } = await finish(l, jobId);
    expect(job.jobStatus).toBe('completed');
    expectAccounting(job, l.mode);
    const path = `/${l.parent}/job_${jobId}`;
    const lines = stdout.trim().split('\n');
    if (l.mode === 'cgroup2') {
      expect(lines).toContain(`0::${path}`);
    } else {
      for (const controller of ['memory', 'cpu', 'pids', 'freezer']) {
        const line = lines.find((x) => x.split(':')[1]!.split(',').includes(controller));
        expect(line, `${controller} line in\n${stdout}`).toBeDefined();
        expect(line!.split(':')[2]).toBe(path);
      }
    }
  });

  it('a job cannot move itself out of its cgroup (L11)', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const targets =
      l.mode === 'cgroup2'
        ? ['/sys/fs/cgroup/cgroup.procs', `/sys/fs/cgroup/${l.parent}/cgroup.procs`]
        : ['/sys/fs/cgroup/memory/cgroup.procs', '/sys/fs/cgroup/freezer/cgroup.procs', `/sys/fs/cgroup/memory/${l.parent}/cgroup.procs`];
    const script = targets.map((f) => `if echo $$ > ${f}; then echo "moved ${f}"; else echo "refused ${f}"; fi; `).join('') + 'cat /proc/self/cgroup';
    const { jobId } = await submitTo(l, { cmdLine: script });
    const { job, stdout, stderr } = await finish(l, jobId);
    expect(job.jobStatus).toBe('completed');
    for (const f of targets) expect(stdout).toContain(`refused ${f}\n`);
    expect(stdout).not.toContain('moved ');
    expect(stderr.trim().split('\n')).toHaveLength(targets.length);
    for (const line of stderr.trim().split('\n')) expect(line).toMatch(/Permission denied|Operation not permitted/);
    const path = `/${l.parent}/job_${jobId}`;
    const memoryOrV2 = stdout.split('\n').find((x) => (l.mode === 'cgroup2' ? x.startsWith('0::') : x.split(':')[1]?.split(',').includes('memory')));
    expect(memoryOrV2?.split(':')[2]).toBe(path);
    if (l.mode === 'cgroup1') expect(stdout.split('\n').find((x) => x.split(':')[1] === 'freezer')?.split(':')[2]).toBe(path);
  });

  it('reports accounting on a normal job: enforcement, CPU time, peak memory, wall time', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await daemon();
    const { job } = await run(l, { cmdLine: "timeout 1 /bin/sh -c 'while :; do :; done'; exit 0" });
    expect(job.jobStatus).toBe('completed');
    expectAccounting(job, l.mode);
    expect(job.usage!.cpuTimeUsec).toBeGreaterThan(200_000);
    expect(job.usage!.wallTimeMs).toBeGreaterThanOrEqual(900);
    expect(job.usage!.peakMemoryBytes).toBeLessThanOrEqual(64 * MIB);
  });
});

describe('hpcqd --check', () => {
  function check(config: string): { status: number | null; stdout: string; stderr: string } {
    const dir = mkdtempSync(join(tmpdir(), 'hpcq-ld-check-'));
    try {
      writeFileSync(join(dir, 'hpcqd.yaml'), config);
      const r = spawnSync(process.execPath, [DAEMON_MAIN, '--check'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HPCQ_STATE_DIR: join(dir, 'state'), HPCQ_CONFIG: join(dir, 'hpcqd.yaml') },
        encoding: 'utf8',
        timeout: 30_000,
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('reports the mode it would use and exits 0; a mode the host cannot provide exits 1 with the reason', (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const hybrid = hasCgroupV1 && !cgroup2HasControllers();
    const auto = check(limitsConfig());
    expect(auto.status, auto.stderr).toBe(0);
    const report = JSON.parse(auto.stdout.split('\n---\n').at(-1)!) as { ok: boolean; enforcement: string; reasons: string[] };
    expect(report.ok).toBe(true);
    expect(report.enforcement).toBe(hybrid ? 'cgroup1' : 'cgroup2');

    const refused = check(limitsConfig(hybrid ? 'cgroup2' : 'cgroup1'));
    expect(refused.status).toBe(1);
    const why = JSON.parse(refused.stdout.split('\n---\n').at(-1)!) as { ok: boolean; enforcement: string; reasons: string[] };
    expect(why.ok).toBe(false);
    expect(why.enforcement).toBe(hybrid ? 'cgroup2' : 'cgroup1');
    if (hybrid) expect(why.reasons.join('\n')).toMatch(/lacks the cpu, memory, pids controller\(s\).*hybrid layout/);
    else expect(why.reasons.join('\n')).toMatch(/cgroup1: /);
  });
});
