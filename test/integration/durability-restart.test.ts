/**
 * Jobs survive the daemon (RELIABILITY D1, D4-D8, D11b, D12, retention): a real hpcqd (dist/) on a
 * real LevelDB, killed with SIGKILL or stopped with SIGTERM and started again on the same state
 * directory, with real jobs run as the job user under their supervisors. Every job appends its id
 * to a file in the job user's home, so "ran exactly once" is counted, not assumed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { transition, type Job as DomainJob, type JobState as DomainJobState } from '../../src/core/job.js';
import { currentBootId, processIsAlive, processStartTicks } from '../../src/exec/process-identity.js';
import type { SubmitJobRequest, SubmitJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import { jobKey } from '../../src/store/keys.js';
import { LevelJobStore } from '../../src/store/level-job-store.js';
import { cancelJob, getJob, isRunning, rejection, startDaemon, stopAll, submit, TEST_CONFIG, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import {
  countBy,
  databaseDir,
  eventually,
  jobCgroupDirs,
  killJobsOf,
  linesOf,
  listAllJobs,
  makeJobUserDir,
  pidAlive,
  readSupervisorRecord,
  removeJobUserDirs,
  runDir,
  waitForOutput,
} from '../support/durability.js';
import { isRoot, JOB_USER, need } from '../support/privileged.js';
import { consistencyProblems, keysOfJob, withRawDb } from '../support/store-fixtures.js';

/** Room for D4's five jobs at once (the harness config has 4 cores). */
const CONFIG = TEST_CONFIG.replace('cores: 4', 'cores: 8');

const daemons: DaemonHandle[] = [];
const harnessDirs = new Set<string>();
const children: ChildProcess[] = [];

async function start(stateDir?: string, config = CONFIG): Promise<DaemonHandle> {
  const d = await startDaemon({ ...(stateDir ? { stateDir } : {}), config });
  daemons.push(d);
  harnessDirs.add(d.stateDir);
  return d;
}

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill9();
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of harnessDirs) await killJobsOf(dir);
  harnessDirs.clear();
  await stopAll();
  removeJobUserDirs();
});

const canRunJobs = () => need(isRoot, 'root, to run jobs as the test user');

/** A job of the test user whose output goes to `dir`. */
function jobRequest(dir: string, name: string, cmdLine: string, extra: Partial<SubmitJobRequest> = {}): Partial<SubmitJobRequest> {
  return { name, runUser: JOB_USER, cmdLine, stdoutRedirectPath: `${dir}/%j.out`, stderrRedirectPath: `${dir}/%j.err`, ...extra };
}

/** A command that records one run of the job in `<dir>/runs`, then does `rest`. */
const recorded = (dir: string, rest: string) => `echo $HPCQ_JOB_ID >> ${dir}/runs; ${rest}`;

function expectRanOnce(dir: string, jobIds: readonly string[]): void {
  const runs = countBy(linesOf(join(dir, 'runs')));
  for (const id of jobIds) expect(runs.get(id) ?? 0, `runs of job ${id}`).toBe(1);
  expect([...runs.keys()].filter((id) => !jobIds.includes(id)), 'runs of unexpected jobs').toEqual([]);
}

async function expectStartFails(stateDir: string): Promise<{ code: number; output: string }> {
  const err = (await startDaemon({ stateDir, config: CONFIG }).then(
    (d) => {
      daemons.push(d);
      return new Error('the daemon started');
    },
    (e: unknown) => e,
  )) as Error;
  const m = /daemon exited with (\d+|null) before ready:\n([\s\S]*)$/.exec(err.message);
  if (!m) throw err;
  return { code: Number(m[1]), output: m[2] ?? '' };
}

/** The run files of jobs (.sup, .exit and their temporaries) in a run directory. */
const jobRunFiles = (run: string) => readdirSync(run).filter((f) => /^\d+\./.test(f));

