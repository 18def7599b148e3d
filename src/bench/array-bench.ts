/**
 * A 10,000-instance array of `true`: the SubmitJob latency (one RPC, one synced write for the
 * array job and every instance), the time until every instance has ended, and the daemon's RSS.
 */
import { availableParallelism } from 'node:os';
import { BenchDaemon, benchConfig } from './bench-daemon.js';

export interface ArrayFigures {
  instances: number;
  submitMs: number;
  allDoneSeconds: number;
  peakRssMb: number;
}

export async function arrayRun(runUser: string, instances: number): Promise<ArrayFigures> {
  const daemon = await BenchDaemon.start(benchConfig({ cores: availableParallelism() }));
  try {
    const t0 = performance.now();
    const { jobId } = await daemon.submit({ name: 'bench-array', runUser, cmdLine: 'true', array: { count: instances, parallelism: 0 }, stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
    const submitMs = performance.now() - t0;
    await daemon.waitFor(jobId, ['completed', 'failed', 'cancelled']);
    return { instances, submitMs, allDoneSeconds: (performance.now() - t0) / 1000, peakRssMb: daemon.peakRssMb() };
  } finally {
    await daemon.close();
  }
}
