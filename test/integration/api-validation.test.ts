// Every rejection of the public API against a real hpcqd: the gRPC status code, the stable reason
// (google.rpc.ErrorInfo), the message prefix, the `field` metadata, and that nothing was stored.
// RELIABILITY-TESTS I1 I2 I3 I6 A4 A5 F4.
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync } from 'node:fs';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JobState } from '../../src/gen/hpcq/v1/job.js';
import { SubmitJobRequest, SubmitJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import {
  TEST_CONFIG,
  TWO_CLUSTER_CONFIG,
  cancelJob,
  emptySubmit,
  getJob,
  isRunning,
  listJobs,
  listQueues,
  makeStateDir,
  reasonOf,
  rejection,
  startDaemon,
  stopAll,
  submit,
  waitForEnd,
  waitForJob,
  type DaemonHandle,
} from '../support/daemon-harness.js';
import { gidOf, isRoot, JOB_USER, need, OTHER_USER, uidOf, userExists } from '../support/privileged.js';

const canRunJobs = () => need(isRoot, 'root, to run jobs as the test user');

/** A uid-0 account that is not called root (A4). Created only for this file, removed after it. */
const ROOT_ALIAS = 'hpcq-root-alias';
let createdRootAlias = false;

beforeAll(() => {
  if (!isRoot) return;
  if (!userExists(ROOT_ALIAS)) {
    execFileSync('useradd', ['-o', '-u', '0', '-g', '0', '-M', '-N', '-s', '/usr/sbin/nologin', ROOT_ALIAS], { stdio: 'ignore' });
    createdRootAlias = true;
  }
});

afterAll(() => {
  // userdel warns that uid 0 is "in use" by running processes; -f removes the alias anyway.
  if (createdRootAlias) execFileSync('userdel', ['-f', ROOT_ALIAS], { stdio: 'ignore' });
});

afterEach(stopAll);

const jobsOf = async (d: DaemonHandle) => (await listJobs(d)).jobs;

function expectError(
  got: ReturnType<typeof reasonOf>,
  want: { code: status; reason: string; field?: string },
): void {
  expect({ code: got.code, reason: got.reason, field: got.field }).toEqual({ code: want.code, reason: want.reason, field: want.field ?? '' });
  expect(got.message.startsWith(`${want.reason}: `), `message ${JSON.stringify(got.message)} starts with the reason`).toBe(true);
}

/** Nothing was stored: no job listed, and the next accepted submit is job 1 (ids are taken only by stored jobs). */
async function expectNothingStored(d: DaemonHandle): Promise<void> {
  expect(await jobsOf(d)).toEqual([]);
  const ok = await submit(d, { name: 'after-rejection', runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
  expect(ok.jobId).toBe('1');
  expect((await jobsOf(d)).map((j) => j.jobId)).toEqual(['1']);
}

const VALID: Partial<SubmitJobRequest> = {
  name: 'valid-job',
  runUser: JOB_USER,
  cmdLine: 'true',
  stdoutRedirectPath: '/dev/null',
  stderrRedirectPath: '/dev/null',
};

interface Case {
  title: string;
  req: Partial<SubmitJobRequest>;
  code: status;
  reason: string;
  field: string;
}

const I = status.INVALID_ARGUMENT;
const NF = status.NOT_FOUND;
const PD = status.PERMISSION_DENIED;
const longPath = (prefix: string, bytes: number) => prefix + 'a'.repeat(bytes - prefix.length);

/** One row per rejection in src/core/validate-submit.ts and src/core/resource-limit.ts (TEST_CONFIG). */
const CASES: Case[] = [
  { title: 'name missing', req: { name: '' }, code: I, reason: 'MissingParameter.JobName', field: 'name' },
  { title: 'name of 65 characters', req: { name: 'n'.repeat(65) }, code: I, reason: 'InvalidParameter.JobNameTooLong', field: 'name' },
  { title: 'name starting with a digit', req: { name: '1job' }, code: I, reason: 'InvalidParameter.JobNameMalformed', field: 'name' },
  { title: 'name with a space', req: { name: 'my job' }, code: I, reason: 'InvalidParameter.JobNameMalformed', field: 'name' },
  { title: 'name with a slash and dots', req: { name: '../etc' }, code: I, reason: 'InvalidParameter.JobNameMalformed', field: 'name' },
  { title: 'name with a newline', req: { name: 'job\nx' }, code: I, reason: 'InvalidParameter.JobNameMalformed', field: 'name' },
  { title: 'name with NUL', req: { name: 'job\0x' }, code: I, reason: 'InvalidParameter.JobNameMalformed', field: 'name' },
  { title: 'name with shell metacharacters', req: { name: 'a;rm' }, code: I, reason: 'InvalidParameter.JobNameMalformed', field: 'name' },
  { title: 'client_token of 65 characters', req: { clientToken: 't'.repeat(65) }, code: I, reason: 'InvalidParameter.ClientTokenTooLong', field: 'client_token' },
  { title: 'client_token with a space', req: { clientToken: 'a b' }, code: I, reason: 'InvalidParameter.ClientTokenMalformed', field: 'client_token' },
  { title: 'client_token not ASCII', req: { clientToken: 'tökén' }, code: I, reason: 'InvalidParameter.ClientTokenMalformed', field: 'client_token' },
  { title: 'timestamp not a time', req: { timestamp: 'yesterday' }, code: I, reason: 'InvalidParameter.TimestampMalformed', field: 'timestamp' },
  { title: 'timestamp without a zone', req: { timestamp: '2026-01-02T03:04:05' }, code: I, reason: 'InvalidParameter.TimestampMalformed', field: 'timestamp' },
  { title: 'timestamp far in the past (RFC 3339)', req: { timestamp: '2001-01-01T00:00:00Z' }, code: I, reason: 'InvalidParameterValue.TimestampOutOfRange', field: 'timestamp' },
  { title: 'timestamp far in the future (Unix seconds)', req: { timestamp: String(Math.floor(Date.now() / 1000) + 3600) }, code: I, reason: 'InvalidParameterValue.TimestampOutOfRange', field: 'timestamp' },
  { title: 'core_limit negative', req: { coreLimit: -1 }, code: I, reason: 'InvalidParameterValue.Negative', field: 'core_limit' },
  { title: 'mem_limit negative', req: { memLimit: -1 }, code: I, reason: 'InvalidParameterValue.Negative', field: 'mem_limit' },
  { title: 'time_limit negative', req: { timeLimit: -5 }, code: I, reason: 'InvalidParameterValue.Negative', field: 'time_limit' },
  { title: 'priority negative', req: { priority: -1 }, code: I, reason: 'InvalidParameterValue.Negative', field: 'priority' },
  { title: 'priority above 10000', req: { priority: 10_001 }, code: I, reason: 'InvalidParameterValue.PriorityTooLarge', field: 'priority' },
  { title: 'submit_type 2', req: { submitType: 2 }, code: I, reason: 'InvalidParameterValue.SubmitType', field: 'submit_type' },
  { title: 'submit_type negative', req: { submitType: -1 }, code: I, reason: 'InvalidParameterValue.SubmitType', field: 'submit_type' },
  { title: 'both cmd_line and input_file', req: { inputFile: '/bin/true' }, code: I, reason: 'InvalidParameter.InvalidParameterCombination', field: 'cmd_line' },
  { title: 'neither cmd_line nor input_file', req: { cmdLine: '' }, code: I, reason: 'MissingParameter.Command', field: 'cmd_line' },
  { title: 'cmd_line of 64 KiB + 1 byte', req: { cmdLine: 'x'.repeat(64 * 1024 + 1) }, code: I, reason: 'InvalidParameter.CmdLineTooLong', field: 'cmd_line' },
  { title: 'cmd_line of 64 KiB + 1 byte counted in UTF-8 bytes', req: { cmdLine: 'é'.repeat(32 * 1024) + 'x' }, code: I, reason: 'InvalidParameter.CmdLineTooLong', field: 'cmd_line' },
  { title: 'cmd_line with NUL', req: { cmdLine: 'true\0; touch /tmp/x' }, code: I, reason: 'InvalidParameter.CmdLineMalformed', field: 'cmd_line' },
  { title: 'input_file with a newline', req: { cmdLine: '', inputFile: '/tmp/a\nb' }, code: I, reason: 'InvalidParameter.InputFileMalformed', field: 'input_file' },
  { title: 'input_file with NUL', req: { cmdLine: '', inputFile: '/tmp/a\0b' }, code: I, reason: 'InvalidParameter.InputFileMalformed', field: 'input_file' },
  { title: 'input_file of 4097 bytes', req: { cmdLine: '', inputFile: longPath('/tmp/', 4097) }, code: I, reason: 'InvalidParameter.InputFileTooLong', field: 'input_file' },
  { title: 'input_file relative', req: { cmdLine: '', inputFile: 'script.sh' }, code: I, reason: 'InvalidParameter.InputFileNotAbsolute', field: 'input_file' },
  { title: 'input_file starting with ~', req: { cmdLine: '', inputFile: '~/script.sh' }, code: I, reason: 'InvalidParameter.InputFileNotAbsolute', field: 'input_file' },
  { title: 'resource_limit not key=value', req: { resourceLimit: 'pids' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'resource_limit unknown key', req: { resourceLimit: 'stack=8' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'resource_limit key twice', req: { resourceLimit: 'pids=10,pids=20' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'resource_limit negative value', req: { resourceLimit: 'nofile=-1' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'resource_limit above the maximum', req: { resourceLimit: 'nofile=1048577' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'resource_limit pids=0', req: { resourceLimit: 'pids=0' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'resource_limit trailing comma', req: { resourceLimit: 'pids=10,' }, code: I, reason: 'InvalidParameter.ResourceLimit', field: 'resource_limit' },
  { title: 'unknown cluster_id', req: { clusterId: 'no-such-cluster' }, code: NF, reason: 'ResourceNotFound.Cluster', field: 'cluster_id' },
  { title: 'zone of another region', req: { zone: 'other-zone' }, code: I, reason: 'InvalidZone.MismatchRegion', field: 'zone' },
  { title: 'unknown hpcqueue_id', req: { hpcqueueId: 'hpcq-nope' }, code: NF, reason: 'ResourceNotFound.Queue', field: 'hpcqueue_id' },
  { title: 'unknown scheduler_queue_name', req: { schedulerQueueName: 'nope' }, code: NF, reason: 'ResourceNotFound.Queue', field: 'scheduler_queue_name' },
  { title: 'queue id and name of different queues', req: { hpcqueueId: 'hpcq-normal', schedulerQueueName: 'debug' }, code: I, reason: 'InvalidParameter.InvalidParameterCombination', field: 'scheduler_queue_name' },
  { title: 'core_limit above the queue maximum', req: { hpcqueueId: 'hpcq-debug', coreLimit: 3 }, code: I, reason: 'InvalidParameterValue.CoreLimitTooLarge', field: 'core_limit' },
  { title: 'core_limit above the node (normal queue, max = node)', req: { coreLimit: 5 }, code: I, reason: 'InvalidParameterValue.CoreLimitTooLarge', field: 'core_limit' },
  { title: 'mem_limit above the queue maximum', req: { schedulerQueueName: 'debug', memLimit: 1025 }, code: I, reason: 'InvalidParameterValue.MemLimitTooLarge', field: 'mem_limit' },
  { title: 'mem_limit far above the node', req: { memLimit: 2 ** 52 }, code: I, reason: 'InvalidParameterValue.MemLimitTooLarge', field: 'mem_limit' },
  { title: 'time_limit above the queue maximum', req: { hpcqueueId: 'hpcq-debug', timeLimit: 61 }, code: I, reason: 'InvalidParameterValue.TimeLimitTooLarge', field: 'time_limit' },
  { title: 'run_user empty: the caller itself, and root never runs jobs', req: { runUser: '' }, code: PD, reason: 'OperationDenied.RunUserPrivileged', field: 'run_user' },
  { title: 'run_user with a slash', req: { runUser: '../root' }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user with shell metacharacters', req: { runUser: 'bob;id' }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user with a newline', req: { runUser: 'bob\nroot' }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user numeric', req: { runUser: '0' }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user of 33 characters', req: { runUser: 'u'.repeat(33) }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user of 300 characters', req: { runUser: 'u'.repeat(300) }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user starting with a dash (getent option)', req: { runUser: '-s' }, code: I, reason: 'InvalidParameter.RunUserMalformed', field: 'run_user' },
  { title: 'run_user not an account', req: { runUser: 'hpcq-no-such-user' }, code: I, reason: 'InvalidParameter.RunUserNotFound', field: 'run_user' },
  { title: 'run_user root', req: { runUser: 'root' }, code: PD, reason: 'OperationDenied.RunUserPrivileged', field: 'run_user' },
  { title: 'run_user a uid-0 alias', req: { runUser: ROOT_ALIAS }, code: PD, reason: 'OperationDenied.RunUserPrivileged', field: 'run_user' },
  { title: 'stdout path with a newline', req: { stdoutRedirectPath: '/tmp/out\n.txt' }, code: I, reason: 'InvalidParameter.RedirectPathMalformed', field: 'stdout_redirect_path' },
  { title: 'stderr path with NUL', req: { stderrRedirectPath: '/tmp/err\0.txt' }, code: I, reason: 'InvalidParameter.RedirectPathMalformed', field: 'stderr_redirect_path' },
  { title: 'stdout path with an unknown % escape', req: { stdoutRedirectPath: '~/out-%y.txt' }, code: I, reason: 'InvalidParameter.RedirectPathMalformed', field: 'stdout_redirect_path' },
  { title: 'stderr path ending in %', req: { stderrRedirectPath: '~/err-%' }, code: I, reason: 'InvalidParameter.RedirectPathMalformed', field: 'stderr_redirect_path' },
  { title: 'stdout path naming a directory', req: { stdoutRedirectPath: '/tmp/' }, code: I, reason: 'InvalidParameter.RedirectPathMalformed', field: 'stdout_redirect_path' },
  { title: 'stdout path relative', req: { stdoutRedirectPath: 'out.txt' }, code: I, reason: 'InvalidParameter.RedirectPathNotAbsolute', field: 'stdout_redirect_path' },
  { title: "stdout path ~user/ (another user's home)", req: { stdoutRedirectPath: `~${OTHER_USER}/out.txt` }, code: I, reason: 'InvalidParameter.RedirectPathNotAbsolute', field: 'stdout_redirect_path' },
  { title: 'stderr path relative', req: { stderrRedirectPath: 'logs/err.txt' }, code: I, reason: 'InvalidParameter.RedirectPathNotAbsolute', field: 'stderr_redirect_path' },
  { title: 'stdout path ../../etc/cron.d/x', req: { stdoutRedirectPath: '~/../../etc/cron.d/hpcq-api-x' }, code: I, reason: 'InvalidParameter.RedirectPathTraversal', field: 'stdout_redirect_path' },
  { title: 'stderr path with a .. component', req: { stderrRedirectPath: '/tmp/../etc/hpcq-api-x' }, code: I, reason: 'InvalidParameter.RedirectPathTraversal', field: 'stderr_redirect_path' },
  { title: 'stdout path of 5000 characters', req: { stdoutRedirectPath: longPath('/tmp/', 5000) }, code: I, reason: 'InvalidParameter.RedirectPathTooLong', field: 'stdout_redirect_path' },
  { title: 'stderr path of 4033 bytes', req: { stderrRedirectPath: longPath('/tmp/', 4033) }, code: I, reason: 'InvalidParameter.RedirectPathTooLong', field: 'stderr_redirect_path' },
];

describe('SubmitJob rejects invalid requests before storing anything', () => {
  it.each(CASES)('$title -> $reason', async ({ req, code, reason, field }) => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    expectError(await rejection(submit(d, { ...VALID, ...req })), { code, reason, field });
    await expectNothingStored(d);
  });

  it('accepts the boundary values next to each rejection (the table rows fail for the reason given)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const ok = [
      { name: 'n'.repeat(64) },
      { name: '_x-Y9' },
      { clientToken: 't'.repeat(64) },
      { timestamp: new Date().toISOString() },
      { timestamp: String(Math.floor(Date.now() / 1000)) },
      { priority: 10_000 },
      { submitType: 1 },
      { hpcqueueId: 'hpcq-debug', schedulerQueueName: 'debug', coreLimit: 2, memLimit: 1024, timeLimit: 60 },
      { resourceLimit: ' nofile = 64 , pids=100' },
    ];
    for (const extra of ok) {
      const res = await submit(d, { ...VALID, cmdLine: 'true', ...extra });
      expect(res.retCode).toBe(0);
      await cancelJob(d, res.jobId).catch(() => undefined);
    }
    expect(await jobsOf(d)).toHaveLength(ok.length);
  });

  it('F4: a traversal path is refused and nothing is created where it points', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const target = '/etc/cron.d/hpcq-api-traversal';
    expectError(await rejection(submit(d, { ...VALID, stdoutRedirectPath: `~/../../${target.slice(1)}` })), {
      code: I,
      reason: 'InvalidParameter.RedirectPathTraversal',
      field: 'stdout_redirect_path',
    });
    expect(existsSync(target)).toBe(false);
  });

  it('cluster_id is required when several clusters are configured', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon({ config: TWO_CLUSTER_CONFIG });
    expectError(await rejection(submit(d, VALID)), { code: I, reason: 'MissingParameter.ClusterId', field: 'cluster_id' });
    expect(await jobsOf(d)).toEqual([]);
    const ok = await submit(d, { ...VALID, clusterId: 'hpcq-second' });
    expect(ok.jobId).toBe('1');
    const job = await getJob(d, ok.jobId);
    expect({ cluster: job.clusterId, zone: job.zone, queue: job.hpcqueueId }).toEqual({ cluster: 'hpcq-second', zone: 'second-zone', queue: 'hpcq-second-normal' });
    await waitForEnd(d, ok.jobId);
  });

  it('mem_limit and time_limit beyond 2^53 (valid int64 on the wire) are INVALID_ARGUMENT naming the field, not INTERNAL', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const client = new Client(d.address, credentials.createInsecure());
    try {
      const base = Buffer.from(SubmitJobRequest.encode({ ...emptySubmit, ...VALID }).finish());
      // Appending a scalar field overrides it (last one wins): mem_limit (9) / time_limit (10) as varints.
      for (const [fieldNumber, field] of [
        [9, 'mem_limit'],
        [10, 'time_limit'],
      ] as const) {
        for (const value of [2n ** 53n + 2n, 2n ** 63n - 1n, -(2n ** 63n)]) {
          const bytes = Buffer.concat([base, Buffer.from([fieldNumber << 3]), varint(value)]);
          const got = await rejection(rawSubmit(client, bytes));
          expect({ value: String(value), code: got.code, field: got.field }).toEqual({ value: String(value), code: I, field });
        }
      }
      await expectNothingStored(d);
    } finally {
      client.close();
    }
  });
});

describe('request size limit (1 MiB, I1)', () => {
  /** A SubmitJobRequest whose encoding is exactly `size` bytes (cmd_line padded). */
  function requestOfSize(size: number): SubmitJobRequest {
    let n = size - 64;
    for (;;) {
      const req = { ...emptySubmit, ...VALID, cmdLine: 'x'.repeat(n) };
      const len = SubmitJobRequest.encode(req).finish().length;
      if (len === size) return req;
      n += size - len;
    }
  }

  it('a request of 1 MiB + 1 byte is RESOURCE_EXHAUSTED and never reaches the handler', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const got = await rejection(submit(d, requestOfSize(1024 * 1024 + 1)));
    expect(got.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(got.reason).toBe(''); // rejected by the transport: no handler ran, so no ErrorInfo
    await expectNothingStored(d);
  });

  it('a request of 5 MiB is RESOURCE_EXHAUSTED and the daemon keeps serving', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const got = await rejection(submit(d, requestOfSize(5 * 1024 * 1024)));
    expect(got.code).toBe(status.RESOURCE_EXHAUSTED);
    await expectNothingStored(d);
  });

  it('a request of exactly 1 MiB passes the transport and is judged by validation (CmdLineTooLong)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    expectError(await rejection(submit(d, requestOfSize(1024 * 1024))), {
      code: I,
      reason: 'InvalidParameter.CmdLineTooLong',
      field: 'cmd_line',
    });
    await expectNothingStored(d);
  });
});

