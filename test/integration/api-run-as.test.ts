// Run-as correctness and users' files, through the API of a real hpcqd running as root
// (RELIABILITY-TESTS R1 R2 R3 R5 R6 R7 R8, F1 F2 F6 F8).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { JobState, type Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { PACKAGE_ROOT, TEST_CONFIG, startDaemon, stopAll, submit, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import { gidOf, isRoot, JOB_USER, JOB_USER_GROUP, need, OTHER_USER, uidOf } from '../support/privileged.js';

const canRunJobs = () => need(isRoot, 'root, to run jobs as the test user');

afterEach(stopAll);

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Temp directories: per-user ones (mode 0700, owned by the user) and root-owned ones. */
const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
function userDir(): string {
  const dir = mkdtempSync('/tmp/hpcq-api-runas-user-');
  chownSync(dir, uidOf(JOB_USER), gidOf(JOB_USER));
  tempDirs.push(dir);
  return dir;
}
function rootDir(mode = 0o755): string {
  const dir = mkdtempSync('/tmp/hpcq-api-runas-root-');
  chmodSync(dir, mode);
  tempDirs.push(dir);
  return dir;
}

/** Runs a command as JOB_USER and returns the finished job with its stdout and stderr. */
async function runJob(d: DaemonHandle, extra: Partial<SubmitJobRequest>, dir = userDir()): Promise<{ job: Job; out: string; err: string; dir: string }> {
  const res = await submit(d, {
    runUser: JOB_USER,
    name: 'run-as',
    stdoutRedirectPath: `${dir}/%j.out`,
    stderrRedirectPath: `${dir}/%j.err`,
    ...extra,
  });
  const job = await waitForEnd(d, res.jobId);
  const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  return { job, out: read(job.stdoutPath), err: read(job.stderrPath), dir };
}

describe('who the job runs as (R1 R6 R7)', () => {
  it('`id` inside the job equals `id hpcq-job`: uid, gid and supplementary groups (initgroups), none of root\'s', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { job, out } = await runJob(d, { cmdLine: 'id; id -u; id -G; pwd' });
    expect(job.jobStatus).toBe('completed');
    const [full, uid, groups, cwd] = out.trimEnd().split('\n');
    expect(full).toBe(execFileSync('id', [JOB_USER]).toString().trim());
    expect(full).toContain(`(${JOB_USER_GROUP})`);
    expect(Number(uid)).toBe(uidOf(JOB_USER));
    expect(groups!.split(' ').map(Number).sort()).toEqual(execFileSync('id', ['-G', JOB_USER]).toString().trim().split(' ').map(Number).sort());
    expect(groups!.split(' ')).not.toContain('0');
    expect(cwd).toBe(`/home/${JOB_USER}`);
  });

  it('NoNewPrivs is 1 and every capability set is empty; a setuid-root binary gives no privilege', async () => {
    if (!canRunJobs()) return;
    // A setuid-root copy of id in a directory the user can reach: without no_new_privs it would report euid=0.
    const bin = rootDir();
    const suidId = join(bin, 'suid-id');
    copyFileSync('/usr/bin/id', suidId);
    chmodSync(suidId, 0o4755);
    const control = execFileSync('setpriv', ['--reuid', JOB_USER, '--regid', JOB_USER, '--init-groups', suidId]).toString();
    expect(control).toContain('euid=0'); // the setuid bit works on this filesystem: the check below means something

    const d = await startDaemon();
    const { job, out } = await runJob(d, { cmdLine: `grep -E '^(NoNewPrivs|Cap(Inh|Prm|Eff|Amb)):' /proc/$$/status; ${suidId}` });
    expect(job.jobStatus).toBe('completed');
    const status = Object.fromEntries(
      out
        .split('\n')
        .filter((l) => l.includes(':\t'))
        .map((l) => l.split(':\t').map((s) => s.trim())),
    );
    expect(status).toEqual({
      NoNewPrivs: '1',
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapAmb: '0000000000000000',
    });
    const idLine = out.split('\n').find((l) => l.startsWith('uid='))!;
    expect(idLine).toBe(execFileSync('id', [JOB_USER]).toString().trim());
    expect(idLine).not.toContain('euid=0');
  });

  it('the job cannot signal the daemon (kill -0 -> not permitted)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { out } = await runJob(d, { cmdLine: `if kill -0 ${d.proc.pid} 2>/dev/null; then echo reached; else echo refused; fi` });
    expect(out).toBe('refused\n');
  });

  it('R8: what the shell command creates belongs to the job user, never to root', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = userDir();
    const { job } = await runJob(d, { cmdLine: `x; touch ${dir}/made-by-job` }, dir);
    expect(job.jobStatus).toBe('completed'); // `x` fails, touch succeeds: the last status counts
    expect(statSync(join(dir, 'made-by-job')).uid).toBe(uidOf(JOB_USER));
  });
});

