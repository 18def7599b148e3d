// WatchJob, ListJobs and GetJob against a real hpcqd: stream order and events, filters, paging, and
// what a stored job records.
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { JobState, type Job, type JobEvent } from '../../src/gen/hpcq/v1/job.js';
import type { ListJobsRequest, SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import {
  blockDebugQueue,
  cancelJob,
  getJob,
  isRunning,
  listJobs,
  listQueues,
  rejection,
  startDaemon,
  stopAll,
  submit,
  TWO_CLUSTER_CONFIG,
  waitForEnd,
  waitForJob,
  type DaemonHandle,
} from '../support/daemon-harness.js';
import { gidOf, isRoot, JOB_USER, need, OTHER_USER, uidOf } from '../support/privileged.js';

const canRunJobs = () => need(isRoot, 'root, to run jobs as the test users');

afterEach(stopAll);

/** Output directories owned by the job users (never the shared ~/hpcq-N.out of other test files). */
const outDirs: string[] = [];
afterAll(() => {
  for (const dir of outDirs) rmSync(dir, { recursive: true, force: true });
});
function outDirFor(user: string): string {
  const dir = mkdtempSync('/tmp/hpcq-api-watch-');
  chownSync(dir, uidOf(user), gidOf(user));
  outDirs.push(dir);
  return dir;
}

const quiet = (runUser = JOB_USER): Partial<SubmitJobRequest> => ({ runUser, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });

interface WatchMessage {
  job?: Job;
  event?: JobEvent;
}

/** Every message of a WatchJob stream until it ends (rejects on a stream error). */
function watchAll(d: DaemonHandle, jobId: string, includeHistory: boolean, onMessage?: (m: WatchMessage) => void): Promise<WatchMessage[]> {
  return new Promise((resolve, reject) => {
    const messages: WatchMessage[] = [];
    const stream = d.jobs.watchJob({ jobId, includeHistory });
    const timer = setTimeout(() => {
      stream.cancel();
      reject(new Error(`watch of job ${jobId} did not end; got ${JSON.stringify(messages.map(summary))}`));
    }, 30_000);
    stream.on('data', (m: WatchMessage) => {
      messages.push(m);
      onMessage?.(m);
    });
    stream.on('error', (e: ServiceError) => {
      clearTimeout(timer);
      reject(e);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve(messages);
    });
  });
}

const summary = (m: WatchMessage) => ({ job: m.job?.jobStatus, event: m.event ? `${m.event.sequence}:${m.event.jobStatus}` : undefined });

describe('WatchJob', () => {
  it('on a new job: first the current job without an event, then RUNNING, then COMPLETED with increasing sequence, then the end', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const target = await submit(d, { ...quiet(), name: 'watched', hpcqueueId: 'hpcq-debug', cmdLine: 'true' });
    let release: () => void;
    const first = new Promise<void>((r) => (release = r));
    const watched = watchAll(d, target.jobId, false, () => release());
    await first; // subscribed and saw the job as it is now: pending
    await cancelJob(d, blocker.jobId);
    const messages = await watched;

    expect(messages.map(summary)).toEqual([
      { job: 'pending', event: undefined },
      { job: 'running', event: '2:running' },
      { job: 'completed', event: '3:completed' },
    ]);
    expect(messages[0]!.event).toBeUndefined();
    expect(messages[0]!.job!.state).toBe(JobState.JOB_STATE_PENDING);
    const [running, completed] = [messages[1]!, messages[2]!];
    expect(running.event!.state).toBe(JobState.JOB_STATE_RUNNING);
    expect(completed.event!.state).toBe(JobState.JOB_STATE_COMPLETED);
    // Each message carries the job as of that event.
    expect(running.job!.startTime).not.toBe('');
    expect(running.job!.endTime).toBe('');
    expect(completed.job!.exitCode).toBe(0);
    expect(completed.event!.time).toBe(completed.job!.endTime);
    expect(running.event!.time).toBe(running.job!.startTime);
    expect(Date.parse(completed.event!.time)).toBeGreaterThanOrEqual(Date.parse(running.event!.time));
    for (const m of messages) expect(m.job!.jobId).toBe(target.jobId);
  });

  it('include_history on a finished job replays PENDING, RUNNING, COMPLETED after the current job, then ends', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...quiet(), name: 'history', cmdLine: 'true' });
    const final = await waitForEnd(d, res.jobId);
    const messages = await watchAll(d, res.hpcjobUuid, true);
    expect(messages.map(summary)).toEqual([
      { job: 'completed', event: undefined },
      { job: 'completed', event: '1:pending' },
      { job: 'completed', event: '2:running' },
      { job: 'completed', event: '3:completed' },
    ]);
    expect(messages.map((m) => m.event?.state)).toEqual([undefined, JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_COMPLETED]);
    expect(messages[1]!.event!.time).toBe(final.submitTime);
    expect(messages[2]!.event!.time).toBe(final.startTime);
    expect(messages[3]!.event!.time).toBe(final.endTime);
    expect(messages[3]!.event!.reason).toBe(final.reason);
    // Without history a finished job yields just itself.
    expect((await watchAll(d, res.jobId, false)).map(summary)).toEqual([{ job: 'completed', event: undefined }]);
  });

  it('include_history on a pending job: history, then live events, each sequence exactly once and in order', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const target = await submit(d, { ...quiet(), name: 'pending-history', hpcqueueId: 'hpcq-debug', cmdLine: 'exit 4' });
    let release: () => void;
    const seen = new Promise<void>((r) => (release = r));
    let count = 0;
    const watched = watchAll(d, target.jobId, true, () => ++count === 2 && release());
    await seen; // current job and the stored PENDING event
    await cancelJob(d, blocker.jobId);
    const messages = await watched;
    expect(messages.map(summary)).toEqual([
      { job: 'pending', event: undefined },
      { job: 'pending', event: '1:pending' },
      { job: 'running', event: '2:running' },
      { job: 'failed', event: '3:failed' },
    ]);
    expect(messages[3]!.job!.exitCode).toBe(4);
  });

  it('a cancelled pending job streams CANCELLED and ends; its history has no RUNNING', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    await blockDebugQueue(d);
    const target = await submit(d, { ...quiet(), name: 'cancel-watched', hpcqueueId: 'hpcq-debug', cmdLine: 'true' });
    let release: () => void;
    const first = new Promise<void>((r) => (release = r));
    const watched = watchAll(d, target.jobId, false, () => release());
    await first;
    await cancelJob(d, target.jobId);
    expect((await watched).map(summary)).toEqual([
      { job: 'pending', event: undefined },
      { job: 'cancelled', event: '2:cancelled' },
    ]);
    expect((await watchAll(d, target.jobId, true)).map(summary)).toEqual([
      { job: 'cancelled', event: undefined },
      { job: 'cancelled', event: '1:pending' },
      { job: 'cancelled', event: '2:cancelled' },
    ]);
  });

  it('several watchers of one job all see the same events', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await blockDebugQueue(d);
    const target = await submit(d, { ...quiet(), name: 'many-watchers', hpcqueueId: 'hpcq-debug', cmdLine: 'true' });
    const ready: Array<Promise<void>> = [];
    const watches = Array.from({ length: 5 }, () => {
      let release: () => void;
      ready.push(new Promise<void>((r) => (release = r)));
      return watchAll(d, target.jobId, false, () => release());
    });
    await Promise.all(ready);
    await cancelJob(d, blocker.jobId);
    for (const messages of await Promise.all(watches)) {
      expect(messages.map(summary)).toEqual([
        { job: 'pending', event: undefined },
        { job: 'running', event: '2:running' },
        { job: 'completed', event: '3:completed' },
      ]);
    }
  });
});