/** Marks a stored job RUNNING as dispatch does before spawning a supervisor (write-ahead). Daemon stopped. */
async function markRunningWithoutSupervisor(harnessDir: string, jobId: string, enforcement: DomainJob['enforcement']): Promise<void> {
  const store = new LevelJobStore({ location: databaseDir(harnessDir) });
  await store.open();
  try {
    const job = (await store.getJob(Number(jobId)))!;
    expect(job.state).toBe('PENDING');
    const t = transition({ ...job, enforcement }, 'RUNNING', '', Date.now());
    await store.saveTransitions([{ job: t.job, previousState: job.state, event: t.event }]);
  } finally {
    await store.close();
  }
}

describe('restart after kill -9', () => {
  it('D1: keeps every acknowledged submit with its id and parameters; a retried token yields the same job', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d1');
    const requests = Array.from({ length: 10 }, (_, i) =>
      jobRequest(dir, `d1-${i}`, recorded(dir, `exit ${i}`), { coreLimit: 1, timeLimit: 120, clientToken: `d1-token-${i}` }),
    );
    const acks = await Promise.all(requests.map((r) => submit(d, r)));
    await d.kill9();

    const d2 = await start(d.stateDir);
    for (const [i, ack] of acks.entries()) {
      const job = await getJob(d2, ack.jobId);
      expect(job).toMatchObject({
        jobId: ack.jobId,
        hpcjobUuid: ack.hpcjobUuid,
        name: `d1-${i}`,
        runUser: JOB_USER,
        cmdLine: requests[i]!.cmdLine,
        coreLimit: 1,
        timeLimit: 120,
        hpcqueueId: 'hpcq-normal',
        clientToken: `d1-token-${i}`,
      });
      expect(['pending', 'running', 'completed', 'failed']).toContain(job.jobStatus);
      const retried = await submit(d2, requests[i]!);
      expect(retried.jobId).toBe(ack.jobId);
    }
    const ends = await Promise.all(acks.map((a) => waitForEnd(d2, a.jobId)));
    ends.forEach((job, i) => expect({ status: job.jobStatus, exitCode: job.exitCode }).toEqual({ status: i === 0 ? 'completed' : 'failed', exitCode: i }));
    expect((await listAllJobs(d2)).length).toBe(10);
    expectRanOnce(dir, acks.map((a) => a.jobId));
  });

  it('D4: re-attaches to 5 running jobs; they end with their real exit codes and ran exactly once', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d4');
    const codes = [11, 12, 13, 14, 15];
    const acks = await Promise.all(codes.map((code) => submit(d, jobRequest(dir, `d4-${code}`, recorded(dir, `sleep 3; exit ${code}`)))));
    await Promise.all(acks.map((a) => waitForJob(d, a.jobId, isRunning)));
    await eventually(() => linesOf(join(dir, 'runs')).length === codes.length, 'all 5 jobs started');
    await d.kill9();

    const d2 = await start(d.stateDir);
    expect(d2.output()).toContain('re-attached to running job');
    const ends = await Promise.all(acks.map((a) => waitForEnd(d2, a.jobId)));
    ends.forEach((job, i) => {
      expect(job.jobStatus).toBe('failed');
      expect(job.exitCode).toBe(codes[i]);
      expect(job.reason).toContain('NonZeroExitCode');
    });
    expectRanOnce(dir, acks.map((a) => a.jobId));
  });

  it('D5: a job that exits 3 while the daemon is down ends FAILED with exit code 3', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d5');
    const ack = await submit(d, jobRequest(dir, 'd5', recorded(dir, 'sleep 1; exit 3')));
    await waitForJob(d, ack.jobId, isRunning);
    await eventually(() => existsSync(join(runDir(d.stateDir), `${ack.jobId}.sup`)), 'supervisor record written');
    await d.kill9();
    // The supervisor records the outcome with nobody to tell.
    await eventually(() => existsSync(join(runDir(d.stateDir), `${ack.jobId}.exit`)), 'exit file written while the daemon is down');

    const d2 = await start(d.stateDir);
    const job = await waitForEnd(d2, ack.jobId);
    expect(job).toMatchObject({ jobStatus: 'failed', exitCode: 3, termSignal: 0 });
    expect(job.reason).toContain('NonZeroExitCode');
    await eventually(() => readdirSync(runDir(d.stateDir)).every((f) => !f.startsWith(`${ack.jobId}.`)), 'run files removed after the outcome was stored');
    expectRanOnce(dir, [ack.jobId]);
  });

  it('a cancel asked for before kill -9 keeps who asked: the job ends CANCELLED "Cancelled by <principal>" after the restart', async () => {
    if (!canRunJobs()) return;
    // The job takes 3 s to end after SIGTERM, within the 5 s grace: the daemon dies in between.
    const config = CONFIG.replace('kill_grace_seconds: 1', 'kill_grace_seconds: 5');
    expect(config).not.toBe(CONFIG);
    const d = await start(undefined, config);
    const dir = makeJobUserDir('hpcq-cancel-restart');
    const ack = await submit(d, jobRequest(dir, 'cr', `trap 'sleep 3; exit 0' TERM; touch ${dir}/ready; while :; do sleep 0.1; done`));
    await waitForJob(d, ack.jobId, isRunning);
    await eventually(() => existsSync(join(dir, 'ready')), 'the job set its trap');
    await cancelJob(d, ack.jobId);
    const asked = await waitForJob(d, ack.jobId, (j) => j.reason.startsWith('CancelRequested by '));
    const requester = asked.reason.slice('CancelRequested by '.length);
    expect(asked.jobStatus).toBe('running');
    await d.kill9();
    await eventually(() => existsSync(join(runDir(d.stateDir), `${ack.jobId}.exit`)), 'the job ended while the daemon was down', 15_000);

    const d2 = await start(d.stateDir, config);
    expect(await waitForEnd(d2, ack.jobId)).toMatchObject({ jobStatus: 'cancelled', reason: `Cancelled by ${requester}` });
  });

  it('D6: daemon and supervisor both killed -> NODE_FAIL with a reason; the job processes are killed and the cgroup removed', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d6');
    const ack = await submit(d, jobRequest(dir, 'd6', `echo $$ > ${dir}/pid; exec sleep 300`));
    await waitForJob(d, ack.jobId, isRunning);
    await eventually(() => existsSync(join(dir, 'pid')) && readFileSync(join(dir, 'pid'), 'utf8').endsWith('\n'), 'job wrote its pid');
    const jobPid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    const sup = readSupervisorRecord(d.stateDir, ack.jobId);
    await d.kill9();
    process.kill(sup.supervisorPid, 'SIGKILL');
    await eventually(() => !processIsAlive(sup.supervisorPid, sup.supervisorStartTicks), 'supervisor gone');
    expect(pidAlive(jobPid), 'the job outlives its supervisor').toBe(true);
    expect(jobCgroupDirs(d.stateDir, ack.jobId).length).toBeGreaterThan(0);

    const d2 = await start(d.stateDir);
    const job = await waitForEnd(d2, ack.jobId);
    expect(job.jobStatus).toBe('node_fail');
    expect(job.reason).toMatch(/^NodeFail: .*supervisor/);
    await eventually(() => !pidAlive(jobPid), 'job process killed');
    await eventually(() => jobCgroupDirs(d.stateDir, ack.jobId).length === 0, 'job cgroups removed');
  });

  it('D7: a supervisor record whose pid now belongs to another process -> NODE_FAIL, and that process is not signalled', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d7');
    const acks = await Promise.all(['a', 'b'].map((n) => submit(d, jobRequest(dir, `d7-${n}`, `echo $$ > ${dir}/pid-$HPCQ_JOB_ID; exec sleep 300`))));
    await Promise.all(acks.map((a) => waitForJob(d, a.jobId, isRunning)));
    await eventually(() => acks.every((a) => existsSync(join(dir, `pid-${a.jobId}`))), 'jobs wrote their pids');
    const sups = acks.map((a) => readSupervisorRecord(d.stateDir, a.jobId));
    await d.kill9();
    // The job and its supervisor end while the daemon is down, without an exit file...
    for (const sup of sups) process.kill(sup.supervisorPid, 'SIGKILL');
    for (const a of acks) process.kill(Number(readFileSync(join(dir, `pid-${a.jobId}`), 'utf8')), 'SIGKILL');
    await eventually(() => sups.every((s) => !processIsAlive(s.supervisorPid, s.supervisorStartTicks)), 'supervisors gone');
    // ...and the recorded pid now belongs to an unrelated process: started later (job a), or in another boot (job b).
    const impostor = spawn('sleep', ['600'], { stdio: 'ignore' });
    children.push(impostor);
    const ticks = processStartTicks(impostor.pid!)!;
    const run = runDir(d.stateDir);
    writeFileSync(join(run, `${acks[0]!.jobId}.sup`), `supervisor_pid=${impostor.pid}\nsupervisor_start_ticks=${ticks + 12345}\nboot_id=${currentBootId()}\n`);
    writeFileSync(join(run, `${acks[1]!.jobId}.sup`), `supervisor_pid=${impostor.pid}\nsupervisor_start_ticks=${ticks}\nboot_id=00000000-0000-4000-8000-000000000000\n`);

    const d2 = await start(d.stateDir);
    const [a, b] = await Promise.all(acks.map((ack) => waitForEnd(d2, ack.jobId)));
    expect(a!.jobStatus).toBe('node_fail');
    expect(a!.reason).toMatch(/^NodeFail: the job supervisor ended without recording an exit status/);
    expect(b!.jobStatus).toBe('node_fail');
    expect(b!.reason).toMatch(/^NodeFail: the node rebooted/);
    // Cleanup of both jobs (cgroups released, run files removed) is over once the files are gone.
    await eventually(() => jobRunFiles(run).length === 0, 'run files removed');
    expect(impostor.exitCode).toBe(null);
    expect(impostor.signalCode).toBe(null);
    expect(processIsAlive(impostor.pid!, ticks)).toBe(true);
    expect(readFileSync(`/proc/${impostor.pid}/stat`, 'utf8')).toMatch(/\) S /);
  });

  it('does not apply again the run files of a job whose outcome was stored before the daemon died', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-stale-exit');
    const ack = await submit(d, jobRequest(dir, 'done', recorded(dir, 'exit 0')));
    const done = await waitForEnd(d, ack.jobId);
    expect(done.jobStatus).toBe('completed');
    await d.kill9();
    // As if killed between storing COMPLETED and removing the run files (with a different story).
    const run = runDir(d.stateDir);
    writeFileSync(join(run, `${ack.jobId}.sup`), `supervisor_pid=1\nsupervisor_start_ticks=1\nboot_id=${currentBootId()}\n`);
    writeFileSync(
      join(run, `${ack.jobId}.exit`),
      'status=exited\nexit_code=99\nsignal=0\ntimed_out=0\ncancelled=0\njob_pid=1\nstart_ms=0\nend_ms=0\nutime_us=0\nstime_us=0\nmaxrss_kb=0\n',
    );

    const d2 = await start(d.stateDir);
    expect(jobRunFiles(run)).toEqual([]);
    expect(await getJob(d2, ack.jobId)).toEqual(done);
    expectRanOnce(dir, [ack.jobId]);
  });

  it('never starts a job twice across the RUNNING write-ahead window: a job stored RUNNING without a supervisor runs once', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-window');
    // hpcq-debug runs one job at a time: the blocker keeps `waiting` PENDING.
    const blocker = await submit(d, jobRequest(dir, 'blocker', 'exec sleep 300', { hpcqueueId: 'hpcq-debug' }));
    const blockerJob = await waitForJob(d, blocker.jobId, isRunning);
    const waiting = await submit(d, jobRequest(dir, 'waiting', recorded(dir, 'exit 4'), { hpcqueueId: 'hpcq-debug' }));
    expect(await d.stop()).toBe(0);
    // The daemon died right after storing RUNNING, before spawning the supervisor.
    await markRunningWithoutSupervisor(d.stateDir, waiting.jobId, blockerJob.enforcement as DomainJob['enforcement']);

    const d2 = await start(d.stateDir);
    expect(d2.output()).toContain('it never ran, launching it now');
    const job = await waitForEnd(d2, waiting.jobId);
    expect(job).toMatchObject({ jobStatus: 'failed', exitCode: 4 });
    expectRanOnce(dir, [waiting.jobId]);
    await cancelJob(d2, blocker.jobId);
    expect((await waitForEnd(d2, blocker.jobId)).jobStatus).toBe('cancelled');
  });

  it('a job stored RUNNING without a supervisor in an earlier boot is NODE_FAIL, not launched: its .sup may have been lost', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-window-boot');
    const blocker = await submit(d, jobRequest(dir, 'blocker', 'exec sleep 300', { hpcqueueId: 'hpcq-debug' }));
    const blockerJob = await waitForJob(d, blocker.jobId, isRunning);
    const waiting = await submit(d, jobRequest(dir, 'waiting', recorded(dir, 'exit 4'), { hpcqueueId: 'hpcq-debug' }));
    expect(await d.stop()).toBe(0);
    await markRunningWithoutSupervisor(d.stateDir, waiting.jobId, blockerJob.enforcement as DomainJob['enforcement']);
    // As if the node crashed (run files are not synced) and booted again since the daemon's last start.
    const marker = join(runDir(d.stateDir), 'daemon-boot');
    expect(readFileSync(marker, 'utf8').trim()).toBe(currentBootId());
    writeFileSync(marker, '00000000-0000-4000-8000-000000000000\n');

    const d2 = await start(d.stateDir);
    const job = await waitForEnd(d2, waiting.jobId);
    expect(job.jobStatus).toBe('node_fail');
    expect(job.reason).toMatch(/^NodeFail: the node restarted after the job was marked running/);
    expect(linesOf(join(dir, 'runs'))).toEqual([]);
    await eventually(() => readFileSync(marker, 'utf8').trim() === currentBootId(), 'boot marker brought up to date');
    await cancelJob(d2, blocker.jobId);
    await waitForEnd(d2, blocker.jobId);
  });

  it('never starts a job twice across the RUNNING write-ahead window: a supervisor still starting is waited for, not replaced', async () => {
    if (!canRunJobs()) return;
    // Named like the real one: the daemon looks for supervisors by name first.
    const bin = join(await mkdtemp(join(tmpdir(), 'hpcq-fake-sup-')), 'hpcq-supervisor');
    try {
      execFileSync('cc', ['-O2', '-o', bin, join(import.meta.dirname, '..', 'fixtures', 'supervisor-slow-to-start.c')]);
      const d = await start();
      const dir = makeJobUserDir('hpcq-window');
      const blocker = await submit(d, jobRequest(dir, 'blocker', 'exec sleep 300', { hpcqueueId: 'hpcq-debug' }));
      const blockerJob = await waitForJob(d, blocker.jobId, isRunning);
      const waiting = await submit(d, jobRequest(dir, 'waiting', recorded(dir, 'exit 4'), { hpcqueueId: 'hpcq-debug' }));
      expect(await d.stop()).toBe(0);
      await markRunningWithoutSupervisor(d.stateDir, waiting.jobId, blockerJob.enforcement as DomainJob['enforcement']);
      // The supervisor was spawned just before the daemon died and has not written its .sup yet;
      // it records exit code 9 for a job it never really runs.
      const fake = spawn(bin, ['--job-id', waiting.jobId, '--run-dir', runDir(d.stateDir), '5000', '9'], { stdio: 'ignore' });
      children.push(fake);

      const d2 = await start(d.stateDir);
      expect(d2.output()).toContain('re-attached to a job supervisor that was still starting');
      const job = await waitForEnd(d2, waiting.jobId);
      expect(job).toMatchObject({ jobStatus: 'failed', exitCode: 9 });
      expect(linesOf(join(dir, 'runs')), 'the job was not launched a second time').toEqual([]);
      await cancelJob(d2, blocker.jobId);
      await waitForEnd(d2, blocker.jobId);
    } finally {
      await rm(join(bin, '..'), { recursive: true, force: true });
    }
  });
});