describe('what the job inherits from the daemon (R2 R3)', () => {
  it('only descriptors 0, 1 and 2 are open in the job; stdin is /dev/null', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    // `; true` keeps sh from exec'ing ls, so /proc/$$ is the job's shell, not ls (with its directory fd).
    const { job, out, dir } = await runJob(d, { cmdLine: 'ls /proc/$$/fd; true; readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2' });
    expect(job.jobStatus).toBe('completed');
    const lines = out.trimEnd().split('\n');
    expect(lines.slice(0, 3)).toEqual(['0', '1', '2']);
    expect(lines.slice(3)).toEqual(['/dev/null', `${dir}/${job.jobId}.out`, `${dir}/${job.jobId}.err`]);
  });

  it('the environment is exactly the allow-list: the daemon\'s DAEMON_SECRET, NODE_OPTIONS, HPCQ_* settings and preload marks never leak', async () => {
    if (!canRunJobs()) return;
    const preload = join(PACKAGE_ROOT, 'test', 'fixtures', 'preload-marks-daemon-env.cjs');
    const d = await startDaemon({ env: { DAEMON_SECRET: 'x', NODE_OPTIONS: `--require ${preload}`, LD_PRELOAD: '', TZ: 'Antarctica/Troll' } });
    expect(d.output()).toContain('preload-marks-daemon-env: loaded'); // the hostile preload really ran in the daemon
    // /proc/$$/environ is exactly what the job's shell was exec'ed with (the shell adds nothing to it).
    const { job, out } = await runJob(d, { name: 'env-check', cmdLine: "tr '\\0' '\\n' < /proc/$$/environ; true" });
    expect(job.jobStatus).toBe('completed');
    const env = Object.fromEntries(
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(Object.keys(env).sort()).toEqual(
      [
        'HOME',
        'USER',
        'LOGNAME',
        'SHELL',
        'PATH',
        'LANG',
        'OMP_NUM_THREADS',
        'HPCQ_JOB_ID',
        'HPCQ_JOB_UUID',
        'HPCQ_JOB_NAME',
        'HPCQ_QUEUE',
        'HPCQ_CLUSTER',
        'HPCQ_CORES',
        'HPCQ_MEM_MB',
        'HPCQ_ATTEMPT',
      ].sort(),
    );
    expect(env).toMatchObject({
      HOME: `/home/${JOB_USER}`,
      USER: JOB_USER,
      LOGNAME: JOB_USER,
      HPCQ_JOB_ID: job.jobId,
      HPCQ_JOB_UUID: job.hpcjobUuid,
      HPCQ_JOB_NAME: 'env-check',
      HPCQ_QUEUE: 'normal',
      HPCQ_CLUSTER: 'hpcq-test',
      HPCQ_CORES: '1',
      HPCQ_MEM_MB: '256',
      HPCQ_ATTEMPT: '1',
      OMP_NUM_THREADS: '1',
    });
    expect(env.SHELL).toBe(execFileSync('getent', ['passwd', JOB_USER]).toString().trim().split(':')[6]);
    const all = out;
    for (const leak of ['DAEMON_SECRET', 'NODE_OPTIONS', 'MALLOC_ARENA_MAX', 'UV_THREADPOOL_SIZE', 'preload', 'LD_PRELOAD', 'TZ=', 'HPCQ_STATE_DIR', 'HPCQ_CONFIG', 'HPCQ_LISTEN', 'HPCQ_LOG_LEVEL', 'HPCQ_TEST_PRELOAD_MARK']) {
      expect(all).not.toContain(leak);
    }
  });
});

