/**
 * Output paths a job cannot be wedged or misdirected by: a FIFO (with or without a reader, the
 * user's own or another user's in a shared directory), a socket or a device as stdout/stderr fails
 * the job quickly with a reason naming the path; the launch never blocks on it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon, submit, waitForEnd } from '../support/daemon-harness.js';
import { makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, OTHER_USER } from '../support/privileged.js';

cleanUpJobTests();
const shared = mkdtempSync(join(tmpdir(), 'hpcq-shared-'));
chmodSync(shared, 0o1777);
afterAll(() => rmSync(shared, { recursive: true, force: true }));

const asUser = (user: string, ...argv: string[]) => execFileSync('setpriv', ['--reuid', user, '--regid', user, '--init-groups', '--', ...argv]);

describe('output paths that are not regular files', () => {
  it('a FIFO, a socket or a device as an output fails the job at once, naming the path; the next job runs', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('outputs');
    const fifo = join(dir, 'fifo.out');
    asUser(JOB_USER, 'mkfifo', fifo);
    const readFifo = join(dir, 'read.out');
    asUser(JOB_USER, 'mkfifo', readFifo);
    // A reader holds this one open: the open would succeed, the file is still no regular file.
    const reader = spawn('setpriv', ['--reuid', JOB_USER, '--regid', JOB_USER, '--init-groups', '--', 'sh', '-c', `exec cat ${readFifo} > /dev/null`], { stdio: 'ignore' });
    const sharedFifo = join(shared, `hpcq-next.out`);
    asUser(OTHER_USER, 'mkfifo', '-m', '0666', sharedFifo);
    const socketPath = join(dir, 'sock.out');
    const server = createServer().listen(socketPath);
    await new Promise((r) => server.once('listening', r));
    chmodSync(socketPath, 0o777);
    try {
      const cases = [
        { name: 'fifo', stdout: fifo, expect: /is a FIFO or socket, not a regular file|is a FIFO/ },
        { name: 'fifoReader', stdout: readFifo, expect: /is a FIFO, not a regular file/ },
        { name: 'sharedFifo', stdout: sharedFifo, expect: /FIFO|Permission denied/ },
        { name: 'socket', stdout: socketPath, expect: /FIFO or socket|No such device or address/ },
        { name: 'device', stdout: '/dev/zero', expect: /is a device, not a regular file/ },
      ];
      const started = Date.now();
      const ids = await Promise.all(cases.map((c) => submit(d, { name: c.name, runUser: JOB_USER, cmdLine: 'echo hello', stdoutRedirectPath: c.stdout, stderrRedirectPath: '/dev/null' })));
      for (const [i, c] of cases.entries()) {
        const job = await waitForEnd(d, ids[i]!.jobId, 20_000);
        expect(job.jobStatus, c.name).toBe('failed');
        expect(job.reason, c.name).toMatch(/^LaunchFailed: /);
        expect(job.reason, c.name).toContain(c.stdout);
        expect(job.reason, c.name).toMatch(c.expect);
      }
      expect(Date.now() - started).toBeLessThan(15_000);
      // stderr is checked the same way, and /dev/null stays allowed.
      const err = await submit(d, { name: 'stderrFifo', runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: fifo });
      expect((await waitForEnd(d, err.jobId, 20_000)).reason).toMatch(/stderr .*fifo\.out/);
      const ok = await submit(d, { name: 'fine', runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
      expect((await waitForEnd(d, ok.jobId, 20_000)).jobStatus).toBe('completed');
    } finally {
      reader.kill();
      server.close();
    }
  });
});
