/**
 * The run directory is the daemon's to keep: `rm -rf <state_dir>/run` while jobs run and wait
 * changes no outcome and fails no queued job.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startDaemon, submit, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';

cleanUpJobTests();

const ONE_CORE = `
kill_grace_seconds: 1
node:
  cores: 1
  mem_mb: 4096
clusters:
  - cluster_id: hpcq-test
    zone: test-zone
    queues:
      - hpcqueue_id: hpcq-normal
        scheduler_queue_name: normal
        default: true
        default_mem_mb: 256
`;

describe('run directory removed', () => {
  it('a running job keeps its true outcome, a queued one runs, later launches work', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon({ config: ONE_CORE });
    const job = (name: string, cmd: string) => ({ name, runUser: JOB_USER, cmdLine: cmd, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
    const running = await submit(d, job('running', 'sleep 2; exit 4'));
    await waitForJob(d, running.jobId, (j) => j.jobStatus === 'running');
    const queued = await submit(d, job('queued', 'exit 0'));
    rmSync(join(d.stateDir, 'state', 'run'), { recursive: true, force: true });
    expect(await waitForEnd(d, running.jobId, 30_000)).toMatchObject({ jobStatus: 'failed', exitCode: 4 });
    expect((await waitForEnd(d, queued.jobId, 30_000)).jobStatus).toBe('completed');
    // Removed again between jobs: the next launch makes it again.
    rmSync(join(d.stateDir, 'state', 'run'), { recursive: true, force: true });
    const later = await submit(d, job('later', 'exit 0'));
    expect((await waitForEnd(d, later.jobId, 30_000)).jobStatus).toBe('completed');
  });
});
