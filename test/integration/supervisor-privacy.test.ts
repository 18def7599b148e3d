/**
 * A running job's supervisor shows nothing of the job to other users: its command line (readable
 * by everyone in /proc) carries only the job id and run directory; the command, environment and
 * paths reach it on stdin.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startDaemon, submit, waitForJob } from '../support/daemon-harness.js';
import { makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, OTHER_USER } from '../support/privileged.js';
import { commOf, pidsWhere } from '../support/proc.js';

cleanUpJobTests();

function supervisorOf(jobId: string): number | undefined {
  return pidsWhere((pid) => {
    if (commOf(pid) !== 'hpcq-supervisor') return false;
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv[1] === '--job-id' && argv[2] === jobId;
  })[0];
}

describe('supervisor command line', () => {
  it('another user reading /proc/<pid>/cmdline of a running job\'s supervisor sees no command, environment or path of the job', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('private');
    const secret = 'Sekr3t-token-value';
    const r = await submit(d, {
      name: 'private',
      runUser: JOB_USER,
      cmdLine: `sleep 30 # ${secret}-cmd`,
      env: { API_TOKEN: `${secret}-env` },
      workingDir: dir,
      stdoutRedirectPath: `${dir}/${secret}-out.txt`,
      stderrRedirectPath: '/dev/null',
    });
    await waitForJob(d, r.jobId, (j) => j.jobStatus === 'running');
    // RUNNING is stored before the supervisor starts: give it the moment its start takes.
    let pid = supervisorOf(r.jobId);
    for (let tries = 0; pid === undefined && tries < 200; tries++) {
      await sleep(10);
      pid = supervisorOf(r.jobId);
    }
    expect(pid).toBeDefined();
    const seen = execFileSync('setpriv', ['--reuid', OTHER_USER, '--regid', OTHER_USER, '--init-groups', '--', 'cat', `/proc/${pid}/cmdline`], { encoding: 'utf8' });
    expect(seen).not.toContain(secret);
    expect(seen).not.toContain(dir);
    expect(seen).not.toContain(JOB_USER);
    const argv = seen.split('\0').filter((a) => a !== '');
    expect(argv[0]).toMatch(/hpcq-supervisor$/);
    expect(argv.slice(1)).toEqual(['--job-id', r.jobId, '--run-dir', expect.any(String), '--args-from-stdin']);
  });
});