/** Two clusters; the queue name `normal` exists in both. */
describe('ListJobs', () => {
  it('filters by cluster_id, queue (id or name), states, run_user, and combinations; newest first', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon({ config: TWO_CLUSTER_CONFIG });
    const base = { clusterId: 'hpcq-test' };
    const j1 = await submit(d, { ...quiet(), ...base, name: 'j1', cmdLine: 'true' }); // normal, completed
    const j2 = await submit(d, { ...quiet(), ...base, name: 'j2', hpcqueueId: 'hpcq-debug', cmdLine: 'exit 3' }); // debug, failed
    const j3 = await submit(d, { ...quiet(OTHER_USER), clusterId: 'hpcq-second', name: 'j3', cmdLine: 'true' }); // second cluster, completed
    for (const j of [j1, j2, j3]) await waitForEnd(d, j.jobId);
    const j4 = await submit(d, { ...quiet(OTHER_USER), ...base, name: 'j4', cmdLine: 'sleep 100' }); // normal, running
    await waitForJob(d, j4.jobId, isRunning);
    const blocker = await submit(d, { ...quiet(), ...base, name: 'j5', hpcqueueId: 'hpcq-debug', cmdLine: 'sleep 100', timeLimit: 60 });
    await waitForJob(d, blocker.jobId, isRunning);
    const j6 = await submit(d, { ...quiet(), ...base, name: 'j6', schedulerQueueName: 'debug', cmdLine: 'true' }); // debug, pending

    const ids = async (req: Partial<ListJobsRequest>) => (await listJobs(d, req)).jobs.map((j) => j.name);
    const S = JobState;
    expect(await ids({})).toEqual(['j6', 'j5', 'j4', 'j3', 'j2', 'j1']);
    expect(await ids({ clusterId: 'hpcq-test' })).toEqual(['j6', 'j5', 'j4', 'j2', 'j1']);
    expect(await ids({ clusterId: 'hpcq-second' })).toEqual(['j3']);
    expect(await ids({ queue: 'hpcq-debug' })).toEqual(['j6', 'j5', 'j2']);
    expect(await ids({ queue: 'debug' })).toEqual(['j6', 'j5', 'j2']);
    expect(await ids({ queue: 'hpcq-normal' })).toEqual(['j4', 'j1']);
    expect(await ids({ queue: 'hpcq-second-normal' })).toEqual(['j3']);
    expect(await ids({ clusterId: 'hpcq-test', queue: 'normal' })).toEqual(['j4', 'j1']);
    expect(await ids({ clusterId: 'hpcq-second', queue: 'normal' })).toEqual(['j3']);
    expect(await ids({ states: [S.JOB_STATE_COMPLETED] })).toEqual(['j3', 'j1']);
    expect(await ids({ states: [S.JOB_STATE_FAILED, S.JOB_STATE_RUNNING] })).toEqual(['j5', 'j4', 'j2']);
    expect(await ids({ states: [S.JOB_STATE_PENDING, S.JOB_STATE_PENDING] })).toEqual(['j6']);
    expect(await ids({ states: [S.JOB_STATE_CANCELLED, S.JOB_STATE_TIMEOUT] })).toEqual([]);
    expect(await ids({ runUser: OTHER_USER })).toEqual(['j4', 'j3']);
    expect(await ids({ runUser: JOB_USER })).toEqual(['j6', 'j5', 'j2', 'j1']);
    expect(await ids({ runUser: 'nobody-here' })).toEqual([]);
    expect(await ids({ clusterId: 'hpcq-test', runUser: OTHER_USER })).toEqual(['j4']);
    expect(await ids({ queue: 'debug', states: [S.JOB_STATE_RUNNING, S.JOB_STATE_PENDING], runUser: JOB_USER })).toEqual(['j6', 'j5']);
    expect(await ids({ clusterId: 'hpcq-test', queue: 'hpcq-normal', states: [S.JOB_STATE_COMPLETED], runUser: JOB_USER })).toEqual(['j1']);

    // The state filter follows state changes: cancel j6 (pending) and it moves to CANCELLED.
    await cancelJob(d, j6.jobId);
    expect(await ids({ states: [S.JOB_STATE_PENDING] })).toEqual([]);
    expect(await ids({ states: [S.JOB_STATE_CANCELLED] })).toEqual(['j6']);

    // The queue name normal exists in both clusters: without cluster_id it is ambiguous.
    expect(await rejection(listJobs(d, { queue: 'normal' }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameter.AmbiguousQueue', field: 'queue' });
    // A queue of another cluster than the one named does not exist there.
    expect(await rejection(listJobs(d, { clusterId: 'hpcq-second', queue: 'hpcq-debug' }))).toMatchObject({ code: status.NOT_FOUND, reason: 'ResourceNotFound.Queue', field: 'queue' });
  });

  it('pages: 25 jobs, page_size 7, following next_page_token returns every job exactly once, newest first', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const submitted: string[] = [];
    for (let i = 0; i < 25; i++) submitted.push((await submit(d, { ...quiet(), name: `page-${i}`, cmdLine: 'true' })).jobId);
    await Promise.all(submitted.map((id) => waitForEnd(d, id)));

    const pages: string[][] = [];
    let pageToken = '';
    do {
      const page = await listJobs(d, { pageSize: 7, pageToken });
      pages.push(page.jobs.map((j) => j.jobId));
      pageToken = page.nextPageToken;
      expect(pages.length).toBeLessThanOrEqual(5);
    } while (pageToken !== '');
    expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 4]);
    const all = pages.flat();
    expect(all).toEqual([...submitted].reverse());
    expect(new Set(all).size).toBe(25);
    // Default page size (100) returns all on one page with no token.
    const whole = await listJobs(d, {});
    expect(whole.jobs.map((j) => j.jobId)).toEqual(all);
    expect(whole.nextPageToken).toBe('');
    // A page size equal to the count also ends without a token or with an empty last page.
    const exact = await listJobs(d, { pageSize: 25 });
    expect(exact.jobs).toHaveLength(25);
    if (exact.nextPageToken !== '') expect((await listJobs(d, { pageSize: 25, pageToken: exact.nextPageToken })).jobs).toEqual([]);
  });

  it('pages with a filter: only matching jobs, each once, across pages; new jobs submitted while paging do not shift the pages', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const mine: string[] = [];
    for (let i = 0; i < 14; i++) {
      const user = i % 2 === 0 ? JOB_USER : OTHER_USER;
      const res = await submit(d, { ...quiet(user), name: `mixed-${i}`, cmdLine: 'true' });
      if (user === JOB_USER) mine.push(res.jobId);
    }
    await Promise.all((await listJobs(d, {})).jobs.map((j) => waitForEnd(d, j.jobId)));
    const seen: string[] = [];
    let pageToken = '';
    let first = true;
    do {
      const page = await listJobs(d, { runUser: JOB_USER, pageSize: 3, pageToken });
      for (const j of page.jobs) expect(j.runUser).toBe(JOB_USER);
      seen.push(...page.jobs.map((j) => j.jobId));
      pageToken = page.nextPageToken;
      if (first) {
        // Newer jobs appear before the first page, never inside later pages.
        await submit(d, { ...quiet(), name: 'late', cmdLine: 'true' });
        first = false;
      }
    } while (pageToken !== '');
    expect(seen).toEqual([...mine].reverse());
  });
});

