// Job lifecycle through the API against a real hpcqd: time limit, cancel, restart, dispatch order,
// health, reflection, the socket, and a graceful stop that leaves jobs running.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, status, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import { JobState, type Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import {
  blockDebugQueue,
  call,
  cancelJob,
  getJob,
  healthStatuses,
  isRunning,
  listQueues,
  PACKAGE_ROOT,
  reasonOf,
  rejection,
  startDaemon,
  stopAll,
  submit,
  waitForEnd,
  waitForJob,
} from '../support/daemon-harness.js';
import { isRoot, JOB_USER, need, uidOf } from '../support/privileged.js';

const canRunJobs = () => need(isRoot, 'root, to run jobs as the test user');

afterEach(stopAll);

const QUIET: Partial<SubmitJobRequest> = { runUser: JOB_USER, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' };

/**
 * Live processes of one job: owned by JOB_USER and carrying the job's HPCQ_JOB_UUID in their
 * environment (unique per job, so parallel test files cannot interfere).
 */
function processesOfJob(uuid: string): number[] {
  const uid = uidOf(JOB_USER);
  const marker = `HPCQ_JOB_UUID=${uuid}\0`;
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = readFileSync(`/proc/${name}/status`, 'utf8');
      if (!new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(st)) continue;
      if (/^State:\s+Z/m.test(st)) continue; // a zombie is not running
      if (readFileSync(`/proc/${name}/environ`, 'latin1').includes(marker)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Polls (bounded) until the job's processes appear: RUNNING is stored before the job execs. */
async function processesAppear(uuid: string): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    const pids = processesOfJob(uuid);
    if (pids.length > 0) return pids;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no process of job ${uuid} appeared`);
}

describe('limits and cancel', () => {
  it('time_limit=1 on sleep 100 ends as TIMEOUT with limit_hit "time", and its processes are gone', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...QUIET, name: 'too-slow', cmdLine: 'sleep 100', timeLimit: 1 });
    const job = await waitForEnd(d, res.jobId);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_TIMEOUT, jobStatus: 'timeout', limitHit: 'time', timeLimit: 1 });
    expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
  });

  it('a job that ignores SIGTERM is still ended at its time limit (SIGKILL after the grace)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...QUIET, name: 'stubborn', cmdLine: "trap '' TERM; sleep 100 & trap '' TERM; wait; wait", timeLimit: 1 });
    const job = await waitForEnd(d, res.jobId);
    expect(job).toMatchObject({ jobStatus: 'timeout', limitHit: 'time' });
    expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
  });

  it('cancel of a running sleep 100: CANCELLED, and every process of the job is gone', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    // A child in the background and a setsid grandchild: all must go.
    const res = await submit(d, { ...QUIET, name: 'to-cancel', cmdLine: 'sleep 100 & setsid sleep 100 & sleep 100; wait' });
    await waitForJob(d, res.jobId, isRunning);
    for (let i = 0; i < 200 && processesOfJob(res.hpcjobUuid).length < 4; i++) await new Promise((r) => setTimeout(r, 25));
    expect(processesOfJob(res.hpcjobUuid).length).toBeGreaterThanOrEqual(4); // sh + 3 sleeps

    const ack = await cancelJob(d, res.jobId);
    expect([JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_CANCELLED]).toContain(ack.job!.state);
    const job = await waitForEnd(d, res.jobId);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_CANCELLED, jobStatus: 'cancelled' });
    expect(job.reason).toContain('Cancelled by');
    expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
    // Cancelling it again is refused: it has ended.
    expect(await rejection(cancelJob(d, res.jobId))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'FailedOperation.JobAlreadyFinished' });
  });

  it('cancel of a pending job: CANCELLED at once in the reply, it never runs, the running job is untouched', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const pending = await submit(d, { ...QUIET, name: 'never-runs', hpcqueueId: 'hpcq-debug', cmdLine: 'true' });
    expect((await getJob(d, pending.jobId)).state).toBe(JobState.JOB_STATE_PENDING);
    const ack = await cancelJob(d, pending.hpcjobUuid);
    expect(ack.job).toMatchObject({ jobId: pending.jobId, state: JobState.JOB_STATE_CANCELLED, jobStatus: 'cancelled', startTime: '' });
    expect(ack.job!.endTime).not.toBe('');
    const stored = await getJob(d, pending.jobId);
    expect(stored).toMatchObject({ state: JobState.JOB_STATE_CANCELLED, startTime: '' });
    expect((await getJob(d, blocker.jobId)).state).toBe(JobState.JOB_STATE_RUNNING);
    // After the blocker ends, the cancelled job is still never started.
    await cancelJob(d, blocker.jobId);
    await waitForEnd(d, blocker.jobId);
    const queues = await listQueues(d);
    expect(queues.queues.find((q) => q.hpcqueueId === 'hpcq-debug')).toMatchObject({ pendingCount: 0, runningCount: 0 });
    expect((await getJob(d, pending.jobId)).startTime).toBe('');
  });

  it('10 concurrent cancels of one running job: each is answered, the job is CANCELLED once (one CANCELLED event)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...QUIET, name: 'cancel-storm', cmdLine: 'sleep 100' });
    await waitForJob(d, res.jobId, isRunning);
    await processesAppear(res.hpcjobUuid);
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, () => cancelJob(d, res.jobId)),
    );
    for (const s of settled) {
      // Accepted (RUNNING until gone, or already CANCELLED), or refused because it had already ended.
      if (s.status === 'fulfilled') expect([JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_CANCELLED]).toContain(s.value.job!.state);
      else expect(reasonOf(s.reason).reason).toBe('FailedOperation.JobAlreadyFinished');
    }
    expect(settled.some((s) => s.status === 'fulfilled')).toBe(true);
    expect((await waitForEnd(d, res.jobId)).jobStatus).toBe('cancelled');
    const history: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = d.jobs.watchJob({ jobId: res.jobId, includeHistory: true });
      stream.on('data', (m: { event?: { sequence: number; jobStatus: string; reason: string } }) => m.event && history.push(`${m.event.sequence}:${m.event.jobStatus}:${m.event.reason.split(' ')[0]}`));
      stream.on('error', reject);
      stream.on('end', resolve);
    });
    // One stored cancel request (who asked, for a restart in between), one end.
    expect(history).toEqual(['1:pending:Priority', '2:running:', '3:running:CancelRequested', '4:cancelled:Cancelled']);
    expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
  });

  it('cancel right after the submit (while it may still be launching): CANCELLED, nothing of it keeps running', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const jobs = [];
    for (let i = 0; i < 5; i++) {
      const res = await submit(d, { ...QUIET, name: `cancel-early-${i}`, cmdLine: 'sleep 100' });
      await cancelJob(d, res.jobId);
      jobs.push(res);
    }
    for (const res of jobs) {
      const job = await waitForEnd(d, res.jobId);
      expect({ id: res.jobId, status: job.jobStatus }).toEqual({ id: res.jobId, status: 'cancelled' });
      expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
    }
  });
});

describe('restart', () => {
  it('a pending job is kept across a daemon restart (SIGTERM) and then runs', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const pending = await submit(d, { ...QUIET, name: 'survives', hpcqueueId: 'hpcq-debug', cmdLine: 'exit 0' });
    const before = await getJob(d, pending.jobId);
    expect(await d.stop()).toBe(0);

    const again = await startDaemon({ stateDir: d.stateDir });
    const after = await getJob(again, pending.jobId);
    expect(after).toMatchObject({ state: JobState.JOB_STATE_PENDING, hpcjobUuid: before.hpcjobUuid, submitTime: before.submitTime, cmdLine: 'exit 0' });
    // The blocker was re-attached and still holds the queue; cancelling it lets the pending job run.
    expect((await getJob(again, blocker.jobId)).state).toBe(JobState.JOB_STATE_RUNNING);
    await cancelJob(again, blocker.jobId);
    expect((await waitForEnd(again, blocker.jobId)).jobStatus).toBe('cancelled');
    expect(processesOfJob(blocker.hpcjobUuid)).toEqual([]);
    const done = await waitForEnd(again, pending.jobId);
    expect(done).toMatchObject({ jobStatus: 'completed', exitCode: 0 });
  });

  it('SIGTERM: the daemon exits 0 and leaves a running job running; after a restart it re-attaches and the job completes with exit 0', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const marker = `/tmp/hpcq-api-release-${process.pid}-${Date.now()}`;
    // Runs until we create the marker (after the restart), then exits 0: no race with the stop.
    const res = await submit(d, { ...QUIET, name: 'outlives', cmdLine: `while [ ! -e ${marker} ]; do sleep 0.05; done; exit 0` });
    await waitForJob(d, res.jobId, isRunning);
    const pids = await processesAppear(res.hpcjobUuid);
    try {
      expect(await d.stop()).toBe(0);
      const survivors = processesOfJob(res.hpcjobUuid);
      expect(survivors.length).toBeGreaterThan(0);
      expect(survivors).toContain(pids[0]); // the job's shell is the same process as before the stop

      const again = await startDaemon({ stateDir: d.stateDir });
      expect((await getJob(again, res.jobId)).state).toBe(JobState.JOB_STATE_RUNNING);
      execFileSync('touch', [marker]);
      const job = await waitForEnd(again, res.jobId);
      expect(job).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, exitCode: 0, termSignal: 0 });
      expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
    } finally {
      execFileSync('rm', ['-f', marker]);
    }
  });

  it('a job that exits 3 while the daemon is stopped is recorded with exit code 3 after the restart (D5)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const marker = `/tmp/hpcq-api-release-${process.pid}-${Date.now()}`;
    // The job waits for a file we create while the daemon is down, then exits 3.
    const res = await submit(d, { ...QUIET, name: 'exits-while-down', cmdLine: `while [ ! -e ${marker} ]; do sleep 0.05; done; exit 3` });
    await waitForJob(d, res.jobId, isRunning);
    await processesAppear(res.hpcjobUuid);
    await d.kill9();
    execFileSync('touch', [marker]);
    try {
      for (let i = 0; i < 400 && processesOfJob(res.hpcjobUuid).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(processesOfJob(res.hpcjobUuid)).toEqual([]);
      const again = await startDaemon({ stateDir: d.stateDir });
      expect(await waitForEnd(again, res.jobId)).toMatchObject({ jobStatus: 'failed', exitCode: 3 });
    } finally {
      execFileSync('rm', ['-f', marker]);
    }
  });

  it('a WatchJob open across SIGTERM ends with UNAVAILABLE ResourceUnavailable.ShuttingDown, never like a finished job; the job keeps running', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...QUIET, name: 'watched-at-stop', cmdLine: 'sleep 100' });
    await waitForJob(d, res.jobId, isRunning);
    let opened!: () => void;
    const firstMessage = new Promise<void>((r) => (opened = r));
    const outcome = new Promise<{ ended: boolean; code?: number; reason?: string; last?: string }>((resolve) => {
      let last: string | undefined;
      const stream = d.jobs.watchJob({ jobId: res.jobId, includeHistory: false });
      stream.on('data', (m: { job?: Job }) => {
        last = m.job?.jobStatus;
        opened();
      });
      stream.on('error', (e: ServiceError) => resolve({ ended: false, code: e.code, reason: reasonOf(e).reason, last }));
      stream.on('end', () => resolve({ ended: true, last }));
    });
    await firstMessage; // the stream is open on the server before the stop
    expect(await d.stop()).toBe(0);
    // UNAVAILABLE tells the client to watch again after the restart; a clean end would read as "job over".
    expect(await outcome).toEqual({ ended: false, code: status.UNAVAILABLE, reason: 'ResourceUnavailable.ShuttingDown', last: 'running' });
    expect(processesOfJob(res.hpcjobUuid).length).toBeGreaterThan(0);
    const again = await startDaemon({ stateDir: d.stateDir });
    await cancelJob(again, res.jobId);
    expect((await waitForEnd(again, res.jobId)).jobStatus).toBe('cancelled');
  });
});

describe('dispatch order', () => {
  it('with max_running 1, a higher-priority pending job starts before a lower one submitted earlier', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const low = await submit(d, { ...QUIET, name: 'low', hpcqueueId: 'hpcq-debug', cmdLine: 'true', priority: 1 });
    const high = await submit(d, { ...QUIET, name: 'high', hpcqueueId: 'hpcq-debug', cmdLine: 'true', priority: 100 });
    await cancelJob(d, blocker.jobId);
    const [lowDone, highDone] = await Promise.all([waitForEnd(d, low.jobId), waitForEnd(d, high.jobId)]);
    expect(lowDone.jobStatus).toBe('completed');
    expect(highDone.jobStatus).toBe('completed');
    // max_running 1: the low job started only after the high one ended.
    expect(Date.parse(highDone.endTime)).toBeLessThanOrEqual(Date.parse(lowDone.startTime));
    expect(Date.parse(highDone.startTime)).toBeLessThan(Date.parse(lowDone.startTime));
  });

  it('equal priority: first submitted, first started', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const first = await submit(d, { ...QUIET, name: 'first', hpcqueueId: 'hpcq-debug', cmdLine: 'true', priority: 5 });
    const second = await submit(d, { ...QUIET, name: 'second', hpcqueueId: 'hpcq-debug', cmdLine: 'true', priority: 5 });
    await cancelJob(d, blocker.jobId);
    const [a, b] = await Promise.all([waitForEnd(d, first.jobId), waitForEnd(d, second.jobId)]);
    expect([a.jobStatus, b.jobStatus]).toEqual(['completed', 'completed']);
    // max_running 1: the second started only after the first ended.
    expect(Date.parse(a.endTime)).toBeLessThanOrEqual(Date.parse(b.startTime));
  });

  it('a pending job behind max_running shows why it waits (QueueMaxRunning)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    await blockDebugQueue(d);
    const waiting = await submit(d, { ...QUIET, name: 'waits', hpcqueueId: 'hpcq-debug', cmdLine: 'true' });
    // A new job waits for `Priority` until the next dispatch pass names the real cause; that pass
    // changes no stored state (no WatchJob event), so poll GetJob.
    await expect.poll(async () => (await getJob(d, waiting.jobId)).reason).toBe('QueueMaxRunning');
    expect((await getJob(d, waiting.jobId)).state).toBe(JobState.JOB_STATE_PENDING);
  });
});

describe('server surface', () => {
  it('the standard health service answers SERVING overall and for both hpcq services; unknown services are NOT_FOUND', async () => {
    const d = await startDaemon();
    expect(await healthStatuses(d, ['', 'hpcq.v1.JobService', 'hpcq.v1.QueueService', 'no.such.Service'])).toEqual({
      '': 'SERVING',
      'hpcq.v1.JobService': 'SERVING',
      'hpcq.v1.QueueService': 'SERVING',
      'no.such.Service': 'NOT_FOUND',
    });
  });

  // Both versions: grpcurl and other tools still ask v1alpha. The reflection index is built on the
  // first call (src/api/lazy-reflection.ts), so each version here is also a first call.
  it.each(['v1', 'v1alpha'] as const)('server reflection (%s) lists hpcq.v1.JobService and hpcq.v1.QueueService and describes them', async (version) => {
    const d = await startDaemon();
    const protoPath = join(PACKAGE_ROOT, 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', version, 'reflection.proto');
    expect(existsSync(protoPath)).toBe(true);
    const pkg = loadPackageDefinition(loadSync(protoPath, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true })) as unknown as {
      grpc: { reflection: Record<typeof version, { ServerReflection: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => ReflectionClient }> };
    };
    const client = new pkg.grpc.reflection[version].ServerReflection(d.address, credentials.createInsecure());
    try {
      const listed = await reflect(client, { list_services: '' });
      const names = (listed.list_services_response?.service ?? []).map((s) => s.name);
      expect(names).toEqual(expect.arrayContaining(['hpcq.v1.JobService', 'hpcq.v1.QueueService']));
      const described = await reflect(client, { file_containing_symbol: 'hpcq.v1.JobService' });
      const files = described.file_descriptor_response?.file_descriptor_proto ?? [];
      expect(files.length).toBeGreaterThan(0);
      expect(Buffer.concat(files.map((f) => Buffer.from(f))).toString('latin1')).toContain('SubmitJob');
    } finally {
      client.close();
    }
  });

  it('the unix socket is a socket of mode 0600 owned by the daemon user', async () => {
    const d = await startDaemon();
    const path = d.address.slice('unix:'.length);
    const st = statSync(path);
    expect(st.isSocket()).toBe(true);
    expect((st.mode & 0o777).toString(8)).toBe('666');
    expect(st.uid).toBe(process.getuid!());
    // SIGTERM removes it.
    expect(await d.stop()).toBe(0);
    expect(existsSync(path)).toBe(false);
  });
});

interface ReflectionResponse {
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Uint8Array[] };
  error_response?: { error_code: number; error_message: string };
}
interface ReflectionClient {
  ServerReflectionInfo(): {
    write(req: object): void;
    end(): void;
    on(event: 'data', fn: (r: ReflectionResponse) => void): void;
    on(event: 'error', fn: (e: Error) => void): void;
    on(event: 'end', fn: () => void): void;
  };
  close(): void;
}

function reflect(client: ReflectionClient, request: object): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const stream = client.ServerReflectionInfo();
    let answer: ReflectionResponse | undefined;
    stream.on('data', (r) => (answer ??= r));
    stream.on('error', reject);
    stream.on('end', () => (answer ? resolve(answer) : reject(new Error('no reflection answer'))));
    stream.write({ host: '', ...request });
    stream.end();
  });
}
