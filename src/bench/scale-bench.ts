/**
 * The daemon with a long history: 1,000,000 finished jobs generated directly through the store's
 * key layout, then the daemon started on it. Start-up must not scan finished jobs.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchDaemon, benchConfig, percentile } from './bench-daemon.js';
import { generateJobHistory } from './store-bench.js';

export interface ScaleFigures {
  jobs: number;
  generationSeconds: number;
  startupMs: number;
  rssAfterStartMb: number;
  /** After the reads: the daemon's own memory and the mmap'd database pages it touched. */
  rssAnonAfterReadsMb: number;
  rssFileAfterReadsMb: number;
  getJobP50Ms: number;
  getJobP99Ms: number;
  listPageP50Ms: number;
  listPageP99Ms: number;
  peakRssMb: number;
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
    const get: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const id = String(1 + Math.floor(Math.random() * jobs));
      const s = performance.now();
      await daemon.getJob(id);
      get.push(performance.now() - s);
    }
    get.sort((a, b) => a - b);
    const list: number[] = [];
    const filters = [
      { states: [3], runUser: '' },
      { states: [], runUser: 'u7' },
      { states: [4, 6], runUser: 'u42' },
    ];
    for (let i = 0; i < 300; i++) {
      const f = filters[i % filters.length]!;
      const s = performance.now();
      await new Promise((resolve, reject) =>
        daemon.client.listJobs({ clusterId: '', queue: '', states: f.states, runUser: f.runUser, pageSize: 100, pageToken: '' }, (err, res) => (err ? reject(err) : resolve(res))),
      );
      list.push(performance.now() - s);
    }
    list.sort((a, b) => a - b);
    const rss = daemon.rssBreakdownMb();
    return {
      rssAnonAfterReadsMb: rss.anon,
      rssFileAfterReadsMb: rss.file,
      jobs,
      generationSeconds,
      startupMs,
      rssAfterStartMb,
      getJobP50Ms: percentile(get, 50),
      getJobP99Ms: percentile(get, 99),
      listPageP50Ms: percentile(list, 50),
      listPageP99Ms: percentile(list, 99),
      peakRssMb: daemon.peakRssMb(),
    };
  } finally {
    await daemon.close();
  }
}