describe('queue quota', () => {
  it('a submit beyond max_pending is RESOURCE_EXHAUSTED LimitExceeded.JobQuota and is not stored', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const debug = { ...VALID, hpcqueueId: 'hpcq-debug', cmdLine: 'sleep 100', timeLimit: 60 };
    // max_running 1: the first job runs, the next three wait, filling max_pending 3.
    const first = await submit(d, { ...debug, name: 'runs' });
    await waitForJob(d, first.jobId, isRunning);
    for (let i = 0; i < 3; i++) await submit(d, { ...debug, name: `waits-${i}` });
    const queued = await listQueues(d);
    expect(queued.queues.find((q) => q.hpcqueueId === 'hpcq-debug')).toMatchObject({ pendingCount: 3, runningCount: 1, maxPending: 3 });

    expectError(await rejection(submit(d, { ...debug, name: 'one-too-many' })), {
      code: status.RESOURCE_EXHAUSTED,
      reason: 'LimitExceeded.JobQuota',
      field: 'hpcqueue_id',
    });
    // Also when the queue is chosen by its scheduler name.
    expectError(await rejection(submit(d, { ...VALID, schedulerQueueName: 'debug', name: 'by-name' })), {
      code: status.RESOURCE_EXHAUSTED,
      reason: 'LimitExceeded.JobQuota',
      field: 'hpcqueue_id',
    });
    const jobs = await jobsOf(d);
    expect(jobs.map((j) => j.jobId)).toEqual(['4', '3', '2', '1']);
    expect(jobs.some((j) => j.name === 'one-too-many' || j.name === 'by-name')).toBe(false);

    // The other queue is not affected, and the refused submits consumed no id.
    const other = await submit(d, { ...VALID, name: 'normal-queue' });
    expect(other.jobId).toBe('5');
    // A cancelled pending job frees its place.
    await cancelJob(d, '4');
    expect((await submit(d, { ...debug, name: 'fits-again' })).jobId).toBe('6');
  });
});