describe('state directory faults', () => {
  it('D8: a second daemon on the same state directory exits non-zero naming the lock; the first keeps serving', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d8');
    const before = await submit(d, jobRequest(dir, 'before', recorded(dir, 'exit 0')));
    const levelLog = join(databaseDir(d.stateDir), 'LOG');
    const levelLogInode = statSync(levelLog).ino;
    const second = await expectStartFails(d.stateDir);
    expect(second.code).not.toBe(0);
    expect(second.output).toMatch(new RegExp(`another hpcqd \\(pid ${d.proc.pid}\\) is using the state directory`));
    expect(second.output).toMatch(/lock/i);
    // It stopped before opening the database: LevelDB's LOG of the first was not rotated.
    expect(statSync(levelLog).ino).toBe(levelLogInode);
    expect(existsSync(`${levelLog}.old`)).toBe(false);

    expect((await waitForEnd(d, before.jobId)).jobStatus).toBe('completed');
    const after = await submit(d, jobRequest(dir, 'after', recorded(dir, 'exit 0')));
    expect((await waitForEnd(d, after.jobId)).jobStatus).toBe('completed');
    expectRanOnce(dir, [before.jobId, after.jobId]);
  });

  it('D12: a corrupt job record is quarantined and reported; the daemon starts and the other jobs load', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d12');
    const finished = await submit(d, jobRequest(dir, 'finished', recorded(dir, 'exit 0')));
    await waitForEnd(d, finished.jobId);
    const blocker = await submit(d, jobRequest(dir, 'blocker', 'exec sleep 300', { hpcqueueId: 'hpcq-debug' }));
    await waitForJob(d, blocker.jobId, isRunning);
    const corrupt = await submit(d, jobRequest(dir, 'corrupt', recorded(dir, 'exit 0'), { hpcqueueId: 'hpcq-debug' }));
    const healthy = await submit(d, jobRequest(dir, 'healthy', recorded(dir, 'exit 0'), { hpcqueueId: 'hpcq-debug' }));
    expect(await d.stop()).toBe(0);
    await withRawDb(databaseDir(d.stateDir), async (db) => {
      await db.put(jobKey(Number(corrupt.jobId)), '{"v":1,"id":' + corrupt.jobId + ',"state":"PEND');
      await db.put(jobKey(Number(finished.jobId)), 'not json at all');
    });

    const d2 = await start(d.stateDir);
    expect(d2.output()).toMatch(/could not be decoded; moved to quarantine/);
    expect(d2.output()).toContain(jobKey(Number(corrupt.jobId)));
    expect(await rejection(getJob(d2, corrupt.jobId))).toMatchObject({ code: status.NOT_FOUND, reason: 'ResourceNotFound.Job' });
    const unreadable = await rejection(getJob(d2, finished.jobId));
    expect(unreadable.code).toBe(status.INTERNAL);
    expect(unreadable.message).toContain('cannot be decoded');
    expect((await getJob(d2, blocker.jobId)).jobStatus).toBe('running');
    expect((await getJob(d2, healthy.jobId)).jobStatus).toBe('pending');
    const listed = (await listAllJobs(d2)).map((j) => j.jobId).sort();
    expect(listed).toEqual([blocker.jobId, healthy.jobId].sort());

    await cancelJob(d2, blocker.jobId);
    expect((await waitForEnd(d2, healthy.jobId)).jobStatus).toBe('completed');
    expectRanOnce(dir, [finished.jobId, healthy.jobId]);
    expect(await d2.stop()).toBe(0);
    // Quarantined, not lost: the damaged value is kept aside.
    const kept = await withRawDb(databaseDir(d.stateDir), (db) => db.get(`quarantine/${jobKey(Number(corrupt.jobId))}`));
    expect(kept).toContain('"state":"PEND');
  });

  it.each(['CURRENT', 'MANIFEST'])('D11b: an unreadable database (%s garbled) stops the daemon with an actionable message and is left as it was', async (file) => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-d11');
    const ack = await submit(d, jobRequest(dir, 'd11', recorded(dir, 'exit 0')));
    await waitForEnd(d, ack.jobId);
    expect(await d.stop()).toBe(0);
    const db = databaseDir(d.stateDir);
    if (file === 'CURRENT') {
      writeFileSync(join(db, 'CURRENT'), 'MANIFEST-garbage\n');
    } else {
      const manifest = readdirSync(db).find((f) => f.startsWith('MANIFEST-'))!;
      const bytes = readFileSync(join(db, manifest));
      for (let i = 7; i < bytes.length; i++) bytes[i] = 0xa5;
      writeFileSync(join(db, manifest), bytes);
    }
    // LevelDB's own LOG is rotated by every open attempt; the data files must stay untouched.
    const dataFiles = () =>
      readdirSync(db)
        .filter((f) => !f.startsWith('LOG'))
        .sort()
        .map((f) => `${f}:${statSync(join(db, f)).size}:${readFileSync(join(db, f)).toString('base64')}`);
    const before = dataFiles();

    const failed = await expectStartFails(d.stateDir);
    expect(failed.code).not.toBe(0);
    expect(failed.output).toMatch(/the job database in .* is damaged or is not an hpcq database/);
    expect(failed.output).toMatch(/will not start over it with an empty queue/);
    expect(failed.output).toMatch(/Restore the directory from a backup/);
    expect(dataFiles()).toEqual(before);
  });
});