describe('GetJob and the stored job', () => {
  it('by numeric id and by hpcjob_uuid return the same job', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...quiet(), name: 'lookup', cmdLine: 'true' });
    await waitForEnd(d, res.jobId);
    const byId = await getJob(d, res.jobId);
    const byUuid = await getJob(d, res.hpcjobUuid);
    expect(byUuid).toEqual(byId);
    expect(byId.jobId).toBe(res.jobId);
    expect(byId.hpcjobUuid).toBe(res.hpcjobUuid);
    // ListJobs shows the same record.
    expect((await listJobs(d, {})).jobs[0]).toEqual(byId);
  });

  it('records the queue, the limits with queue defaults applied, and the request fields', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const defaultsNormal = await submit(d, { ...quiet(), name: 'defaults-normal', cmdLine: 'true' });
    const defaultsDebug = await submit(d, { ...quiet(), name: 'defaults-debug', schedulerQueueName: 'debug', cmdLine: 'true' });
    const explicit = await submit(d, {
      ...quiet(OTHER_USER),
      name: 'explicit',
      hpcqueueId: 'hpcq-debug',
      cmdLine: 'echo hi',
      coreLimit: 2,
      memLimit: 512,
      timeLimit: 45,
      priority: 7,
      resourceLimit: 'nproc=500, pids=64,nofile=256',
      submitType: 1,
      clientToken: 'tok-record',
    });
    for (const r of [defaultsNormal, defaultsDebug, explicit]) await waitForEnd(d, r.jobId);

    expect(await getJob(d, defaultsNormal.jobId)).toMatchObject({
      name: 'defaults-normal',
      clusterId: 'hpcq-test',
      zone: 'test-zone',
      hpcqueueId: 'hpcq-normal',
      schedulerQueueName: 'normal',
      runUser: JOB_USER,
      cmdLine: 'true',
      inputFile: '',
      coreLimit: 1,
      memLimit: 256,
      timeLimit: 600,
      priority: 0,
      resourceLimit: '',
      submitType: 0,
      clientToken: '',
    });
    expect(await getJob(d, defaultsDebug.jobId)).toMatchObject({ hpcqueueId: 'hpcq-debug', schedulerQueueName: 'debug', coreLimit: 1, memLimit: 128, timeLimit: 30 });
    const job = await getJob(d, explicit.jobId);
    expect(job).toMatchObject({
      hpcqueueId: 'hpcq-debug',
      schedulerQueueName: 'debug',
      runUser: OTHER_USER,
      coreLimit: 2,
      memLimit: 512,
      timeLimit: 45,
      priority: 7,
      // canonical order and spelling
      resourceLimit: 'pids=64,nofile=256,nproc=500',
      submitType: 1,
      clientToken: 'tok-record',
      state: JobState.JOB_STATE_COMPLETED,
      jobStatus: 'completed',
      // the enforcement the daemon reports for the node
      enforcement: (await listQueues(d)).enforcement,
    });
    expect(job.enforcement).not.toBe('');
    for (const t of [job.submitTime, job.startTime, job.endTime]) expect(t).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    expect(Date.parse(job.submitTime)).toBeLessThanOrEqual(Date.parse(job.startTime));
    expect(Date.parse(job.startTime)).toBeLessThanOrEqual(Date.parse(job.endTime));
  });

  it('resolves stdout/stderr paths: ~ to the home, %j %x %u expanded, %% to %, default ~/hpcq-%j.out/.err', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = outDirFor(JOB_USER);
    const res = await submit(d, {
      runUser: JOB_USER,
      name: 'paths_x-1',
      cmdLine: 'echo to-out; echo to-err >&2',
      stdoutRedirectPath: `${dir}/%u-%x-%j.out`,
      stderrRedirectPath: `${dir}/%j%%-%x.err`,
    });
    const job = await waitForEnd(d, res.jobId);
    expect(job.stdoutPath).toBe(`${dir}/${JOB_USER}-paths_x-1-${res.jobId}.out`);
    expect(job.stderrPath).toBe(`${dir}/${res.jobId}%-paths_x-1.err`);
    expect(readFileSync(job.stdoutPath, 'utf8')).toBe('to-out\n');
    expect(readFileSync(job.stderrPath, 'utf8')).toBe('to-err\n');

    // ~/ resolves to the run user's home; defaults are ~/hpcq-%j.out / .err. Cancelled while
    // pending so nothing is written into the shared home directory.
    await blockDebugQueue(d);
    const pending = await submit(d, { runUser: OTHER_USER, name: 'home', hpcqueueId: 'hpcq-debug', cmdLine: 'true', stderrRedirectPath: '~/sub/%x-%u.e' });
    await cancelJob(d, pending.jobId);
    const stored = await getJob(d, pending.jobId);
    expect(stored.stdoutPath).toBe(`/home/${OTHER_USER}/hpcq-${pending.jobId}.out`);
    expect(stored.stderrPath).toBe(`/home/${OTHER_USER}/sub/home-${OTHER_USER}.e`);
  });

  it('a job records its reason, exit code and usage when it ends', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const res = await submit(d, { ...quiet(), name: 'exit-7', cmdLine: 'exit 7' });
    const job = await waitForEnd(d, res.jobId);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_FAILED, jobStatus: 'failed', exitCode: 7, termSignal: 0, limitHit: '' });
    expect(job.reason).toContain('NonZeroExitCode');
    expect(job.usage).toBeDefined();
    expect(job.usage!.wallTimeMs).toBeGreaterThanOrEqual(0);
    expect(job.usage!.cpuTimeUsec).toBe(job.usage!.userCpuUsec + job.usage!.systemCpuUsec);
    const killed = await submit(d, { ...quiet(), name: 'killed', cmdLine: 'kill -KILL $$' });
    expect(await waitForEnd(d, killed.jobId)).toMatchObject({ jobStatus: 'failed', termSignal: 9 });
  });
});
