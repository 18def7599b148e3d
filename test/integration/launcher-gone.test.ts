/**
 * The supervisors' launcher killed while jobs run: the launcher reports each supervisor's end with
 * the job's exit record, and the daemon watches its run directory only while some running job's end
 * will not be reported that way. With the launcher gone, the daemon watches again, the running job
 * keeps its true outcome, and the next job starts under a new launcher.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon, submit, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { eventually, makeJobUserDir, removeJobUserDirs } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';
import { childrenOf, commOf, pidsWhere } from '../support/proc.js';

cleanUpJobTests();
afterAll(removeJobUserDirs);

/** Whether process `pid` holds an inotify watch on the directory `dir` (from /proc/<pid>/fdinfo). */
function watches(pid: number, dir: string): boolean {
  const ino = statSync(dir).ino.toString(16);
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:inotify') continue;
    if (readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').some((l) => l.startsWith('inotify ') && l.includes(` ino:${ino} `))) return true;
  }
  return false;
}

/** The daemon's launcher: its child process named hpcq-launcher. */
function launcherOf(daemonPid: number): number | undefined {
  return pidsWhere((pid) => commOf(pid) === 'hpcq-launcher', childrenOf(daemonPid))[0];
}

describe('the launcher gone while jobs run', () => {
  it('the daemon watches its run directory again, the job keeps its true outcome, a new launcher serves the next job', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const pid = d.proc.pid!;
    const runDir = join(d.stateDir, 'state', 'run');
    const job = (name: string, cmd: string) => ({ name, runUser: JOB_USER, cmdLine: cmd, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });

    const first = await submit(d, job('first', 'exit 0'));
    expect((await waitForEnd(d, first.jobId, 30_000)).jobStatus).toBe('completed');
    // Every end so far was reported by the launcher: no watch.
    await eventually(() => !watches(pid, runDir), 'no watch on the run directory');

    // Killed once the job itself runs (its supervisor answered the launcher): a launch the launcher
    // never answered is attached without a report coming, which is another path.
    const out = join(makeJobUserDir('hpcq-launcher-gone'), 'running.out');
    const running = await submit(d, { ...job('running', 'echo started; sleep 3; exit 5'), stdoutRedirectPath: out });
    await waitForJob(d, running.jobId, (j) => j.jobStatus === 'running');
    await eventually(() => existsSync(out) && readFileSync(out, 'utf8').includes('started'), 'the job running');
    expect(watches(pid, runDir)).toBe(false);
    const launcher = launcherOf(pid);
    expect(launcher).toBeDefined();
    process.kill(launcher!, 'SIGKILL');
    await eventually(() => watches(pid, runDir), 'the run directory watched once the launcher is gone');
    expect(await waitForEnd(d, running.jobId, 30_000)).toMatchObject({ jobStatus: 'failed', exitCode: 5 });
    await eventually(() => !watches(pid, runDir), 'no watch once that job ended');

    const next = await submit(d, job('next', 'exit 0'));
    expect((await waitForEnd(d, next.jobId, 30_000)).jobStatus).toBe('completed');
    const newLauncher = launcherOf(pid);
    expect(newLauncher).toBeDefined();
    expect(newLauncher).not.toBe(launcher);
  });
});