describe('graceful stop', () => {
  it('SIGTERM while jobs run: exits 0, the jobs keep running under their supervisors, and a restart re-attaches them', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-term');
    const codes = [21, 22, 23];
    const acks = await Promise.all(codes.map((code) => submit(d, jobRequest(dir, `term-${code}`, recorded(dir, `sleep 3; exit ${code}`)))));
    await Promise.all(acks.map((a) => waitForJob(d, a.jobId, isRunning)));
    await eventually(() => linesOf(join(dir, 'runs')).length === codes.length, 'all jobs started');
    // A watcher must not hold up the shutdown: it is ended with UNAVAILABLE.
    const watch = waitForEnd(d, acks[0]!.jobId).catch((e: { code: number }) => e);
    expect(await d.stop()).toBe(0);
    expect(await watch).toMatchObject({ code: status.UNAVAILABLE });
    expect(d.output()).toContain('hpcqd stopped');

    const d2 = await start(d.stateDir);
    const ends = await Promise.all(acks.map((a) => waitForEnd(d2, a.jobId)));
    ends.forEach((job, i) => expect({ status: job.jobStatus, exitCode: job.exitCode, signal: job.termSignal }).toEqual({ status: 'failed', exitCode: codes[i], signal: 0 }));
    expectRanOnce(dir, acks.map((a) => a.jobId));
  });

  it('SIGTERM while jobs are being launched: every job runs exactly once after the restart', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-term-launch');
    const acks: SubmitJobResponse[] = await Promise.all(
      Array.from({ length: 8 }, (_, i) => submit(d, jobRequest(dir, `launch-${i}`, recorded(dir, `exit ${i}`)))),
    );
    expect(await d.stop()).toBe(0);

    const d2 = await start(d.stateDir);
    const ends = await Promise.all(acks.map((a) => waitForEnd(d2, a.jobId)));
    ends.forEach((job, i) => expect({ status: job.jobStatus, exitCode: job.exitCode }).toEqual({ status: i === 0 ? 'completed' : 'failed', exitCode: i }));
    expectRanOnce(dir, acks.map((a) => a.jobId));
  });
});

