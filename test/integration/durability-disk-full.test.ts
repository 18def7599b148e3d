/**
 * A full disk under the state directory (RELIABILITY D9), with a real hpcqd: the state directory
 * (database and run files) is a small tmpfs, filled up with a filler file. SubmitJob must fail with
 * RESOURCE_EXHAUSTED or UNAVAILABLE and store nothing; once space returns the daemon takes submits
 * again by itself, a job that ended meanwhile gets its true outcome, and a restart finds every
 * acknowledged job intact. Root only (mount).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { getJob, healthStatuses, isRunning, makeStateDir, startDaemon, stopAll, submit, TEST_CONFIG, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import {
  countBy,
  databaseDir,
  daemonStateDir,
  eventually,
  killJobsOf,
  linesOf,
  listAllJobs,
  makeJobUserDir,
  pidAlive,
  removeJobUserDirs,
} from '../support/durability.js';
import { isRoot, JOB_USER, need } from '../support/privileged.js';
import { consistencyProblems, fillDisk } from '../support/store-fixtures.js';

const daemons: DaemonHandle[] = [];
const harnessDirs: string[] = [];
const mounts: string[] = [];

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill9();
  for (const dir of harnessDirs.splice(0)) await killJobsOf(dir);
  for (const mnt of mounts.splice(0)) execFileSync('umount', ['-l', mnt]);
  await stopAll();
  removeJobUserDirs();
});

async function start(stateDir: string): Promise<DaemonHandle> {
  const d = await startDaemon({ stateDir, config: TEST_CONFIG });
  daemons.push(d);
  return d;
}

/** Comparable view of a job: everything but what a running job changes. */
const stable = (job: Job) => ({ jobId: job.jobId, uuid: job.hpcjobUuid, name: job.name, cmdLine: job.cmdLine, token: job.clientToken, submitTime: job.submitTime });

