// Access control on the unix socket, with a real hpcqd run as root and real users calling it
// through the CLI (setpriv): who a caller is, whose jobs it sees, as whom it may run jobs, queue
// ACLs, reloads (SIGHUP / hpcq reconfigure), the socket's permissions and the audit log.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hpcqAs, hpcqJsonAs, runAs, type Run } from '../support/as-user.js';
import {
  blockDebugQueue,
  cancelJob,
  getJob,
  listJobs,
  makeSocketDir,
  PACKAGE_ROOT,
  rejection,
  startDaemon,
  stopAll,
  submit,
  TEST_CONFIG,
  waitForEnd,
  waitForJob,
  isRunning,
  type DaemonHandle,
} from '../support/daemon-harness.js';
import { ADMIN_GROUP, ADMIN_USER, ensureTestUsers, gidOf, isRoot, JOB_USER, JOB_USER_GROUP, need, OTHER_USER, uidOf, userExists } from '../support/privileged.js';

const ALICE = JOB_USER;
const BOB = OTHER_USER;
const ready = () => need(isRoot && ensureTestUsers(), 'root and the test accounts');

/** TEST_CONFIG with more keys for its last queue (hpcq-debug), e.g. `allowed_groups: [x]`. */
const debugQueueWith = (...keys: string[]) => TEST_CONFIG + keys.map((k) => `        ${k}\n`).join('');
const ADMIN_CONFIG = `${TEST_CONFIG}access:\n  admin_groups: [${ADMIN_GROUP}]\n`;
const VISIBLE_CONFIG = `${TEST_CONFIG}access:\n  job_visibility: all\n`;

