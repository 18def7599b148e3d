/**
 * Chaos (RELIABILITY D2, D4, I7-I9 under load): 16 clients submit short jobs, each submit with its
 * own client_token and retried with that token until acknowledged, while the daemon is killed with
 * SIGKILL at random moments 20 times and started again on the same state directory. Every job
 * appends its token to one file before it sleeps and exits with a code derived from its token, so
 * afterwards the test can tell, per job, whether it exists exactly once, whether it ran, how often,
 * and with which exit code. A kill of the daemon alone must never lose a job, run one twice, or
 * fail one as NODE_FAIL (its supervisor is still there).
 */
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../../src/gen/hpcq/v1/job.js';
import type { SubmitJobRequest, SubmitJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import { emptySubmit, startDaemon, stopAll, TERMINAL_STATUSES, TEST_CONFIG, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import {
  countBy,
  databaseDir,
  killJobsOf,
  linesOf,
  listAllJobs,
  makeJobUserDir,
  reconnectingClient,
  removeJobUserDirs,
} from '../support/durability.js';
import { isRoot, JOB_USER, need } from '../support/privileged.js';
import { consistencyProblems } from '../support/store-fixtures.js';

const CLIENTS = 16;
const KILLS = 20;
/** Room for a few dozen short jobs at once (the harness config has 4 cores). */
const CONFIG = TEST_CONFIG.replace('cores: 4', 'cores: 8');
/** Per-call deadline: a call to a daemon killed mid-call must not hang the client. */
const CALL_DEADLINE_MS = 10_000;
/** Failures a client retries with the same token: the daemon was down, died mid-call, or was slow. */
const RETRYABLE = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.CANCELLED]);

const daemons: DaemonHandle[] = [];
const harnessDirs = new Set<string>();

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill9();
  for (const dir of harnessDirs) await killJobsOf(dir);
  harnessDirs.clear();
  await stopAll();
  removeJobUserDirs();
});