describe('full disk under the state directory (root: tmpfs)', () => {
  it('D9: SubmitJob fails cleanly while the disk is full, recovers without a restart, and loses nothing acknowledged', async () => {
    if (!need(isRoot, 'root, to mount a tmpfs and run jobs as the test user')) return;
    const harnessDir = makeStateDir();
    harnessDirs.push(harnessDir);
    const stateDir = daemonStateDir(harnessDir);
    mkdirSync(stateDir, { mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', stateDir]);
    mounts.push(stateDir);
    const filler = join(stateDir, 'filler');
    const dir = makeJobUserDir('hpcq-d9');
    const request = (name: string, cmdLine: string, clientToken: string): Partial<SubmitJobRequest> => ({
      name,
      runUser: JOB_USER,
      cmdLine: `echo ${name} >> ${dir}/runs; ${cmdLine}`,
      clientToken,
      stdoutRedirectPath: `${dir}/%j.out`,
      stderrRedirectPath: `${dir}/%j.err`,
    });

    const d = await start(harnessDir);
    const acked = await Promise.all(Array.from({ length: 10 }, (_, i) => submit(d, request(`before-${i}`, 'exit 0', `before-${i}`))));
    for (const a of acked) expect((await waitForEnd(d, a.jobId)).jobStatus).toBe('completed');
    // This one ends while the disk is full: its supervisor and the daemon must both retry.
    const during = await submit(d, request('during', `echo $$ > ${dir}/during.pid; sleep 2; exit 6`, 'during'));
    await waitForJob(d, during.jobId, isRunning);
    await eventually(() => existsSync(join(dir, 'during.pid')) && readFileSync(join(dir, 'during.pid'), 'utf8').endsWith('\n'), 'job started');
    acked.push(during);
    const beforeFull = new Map((await listAllJobs(d)).map((j) => [j.jobId, stable(j)]));

    fillDisk(filler);
    // A submit may still fit into the slack of a page the database already holds; keep submitting
    // (each with its own token) until the disk refuses one. Those accepted count as acknowledged.
    const acceptedWhileFull = [];
    let refusal: ServiceError | undefined;
    for (let i = 0; i < 500 && refusal === undefined; i++) {
      try {
        acceptedWhileFull.push(await submit(d, request(`full-${i}`, 'exit 0', `full-${i}`)));
      } catch (err) {
        refusal = err as ServiceError;
      }
    }
    expect(refusal, 'a submit refused while the disk is full').toBeInstanceOf(Error);
    const refusedTokens = [`full-${acceptedWhileFull.length}`];
    const again = await Promise.all(Array.from({ length: 3 }, (_, i) => submit(d, request(`refused-${i}`, 'exit 0', `refused-${i}`)).catch((e: ServiceError) => e)));
    refusedTokens.push('refused-0', 'refused-1', 'refused-2');
    for (const err of [refusal, ...again]) {
      expect(err).toBeInstanceOf(Error);
      expect([status.RESOURCE_EXHAUSTED, status.UNAVAILABLE]).toContain((err as ServiceError).code);
      expect((err as ServiceError).details).toMatch(/disk|space/i);
    }
    acked.push(...acceptedWhileFull);
    // Health says what submits see: JobService and the server NOT_SERVING, ListQueues still served.
    const HEALTH_NAMES = ['', 'hpcq.v1.JobService', 'hpcq.v1.QueueService'];
    expect(await healthStatuses(d, HEALTH_NAMES)).toEqual({ '': 'NOT_SERVING', 'hpcq.v1.JobService': 'NOT_SERVING', 'hpcq.v1.QueueService': 'SERVING' });
    // Nothing half-written: exactly the acknowledged jobs, the earlier ones as they were.
    const whileFull = await listAllJobs(d);
    expect(whileFull.map((j) => j.jobId).sort()).toEqual(acked.map((a) => a.jobId).sort());
    for (const [id, view] of beforeFull) expect(stable(whileFull.find((j) => j.jobId === id)!)).toEqual(view);
    expect(whileFull.some((j) => refusedTokens.includes(j.clientToken))).toBe(false);

    // Let `during` end while the disk is still full: its exit record cannot be written yet.
    const duringPid = Number(readFileSync(join(dir, 'during.pid'), 'utf8'));
    await eventually(() => !pidAlive(duringPid), 'the job `during` ended');
    rmSync(filler);
    // The daemon finds the room by itself, with no client writing: health comes back first.
    await expect.poll(async () => (await healthStatuses(d, ['']))[''], { timeout: 30_000, interval: 100 }).toBe('SERVING');
    expect(await healthStatuses(d, HEALTH_NAMES)).toEqual({ '': 'SERVING', 'hpcq.v1.JobService': 'SERVING', 'hpcq.v1.QueueService': 'SERVING' });
    // Clients retry with their tokens.
    const retried = [];
    for (const token of refusedTokens) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          retried.push(await submit(d, request(token, 'exit 0', token)));
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
    acked.push(...retried);
    const ended = await waitForEnd(d, during.jobId, 90_000);
    expect({ status: ended.jobStatus, exitCode: ended.exitCode }).toEqual({ status: 'failed', exitCode: 6 });
    for (const r of [...acceptedWhileFull, ...retried]) expect((await waitForEnd(d, r.jobId)).jobStatus).toBe('completed');

    const final = new Map((await listAllJobs(d)).map((j) => [j.jobId, j]));
    expect(d.output()).not.toMatch(/"level":60/);
    expect(await d.stop()).toBe(0);
    expect(await consistencyProblems(databaseDir(harnessDir))).toEqual([]);

    const d2 = await start(harnessDir);
    expect((await listAllJobs(d2)).length).toBe(acked.length);
    for (const a of acked) {
      const job = await getJob(d2, a.jobId);
      expect(job).toEqual(final.get(a.jobId));
    }
    // Each acknowledged job ran exactly once, and nothing else ran (a refused submit must not).
    const runs = countBy(linesOf(join(dir, 'runs')));
    expect(Object.fromEntries(runs)).toEqual(Object.fromEntries(acked.map((a) => [final.get(a.jobId)!.name, 1])));
  });
});