describe('output files (F1 F2 F8 R5)', () => {
  it('F1: stdout pre-created by the user as a symlink to a root-owned file: the file is untouched and the job FAILED (LaunchFailed, symbolic links)', async () => {
    if (!canRunJobs()) return;
    const secretDir = rootDir();
    const rootFile = join(secretDir, 'root-owned.conf');
    writeFileSync(rootFile, 'precious root data\n', { mode: 0o644 });
    const before = { hash: sha256(rootFile), st: statSync(rootFile) };
    const dir = userDir();
    for (const which of ['stdout', 'stderr'] as const) {
      const link = join(dir, `${which}-link`);
      symlinkSync(rootFile, link);
      lchownSync(link, uidOf(JOB_USER), gidOf(JOB_USER)); // as the user would have made it

      const d = await startDaemon();
      const { job } = await runJob(
        d,
        {
          cmdLine: 'echo overwritten; echo overwritten >&2',
          ...(which === 'stdout' ? { stdoutRedirectPath: link } : { stderrRedirectPath: link }),
        },
        dir,
      );
      expect(job.state).toBe(JobState.JOB_STATE_FAILED);
      expect(job.reason).toContain('LaunchFailed');
      expect(job.reason).toContain('symbolic links');
      expect(job.reason).toContain(link);
      const after = statSync(rootFile);
      expect(sha256(rootFile)).toBe(before.hash);
      expect({ uid: after.uid, gid: after.gid, mode: after.mode, size: after.size, mtime: after.mtimeMs }).toEqual({
        uid: 0,
        gid: 0,
        mode: before.st.mode,
        size: before.st.size,
        mtime: before.st.mtimeMs,
      });
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
    }
  });

  it('F2: the stdout directory is a symlink to /etc: nothing is created in /etc, the job FAILED with permission denied', async () => {
    if (!canRunJobs()) return;
    const dir = userDir();
    const link = join(dir, 'etc-link');
    symlinkSync('/etc', link);
    lchownSync(link, uidOf(JOB_USER), gidOf(JOB_USER));
    const name = `hpcq-api-f2-${process.pid}-${Date.now()}`;
    const d = await startDaemon();
    const { job } = await runJob(d, { cmdLine: 'echo escaped', stdoutRedirectPath: `${link}/${name}.out`, stderrRedirectPath: `${link}/${name}.err` }, dir);
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.reason).toContain('LaunchFailed');
    expect(job.reason).toContain('Permission denied');
    expect(existsSync(`/etc/${name}.out`)).toBe(false);
    expect(existsSync(`/etc/${name}.err`)).toBe(false);
  });

  it('F8/R5 default umask 0022: stdout, stderr and files the job creates are 0644 (dirs 0755), owned by the user', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = userDir();
    const { job, out } = await runJob(d, { cmdLine: `umask; echo x > ${dir}/made; mkdir ${dir}/made-dir; echo err >&2` }, dir);
    expect(job.jobStatus).toBe('completed');
    expect(out).toBe('0022\n');
    const uid = uidOf(JOB_USER);
    for (const [path, mode] of [
      [job.stdoutPath, 0o644],
      [job.stderrPath, 0o644],
      [join(dir, 'made'), 0o644],
      [join(dir, 'made-dir'), 0o755],
    ] as const) {
      const st = statSync(path);
      expect({ path, mode: (st.mode & 0o777).toString(8), uid: st.uid }).toEqual({ path, mode: mode.toString(8), uid });
    }
  });

  it('R5: job_umask "0077" makes the outputs and the job\'s files 0600', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon({ config: `${TEST_CONFIG}\njob_umask: "0077"\n` });
    const dir = userDir();
    const { job, out } = await runJob(d, { cmdLine: `umask; echo x > ${dir}/made` }, dir);
    expect(job.jobStatus).toBe('completed');
    expect(out).toBe('0077\n');
    for (const path of [job.stdoutPath, job.stderrPath, join(dir, 'made')]) {
      expect({ path, mode: (statSync(path).mode & 0o777).toString(8) }).toEqual({ path, mode: '600' });
    }
  });

  it("F5: a stdout file that exists and belongs to another user is neither truncated nor chowned; the job FAILED", async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = userDir();
    const foreign = join(dir, 'foreign.out');
    writeFileSync(foreign, 'belongs to someone else\n', { mode: 0o644 });
    chownSync(foreign, uidOf(OTHER_USER), gidOf(OTHER_USER));
    const hash = sha256(foreign);
    const { job } = await runJob(d, { cmdLine: 'echo clobbered', stdoutRedirectPath: foreign }, dir);
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.reason).toContain('LaunchFailed');
    expect(job.reason).toContain('Permission denied');
    expect(sha256(foreign)).toBe(hash);
    expect(statSync(foreign).uid).toBe(uidOf(OTHER_USER));
  });

  it('stdout and stderr to the same path share one file, in write order', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = userDir();
    const both = join(dir, 'both.log');
    const { job } = await runJob(d, { cmdLine: 'echo one; echo two >&2; echo three', stdoutRedirectPath: both, stderrRedirectPath: both }, dir);
    expect(job.jobStatus).toBe('completed');
    expect(readFileSync(both, 'utf8')).toBe('one\ntwo\nthree\n');
  });

  it('a cmd_line of exactly 64 KiB (the limit) is accepted and runs', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const head = 'echo ran-long #';
    const cmdLine = head + 'x'.repeat(64 * 1024 - head.length);
    expect(Buffer.byteLength(cmdLine)).toBe(64 * 1024);
    const { job, out } = await runJob(d, { cmdLine });
    expect(job.jobStatus).toBe('completed');
    expect(out).toBe('ran-long\n');
  });

  it('an existing output file of the user is truncated, not appended to', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = userDir();
    const out = join(dir, 'fixed.out');
    writeFileSync(out, 'old content that is longer than the new one\n');
    chownSync(out, uidOf(JOB_USER), gidOf(JOB_USER));
    const { job } = await runJob(d, { cmdLine: 'echo new', stdoutRedirectPath: out }, dir);
    expect(job.jobStatus).toBe('completed');
    expect(readFileSync(out, 'utf8')).toBe('new\n');
  });
});

