/**
 * Delayed start and hold (Slurm --begin, -H, scontrol hold/release; SAE's Time) with a real daemon
 * and real users: a begin_time is honoured, also across a restart; a held job stays out of dispatch
 * while jobs behind it run, until released; a user's hold and an admin's hold; refusals.
 */
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import type { HoldJobRequest, HoldJobResponse, ReleaseJobRequest, ReleaseJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import { hpcqAs } from '../support/as-user.js';
import { call, getJob, rejection, startDaemon, submit, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';

const daemons = cleanUpJobTests();
const ready = canRunJobs;

const hold = (d: DaemonHandle, jobId: string) => call<HoldJobRequest, HoldJobResponse>(d.jobs.holdJob, d.jobs, { jobId });
const release = (d: DaemonHandle, jobId: string) => call<ReleaseJobRequest, ReleaseJobResponse>(d.jobs.releaseJob, d.jobs, { jobId });
const job = (dir: string, name: string, cmd = 'true') => ({ name, runUser: JOB_USER, cmdLine: `echo ${name} >> ${dir}/runs; ${cmd}`, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });

describe('begin_time', () => {
  it('a job with begin_time 3 s ahead waits with reason BeginTime and starts no earlier', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('begin');
    const begin = new Date(Date.now() + 3000);
    const res = await submit(d, { ...job(dir, 'later'), beginTime: begin.toISOString() });
    const waiting = await getJob(d, res.jobId);
    expect(waiting).toMatchObject({ jobStatus: 'pending', reason: 'BeginTime', beginTime: begin.toISOString() });
    const ended = await waitForEnd(d, res.jobId);
    expect(ended.jobStatus).toBe('completed');
    expect(Date.parse(ended.startTime)).toBeGreaterThanOrEqual(begin.getTime());
    // A time in the past means now; a malformed one is refused.
    const past = await submit(d, { ...job(dir, 'now'), beginTime: '2001-01-01T00:00:00Z' });
    expect((await waitForEnd(d, past.jobId)).jobStatus).toBe('completed');
    expect(await rejection(submit(d, { ...job(dir, 'bad'), beginTime: 'tomorrow' }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameterValue.BeginTime', field: 'begin_time' });
  });

  it('survives a restart: the job starts neither early nor twice', async () => {
    if (!ready()) return;
    let d = await startDaemon();
    daemons.push(d);
    const dir = makeJobUserDir('begin-restart');
    const begin = Date.now() + 3000;
    const res = await submit(d, { ...job(dir, 'later'), beginTime: new Date(begin).toISOString() });
    expect(await d.stop()).toBe(0);
    d = await startDaemon({ stateDir: d.stateDir });
    daemons.push(d);
    const ended = await waitForEnd(d, res.jobId);
    expect(Date.parse(ended.startTime)).toBeGreaterThanOrEqual(begin);
    expect(linesOf(join(dir, 'runs'))).toEqual(['later']);
  });
});

describe('hold and release', () => {
  it('a held job stays out of dispatch while jobs behind it run; release starts it', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('hold');
    const held = await submit(d, { ...job(dir, 'held'), hold: true });
    const behind = await submit(d, job(dir, 'behind'));
    expect((await waitForEnd(d, behind.jobId)).jobStatus).toBe('completed');
    // root submitted it held: an admin's hold.
    expect(await getJob(d, held.jobId)).toMatchObject({ jobStatus: 'pending', reason: 'JobHeldAdmin', heldBy: 'admin' });
    const released = await release(d, held.jobId);
    expect(released.job).toMatchObject({ heldBy: '' });
    expect((await waitForEnd(d, held.jobId)).jobStatus).toBe('completed');
    expect(linesOf(join(dir, 'runs'))).toEqual(['behind', 'held']);
    // Releasing a job that is not held, or holding one that is not pending, is refused.
    expect(await rejection(release(d, held.jobId))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'FailedOperation.JobNotPending' });
    const running = await submit(d, job(dir, 'running', 'sleep 30'));
    await waitForJob(d, running.jobId, (j: Job) => j.jobStatus === 'running');
    expect(await rejection(hold(d, running.jobId))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'FailedOperation.JobNotPending' });
  });

  it("a user holds and releases its own job; an admin's hold only an admin releases (through the CLI as the user)", async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('hold-user');
    const submitted = await hpcqAs(JOB_USER, d.address, ['submit', '--parsable', '--hold', '--name', 'mine', '--stdout', '/dev/null', '--', `echo mine >> ${dir}/runs`]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const mine = submitted.stdout.trim();
    expect(await getJob(d, mine)).toMatchObject({ reason: 'JobHeldUser', heldBy: 'user' });
    const released = await hpcqAs(JOB_USER, d.address, ['release', mine]);
    expect(released.code, released.stderr).toBe(0);
    expect((await waitForEnd(d, mine)).jobStatus).toBe('completed');

    const other = await submit(d, { ...job(dir, 'admin-held'), hold: false, beginTime: new Date(Date.now() + 60_000).toISOString() });
    await hold(d, other.jobId);
    expect(await getJob(d, other.jobId)).toMatchObject({ reason: 'JobHeldAdmin', heldBy: 'admin' });
    const refused = await hpcqAs(JOB_USER, d.address, ['release', other.jobId]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('OperationDenied.AdminHold');
    // The admin releases it; it still waits for its begin time.
    expect((await release(d, other.jobId)).job).toMatchObject({ reason: 'BeginTime', heldBy: '' });
  });
});
