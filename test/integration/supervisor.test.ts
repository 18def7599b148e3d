/**
 * The real compiled supervisor (src/launcher/hpcq-supervisor.c) run as root with jobs of the test
 * user: run-as correctness (R1-R6), output files (F1, F2, F8), limits and kills (L8-L10, L12, K1),
 * surviving the daemon (D4/D5) and no zombies or leftovers (L17).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lchownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../../src/core/ports.js';
import { CgroupV1Limiter } from '../../src/exec/limits/cgroup-v1-limiter.js';
import { MIB } from '../../src/exec/limits/limiter.js';
import { findSupervisorProcesses, processIsAlive, processStartTicks } from '../../src/exec/process-identity.js';
import { readExitFile, readSupervisorFile, type SupervisorExitRecord } from '../../src/exec/run-files.js';
import {
  buildSupervisorArgs,
  parseHandshake,
  signalSupervisor,
  spawnSupervisor,
  supervisorPath,
  type SupervisorSpec,
} from '../../src/exec/supervisor-process.js';
import { JOB_USER, OTHER_USER, ensureTestUsers, isRoot, need } from '../support/privileged.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixturesDir = join(repoRoot, 'test', 'fixtures');
/** Marks every job process of this file, so leftovers are found (and cleaned) by environment. */
const RUN_MARK = `hpcq-sup-test-${randomBytes(6).toString('hex')}`;

let jobUid = -1;
let jobGid = -1;
const tempDirs: string[] = [];

function accountIds(name: string): { uid: number; gid: number } {
  const fields = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim().split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** Root and the job user are required; skips locally, fails in CI (HPCQ_TEST_REQUIRE_PRIVILEGED=1). */
function privileged(): boolean {
  if (!need(isRoot, 'root')) return false;
  if (!need(ensureTestUsers(), `test user ${JOB_USER}`)) return false;
  if (jobUid < 0) ({ uid: jobUid, gid: jobGid } = accountIds(JOB_USER));
  return true;
}

interface Sandbox {
  dir: string;
  /** Root-owned 0700: the supervisor's run files. */
  runDir: string;
  /** Owned by the job user: outputs and the job's own files. */
  outDir: string;
  /** Fixtures copied where the job user can read them, whatever the checkout's permissions. */
  binDir: string;
}

function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-sup-'));
  tempDirs.push(dir);
  chmodSync(dir, 0o755);
  const runDir = join(dir, 'run');
  const outDir = join(dir, 'out');
  const binDir = join(dir, 'bin');
  mkdirSync(runDir, { mode: 0o700 });
  mkdirSync(outDir, { mode: 0o755 });
  chownSync(outDir, jobUid, jobGid);
  mkdirSync(binDir, { mode: 0o755 });
  for (const name of readdirSync(fixturesDir)) {
    copyFileSync(join(fixturesDir, name), join(binDir, name));
    chmodSync(join(binDir, name), 0o755);
  }
  return { dir, runDir, outDir, binDir };
}

let nextJobId = 100;

function jobSpec(box: Sandbox, program: string, args: string[], extra: Partial<SupervisorSpec> = {}): SupervisorSpec {
  const jobId = nextJobId++;
  return {
    jobId,
    runDir: box.runDir,
    user: JOB_USER,
    uid: jobUid,
    gid: jobGid,
    cwd: box.outDir,
    stdoutPath: join(box.outDir, `${jobId}.out`),
    stderrPath: join(box.outDir, `${jobId}.err`),
    killGraceSeconds: 2,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: `/home/${JOB_USER}`, HPCQ_TEST_RUN: RUN_MARK },
    program,
    args,
    ...extra,
  };
}

function fixture(box: Sandbox, name: string, ...args: string[]): { program: string; args: string[] } {
  return { program: '/bin/sh', args: [join(box.binDir, name), ...args] };
}

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function waitForExitFile(spec: SupervisorSpec): Promise<SupervisorExitRecord> {
  return waitFor(`exit file of job ${spec.jobId}`, () => readExitFile(spec.runDir, spec.jobId));
}