describe('job lookups', () => {
  async function withOneFinishedJob() {
    const d = await startDaemon();
    const res = await submit(d, { ...VALID, name: 'done' });
    await waitForEnd(d, res.jobId);
    return { d, res };
  }

  it('unknown numeric id and unknown uuid are NOT_FOUND ResourceNotFound.Job for GetJob, CancelJob and WatchJob', async () => {
    if (!canRunJobs()) return;
    const { d } = await withOneFinishedJob();
    const want = { code: NF, reason: 'ResourceNotFound.Job', field: 'job_id' };
    for (const jobId of ['2', '999999', '0', 'hpcjob-zzzzzzzz']) {
      expectError(await rejection(getJob(d, jobId)), want);
      expectError(await rejection(cancelJob(d, jobId)), want);
      expectError(await rejection(waitForEnd(d, jobId)), want);
    }
    // Leading zeros still name job 1: found, not an error.
    expect((await getJob(d, '000000000000001')).jobId).toBe('1');
  });

  it('a malformed job id is INVALID_ARGUMENT; an empty one is MissingParameter.JobId', async () => {
    if (!canRunJobs()) return;
    const { d } = await withOneFinishedJob();
    for (const jobId of ['abc', '-1', '1.5', ' 1', '1 ', '0x1', '1e3', 'hpcjob-ABCDEFGH', 'hpcjob-abc', '9'.repeat(16), '1\n', '../1']) {
      const want = { code: I, reason: 'InvalidParameter.JobIdMalformed', field: 'job_id' };
      expectError(await rejection(getJob(d, jobId)), want);
      expectError(await rejection(cancelJob(d, jobId)), want);
      expectError(await rejection(waitForEnd(d, jobId)), want);
    }
    const missing = { code: I, reason: 'MissingParameter.JobId', field: 'job_id' };
    expectError(await rejection(getJob(d, '')), missing);
    expectError(await rejection(cancelJob(d, '')), missing);
    expectError(await rejection(waitForEnd(d, '')), missing);
  });

  it('cancelling a finished job is FAILED_PRECONDITION and leaves it unchanged', async () => {
    if (!canRunJobs()) return;
    const { d, res } = await withOneFinishedJob();
    const before = await getJob(d, res.jobId);
    expect(before.jobStatus).toBe('completed');
    for (const jobId of [res.jobId, res.hpcjobUuid]) {
      expectError(await rejection(cancelJob(d, jobId)), {
        code: status.FAILED_PRECONDITION,
        reason: 'FailedOperation.JobAlreadyFinished',
        field: 'job_id',
      });
    }
    expect(await getJob(d, res.jobId)).toEqual(before);
  });

  it('cancelling a job twice: the second cancel of a cancelled job is FAILED_PRECONDITION', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const blocker = await submit(d, { ...VALID, hpcqueueId: 'hpcq-debug', cmdLine: 'sleep 100', name: 'blocker' });
    await waitForJob(d, blocker.jobId, isRunning);
    const pending = await submit(d, { ...VALID, hpcqueueId: 'hpcq-debug', name: 'pending' });
    expect((await cancelJob(d, pending.jobId)).job?.jobStatus).toBe('cancelled');
    expectError(await rejection(cancelJob(d, pending.jobId)), {
      code: status.FAILED_PRECONDITION,
      reason: 'FailedOperation.JobAlreadyFinished',
      field: 'job_id',
    });
  });
});

