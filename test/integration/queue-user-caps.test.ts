/**
 * Per-user caps on a queue (Slurm's MaxJobsPerUser / MaxSubmitJobsPerUser) with two real users
 * submitting through the CLI as themselves: one user's jobs over max_running_per_user wait with
 * reason QueueMaxRunningPerUser while the other user's run; a submit over max_pending_per_user is
 * refused, naming the cap.
 */
import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import { hpcqAs } from '../support/as-user.js';
import { cancelJob, getJob, startDaemon, TEST_CONFIG, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, OTHER_USER } from '../support/privileged.js';

cleanUpJobTests();
const ready = canRunJobs;

const CAPPED = TEST_CONFIG.replace('        default_time_seconds: 600\n', '        default_time_seconds: 600\n        max_running_per_user: 1\n        max_pending_per_user: 2\n');

async function submitAs(user: string, d: DaemonHandle, name: string, cmd: string): Promise<{ code: number; jobId: string; stderr: string }> {
  const run = await hpcqAs(user, d.address, ['submit', '--parsable', '--name', name, '--stdout', '/dev/null', '--stderr', '/dev/null', '--', cmd]);
  return { code: run.code, jobId: run.stdout.trim(), stderr: run.stderr };
}

describe('per-user caps', () => {
  it("one user's jobs over max_running_per_user wait while another user's run; max_pending_per_user refuses more", async () => {
    if (!ready()) return;
    const d = await startDaemon({ config: CAPPED });
    const a1 = await submitAs(JOB_USER, d, 'a1', 'sleep 60');
    await waitForJob(d, a1.jobId, (j: Job) => j.jobStatus === 'running');
    const a2 = await submitAs(JOB_USER, d, 'a2', 'true');
    const b1 = await submitAs(OTHER_USER, d, 'b1', 'true');
    expect((await waitForEnd(d, b1.jobId)).jobStatus).toBe('completed');
    expect(await getJob(d, a2.jobId)).toMatchObject({ jobStatus: 'pending', reason: 'QueueMaxRunningPerUser' });

    const a3 = await submitAs(JOB_USER, d, 'a3', 'true');
    expect(a3.code, a3.stderr).toBe(0);
    const a4 = await submitAs(JOB_USER, d, 'a4', 'true');
    expect(a4.code).not.toBe(0);
    expect(a4.stderr).toMatch(/LimitExceeded\.JobQuota: hpcq-job already has 2 pending jobs in queue hpcq-normal \(max_pending_per_user 2\)/);
    // The other user is not affected by hpcq-job's pending jobs.
    expect((await submitAs(OTHER_USER, d, 'b2', 'true')).code).toBe(0);

    await cancelJob(d, a1.jobId);
    expect((await waitForEnd(d, a2.jobId)).jobStatus).toBe('completed');
    expect((await waitForEnd(d, a3.jobId)).jobStatus).toBe('completed');
  });
});
