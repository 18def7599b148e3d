import { status } from '@grpc/grpc-js';
import { describe, it, expect } from 'vitest';
import { submitRequest } from '../support/submit-request.js';
import { toServiceError } from '../../src/api/grpc-status.js';
import { compileConfig } from '../../src/config/load-config.js';
import type { ClusterConfig, DaemonConfig } from '../../src/config/daemon-config.js';
import type { Principal } from '../../src/core/access-policy.js';
import { HpcqError, type ErrorKind } from '../../src/core/errors.js';
import type { JobSpec } from '../../src/core/job.js';
import type { UserAccount, UserDirectory } from '../../src/core/ports.js';
import type { SubmitRequest } from '../../src/core/submit-request.js';
import type { Logger } from '../../src/logger.js';
import { parseTimestamp, validateSubmit, type SubmitContext } from '../../src/core/validate-submit.js';
import { DEFAULT_ACCESS } from '../support/access-defaults.js';

const HOST = { cores: 8, memoryMb: 16384, uid: 0 };
/** The embedded default: cluster hpcq-local (zone local), queues hpcq-normal/normal (default) and hpcq-debug/debug. */
const CONFIG: DaemonConfig = compileConfig({}, 'test', {}, HOST);
/** Two clusters, for cluster resolution. Queue name "normal" exists in both. */
const TWO_CLUSTERS: DaemonConfig = compileConfig(
  {
    clusters: [
      { cluster_id: 'hpcq-local', zone: 'local', queues: [{ hpcqueue_id: 'hpcq-normal', scheduler_queue_name: 'normal', default: true }] },
      { cluster_id: 'hpcq-gpu', zone: 'gpu-zone', queues: [{ hpcqueue_id: 'hpcq-gpu-normal', scheduler_queue_name: 'normal', default: true }] },
    ],
  },
  'test',
  {},
  HOST,
);

const NOW_MS = Date.parse('2026-03-01T12:00:00Z');
const NOW_S = NOW_MS / 1000;

/** The longest user name the daemon accepts (POSIX portable names, 32 characters). */
const LONG_USER = 'u'.repeat(32);

