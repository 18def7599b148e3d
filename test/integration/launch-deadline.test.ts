/**
 * A job whose launch hangs before its program runs (here: joining a "cgroup" file that is a FIFO
 * nobody reads, as a hung filesystem or NSS would) ends as the executor's outcome says, with its
 * resources released: FAILED at the launch deadline naming the step, CANCELLED when cancelled
 * meanwhile, TIMEOUT when its time limit runs out first. Real launcher and supervisor, as root.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job, JobOutcome } from '../../src/core/job.js';
import type { Limiter } from '../../src/exec/limits/limiter.js';
import { SupervisedExecutor } from '../../src/exec/supervised-executor.js';
import { silentLogger } from '../../src/logger.js';
import { testRunningJob } from '../support/job-spec.js';
import { ensureTestUsers, gidOf, isRoot, JOB_USER, need, uidOf } from '../support/privileged.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0)) await fn();
});

/** An executor whose only "cgroup" file is a FIFO without a reader; records releases and outcomes. */
async function hangingExecutor(launchTimeoutSeconds: number) {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-launch-deadline-'));
  chmodSync(dir, 0o700);
  const fifo = join(dir, 'no-reader');
  execFileSync('mkfifo', ['-m', '0600', fifo]);
  const released: number[] = [];
  const limiter: Limiter = {
    mode: 'cgroup1',
    prepare: async () => ({ cgroupProcsFiles: [fifo], kill: { kind: 'process-tree' }, rlimits: {}, rlimitsHard: {} }),
    collect: async () => undefined,
    release: async (id) => void released.push(id),
    listJobIds: async () => [],
    removeParentIfUnused: async () => true,
  };
  const executor = new SupervisedExecutor({ runDir: join(dir, 'runs'), limiter, killGraceSeconds: 1, jobUmask: 0o022, log: silentLogger(), launchTimeoutSeconds });
  execFileSync('mkdir', ['-m', '0700', join(dir, 'runs')]);
  const outcomes = new Map<number, JobOutcome>();
  executor.onEnded = async (jobId, outcome) => void outcomes.set(jobId, outcome);
  await executor.start();
  cleanups.push(async () => {
    await executor.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { executor, fifo, released, outcomes };
}

function job(id: number, timeLimitSeconds = 60): Job {
  const spec = { runUser: JOB_USER, uid: uidOf(JOB_USER), gid: gidOf(JOB_USER), home: '/tmp', workingDir: '/tmp', cmdLine: 'true', timeLimitSeconds };
  return testRunningJob(spec, { id, uuid: `hpcjob-${id}`, enforcement: 'cgroup1' });
}

const privileged = () => need(isRoot, 'root') && need(ensureTestUsers(), `test user ${JOB_USER}`);

describe('a launch hung before the job runs, through the executor', () => {
  it('ends FAILED at the launch deadline, naming the step, and releases the job', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const { executor, fifo, released, outcomes } = await hangingExecutor(1);
    await executor.launch(job(11));
    expect(outcomes.get(11)).toMatchObject({ state: 'FAILED', reason: `LaunchFailed: launch did not finish within 1 s: stuck joining its cgroups (${fifo})` });
    // Its wall time is the second it spent stuck, from the supervisor's start: not a few ms.
    expect(outcomes.get(11)!.usage!.wallTimeMs).toBeGreaterThanOrEqual(1000);
    expect(released).toEqual([11]);
  });

  it('ends CANCELLED when cancelled during the launch, without waiting for the deadline', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const { executor, released, outcomes } = await hangingExecutor(3600);
    const j = job(12);
    const launching = executor.launch(j);
    await executor.cancel(j);
    await launching;
    expect(outcomes.get(12)).toMatchObject({ state: 'CANCELLED' });
    expect(released).toEqual([12]);
  });

  it('ends TIMEOUT when the time limit runs out during the launch', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const { executor, released, outcomes } = await hangingExecutor(3600);
    await executor.launch(job(13, 1));
    expect(outcomes.get(13)).toMatchObject({ state: 'TIMEOUT', limitHit: 'time' });
    expect(outcomes.get(13)!.usage!.wallTimeMs).toBeGreaterThanOrEqual(1000);
    expect(released).toEqual([13]);
  });
});
