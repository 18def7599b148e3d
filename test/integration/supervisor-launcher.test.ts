/**
 * The real launcher (src/launcher/hpcq-launcher.c) and its Node side (supervisor-launcher.ts), run
 * as root with jobs of the test user: supervisors start as before (own session, no environment, no
 * job data on the command line, no inherited descriptors), launch failures carry the supervisor's
 * message, and the launcher's end (closed, killed, or its daemon killed) harms no running job.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LaunchError } from '../../src/core/ports.js';
import { processIsAlive } from '../../src/exec/process-identity.js';
import { exitFilePath, parseExitRecord, readExitFile, type SupervisorExitRecord } from '../../src/exec/run-files.js';
import { launcherPath, SupervisorLauncher } from '../../src/exec/supervisor-launcher.js';
import { buildSupervisorArgs, signalSupervisor, supervisorPath, type SupervisorSpec } from '../../src/exec/supervisor-process.js';
import { JOB_USER, ensureTestUsers, isRoot, need } from '../support/privileged.js';

const RUN_MARK = `hpcq-launcher-test-${randomBytes(6).toString('hex')}`;
const tempDirs: string[] = [];
const launchers: SupervisorLauncher[] = [];
let nextJobId = 500;
let ids: { uid: number; gid: number } | undefined;

function privileged(): boolean {
  if (!need(isRoot, 'root') || !need(ensureTestUsers(), `test user ${JOB_USER}`)) return false;
  if (!need(existsSync(launcherPath()), 'built launcher (npm run build)')) return false;
  if (!ids) {
    const fields = execFileSync('getent', ['passwd', JOB_USER], { encoding: 'utf8' }).trim().split(':');
    ids = { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  return true;
}

function sandbox(): { runDir: string; outDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-launcher-'));
  tempDirs.push(dir);
  chmodSync(dir, 0o755);
  const runDir = join(dir, 'run');
  const outDir = join(dir, 'out');
  mkdirSync(runDir, { mode: 0o700 });
  mkdirSync(outDir, { mode: 0o755 });
  chownSync(outDir, ids!.uid, ids!.gid);
  return { runDir, outDir };
}

function jobSpec(box: { runDir: string; outDir: string }, program: string, args: string[], extra: Partial<SupervisorSpec> = {}): SupervisorSpec {
  const jobId = nextJobId++;
  return {
    jobId,
    runDir: box.runDir,
    user: JOB_USER,
    uid: ids!.uid,
    gid: ids!.gid,
    cwd: box.outDir,
    stdoutPath: join(box.outDir, `${jobId}.out`),
    stderrPath: join(box.outDir, `${jobId}.out`),
    killGraceSeconds: 1,
    env: { PATH: '/usr/bin:/bin', HPCQ_TEST_RUN: RUN_MARK },
    program,
    args,
    ...extra,
  };
}

function newLauncher(options: ConstructorParameters<typeof SupervisorLauncher>[0] = {}): SupervisorLauncher {
  const launcher = new SupervisorLauncher(options);
  launchers.push(launcher);
  return launcher;
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const exitFile = (spec: SupervisorSpec): Promise<SupervisorExitRecord> => waitFor(`exit file of job ${spec.jobId}`, () => readExitFile(spec.runDir, spec.jobId));

function statFields(pid: number): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

async function rejection(promise: Promise<unknown>): Promise<LaunchError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LaunchError);
  return err as LaunchError;
}

afterAll(() => {
  for (const launcher of launchers) launcher.close();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`HPCQ_TEST_RUN=${RUN_MARK}`)) process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone, or not ours to read
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('starting supervisors through hpcq-launcher', () => {
  it('starts the supervisor detached, with no environment, no job data on its command line and only stdio', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const launcher = newLauncher();
    const spec = jobSpec(box, '/bin/sleep', ['300'], { env: { PATH: '/usr/bin:/bin', HPCQ_TEST_RUN: RUN_MARK, SECRET_OF_JOB: 'x' } });
    const handle = await launcher.launch(spec);
    try {
      const sup = handle.supervisorPid;
      expect(processIsAlive(sup, handle.supervisorStartTicks)).toBe(true);
      expect(processIsAlive(handle.jobPid, handle.jobStartTicks)).toBe(true);
      const [, ppid, , session] = statFields(sup);
      expect(Number(ppid)).toBe(launcher.pid);
      expect(Number(session)).toBe(sup); // its own session
      expect(readFileSync(`/proc/${sup}/environ`, 'latin1')).toBe('');
      expect(readFileSync(`/proc/${sup}/cmdline`, 'utf8').split('\0').slice(1, -1)).toEqual(['--job-id', String(spec.jobId), '--run-dir', spec.runDir, '--args-from-stdin']);
      expect(readlinkSync(`/proc/${sup}/cwd`)).toBe('/');
      // Right after its handshake the supervisor lets go of the pipe to the launcher.
      const fds = await waitFor('stdio on /dev/null', () => {
        const open = readdirSync(`/proc/${sup}/fd`).map(Number).sort((a, b) => a - b);
        return open.every((fd) => readlinkSync(`/proc/${sup}/fd/${fd}`) === '/dev/null') ? open : undefined;
      });
      expect(fds).toEqual([0, 1, 2]);
      // The launcher itself keeps nothing of the daemon either.
      expect(readFileSync(`/proc/${launcher.pid}/environ`, 'latin1')).toBe('');
      expect(readdirSync(`/proc/${launcher.pid}/fd`).map(Number).filter((fd) => fd > 2 && !readlinkSync(`/proc/${launcher.pid}/fd/${fd}`).startsWith('anon_inode:'))).toEqual([]);
    } finally {
      signalSupervisor(handle.supervisorPid, handle.supervisorStartTicks, 'cancel');
    }
    expect(await handle.exited).toEqual({ code: 0, signal: null, exitRecord: readFileSync(exitFilePath(spec.runDir, spec.jobId), 'utf8') });
    expect(await exitFile(spec)).toMatchObject({ status: 'signaled', cancelled: true, jobPid: handle.jobPid });
  });

  it('reports the job\'s exit record with the supervisor\'s end, byte for byte as the file holds it', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    // Accounting text with a '%', a newline and a non-ASCII letter, from a file whose name has them
    // too: escaped by the supervisor, escaped again by the launcher, decoded here.
    const accountFile = join(box.outDir, 'acct-100%-é');
    writeFileSync(accountFile, 'a 1\nb%2 é\n');
    const spec = jobSpec(box, '/bin/sh', ['-c', 'exit 3'], { accountingFiles: [accountFile] });
    const handle = await newLauncher().launch(spec);
    const exit = await handle.exited;
    expect(exit.exitRecord).toBe(readFileSync(exitFilePath(spec.runDir, spec.jobId), 'utf8'));
    const record = parseExitRecord(exit.exitRecord!);
    expect(record).toMatchObject({ status: 'exited', exitCode: 3 });
    expect(record.accounting.get(accountFile)).toBe('a 1\nb%2 é\n');
  });

  it('removes a job\'s run files when asked (a link itself, not what it points to); says no when no launcher runs', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const launcher = newLauncher();
    expect(launcher.removeRunFiles(box.runDir, 1)).toBe(false); // none started yet: the caller removes them
    const spec = jobSpec(box, '/bin/true', []);
    const handle = await launcher.launch(spec);
    await handle.exited;
    const outside = join(box.outDir, 'not-a-run-file');
    writeFileSync(outside, 'kept');
    writeFileSync(join(box.runDir, '9999.sup'), 'x');
    writeFileSync(join(box.runDir, '9999.exit'), 'x');
    writeFileSync(join(box.runDir, '99990.exit'), 'another job');
    symlinkSync(outside, join(box.runDir, '9998.exit'));
    expect(launcher.removeRunFiles(box.runDir, 9999)).toBe(true);
    expect(launcher.removeRunFiles(box.runDir, 9998)).toBe(true);
    expect(launcher.removeRunFiles(box.runDir, spec.jobId)).toBe(true);
    await waitFor('run files removed', () => (readdirSync(box.runDir).length === 1 ? true : undefined));
    expect(readdirSync(box.runDir)).toEqual(['99990.exit']);
    expect(readFileSync(outside, 'utf8')).toBe('kept');
  });

  it('serves a removal before a later launch of the same job id (a retry): the new run files stay', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const launcher = newLauncher();
    const first = jobSpec(box, '/bin/sh', ['-c', 'exit 1']);
    await (await launcher.launch(first)).exited;
    // The retry: the old attempt's files removed, the same id launched at once.
    expect(launcher.removeRunFiles(box.runDir, first.jobId)).toBe(true);
    const retry = await launcher.launch({ ...first, args: ['-c', 'exit 2'] });
    const exit = await retry.exited;
    expect(parseExitRecord(exit.exitRecord!)).toMatchObject({ status: 'exited', exitCode: 2 });
    await sleep(500); // past the removal's own deadline: nothing else is removed
    expect(await readExitFile(box.runDir, first.jobId)).toMatchObject({ status: 'exited', exitCode: 2 });
  });

  it('passes an argument block larger than a pipe holds', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const words = Array.from({ length: 400 }, (_, i) => `${i}`.padEnd(1000, 'y'));
    const spec = jobSpec(box, '/bin/sh', ['-c', 'for a do last=$a; done; echo "$# $last"', 'sh', ...words]);
    await newLauncher().launch(spec);
    expect(await exitFile(spec)).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(readFileSync(spec.stdoutPath, 'utf8').trim()).toBe(`400 ${words[399]}`);
  });

  it('rejects with the supervisor\'s message when the job cannot start, after the supervisor ended', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/true', [], { cwd: join(box.outDir, 'missing') });
    const err = await rejection(newLauncher().launch(spec));
    expect(err.message).toBe(`chdir ${spec.cwd}: No such file or directory`);
    expect(await readExitFile(spec.runDir, spec.jobId)).toMatchObject({ status: 'launch_failed', error: err.message });
  });

  it('rejects naming the supervisor (or the launcher) when it cannot be executed, and when it fails before its handshake', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const missing = await rejection(newLauncher({ supervisorExecutable: '/nonexistent/hpcq-supervisor' }).launch(jobSpec(box, '/bin/true', [])));
    expect(missing.message).toBe('cannot start the job supervisor /nonexistent/hpcq-supervisor: No such file or directory');
    // /bin/false stands for a supervisor that dies before answering.
    const silent = await rejection(newLauncher({ supervisorExecutable: '/bin/false' }).launch(jobSpec(box, '/bin/true', [])));
    expect(silent.message).toBe('job supervisor exited with status 1 before starting the job');
    const noLauncher = await rejection(newLauncher({ launcherExecutable: '/nonexistent/hpcq-launcher' }).launch(jobSpec(box, '/bin/true', [])));
    expect(noLauncher.message).toMatch(/^cannot run the supervisor launcher \/nonexistent\/hpcq-launcher: .*ENOENT/);
  });

  it('leaves running jobs alone when it is closed or killed, and a new launcher serves the next launch', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const launcher = newLauncher();
    const first = jobSpec(box, '/bin/sh', ['-c', 'sleep 1; exit 7']);
    const firstHandle = await launcher.launch(first);
    const firstLauncher = launcher.pid!;
    process.kill(firstLauncher, 'SIGKILL');
    await waitFor('the launcher to be gone', () => (launcher.pid === undefined ? true : undefined));
    const second = jobSpec(box, '/bin/sh', ['-c', 'sleep 1; exit 8']);
    const secondHandle = await launcher.launch(second);
    expect(launcher.pid).not.toBe(firstLauncher);
    launcher.close();
    expect(await exitFile(first)).toMatchObject({ status: 'exited', exitCode: 7, jobPid: firstHandle.jobPid });
    expect(await exitFile(second)).toMatchObject({ status: 'exited', exitCode: 8, jobPid: secondHandle.jobPid });
  });

  it('dies with its daemon; the supervisors it started carry on', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/sh', ['-c', 'sleep 1; exit 5']);
    const block = Buffer.from(buildSupervisorArgs(spec).slice(4).map((a) => `${a}\0`).join(''));
    // A stand-in daemon: starts the launcher, asks for one supervisor, prints both pids once the
    // job started, and is SIGKILLed.
    const standIn = `
      const { spawn } = require('node:child_process');
      const [launcher, supervisor, head, block] = JSON.parse(process.argv[1]);
      const child = spawn(launcher, ['--supervisor', supervisor, '--parent', String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'], env: {} });
      const payload = Buffer.concat([Buffer.from(head), Buffer.from(block, 'base64')]);
      const len = Buffer.alloc(4); len.writeUInt32LE(payload.length);
      child.stdin.write(Buffer.concat([len, payload]));
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (!/line 1 started/.test(out)) return;
        process.stdout.write(child.pid + ' ' + /spawned 1 (\\d+)/.exec(out)[1] + '\\n', () => process.kill(process.pid, 'SIGKILL'));
      });
    `;
    const result = spawnSync(process.execPath, ['-e', standIn, JSON.stringify([launcherPath(), supervisorPath(), `S1\0${spec.jobId}\0${spec.runDir}\0`, block.toString('base64')])], { encoding: 'utf8', timeout: 30_000 });
    expect(result.signal).toBe('SIGKILL');
    const [launcherPid, supervisorPid] = result.stdout.trim().split(' ').map(Number);
    await waitFor('the launcher to die with its daemon', () => {
      try {
        return statFields(launcherPid!)[0] === 'Z' ? true : undefined;
      } catch {
        return true;
      }
    });
    expect(await exitFile(spec)).toMatchObject({ status: 'exited', exitCode: 5 });
    expect(supervisorPid).toBeGreaterThan(0);
  });
});

/** A FIFO nobody reads: opening it for writing blocks, so a launch step that writes it hangs. */
function blockingFile(box: { runDir: string }): string {
  const fifo = join(box.runDir, '..', 'no-reader');
  if (!existsSync(fifo)) execFileSync('mkfifo', ['-m', '0600', fifo]);
  return fifo;
}