describe('ListJobs and ListQueues arguments', () => {
  it('a page_token the server did not issue is INVALID_ARGUMENT InvalidParameter.PageToken', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const b64 = (s: string) => Buffer.from(s).toString('base64url');
    for (const pageToken of ['garbage', b64('v1:'), b64('v1:-1'), b64('v2:5'), b64('v1:1234567890123456'), b64('v1:5 '), '%%%', b64('v1:5\n')]) {
      expectError(await rejection(listJobs(d, { pageToken })), { code: I, reason: 'InvalidParameter.PageToken', field: 'page_token' });
    }
  });

  it('page_size negative, an unknown state, an unknown cluster or queue are rejected with the field', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    expectError(await rejection(listJobs(d, { pageSize: -1 })), { code: I, reason: 'InvalidParameterValue.Negative', field: 'page_size' });
    expectError(await rejection(listJobs(d, { states: [99 as JobState] })), { code: I, reason: 'InvalidParameterValue.JobState', field: 'states' });
    expectError(await rejection(listJobs(d, { states: [JobState.JOB_STATE_UNSPECIFIED] })), { code: I, reason: 'InvalidParameterValue.JobState', field: 'states' });
    expectError(await rejection(listJobs(d, { clusterId: 'nope' })), { code: NF, reason: 'ResourceNotFound.Cluster', field: 'cluster_id' });
    expectError(await rejection(listJobs(d, { queue: 'nope' })), { code: NF, reason: 'ResourceNotFound.Queue', field: 'queue' });
    expectError(await rejection(listQueues(d, 'nope')), { code: NF, reason: 'ResourceNotFound.Cluster', field: 'cluster_id' });
  });
});