const tempDirs: string[] = [];
afterEach(stopAll);
afterAll(() => tempDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
function tempDir(owner?: string): string {
  const dir = mkdtempSync('/tmp/hpcq-access-local-');
  chmodSync(dir, 0o755);
  if (owner) chownSync(dir, uidOf(owner), gidOf(owner));
  tempDirs.push(dir);
  return dir;
}

/** `hpcq submit` as `user` (output to /dev/null); resolves with the job id, throws if refused. */
async function submitAs(user: string, d: DaemonHandle, cmd = 'sleep 0.2; echo ok', extra: string[] = []): Promise<string> {
  const run = await trySubmitAs(user, d, cmd, extra);
  if (run.code !== 0) throw new Error(`submit as ${user} exited ${run.code}: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { job_id: string }).job_id;
}
function trySubmitAs(user: string, d: DaemonHandle, cmd: string, extra: string[] = []): Promise<Run> {
  return hpcqAs(user, d.address, ['submit', '--name', 'acc', '--stdout', '/dev/null', '--stderr', '/dev/null', '--time-limit', '30', ...extra, '--', cmd]);
}

/** A client error of the CLI: exit 2 and the reason on stderr. */
function expectRefused(run: Run, reason: string): void {
  expect(run.stderr).toContain(reason);
  expect(run.code).toBe(2);
}

interface JobJson { job_id: string; run_user: string; job_status: string; reason: string }
const statusAs = async (user: string, d: DaemonHandle, id: string) => (await hpcqJsonAs<{ job: JobJson }>(user, d.address, ['status', id])).job;
const listAs = async (user: string, d: DaemonHandle) => (await hpcqJsonAs<{ jobs: JobJson[] }>(user, d.address, ['list', '--all'])).jobs.map((j) => j.job_id).sort();
interface QueueJson { hpcqueue_id: string; usable: boolean; pending_count: number; running_count: number }
const queuesAs = async (user: string, d: DaemonHandle) =>
  Object.fromEntries((await hpcqJsonAs<{ queues: QueueJson[] }>(user, d.address, ['queues'])).queues.map((q) => [q.hpcqueue_id, q]));
interface WhoAmIJson { principal: string; authenticated_by: string; user: string; uid: string | number; admin: boolean; groups: string[]; job_visibility: string; usable_queues: string[] }
const whoami = (user: string, d: DaemonHandle) => hpcqJsonAs<WhoAmIJson>(user, d.address, ['whoami']);

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const alive = (d: DaemonHandle) => d.proc.exitCode === null && d.proc.signalCode === null;

describe('who the caller is, and whose jobs it sees (own visibility)', () => {
  it('each user submits as itself, sees only its own jobs; another user\'s job is NOT_FOUND for status, cancel and watch', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const alicesJob = await submitAs(ALICE, d, 'sleep 3; echo ok');
    const bobsJob = await submitAs(BOB, d);
    expect((await statusAs(ALICE, d, alicesJob)).run_user).toBe(ALICE);
    expect((await statusAs(BOB, d, bobsJob)).run_user).toBe(BOB);
    expect(await listAs(ALICE, d)).toEqual([alicesJob]);
    expect(await listAs(BOB, d)).toEqual([bobsJob]);

    expectRefused(await hpcqAs(BOB, d.address, ['status', alicesJob]), 'ResourceNotFound.Job');
    expectRefused(await hpcqAs(BOB, d.address, ['cancel', alicesJob]), 'ResourceNotFound.Job');
    const watch = await hpcqAs(BOB, d.address, ['watch', alicesJob, '--timeout', '20']);
    expect(watch.stderr).toContain('ResourceNotFound.Job');
    expect(watch.code).not.toBe(0);

    const ended = await waitForEnd(d, alicesJob);
    expect(ended.jobStatus).toBe('completed');
    expect(ended.runUser).toBe(ALICE);
  });

  it('a member of access.admin_groups lists every job and cancels another\'s; whoami reports each caller as the kernel sees it', async () => {
    if (!ready()) return;
    const d = await startDaemon({ config: ADMIN_CONFIG });
    const alicesJob = await submitAs(ALICE, d);
    const bobsJob = await submitAs(BOB, d, 'sleep 30');
    expect(await listAs(ADMIN_USER, d)).toEqual([alicesJob, bobsJob].sort());
    expect((await statusAs(ADMIN_USER, d, bobsJob)).run_user).toBe(BOB);
    const cancel = await hpcqAs(ADMIN_USER, d.address, ['cancel', bobsJob]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect((await waitForEnd(d, bobsJob)).jobStatus).toBe('cancelled');

    for (const [user, admin, group] of [[ALICE, false, JOB_USER_GROUP], [BOB, false, BOB], [ADMIN_USER, true, ADMIN_GROUP], ['root', true, 'root']] as const) {
      const me = await whoami(user, d);
      expect(me, user).toMatchObject({ principal: `uid:${uidOf(user)}`, authenticated_by: 'unix', user, admin });
      expect(Number(me.uid)).toBe(uidOf(user));
      expect(me.groups).toContain(group);
    }
  });

  it('forged metadata (x-user: root, x-hpcq-uid: 0, authorization: Bearer) changes nothing on the unix socket', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = tempDir();
    const script = join(dir, 'forge.mjs');
    writeFileSync(
      script,
      `import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
const [root, address] = process.argv.slice(2);
const grpc = createRequire(root + '/package.json')('@grpc/grpc-js');
const { JobServiceClient, SubmitJobRequest } = await import(pathToFileURL(root + '/dist/gen/hpcq/v1/job_service.js').href);
const { errorInfoOf } = await import(pathToFileURL(root + '/dist/api/grpc-status.js').href);
const client = new JobServiceClient(address, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.set('x-user', 'root');
md.set('x-hpcq-uid', '0');
md.set('authorization', 'Bearer anything');
const submit = (runUser) => new Promise((resolve) => client.submitJob(
  SubmitJobRequest.fromPartial({ name: 'forged', runUser, cmdLine: 'true', timeLimit: 30, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' }),
  md,
  (err, res) => resolve(err ? { code: err.code, reason: errorInfoOf(err)?.reason } : { jobId: res.jobId }),
));
console.log(JSON.stringify([await submit(${JSON.stringify(ALICE)}), await submit('')]));
client.close();
`,
    );
    chmodSync(script, 0o644);
    const run = await runAs(BOB, [process.execPath, script, PACKAGE_ROOT, d.address]);
    expect(run.code, run.stderr).toBe(0);
    const [asAlice, asSelf] = JSON.parse(run.stdout) as [{ code: number; reason: string }, { jobId: string }];
    expect(asAlice).toEqual({ code: 7, reason: 'OperationDenied.RunUserNotAllowed' }); // PERMISSION_DENIED
    expect((await getJob(d, asSelf.jobId)).runUser).toBe(BOB);
    expect((await listJobs(d)).jobs.map((j) => j.runUser)).toEqual([BOB]);
  });
});

describe('which accounts jobs may run as', () => {
  it('root, a system account and an account with group root are refused even for admins; an unknown user is INVALID_ARGUMENT; nothing is stored', async () => {
    if (!ready()) return;
    const rootGroupUser = 'hpcq-rootgrp';
    if (!userExists(rootGroupUser)) execFileSync('useradd', ['-g', '0', '--no-create-home', rootGroupUser]);
    try {
      const d = await startDaemon({ config: ADMIN_CONFIG });
      for (const [runUser, why] of [['root', /uid 0/], ['daemon', /min_uid/], [rootGroupUser, /group root/]] as const) {
        const refused = await rejection(submit(d, { name: 'priv', cmdLine: 'true', runUser }));
        expect(refused, runUser).toMatchObject({ code: 7, reason: 'OperationDenied.RunUserPrivileged' });
        expect(refused.message).toMatch(why);
        expectRefused(await trySubmitAs(ADMIN_USER, d, 'true', ['--run-user', runUser]), 'OperationDenied.RunUserPrivileged');
      }
      expect(await rejection(submit(d, { name: 'priv', cmdLine: 'true', runUser: 'hpcq-no-such-user' }))).toMatchObject({ code: 3, reason: 'InvalidParameter.RunUserNotFound' });
      expect((await listJobs(d)).jobs).toEqual([]);
    } finally {
      execFileSync('userdel', [rootGroupUser]);
    }
  });

  it('queue allowed_groups: a member may submit, others get QueueNotAllowed and see the queue as not usable', async () => {
    if (!ready()) return;
    const d = await startDaemon({ config: debugQueueWith(`allowed_groups: [${JOB_USER_GROUP}]`) });
    const id = await submitAs(ALICE, d, 'sleep 3; echo ok', ['--hpcqueue-id', 'hpcq-debug']);
    expect((await statusAs(ALICE, d, id)).run_user).toBe(ALICE);
    await waitForJob(d, id, isRunning);
    expectRefused(await trySubmitAs(BOB, d, 'true', ['--hpcqueue-id', 'hpcq-debug']), 'OperationDenied.QueueNotAllowed');

    const bobs = await queuesAs(BOB, d);
    expect(bobs['hpcq-debug']!.usable).toBe(false);
    expect(bobs['hpcq-normal']!.usable).toBe(true);
    // Totals are shown to everyone, the usable flag per caller.
    expect(bobs['hpcq-debug']!.running_count).toBe(1);
    expect((await queuesAs(ALICE, d))['hpcq-debug']!.usable).toBe(true);
    expect((await whoami(BOB, d)).usable_queues).toEqual(['hpcq-normal']);
  });

  it('a queued job whose account the reloaded queue no longer takes ends FAILED at launch and never runs (A10)', async () => {
    if (!ready()) return;
    const d = await startDaemon({ config: debugQueueWith(`allowed_users: [${ALICE}]`) });
    const blocker = await blockDebugQueue(d);
    const marker = join(tempDir(ALICE), 'ran');
    const queued = await submitAs(ALICE, d, `touch ${marker}`, ['--hpcqueue-id', 'hpcq-debug']);
    expect((await getJob(d, queued)).jobStatus).toBe('pending');

    writeFileSync(join(d.stateDir, 'hpcqd.yaml'), debugQueueWith(`allowed_users: [${BOB}]`));
    d.proc.kill('SIGHUP');
    await until('configuration reloaded', () => d.output().includes('configuration reloaded'));
    await cancelJob(d, blocker.jobId);
    const ended = await waitForEnd(d, queued);
    expect(ended.jobStatus).toBe('failed');
    expect(ended.reason).toMatch(/^LaunchFailed: OperationDenied\.QueueNotAllowed/);
    expect(existsSync(marker)).toBe(false);
    expect(alive(d)).toBe(true);
  });
});

describe('reloading the configuration', () => {
  it('SIGHUP with a broken file keeps the daemon and the old config; reconfigure needs an admin and a valid file', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const configPath = join(d.stateDir, 'hpcqd.yaml');
    writeFileSync(configPath, 'clusters: 5\n');
    d.proc.kill('SIGHUP');
    await until('the reload refusal in the log', () => d.output().includes('configuration reload refused'));
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(d)).toBe(true);
    // The old config is in force: its debug queue still takes jobs.
    const id = await submitAs(ALICE, d, 'sleep 0.2; echo ok', ['--hpcqueue-id', 'hpcq-debug']);
    expect((await waitForEnd(d, id)).jobStatus).toBe('completed');
    expectRefused(await hpcqAs('root', d.address, ['reconfigure']), 'FailedOperation.ConfigInvalid');
    expect(alive(d)).toBe(true);

    writeFileSync(configPath, VISIBLE_CONFIG);
    expectRefused(await hpcqAs(BOB, d.address, ['reconfigure']), 'OperationDenied.AdminRequired');
    expect((await whoami(BOB, d)).job_visibility).toBe('own');
    const ok = await hpcqAs('root', d.address, ['reconfigure']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await whoami(BOB, d)).job_visibility).toBe('all');
  });

  it('job_visibility: all lets another user see a job, but cancelling it is JobNotOwned', async () => {
    if (!ready()) return;
    const d = await startDaemon({ config: VISIBLE_CONFIG });
    const alicesJob = await submitAs(ALICE, d, 'sleep 3; echo ok');
    expect((await statusAs(BOB, d, alicesJob)).run_user).toBe(ALICE);
    expect(await listAs(BOB, d)).toEqual([alicesJob]);
    const cancel = await hpcqAs(BOB, d.address, ['cancel', alicesJob]);
    expectRefused(cancel, 'OperationDenied.JobNotOwned');
    const json = await hpcqAs(BOB, d.address, ['cancel', alicesJob, '--json']);
    expect(JSON.parse(json.stderr.trim().split('\n')[0]!)).toMatchObject({ status: 'PERMISSION_DENIED', reason: 'OperationDenied.JobNotOwned' });
    expect((await waitForEnd(d, alicesJob)).jobStatus).toBe('completed');
  });
});

describe('the socket and the audit log', () => {
  it('the socket is only ever seen with mode 0666 (bind dirs 0700), the state dir is 0700, and any user can connect', async () => {
    if (!ready()) return;
    const dir = makeSocketDir();
    const socketPath = join(dir, 'hpcqd.sock');
    const socketModes = new Set<number>();
    const bindDirModes = new Set<number>();
    let polls = 0;
    let polling = true;
    const poll = () => {
      polls++;
      try {
        const st = lstatSync(socketPath);
        socketModes.add(st.isSocket() ? st.mode & 0o7777 : -1);
      } catch {
        // not there yet
      }
      try {
        for (const name of readdirSync(dir)) {
          if (!name.startsWith('.hpcqd-bind-')) continue;
          try {
            bindDirModes.add(lstatSync(join(dir, name)).mode & 0o7777);
          } catch {
            // gone again
          }
        }
      } catch {
        // ignore
      }
      if (polling) setImmediate(poll);
    };
    setImmediate(poll);
    const d = await startDaemon({ env: { HPCQ_LISTEN: `unix:${socketPath}` } }).finally(() => (polling = false));
    poll();
    expect(polls).toBeGreaterThan(10);
    expect([...socketModes]).toEqual([0o666]);
    expect([...bindDirModes].filter((m) => m !== 0o700)).toEqual([]);
    expect(readdirSync(dir).filter((n) => n.startsWith('.hpcqd-bind-'))).toEqual([]);
    expect(statSync(dir).mode & 0o7777).toBe(0o755); // the socket's directory is left as it was
    expect(statSync(join(d.stateDir, 'state')).mode & 0o7777).toBe(0o700);
    const queues = await hpcqAs(BOB, `unix:${socketPath}`, ['queues']);
    expect(queues.code, queues.stderr).toBe(0);
  });

  it('every mutating call and every refusal is one JSON line in a 0600 audit log', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const alicesJob = await submitAs(ALICE, d);
    expectRefused(await trySubmitAs(BOB, d, 'true', ['--run-user', ALICE]), 'OperationDenied.RunUserNotAllowed');
    expectRefused(await hpcqAs(BOB, d.address, ['reconfigure']), 'OperationDenied.AdminRequired');
    const auditPath = join(d.stateDir, 'state', 'audit.log');
    type Line = { time: string; principal: string; peer: string; method: string; result: string; jobId?: string; runUser?: string; reason?: string };
    const lines = (): Line[] => (existsSync(auditPath) ? readFileSync(auditPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) : []);
    await until('three audit lines', () => lines().length >= 3);
    const all = lines();
    expect(all).toHaveLength(3);
    const alice = `uid:${uidOf(ALICE)}`;
    const bob = `uid:${uidOf(BOB)}`;
    expect(all[0]).toMatchObject({ principal: alice, method: 'SubmitJob', result: 'ok', jobId: alicesJob });
    expect(all[0]!.peer).toMatch(new RegExp(`^${alice}/pid:\\d+$`));
    expect(all[1]).toMatchObject({ principal: bob, method: 'SubmitJob', result: 'refused', runUser: ALICE, reason: 'OperationDenied.RunUserNotAllowed' });
    expect(all[2]).toMatchObject({ principal: bob, method: 'Reconfigure', result: 'refused', reason: 'OperationDenied.AdminRequired' });
    for (const line of all) expect(Number.isNaN(Date.parse(line.time))).toBe(false);
    expect(statSync(auditPath).mode & 0o7777).toBe(0o600);
  });
});
