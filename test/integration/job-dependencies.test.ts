/**
 * Job dependencies with a real daemon and real jobs (Slurm --dependency, Tencent Dependences):
 * each condition, the DependencyNeverSatisfied cascade down a chain, parents that ended long ago,
 * unknown or invisible parents, and kill -9 of the daemon between a parent's end and its
 * dependent's start.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { DependencyCondition, type Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { hpcqAs } from '../support/as-user.js';
import { getJob, listJobs, rejection, startDaemon, submit, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, OTHER_USER } from '../support/privileged.js';

const { DEPENDENCY_CONDITION_AFTER_OK: AFTER_OK, DEPENDENCY_CONDITION_AFTER_ANY: AFTER_ANY, DEPENDENCY_CONDITION_AFTER_NOT_OK: AFTER_NOT_OK, DEPENDENCY_CONDITION_AFTER_START: AFTER_START } =
  DependencyCondition;

const daemons = cleanUpJobTests();
const ready = canRunJobs;

/** A job of JOB_USER that appends its name to `<dir>/runs` and then runs `cmd`. */
function job(dir: string, name: string, cmd: string, more: Partial<SubmitJobRequest> = {}): Partial<SubmitJobRequest> {
  return { name, runUser: JOB_USER, cmdLine: `echo ${name} >> ${dir}/runs; ${cmd}`, stdoutRedirectPath: `${dir}/%j.out`, stderrRedirectPath: `${dir}/%j.err`, ...more };
}
const on = (jobId: string, condition: DependencyCondition) => ({ dependsOn: [{ jobId, condition }] });

