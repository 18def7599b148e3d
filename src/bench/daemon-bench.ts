/**
 * Benchmarks of a real daemon over its unix socket: durable submit throughput, submit-to-running
 * latency, restart with running jobs (the launch figures are in launch-bench.ts).
 */
import { JobState } from '../gen/hpcq/v1/job.js';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { percentile } from './percentile.js';
import { mapWithConcurrency } from './concurrency.js';

export interface SubmitFigures {
  clients: number;
  submits: number;
  jobsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/**
 * Durable SubmitJob throughput with `clients` concurrent connections (one outstanding request
 * each, pre-encoded: see rawSubmitter); jobs stay pending behind a blocker.
 */
export async function submitThroughput(runUser: string, clientCounts: readonly number[], submitsPerRun: (clients: number) => number): Promise<{ figures: SubmitFigures[]; peakRssMb: number }> {
  const daemon = await BenchDaemon.start(benchConfig({ cores: 1 }));
  try {
    return await withBusyCore(daemon, runUser, async () => {
      const figures: SubmitFigures[] = [];
      for (const clients of clientCounts) {
        const channels = Array.from({ length: clients }, (_, c) => daemon.rawSubmitter({ name: `bench-${clients}-${c}`, runUser, cmdLine: 'true' }));
        const total = submitsPerRun(clients);
        const latencies: number[] = [];
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          channels.map(async (channel) => {
            while (next < total) {
              next++;
              const s = performance.now();
              await channel.submit();
              latencies.push(performance.now() - s);
            }
          }),
        );
        const seconds = (performance.now() - t0) / 1000;
        for (const client of channels) client.close();
        latencies.sort((a, b) => a - b);
        figures.push({ clients, submits: total, jobsPerSecond: total / seconds, latencyP50Ms: percentile(latencies, 50), latencyP99Ms: percentile(latencies, 99) });
      }
      return { figures, peakRssMb: daemon.peakRssMb() };
    });
  } finally {
    await daemon.close();
  }
}

/**
 * Runs `fn` while one long job of `runUser` holds the daemon's only core, so that submitted jobs
 * stay pending and a benchmark measures the submit path alone. Leaves nothing behind: running jobs
 * outlive the daemon by design, so the blocker is cancelled, after the pending jobs (or ending it
 * would start them).
 */
export async function withBusyCore<T>(daemon: BenchDaemon, runUser: string, fn: () => Promise<T>): Promise<T> {
  let blockerId: string | undefined;
  try {
    blockerId = (await daemon.submit({ name: 'blocker', runUser, cmdLine: 'sleep 3600', coreLimit: 1 })).jobId;
    await daemon.waitFor(blockerId, ['running']);
    return await fn();
  } finally {
    await cancelPending(daemon);
    if (blockerId !== undefined) {
      await daemon.cancel(blockerId);
      await daemon.waitFor(blockerId, ['cancelled']);
    }
  }
}

/** kill -9 with `count` jobs running, restart, and time until the daemon serves with all re-attached. */
export async function restartWithRunningJobs(runUser: string, count: number): Promise<{ jobs: number; restartToReattachedMs: number; stillRunning: number }> {
  const daemon = await BenchDaemon.start(benchConfig({ cores: count, memMb: count * 64 }));
  try {
    const ids = await Promise.all(
      Array.from({ length: count }, () => daemon.submit({ name: 'survivor', runUser, cmdLine: 'sleep 300', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' })),
    );
    await mapWithConcurrency(ids, 500, ({ jobId }) => daemon.waitFor(jobId, ['running']));
    await daemon.kill('SIGKILL');
    const restartToReattachedMs = await daemon.spawn();
    const states = await Promise.all(ids.map(({ jobId }) => daemon.getJob(jobId) as Promise<{ job: { jobStatus: string } }>));
    const stillRunning = states.filter((s) => s.job.jobStatus === 'running').length;
    await Promise.all(ids.map(({ jobId }) => daemon.cancel(jobId)));
    await mapWithConcurrency(ids, 500, ({ jobId }) => daemon.waitFor(jobId, ['cancelled', 'completed', 'failed', 'node_fail']));
    return { jobs: count, restartToReattachedMs, stillRunning };
  } finally {
    await daemon.close();
  }
}

/** Cancels every PENDING job, a page of 1,000 at a time (ListJobs, then CancelJob 64 at a time). */
export async function cancelPending(daemon: BenchDaemon): Promise<void> {
  for (;;) {
    const page = await new Promise<{ jobs: { jobId: string }[] }>((resolve, reject) =>
      daemon.client.listJobs({ clusterId: '', queue: '', states: [JobState.JOB_STATE_PENDING], runUser: '', pageSize: 1000, pageToken: '', includeInstances: true }, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
    if (page.jobs.length === 0) return;
    await mapWithConcurrency(page.jobs, 64, (job) => daemon.cancel(job.jobId));
  }
}
