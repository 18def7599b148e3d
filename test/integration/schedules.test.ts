/**
 * Schedules (Kubernetes CronJob, Slurm scrontab, SAE ExecJob) with a real daemon running real
 * jobs: one job per tick, FORBID and REPLACE, suspend and resume, TriggerSchedule's event_id and
 * overrides, refusals, and ticks missed while the daemon was down.
 */
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { ConcurrencyPolicy, ScheduleEventKind, type WatchScheduleResponse } from '../../src/gen/hpcq/v1/schedule_service.js';
import { getJob, rejection, startDaemon, waitForEnd, waitForJob } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';
import { createSchedule, deleteSchedule, eventsOf, EVERY_SECOND, getSchedule, jobsOf, listSchedules, scheduleClient, triggerSchedule, updateSchedule } from '../support/schedules.js';

const daemons = cleanUpJobTests();
const ready = canRunJobs;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const template = (dir: string, cmd = 'true') => ({
  name: 'tick',
  runUser: JOB_USER,
  cmdLine: `echo "$HPCQ_JOB_ID" >> ${dir}/runs; ${cmd}`,
  stdoutRedirectPath: '/dev/null',
  stderrRedirectPath: '/dev/null',
});
const { SCHEDULE_EVENT_KIND_FIRED: FIRED, SCHEDULE_EVENT_KIND_SKIPPED: SKIPPED, SCHEDULE_EVENT_KIND_MISSED: MISSED, SCHEDULE_EVENT_KIND_TRIGGERED: TRIGGERED } = ScheduleEventKind;