async function runToEnd(spec: SupervisorSpec): Promise<SupervisorExitRecord> {
  await spawnSupervisor(spec);
  return waitForExitFile(spec);
}

async function launchError(promise: Promise<unknown>): Promise<LaunchError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(LaunchError);
    return err as LaunchError;
  }
  throw new Error('launch unexpectedly succeeded');
}

/** Pids of live processes whose environment carries `mark`. */
function processesMarked(mark: string, prefix = false): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
      const state = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const marked = environ
        .split('\0')
        .some((v) => (prefix ? v.startsWith(`HPCQ_TEST_RUN=${mark}`) : v === `HPCQ_TEST_RUN=${mark}`));
      if (marked && !/\) Z /.test(state)) pids.push(Number(entry));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

function readLines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
}

beforeAll(() => {
  // Build the supervisor when it is missing or older than its source, so the tests never run a stale binary.
  const binary = supervisorPath();
  const source = join(repoRoot, 'src', 'launcher', 'hpcq-supervisor.c');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    execFileSync(join(repoRoot, 'scripts', 'build-launcher.sh'), { stdio: 'inherit' });
  }
});

afterAll(() => {
  for (const pid of processesMarked(RUN_MARK, true)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('hpcq-supervisor argument contract', () => {
  it('exits 2 with a message on an unknown option', () => {
    const result = spawnSync(supervisorPath(), ['--job-id', '1', '--bogus', 'x'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown option '--bogus'/);
  });

  it('exits 2 when the program is missing', () => {
    const box = { runDir: '/nonexistent', outDir: '/tmp', binDir: '/tmp', dir: '/tmp' };
    const args = buildSupervisorArgs({ ...jobSpec(box, '/bin/true', []), uid: 1000, gid: 1000 });
    const result = spawnSync(supervisorPath(), args.slice(0, args.indexOf('--') + 1), { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/missing program/);
  });

  it('refuses to run a job as uid 0 and records the launch failure', async () => {
    const box = { ...sandboxForAnyone() };
    const args = [
      '--job-id', '7', '--run-dir', box.runDir, '--user', 'root', '--uid', '0', '--gid', '0', '--cwd', '/',
      '--stdout', join(box.runDir, 'x.out'), '--stderr', join(box.runDir, 'x.out'), '--', '/bin/true',
    ];
    const result = spawnSync(supervisorPath(), args, { encoding: 'utf8' });
    expect(result.status).toBe(0);
    expect(parseHandshake(result.stdout.trim())).toEqual({ ok: false, message: 'refusing to run a job as root (uid 0)' });
    const record = await readExitFile(box.runDir, 7);
    expect(record).toMatchObject({ status: 'launch_failed', error: 'refusing to run a job as root (uid 0)' });
    expect(existsSync(join(box.runDir, 'x.out'))).toBe(false);
  });
});

/** A scratch directory for tests that do not need the job user. */
function sandboxForAnyone(): { runDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-sup-'));
  tempDirs.push(dir);
  return { runDir: dir };
}

describe('hpcq-supervisor running jobs as the job user', () => {
  it('records the exit code of the main process', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const { program, args } = fixture(box, 'exits-3.sh');
    const spec = jobSpec(box, program, args);
    const handle = await spawnSupervisor(spec);
    expect(handle.jobPid).toBeGreaterThan(0);
    expect(handle.supervisorPid).toBeGreaterThan(0);
    const record = await waitForExitFile(spec);
    expect(record).toMatchObject({ status: 'exited', exitCode: 3, signal: 0, timedOut: false, cancelled: false });
    expect(record.jobPid).toBe(handle.jobPid);
    expect(record.endMs).toBeGreaterThanOrEqual(record.startMs);
    expect(record.error).toBeUndefined();
    const sup = await readSupervisorFile(spec.runDir, spec.jobId);
    expect(sup).toEqual({
      supervisorPid: handle.supervisorPid,
      supervisorStartTicks: handle.supervisorStartTicks,
      bootId: handle.bootId,
    });
    await handle.exited;
    expect(processIsAlive(handle.supervisorPid, handle.supervisorStartTicks)).toBe(false);
  });

  it('writes the outputs as files of the job user, with the job umask', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const { program, args } = fixture(box, 'writes-output.sh', 'hello');
    const spec = jobSpec(box, program, args, { umask: 0o027 });
    const record = await runToEnd(spec);
    expect(record).toMatchObject({ status: 'exited', exitCode: 0 });
    for (const [path, text] of [
      [spec.stdoutPath, 'out: hello\n'],
      [spec.stderrPath, 'err: hello\n'],
    ] as const) {
      expect(readFileSync(path, 'utf8')).toBe(text);
      const st = statSync(path);
      expect(st.uid).toBe(jobUid);
      expect(st.gid).toBe(jobGid);
      expect(st.mode & 0o777).toBe(0o640);
    }
    const created = statSync(join(box.outDir, 'created-by-job'));
    expect(created.uid).toBe(jobUid);
    expect(created.mode & 0o777).toBe(0o640);
  });

  it('sends stdout and stderr to one file when both paths are equal', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const { program, args } = fixture(box, 'writes-output.sh', 'both');
    const spec = jobSpec(box, program, args);
    spec.stderrPath = spec.stdoutPath;
    await runToEnd(spec);
    expect(readFileSync(spec.stdoutPath, 'utf8')).toBe('out: both\nerr: both\n');
  });

  it('runs with the user, group and supplementary groups of `id <job user>` (R1)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/usr/bin/id', []);
    const record = await runToEnd(spec);
    expect(record).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(readFileSync(spec.stdoutPath, 'utf8')).toBe(execFileSync('id', [JOB_USER], { encoding: 'utf8' }));
  });

  it('passes exactly the given environment and nothing of the daemon (R2)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    process.env.DAEMON_SECRET = 'x';
    try {
      const env = { PATH: '/usr/bin:/bin', HPCQ_TEST_RUN: RUN_MARK, ODD: 'a b=c;$HOME' };
      const spec = jobSpec(box, '/usr/bin/env', [], { env });
      await runToEnd(spec);
      expect(readLines(spec.stdoutPath).sort()).toEqual(Object.entries(env).map(([k, v]) => `${k}=${v}`).sort());
    } finally {
      delete process.env.DAEMON_SECRET;
    }
  });

  it('closes descriptors leaked by the parent without close-on-exec (R3)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const leak = 'exec 7</etc/hostname 9<"$0"; exec "$@"';
    // Control: the shell really passes fd 7 on through exec.
    const control = execFileSync('/bin/sh', ['-c', leak, '/etc/hostname', '/bin/ls', '/proc/self/fd'], {
      encoding: 'utf8',
    });
    expect(control.split('\n')).toContain('7');

    const spec = jobSpec(box, '/bin/sleep', ['1000']);
    const args = buildSupervisorArgs(spec);
    const child = spawn('/bin/sh', ['-c', leak, '/etc/hostname', supervisorPath(), ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const line = await waitFor('handshake', () => (out.includes('\n') ? out.split('\n')[0] : undefined));
    const answer = parseHandshake(line!);
    if (!answer.ok) throw new Error(answer.message);
    expect(readdirSync(`/proc/${answer.jobPid}/fd`).sort()).toEqual(['0', '1', '2']);
    expect(readdirSync(`/proc/${child.pid}/fd`).map(Number).filter((fd) => fd >= 3)).toEqual([]);

    const sup = await waitFor('supervisor file', () => readSupervisorFile(spec.runDir, spec.jobId));
    expect(sup.supervisorPid).toBe(child.pid);
    expect(signalSupervisor(sup.supervisorPid, sup.supervisorStartTicks, 'cancel')).toBe(true);
    expect(await waitForExitFile(spec)).toMatchObject({ cancelled: true, status: 'signaled', signal: 15 });
  });

  it('runs with no_new_privs and no effective capabilities (R6)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/cat', ['/proc/self/status']);
    await runToEnd(spec);
    const status = readFileSync(spec.stdoutPath, 'utf8');
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(status).toMatch(new RegExp(`^Uid:\\s+${jobUid}\\s+${jobUid}\\s+${jobUid}\\s+${jobUid}$`, 'm'));
    expect(status).toMatch(new RegExp(`^Gid:\\s+${jobGid}\\s+${jobGid}\\s+${jobGid}\\s+${jobGid}$`, 'm'));
  });

  it('sets the requested rlimits as soft and hard limits', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/sh', ['-c', 'ulimit -n; ulimit -H -n; ulimit -c'], {
      rlimits: { NOFILE: 64, CORE: 0 },
    });
    await runToEnd(spec);
    expect(readLines(spec.stdoutPath)).toEqual(['64', '64', '0']);
  });

  it('refuses a stdout path that is a symlink to a root-owned file (F1)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const precious = join(box.dir, 'precious');
    writeFileSync(precious, 'precious\n', { mode: 0o644 });
    const spec = jobSpec(box, '/bin/sh', ['-c', 'echo pwned']);
    symlinkSync(precious, spec.stdoutPath);
    lchownSync(spec.stdoutPath, jobUid, jobGid); // as if the user had made it
    const err = await launchError(spawnSupervisor(spec));
    expect(err.message).toBe(`open stdout ${spec.stdoutPath}: Too many levels of symbolic links`);
    expect(readFileSync(precious, 'utf8')).toBe('precious\n');
    expect(statSync(precious).uid).toBe(0);
    expect(await readExitFile(spec.runDir, spec.jobId)).toMatchObject({ status: 'launch_failed', error: err.message });
  });

  it('cannot create outputs through a parent directory symlinked to a root-owned directory (F2)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const rootDir = join(box.dir, 'rootdir');
    mkdirSync(rootDir, { mode: 0o755 });
    const link = join(box.outDir, 'link');
    symlinkSync(rootDir, link);
    lchownSync(link, jobUid, jobGid);
    const spec = jobSpec(box, '/bin/sh', ['-c', 'echo pwned'], {
      stdoutPath: join(link, 'job.out'),
      stderrPath: join(link, 'job.out'),
    });
    const err = await launchError(spawnSupervisor(spec));
    expect(err.message).toBe(`open stdout ${spec.stdoutPath}: Permission denied`);
    expect(readdirSync(rootDir)).toEqual([]);
  });

  it('fails to launch in a working directory the user cannot enter, never entering it as root (R4)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const secret = join(box.dir, 'secret');
    mkdirSync(secret, { mode: 0o700 });
    const marker = join(box.outDir, 'ran');
    const spec = jobSpec(box, '/bin/sh', ['-c', `echo ran > ${marker}`], { cwd: secret });
    const err = await launchError(spawnSupervisor(spec));
    expect(err.message).toBe(`chdir ${secret}: Permission denied`);
    expect(existsSync(marker)).toBe(false);
    expect(readdirSync(secret)).toEqual([]);
  });

  it('reports a program that cannot be executed as a launch failure', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/nonexistent/program', []);
    const err = await launchError(spawnSupervisor(spec));
    expect(err.message).toBe('exec /nonexistent/program: No such file or directory');
  });
  it('as an unprivileged supervisor, runs jobs only as its own user', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const other = accountIds(OTHER_USER);
    // The run files go where the unprivileged supervisor may write.
    const own = jobSpec(box, '/usr/bin/id', ['-u'], { runDir: box.outDir });
    const asSelf = spawnSync(supervisorPath(), buildSupervisorArgs(own), { uid: jobUid, gid: jobGid, encoding: 'utf8' });
    expect(parseHandshake(asSelf.stdout.split('\n')[0]!)).toMatchObject({ ok: true });
    expect(await readExitFile(own.runDir, own.jobId)).toMatchObject({ status: 'exited', exitCode: 0 });
    expect(readFileSync(own.stdoutPath, 'utf8')).toBe(`${jobUid}\n`);

    const foreign = jobSpec(box, '/usr/bin/id', ['-u'], { runDir: box.outDir, user: OTHER_USER, ...other });
    const asOther = spawnSync(supervisorPath(), buildSupervisorArgs(foreign), { uid: jobUid, gid: jobGid, encoding: 'utf8' });
    expect(parseHandshake(asOther.stdout.trim())).toEqual({
      ok: false,
      message: `supervisor runs as uid ${jobUid} and cannot run a job as uid ${other.uid}`,
    });
    expect(existsSync(foreign.stdoutPath)).toBe(false);
  });
});