describe('unprivileged daemon (A3)', () => {
  it('a daemon not running as root refuses run_user other than its own account: PERMISSION_DENIED RunUserNotAllowed', async () => {
    if (!canRunJobs()) return;
    const d = await startUnprivileged();
    expectError(await rejection(submit(d, { ...VALID, runUser: OTHER_USER })), { code: PD, reason: 'OperationDenied.RunUserNotAllowed', field: 'run_user' });
    expectError(await rejection(submit(d, { ...VALID, runUser: 'root' })), { code: PD, reason: 'OperationDenied.RunUserPrivileged', field: 'run_user' });
    expect(await jobsOf(d)).toEqual([]);
    const own = await submit(d, { ...VALID, runUser: JOB_USER, name: 'own-user' });
    expect(own.jobId).toBe('1');
    expect((await waitForEnd(d, own.jobId)).jobStatus).toBe('completed');
  });
});

// ---- helpers -------------------------------------------------------------------------------------

function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

function rawSubmit(client: Client, bytes: Buffer): Promise<SubmitJobResponse> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      '/hpcq.v1.JobService/SubmitJob',
      (b: Buffer) => b,
      (b: Buffer) => SubmitJobResponse.decode(b),
      bytes,
      (err: ServiceError | null, res?: SubmitJobResponse) => (err ? reject(err) : resolve(res!)),
    ),
  );
}

/** An hpcqd running as JOB_USER (rlimit enforcement: an unprivileged daemon cannot manage cgroups). */
async function startUnprivileged(): Promise<DaemonHandle> {
  const stateDir = makeStateDir(); // removed by stopAll
  const [uid, gid] = [uidOf(JOB_USER), gidOf(JOB_USER)];
  chownSync(stateDir, uid, gid);
  return startDaemon({ stateDir, config: `${TEST_CONFIG}\nenforcement: rlimit\n`, uid, gid, env: { HOME: `/home/${JOB_USER}` } });
}
