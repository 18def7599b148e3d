/**
 * A job whose launch hangs before its program runs (here: joining a "cgroup" file that is a FIFO
 * nobody reads, as a hung filesystem or NSS would) ends as the executor's outcome says, with its
 * resources released: FAILED at the launch deadline naming the step, CANCELLED when cancelled
 * meanwhile, TIMEOUT when its time limit runs out first. Real launcher and supervisor, as root.
 * A graceful stop of the engine does not wait for such a launch; the next start finds its outcome.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, constants, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileConfig } from '../../src/config/load-config.js';
import type { Principal } from '../../src/core/access-policy.js';
import { JobEngine } from '../../src/engine/job-engine.js';
import { LevelJobStore } from '../../src/store/level-job-store.js';
import { GetentUserDirectory } from '../../src/system/getent-user-directory.js';
import { submitRequest } from '../support/submit-request.js';
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

/** A limiter whose only "cgroup" file is a FIFO without a reader (in `dir`); records releases. */
function hangingLimiter(dir: string) {
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
  return { limiter, fifo, released };
}

/** An executor whose only "cgroup" file is a FIFO without a reader; records releases and outcomes. */
async function hangingExecutor(launchTimeoutSeconds: number) {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-launch-deadline-'));
  chmodSync(dir, 0o700);
  const { limiter, fifo, released } = hangingLimiter(dir);
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

const ROOT: Principal = {
  name: 'uid:0',
  via: 'unix',
  peer: 'uid:0/pid:1',
  account: { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [{ name: 'root', gid: 0 }] },
};

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

describe('a graceful stop while a launch hangs', () => {
  it('does not wait for the launch; the next start records the job\'s true outcome', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const dir = mkdtempSync(join(tmpdir(), 'hpcq-stop-hung-'));
    chmodSync(dir, 0o700);
    const runDir = join(dir, 'runs');
    execFileSync('mkdir', ['-m', '0700', runDir]);
    const store = new LevelJobStore({ location: join(dir, 'db') });
    await store.open();
    let reader: number | undefined;
    const engines: JobEngine[] = [];
    cleanups.push(async () => {
      for (const e of engines) await e.stop();
      if (reader !== undefined) closeSync(reader);
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const { limiter, fifo } = hangingLimiter(dir);
    const config = compileConfig({ node: { cores: 1, mem_mb: 4096 } }, 'test', {}, { cores: 2, memoryMb: 8192, uid: 0 });
    const startEngine = async () => {
      // A launch deadline of an hour: only the stop, not the deadline, can end the wait.
      const executor = new SupervisedExecutor({ runDir, limiter, killGraceSeconds: 1, jobUmask: 0o022, log: silentLogger(), launchTimeoutSeconds: 3600 });
      const engine = new JobEngine({ config, store, executor, users: new GetentUserDirectory(), log: silentLogger(), daemonUid: 0 });
      engines.push(engine);
      await engine.start();
      return engine;
    };
    const first = await startEngine();
    const { job } = await first.submit(submitRequest({ name: 'hung', runUser: JOB_USER, cmdLine: 'true', workingDir: '/tmp', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' }), ROOT);
    // RUNNING is stored and the supervisor has its go (it wrote its .sup record), stuck on the FIFO.
    await vi.waitFor(() => expect(existsSync(join(runDir, `${job.id}.sup`))).toBe(true), { timeout: 20_000, interval: 20 });
    expect((await first.getJob(String(job.id), ROOT)).state).toBe('RUNNING');

    const stopped = await Promise.race([first.stop().then(() => 'stopped'), sleep(15_000).then(() => 'still waiting for the launch')]);
    expect(stopped).toBe('stopped');
    engines.shift();

    // Its supervisor outlived the stop. Given a reader, the join goes through and the job runs.
    reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    await vi.waitFor(() => expect(existsSync(join(runDir, `${job.id}.exit`))).toBe(true), { timeout: 20_000, interval: 20 });
    const second = await startEngine();
    await vi.waitFor(async () => expect((await second.getJob(String(job.id), ROOT)).state).toBe('COMPLETED'), { timeout: 20_000, interval: 50 });
  });
});