describe('hpcq-supervisor ending jobs', () => {
  it('sends SIGTERM when the time limit elapses (L8)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/sleep', ['1000'], { timeLimitSeconds: 1, killGraceSeconds: 5 });
    const record = await runToEnd(spec);
    expect(record).toMatchObject({ status: 'signaled', signal: 15, timedOut: true, cancelled: false });
  });

  it('sends SIGKILL after the grace period to a job that ignores SIGTERM (L9)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const { program, args } = fixture(box, 'ignores-sigterm.sh');
    const spec = jobSpec(box, program, args, { timeLimitSeconds: 1, killGraceSeconds: 1 });
    const record = await runToEnd(spec);
    expect(record).toMatchObject({ status: 'signaled', signal: 9, timedOut: true, cancelled: false });
    expect(processesMarked(RUN_MARK)).toEqual([]);
  });

  it('cancels on SIGUSR1 after verifying the supervisor identity (K1)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const spec = jobSpec(box, '/bin/sleep', ['1000']);
    const handle = await spawnSupervisor(spec);
    expect(processIsAlive(handle.jobPid, handle.jobStartTicks)).toBe(true);
    expect(signalSupervisor(handle.supervisorPid, handle.supervisorStartTicks + 1, 'cancel')).toBe(false);
    expect(signalSupervisor(handle.supervisorPid, handle.supervisorStartTicks, 'cancel')).toBe(true);
    const record = await waitForExitFile(spec);
    expect(record).toMatchObject({ status: 'signaled', signal: 15, timedOut: false, cancelled: true });
    await handle.exited;
    expect(signalSupervisor(handle.supervisorPid, handle.supervisorStartTicks, 'cancel')).toBe(false);
    expect(processIsAlive(handle.jobPid, handle.jobStartTicks)).toBe(false);
  });

  it('kills setsid and double-forked leftovers when the main process exits (L10)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const mark = `${RUN_MARK}-l10`;
    const pidsFile = join(box.outDir, 'leftovers');
    const { program, args } = fixture(box, 'forks-setsid-grandchild.sh', pidsFile);
    const spec = jobSpec(box, program, args, { env: { PATH: '/usr/bin:/bin', HPCQ_TEST_RUN: mark } });
    const record = await runToEnd(spec);
    expect(record).toMatchObject({ status: 'exited', exitCode: 0, timedOut: false, cancelled: false });
    const leftovers = readLines(pidsFile).map(Number);
    expect(leftovers).toHaveLength(2);
    expect(processesMarked(mark)).toEqual([]);
  });

  it('lets the job finish and record its exit when the spawning process is SIGKILLed (D4, D5)', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const { program, args } = fixture(box, 'sleeps-then-exits-5.sh');
    const spec = jobSpec(box, program, args);
    // A stand-in daemon: spawns the supervisor like spawnSupervisor does, then dies by SIGKILL
    // before reading the handshake.
    const standIn = `
      const { spawn } = require('node:child_process');
      const [exe, ...args] = JSON.parse(process.argv[1]);
      const child = spawn(exe, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: {} });
      process.stdout.write(child.pid + '\\n', () => process.kill(process.pid, 'SIGKILL'));
    `;
    const result = spawnSync(process.execPath, ['-e', standIn, JSON.stringify([supervisorPath(), ...buildSupervisorArgs(spec)])], {
      encoding: 'utf8',
    });
    expect(result.signal).toBe('SIGKILL');
    const supervisorPid = Number(result.stdout.trim());
    const record = await waitForExitFile(spec);
    expect(record).toMatchObject({ status: 'exited', exitCode: 5 });
    const sup = await readSupervisorFile(spec.runDir, spec.jobId);
    expect(sup?.supervisorPid).toBe(supervisorPid);
  });
});

