/**
 * What metrics cost: durable SubmitJob throughput with metrics off and on, alternating (off, on,
 * off, on...) so that drift of the machine falls on both alike, each run on a fresh daemon. With
 * metrics on, /metrics is scraped every second during the run (a scrape interval far shorter than
 * Prometheus' usual 15 s or more, so the figure is an upper bound). The daemon's CPU time per
 * submit is reported too: on a shared machine it varies far less than throughput does.
 */
import { createServer } from 'node:net';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { withBusyCore } from './daemon-bench.js';

export interface MetricsOverhead {
  /** Jobs per second of each run, in run order. */
  off: number[];
  on: number[];
  /** Daemon CPU time per submit (user + system), microseconds, of each run. */
  offCpuUs: number[];
  onCpuUs: number[];
  scrapes: number;
  /** How much lower the mean throughput is with metrics on, in percent (negative: higher). */
  costPercent: number;
}

const SCRAPE_INTERVAL_MS = 1000;
const WARM_UP_SUBMITS = 1000;

export async function metricsOverhead(runUser: string, clients: number, submits: number, rounds: number): Promise<MetricsOverhead> {
  const result = { off: [] as number[], on: [] as number[], offCpuUs: [] as number[], onCpuUs: [] as number[], scrapes: 0 };
  for (let round = 0; round < rounds; round++) {
    for (const metrics of [false, true]) {
      const run = await submitRun(runUser, clients, submits, metrics);
      (metrics ? result.on : result.off).push(run.jobsPerSecond);
      (metrics ? result.onCpuUs : result.offCpuUs).push(run.cpuUsPerSubmit);
      result.scrapes += run.scrapes;
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { ...result, costPercent: ((mean(result.off) - mean(result.on)) / mean(result.off)) * 100 };
}

async function submitRun(runUser: string, clients: number, submits: number, metrics: boolean): Promise<{ jobsPerSecond: number; cpuUsPerSubmit: number; scrapes: number }> {
  const port = metrics ? await freePort() : 0;
  const config = benchConfig({ cores: 1 }) + (metrics ? `metrics_listen: "127.0.0.1:${port}"\n` : '');
  const daemon = await BenchDaemon.start(config);
  let scrapes = 0;
  const scraper = metrics
    ? setInterval(() => {
        fetch(`http://127.0.0.1:${port}/metrics`)
          .then((res) => res.text())
          .then(() => scrapes++)
          .catch(() => undefined);
      }, SCRAPE_INTERVAL_MS)
    : undefined;
  try {
    return await withBusyCore(daemon, runUser, async () => {
      const channels = Array.from({ length: clients }, (_, c) => daemon.rawSubmitter({ name: `metrics-bench-${c}`, runUser, cmdLine: 'true' }));
      const load = async (total: number) => {
        let next = 0;
        await Promise.all(
          channels.map(async (channel) => {
            while (next < total) {
              next++;
              await channel.submit();
            }
          }),
        );
      };
      await load(WARM_UP_SUBMITS);
      const t0 = performance.now();
      const cpu0 = daemon.cpuMs();
      await load(submits);
      const cpuUsPerSubmit = ((daemon.cpuMs() - cpu0) * 1000) / submits;
      const seconds = (performance.now() - t0) / 1000;
      for (const channel of channels) channel.close();
      if (metrics && scrapes === 0 && seconds * 1000 > 2 * SCRAPE_INTERVAL_MS) throw new Error('the daemon served no scrape during the run');
      return { jobsPerSecond: submits / seconds, cpuUsPerSubmit, scrapes };
    });
  } finally {
    clearInterval(scraper);
    await daemon.close();
  }
}

/** A TCP port free on loopback now (the daemon binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
