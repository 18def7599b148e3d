/**
 * The Slurm test cluster (scripts/slurm-test-cluster.sh via test/support/slurm-cluster.ts), the
 * groundwork for a `backend: slurm`: it installs and starts a real single-node Slurm, runs batch
 * jobs as the unprivileged test user with their exit codes and output files, and survives a
 * controller restart. Needs root; skips without it, fails in CI (HPCQ_TEST_REQUIRE_PRIVILEGED=1).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { status } from '@grpc/grpc-js';
import { CancelJobsRequest, type CancelJobsResponse, type SubmitJobGroupRequest, type SubmitJobGroupResponse, type SubmitJobRequest, type WatchJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import { TEST_CONFIG, call, cancelJob, emptySubmit, getJob, healthStatuses, listQueues, rejection, startDaemon, submit, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { cleanUpJobTests } from '../support/job-tests.js';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { runAs } from '../support/as-user.js';
import { createSchedule, deleteSchedule, jobsOf, triggerSchedule } from '../support/schedules.js';
import { JOB_USER, ensureTestUsers, gidOf, isRoot, need, uidOf } from '../support/privileged.js';
import { sharedSlurmCluster, slurmAvailable, type SlurmCluster } from '../support/slurm-cluster.js';

const execFileAsync = promisify(execFile);

let cluster: Omit<SlurmCluster, 'stop'> | undefined;
/** Owned by the job user: Slurm writes a job's output as the job's user. */
let outDir = '';

function privileged(): boolean {
  return (
    need(isRoot, 'root (the test installs and runs Slurm)') &&
    need(ensureTestUsers(), `test user ${JOB_USER}`) &&
    need(slurmAvailable(), 'Slurm, or apt-get to install it')
  );
}

beforeAll(async () => {
  if (!privileged()) return;
  cluster = await sharedSlurmCluster();
  outDir = join(cluster.dir, 'out');
  mkdirSync(outDir, { mode: 0o755 });
  chownSync(outDir, uidOf(JOB_USER), gidOf(JOB_USER));
  // A first install and start can take minutes (apt-get); a started cluster is idle in seconds.
}, 660_000);


/** A Slurm command as root against the cluster; rejects on a non-zero exit. */
async function slurm(program: string, args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync(program, args, { env: { ...process.env, ...cluster!.env }, encoding: 'utf8' });
  return stdout;
}

/** `sbatch --parsable` as the job user; the job id. */
async function sbatchAsJobUser(args: readonly string[]): Promise<string> {
  const run = await runAs(JOB_USER, ['sbatch', '--parsable', ...args], cluster!.env);
  expect(run.code, `sbatch: ${run.stderr}`).toBe(0);
  // --parsable prints "id" or "id;cluster".
  return run.stdout.trim().replace(/;.*/, '');
}

/** The job's state in squeue (PENDING, RUNNING, ...), or undefined once it has left the queue. */
async function queuedState(jobId: string): Promise<string | undefined> {
  try {
    return (await slurm('squeue', ['-h', '-j', jobId, '-o', '%T'])).trim() || undefined;
  } catch (err) {
    // A finished job whose record is purged (MinJobAge) is an unknown id to squeue.
    if (String((err as { stderr?: string }).stderr).includes('Invalid job id')) return undefined;
    throw err;
  }
}

