/**
 * Array jobs with a real daemon and real jobs (Slurm --array=0-99%3, Tencent TaskInstanceNum,
 * BatchCompute InstanceCount, SAE Replicas): parallelism checked from the instances' own start and
 * end times, the array's state and counts, instance addressing (<id>_<index>), %a and the
 * HPCQ_ARRAY_* variables, cancel of one instance and of the whole array, listing, a dependency on
 * a whole array, and kill -9 of the daemon in the middle of an array.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DependencyCondition, type Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { cancelJob, getJob, listJobs, startDaemon, submit, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';

const daemons = cleanUpJobTests();
const ready = canRunJobs;

/** An array of JOB_USER whose instances run `cmd`, with outputs as <dir>/<name>-%a.out. */
function arrayJob(dir: string, name: string, count: number, parallelism: number, cmd: string, more: Partial<SubmitJobRequest> = {}): Partial<SubmitJobRequest> {
  return { name, runUser: JOB_USER, cmdLine: cmd, array: { count, parallelism }, stdoutRedirectPath: `${dir}/${name}-%a.out`, stderrRedirectPath: `${dir}/${name}-%a.err`, ...more };
}

describe('array jobs', () => {
  it('100 instances with parallelism 3 never run more than 3 at once; each writes its index; the array COMPLETED', { timeout: 120_000 }, async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('array-par');
    // Each instance records its start and end on the monotonic-enough wall clock, then its index.
    const cmd = `s=$(date +%s%N); sleep 0.05; e=$(date +%s%N); echo "$HPCQ_ARRAY_INDEX $s $e" >> ${dir}/spans; echo "$HPCQ_ARRAY_INDEX/$HPCQ_ARRAY_COUNT"`;
    const res = await submit(d, arrayJob(dir, 'par', 100, 3, cmd));
    const array = await waitForEnd(d, res.jobId, 110_000);
    expect(array).toMatchObject({ jobStatus: 'completed', array: { count: 100, parallelism: 3 }, instanceCounts: { completed: 100 } });
    const spans = linesOf(join(dir, 'spans')).map((l) => l.split(' ').map(Number) as [number, number, number]);
    expect(spans.map(([i]) => i).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // Most instances alive at any moment, from the instances' own times.
    const events = spans.flatMap(([, s, e]) => [[s, 1], [e, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let alive = 0;
    let most = 0;
    for (const [, delta] of events) most = Math.max(most, (alive += delta));
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThanOrEqual(2);
    expect(readFileSync(join(dir, 'par-42.out'), 'utf8')).toBe('42/100\n');
    const instance = await getJob(d, `${res.jobId}_42`);
    expect(instance).toMatchObject({ arrayJobId: res.jobId, arrayIndex: 42, jobStatus: 'completed', stdoutPath: join(dir, 'par-42.out') });
  });

  it("SAE ExecJob's shape: Command + CommandArgs (argv, no shell), Envs and Replicas", async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('array-sae');
    const res = await submit(d, {
      name: 'sae-example',
      runUser: JOB_USER,
      argv: ['printf', '%s %s of %s\\n', '$GREETING stays literal', '$HPCQ_ARRAY_INDEX', '3'],
      env: { GREETING: 'hello' },
      array: { count: 3, parallelism: 0 },
      stdoutRedirectPath: `${dir}/sae-%a.out`,
    });
    expect((await waitForEnd(d, res.jobId)).jobStatus).toBe('completed');
    // No shell: the words arrive as written, variables included.
    expect(readFileSync(join(dir, 'sae-1.out'), 'utf8')).toBe('$GREETING stays literal $HPCQ_ARRAY_INDEX of 3\n');
    const withEnv = await submit(d, { name: 'sae-env', runUser: JOB_USER, argv: ['sh', '-c', 'echo "$GREETING $HPCQ_ARRAY_INDEX"'], env: { GREETING: 'hello' }, array: { count: 2, parallelism: 0 }, stdoutRedirectPath: `${dir}/env-%a.out` });
    expect((await waitForEnd(d, withEnv.jobId)).jobStatus).toBe('completed');
    expect(readFileSync(join(dir, 'env-1.out'), 'utf8')).toBe('hello 1\n');
  });

  it('a failing instance makes the array FAILED with the right counts while the others run', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('array-fail');
    const res = await submit(d, arrayJob(dir, 'fail', 5, 0, `echo $HPCQ_ARRAY_INDEX >> ${dir}/ran; [ "$HPCQ_ARRAY_INDEX" != 2 ]`));
    const array = await waitForEnd(d, res.jobId);
    expect(array).toMatchObject({ jobStatus: 'failed', instanceCounts: { completed: 4, failed: 1 } });
    expect(array.reason).toBe('ArrayInstancesFailed: 1 of 5 instances did not complete');
    expect(linesOf(join(dir, 'ran')).sort()).toEqual(['0', '1', '2', '3', '4']);
    expect((await getJob(d, `${res.jobId}_2`)).exitCode).toBe(1);
    // Listed once; its instances on request.
    expect((await listJobs(d)).jobs.map((j) => j.jobId)).toEqual([res.jobId]);
    expect((await listJobs(d, { includeInstances: true })).jobs).toHaveLength(6);
  });

  it('cancel one instance, then the whole array: CANCELLED, nothing of it keeps running', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('array-cancel');
    const res = await submit(d, arrayJob(dir, 'cancel', 6, 2, 'sleep 60'));
    await waitForJob(d, res.jobId, (j: Job) => j.jobStatus === 'running');
    const one = await cancelJob(d, `${res.jobId}_5`);
    expect(one.job).toMatchObject({ arrayIndex: 5, jobStatus: 'cancelled' });
    await cancelJob(d, res.jobId);
    const array = await waitForEnd(d, res.jobId);
    expect(array).toMatchObject({ jobStatus: 'cancelled', instanceCounts: { cancelled: 6 } });
    expect(array.reason).toMatch(/^Cancelled by uid:0/);
    for (let i = 0; i < 6; i++) expect((await getJob(d, `${res.jobId}_${i}`)).jobStatus).toBe('cancelled');
  });

  it('a job depending on an array starts after the whole array completed', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('array-dep');
    const res = await submit(d, arrayJob(dir, 'parts', 3, 0, `sleep 0.2; echo part >> ${dir}/log`));
    const after = await submit(d, { name: 'merge', runUser: JOB_USER, cmdLine: `echo merge >> ${dir}/log`, stdoutRedirectPath: '/dev/null', dependsOn: [{ jobId: res.jobId, condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_OK }] });
    expect((await waitForEnd(d, after.jobId)).jobStatus).toBe('completed');
    expect(linesOf(join(dir, 'log'))).toEqual(['part', 'part', 'part', 'merge']);
  });

  it('kill -9 in the middle of an array: after the restart every instance runs exactly once and the array completes', { timeout: 90_000 }, async () => {
    if (!ready()) return;
    let d = await startDaemon();
    daemons.push(d);
    const dir = makeJobUserDir('array-crash');
    const res = await submit(d, arrayJob(dir, 'crash', 8, 2, `echo $HPCQ_ARRAY_INDEX >> ${dir}/ran; sleep 0.3`));
    await waitForJob(d, `${res.jobId}_1`, (j: Job) => j.jobStatus !== 'pending');
    await d.kill9();
    d = await startDaemon({ stateDir: d.stateDir });
    daemons.push(d);
    const array = await waitForEnd(d, res.jobId, 60_000);
    expect(array).toMatchObject({ jobStatus: 'completed', instanceCounts: { completed: 8 } });
    expect(linesOf(join(dir, 'ran')).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
  });
});
