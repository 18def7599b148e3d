/**
 * The daemon's cgroup parent (`<mount>/<parentName>` in every hierarchy) is removed when the daemon
 * stops cleanly with no job left, and kept, with the job's cgroups, while a job runs: its supervisor
 * outlives the daemon, and the next start re-attaches to it. Asserted right after the daemon exits,
 * before any test cleanup (which removes parents itself).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../../src/core/job.js';
import { createLimiter, detectEnforcementOnHost } from '../../src/exec/limits/detect-enforcement.js';
import type { Limiter } from '../../src/exec/limits/limiter.js';
import { SupervisedExecutor } from '../../src/exec/supervised-executor.js';
import { silentLogger } from '../../src/logger.js';
import { cancelJob, isRunning, startDaemon, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { testRunningJob } from '../support/job-spec.js';
import { gidOf, isRoot, JOB_USER, need } from '../support/privileged.js';
import {
  CGROUP_ROOT,
  cgroup2HasControllers,
  cleanUp,
  finish,
  hasCgroupV1,
  jobCgroupDirs,
  limitsConfig,
  markLine,
  MARK,
  processesMarked,
  startLimitsDaemon,
  submitTo,
  uidOf,
  waitUntil,
} from './limits-daemon-support.js';

afterEach(cleanUp);

const cgroupsAvailable = () => need(isRoot && (hasCgroupV1 || cgroup2HasControllers()), 'root with writable cgroup v1 (or cgroup v2 with memory, cpu, pids)');

/** Every directory named `parent` directly below a cgroup mount: each v1 controller, the v2 root. */
function leftovers(parent: string): string[] {
  return [...readdirSync(CGROUP_ROOT), '.'].map((entry) => join(CGROUP_ROOT, entry, parent)).filter((dir) => existsSync(dir));
}

describe('cgroup parent of a stopping daemon', () => {
  it('is removed by a daemon that ran a job and stops with none running', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await startLimitsDaemon();
    expect(['cgroup1', 'cgroup2']).toContain(l.mode);
    const { jobId } = await submitTo(l, { cmdLine: 'cat /proc/self/cgroup' });
    const { job, stdout } = await finish(l, jobId);
    expect(job.jobStatus).toBe('completed');
    expect(stdout).toContain(`/${l.parent}/job_${jobId}`); // it ran below the parent
    expect(leftovers(l.parent)).not.toEqual([]);

    expect(await l.d.stop()).toBe(0);
    expect(leftovers(l.parent)).toEqual([]);
    expect(l.d.output()).toContain('cgroup parent removed: no jobs left');
  });

  it('is kept with the job cgroups while a job runs, and removed after restart, cancel and stop', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const l = await startLimitsDaemon();
    const tag = 'kept';
    const { jobId } = await submitTo(l, { cmdLine: `${markLine(tag)} exec sleep 300` });
    await waitForJob(l.d, jobId, isRunning);
    // RUNNING is stored before the launch: wait for the job's process itself.
    await waitUntil('the job to run', () => processesMarked(`${MARK}-${tag}`).length === 1);
    const jobDirs = jobCgroupDirs(l.parent);
    expect(jobDirs.length).toBeGreaterThan(0);

    expect(await l.d.stop()).toBe(0);
    expect(jobCgroupDirs(l.parent)).toEqual(jobDirs);
    expect(leftovers(l.parent).length).toBeGreaterThan(0);
    expect(processesMarked(`${MARK}-${tag}`)).toHaveLength(1); // the job sleeps on
    expect(l.d.output()).toContain('cgroup parent kept: jobs are still running');

    const again = await startDaemon({ stateDir: l.d.stateDir, config: limitsConfig() });
    await waitForJob(again, jobId, isRunning);
    await cancelJob(again, jobId);
    expect((await waitForEnd(again, jobId)).jobStatus).toBe('cancelled');
    expect(await again.stop()).toBe(0);
    expect(leftovers(l.parent)).toEqual([]);
    expect(processesMarked(`${MARK}-${tag}`)).toEqual([]);
  });

  it('is removed only after the release of a job that ended just before the stop', async (ctx) => {
    if (!cgroupsAvailable()) return ctx.skip();
    const parent = `hpcq-test-${randomBytes(5).toString('hex')}`;
    const detection = await detectEnforcementOnHost({ requested: 'auto', parentName: parent });
    const real = createLimiter(detection);
    expect(['cgroup1', 'cgroup2']).toContain(real.mode);
    // A slow release (a job whose processes take a while to die): stop() must wait for it.
    const limiter: Limiter = {
      mode: real.mode,
      prepare: (id, limits) => real.prepare(id, limits),
      collect: (id) => real.collect(id),
      release: async (id) => {
        await sleep(300);
        await real.release(id);
      },
      listJobIds: () => real.listJobIds(),
      removeParentIfUnused: () => real.removeParentIfUnused(),
    };
    const runDir = mkdtempSync(join(tmpdir(), 'hpcq-run-'));
    chmodSync(runDir, 0o700);
    const executor = new SupervisedExecutor({ runDir, limiter, killGraceSeconds: 1, jobUmask: 0o022, log: silentLogger() });
    let cgroupsAtEnd: string[] | undefined;
    executor.onEnded = async () => {
      cgroupsAtEnd = jobCgroupDirs(parent);
    };
    try {
      await executor.start();
      await executor.launch(testJob(real.mode));
      await waitUntil('the job to end', () => cgroupsAtEnd !== undefined, 30_000);
      expect(cgroupsAtEnd!.length).toBeGreaterThan(0); // its cgroups were still there
      await executor.stop();
      expect(leftovers(parent)).toEqual([]);
    } finally {
      await executor.stop();
      await real.release(1).catch(() => undefined);
      await real.removeParentIfUnused().catch(() => undefined);
      rmSync(runDir, { recursive: true, force: true });
    }
  });
});

/** Job 1 of the job user: `true`, output discarded. */
function testJob(enforcement: Job['enforcement']): Job {
  return testRunningJob({ runUser: JOB_USER, uid: uidOf(JOB_USER), gid: gidOf(JOB_USER), home: '/tmp', cmdLine: 'true' }, { enforcement });
}