describe('a launch that hangs before the job runs', () => {
  it('fails at the launch deadline with a message naming the step, and leaves no process', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const fifo = blockingFile(box);
    const spec = jobSpec(box, '/bin/true', [], { cgroupProcs: [fifo], launchTimeoutSeconds: 1 });
    let supervisor: { pid: number; startTicks: number } | undefined;
    const err = await rejection(newLauncher().launch(spec, (pid, startTicks) => (supervisor = { pid, startTicks })));
    expect(err.message).toBe(`launch did not finish within 1 s: stuck joining its cgroups (${fifo})`);
    expect(await readExitFile(spec.runDir, spec.jobId)).toMatchObject({ status: 'launch_failed', error: err.message, cancelled: false, timedOut: false });
    // Settled once the supervisor ended, which was after it had reaped the stuck child.
    expect(processIsAlive(supervisor!.pid, supervisor!.startTicks)).toBe(false);
    expect(childrenOf(supervisor!.pid)).toEqual([]);
  });

  it('is cancelled by SIGUSR1: recorded as cancelled, not as a launch failure', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const fifo = blockingFile(box);
    const spec = jobSpec(box, '/bin/true', [], { cgroupProcs: [fifo], launchTimeoutSeconds: 60 });
    const err = await rejection(
      newLauncher().launch(spec, (pid, startTicks) => {
        // As soon as the daemon hears of it: the supervisor must take the cancel whenever it comes.
        expect(signalSupervisor(pid, startTicks, 'cancel')).toBe(true);
      }),
    );
    expect(err.message).toMatch(/^cancelled while launching \((before its first step|joining its cgroups .*)\)$/);
    const record = await readExitFile(spec.runDir, spec.jobId);
    expect(record).toMatchObject({ status: 'signaled', signal: 9, cancelled: true, timedOut: false });
    // Its time ran from the supervisor's start, though the job itself never ran.
    expect(record!.startMs).toBeGreaterThan(0);
    expect(record!.endMs).toBeGreaterThanOrEqual(record!.startMs);
  });

  it('is ended by the time limit, which counts from the supervisor\'s start: recorded as timed out', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const fifo = blockingFile(box);
    const spec = jobSpec(box, '/bin/true', [], { cgroupProcs: [fifo], launchTimeoutSeconds: 60, timeLimitSeconds: 1 });
    const err = await rejection(newLauncher().launch(spec));
    expect(err.message).toBe(`the time limit ran out while launching (joining its cgroups (${fifo}))`);
    expect(await readExitFile(spec.runDir, spec.jobId)).toMatchObject({ status: 'signaled', signal: 9, cancelled: false, timedOut: true });
  });

  it('is attached, not failed, when the launcher dies meanwhile: the supervisor still decides it', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const fifo = blockingFile(box);
    const spec = jobSpec(box, '/bin/true', [], { cgroupProcs: [fifo], launchTimeoutSeconds: 1 });
    const launcher = newLauncher();
    let supervisorPid = 0;
    const handle = launcher.launch(spec, (pid) => (supervisorPid = pid));
    // Once the supervisor has forked the job's process (stuck in the FIFO): a supervisor killed
    // with the launcher before its exec could not have started anything.
    await waitFor('the job process', () => (supervisorPid > 0 && childrenOf(supervisorPid).length > 0 ? true : undefined));
    process.kill(launcher.pid!, 'SIGKILL');
    const attached = await handle;
    expect(attached.supervisorPid).toBe(supervisorPid);
    expect(await exitFile(spec)).toMatchObject({ status: 'launch_failed', error: `launch did not finish within 1 s: stuck joining its cgroups (${fifo})` });
  });
});

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('a supervisor waiting for the daemon\'s go', () => {
  it('starts the job only at the go, and writes its .sup then', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/sh', ['-c', 'echo ran']);
    let go!: () => void;
    const durable = new Promise<void>((resolve) => (go = resolve));
    let supervisorPid = 0;
    const launched = newLauncher().launch(spec, (pid) => (supervisorPid = pid), durable);
    // Set up as far as the exec (its child waits), and nothing recorded or run yet.
    await waitFor('the job process', () => (supervisorPid > 0 && childrenOf(supervisorPid).length > 0 ? true : undefined));
    await sleep(100);
    expect(readdirSync(spec.runDir)).toEqual([]);
    expect(existsSync(spec.stdoutPath)).toBe(true); // opened (as the user) ahead, still empty
    expect(readFileSync(spec.stdoutPath, 'utf8')).toBe('');
    go();
    const handle = await launched;
    expect(handle.supervisorPid).toBe(supervisorPid);
    expect(await exitFile(spec)).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(readFileSync(spec.stdoutPath, 'utf8')).toBe('ran\n');
  });

  it('runs nothing and records nothing when aborted, or when the launcher dies before the go', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    for (const how of ['abort', 'launcher killed'] as const) {
      const spec = jobSpec(box, '/bin/sh', ['-c', 'echo ran']);
      let abort!: (err: Error) => void;
      const durable = new Promise<void>((_resolve, reject) => (abort = reject));
      durable.catch(() => undefined);
      let supervisorPid = 0;
      const launcher = newLauncher();
      const launched = launcher.launch(spec, (pid) => (supervisorPid = pid), durable);
      await waitFor('the job process', () => (supervisorPid > 0 && childrenOf(supervisorPid).length > 0 ? true : undefined));
      if (how === 'abort') abort(new Error('the RUNNING write failed'));
      else process.kill(launcher.pid!, 'SIGKILL');
      const err = await rejection(launched);
      expect(err.message).toMatch(how === 'abort' ? /^aborted: the daemon did not store the job as running$/ : /^the supervisor launcher ended/);
      await waitFor('the supervisor to end', () => (existsSync(`/proc/${supervisorPid}`) ? undefined : true));
      expect(readdirSync(spec.runDir).filter((f) => f.startsWith(`${spec.jobId}.`))).toEqual([]);
      expect(readFileSync(spec.stdoutPath, 'utf8')).toBe('');
    }
  });
});