describe('input_file (F6)', () => {
  it('input_file=/etc/shadow: the job fails for lack of permission and /etc/shadow is unchanged', async () => {
    if (!canRunJobs()) return;
    const before = { hash: sha256('/etc/shadow'), st: statSync('/etc/shadow') };
    const d = await startDaemon();
    const { job, out, err } = await runJob(d, { cmdLine: '', inputFile: '/etc/shadow' });
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.exitCode).not.toBe(0);
    expect(err).toMatch(/Permission denied/i);
    expect(out).toBe('');
    expect(sha256('/etc/shadow')).toBe(before.hash);
    const after = statSync('/etc/shadow');
    expect({ uid: after.uid, gid: after.gid, mode: after.mode }).toEqual({ uid: before.st.uid, gid: before.st.gid, mode: before.st.mode });
  });

  it('a root-only script as input_file is never read by anyone: its access time stays put (relatime) and the job fails', async () => {
    if (!canRunJobs()) return;
    const dir = rootDir();
    const script = join(dir, 'root-only.sh');
    writeFileSync(script, 'echo leaked-secret\n', { mode: 0o600 });
    // relatime updates the access time on any read while atime <= mtime: set it far in the past.
    utimesSync(script, new Date(1_000_000), statSync(script).mtime);
    const probe = join(dir, 'probe');
    writeFileSync(probe, 'x');
    utimesSync(probe, new Date(1_000_000), statSync(probe).mtime);
    readFileSync(probe);
    expect(statSync(probe).atimeMs).toBeGreaterThan(1_000_000); // reads do show on this filesystem

    const d = await startDaemon();
    const { job, out, err } = await runJob(d, { cmdLine: '', inputFile: script });
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(err).toMatch(/Permission denied/i);
    expect(out).not.toContain('leaked-secret');
    expect(statSync(script).atimeMs).toBe(1_000_000);
  });

  it('a script owned by the user runs as input_file: executable (its #! is honoured) or not (run with sh)', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = userDir();
    const uid = uidOf(JOB_USER);
    const gid = gidOf(JOB_USER);
    const executable = join(dir, 'with-exec-bit');
    writeFileSync(executable, '#!/bin/cat\nthis text is printed by cat, the #! interpreter\n', { mode: 0o755 });
    chownSync(executable, uid, gid);
    const plain = join(dir, 'without-exec-bit.sh');
    writeFileSync(plain, 'echo "plain:$HPCQ_JOB_ID:$(id -un)"\nexit 0\n', { mode: 0o644 });
    chownSync(plain, uid, gid);

    const a = await runJob(d, { name: 'exec-bit', cmdLine: '', inputFile: executable }, dir);
    expect(a.job).toMatchObject({ jobStatus: 'completed', inputFile: executable, cmdLine: '' });
    expect(a.out).toBe(readFileSync(executable, 'utf8'));

    const b = await runJob(d, { name: 'no-exec-bit', cmdLine: '', inputFile: plain }, dir);
    expect(b.job.jobStatus).toBe('completed');
    expect(b.out).toBe(`plain:${b.job.jobId}:${JOB_USER}\n`);

    const missing = await runJob(d, { name: 'missing', cmdLine: '', inputFile: join(dir, 'does-not-exist.sh') }, dir);
    expect(missing.job.jobStatus).toBe('failed');
    expect(missing.job.exitCode).not.toBe(0);
    expect(missing.err).toMatch(/does-not-exist\.sh: No such file/);
  });
});
