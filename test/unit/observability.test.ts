// The daemon's log line fields, its metrics text and the log level control, without a daemon.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { HpcqError } from '../../src/core/errors.js';
import { newPendingJob, transition, type Job, type JobEvent, type JobState } from '../../src/core/job.js';
import { LogLevelControl } from '../../src/observability/log-level.js';
import { isLaunchFailure, requestLogFields, requestResult, transitionLogFields } from '../../src/observability/log-lines.js';
import { DaemonMetrics, type MetricSources } from '../../src/observability/metrics.js';
import { powerOfTwoBuckets } from '../../src/observability/event-metrics.js';
import type { StoreStats } from '../../src/store/level-job-store.js';
import { testJobSpec } from '../support/job-spec.js';
import { lintExposition, valueOf } from '../support/prometheus-text.js';

const alice = { name: 'uid:1000', via: 'unix' as const, peer: 'uid:1000/pid:42', account: { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice', shell: '/bin/sh', groups: [] } };

function jobIn(state: JobState, fields: Partial<Job> = {}, reason = ''): { job: Job; event: JobEvent; previous: JobState } {
  let job = newPendingJob(testJobSpec(), { id: 7, uuid: 'hpcjob-00000007', reason: 'Priority', submitTimeMs: 1000 });
  let previous: JobState = 'PENDING';
  let event: JobEvent = { jobId: 7, sequence: 1, state: 'PENDING', reason: 'Priority', timeMs: 1000 };
  if (state !== 'PENDING') {
    if (state !== 'RUNNING') ({ job, event } = transition(job, 'RUNNING', '', 2000));
    previous = job.state;
    ({ job, event } = transition({ ...job, ...fields }, state, reason, 3000));
  }
  return { job, event, previous };
}

describe('request log fields', () => {
  it('an accepted submit: principal, its account, peer, method, job id, run user, result', () => {
    expect(requestLogFields('SubmitJob', alice, requestResult(undefined), { jobId: '12', runUser: 'alice' })).toEqual({
      principal: 'uid:1000',
      user: 'alice',
      peer: 'uid:1000/pid:42',
      method: 'SubmitJob',
      jobId: '12',
      runUser: 'alice',
      result: 'ok',
    });
  });

  it('a refusal carries its reason code; an unexpected error is InternalError', () => {
    const refused = requestResult(new HpcqError('InvalidParameter.RunUserNotFound', 'invalid', 'no such user', 'run_user'));
    expect(requestLogFields('SubmitJob', alice, refused, {})).toMatchObject({ result: 'refused', reason: 'InvalidParameter.RunUserNotFound', jobId: undefined });
    expect(requestResult(new Error('boom'))).toEqual({ result: 'error', reason: 'InternalError' });
  });

  it('a call refused before authentication names no principal', () => {
    const fields = requestLogFields('GetJob', undefined, requestResult(new HpcqError('Unauthenticated.UnknownConnection', 'unauthenticated', 'x')), { jobId: '3' });
    expect(fields).toMatchObject({ principal: undefined, method: 'GetJob', jobId: '3', result: 'refused', reason: 'Unauthenticated.UnknownConnection' });
  });
});

describe('state change log fields', () => {
  it('a start: queue, run user, from and to, no exit code yet', () => {
    const { job, event, previous } = jobIn('RUNNING');
    expect(transitionLogFields(job, previous, event)).toEqual({ jobId: 7, queue: 'q1', runUser: 'alice', from: 'PENDING', state: 'RUNNING', reason: undefined });
  });

  it('an end: exit code, signal and the limit hit', () => {
    const { job, event, previous } = jobIn('OUT_OF_MEMORY', { exitCode: 137, termSignal: 9, limitHit: 'memory' }, 'OutOfMemory: the job used more than 64 MiB');
    expect(transitionLogFields(job, previous, event)).toEqual({
      jobId: 7,
      queue: 'q1',
      runUser: 'alice',
      from: 'RUNNING',
      state: 'OUT_OF_MEMORY',
      reason: 'OutOfMemory: the job used more than 64 MiB',
      exitCode: 137,
      termSignal: 9,
      limitHit: 'memory',
    });
  });

  it('tells a launch failure from another failure', () => {
    const launch = jobIn('FAILED', {}, 'LaunchFailed: OperationDenied.RunUserNotFound: account alice no longer exists');
    const exit = jobIn('FAILED', { exitCode: 3 }, 'NonZeroExitCode: 3');
    expect(isLaunchFailure(launch.job, launch.event)).toBe(true);
    expect(isLaunchFailure(exit.job, exit.event)).toBe(false);
  });
});

describe('metrics', () => {
  const stats: StoreStats = { batches: 3, writes: 6, ops: 20, failedBatches: 0, maxBatchWrites: 4, batchWritesHistogram: { '1': 2, '4-7': 1 }, reopens: 0 };
  const sources: MetricSources = {
    queueIds: () => ['q1'],
    queueCounts: () => ({ pending: 5, running: 2 }),
    node: () => ({ cores: 8, memMb: 1024 }),
    used: () => ({ cores: 3, memMb: 256 }),
    storeStats: () => stats,
    openConnections: () => 4,
    schedulers: () => [
      { clusterId: 'hpc', up: false },
      { clusterId: 'gpu', up: true },
    ],
  };

  it('counts events and reads levels when scraped, in a well-formed exposition', async () => {
    const metrics = new DaemonMetrics(sources);
    metrics.requestEnded('SubmitJob', { result: 'ok' });
    metrics.requestEnded('SubmitJob', { result: 'refused', reason: 'InvalidParameter.RunUserNotFound' });
    metrics.requestEnded('GetJob', { result: 'ok' });
    const failed = jobIn('FAILED', {}, 'LaunchFailed: no such file');
    metrics.transition(failed.job, failed.previous, failed.event);
    metrics.dispatchPass(0.4, 2);
    metrics.launched(12);
    metrics.storeWrite('createJob', 3);
    metrics.watchOpened('WatchJob');
    const text = await metrics.text();
    expect(lintExposition(text)).toEqual([]);
    expect(valueOf(text, 'hpcq_submits_total', { method: 'SubmitJob' })).toBe(1);
    expect(valueOf(text, 'hpcq_requests_total', { method: 'SubmitJob', result: 'refused' })).toBe(1);
    expect(valueOf(text, 'hpcq_request_refusals_total', { method: 'SubmitJob', reason: 'InvalidParameter.RunUserNotFound' })).toBe(1);
    expect(valueOf(text, 'hpcq_job_outcomes_total', { queue: 'q1', state: 'failed' })).toBe(1);
    expect(valueOf(text, 'hpcq_job_launch_failures_total', { queue: 'q1' })).toBe(1);
    expect(valueOf(text, 'hpcq_jobs', { queue: 'q1', state: 'pending' })).toBe(5);
    expect(valueOf(text, 'hpcq_node_free_cores')).toBe(5);
    expect(valueOf(text, 'hpcq_node_free_memory_bytes')).toBe(768 * 1024 * 1024);
    expect(valueOf(text, 'hpcq_connections_active')).toBe(4);
    expect(valueOf(text, 'hpcq_cluster_scheduler_up', { cluster: 'hpc' })).toBe(0);
    expect(valueOf(text, 'hpcq_cluster_scheduler_up', { cluster: 'gpu' })).toBe(1);
    expect(valueOf(text, 'hpcq_watches_active', { method: 'WatchJob' })).toBe(1);
    expect(valueOf(text, 'hpcq_dispatch_started_jobs_total')).toBe(2);
    expect(valueOf(text, 'hpcq_job_launch_duration_seconds_count')).toBe(1);
    expect(valueOf(text, 'hpcq_store_write_duration_seconds_count', { op: 'createJob' })).toBe(1);
    expect(valueOf(text, 'hpcq_store_batches_total')).toBe(3);
    expect(valueOf(text, 'hpcq_store_batch_writes_bucket', { le: '3' })).toBe(2);
    expect(valueOf(text, 'hpcq_store_batch_writes_bucket', { le: '7' })).toBe(3);
    expect(valueOf(text, 'hpcq_store_batch_writes_sum')).toBe(6);
    expect(valueOf(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('reads the store counters as counters across scrapes', async () => {
    const live = { ...stats };
    const metrics = new DaemonMetrics({ ...sources, storeStats: () => live });
    expect(valueOf(await metrics.text(), 'hpcq_store_writes_total')).toBe(6);
    live.writes = 10;
    expect(valueOf(await metrics.text(), 'hpcq_store_writes_total')).toBe(10);
  });

  it('turns the store power-of-two buckets into cumulative ones', () => {
    const buckets = powerOfTwoBuckets({ '1': 2, '2-3': 1, '16-31': 4 });
    expect(buckets.slice(0, 5)).toEqual([
      [1, 2],
      [3, 3],
      [7, 3],
      [15, 3],
      [31, 7],
    ]);
    expect(buckets.at(-1)).toEqual([65535, 7]);
  });
});

describe('log level control', () => {
  function logger(level: string) {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { log: pino({ level }, sink), lines };
  }

  it('SIGUSR2 toggles between the configured level and debug', () => {
    const { log } = logger('warn');
    const control = new LogLevelControl(log);
    expect(control.toggleDebug()).toEqual({ level: 'debug', previous: 'warn' });
    expect(log.isLevelEnabled('debug')).toBe(true);
    expect(control.toggleDebug()).toEqual({ level: 'warn', previous: 'debug' });
    // Set to something else first: the toggle goes to debug, then back to the configured level.
    control.set('error');
    expect(control.toggleDebug().level).toBe('debug');
    expect(control.toggleDebug().level).toBe('warn');
  });

  it('from a configured debug, the toggle goes to info', () => {
    const { log } = logger('debug');
    expect(new LogLevelControl(log).toggleDebug()).toEqual({ level: 'info', previous: 'debug' });
  });

  it('says when the level changed', () => {
    const { log, lines } = logger('info');
    new LogLevelControl(log).set('debug');
    expect(lines).toEqual([expect.objectContaining({ level: 30, msg: 'log level changed', logLevel: 'debug', previous: 'info' })]);
  });
});