const ACCOUNTS: readonly UserAccount[] = [
  { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice', shell: '/bin/bash', groups: [{ name: 'alice', gid: 1000 }] },
  { name: 'bob', uid: 1001, gid: 1001, home: '/home/bob', shell: '/bin/sh', groups: [{ name: 'bob', gid: 1001 }] },
  { name: 'carol', uid: 1002, gid: 100, home: '/home/carol/', shell: '/bin/zsh', groups: [{ name: 'users', gid: 100 }, { name: 'physics', gid: 2000 }] },
  { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [{ name: 'root', gid: 0 }] },
  // A second name for uid 0, as some systems have.
  { name: 'toor', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [{ name: 'root', gid: 0 }] },
  { name: LONG_USER, uid: 1003, gid: 1003, home: '/home/long', shell: '/bin/sh', groups: [{ name: LONG_USER, gid: 1003 }] },
  { name: 'j.doe-2', uid: 1004, gid: 1004, home: '/home/jdoe', shell: '/bin/sh', groups: [{ name: 'j.doe-2', gid: 1004 }] },
  // A system account below min_uid.
  { name: 'daemon', uid: 1, gid: 1, home: '/usr/sbin', shell: '/usr/sbin/nologin', groups: [{ name: 'daemon', gid: 1 }] },
  // A regular uid with group root as a supplementary group.
  { name: 'dave', uid: 1005, gid: 1005, home: '/home/dave', shell: '/bin/sh', groups: [{ name: 'dave', gid: 1005 }, { name: 'root', gid: 0 }] },
  // A regular uid whose primary group is root.
  { name: 'erin', uid: 1006, gid: 0, home: '/home/erin', shell: '/bin/sh', groups: [{ name: 'root', gid: 0 }] },
];

/** In-memory UserDirectory that records every name it was asked for. */
class FakeUserDirectory implements UserDirectory {
  readonly lookups: string[] = [];
  constructor(private readonly accounts: readonly UserAccount[] = ACCOUNTS) {}
  async lookup(name: string): Promise<UserAccount | undefined> {
    this.lookups.push(name);
    const found = this.accounts.find((a) => a.name === name);
    return found && { ...found };
  }
  async lookupUid(uid: number): Promise<UserAccount | undefined> {
    const found = this.accounts.find((a) => a.uid === uid);
    return found && { ...found };
  }
}

const account = (name: string): UserAccount => ACCOUNTS.find((a) => a.name === name)!;
/** A local caller, as the API builds it from the kernel's peer credentials. */
const local = (name: string): Principal => {
  const a = account(name);
  return { name: `uid:${a.uid}`, via: 'unix', peer: `uid:${a.uid}/pid:4242`, account: a };
};
/** A mutual-TLS caller: a certificate subject, no Unix account. */
const certificate = (name: string): Principal => ({ name, via: 'certificate', peer: '192.0.2.7:40000' });
/** root over the unix socket: an admin, as every existing case submits. */
const ADMIN = local('root');

function request(overrides: Partial<SubmitRequest> = {}): SubmitRequest {
  return { ...submitRequest({ clusterId: 'hpcq-local', zone: 'local', runUser: 'alice', name: 'job1', cmdLine: 'echo hi' }), ...overrides };
}

function context(overrides: Partial<SubmitContext> = {}): SubmitContext {
  return { config: CONFIG, principal: ADMIN, users: new FakeUserDirectory(), daemonUid: 0, nowMs: NOW_MS, ...overrides };
}

async function rejection(req: SubmitRequest, ctx: SubmitContext): Promise<HpcqError> {
  let caught: unknown;
  try {
    await validateSubmit(req, ctx);
  } catch (err) {
    caught = err;
  }
  expect(caught, 'validateSubmit should reject').toBeInstanceOf(HpcqError);
  return caught as HpcqError;
}

interface RejectionCase {
  title: string;
  req: Partial<SubmitRequest>;
  ctx?: Partial<SubmitContext>;
  code: string;
  kind: ErrorKind;
  field: string;
}

const iso = (ms: number): string => new Date(ms).toISOString();

const INVALID: ErrorKind = 'invalid';
const REJECTIONS: RejectionCase[] = [
  // name
  { title: 'name empty', req: { name: '' }, code: 'MissingParameter.JobName', kind: INVALID, field: 'name' },
  { title: 'name 65 chars', req: { name: 'a'.repeat(65) }, code: 'InvalidParameter.JobNameTooLong', kind: INVALID, field: 'name' },
  { title: 'name 300 chars', req: { name: 'x'.repeat(300) }, code: 'InvalidParameter.JobNameTooLong', kind: INVALID, field: 'name' },
  { title: 'name starting with a digit', req: { name: '1job' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with a space', req: { name: 'my job' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with a slash', req: { name: 'a/b' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with ..', req: { name: '..' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with a dot', req: { name: 'a.b' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with NUL', req: { name: 'a\0b' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with trailing newline', req: { name: 'job\n' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with shell metachars', req: { name: 'a;rm' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },
  { title: 'name with non-ASCII letters', req: { name: 'jöb' }, code: 'InvalidParameter.JobNameMalformed', kind: INVALID, field: 'name' },

  // client_token
  { title: 'client_token 65 chars', req: { clientToken: 't'.repeat(65) }, code: 'InvalidParameter.ClientTokenTooLong', kind: INVALID, field: 'client_token' },
  { title: 'client_token non-ASCII', req: { clientToken: 'tökén' }, code: 'InvalidParameter.ClientTokenMalformed', kind: INVALID, field: 'client_token' },
  { title: 'client_token with a space', req: { clientToken: 'a b' }, code: 'InvalidParameter.ClientTokenMalformed', kind: INVALID, field: 'client_token' },
  { title: 'client_token with NUL', req: { clientToken: 'ab\0' }, code: 'InvalidParameter.ClientTokenMalformed', kind: INVALID, field: 'client_token' },

  // timestamp
  { title: 'timestamp words', req: { timestamp: 'yesterday' }, code: 'InvalidParameter.TimestampMalformed', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp month 13', req: { timestamp: '2026-13-01T00:00:00Z' }, code: 'InvalidParameter.TimestampMalformed', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp without zone', req: { timestamp: '2026-03-01T12:00:00' }, code: 'InvalidParameter.TimestampMalformed', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp with space separator', req: { timestamp: '2026-03-01 12:00:00Z' }, code: 'InvalidParameter.TimestampMalformed', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp of 8 digits', req: { timestamp: '12345678' }, code: 'InvalidParameter.TimestampMalformed', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp negative seconds', req: { timestamp: `-${NOW_S}` }, code: 'InvalidParameter.TimestampMalformed', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp 301 s ahead (ISO)', req: { timestamp: iso(NOW_MS + 301_000) }, code: 'InvalidParameterValue.TimestampOutOfRange', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp 301 s behind (Unix seconds)', req: { timestamp: String(NOW_S - 301) }, code: 'InvalidParameterValue.TimestampOutOfRange', kind: INVALID, field: 'timestamp' },
  { title: 'timestamp a day off', req: { timestamp: '2026-03-02T12:00:00+00:00' }, code: 'InvalidParameterValue.TimestampOutOfRange', kind: INVALID, field: 'timestamp' },

  // numbers
  { title: 'core_limit negative', req: { coreLimit: -1 }, code: 'InvalidParameterValue.Negative', kind: INVALID, field: 'core_limit' },
  { title: 'mem_limit negative', req: { memLimit: -1 }, code: 'InvalidParameterValue.Negative', kind: INVALID, field: 'mem_limit' },
  { title: 'time_limit negative', req: { timeLimit: -1 }, code: 'InvalidParameterValue.Negative', kind: INVALID, field: 'time_limit' },
  { title: 'priority negative', req: { priority: -1 }, code: 'InvalidParameterValue.Negative', kind: INVALID, field: 'priority' },
  { title: 'core_limit 1.5', req: { coreLimit: 1.5 }, code: 'InvalidParameterValue.NotInteger', kind: INVALID, field: 'core_limit' },
  { title: 'mem_limit NaN', req: { memLimit: Number.NaN }, code: 'InvalidParameterValue.NotInteger', kind: INVALID, field: 'mem_limit' },
  { title: 'mem_limit 2^63', req: { memLimit: 2 ** 63 }, code: 'InvalidParameterValue.NotInteger', kind: INVALID, field: 'mem_limit' },
  { title: 'time_limit Infinity (an int64 beyond 2^53 on the wire)', req: { timeLimit: Number.POSITIVE_INFINITY }, code: 'InvalidParameterValue.OutOfRange', kind: INVALID, field: 'time_limit' },
  { title: 'mem_limit -Infinity', req: { memLimit: Number.NEGATIVE_INFINITY }, code: 'InvalidParameterValue.Negative', kind: INVALID, field: 'mem_limit' },
  { title: 'priority 2.5', req: { priority: 2.5 }, code: 'InvalidParameterValue.NotInteger', kind: INVALID, field: 'priority' },
  { title: 'priority 10001', req: { priority: 10_001 }, code: 'InvalidParameterValue.PriorityTooLarge', kind: INVALID, field: 'priority' },

  // submit_type
  { title: 'submit_type 2', req: { submitType: 2 }, code: 'InvalidParameterValue.SubmitType', kind: INVALID, field: 'submit_type' },
  { title: 'submit_type -1', req: { submitType: -1 }, code: 'InvalidParameterValue.SubmitType', kind: INVALID, field: 'submit_type' },

  // cmd_line / input_file
  { title: 'both cmd_line and input_file', req: { cmdLine: 'echo', inputFile: '/home/alice/job.sh' }, code: 'InvalidParameter.InvalidParameterCombination', kind: INVALID, field: 'cmd_line' },
  { title: 'neither cmd_line nor input_file', req: { cmdLine: '', inputFile: '' }, code: 'MissingParameter.Command', kind: INVALID, field: 'cmd_line' },
  { title: 'cmd_line with NUL', req: { cmdLine: 'echo a\0b' }, code: 'InvalidParameter.CmdLineMalformed', kind: INVALID, field: 'cmd_line' },
  { title: 'cmd_line 64 KiB + 1 byte', req: { cmdLine: 'x'.repeat(64 * 1024 + 1) }, code: 'InvalidParameter.CmdLineTooLong', kind: INVALID, field: 'cmd_line' },
  { title: 'cmd_line over 64 KiB in UTF-8 bytes but not in chars', req: { cmdLine: 'é'.repeat(32 * 1024 + 1) }, code: 'InvalidParameter.CmdLineTooLong', kind: INVALID, field: 'cmd_line' },
  { title: 'input_file relative', req: { cmdLine: '', inputFile: 'job.sh' }, code: 'InvalidParameter.InputFileNotAbsolute', kind: INVALID, field: 'input_file' },
  { title: 'input_file ~/', req: { cmdLine: '', inputFile: '~/job.sh' }, code: 'InvalidParameter.InputFileNotAbsolute', kind: INVALID, field: 'input_file' },
  { title: 'input_file with NUL', req: { cmdLine: '', inputFile: '/home/alice/a\0.sh' }, code: 'InvalidParameter.InputFileMalformed', kind: INVALID, field: 'input_file' },
  { title: 'input_file with newline', req: { cmdLine: '', inputFile: '/home/alice/a\n.sh' }, code: 'InvalidParameter.InputFileMalformed', kind: INVALID, field: 'input_file' },
  { title: 'input_file 4097 bytes', req: { cmdLine: '', inputFile: '/' + 'a'.repeat(4096) }, code: 'InvalidParameter.InputFileTooLong', kind: INVALID, field: 'input_file' },

  // resource_limit (parsing has its own test file; here: it is wired in)
  { title: 'resource_limit unknown key', req: { resourceLimit: 'gpus=1' }, code: 'InvalidParameter.ResourceLimit', kind: INVALID, field: 'resource_limit' },

  // cluster / zone
  { title: 'unknown cluster', req: { clusterId: 'hpcq-nope' }, code: 'ResourceNotFound.Cluster', kind: 'not_found', field: 'cluster_id' },
  { title: 'zone mismatch', req: { zone: 'pek3' }, code: 'InvalidZone.MismatchRegion', kind: INVALID, field: 'zone' },
  { title: 'zone mismatch with empty cluster_id', req: { clusterId: '', zone: 'pek3' }, code: 'InvalidZone.MismatchRegion', kind: INVALID, field: 'zone' },
  { title: 'cluster_id empty with two clusters', req: { clusterId: '', zone: '' }, ctx: { config: TWO_CLUSTERS }, code: 'MissingParameter.ClusterId', kind: INVALID, field: 'cluster_id' },

  // queue
  { title: 'unknown queue id', req: { hpcqueueId: 'hpcq-nope' }, code: 'ResourceNotFound.Queue', kind: 'not_found', field: 'hpcqueue_id' },
  { title: 'unknown queue name', req: { schedulerQueueName: 'nope' }, code: 'ResourceNotFound.Queue', kind: 'not_found', field: 'scheduler_queue_name' },
  { title: 'queue id and name disagree', req: { hpcqueueId: 'hpcq-normal', schedulerQueueName: 'debug' }, code: 'InvalidParameter.InvalidParameterCombination', kind: INVALID, field: 'scheduler_queue_name' },
  { title: 'unknown queue id wins over a valid name', req: { hpcqueueId: 'hpcq-nope', schedulerQueueName: 'debug' }, code: 'ResourceNotFound.Queue', kind: 'not_found', field: 'hpcqueue_id' },
  { title: 'queue id of another cluster', req: { clusterId: 'hpcq-gpu', zone: '', hpcqueueId: 'hpcq-normal' }, ctx: { config: TWO_CLUSTERS }, code: 'ResourceNotFound.Queue', kind: 'not_found', field: 'hpcqueue_id' },

  // limits above the queue maximum (normal: node's 8 cores / 15872 MiB / 7 days; debug: 2 / 4096 / 1800)
  { title: 'core_limit above normal (node) max', req: { coreLimit: 9 }, code: 'InvalidParameterValue.CoreLimitTooLarge', kind: INVALID, field: 'core_limit' },
  { title: 'mem_limit above normal (node) max', req: { memLimit: 15873 }, code: 'InvalidParameterValue.MemLimitTooLarge', kind: INVALID, field: 'mem_limit' },
  { title: 'time_limit above normal max', req: { timeLimit: 7 * 86400 + 1 }, code: 'InvalidParameterValue.TimeLimitTooLarge', kind: INVALID, field: 'time_limit' },
  { title: 'core_limit above debug max (node)', req: { hpcqueueId: 'hpcq-debug', coreLimit: 9 }, code: 'InvalidParameterValue.CoreLimitTooLarge', kind: INVALID, field: 'core_limit' },
  { title: 'mem_limit above debug max (node)', req: { schedulerQueueName: 'debug', memLimit: 15873 }, code: 'InvalidParameterValue.MemLimitTooLarge', kind: INVALID, field: 'mem_limit' },
  { title: 'time_limit above debug max', req: { hpcqueueId: 'hpcq-debug', timeLimit: 1801 }, code: 'InvalidParameterValue.TimeLimitTooLarge', kind: INVALID, field: 'time_limit' },
  { title: 'huge safe-integer mem_limit', req: { memLimit: Number.MAX_SAFE_INTEGER }, code: 'InvalidParameterValue.MemLimitTooLarge', kind: INVALID, field: 'mem_limit' },

  // run_user
  // An empty run_user means the caller's own account; a certificate principal has none.
  { title: 'run_user empty from a certificate principal', req: { runUser: '' }, ctx: { principal: certificate('CN=portal') }, code: 'MissingParameter.RunUser', kind: INVALID, field: 'run_user' },
  // An admin's own account (root) is never one jobs run as.
  { title: 'run_user empty from root', req: { runUser: '' }, code: 'OperationDenied.RunUserPrivileged', kind: 'permission', field: 'run_user' },
  { title: 'run_user ../x', req: { runUser: '../x' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user with a space', req: { runUser: 'a b' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user with NUL', req: { runUser: 'alice\0' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user with newline', req: { runUser: 'alice\nroot' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user with slash', req: { runUser: 'a/b' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user with shell metachars', req: { runUser: '$(id)' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user starting with -', req: { runUser: '-alice' }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user 300 chars', req: { runUser: 'a'.repeat(300) }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user 33 chars', req: { runUser: 'a'.repeat(33) }, code: 'InvalidParameter.RunUserMalformed', kind: INVALID, field: 'run_user' },
  { title: 'run_user unknown', req: { runUser: 'mallory' }, code: 'InvalidParameter.RunUserNotFound', kind: INVALID, field: 'run_user' },
  { title: 'run_user root', req: { runUser: 'root' }, code: 'OperationDenied.RunUserPrivileged', kind: 'permission', field: 'run_user' },
  { title: 'run_user alias with uid 0', req: { runUser: 'toor' }, code: 'OperationDenied.RunUserPrivileged', kind: 'permission', field: 'run_user' },
  // 'run_user root even when the daemon is unprivileged': see the known-bug case after this table.
  { title: 'other user while the daemon runs as uid 1000', req: { runUser: 'bob' }, ctx: { daemonUid: 1000 }, code: 'OperationDenied.RunUserNotAllowed', kind: 'permission', field: 'run_user' },

  // redirect paths
  { title: 'stdout relative', req: { stdoutRedirectPath: 'out.txt' }, code: 'InvalidParameter.RedirectPathNotAbsolute', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stderr relative', req: { stderrRedirectPath: 'logs/err.txt' }, code: 'InvalidParameter.RedirectPathNotAbsolute', kind: INVALID, field: 'stderr_redirect_path' },
  { title: 'stdout bare ~', req: { stdoutRedirectPath: '~' }, code: 'InvalidParameter.RedirectPathNotAbsolute', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stdout ~otheruser/', req: { stdoutRedirectPath: '~bob/out' }, code: 'InvalidParameter.RedirectPathNotAbsolute', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stdout with ..', req: { stdoutRedirectPath: '/home/alice/../bob/out' }, code: 'InvalidParameter.RedirectPathTraversal', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stderr ~/..', req: { stderrRedirectPath: '~/../bob/err' }, code: 'InvalidParameter.RedirectPathTraversal', kind: INVALID, field: 'stderr_redirect_path' },
  { title: 'stdout ending in ..', req: { stdoutRedirectPath: '/tmp/..' }, code: 'InvalidParameter.RedirectPathTraversal', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stdout with newline', req: { stdoutRedirectPath: '/tmp/a\nb' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stderr with carriage return', req: { stderrRedirectPath: '/tmp/a\rb' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stderr_redirect_path' },
  { title: 'stdout with NUL', req: { stdoutRedirectPath: '/tmp/a\0b' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stdout unknown %-escape', req: { stdoutRedirectPath: '/tmp/%t.out' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stderr dangling %', req: { stderrRedirectPath: '/tmp/err%' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stderr_redirect_path' },
  { title: 'stdout odd run of % at the end', req: { stdoutRedirectPath: '/tmp/a%%%' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stdout names a directory', req: { stdoutRedirectPath: '/tmp/out/' }, code: 'InvalidParameter.RedirectPathMalformed', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stdout 5000 chars', req: { stdoutRedirectPath: '/' + 'a'.repeat(4999) }, code: 'InvalidParameter.RedirectPathTooLong', kind: INVALID, field: 'stdout_redirect_path' },
  { title: 'stderr 4033 bytes (room kept for %j)', req: { stderrRedirectPath: '/' + 'a'.repeat(4032) }, code: 'InvalidParameter.RedirectPathTooLong', kind: INVALID, field: 'stderr_redirect_path' },
];

describe('validateSubmit: every rejection names its code, kind and field', () => {
  it.each(REJECTIONS)('$title -> $code ($kind, $field)', async ({ req, ctx, code, kind, field }) => {
    const err = await rejection(request(req), context(ctx));
    expect({ code: err.code, kind: err.kind, field: err.field }).toEqual({ code, kind, field });
    expect(err.message.length).toBeGreaterThan(0);
  });

  it('the base request of this table is valid (so each row fails only for its own reason)', async () => {
    await expect(validateSubmit(request(), context())).resolves.toBeDefined();
    await expect(validateSubmit(request({ clusterId: 'hpcq-gpu', zone: 'gpu-zone' }), context({ config: TWO_CLUSTERS }))).resolves.toBeDefined();
    await expect(validateSubmit(request(), context({ daemonUid: 1000 }))).resolves.toBeDefined();
  });

  it('run_user root is refused even when the daemon is unprivileged', async () => {
    const err = await rejection(request({ runUser: 'root' }), context({ daemonUid: 1000 }));
    expect({ kind: err.kind, field: err.field }).toEqual({ kind: 'permission', field: 'run_user' });
  });

  // The root refusal comes first, whoever the daemon runs as.
  it('run_user root even when the daemon is unprivileged -> OperationDenied.RunUserPrivileged', async () => {
    const err = await rejection(request({ runUser: 'root' }), context({ daemonUid: 1000 }));
    expect(err.code).toBe('OperationDenied.RunUserPrivileged');
  });

  it('a cluster without a default queue refuses a submit that names no queue', async () => {
    const noDefault: ClusterConfig = {
      ...CONFIG.clusters[0]!,
      queues: CONFIG.clusters[0]!.queues.map((q) => ({ ...q, isDefault: false })),
    };
    const err = await rejection(request(), context({ config: { clusters: [noDefault], clockSkewSeconds: 300, access: CONFIG.access, maxArrayCount: 10_000 } }));
    expect({ code: err.code, kind: err.kind, field: err.field }).toEqual({ code: 'ResourceNotFound.Queue', kind: 'not_found', field: 'hpcqueue_id' });
  });

  it('malformed run_user values never reach the user directory', async () => {
    for (const runUser of ['../x', 'a b', 'alice\0', 'a'.repeat(300), '$(id)']) {
      const users = new FakeUserDirectory();
      await rejection(request({ runUser }), context({ users }));
      expect(users.lookups, JSON.stringify(runUser)).toEqual([]);
    }
  });

  it('a request rejected before the account check does not look the user up', async () => {
    const users = new FakeUserDirectory();
    await rejection(request({ name: '', runUser: 'alice' }), context({ users }));
    await rejection(request({ hpcqueueId: 'nope' }), context({ users }));
    expect(users.lookups).toEqual([]);
  });

  it('redirect paths with %% followed by a literal character are accepted', async () => {
    // Regression (src/core/validate-submit.ts:222): /%[^jxu%]|%$/ does not read escapes left to right, so
    // the second % of a "%%" escape is taken as the start of a new escape.
    const { spec } = await validateSubmit(
      request({ stdoutRedirectPath: '/tmp/100%%done.out', stderrRedirectPath: '/tmp/err-%j-100%%' }),
      context(),
    );
    expect(spec.stdoutPathTemplate).toBe('/tmp/100%%done.out');
    expect(spec.stderrPathTemplate).toBe('/tmp/err-%j-100%%');
  });
});

describe('validateSubmit: accepted boundary values', () => {
  const accepted: ReadonlyArray<readonly [string, Partial<SubmitRequest>, (spec: JobSpec) => void]> = [
    ['name of 64 chars', { name: 'a'.repeat(64) }, (s) => expect(s.name).toHaveLength(64)],
    ['name with -, _ and digits', { name: '_run-2026_v1' }, (s) => expect(s.name).toBe('_run-2026_v1')],
    ['name starting with - (the proto only forbids a leading digit)', { name: '-x' }, (s) => expect(s.name).toBe('-x')],
    ['client_token of 64 printable chars', { clientToken: '!~'.repeat(32) }, (s) => expect(s.clientToken).toHaveLength(64)],
    ['timestamp exactly 300 s ahead', { timestamp: iso(NOW_MS + 300_000) }, (s) => expect(s.clientTimestamp).toBe(iso(NOW_MS + 300_000))],
    ['timestamp exactly 300 s behind in Unix seconds', { timestamp: String(NOW_S - 300) }, (s) => expect(s.clientTimestamp).toBe(String(NOW_S - 300))],
    ['timestamp in Unix seconds with fraction', { timestamp: `${NOW_S}.250` }, (s) => expect(s.clientTimestamp).toBe(`${NOW_S}.250`)],
    ['timestamp with +08:00 offset', { timestamp: '2026-03-01T20:00:00+08:00' }, (s) => expect(s.clientTimestamp).toBe('2026-03-01T20:00:00+08:00')],
    ['timestamp without seconds', { timestamp: '2026-03-01T12:01Z' }, (s) => expect(s.clientTimestamp).toBe('2026-03-01T12:01Z')],
    ['priority 10000', { priority: 10_000 }, (s) => expect(s.priority).toBe(10_000)],
    ['submit_type 1', { submitType: 1 }, (s) => expect(s.submitType).toBe(1)],
    ['cmd_line of exactly 64 KiB', { cmdLine: 'x'.repeat(64 * 1024) }, (s) => expect(s.cmdLine).toHaveLength(64 * 1024)],
    ['cmd_line with newlines', { cmdLine: 'echo a\necho b' }, (s) => expect(s.cmdLine).toBe('echo a\necho b')],
    ['input_file of exactly 4096 bytes', { cmdLine: '', inputFile: '/' + 'a'.repeat(4095) }, (s) => expect(s.inputFile).toHaveLength(4096)],
    ['redirect path of exactly 4032 bytes', { stdoutRedirectPath: '/' + 'a'.repeat(4031) }, (s) => expect(s.stdoutPathTemplate).toHaveLength(4032)],
    ['core_limit at the node max', { coreLimit: 8 }, (s) => expect(s.cores).toBe(8)],
    ['mem_limit at the node max (16384 - 512 reserved)', { memLimit: 15872 }, (s) => expect(s.memoryLimitMb).toBe(15872)],
    ['time_limit at 7 days', { timeLimit: 7 * 86400 }, (s) => expect(s.timeLimitSeconds).toBe(7 * 86400)],
    ['debug queue at its maxima', { hpcqueueId: 'hpcq-debug', coreLimit: 2, memLimit: 4096, timeLimit: 1800 }, (s) => expect([s.cores, s.memoryLimitMb, s.timeLimitSeconds]).toEqual([2, 4096, 1800])],
    ['run_user of 32 chars', { runUser: LONG_USER }, (s) => expect(s.uid).toBe(1003)],
    ['run_user with . and - inside', { runUser: 'j.doe-2' }, (s) => expect(s.uid).toBe(1004)],
  ];
  it.each(accepted)('%s', async (_title, overrides, check) => {
    const { spec } = await validateSubmit(request(overrides), context());
    check(spec);
  });
});

describe('validateSubmit: resolution into a JobSpec', () => {
  it('fills cluster, zone, queue and limits from the default queue', async () => {
    const { spec, queue } = await validateSubmit(request({ clusterId: '', zone: '' }), context());
    expect(queue.hpcqueueId).toBe('hpcq-normal');
    expect(spec).toMatchObject({
      clusterId: 'hpcq-local',
      zone: 'local',
      hpcqueueId: 'hpcq-normal',
      schedulerQueueName: 'normal',
      cores: 1,
      memoryLimitMb: 1024,
      timeLimitSeconds: 3600,
    });
  });

  it.each([
    ['by id', { hpcqueueId: 'hpcq-debug' }],
    ['by name', { schedulerQueueName: 'debug' }],
    ['by id and name agreeing', { hpcqueueId: 'hpcq-debug', schedulerQueueName: 'debug' }],
  ])('finds the debug queue %s and takes its defaults', async (_how, overrides) => {
    const { spec, queue } = await validateSubmit(request(overrides), context());
    expect(queue).toBe(CONFIG.clusters[0]!.queues.find((q) => q.hpcqueueId === 'hpcq-debug'));
    expect(spec).toMatchObject({ hpcqueueId: 'hpcq-debug', schedulerQueueName: 'debug', cores: 1, memoryLimitMb: 512, timeLimitSeconds: 600 });
  });

  it('keeps explicit limits', async () => {
    const { spec } = await validateSubmit(request({ coreLimit: 4, memLimit: 8000, timeLimit: 120, priority: 9 }), context());
    expect(spec).toMatchObject({ cores: 4, memoryLimitMb: 8000, timeLimitSeconds: 120, priority: 9 });
  });

  it('resolves a queue name within the chosen cluster when names repeat across clusters', async () => {
    const { spec } = await validateSubmit(
      request({ clusterId: 'hpcq-gpu', zone: 'gpu-zone', schedulerQueueName: 'normal' }),
      context({ config: TWO_CLUSTERS }),
    );
    expect(spec).toMatchObject({ clusterId: 'hpcq-gpu', zone: 'gpu-zone', hpcqueueId: 'hpcq-gpu-normal' });
  });

  it('allows an empty cluster_id when exactly one cluster is configured', async () => {
    const { spec } = await validateSubmit(request({ clusterId: '' }), context());
    expect(spec.clusterId).toBe('hpcq-local');
  });

  it('records the resolved account and the request fields', async () => {
    const ts = iso(NOW_MS - 10_000);
    const { spec } = await validateSubmit(
      request({ runUser: 'alice', cmdLine: 'make -j4', clientToken: 'tok-1', timestamp: ts, submitType: 1, resourceLimit: 'nofile=64, pids=10' }),
      context(),
    );
    expect(spec).toMatchObject({
      runUser: 'alice',
      uid: 1000,
      gid: 1000,
      home: '/home/alice',
      shell: '/bin/bash',
      cmdLine: 'make -j4',
      inputFile: '',
      clientToken: 'tok-1',
      clientTimestamp: ts,
      submitType: 1,
      resourceLimit: 'pids=10,nofile=64',
      resourceLimits: { pids: 10, nofile: 64 },
    });
  });

  it('accepts an input_file instead of a cmd_line', async () => {
    const { spec } = await validateSubmit(request({ cmdLine: '', inputFile: '/home/alice/run.sh' }), context());
    expect(spec).toMatchObject({ cmdLine: '', inputFile: '/home/alice/run.sh' });
  });

  it('lets an unprivileged daemon run jobs as its own user', async () => {
    const { spec } = await validateSubmit(request({ runUser: 'alice' }), context({ daemonUid: 1000 }));
    expect(spec.uid).toBe(1000);
  });

  it('defaults stdout/stderr to ~/hpcq-%j.out/.err in the home', async () => {
    const { spec } = await validateSubmit(request(), context());
    expect(spec.stdoutPathTemplate).toBe('/home/alice/hpcq-%j.out');
    expect(spec.stderrPathTemplate).toBe('/home/alice/hpcq-%j.err');
  });

  it('expands ~/ to the run_user home and keeps %j %x %u %% for later', async () => {
    const { spec } = await validateSubmit(
      request({ runUser: 'bob', stdoutRedirectPath: '~/logs/%x-%j.out', stderrRedirectPath: '/scratch/%u/%%%j.err' }),
      context(),
    );
    expect(spec.stdoutPathTemplate).toBe('/home/bob/logs/%x-%j.out');
    expect(spec.stderrPathTemplate).toBe('/scratch/%u/%%%j.err');
  });

  it('does not double the slash when the home ends in /', async () => {
    const { spec } = await validateSubmit(request({ runUser: 'carol', stdoutRedirectPath: '~/x.out' }), context());
    expect(spec.stdoutPathTemplate).toBe('/home/carol/x.out');
    expect(spec.stderrPathTemplate).toBe('/home/carol/hpcq-%j.err');
  });
});

describe('validateSubmit: access policy', () => {
  /** The default config with `access` (snake_case, as in the file) and optionally one cluster's queues. */
  const withAccess = (access: Record<string, unknown>, queues?: Record<string, unknown>[]): DaemonConfig =>
    compileConfig({ access, ...(queues ? { clusters: [{ cluster_id: 'hpcq-local', zone: 'local', queues }] } : {}) }, 'test', {}, HOST);
  const PORTAL = certificate('CN=portal.example.org');
  const outcome = async (req: Partial<SubmitRequest>, ctx: Partial<SubmitContext>): Promise<string> => {
    try {
      const { spec } = await validateSubmit(request(req), context(ctx));
      return `ok:${spec.runUser}`;
    } catch (err) {
      if (err instanceof HpcqError) return `${err.kind}:${err.code}:${err.field}`;
      throw err;
    }
  };

  it('the default access config is the documented one', () => {
    expect(CONFIG.access).toEqual(DEFAULT_ACCESS);
  });

  it("an empty run_user means the caller's own account", async () => {
    const users = new FakeUserDirectory();
    const { spec } = await validateSubmit(request({ runUser: '' }), context({ principal: local('bob'), users }));
    expect(spec).toMatchObject({ runUser: 'bob', uid: 1001, gid: 1001, home: '/home/bob', shell: '/bin/sh', stdoutPathTemplate: '/home/bob/hpcq-%j.out' });
    // The account comes from the principal; the directory is not asked.
    expect(users.lookups).toEqual([]);
  });

  // A personal daemon (uid 1000) runs jobs only as itself, however the account was named.
  it("an unprivileged daemon refuses another uid's job when run_user is empty", async () => {
    expect(await outcome({ runUser: 'bob' }, { daemonUid: 1000, principal: local('bob') })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
    expect(await outcome({ runUser: '' }, { daemonUid: 1000, principal: local('bob') })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
  });

  it('an unprivileged daemon takes an empty run_user from its own user', async () => {
    expect(await outcome({ runUser: '' }, { daemonUid: 1000, principal: local('alice') })).toBe('ok:alice');
  });

  it('an empty run_user from a certificate principal (no account) is MissingParameter.RunUser', async () => {
    const err = await rejection(request({ runUser: '' }), context({ principal: PORTAL, config: withAccess({ principals: [{ name: PORTAL.name, run_users: ['alice'] }] }) }));
    expect({ code: err.code, kind: err.kind, field: err.field }).toEqual({ code: 'MissingParameter.RunUser', kind: 'invalid', field: 'run_user' });
  });

  it('a non-admin may submit as itself only: another user is PERMISSION_DENIED OperationDenied.RunUserNotAllowed', async () => {
    expect(await outcome({ runUser: 'alice' }, { principal: local('alice') })).toBe('ok:alice');
    const err = await rejection(request({ runUser: 'bob' }), context({ principal: local('alice') }));
    expect({ code: err.code, kind: err.kind, field: err.field }).toEqual({ code: 'OperationDenied.RunUserNotAllowed', kind: 'permission', field: 'run_user' });
    expect(toServiceError(err, {} as Logger, 'SubmitJob').code).toBe(status.PERMISSION_DENIED);
    expect(err.message).toContain('uid:1000');
    expect(err.message).toContain('bob');
    // A certificate principal not listed in access.principals may submit as no one.
    expect(await outcome({ runUser: 'alice' }, { principal: PORTAL })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
  });

  it('an admin may submit as any runnable account', async () => {
    for (const name of ['alice', 'bob', 'carol']) expect(await outcome({ runUser: name }, { principal: ADMIN })).toBe(`ok:${name}`);
    // admin_groups membership makes a local caller an admin.
    const config = withAccess({ admin_groups: ['physics'] });
    expect(await outcome({ runUser: 'alice' }, { principal: local('carol'), config })).toBe('ok:alice');
    expect(await outcome({ runUser: 'carol' }, { principal: local('alice'), config })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
    // So does a principal rule with admin: true.
    const ruled = withAccess({ principals: [{ name: PORTAL.name, admin: true }] });
    expect(await outcome({ runUser: 'bob' }, { principal: PORTAL, config: ruled })).toBe('ok:bob');
  });

  it('a listed certificate principal may submit as its run_users, and only as them', async () => {
    const config = withAccess({ principals: [{ name: PORTAL.name, run_users: ['alice'] }] });
    expect(await outcome({ runUser: 'alice' }, { principal: PORTAL, config })).toBe('ok:alice');
    expect(await outcome({ runUser: 'bob' }, { principal: PORTAL, config })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
    // Another certificate is not that principal.
    expect(await outcome({ runUser: 'alice' }, { principal: certificate('CN=other.example.org'), config })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
  });

  it('@group in run_users covers every member of the group', async () => {
    const config = withAccess({ principals: [{ name: PORTAL.name, run_users: ['@physics', 'bob'] }] });
    expect(await outcome({ runUser: 'carol' }, { principal: PORTAL, config })).toBe('ok:carol');
    expect(await outcome({ runUser: 'bob' }, { principal: PORTAL, config })).toBe('ok:bob');
    expect(await outcome({ runUser: 'alice' }, { principal: PORTAL, config })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
    // A local account listed as user:<name> gets the same rights.
    const byUserName = withAccess({ principals: [{ name: 'user:alice', run_users: ['@physics'] }] });
    expect(await outcome({ runUser: 'carol' }, { principal: local('alice'), config: byUserName })).toBe('ok:carol');
    expect(await outcome({ runUser: 'bob' }, { principal: local('alice'), config: byUserName })).toBe('permission:OperationDenied.RunUserNotAllowed:run_user');
  });

  it.each([
    ['uid 0', 'root'],
    ['uid 0 under another name', 'toor'],
    ['a uid below min_uid (daemon, uid 1)', 'daemon'],
    ['group root among the supplementary groups', 'dave'],
    ['group root as the primary group', 'erin'],
  ])('an account with %s is OperationDenied.RunUserPrivileged, even for an admin', async (_what, runUser) => {
    const portalAdmin = withAccess({ principals: [{ name: PORTAL.name, admin: true }] });
    expect(await outcome({ runUser }, { principal: ADMIN })).toBe('permission:OperationDenied.RunUserPrivileged:run_user');
    expect(await outcome({ runUser }, { principal: PORTAL, config: portalAdmin })).toBe('permission:OperationDenied.RunUserPrivileged:run_user');
  });

  it('min_uid and allow_root_group move the line', async () => {
    expect(await outcome({ runUser: 'alice' }, { config: withAccess({ min_uid: 1001 }) })).toBe('permission:OperationDenied.RunUserPrivileged:run_user');
    expect(await outcome({ runUser: 'bob' }, { config: withAccess({ min_uid: 1001 }) })).toBe('ok:bob');
    expect(await outcome({ runUser: 'daemon' }, { config: withAccess({ min_uid: 1 }) })).toBe('ok:daemon');
    const rootGroup = withAccess({ allow_root_group: true });
    expect(await outcome({ runUser: 'dave' }, { config: rootGroup })).toBe('ok:dave');
    expect(await outcome({ runUser: 'erin' }, { config: rootGroup })).toBe('ok:erin');
    // uid 0 stays refused whatever the settings.
    expect(await outcome({ runUser: 'root' }, { config: withAccess({ min_uid: 1, allow_root_group: true }) })).toBe('permission:OperationDenied.RunUserPrivileged:run_user');
  });

  it('a queue with allowed_groups refuses an account outside them with OperationDenied.QueueNotAllowed', async () => {
    const config = withAccess({}, [
      { hpcqueue_id: 'hpcq-normal', scheduler_queue_name: 'normal', default: true },
      { hpcqueue_id: 'hpcq-physics', scheduler_queue_name: 'physics', allowed_groups: ['physics'] },
    ]);
    expect(await outcome({ runUser: 'bob', hpcqueueId: 'hpcq-physics' }, { config })).toBe('permission:OperationDenied.QueueNotAllowed:hpcqueue_id');
    expect(await outcome({ runUser: 'bob', schedulerQueueName: 'physics' }, { config })).toBe('permission:OperationDenied.QueueNotAllowed:hpcqueue_id');
    expect(await outcome({ runUser: 'carol', hpcqueueId: 'hpcq-physics' }, { config })).toBe('ok:carol');
    // Even an admin cannot put another account's job there; the open queue takes anyone.
    expect(await outcome({ runUser: 'alice', hpcqueueId: 'hpcq-physics' }, { config, principal: ADMIN })).toBe('permission:OperationDenied.QueueNotAllowed:hpcqueue_id');
    expect(await outcome({ runUser: 'bob' }, { config })).toBe('ok:bob');
  });

  it('a queue with allowed_users takes the listed users (besides the members of allowed_groups)', async () => {
    const config = withAccess({}, [{ hpcqueue_id: 'hpcq-normal', scheduler_queue_name: 'normal', default: true, allowed_users: ['bob'], allowed_groups: ['physics'] }]);
    expect(await outcome({ runUser: 'bob' }, { config })).toBe('ok:bob');
    expect(await outcome({ runUser: '' }, { config, principal: local('bob') })).toBe('ok:bob');
    expect(await outcome({ runUser: 'carol' }, { config })).toBe('ok:carol');
    expect(await outcome({ runUser: 'alice' }, { config })).toBe('permission:OperationDenied.QueueNotAllowed:hpcqueue_id');
  });
});

describe('validateSubmit: fingerprint', () => {
  const base = request({ clientToken: 'tok-1', timestamp: iso(NOW_MS) });
  const fingerprint = async (req: SubmitRequest, ctx = context()) => (await validateSubmit(req, ctx)).fingerprint;

  it('is a 32-character base64url string', async () => {
    expect(await fingerprint(base)).toMatch(/^[A-Za-z0-9_-]{32}$/);
  });

  it('is equal for equal requests with different timestamps', async () => {
    const a = await fingerprint(base);
    expect(await fingerprint({ ...base, timestamp: iso(NOW_MS - 120_000) })).toBe(a);
    expect(await fingerprint({ ...base, timestamp: String(NOW_S + 60) })).toBe(a);
    expect(await fingerprint({ ...base, timestamp: '' })).toBe(a);
  });

  it('is stable across calls', async () => {
    expect(await fingerprint(base)).toBe(await fingerprint({ ...base }));
  });

  it.each([
    ['name', { name: 'job2' }],
    ['run_user', { runUser: 'bob' }],
    ['cmd_line', { cmdLine: 'echo bye' }],
    ['input_file instead of cmd_line', { cmdLine: '', inputFile: '/home/alice/run.sh' }],
    ['core_limit', { coreLimit: 2 }],
    ['mem_limit', { memLimit: 2048 }],
    ['time_limit', { timeLimit: 60 }],
    ['resource_limit', { resourceLimit: 'pids=10' }],
    ['hpcqueue_id', { hpcqueueId: 'hpcq-debug' }],
    ['scheduler_queue_name', { schedulerQueueName: 'debug' }],
    ['stdout_redirect_path', { stdoutRedirectPath: '/tmp/o' }],
    ['stderr_redirect_path', { stderrRedirectPath: '/tmp/e' }],
    ['priority', { priority: 5 }],
    ['submit_type', { submitType: 1 }],
    ['client_token', { clientToken: 'tok-2' }],
  ] as const)('differs when %s differs', async (_field, overrides) => {
    expect(await fingerprint({ ...base, ...overrides })).not.toBe(await fingerprint(base));
  });

  it('differs when the cluster differs', async () => {
    const ctx = context({ config: TWO_CLUSTERS });
    const local = await fingerprint({ ...base, clusterId: 'hpcq-local', zone: '' }, ctx);
    const gpu = await fingerprint({ ...base, clusterId: 'hpcq-gpu', zone: '' }, ctx);
    expect(gpu).not.toBe(local);
  });

  it('is equal for requests that resolve to the same job (defaults spelled out or left to the queue)', async () => {
    const a = await fingerprint(base);
    expect(await fingerprint({ ...base, clusterId: '', zone: '' })).toBe(a);
    expect(await fingerprint({ ...base, coreLimit: 1, memLimit: 1024, timeLimit: 3600, hpcqueueId: 'hpcq-normal' })).toBe(a);
    expect(await fingerprint({ ...base, stdoutRedirectPath: '~/hpcq-%j.out' })).toBe(a);
  });

  it('is equal for resource_limit lists with the same canonical form', async () => {
    const spaced = await fingerprint({ ...base, resourceLimit: ' pids = 10 , nofile = 64 ' });
    expect(await fingerprint({ ...base, resourceLimit: 'pids=10,nofile=64' })).toBe(spaced);
    // Regression (src/core/validate-submit.ts:108 with src/core/resource-limit.ts:42): spec.resourceLimits is
    // built in input order, so the JSON the fingerprint hashes depends on the key order even though
    // spec.resourceLimit (canonical) is the same.
    expect(await fingerprint({ ...base, resourceLimit: 'nofile=64,pids=10' })).toBe(spaced);
  });
});

describe('parseTimestamp', () => {
  it.each([
    ['1772366400', NOW_MS],
    ['1772366400.5', NOW_MS + 500],
    ['2026-03-01T12:00:00Z', NOW_MS],
    ['2026-03-01T12:00:00.250Z', NOW_MS + 250],
    ['2026-03-01T13:00:00+01:00', NOW_MS],
    ['2026-03-01T07:00:00-05:00', NOW_MS],
  ])('%s -> %d', (text, ms) => {
    expect(parseTimestamp(text)).toBe(ms);
  });

  it.each(['', 'now', '2026-03-01', '2026-03-01T12:00:00', '12345678', '123456789012', '2026-03-01T25:00:00Z', '1772366400 '])(
    '%j is not a timestamp',
    (text) => {
      expect(parseTimestamp(text)).toBeUndefined();
    },
  );
});

describe('validateSubmit: argv, env, working_dir, description', () => {
  it.each<[string, Partial<SubmitRequest>, string, string]>([
    ['cmd_line and argv', { cmdLine: 'true', argv: ['true'] }, 'InvalidParameter.InvalidParameterCombination', 'cmd_line'],
    ['input_file and argv', { cmdLine: '', inputFile: '/x.sh', argv: ['true'] }, 'InvalidParameter.InvalidParameterCombination', 'cmd_line'],
    ['an empty program', { cmdLine: '', argv: [''] }, 'InvalidParameter.ArgvMalformed', 'argv'],
    ['a program name with =, which env(1) would take for a variable', { cmdLine: '', argv: ['A=b', 'true'] }, 'InvalidParameter.ArgvMalformed', 'argv'],
    ['NUL in an argument', { cmdLine: '', argv: ['echo', 'a\0b'] }, 'InvalidParameter.ArgvMalformed', 'argv'],
    ['argv over 64 KiB', { cmdLine: '', argv: ['echo', 'x'.repeat(70_000)] }, 'InvalidParameter.ArgvTooLong', 'argv'],
    ['an env name with a dash', { env: { 'A-B': '1' } }, 'InvalidParameter.EnvName', 'env'],
    ['an env name starting with a digit', { env: { '1A': '1' } }, 'InvalidParameter.EnvName', 'env'],
    ['HPCQ_ names are the daemon\'s', { env: { HPCQ_JOB_ID: '7' } }, 'InvalidParameter.EnvName', 'env'],
    ['SLURM_ names are the scheduler\'s', { env: { SLURM_JOB_ID: '7' } }, 'InvalidParameter.EnvName', 'env'],
    ['reserved prefixes in any case', { env: { sbatch_x: '1' } }, 'InvalidParameter.EnvName', 'env'],
    ['more than 256 variables', { env: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, ''])) }, 'InvalidParameter.EnvTooLarge', 'env'],
    ['more than 64 KiB of env', { env: { BIG: 'x'.repeat(70_000) } }, 'InvalidParameter.EnvTooLarge', 'env'],
    ['a relative working_dir', { workingDir: 'scratch/run' }, 'InvalidParameter.WorkingDirNotAbsolute', 'working_dir'],
    ['a working_dir with a newline', { workingDir: '/tmp/a\nb' }, 'InvalidParameter.WorkingDirMalformed', 'working_dir'],
    ['a description over 1024 characters', { description: 'd'.repeat(1025) }, 'InvalidParameter.JobDescriptionTooLong', 'description'],
  ])('%s -> %s', async (_title, req, code, field) => {
    const err = await rejection(request(req), context());
    expect({ code: err.code, kind: err.kind, field: err.field }).toEqual({ code, kind: 'invalid', field });
  });

  it('keeps argv, env, working_dir and description; working_dir defaults to the home directory', async () => {
    const { spec } = await validateSubmit(
      request({ cmdLine: '', argv: ['printf', '%s\n', 'a b', '$(id)'], env: { OMP_PROC_BIND: 'true', PATH: '/opt/bin:/usr/bin' }, workingDir: '/scratch/run', description: 'd'.repeat(1024) }),
      context(),
    );
    expect(spec).toMatchObject({ argv: ['printf', '%s\n', 'a b', '$(id)'], cmdLine: '', env: { OMP_PROC_BIND: 'true', PATH: '/opt/bin:/usr/bin' }, workingDir: '/scratch/run' });
    expect(spec.description).toHaveLength(1024);
    const { spec: plain } = await validateSubmit(request(), context());
    expect(plain.workingDir).toBe('/home/alice');
  });

  it('a different env or working_dir is a different request for client_token idempotency', async () => {
    const base = request({ clientToken: 't1' });
    const fp = async (r: SubmitRequest) => (await validateSubmit(r, context())).fingerprint;
    expect(await fp({ ...base, env: { A: '1' } })).not.toBe(await fp({ ...base, env: { A: '2' } }));
    expect(await fp({ ...base, workingDir: '/a' })).not.toBe(await fp({ ...base, workingDir: '/b' }));
  });
});
