/**
 * The daemon with a long history: 1,000,000 finished jobs generated directly through the store's
 * key layout, then the daemon started on it. Start-up must not scan finished jobs. The reads come
 * from a separate client program (read-client.ts).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { generateJobHistory } from './store-bench.js';

const READ_CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'read-client.js');
const GET_JOB_WARM_UP = 5_000;
const GET_JOB_SAMPLES = 20_000;

export interface ScaleFigures {
  jobs: number;
  generationSeconds: number;
  startupMs: number;
  rssAfterStartMb: number;
  /** After the reads: VmRSS, split into the daemon's own memory and mmap'd files (database, code). */
  rssAfterReadsMb: number;
  rssAnonAfterReadsMb: number;
  rssFileAfterReadsMb: number;
  peakRssMb: number;
  getJobP50Ms: number;
  getJobP99Ms: number;
  getJobP999Ms: number;
  listPageP50Ms: number;
  listPageP99Ms: number;
}

interface ReadFigures {
  getJob: { p50: number; p99: number; p999: number };
  listJobs: { p50: number; p99: number };
}

export async function scaleRun(jobs: number): Promise<ScaleFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-bench-scale-'));
  mkdirSync(join(dir, 'state'), { mode: 0o700 });
  const t0 = performance.now();
  await generateJobHistory(join(dir, 'state', 'db'), jobs, 0);
  const generationSeconds = (performance.now() - t0) / 1000;

  const daemon = await BenchDaemon.start(benchConfig({ cores: 2 }), dir);
  try {
    const startupMs = daemon.startupMs;
    const rssAfterStartMb = daemon.rssMb();
    const { stdout } = await promisify(execFile)(process.execPath, [READ_CLIENT, daemon.address, String(jobs), String(GET_JOB_WARM_UP), String(GET_JOB_SAMPLES)]);
    const reads = JSON.parse(stdout) as ReadFigures;
    const rss = daemon.rssBreakdownMb();
    return {
      jobs,
      generationSeconds,
      startupMs,
      rssAfterStartMb,
      rssAfterReadsMb: daemon.rssMb(),
      rssAnonAfterReadsMb: rss.anon,
      rssFileAfterReadsMb: rss.file,
      peakRssMb: daemon.peakRssMb(),
      getJobP50Ms: reads.getJob.p50,
      getJobP99Ms: reads.getJob.p99,
      getJobP999Ms: reads.getJob.p999,
      listPageP50Ms: reads.listJobs.p50,
      listPageP99Ms: reads.listJobs.p99,
    };
  } finally {
    await daemon.close();
  }
}
