/**
 * A per-second schedule through a minute of kill -9s at random moments: every tick of that minute
 * has exactly one job or is inside a recorded miss, none has two, and every job made by a tick is
 * in the schedule's history (the job and the tick are stored in one batch, or neither is).
 */
import { describe, expect, it } from 'vitest';
import { ScheduleEventKind } from '../../src/gen/hpcq/v1/schedule_service.js';
import { startDaemon, type DaemonHandle } from '../support/daemon-harness.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';
import { createSchedule, eventsOf, EVERY_SECOND, jobsOf, updateSchedule } from '../support/schedules.js';

const daemons = cleanUpJobTests();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CHAOS_MS = 60_000;

describe('schedule chaos', () => {
  it('kill -9 at random moments for 60 s: each tick has exactly one job or a recorded miss, never two', { timeout: 150_000 }, async () => {
    if (!canRunJobs()) return;
    let d: DaemonHandle = await startDaemon();
    daemons.push(d);
    const s = await createSchedule(d, {
      name: 'chaos',
      cron: EVERY_SECOND,
      job: { name: 'tick', runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' },
    });
    const until = Date.now() + CHAOS_MS;
    let kills = 0;
    while (Date.now() < until) {
      // Kills land anywhere in a tick's life: before, during and after its batch.
      await sleep(500 + Math.random() * 3000);
      await d.kill9();
      kills++;
      await sleep(Math.random() * 1500);
      d = await startDaemon({ stateDir: d.stateDir });
      daemons.push(d);
    }
    await sleep(1500);
    const final = await updateSchedule(d, { scheduleId: s.scheduleId, suspend: true });
    const events = (await eventsOf(d, s.scheduleId)).filter((e) => e.kind !== ScheduleEventKind.SCHEDULE_EVENT_KIND_TRIGGERED);
    const jobs = await jobsOf(d, s.scheduleId);

    const handled = new Map<number, string>();
    for (const e of events) {
      const from = Date.parse(e.tickTime);
      const to = e.kind === ScheduleEventKind.SCHEDULE_EVENT_KIND_MISSED ? Date.parse(e.lastTickTime) : from;
      for (let t = from; t <= to; t += 1000) {
        expect(handled.get(t), `tick ${new Date(t).toISOString()} handled twice`).toBeUndefined();
        handled.set(t, ScheduleEventKind[e.kind]);
      }
    }
    // Every second from the first tick to the last one handled is accounted for.
    const ticks = [...handled.keys()].sort((a, b) => a - b);
    expect(ticks[0]).toBeLessThanOrEqual(Date.parse(s.nextTick));
    expect(ticks.at(-1)).toBe(Date.parse(final.lastTick));
    for (let t = ticks[0]!; t <= ticks.at(-1)!; t += 1000) expect(handled.has(t), `tick ${new Date(t).toISOString()} neither fired nor missed`).toBe(true);
    // One job per fired tick, no job without its fired event.
    const fired = events.filter((e) => e.kind === ScheduleEventKind.SCHEDULE_EVENT_KIND_FIRED);
    expect(jobs.map((j) => j.scheduleTickTime).sort()).toEqual(fired.map((e) => e.tickTime).sort());
    expect(new Set(jobs.map((j) => j.scheduleTickTime)).size).toBe(jobs.length);
    for (const e of fired) expect(jobs.find((j) => j.jobId === e.jobId)?.scheduleTickTime).toBe(e.tickTime);
    const missed = ticks.filter((t) => handled.get(t) === 'SCHEDULE_EVENT_KIND_MISSED').length;
    console.log(`schedule chaos: ${kills} kills, ${ticks.length} ticks: ${fired.length} fired, ${missed} missed`);
    expect(fired.length).toBeGreaterThan(ticks.length / 3);
  });
});
