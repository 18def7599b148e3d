/**
 * The engine sets a job up while its RUNNING state is being stored (the executor launches ahead),
 * but the job's own code must never run before that state is durable, nor at all when the write
 * fails. A real engine, executor, launcher and supervisor, with a store whose RUNNING writes are
 * held back (or fail); the job stamps the clock as its first act.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load-config.js';
import type { Principal } from '../../src/core/access-policy.js';
import { StoreUnavailableError } from '../../src/core/errors.js';
import type { JobStore, JobTransition } from '../../src/core/ports.js';
import { JobEngine } from '../../src/engine/job-engine.js';
import { RlimitLimiter } from '../../src/exec/limits/rlimit-limiter.js';
import { findSupervisorProcesses } from '../../src/exec/process-identity.js';
import { jobIdsWithRunFiles } from '../../src/exec/run-files.js';
import { SupervisedExecutor } from '../../src/exec/supervised-executor.js';
import { silentLogger } from '../../src/logger.js';
import { LevelJobStore } from '../../src/store/level-job-store.js';
import { GetentUserDirectory } from '../../src/system/getent-user-directory.js';
import { linesOf, makeJobUserDir, removeJobUserDirs } from '../support/durability.js';
import { ensureTestUsers, isRoot, JOB_USER, need } from '../support/privileged.js';
import { submitRequest } from '../support/submit-request.js';

/** How long a RUNNING write is held back: far longer than a launch takes. */
const HOLD_MS = 400;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  removeJobUserDirs();
});

interface Harness {
  engine: JobEngine;
  runDir: string;
  /** Wall-clock ns at which each RUNNING write completed, by job id. */
  runningStoredAtNs: Map<number, bigint>;
  /** While set, RUNNING writes fail after being held back (as on a full disk). */
  failRunning: { on: boolean };
}

async function harness(): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-durable-launch-'));
  const runDir = join(dir, 'runs');
  const real = new LevelJobStore({ location: join(dir, 'db') });
  await real.open();
  const runningStoredAtNs = new Map<number, bigint>();
  const failRunning = { on: false };
  const saveTransitions = async (transitions: readonly JobTransition[]): Promise<void> => {
    const running = transitions.filter((t) => t.job.state === 'RUNNING');
    if (running.length === 0) return real.saveTransitions(transitions);
    await sleep(HOLD_MS);
    if (failRunning.on) throw new StoreUnavailableError('disk full (test)', { diskFull: true });
    await real.saveTransitions(transitions);
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const t of running) runningStoredAtNs.set(t.job.id, now);
  };
  const store = new Proxy(real, {
    get(target, prop) {
      if (prop === 'saveTransitions') return saveTransitions;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as JobStore;
  const executor = new SupervisedExecutor({ runDir, limiter: new RlimitLimiter(), killGraceSeconds: 1, jobUmask: 0o022, log: silentLogger() });
  const config = compileConfig({ node: { cores: 1, mem_mb: 4096 } }, 'test', {}, { cores: 2, memoryMb: 8192, uid: 0 });
  const engine = new JobEngine({ config, store, executor, users: new GetentUserDirectory(), log: silentLogger(), daemonUid: 0 });
  mkdirSync(runDir, { mode: 0o700 });
  await engine.start();
  cleanups.push(async () => {
    await engine.stop();
    await real.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { engine, runDir, runningStoredAtNs, failRunning };
}

const ROOT: Principal = {
  name: 'uid:0',
  via: 'unix',
  peer: 'uid:0/pid:1',
  account: { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [{ name: 'root', gid: 0 }] },
};

/** A job that appends the wall clock (ns) to `stamps` as its first act. */
function stampingJob(dir: string) {
  return submitRequest({ name: 'stamp', runUser: JOB_USER, cmdLine: `date +%s%N >> ${dir}/stamps`, workingDir: dir, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const privileged = () => need(isRoot, 'root') && need(ensureTestUsers(), `test user ${JOB_USER}`);

/** Waits for the job to end; it completed, and its first instruction ran once, after RUNNING was stored. */
async function expectRanOnceAfterDurable(h: Harness, jobId: number, dir: string): Promise<void> {
  const ended = await until('the job to end', async () => {
    const j = await h.engine.getJob(String(jobId), ROOT);
    return j.state === 'COMPLETED' || j.state === 'FAILED' ? j : undefined;
  });
  expect(ended.state).toBe('COMPLETED');
  const stamps = linesOf(join(dir, 'stamps')).map(BigInt);
  expect(stamps).toHaveLength(1);
  expect(stamps[0]! >= h.runningStoredAtNs.get(jobId)!).toBe(true);
}

describe('a job launched while its RUNNING state is being stored', () => {
  it('runs its first instruction only after that state is durable', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const h = await harness();
    const dir = makeJobUserDir('durable-launch');
    const { job } = await h.engine.submit(stampingJob(dir), ROOT);
    await expectRanOnceAfterDurable(h, job.id, dir);
  });

  it('never runs when that write fails, and runs once when a later one succeeds', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const h = await harness();
    h.failRunning.on = true;
    const dir = makeJobUserDir('durable-launch-fail');
    const { job } = await h.engine.submit(stampingJob(dir), ROOT);
    // The first attempt was set up and aborted (the job is pending again, to be retried): its
    // supervisor and run files are gone, and nothing of it ran.
    await until('the RUNNING write to fail', async () => ((await h.engine.getJob(String(job.id), ROOT)).reason === 'StoreUnavailable' ? true : undefined));
    await until('the aborted supervisor to end', async () =>
      findSupervisorProcesses(h.runDir, 0, 'hpcq-supervisor').size === 0 && (await jobIdsWithRunFiles(h.runDir)).size === 0 ? true : undefined,
    );
    expect(linesOf(join(dir, 'stamps'))).toEqual([]);

    h.failRunning.on = false;
    await expectRanOnceAfterDurable(h, job.id, dir);
  });
});
