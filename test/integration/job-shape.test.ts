/**
 * The command and its surroundings as the cloud batch APIs describe them, with real jobs: argv run
 * without a shell (SAE Command + CommandArgs), env (BatchCompute EnvVars, Slurm --export), the
 * working directory entered as the user (Slurm --chdir), the description; and the CLI's flags for them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { getJob, listJobs, rejection, startDaemon, stopAll, submit, waitForEnd } from '../support/daemon-harness.js';
import { hpcqAs } from '../support/as-user.js';
import { makeJobUserDir, removeJobUserDirs } from '../support/durability.js';
import { ensureTestUsers, isRoot, JOB_USER, need } from '../support/privileged.js';

afterEach(async () => {
  await stopAll();
  removeJobUserDirs();
});

const ready = () => need(isRoot && ensureTestUsers(), 'root and the test accounts');

describe('argv, env, working_dir and description', () => {
  it('argv reaches the program word for word, with no shell in between', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('argv');
    const pwned = join(dir, 'pwned');
    const words = ['a b', "it's", '"quoted"', '$(touch ' + pwned + ')', `x; touch ${pwned}`, '*', '$HOME', ''];
    const res = await submit(d, { name: 'argv', runUser: JOB_USER, argv: ['printf', '[%s]\\n', ...words], stdoutRedirectPath: `${dir}/out`, stderrRedirectPath: `${dir}/err` });
    const job = await waitForEnd(d, res.jobId);
    expect(job.jobStatus, readFileSync(`${dir}/err`, 'utf8')).toBe('completed');
    expect(readFileSync(`${dir}/out`, 'utf8')).toBe(words.map((w) => `[${w}]\n`).join(''));
    expect(existsSync(pwned)).toBe(false);
    expect(job.argv).toEqual(['printf', '[%s]\\n', ...words]);
    expect(job.cmdLine).toBe('');
  });

  it('a program that is not on the PATH fails the job with 127 and says so', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('argv-missing');
    const res = await submit(d, { name: 'missing', runUser: JOB_USER, argv: ['no-such-program-hpcq'], stdoutRedirectPath: `${dir}/out`, stderrRedirectPath: `${dir}/err` });
    const job = await waitForEnd(d, res.jobId);
    expect({ status: job.jobStatus, exitCode: job.exitCode }).toEqual({ status: 'failed', exitCode: 127 });
    expect(readFileSync(`${dir}/err`, 'utf8')).toContain('no-such-program-hpcq');
  });

  it('env adds to the clean environment (PATH too) but never replaces the HPCQ_ variables; only the names are shown', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('env');
    const res = await submit(d, {
      name: 'env',
      runUser: JOB_USER,
      cmdLine: 'echo "$GREETING|$OMP_NUM_THREADS|$PATH|$HPCQ_JOB_ID"',
      env: { GREETING: 'hello "world" $(id)', OMP_NUM_THREADS: '3', PATH: '/usr/bin:/bin:/opt/x' },
      stdoutRedirectPath: `${dir}/out`,
    });
    const job = await waitForEnd(d, res.jobId);
    expect(job.jobStatus).toBe('completed');
    expect(readFileSync(`${dir}/out`, 'utf8')).toBe(`hello "world" $(id)|3|/usr/bin:/bin:/opt/x|${res.jobId}\n`);
    expect([...job.envNames].sort()).toEqual(['GREETING', 'OMP_NUM_THREADS', 'PATH']);
    expect(JSON.stringify(job)).not.toContain('hello');
    const refused = await rejection(submit(d, { name: 'env2', runUser: JOB_USER, cmdLine: 'true', env: { HPCQ_JOB_ID: '1' } }));
    expect(refused).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameter.EnvName', field: 'env' });
    expect((await listJobs(d)).jobs).toHaveLength(1);
  });

  it('working_dir is where the job starts; one the user cannot enter fails the job and it never runs elsewhere', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('cwd');
    const work = join(dir, 'work');
    execFileSync('install', ['-d', '-o', JOB_USER, work]);
    const ok = await submit(d, { name: 'cwd', runUser: JOB_USER, cmdLine: 'pwd; touch here', workingDir: work, stdoutRedirectPath: `${dir}/out` });
    expect((await waitForEnd(d, ok.jobId)).jobStatus).toBe('completed');
    expect(readFileSync(`${dir}/out`, 'utf8')).toBe(`${work}\n`);
    expect(existsSync(join(work, 'here'))).toBe(true);

    const closed = `/root/hpcq-closed-${process.pid}`;
    mkdirSync(closed, { mode: 0o700 });
    try {
      const denied = await submit(d, { name: 'denied', runUser: JOB_USER, cmdLine: `touch ${dir}/ran`, workingDir: closed, stdoutRedirectPath: `${dir}/out2` });
      const job = await waitForEnd(d, denied.jobId);
      expect(job.jobStatus).toBe('failed');
      expect(job.reason).toMatch(/chdir.*hpcq-closed.*Permission denied/);
      expect(existsSync(`${dir}/ran`)).toBe(false);
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });

  it('description is kept with the job; the CLI sends --argv, --export, -D and --description', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('cli');
    const run = await hpcqAs(JOB_USER, d.address, [
      'submit', '--json', '--name', 'cli', '--argv', '--export', 'A=1,B=two words', '-D', dir, '--description', 'BatchCompute-style description',
      '--stdout', `${dir}/out`, '--', 'sh', '-c', 'echo "$A/$B/$(pwd)"',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const { job_id: jobId } = JSON.parse(run.stdout) as { job_id: string };
    expect((await waitForEnd(d, jobId)).jobStatus).toBe('completed');
    expect(readFileSync(`${dir}/out`, 'utf8')).toBe(`1/two words/${dir}\n`);
    expect(await getJob(d, jobId)).toMatchObject({ description: 'BatchCompute-style description', workingDir: dir, argv: ['sh', '-c', 'echo "$A/$B/$(pwd)"'] });
  });
});