describe('finding supervisors again after a daemon restart', () => {
  it('finds the live supervisor of each job of its run directory, by identity, and no other', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const elsewhere = sandbox();
    const spec = jobSpec(box, '/bin/sleep', ['1000']);
    const otherSpec = jobSpec(elsewhere, '/bin/sleep', ['1000']);
    const handle = await spawnSupervisor(spec);
    const other = await spawnSupervisor(otherSpec);
    const name = basename(supervisorPath());
    try {
      expect(findSupervisorProcesses(box.runDir, 0, name)).toEqual(
        new Map([[spec.jobId, { pid: handle.supervisorPid, startTicks: handle.supervisorStartTicks }]]),
      );
      // Supervisors run as root: a process of the job user with the same name and arguments is none.
      expect(findSupervisorProcesses(box.runDir, jobUid, name).size).toBe(0);
      expect(findSupervisorProcesses(box.runDir, 0, 'not-hpcq-supervisor').size).toBe(0);
    } finally {
      for (const h of [handle, other]) signalSupervisor(h.supervisorPid, h.supervisorStartTicks, 'cancel');
      await Promise.all([handle.exited, other.exited]);
    }
    expect(findSupervisorProcesses(box.runDir, 0, name).size).toBe(0);
  });
});

/** The mount point of the cgroup v2 hierarchy, if any. */
function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mountPoint, fsType] = line.split(' ');
    if (fsType === 'cgroup2' && mountPoint) return mountPoint;
  }
  return undefined;
}