async function start(stateDir?: string): Promise<DaemonHandle> {
  const d = await startDaemon({ ...(stateDir ? { stateDir } : {}), config: CONFIG });
  daemons.push(d);
  harnessDirs.add(d.stateDir);
  return d;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const randomInt = (n: number) => Math.floor(Math.random() * n);

/** The exit code the job with this token chooses: 0-3, so both COMPLETED and FAILED occur. */
const exitCodeOf = (token: string) => [...token].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 4;

describe('chaos', () => {
  it('keeps every acknowledged submit exactly once and runs every job at most once through 20 kill -9s', { timeout: 300_000 }, async () => {
    if (!need(isRoot, 'root, to run jobs as the test user')) return;
    const dir = makeJobUserDir('hpcq-chaos');
    const runsFile = join(dir, 'runs');
    let d = await start();
    const { stateDir, address } = d;

    const acked = new Map<string, string>(); // token -> job id from the response
    const unexpectedErrors: string[] = [];
    let retries = 0;
    let submitting = true;

    const submitOnce = (client: ReturnType<typeof reconnectingClient>, req: SubmitJobRequest) =>
      new Promise<SubmitJobResponse>((resolve, reject) =>
        client.submitJob(req, new Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) => (err ? reject(err) : resolve(res))),
      );

    const runClient = async (clientNo: number) => {
      const client = reconnectingClient(address);
      try {
        for (let n = 0; submitting; n++) {
          const token = `chaos-${clientNo}-${n}`;
          // Fixed per token: a retry must send the very same request.
          const req: SubmitJobRequest = {
            ...emptySubmit,
            name: token,
            runUser: JOB_USER,
            cmdLine: `echo ${token} >> ${runsFile}; sleep 0.${randomInt(10)}; exit ${exitCodeOf(token)}`,
            stdoutRedirectPath: `${dir}/%j.out`,
            stderrRedirectPath: `${dir}/%j.err`,
            clientToken: token,
          };
          for (;;) {
            try {
              const res = await submitOnce(client, req);
              acked.set(token, res.jobId);
              break;
            } catch (err) {
              const e = err as ServiceError;
              if (!RETRYABLE.has(e.code)) {
                unexpectedErrors.push(`${token}: ${e.code} ${e.details}`);
                return;
              }
              retries++;
              await sleep(50 + randomInt(150));
            }
          }
          // About 12 submits a second from all clients: a little more than 8 cores of ~0.5 s jobs
          // take, so there are always jobs running and launching when the daemon is killed.
          await sleep(randomInt(2500));
        }
      } finally {
        client.close();
      }
    };

    const clients = Array.from({ length: CLIENTS }, (_, i) => runClient(i));
    const runningAtKill: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      await sleep(300 + randomInt(2200));
      runningAtKill.push((await listAllJobs(d).catch(() => [] as Job[])).filter((j) => j.jobStatus === 'running').length);
      await d.kill9();
      await sleep(randomInt(300));
      d = await start(stateDir);
    }
    await sleep(1000);
    submitting = false;
    await Promise.all(clients);
    expect(unexpectedErrors).toEqual([]);

    // Every job, acknowledged or not, reaches a terminal state.
    let jobs = await listAllJobs(d);
    const unfinished = jobs.filter((j) => !TERMINAL_STATUSES.has(j.jobStatus));
    // In batches: one WatchJob stream each, and a connection takes 1000 streams at most.
    for (let i = 0; i < unfinished.length; i += 200) {
      await Promise.all(unfinished.slice(i, i + 200).map((j) => waitForEnd(d, j.jobId, 120_000)));
    }
    jobs = await listAllJobs(d);

    // Exactly one job per acknowledged token, the one the client was told about; no other jobs.
    const idsByToken = new Map<string, string[]>();
    for (const j of jobs) idsByToken.set(j.clientToken, [...(idsByToken.get(j.clientToken) ?? []), j.jobId]);
    const duplicates = [...idsByToken].filter(([, ids]) => ids.length > 1);
    expect(duplicates, 'tokens with more than one job').toEqual([]);
    for (const [token, jobId] of acked) expect(idsByToken.get(token), `jobs of token ${token}`).toEqual([jobId]);
    expect(jobs.length).toBe(acked.size);

    // Every job ended; the ones that ran did so exactly once, with the exit code they chose.
    const runs = countBy(linesOf(runsFile));
    const problems: string[] = [];
    for (const job of jobs) {
      const token = job.clientToken;
      const ran = runs.get(token) ?? 0;
      const code = exitCodeOf(token);
      if (ran > 1) problems.push(`${token} (job ${job.jobId}) ran ${ran} times`);
      if (job.jobStatus === 'completed' || job.jobStatus === 'failed') {
        if (ran !== 1) problems.push(`${token} (job ${job.jobId}) is ${job.jobStatus} but ran ${ran} times`);
        if (job.exitCode !== code || job.jobStatus !== (code === 0 ? 'completed' : 'failed')) {
          problems.push(`${token} (job ${job.jobId}) is ${job.jobStatus} with exit code ${job.exitCode}, chose ${code}: ${job.reason}`);
        }
      } else {
        // No supervisor was killed and no job cancelled: NODE_FAIL (or anything else) is a bug.
        problems.push(`${token} (job ${job.jobId}) ended ${job.jobStatus}: ${job.reason}`);
      }
    }
    const unknownRuns = [...runs.keys()].filter((token) => !idsByToken.has(token));
    expect(unknownRuns, 'runs of jobs that do not exist').toEqual([]);
    expect(problems).toEqual([]);

    expect(await d.stop()).toBe(0);
    expect(await consistencyProblems(databaseDir(stateDir))).toEqual([]);
    // Not assertions about timing, but the test is only meaningful if the kills met running jobs.
    const logged = (text: string) => daemons.reduce((n, h) => n + h.output().split(text).length - 1, 0);
    console.info(
      `chaos: ${acked.size} jobs acknowledged, ${retries} retried submits, running at each kill: ${runningAtKill.join(' ')}; ` +
        `after restarts: ${logged('"msg":"re-attached to running job"')} re-attached, ` +
        `${logged('re-attached to a job supervisor that was still starting')} supervisors still starting, ` +
        `${logged('it never ran, launching it now')} launched that had never started`,
    );
    expect(runningAtKill.some((n) => n > 0)).toBe(true);
  });
});
