// Prometheus metrics scraped over HTTP from a real daemon while its jobs are submitted, run and end.
import { describe, expect, it } from 'vitest';
import type { DaemonHandle } from '../support/daemon-harness.js';
import { cancelJob, isRunning, rejection, startDaemon, submit, TEST_CONFIG, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';
import { lintExposition, promtoolCheck, valueOf } from '../support/prometheus-text.js';

cleanUpJobTests();

/** TEST_CONFIG (4 cores) with metrics on a port the daemon picks; it reports it in its ready line. */
const METRICS_CONFIG = `${TEST_CONFIG}\nmetrics_listen: "127.0.0.1:0"\n`;
const quiet = { stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' };

function readyLine(d: DaemonHandle): { metrics?: string } {
  return JSON.parse(d.output().split('\n').find((line) => line.includes('"event":"ready"'))!) as { metrics?: string };
}

function metricsUrl(d: DaemonHandle, path = '/metrics'): string {
  const address = readyLine(d).metrics;
  if (!address) throw new Error('the ready line names no metrics address');
  return `http://${address}${path}`;
}

async function scrape(d: DaemonHandle): Promise<string> {
  const res = await fetch(metricsUrl(d));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** Scrapes until `done(text)` holds (levels follow events a moment later), or fails after a while. */
async function scrapeUntil(d: DaemonHandle, done: (text: string) => boolean): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = await scrape(d);
    if (done(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the metrics did not reach the expected values');
}

/** The exposition is well-formed, and promtool accepts it where it is installed. */
function expectValidExposition(text: string): void {
  expect(lintExposition(text)).toEqual([]);
  const promtool = promtoolCheck(text);
  if (promtool) expect(promtool.ok, promtool.output).toBe(true);
}

describe('metrics', () => {
  it('move as jobs are submitted, refused, run and end', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon({ config: METRICS_CONFIG });
    const before = await scrape(d);
    expectValidExposition(before);
    expect(valueOf(before, 'hpcq_node_cores')).toBe(4);
    expect(valueOf(before, 'hpcq_node_free_cores')).toBe(4);
    expect(valueOf(before, 'hpcq_node_free_memory_bytes')).toBe(4096 * 1024 * 1024);
    expect(valueOf(before, 'hpcq_submits_total', { method: 'SubmitJob' })).toBe(0);

    // A long job holding 2 cores, one that completes, one that fails, and a refused submit.
    const long = await submit(d, { name: 'long', runUser: JOB_USER, cmdLine: 'sleep 60', coreLimit: 2, ...quiet });
    await waitForJob(d, long.jobId, isRunning);
    const ok = await submit(d, { name: 'ok', runUser: JOB_USER, cmdLine: 'true', ...quiet });
    const bad = await submit(d, { name: 'bad', runUser: JOB_USER, cmdLine: 'exit 3', ...quiet });
    await Promise.all([waitForEnd(d, ok.jobId), waitForEnd(d, bad.jobId)]);
    const refused = await rejection(submit(d, { name: 'nobody', runUser: 'hpcq-no-such-user', cmdLine: 'true' }));
    const watch = d.jobs.watchJob({ jobId: long.jobId, includeHistory: false });
    watch.on('error', () => {});

    const during = await scrapeUntil(d, (t) => valueOf(t, 'hpcq_watches_active', { method: 'WatchJob' }) === 1);
    expectValidExposition(during);
    expect(valueOf(during, 'hpcq_submits_total', { method: 'SubmitJob' })).toBe(3);
    expect(valueOf(during, 'hpcq_requests_total', { method: 'SubmitJob', result: 'refused' })).toBe(1);
    expect(valueOf(during, 'hpcq_request_refusals_total', { method: 'SubmitJob', reason: refused.reason })).toBe(1);
    expect(valueOf(during, 'hpcq_jobs', { queue: 'hpcq-normal', state: 'running' })).toBe(1);
    expect(valueOf(during, 'hpcq_jobs', { queue: 'hpcq-normal', state: 'pending' })).toBe(0);
    expect(valueOf(during, 'hpcq_node_free_cores')).toBe(2);
    expect(valueOf(during, 'hpcq_job_outcomes_total', { queue: 'hpcq-normal', state: 'completed' })).toBe(1);
    expect(valueOf(during, 'hpcq_job_outcomes_total', { queue: 'hpcq-normal', state: 'failed' })).toBe(1);
    expect(valueOf(during, 'hpcq_job_launch_duration_seconds_count')).toBe(3);
    expect(valueOf(during, 'hpcq_job_launch_duration_seconds_sum')).toBeGreaterThan(0);
    expect(valueOf(during, 'hpcq_dispatch_pass_duration_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(valueOf(during, 'hpcq_dispatch_started_jobs_total')).toBe(3);
    expect(valueOf(during, 'hpcq_store_write_duration_seconds_count', { op: 'createJob' })).toBe(3);
    // RUNNING and an end for each of the three jobs: at most six writes, fewer when batched together.
    expect(valueOf(during, 'hpcq_store_write_duration_seconds_count', { op: 'saveTransitions' })).toBeGreaterThanOrEqual(4);
    expect(valueOf(during, 'hpcq_store_batches_total')).toBeGreaterThanOrEqual(5);
    expect(valueOf(during, 'hpcq_store_batch_writes_count')).toBe(valueOf(during, 'hpcq_store_batches_total'));
    expect(valueOf(during, 'hpcq_connections_active')).toBeGreaterThanOrEqual(1);
    expect(valueOf(during, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(valueOf(during, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    watch.cancel();
    await cancelJob(d, long.jobId);
    await waitForEnd(d, long.jobId);
    const after = await scrapeUntil(d, (t) => valueOf(t, 'hpcq_watches_active', { method: 'WatchJob' }) === 0);
    expect(valueOf(after, 'hpcq_job_outcomes_total', { queue: 'hpcq-normal', state: 'cancelled' })).toBe(1);
    expect(valueOf(after, 'hpcq_jobs', { queue: 'hpcq-normal', state: 'running' })).toBe(0);
    expect(valueOf(after, 'hpcq_node_free_cores')).toBe(4);
    expect(valueOf(after, 'hpcq_requests_total', { method: 'CancelJob', result: 'ok' })).toBe(1);
  });

  it('serves only GET /metrics', async () => {
    const d = await startDaemon({ config: METRICS_CONFIG });
    expect((await fetch(metricsUrl(d, '/'))).status).toBe(404);
    expect((await fetch(metricsUrl(d), { method: 'POST' })).status).toBe(405);
    expect((await fetch(metricsUrl(d), { method: 'HEAD' })).status).toBe(200);
  });

  it('are off unless metrics_listen is set', async () => {
    const d = await startDaemon();
    expect(readyLine(d)).not.toHaveProperty('metrics');
    expect(d.output()).not.toContain('serving metrics');
  });
});