/**
 * Starts a process of the job user that is NOT a descendant of the supervisor (nor in its session)
 * and ignores SIGTERM, inside `procsFiles`: only a cgroup-wide SIGKILL can end it.
 */
async function foreignMember(procsFiles: string[]): Promise<{ pid: number; ended: Promise<NodeJS.Signals | null> }> {
  const child = spawn('/bin/sh', ['-c', "trap '' TERM; exec sleep 1000"], {
    uid: jobUid,
    gid: jobGid,
    stdio: 'ignore',
    env: { HPCQ_TEST_RUN: RUN_MARK },
  });
  const ended = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  // The shell must have run `trap` before the cancel's SIGTERM arrives, or SIGTERM ends it and the
  // test proves nothing about the cgroup-wide kill: wait until the kernel shows TERM as ignored.
  await waitFor('foreign member ignoring SIGTERM', () => (ignoresSigterm(child.pid!) ? true : undefined), 10_000);
  for (const file of procsFiles) writeFileSync(file, String(child.pid));
  return { pid: child.pid!, ended };
}

function ignoresSigterm(pid: number): boolean {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return mask !== undefined && (BigInt(`0x${mask}`) & (1n << 14n)) !== 0n;
}

describe('hpcq-supervisor with cgroups', () => {
  it('cgroup v1: joins memory+freezer cgroups before the first instruction and kills escapees via the freezer (L12, K1)', async (ctx) => {
    const v1 = ['freezer', 'memory'].every((c) => existsSync(`/sys/fs/cgroup/${c}/cgroup.procs`));
    if (!privileged() || !need(v1, 'writable cgroup v1 freezer and memory hierarchies')) return ctx.skip();
    const box = sandbox();
    const name = `hpcq-test-${randomBytes(4).toString('hex')}`;
    const dirs = ['freezer', 'memory'].map((c) => `/sys/fs/cgroup/${c}/${name}`);
    for (const dir of dirs) mkdirSync(dir);
    try {
      const cgroupFile = join(box.outDir, 'cgroup');
      const escapeeFile = join(box.outDir, 'escapee');
      const { program, args } = fixture(box, 'reports-cgroup-then-escapes.sh', cgroupFile, escapeeFile);
      const spec = jobSpec(box, program, args, {
        cgroupProcs: dirs.map((d) => join(d, 'cgroup.procs')),
        kill: { kind: 'cgroup1-freezer', dir: dirs[0]! },
        killGraceSeconds: 1,
      });
      const handle = await spawnSupervisor(spec);
      const escapee = await waitFor('escapee', () => {
        const text = existsSync(escapeeFile) ? readFileSync(escapeeFile, 'utf8').trim() : '';
        return text ? Number(text) : undefined;
      });
      const escapeeTicks = processStartTicks(escapee)!;
      expect(escapeeTicks).toBeDefined();
      const cgroups = readLines(cgroupFile);
      expect(cgroups.find((l) => /:freezer:/.test(l))).toMatch(new RegExp(`:freezer:.*/${name}$`));
      expect(cgroups.find((l) => /:memory:/.test(l))).toMatch(new RegExp(`:memory:.*/${name}$`));
      // Only the freezer can reach this one: not a descendant of the supervisor, not in its session.
      const foreign = await foreignMember([join(dirs[0]!, 'cgroup.procs')]);

      expect(signalSupervisor(handle.supervisorPid, handle.supervisorStartTicks, 'cancel')).toBe(true);
      const record = await waitForExitFile(spec);
      expect(record).toMatchObject({ status: 'signaled', signal: 15, cancelled: true });
      expect(await foreign.ended).toBe('SIGKILL');
      expect(processIsAlive(escapee, escapeeTicks)).toBe(false);
      for (const dir of dirs) expect(readFileSync(join(dir, 'cgroup.procs'), 'utf8')).toBe('');
      expect(readFileSync(join(dirs[0]!, 'freezer.state'), 'utf8').trim()).toBe('THAWED');
    } finally {
      for (const dir of dirs) await waitFor(`rmdir ${dir}`, () => tryRmdir(dir), 10_000);
    }
  });

  it('cgroup v1: sets up the job cgroups itself, and once the job is gone records its accounting and removes them', async (ctx) => {
    const v1 = ['freezer', 'memory', 'pids', 'cpu', 'cpuacct'].every((c) => existsSync(`/sys/fs/cgroup/${c}/cgroup.procs`));
    if (!privileged() || !need(v1, 'writable cgroup v1 hierarchies')) return ctx.skip();
    const box = sandbox();
    const limiter = new CgroupV1Limiter({ parentName: `hpcq-test-${randomBytes(4).toString('hex')}` });
    const jobId = 4242;
    const placement = await limiter.prepare(jobId, { cores: 1, memoryLimitBytes: 200 * MIB, timeLimitSeconds: 60, resourceLimits: { pids: 77 } }, { deferSetup: true });
    try {
      for (const dir of placement.cgroupDirs!) expect(existsSync(dir), dir).toBe(false);
      const limitsFile = join(box.outDir, 'limits');
      const memoryDir = placement.cgroupDirs!.find((d) => d.includes('/memory/'))!;
      const pidsDir = placement.cgroupDirs!.find((d) => d.includes('/pids/'))!;
      // The job reads its own limits (made by the supervisor), then uses 40 MiB in one buffer and
      // some CPU: figures the cgroup accounts and the record must carry.
      const script = `cat ${memoryDir}/memory.limit_in_bytes ${pidsDir}/pids.max > ${limitsFile}; dd if=/dev/zero of=/dev/null bs=40M count=4 2>/dev/null; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done`;
      const spec = jobSpec(box, '/bin/sh', ['-c', script], {
        jobId,
        cgroupSetup: placement.setup,
        cgroupProcs: placement.cgroupProcsFiles,
        kill: { kind: 'cgroup1-freezer', dir: placement.cgroupDirs![0]! },
        accountingFiles: placement.accountingFiles,
      });
      const record = await runToEnd(spec);
      expect(record).toMatchObject({ status: 'exited', exitCode: 0, cgroupsRemoved: true });
      expect(readLines(limitsFile)).toEqual([String(200 * MIB), '77']);
      // Removed by the supervisor: nothing here released them.
      for (const dir of placement.cgroupDirs!) expect(existsSync(dir), dir).toBe(false);
      expect([...record.accounting.keys()].sort()).toEqual(placement.accountingFiles!.filter((f) => record.accounting.has(f)).sort());
      expect(record.accounting.size).toBeGreaterThanOrEqual(6);
      const report = await limiter.collect(jobId, record.accounting);
      expect(report!.peakMemoryBytes).toBeGreaterThanOrEqual(40 * MIB);
      expect(report!.userCpuUsec + report!.systemCpuUsec).toBeGreaterThan(0);
      expect(report!.oomKills).toBe(0);
    } finally {
      await limiter.release(jobId);
      await limiter.removeParentIfUnused();
    }
  });

  it('a cgroup set-up that fails ends the launch naming the step, and leaves no directory it made', async (ctx) => {
    if (!privileged()) return ctx.skip();
    const box = sandbox();
    const made = join(box.dir, 'made');
    const missing = join(box.dir, 'no-such-parent', 'job');
    const spec = jobSpec(box, '/bin/true', [], { cgroupSetup: [{ mkdir: made }, { write: join(made, 'absent'), value: '1', optional: true }, { mkdir: missing }] });
    const err = await launchError(spawnSupervisor(spec));
    expect(err.message).toMatch(new RegExp(`cgroup set-up: mkdir ${missing}: No such file or directory`));
    const record = await waitForExitFile(spec);
    expect(record).toMatchObject({ status: 'launch_failed', error: expect.stringContaining('cgroup set-up: mkdir') });
    expect(existsSync(made)).toBe(false);
  });

  it('cgroup v2: kills every member with cgroup.kill when the main process exits (L10)', async (ctx) => {
    const root = cgroup2Root();
    if (!privileged() || !need(root !== undefined, 'a cgroup v2 hierarchy')) return ctx.skip();
    const box = sandbox();
    const dir = join(root!, `hpcq-test-${randomBytes(4).toString('hex')}`);
    mkdirSync(dir);
    try {
      if (!need(existsSync(join(dir, 'cgroup.kill')), 'cgroup.kill (Linux 5.14+)')) return ctx.skip();
      const procs = join(dir, 'cgroup.procs');
      // Joins before the job starts: only cgroup.kill can reach it (not a descendant, other session).
      const foreign = await foreignMember([procs]);
      const pidsFile = join(box.outDir, 'leftovers');
      const { program, args } = fixture(box, 'forks-setsid-grandchild.sh', pidsFile);
      const spec = jobSpec(box, program, args, { cgroupProcs: [procs], kill: { kind: 'cgroup2', dir } });
      const record = await runToEnd(spec);
      expect(record).toMatchObject({ status: 'exited', exitCode: 0 });
      expect(await foreign.ended).toBe('SIGKILL');
      expect(readLines(pidsFile)).toHaveLength(2);
      expect(readFileSync(procs, 'utf8')).toBe('');
    } finally {
      await waitFor(`rmdir ${dir}`, () => tryRmdir(dir), 10_000);
    }
  });
});

function tryRmdir(dir: string): true | undefined {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    return undefined;
  }
}
