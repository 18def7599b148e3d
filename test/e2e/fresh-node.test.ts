/**
 * The "done when" on a fresh node: hpcqd started as `npm start` starts it (as root, the
 * embedded default configuration, no environment), and an account created just now runs the CLI
 * with no flags and no set-up: it submits as itself, lists its own jobs and nobody else's, and
 * cannot touch another user's job. Runs only where no system hpcqd exists yet (a fresh CI machine);
 * it removes what it created.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT_SOCKET_DIR, ROOT_SOCKET_PATH, ROOT_STATE_DIR } from '../../src/config/default-state-dir.js';
import { hpcqAs, hpcqJsonAs } from '../support/as-user.js';
import { PACKAGE_ROOT } from '../support/daemon-harness.js';
import { ensureTestUsers, isRoot, need, OTHER_USER, userExists } from '../support/privileged.js';

const FRESH_USER = 'hpcq-fresh';
/** Whether this node has no system hpcqd (state or socket), so the test may be that daemon. */
const freshNode = !existsSync(ROOT_STATE_DIR) && !existsSync(ROOT_SOCKET_PATH);

let daemon: ChildProcess | undefined;

afterAll(async () => {
  if (daemon && daemon.exitCode === null) {
    // Cancel what is left, then stop the daemon, then remove what this test created.
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }
  if (daemon) {
    rmSync(ROOT_STATE_DIR, { recursive: true, force: true });
    rmSync(ROOT_SOCKET_DIR, { recursive: true, force: true });
  }
  if (isRoot && userExists(FRESH_USER)) execFileSync('userdel', ['--remove', FRESH_USER], { stdio: 'ignore' });
});

describe('a fresh node: the README commands, then a new user', () => {
  it('a just-created user submits and lists its own jobs with no set-up, and cannot touch another\'s', { timeout: 90_000 }, async () => {
    if (!need(isRoot && ensureTestUsers(), 'root and the test accounts')) return;
    if (!need(freshNode, `a node without a system hpcqd (${ROOT_STATE_DIR} or ${ROOT_SOCKET_PATH} exists)`)) return;
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', FRESH_USER]);

    // What `npm start` runs (test/e2e/cli.test.ts checks they are the same): the hpcqd program
    // itself, with no configuration and no HPCQ_* variables.
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    daemon = spawn(join(PACKAGE_ROOT, pkg.scripts.start), [], { cwd: PACKAGE_ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out.includes('"event":"ready"'), { timeout: 30_000, interval: 100 }).toBe(true);

    // No --addr, no HPCQ_ADDR: the CLI finds the node's daemon by itself.
    const submit = await hpcqAs(FRESH_USER, '', ['submit', '--json', '--name', 'fresh', '--', 'id -un']);
    expect(submit.code, submit.stderr).toBe(0);
    expect((JSON.parse(submit.stdout) as { job_id: string }).job_id).toBe('1');
    const watched = await hpcqAs(FRESH_USER, '', ['watch', '1']);
    expect(watched.code, watched.stdout + watched.stderr).toBe(0);
    const { job } = await hpcqJsonAs<{ job: { run_user: string; job_status: string; stdout_path: string } }>(FRESH_USER, '', ['status', '1']);
    expect(job).toMatchObject({ run_user: FRESH_USER, job_status: 'completed' });
    // It ran as that user, and its output is in that user's home.
    expect(job.stdout_path).toBe(`/home/${FRESH_USER}/hpcq-1.out`);
    expect(readFileSync(job.stdout_path, 'utf8')).toBe(`${FRESH_USER}\n`);
    const mine = await hpcqJsonAs<{ jobs: { job_id: string }[] }>(FRESH_USER, '', ['list', '--all']);
    expect(mine.jobs.map((j) => j.job_id)).toEqual(['1']);

    // Another user neither sees nor cancels it.
    const theirs = await hpcqJsonAs<{ jobs: unknown[] }>(OTHER_USER, '', ['list', '--all']);
    expect(theirs.jobs).toEqual([]);
    const cancel = await hpcqAs(OTHER_USER, '', ['cancel', '1']);
    expect(cancel.code).toBe(2);
    expect(cancel.stderr).toContain('ResourceNotFound.Job');
  });
});