describe('schedules', () => {
  it('a schedule every 2 seconds (6-field cron) makes one job per tick, each carrying the schedule and its tick', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('sched');
    const created = await createSchedule(d, { name: 'every2', cron: '*/2 * * * * *', job: template(dir) });
    expect(created).toMatchObject({ scheduleId: expect.stringMatching(/^sched-\d+$/), timeZone: 'UTC', lastTick: '', concurrencyPolicy: ConcurrencyPolicy.CONCURRENCY_POLICY_ALLOW });
    expect(Date.parse(created.nextTick) % 2000).toBe(0);
    await sleep(7_000);
    await deleteSchedule(d, created.scheduleId);
    const jobs = await jobsOf(d, created.scheduleId);
    const ticks = jobs.map((j) => Date.parse(j.scheduleTickTime));
    expect(jobs.length).toBeGreaterThanOrEqual(3);
    expect(jobs.length).toBeLessThanOrEqual(4);
    // Distinct ticks, two seconds apart, each made at (not before) its tick.
    for (const [i, t] of ticks.entries()) {
      expect(t % 2000).toBe(0);
      if (i > 0) expect(t - ticks[i - 1]!).toBe(2000);
      expect(Date.parse(jobs[i]!.submitTime)).toBeGreaterThanOrEqual(t);
    }
    for (const job of jobs) expect((await waitForEnd(d, job.jobId)).jobStatus).toBe('completed');
    expect(linesOf(join(dir, 'runs')).sort()).toEqual(jobs.map((j) => j.jobId).sort());
    // Deleted: no more ticks, its jobs are kept, and it is gone.
    await sleep(2_500);
    expect(await jobsOf(d, created.scheduleId)).toHaveLength(jobs.length);
    expect(await rejection(getSchedule(d, created.scheduleId))).toMatchObject({ code: status.NOT_FOUND, reason: 'ResourceNotFound.Schedule' });
  });

  it('FORBID skips ticks while its job runs and records them; TriggerSchedule answers JobForbidPolicy', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('forbid');
    const s = await createSchedule(d, { name: 'forbid', cron: EVERY_SECOND, concurrencyPolicy: ConcurrencyPolicy.CONCURRENCY_POLICY_FORBID, job: template(dir, 'sleep 4') });
    await sleep(3_500);
    const during = await getSchedule(d, s.scheduleId, 100);
    expect(during.activeJobIds).toHaveLength(1);
    const [active] = during.activeJobIds;
    const skipped = during.recentEvents.filter((e) => e.kind === SKIPPED);
    expect(skipped.length).toBeGreaterThanOrEqual(2);
    for (const e of skipped) expect(e.reason).toContain(`job ${active}`);
    expect(await rejection(triggerSchedule(d, { scheduleId: s.scheduleId, eventId: 'forbidden' }))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'JobForbidPolicy' });
    await updateSchedule(d, { scheduleId: s.scheduleId, suspend: true });
    // Never two of its jobs at once.
    const jobs = await jobsOf(d, s.scheduleId);
    for (const [i, job] of jobs.entries()) {
      if (i === 0) continue;
      const previous = await waitForEnd(d, jobs[i - 1]!.jobId);
      expect(Date.parse(job.submitTime)).toBeGreaterThanOrEqual(Date.parse(previous.endTime));
    }
  });

  it('REPLACE cancels the active job and submits the new one', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('replace');
    const s = await createSchedule(d, { name: 'replace', cron: '*/2 * * * * *', concurrencyPolicy: ConcurrencyPolicy.CONCURRENCY_POLICY_REPLACE, job: template(dir, 'sleep 60') });
    const firstId = await waitUntil(async () => (await jobsOf(d, s.scheduleId))[0]?.jobId);
    await waitForJob(d, firstId, (j) => j.jobStatus === 'running');
    const secondId = await waitUntil(async () => (await jobsOf(d, s.scheduleId))[1]?.jobId);
    await updateSchedule(d, { scheduleId: s.scheduleId, suspend: true });
    const first = await waitForEnd(d, firstId);
    expect(first).toMatchObject({ jobStatus: 'cancelled', reason: `Cancelled by schedule ${s.scheduleId} (REPLACE)` });
    expect(await getJob(d, secondId)).toMatchObject({ scheduleId: s.scheduleId });
    const fired = (await eventsOf(d, s.scheduleId)).filter((e) => e.kind === FIRED);
    expect(fired[1]).toMatchObject({ jobId: secondId, reason: `REPLACE: cancelled job ${firstId}` });
  });

  it('suspend stops ticking without touching the running job; resume ticks again and catches up nothing', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('suspend');
    const s = await createSchedule(d, { name: 'pausable', cron: EVERY_SECOND, job: template(dir, 'sleep 3') });
    const firstId = await waitUntil(async () => (await jobsOf(d, s.scheduleId))[0]?.jobId);
    const suspended = await updateSchedule(d, { scheduleId: s.scheduleId, suspend: true });
    expect(suspended).toMatchObject({ suspend: true, nextTick: '' });
    const count = (await jobsOf(d, s.scheduleId)).length;
    expect(await rejection(triggerSchedule(d, { scheduleId: s.scheduleId }))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: 'JobSuspend' });
    await sleep(2_500);
    expect(await jobsOf(d, s.scheduleId)).toHaveLength(count);
    expect((await waitForEnd(d, firstId)).jobStatus).toBe('completed');
    const resumedAt = Date.now();
    const resumed = await updateSchedule(d, { scheduleId: s.scheduleId, suspend: false });
    expect(Date.parse(resumed.nextTick)).toBeGreaterThan(resumedAt - 1000);
    await waitUntil(async () => ((await jobsOf(d, s.scheduleId)).length > count ? true : undefined));
    await updateSchedule(d, { scheduleId: s.scheduleId, suspend: true });
    // Nothing of the suspended time was made up for or recorded as missed.
    const events = await eventsOf(d, s.scheduleId);
    expect(events.filter((e) => e.kind === MISSED)).toEqual([]);
    for (const job of (await jobsOf(d, s.scheduleId)).slice(count)) expect(Date.parse(job.scheduleTickTime)).toBeGreaterThan(resumedAt - 1000);
  });

  it('TriggerSchedule runs the template now; one event_id gives one job; overrides replace command, env, replicas and time', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('trigger');
    // Never ticks by itself (29 February at midnight): only triggers run it.
    const s = await createSchedule(d, { name: 'ondemand', cron: '0 0 29 2 *', job: { ...template(dir), env: { GREETING: 'template', KEEP: 'kept' } } });
    const one = await triggerSchedule(d, { scheduleId: s.scheduleId, eventId: 'evt-1' });
    const again = await triggerSchedule(d, { scheduleId: s.scheduleId, eventId: 'evt-1' });
    expect(again.jobId).toBe(one.jobId);
    expect(await waitForEnd(d, one.jobId)).toMatchObject({ jobStatus: 'completed', scheduleId: s.scheduleId });
    const begin = new Date(Date.now() + 2000);
    const overridden = await triggerSchedule(d, {
      scheduleId: s.scheduleId,
      eventId: 'evt-2',
      overrides: { argv: ['/bin/sh', '-c', `echo "$GREETING $KEEP $HPCQ_ARRAY_INDEX" >> ${dir}/override`], cmdLine: '', env: { GREETING: 'override' }, arrayCount: 2, beginTime: begin.toISOString() },
    });
    const array = await getJob(d, overridden.jobId);
    expect(array).toMatchObject({ array: { count: 2 }, argv: ['/bin/sh', '-c', expect.stringContaining('GREETING')], beginTime: begin.toISOString() });
    const ended = await waitForEnd(d, overridden.jobId);
    expect(ended.jobStatus).toBe('completed');
    expect(Date.parse(ended.startTime)).toBeGreaterThanOrEqual(begin.getTime());
    expect(linesOf(join(dir, 'override')).sort()).toEqual(['override kept 0', 'override kept 1']);
    const events = (await eventsOf(d, s.scheduleId)).filter((e) => e.kind === TRIGGERED);
    expect(events.map((e) => [e.eventId, e.jobId])).toEqual([
      ['evt-1', one.jobId],
      ['evt-2', overridden.jobId],
    ]);
    // A trigger without event_id is not deduplicated.
    const a = await triggerSchedule(d, { scheduleId: s.scheduleId });
    const b = await triggerSchedule(d, { scheduleId: s.scheduleId });
    expect(a.jobId).not.toBe(b.jobId);
  });

  it('WatchSchedule streams the schedule, its history, then each tick as it is stored; deletion ends the stream', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('watch');
    const s = await createSchedule(d, { name: 'watched', cron: EVERY_SECOND, job: template(dir) });
    await waitUntil(async () => ((await jobsOf(d, s.scheduleId)).length >= 1 ? true : undefined));
    const stream = scheduleClient(d).watchSchedule({ scheduleId: s.scheduleId, includeHistory: true });
    const messages: WatchScheduleResponse[] = [];
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: WatchScheduleResponse) => messages.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    await waitUntil(async () => (messages.filter((m) => m.event?.kind === FIRED).length >= 3 ? true : undefined));
    await deleteSchedule(d, s.scheduleId);
    await ended;
    expect(messages[0]!.event).toBeUndefined();
    expect(messages[0]!.schedule).toMatchObject({ scheduleId: s.scheduleId });
    const sequences = messages.slice(1).map((m) => Number(m.event!.sequence));
    // The history first, then live events: every sequence once, in order, from 1.
    expect(sequences).toEqual(sequences.map((_, i) => i + 1));
    for (const m of messages.slice(1)) expect(m.event!.jobId).not.toBe('');
  });

  it('refuses a bad cron, zone, deadline or template by field, storing nothing', async () => {
    if (!ready()) return;
    const d = await startDaemon();
    const job = template('/tmp');
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '61 * * * *', job }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameter.CronExpression', field: 'cron' });
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '* * * *', job }))).toMatchObject({ reason: 'InvalidParameter.CronExpression' });
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '* * * * *', timeZone: 'Mars/Olympus', job }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameter.TimeZone', field: 'time_zone' });
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '* * * * *', startingDeadlineSeconds: -1, job }))).toMatchObject({ reason: 'InvalidParameterValue.StartingDeadline' });
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '* * * * *', job: { ...job, clientToken: 'x' } }))).toMatchObject({ reason: 'InvalidParameter.ScheduleTemplate', field: 'job.client_token' });
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '* * * * *', job: { ...job, coreLimit: 999 } }))).toMatchObject({ code: status.INVALID_ARGUMENT, field: 'job.core_limit' });
    expect(await rejection(createSchedule(d, { name: 'bad', cron: '* * * * *', job: { ...job, runUser: 'root' } }))).toMatchObject({ code: status.PERMISSION_DENIED, field: 'job.run_user' });
    expect((await listSchedules(d)).schedules).toEqual([]);
    // A creation token returns the schedule it made; reused for another request it is refused.
    const s = await createSchedule(d, { name: 'once', cron: '0 0 29 2 *', clientToken: 'tok-1', job });
    expect((await createSchedule(d, { name: 'once', cron: '0 0 29 2 *', clientToken: 'tok-1', job })).scheduleId).toBe(s.scheduleId);
    expect(await rejection(createSchedule(d, { name: 'other', cron: '0 0 29 2 *', clientToken: 'tok-1', job }))).toMatchObject({ code: status.ALREADY_EXISTS, reason: 'IdempotentParameterMismatch' });
    expect((await listSchedules(d)).schedules.map((x) => x.scheduleId)).toEqual([s.scheduleId]);
  });

  it('after downtime: one catch-up run for the latest missed tick, the others recorded as missed; the schedule survives', async () => {
    if (!ready()) return;
    let d = await startDaemon();
    daemons.push(d);
    const dir = makeJobUserDir('catchup');
    const s = await createSchedule(d, { name: 'catchup', cron: EVERY_SECOND, job: template(dir) });
    await waitUntil(async () => ((await jobsOf(d, s.scheduleId)).length >= 2 ? true : undefined));
    expect(await d.stop()).toBe(0);
    const downFrom = Date.now();
    await sleep(4_000);
    d = await startDaemon({ stateDir: d.stateDir });
    daemons.push(d);
    await sleep(1_500);
    await updateSchedule(d, { scheduleId: s.scheduleId, suspend: true });
    const events = await eventsOf(d, s.scheduleId);
    const missed = events.filter((e) => e.kind === MISSED);
    expect(missed.length).toBeGreaterThanOrEqual(1);
    const gap = missed.find((e) => Date.parse(e.tickTime) >= downFrom - 1000)!;
    expect(gap.missedCount).toBeGreaterThanOrEqual(3);
    // The catch-up run is the tick right after the missed range.
    const catchUp = events[events.indexOf(gap) + 1]!;
    expect(catchUp.kind).toBe(FIRED);
    expect(Date.parse(catchUp.tickTime)).toBe(Date.parse(gap.lastTickTime) + 1000);
    assertEveryTickOnce(events);
  });
});

/** Polls `probe` until it gives a value (20 s at most). */
async function waitUntil<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(200);
  }
}

/** No tick is covered by two events (fired, skipped, or inside a missed range). */
function assertEveryTickOnce(events: readonly { kind: number; tickTime: string; lastTickTime: string }[]): void {
  const seen = new Set<number>();
  for (const e of events) {
    if (e.kind === TRIGGERED) continue;
    const from = Date.parse(e.tickTime);
    const to = e.kind === MISSED ? Date.parse(e.lastTickTime) : from;
    for (let t = from; t <= to; t += 1000) {
      expect(seen.has(t), `tick ${new Date(t).toISOString()} handled twice`).toBe(false);
      seen.add(t);
    }
  }
}