describe('retention', () => {
  const RETENTION = `${CONFIG}
retention:
  finished_job_max_age_days: 1
  schedule: '* * * * * *'
`;

  it('purges finished jobs older than finished_job_max_age_days with their events, indexes and tokens; keeps recent and active ones', async () => {
    if (!canRunJobs()) return;
    const d = await start();
    const dir = makeJobUserDir('hpcq-retention');
    const recent = await submit(d, jobRequest(dir, 'recent', 'exit 0', { clientToken: 'recent' }));
    await waitForEnd(d, recent.jobId);
    const active = await submit(d, jobRequest(dir, 'active', 'exec sleep 300'));
    await waitForJob(d, active.jobId, isRunning);
    expect(await d.stop()).toBe(0);

    // Jobs that ended 3 days (purged) and 12 hours (kept) ago, written as the daemon writes them.
    const DAY = 86_400_000;
    const now = Date.now();
    const store = new LevelJobStore({ location: databaseDir(d.stateDir) });
    await store.open();
    const old: DomainJob[] = [];
    let youngish: DomainJob;
    try {
      const template = (await store.getJob(Number(recent.jobId)))!;
      const make = async (name: string, endedAt: number, path: DomainJobState[]): Promise<DomainJob> => {
        let job = (await store.createJob({ ...template, name, clientToken: name }, `fp-${name}`, endedAt - 1000, '')).job;
        for (const to of path) {
          const t = transition(job, to, '', endedAt);
          await store.saveTransitions([{ job: t.job, previousState: job.state, event: t.event }]);
          job = t.job;
        }
        return job;
      };
      old.push(await make('old-completed', now - 3 * DAY, ['RUNNING', 'COMPLETED']));
      old.push(await make('old-failed', now - 3 * DAY, ['RUNNING', 'FAILED']));
      old.push(await make('old-cancelled', now - 2 * DAY, ['CANCELLED']));
      youngish = await make('youngish', now - DAY / 2, ['RUNNING', 'COMPLETED']);
    } finally {
      await store.close();
    }

    const d2 = await start(d.stateDir, RETENTION);
    await waitForOutput(d2, /"purged":3,.*purged finished jobs/);
    for (const job of old) {
      await expect(getJob(d2, String(job.id))).rejects.toMatchObject({ code: status.NOT_FOUND });
    }
    expect((await getJob(d2, recent.jobId)).jobStatus).toBe('completed');
    expect((await getJob(d2, String(youngish.id))).jobStatus).toBe('completed');
    expect((await getJob(d2, active.jobId)).jobStatus).toBe('running');
    // The token of a purged job is free again: a new submit with it creates a new job.
    const reused = await submit(d2, jobRequest(dir, 'old-completed', 'exit 0', { clientToken: 'old-completed' }));
    expect(Number(reused.jobId)).toBeGreaterThan(youngish.id);
    await waitForEnd(d2, reused.jobId);
    await cancelJob(d2, active.jobId);
    await waitForEnd(d2, active.jobId);
    expect(await d2.stop()).toBe(0);

    const location = databaseDir(d.stateDir);
    for (const job of old) {
      const left = await keysOfJob(location, job.id, job.uuid, job.name === 'old-completed' ? undefined : { runUser: job.runUser, clientToken: job.clientToken });
      expect(left, `keys left of purged job ${job.id}`).toEqual([]);
    }
    expect((await keysOfJob(location, Number(recent.jobId), recent.hpcjobUuid)).length).toBeGreaterThan(0);
    expect(await consistencyProblems(location)).toEqual([]);
  });
});