describe('dependencies', () => {
  it('afterok: a chain of three runs in order; when the first fails, the rest end DependencyNeverSatisfied and never run', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('dep-chain');
    const a = await submit(d, job(dir, 'a', 'sleep 0.3'));
    const b = await submit(d, job(dir, 'b', 'true', on(a.jobId, AFTER_OK)));
    const c = await submit(d, job(dir, 'c', 'true', on(b.jobId, AFTER_OK)));
    expect((await getJob(d, c.jobId)).reason).toBe('Dependency');
    const [ja, jb, jc] = [await waitForEnd(d, a.jobId), await waitForEnd(d, b.jobId), await waitForEnd(d, c.jobId)];
    expect([ja, jb, jc].map((j) => j.jobStatus)).toEqual(['completed', 'completed', 'completed']);
    expect(Date.parse(jb.startTime)).toBeGreaterThanOrEqual(Date.parse(ja.endTime));
    expect(Date.parse(jc.startTime)).toBeGreaterThanOrEqual(Date.parse(jb.endTime));
    expect(jc.dependsOn).toEqual([{ jobId: b.jobId, condition: AFTER_OK }]);

    const x = await submit(d, job(dir, 'x', 'sleep 0.3; exit 4'));
    const y = await submit(d, job(dir, 'y', 'true', on(x.jobId, AFTER_OK)));
    const z = await submit(d, job(dir, 'z', 'true', on(y.jobId, AFTER_OK)));
    expect((await waitForEnd(d, x.jobId)).jobStatus).toBe('failed');
    const [jy, jz] = [await waitForEnd(d, y.jobId), await waitForEnd(d, z.jobId)];
    expect(jy).toMatchObject({ jobStatus: 'cancelled', reason: `DependencyNeverSatisfied: job ${x.jobId} ended FAILED (afterok)`, startTime: '' });
    expect(jz).toMatchObject({ jobStatus: 'cancelled', reason: `DependencyNeverSatisfied: job ${y.jobId} ended CANCELLED (afterok)`, startTime: '' });
    expect(linesOf(join(dir, 'runs'))).toEqual(['a', 'b', 'c', 'x']);
  });

  it('afterany, afternotok and after (start) behave as in Slurm', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('dep-conditions');
    const failing = await submit(d, job(dir, 'failing', 'sleep 0.2; exit 1'));
    const ok = await submit(d, job(dir, 'ok', 'sleep 0.2'));
    const anyAfterFail = await submit(d, job(dir, 'anyAfterFail', 'true', on(failing.jobId, AFTER_ANY)));
    const notOkAfterFail = await submit(d, job(dir, 'notOkAfterFail', 'true', on(failing.jobId, AFTER_NOT_OK)));
    const notOkAfterOk = await submit(d, job(dir, 'notOkAfterOk', 'true', on(ok.jobId, AFTER_NOT_OK)));
    expect((await waitForEnd(d, anyAfterFail.jobId)).jobStatus).toBe('completed');
    expect((await waitForEnd(d, notOkAfterFail.jobId)).jobStatus).toBe('completed');
    expect(await waitForEnd(d, notOkAfterOk.jobId)).toMatchObject({ jobStatus: 'cancelled', reason: expect.stringMatching(/^DependencyNeverSatisfied: job \d+ ended COMPLETED \(afternotok\)$/) });

    // after: starts once the parent has started, while it still runs.
    const long = await submit(d, job(dir, 'long', 'sleep 30'));
    const afterStart = await submit(d, job(dir, 'afterStart', 'true', on(long.jobId, AFTER_START)));
    const started = await waitForEnd(d, afterStart.jobId);
    expect(started.jobStatus).toBe('completed');
    expect((await getJob(d, long.jobId)).jobStatus).toBe('running');
  });

  it('a parent that ended before the submit is judged from its stored outcome', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('dep-finished');
    const done = await submit(d, job(dir, 'done', 'true'));
    await waitForEnd(d, done.jobId);
    const ok = await submit(d, job(dir, 'okLater', 'true', on(done.jobId, AFTER_OK)));
    expect((await waitForEnd(d, ok.jobId)).jobStatus).toBe('completed');
    const never = await submit(d, job(dir, 'neverLater', 'true', { dependsOn: [{ jobId: done.jobId, condition: AFTER_NOT_OK }, { jobId: ok.jobId, condition: AFTER_ANY }] }));
    expect((await waitForEnd(d, never.jobId)).reason).toMatch(/^DependencyNeverSatisfied: job \d+ ended COMPLETED/);
  });

  it('an unknown job, or one the caller may not see, is NOT_FOUND naming depends_on, and nothing is stored', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('dep-unknown');
    const refused = await rejection(submit(d, job(dir, 'orphan', 'true', on('999', AFTER_OK))));
    expect(refused).toMatchObject({ code: status.NOT_FOUND, reason: 'ResourceNotFound.Job', field: 'depends_on' });
    const malformed = await rejection(submit(d, job(dir, 'bad', 'true', on('12; rm', AFTER_OK))));
    expect(malformed).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'depends_on' });
    expect((await listJobs(d)).jobs).toEqual([]);

    // hpcq-job's job is invisible to hpcq-other: it cannot depend on it (the CLI's -d, Slurm syntax).
    const mine = await submit(d, job(dir, 'mine', 'sleep 5'));
    const theirs = await hpcqAs(OTHER_USER, d.address, ['submit', '--name', 'theirs', '-d', `afterok:${mine.jobId}`, '--', 'true']);
    expect(theirs.code).toBe(2);
    expect(theirs.stderr).toContain('ResourceNotFound.Job');
    const own = await hpcqAs(JOB_USER, d.address, ['submit', '--json', '--name', 'own', '-d', `afterany:${mine.jobId}`, '--stdout', `${dir}/own.out`, '--', 'true']);
    expect(own.code, own.stderr).toBe(0);
    const ownId = (JSON.parse(own.stdout) as { job_id: string }).job_id;
    expect((await getJob(d, ownId)).dependsOn).toEqual([{ jobId: mine.jobId, condition: AFTER_ANY }]);
  });

  it('kill -9 between a parent\'s end and its dependents: after the restart one starts exactly once, the other is cancelled', async () => {
    if (!ready()) return;
    let d = await startDaemon();
    daemons.push(d);
    const dir = makeJobUserDir('dep-crash');
    const parent = await submit(d, job(dir, 'parent', `while [ ! -e ${dir}/go ]; do sleep 0.05; done`));
    const onOk = await submit(d, job(dir, 'onOk', 'true', on(parent.jobId, AFTER_OK)));
    const onFail = await submit(d, job(dir, 'onFail', 'true', on(parent.jobId, AFTER_NOT_OK)));
    await waitForJob(d, parent.jobId, (j: Job) => j.jobStatus === 'running');
    await d.kill9();
    // The parent ends while no daemon runs.
    execAsUser(`touch ${dir}/go`);
    await new Promise((r) => setTimeout(r, 500));
    d = await startDaemon({ stateDir: d.stateDir });
    daemons.push(d);
    expect((await waitForEnd(d, parent.jobId)).jobStatus).toBe('completed');
    expect((await waitForEnd(d, onOk.jobId)).jobStatus).toBe('completed');
    expect((await waitForEnd(d, onFail.jobId)).reason).toMatch(/^DependencyNeverSatisfied/);
    expect(linesOf(join(dir, 'runs')).sort()).toEqual(['onOk', 'parent']);
    expect(readFileSync(join(dir, 'runs'), 'utf8').split('onOk').length).toBe(2);
  });
});

/** Runs a shell command as the job user (its flag files are the user's, like the job's own). */
function execAsUser(cmd: string): void {
  execFileSync('runuser', ['-u', JOB_USER, '--', 'sh', '-c', cmd]);
}
