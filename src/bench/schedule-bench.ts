/**
 * Schedules and waiting jobs on a real daemon:
 * - 1,000 schedules ticking every second: how late each tick's job is stored (its submit time
 *   against its tick) and the daemon CPU the ticks cost. The queue is stopped, so the figures are
 *   the ticks' (validation, one synced batch per tick), not the launches'.
 * - Dispatch with 100,000 held or future (begin_time) jobs pending: submit -> COMPLETED of `true`
 *   jobs and daemon CPU per job, against the same with nothing waiting.
 */
import { availableParallelism } from 'node:os';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { QueueServiceClient } from '../gen/hpcq/v1/queue_service.js';
import { CreateScheduleRequest, ScheduleServiceClient, type Schedule } from '../gen/hpcq/v1/schedule_service.js';
import { SubmitJobRequest, type ListJobsRequest, type ListJobsResponse } from '../gen/hpcq/v1/job_service.js';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { cancelPending } from './daemon-bench.js';
import { percentile } from './percentile.js';

export interface ScheduleFigures {
  schedules: number;
  seconds: number;
  ticks: number;
  latenessP50Ms: number;
  latenessP99Ms: number;
  /** Daemon CPU while ticking, as a share of one core. */
  cpuShare: number;
  cpuMsPerTick: number;
}

function unary<Req, Res>(fn: (req: Req, cb: (err: ServiceError | null, res: Res) => void) => unknown, client: object, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res))));
}

export async function scheduleTicks(runUser: string, schedules: number, seconds: number): Promise<ScheduleFigures> {
  const daemon = await BenchDaemon.start(benchConfig({ cores: availableParallelism() }));
  const queues = new QueueServiceClient(daemon.address, credentials.createInsecure());
  const client = new ScheduleServiceClient(daemon.address, credentials.createInsecure());
  try {
    await unary(queues.stopQueue, queues, { hpcqueueId: 'hpcq-normal' });
    const job = SubmitJobRequest.fromPartial({ name: 'tick', runUser, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
    const ids: string[] = [];
    for (let i = 0; i < schedules; i++) {
      const s = await unary<CreateScheduleRequest, Schedule>(client.createSchedule, client, CreateScheduleRequest.fromPartial({ name: `s${i}`, cron: '* * * * * *', job }));
      ids.push(s.scheduleId);
    }
    // Measured from the next whole second on, for `seconds` seconds.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 100));
    const fromMs = Math.ceil(Date.now() / 1000) * 1000;
    const cpu0 = daemon.cpuMs();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const cpuMs = daemon.cpuMs() - cpu0;
    const wallMs = performance.now() - t0;
    const toMs = fromMs + seconds * 1000;
    for (const id of ids) await unary(client.updateSchedule, client, { scheduleId: id, suspend: true, job: undefined });
    const lateness: number[] = [];
    let pageToken = '';
    do {
      const page = await unary<ListJobsRequest, ListJobsResponse>(daemon.client.listJobs, daemon.client, { clusterId: '', queue: '', states: [], runUser: '', pageSize: 1000, pageToken, includeInstances: false });
      for (const j of page.jobs) {
        const tick = Date.parse(j.scheduleTickTime);
        if (tick >= fromMs && tick < toMs) lateness.push(Date.parse(j.submitTime) - tick);
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    lateness.sort((a, b) => a - b);
    return {
      schedules,
      seconds,
      ticks: lateness.length,
      latenessP50Ms: percentile(lateness, 50),
      latenessP99Ms: percentile(lateness, 99),
      cpuShare: cpuMs / wallMs,
      cpuMsPerTick: cpuMs / Math.max(1, lateness.length),
    };
  } finally {
    await cancelPending(daemon);
    client.close();
    queues.close();
    await daemon.close();
  }
}

export interface WaitingJobsFigures {
  waiting: number;
  submitToCompletedP50Ms: number;
  submitToCompletedP99Ms: number;
  daemonCpuMsPerJob: number;
}

/** `waiting` jobs pending (half held, half with a begin_time a day ahead), then `samples` `true` jobs one after another. */
export async function dispatchWithWaiting(runUser: string, waiting: number, samples: number): Promise<WaitingJobsFigures> {
  const daemon = await BenchDaemon.start(benchConfig({ cores: availableParallelism() }));
  try {
    const held = daemon.rawSubmitter({ name: 'held', runUser, cmdLine: 'true', hold: true });
    const later = daemon.rawSubmitter({ name: 'later', runUser, cmdLine: 'true', beginTime: new Date(Date.now() + 86_400_000).toISOString() });
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async (_, c) => {
        while (next < waiting) {
          next++;
          await (c % 2 === 0 ? held : later).submit();
        }
      }),
    );
    held.close();
    later.close();
    const times: number[] = [];
    const cpu0 = daemon.cpuMs();
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now();
      const { jobId } = await daemon.submit({ name: 'probe', runUser, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' });
      await daemon.waitFor(jobId, ['completed', 'failed']);
      times.push(performance.now() - t0);
    }
    const cpuMs = daemon.cpuMs() - cpu0;
    times.sort((a, b) => a - b);
    return { waiting, submitToCompletedP50Ms: percentile(times, 50), submitToCompletedP99Ms: percentile(times, 99), daemonCpuMsPerJob: cpuMs / samples };
  } finally {
    await cancelPending(daemon);
    await daemon.close();
  }
}