async function waitForQueueState(jobId: string, done: (state: string | undefined) => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let state = await queuedState(jobId); !done(state); state = await queuedState(jobId)) {
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Until the job has ended (squeue -t all shows its end for MinJobAge, 2 s here: read its record at once). */
async function waitGone(jobId: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const state = (await slurm('squeue', ['-h', '-t', 'all', '-j', jobId, '-o', '%T']).catch(() => '')).trim();
    if (['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY'].includes(state)) return;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${state} after 60 s`);
    await sleep(100);
  }
}

/** JobState and ExitCode as slurmctld reports them (the record lives MinJobAge after the end). */
async function jobRecord(jobId: string): Promise<{ state: string; exitCode: string }> {
  const fields = new Map(
    (await slurm('scontrol', ['show', 'job', '-o', jobId]))
      .trim()
      .split(/\s+/)
      .map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)] as const),
  );
  return { state: fields.get('JobState') ?? '', exitCode: fields.get('ExitCode') ?? '' };
}

describe('Slurm test cluster', () => {
  it('runs a batch job as the submitting user and reports its exit code', async (ctx) => {
    if (!cluster) return ctx.skip();
    const whoami = join(outDir, 'whoami');
    const output = join(outDir, 'job-%j.out');
    const jobId = await sbatchAsJobUser(['--output', output, '--wrap', `id -un > ${whoami}; echo to-stdout; exit 3`]);
    await waitGone(jobId);
    const record = await jobRecord(jobId);

    expect(readFileSync(whoami, 'utf8')).toBe(`${JOB_USER}\n`);
    const jobOutput = output.replace('%j', jobId);
    expect(readFileSync(jobOutput, 'utf8')).toBe('to-stdout\n');
    for (const file of [whoami, jobOutput]) {
      expect(statSync(file).uid, file).toBe(uidOf(JOB_USER));
      expect(statSync(file).gid, file).toBe(gidOf(JOB_USER));
    }
    expect(record).toEqual({ state: 'FAILED', exitCode: '3:0' });
  }, 90_000);

  it('stays usable across a controller restart, and a running job finishes through it', async (ctx) => {
    if (!cluster) return ctx.skip();
    const before = await sbatchAsJobUser(['--output', join(outDir, 'before.out'), '--wrap', 'sleep 4; echo survived']);
    await waitForQueueState(before, (state) => state === 'RUNNING');

    await cluster.stopController();
    await expect(slurm('squeue', ['-h'])).rejects.toThrow();
    await sleep(1000);
    await cluster.startController();

    const after = await sbatchAsJobUser(['--output', join(outDir, 'after.out'), '--wrap', 'echo after-restart']);
    await waitGone(before);
    expect(await jobRecord(before)).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
    await waitGone(after);
    expect(await jobRecord(after)).toEqual({ state: 'COMPLETED', exitCode: '0:0' });
    expect(readFileSync(join(outDir, 'before.out'), 'utf8')).toBe('survived\n');
    expect(readFileSync(join(outDir, 'after.out'), 'utf8')).toBe('after-restart\n');
  }, 120_000);
});

// ---- hpcq on a backend: slurm cluster -----------------------------------------------------------

/** TEST_CONFIG's local cluster and the Slurm cluster hpcq-slurm (partition debug). */
function slurmConfig(): string {
  return `${TEST_CONFIG}
  - cluster_id: hpcq-slurm
    zone: slurm-zone
    backend: slurm
    slurm:
      conf: ${cluster!.env.SLURM_CONF}
      poll_interval_seconds: 1
      command_timeout_seconds: 10
    queues:
      - hpcqueue_id: hpcq-slurm-debug
        scheduler_queue_name: debug
        default: true
        default_mem_mb: 128
        max_time_seconds: 3600
        default_time_seconds: 300
`;
}

const onSlurm = (dir: string, name: string, cmd: string, extra: Partial<SubmitJobRequest> = {}): Partial<SubmitJobRequest> => ({
  name,
  runUser: JOB_USER,
  clusterId: 'hpcq-slurm',
  cmdLine: cmd,
  stdoutRedirectPath: `${dir}/${name}.out`,
  stderrRedirectPath: `${dir}/${name}.err`,
  ...extra,
});

/** The Slurm job hpcq made for one of its jobs (its tag in --comment), from squeue -t all. */
async function slurmJobsTagged(uuid: string): Promise<string[]> {
  const out = await slurm('squeue', ['-h', '-a', '-t', 'all', '-o', '%i|%k']);
  return out
    .split('\n')
    .filter((l) => l.includes(`|hpcq:${uuid}:`))
    .map((l) => l.split('|')[0]!);
}

describe('hpcq with a backend: slurm cluster', () => {
  const daemons = cleanUpJobTests();

  it('runs jobs as their user with their limits, and reports exit codes, memory and cancels truthfully', async (ctx) => {
    if (!cluster) return ctx.skip();
    // A variable only the daemon has: the job's environment is its own, never the daemon's.
    const d = await startDaemon({ config: slurmConfig(), env: { HPCQ_DAEMON_ONLY_MARK: 'leaked' } });
    const dir = makeJobUserDir('slurm');
    const ok = await submit(d, onSlurm(dir, 'whoami', 'id -un; echo "cores=$HPCQ_CORES mine=$MINE mark=$HPCQ_DAEMON_ONLY_MARK"; test "$SLURM_JOB_ID" != ""', { coreLimit: 2, env: { MINE: 'yes' } }));
    const exit3 = await submit(d, onSlurm(dir, 'exit3', 'exit 3'));
    const oom = await submit(d, onSlurm(dir, 'oom', 'head -c 400M /dev/zero | tail > /dev/null', { memLimit: 64 }));
    const cancelled = await submit(d, onSlurm(dir, 'long', 'sleep 300'));
    await waitForJob(d, cancelled.jobId, (j) => j.jobStatus === 'running', 60_000);
    await cancelJob(d, cancelled.jobId);
    // A local job next to them: the node's own cluster still works.
    const local = await submit(d, { name: 'local', clusterId: 'hpcq-test', runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });

    expect(await waitForEnd(d, ok.jobId, 60_000)).toMatchObject({ jobStatus: 'completed', exitCode: 0, clusterId: 'hpcq-slurm' });
    expect(readFileSync(join(dir, 'whoami.out'), 'utf8')).toBe(`${JOB_USER}\ncores=2 mine=yes mark=\n`);
    expect(statSync(join(dir, 'whoami.out')).uid).toBe(uidOf(JOB_USER));
    expect(await waitForEnd(d, exit3.jobId, 60_000)).toMatchObject({ jobStatus: 'failed', exitCode: 3 });
    expect(await waitForEnd(d, oom.jobId, 60_000)).toMatchObject({ jobStatus: 'out_of_memory', limitHit: 'memory' });
    expect(await waitForEnd(d, cancelled.jobId, 60_000)).toMatchObject({ jobStatus: 'cancelled', reason: expect.stringMatching(/^Cancelled by /) });
    expect((await waitForEnd(d, local.jobId)).jobStatus).toBe('completed');
    // One Slurm job per hpcq job, tagged with it.
    for (const r of [ok, exit3, oom, cancelled]) expect(await slurmJobsTagged(r.hpcjobUuid)).toHaveLength(1);
    // The exit records the batch scripts wrote are removed once the ends were reported.
    const record = (r: { hpcjobUuid: string }) => join(homeOf(JOB_USER), '.hpcq', 'slurm', `${r.hpcjobUuid}.1.exit`);
    await waitUntilValue(async () => ([ok, exit3].every((r) => !existsSync(record(r))) ? true : undefined), 30_000);
    // The states went through Slurm's: pending there, then running.
    const history = await watchHistory(d, ok.jobId);
    expect(history).toContain('SlurmSubmitting');
    expect(history.some((r) => /^Slurm: submitted as job \d+$/.test(r))).toBe(true);
    // ListQueues shows the partition as Slurm reports it.
    const queues = (await listQueues(d)).queues;
    expect(queues.find((q) => q.hpcqueueId === 'hpcq-slurm-debug')).toMatchObject({ backend: 'slurm', partitionState: 'up', partitionNodes: 1, partitionCpus: availableParallelism() });
    expect(queues.find((q) => q.hpcqueueId === 'hpcq-normal')).toMatchObject({ backend: 'local', partitionState: '' });
    // resource_limit keys Slurm cannot enforce are refused for that cluster.
    expect(await rejection(submit(d, onSlurm(dir, 'rl', 'true', { resourceLimit: 'nofile=100' })))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameter.ResourceLimitUnsupported' });
  }, 180_000);

  it('arrays with a throttle, an afterok chain and a retry work on Slurm as on the node', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-model');
    const array = await submit(d, onSlurm(dir, 'arr', `echo "$HPCQ_ARRAY_INDEX $(date +%s%N) start" >> ${dir}/arr.log; sleep 1; echo "$HPCQ_ARRAY_INDEX $(date +%s%N) end" >> ${dir}/arr.log`, { array: { count: 20, parallelism: 2 }, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' }));
    const a = await submit(d, onSlurm(dir, 'a', `echo a >> ${dir}/chain`));
    const b = await submit(d, onSlurm(dir, 'b', `echo b >> ${dir}/chain`, { dependsOn: [{ jobId: a.jobId, condition: 0 }] }));
    const c = await submit(d, onSlurm(dir, 'c', `echo c >> ${dir}/chain`, { dependsOn: [{ jobId: b.jobId, condition: 0 }] }));
    const retried = await submit(d, onSlurm(dir, 'retry', `n=$(cat ${dir}/n 2>/dev/null || echo 0); echo $((n+1)) > ${dir}/n; test $n -ge 1`, { retry: { maxRetryCount: 2, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0 } }));
    expect((await waitForEnd(d, c.jobId, 120_000)).jobStatus).toBe('completed');
    expect(linesOf(join(dir, 'chain'))).toEqual(['a', 'b', 'c']);
    expect(await waitForEnd(d, retried.jobId, 120_000)).toMatchObject({ jobStatus: 'completed', attempt: 2 });
    expect((await waitForEnd(d, array.jobId, 180_000)).jobStatus).toBe('completed');
    // Never more than 2 instances at once.
    const events = linesOf(join(dir, 'arr.log')).map((l) => l.split(' ')).map(([, t, what]) => [Number(t), what === 'start' ? 1 : -1] as const);
    events.sort((x, y) => x[0] - y[0]);
    let running = 0;
    let most = 0;
    for (const [, delta] of events) most = Math.max(most, (running += delta));
    expect(events).toHaveLength(40);
    expect(most).toBeLessThanOrEqual(2);
    // One sbatch --array for the whole array: instance i is task i of one Slurm array job.
    const tasks = await Promise.all([...Array(20).keys()].map(async (i) => (await getJob(d, `${array.jobId}_${i}`)).schedulerJobId));
    const slurmArray = tasks[0]!.split('_')[0]!;
    expect(slurmArray).toMatch(/^\d+$/);
    expect(tasks).toEqual([...Array(20).keys()].map((i) => `${slurmArray}_${i}`));
  }, 240_000);

  it('array instances on Slurm: own ids and output files (%j by the script, %A/%a by Slurm), and a failed instance retried alone', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-array-paths');
    const say = 'echo "$HPCQ_JOB_ID $HPCQ_ARRAY_INDEX"';
    const byId = await submit(d, onSlurm(dir, 'pj', say, { array: { count: 3, parallelism: 0 }, stdoutRedirectPath: `${dir}/pj-%j.out`, stderrRedirectPath: `${dir}/pj-%j.err` }));
    const byIndex = await submit(d, onSlurm(dir, 'pa', say, { array: { count: 3, parallelism: 0 }, stdoutRedirectPath: `${dir}/pa-%A-%a.out`, stderrRedirectPath: `${dir}/pa-%A-%a.out` }));
    // Instance 1 fails on its first attempt only; its retry is a Slurm job of its own.
    const retried = await submit(
      d,
      onSlurm(dir, 'pr', `if [ "$HPCQ_ARRAY_INDEX" = 1 ] && [ ! -e ${dir}/pr-failed ]; then touch ${dir}/pr-failed; exit 9; fi; ${say}`, {
        array: { count: 3, parallelism: 0 },
        stdoutRedirectPath: `${dir}/pr-%a.out`,
        stderrRedirectPath: `${dir}/pr-%a.err`,
        retry: { maxRetryCount: 1, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0 },
      }),
    );
    for (const a of [byId, byIndex, retried]) expect((await waitForEnd(d, a.jobId, 120_000)).jobStatus).toBe('completed');
    for (let i = 0; i < 3; i++) {
      const pj = await getJob(d, `${byId.jobId}_${i}`);
      expect(readFileSync(join(dir, `pj-${pj.jobId}.out`), 'utf8')).toBe(`${pj.jobId} ${i}\n`);
      const pa = await getJob(d, `${byIndex.jobId}_${i}`);
      expect(readFileSync(join(dir, `pa-${byIndex.jobId}-${i}.out`), 'utf8')).toBe(`${pa.jobId} ${i}\n`);
      expect(statSync(join(dir, `pa-${byIndex.jobId}-${i}.out`)).uid).toBe(uidOf(JOB_USER));
      const pr = await getJob(d, `${retried.jobId}_${i}`);
      expect(pr).toMatchObject({ jobStatus: 'completed', attempt: i === 1 ? 2 : 1 });
      expect(readFileSync(join(dir, `pr-${i}.out`), 'utf8')).toBe(`${pr.jobId} ${i}\n`);
    }
    // The array went to Slurm once (3 tasks); the retried instance once more, alone.
    expect(await slurmJobsTagged(retried.hpcjobUuid)).toHaveLength(3);
    const retriedInstance = await getJob(d, `${retried.jobId}_1`);
    expect(await slurmJobsTagged(retriedInstance.hpcjobUuid)).toHaveLength(1);
  }, 180_000);

  it('cancelling a 300-instance array on Slurm cancels every instance (one scancel each, never too many at once)', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-array-cancel');
    const array = await submit(d, onSlurm(dir, 'many', 'sleep 300', { array: { count: 300, parallelism: 1 }, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' }));
    await waitForJob(d, `${array.jobId}_0`, (j) => j.jobStatus === 'running', 60_000);
    await cancelJob(d, array.jobId);
    expect(await waitForEnd(d, array.jobId, 120_000)).toMatchObject({ jobStatus: 'cancelled' });
    const states = new Set<string>();
    for (let i = 0; i < 300; i++) states.add((await getJob(d, `${array.jobId}_${i}`)).jobStatus);
    expect(states).toEqual(new Set(['cancelled']));
    // Slurm has none of them left to run.
    const slurmArray = (await getJob(d, `${array.jobId}_0`)).schedulerJobId.split('_')[0]!;
    const left = (await slurm('squeue', ['-h', '-o', '%i|%T', '-j', slurmArray]).catch(() => '')).split('\n').filter((l) => /PENDING|RUNNING/.test(l));
    expect(left).toEqual([]);
  }, 180_000);

  it('schedules on a Slurm cluster: each tick is one Slurm job; TriggerSchedule with one event_id twice is one job', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-schedule');
    const s = await createSchedule(d, { name: 'tick', cron: '*/2 * * * * *', job: onSlurm(dir, 'tick', `echo "$HPCQ_JOB_ID" >> ${dir}/ticks`, { stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' }) });
    const first = await triggerSchedule(d, { scheduleId: s.scheduleId, eventId: 'once' });
    const again = await triggerSchedule(d, { scheduleId: s.scheduleId, eventId: 'once' });
    expect(again.jobId).toBe(first.jobId);
    await sleep(5_000);
    await deleteSchedule(d, s.scheduleId);
    const jobs = await jobsOf(d, s.scheduleId);
    expect(jobs.length).toBeGreaterThanOrEqual(3); // two or three ticks and the trigger
    for (const j of jobs) {
      const ended = await waitForEnd(d, j.jobId, 60_000);
      expect(ended).toMatchObject({ jobStatus: 'completed', clusterId: 'hpcq-slurm' });
      expect(ended.schedulerJobId).toMatch(/^\d+$/);
    }
    // Each job ran once, on Slurm.
    expect(linesOf(join(dir, 'ticks')).sort()).toEqual(jobs.map((j) => j.jobId).sort());
  }, 120_000);

  it('a job group (DAG) on Slurm: tasks run in dependency order, each one Slurm job', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-group');
    const task = (taskName: string): SubmitJobRequest => ({ ...emptySubmit, ...onSlurm(dir, taskName, `echo ${taskName} >> ${dir}/runs`), taskName } as SubmitJobRequest);
    const res = await call<SubmitJobGroupRequest, SubmitJobGroupResponse>(d.jobs.submitJobGroup, d.jobs, {
      name: 'diamond',
      clientToken: '',
      tasks: [task('first'), task('left'), task('right'), task('last')],
      dependences: [
        { startTask: 'first', endTask: 'left' },
        { startTask: 'first', endTask: 'right' },
        { startTask: 'left', endTask: 'last' },
        { startTask: 'right', endTask: 'last' },
      ],
    });
    for (const jobId of Object.values(res.taskJobIds)) {
      const ended = await waitForEnd(d, jobId, 90_000);
      expect(ended).toMatchObject({ jobStatus: 'completed' });
      expect(ended.schedulerJobId).toMatch(/^\d+$/);
    }
    const runs = linesOf(join(dir, 'runs'));
    expect(runs[0]).toBe('first');
    expect(runs.slice(1, 3).sort()).toEqual(['left', 'right']);
    expect(runs[3]).toBe('last');
  }, 120_000);

  it('kill -9 of hpcqd while Slurm runs its jobs: after the restart they end with their true outcomes', async (ctx) => {
    if (!cluster) return ctx.skip();
    let d = await startDaemon({ config: slurmConfig() });
    daemons.push(d);
    const dir = makeJobUserDir('slurm-restart');
    const ok = await submit(d, onSlurm(dir, 'ok', 'sleep 3'));
    const bad = await submit(d, onSlurm(dir, 'bad', 'sleep 3; exit 7'));
    // An array's tasks (one running, the other waiting for it under the throttle) are followed too.
    const array = await submit(d, onSlurm(dir, 'arr', 'sleep 2; exit "$HPCQ_ARRAY_INDEX"', { array: { count: 2, parallelism: 1 } }));
    await waitForJob(d, ok.jobId, (j) => j.jobStatus === 'running', 60_000);
    await waitForJob(d, bad.jobId, (j) => j.jobStatus === 'running', 60_000);
    await waitForJob(d, `${array.jobId}_1`, (j) => j.schedulerJobId !== '', 60_000);
    await d.kill9();
    await sleep(1000);
    d = await startDaemon({ config: slurmConfig(), stateDir: d.stateDir });
    daemons.push(d);
    expect((await waitForEnd(d, ok.jobId, 60_000)).jobStatus).toBe('completed');
    expect(await waitForEnd(d, bad.jobId, 60_000)).toMatchObject({ jobStatus: 'failed', exitCode: 7 });
    for (const r of [ok, bad]) expect(await slurmJobsTagged(r.hpcjobUuid)).toHaveLength(1);
    expect((await waitForEnd(d, array.jobId, 60_000)).jobStatus).toBe('failed');
    expect(await getJob(d, `${array.jobId}_0`)).toMatchObject({ jobStatus: 'completed' });
    expect(await getJob(d, `${array.jobId}_1`)).toMatchObject({ jobStatus: 'failed', exitCode: 1 });
  }, 120_000);

  it('slurmctld down for 20 s: jobs keep their states (pending ones say SlurmUnavailable) and finish truthfully after it returns', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-outage');
    const running = await submit(d, onSlurm(dir, 'through', 'sleep 12; exit 4'));
    await waitForJob(d, running.jobId, (j) => j.jobStatus === 'running', 60_000);
    await cluster.stopController();
    const downAt = Date.now();
    try {
      const during = await submit(d, onSlurm(dir, 'during', 'true'));
      // Seen at the next poll (or when its sbatch gives up): it waits, saying why.
      // (Reasons of pending jobs are not events: polled, not watched.)
      await waitUntilValue(async () => {
        const j = await getJob(d, during.jobId);
        return j.jobStatus === 'pending' && j.reason.startsWith('SlurmUnavailable: ') ? j : undefined;
      }, 30_000);
      expect(await getJob(d, running.jobId)).toMatchObject({ jobStatus: 'running' });
      expect((await listQueues(d)).queues.find((q) => q.hpcqueueId === 'hpcq-slurm-debug')).toMatchObject({ partitionState: 'unavailable', partitionNote: expect.stringContaining('sinfo') });
      // Health says so for that cluster; the daemon itself still serves (the node's cluster works).
      expect(await healthStatuses(d, ['hpcq.cluster.hpcq-slurm', ''])).toEqual({ 'hpcq.cluster.hpcq-slurm': 'NOT_SERVING', '': 'SERVING' });
      await sleep(Math.max(0, downAt + 20_000 - Date.now()));
      expect((await getJob(d, running.jobId)).jobStatus).toBe('running');
      await cluster.startController();
      expect(await waitForEnd(d, running.jobId, 90_000)).toMatchObject({ jobStatus: 'failed', exitCode: 4 });
      expect(await healthStatuses(d, ['hpcq.cluster.hpcq-slurm'])).toEqual({ 'hpcq.cluster.hpcq-slurm': 'SERVING' });
      expect((await waitForEnd(d, during.jobId, 90_000)).jobStatus).toBe('completed');
      expect(await slurmJobsTagged(during.hpcjobUuid)).toHaveLength(1);
    } finally {
      await cluster.startController().catch(() => undefined);
    }
  }, 180_000);

  it('a job Slurm has purged before hpcq saw its end gets its true outcome from its exit record, never a made-up success', async (ctx) => {
    if (!cluster) return ctx.skip();
    let d = await startDaemon({ config: slurmConfig() });
    daemons.push(d);
    const dir = makeJobUserDir('slurm-purge');
    const failing = await submit(d, onSlurm(dir, 'purged', 'sleep 2; exit 5'));
    const slurmId = await waitUntilValue(async () => (await slurmJobsTagged(failing.hpcjobUuid))[0]);
    expect(await d.stop()).toBe(0);
    // MinJobAge is 2 s: wait until slurmctld has forgotten the job.
    await waitUntilValue(async () => ((await slurm('scontrol', ['show', 'job', '-o', slurmId]).catch(() => 'gone')) === 'gone' ? true : undefined), 150_000);
    d = await startDaemon({ config: slurmConfig(), stateDir: d.stateDir });
    daemons.push(d);
    expect(await waitForEnd(d, failing.jobId, 60_000)).toMatchObject({ jobStatus: 'failed', exitCode: 5 });
  }, 240_000);

  it('scancel --signal reaches a job Slurm runs (scancel --signal --full as the user); the job goes on', async (ctx) => {
    if (!cluster) return ctx.skip();
    const d = await startDaemon({ config: slurmConfig() });
    const dir = makeJobUserDir('slurm-signal');
    const r = await submit(d, onSlurm(dir, 'trapper', `trap 'echo got >> ${dir}/sig; exit 7' USR1; touch ${dir}/ready; while :; do sleep 0.1; done`));
    // The trap is set once the job has touched ready.
    await waitUntilValue(async () => (existsSync(join(dir, 'ready')) ? true : undefined), 60_000);
    await waitForJob(d, r.jobId, (j) => j.jobStatus === 'running', 60_000);
    const res = await call<CancelJobsRequest, CancelJobsResponse>(d.jobs.cancelJobs, d.jobs, CancelJobsRequest.fromPartial({ jobIds: [r.jobId], signal: 'USR1' }));
    expect(res.failures).toEqual([]);
    expect(await waitForEnd(d, r.jobId, 60_000)).toMatchObject({ jobStatus: 'failed', exitCode: 7 });
    expect(linesOf(join(dir, 'sig'))).toContain('got');
  }, 120_000);

  it('an sbatch that fails after creating the job makes exactly one Slurm job', async (ctx) => {
    if (!cluster) return ctx.skip();
    // A bin_dir whose sbatch submits, then reports a failure; the other commands are Slurm's own.
    const bin = mkdtempSync(join(tmpdir(), 'hpcq-slurm-bin-'));
    chmodSync(bin, 0o755);
    for (const tool of ['squeue', 'scancel', 'scontrol', 'sacct']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    const realSbatch = execFileSync('sh', ['-c', 'command -v sbatch'], { encoding: 'utf8' }).trim();
    writeFileSync(join(bin, 'sbatch'), `#!/bin/sh\n${realSbatch} "$@" >/dev/null || exit $?\necho "sbatch: error: Socket timed out on send/recv operation" >&2\nexit 1\n`, { mode: 0o755 });
    const config = slurmConfig().replace('      poll_interval_seconds: 1', `      poll_interval_seconds: 1\n      bin_dir: ${bin}`);
    const d = await startDaemon({ config });
    const dir = makeJobUserDir('slurm-flaky');
    const r = await submit(d, onSlurm(dir, 'once', `echo ran >> ${dir}/runs`));
    // An array goes as one sbatch --array: that too is made once, each instance running once.
    const a = await submit(d, onSlurm(dir, 'once-array', `echo "$HPCQ_ARRAY_INDEX" >> ${dir}/array-runs`, { array: { count: 4, parallelism: 0 } }));
    expect((await waitForEnd(d, r.jobId, 60_000)).jobStatus).toBe('completed');
    expect(await slurmJobsTagged(r.hpcjobUuid)).toHaveLength(1);
    expect(linesOf(join(dir, 'runs'))).toEqual(['ran']);
    expect((await waitForEnd(d, a.jobId, 60_000)).jobStatus).toBe('completed');
    expect(linesOf(join(dir, 'array-runs')).sort()).toEqual(['0', '1', '2', '3']);
    const tasks = await Promise.all([0, 1, 2, 3].map(async (i) => (await getJob(d, `${a.jobId}_${i}`)).schedulerJobId));
    expect(new Set(tasks.map((t) => t.split('_')[0])).size).toBe(1);
    rmSync(bin, { recursive: true, force: true });
  }, 120_000);
});

/** A user's home directory (getent passwd). */
function homeOf(user: string): string {
  return execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).split(':')[5]!;
}

/** Every reason in the job's stored history. */
async function watchHistory(d: DaemonHandle, jobId: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const reasons: string[] = [];
    const stream = d.jobs.watchJob({ jobId, includeHistory: true });
    stream.on('data', (m: WatchJobResponse) => {
      if (m.event) reasons.push(m.event.reason);
    });
    stream.on('end', () => resolve(reasons));
    stream.on('error', reject);
  });
}

async function waitUntilValue<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(250);
  }
}
