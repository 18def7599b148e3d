/**
 * A job over its time limit on a backend: slurm cluster ends TIMEOUT. Slurm's smallest limit is a
 * minute, so this test has a file of its own and runs beside the other Slurm tests (one shared
 * cluster per run).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { TEST_CONFIG, startDaemon, submit, waitForEnd } from '../support/daemon-harness.js';
import { cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, ensureTestUsers, isRoot, need } from '../support/privileged.js';
import { sharedSlurmCluster, slurmAvailable } from '../support/slurm-cluster.js';

let slurmConf = '';

beforeAll(async () => {
  if (!(need(isRoot, 'root (the test runs Slurm)') && need(ensureTestUsers(), `test user ${JOB_USER}`) && need(slurmAvailable(), 'Slurm, or apt-get to install it'))) return;
  slurmConf = (await sharedSlurmCluster()).env.SLURM_CONF!;
}, 660_000);

describe('hpcq with a backend: slurm cluster: time limits', () => {
  cleanUpJobTests();

  it('a job over its time limit (rounded up to Slurm\'s minute) ends TIMEOUT with limit_hit time', async (ctx) => {
    if (!slurmConf) return ctx.skip();
    const d = await startDaemon({
      config: `${TEST_CONFIG}
  - cluster_id: hpcq-slurm
    zone: slurm-zone
    backend: slurm
    slurm:
      conf: ${slurmConf}
      poll_interval_seconds: 1
    queues:
      - hpcqueue_id: hpcq-slurm-debug
        scheduler_queue_name: debug
        default: true
        default_mem_mb: 128
`,
    });
    const r = await submit(d, { name: 'overtime', clusterId: 'hpcq-slurm', runUser: JOB_USER, cmdLine: 'sleep 600', timeLimit: 30, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
    const ended = await waitForEnd(d, r.jobId, 170_000);
    expect(ended).toMatchObject({ jobStatus: 'timeout', limitHit: 'time', timeLimit: 30 });
    expect(Date.parse(ended.endTime) - Date.parse(ended.startTime)).toBeGreaterThanOrEqual(55_000);
  }, 200_000);
});
