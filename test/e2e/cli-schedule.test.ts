/**
 * `hpcq schedule`, run by a real user against a real daemon: a per-second schedule makes jobs that
 * run as that user and write into its directory; list, show (fired events with their jobs), watch,
 * trigger (one job per event id, a command override), suspend (no more ticks, trigger refused) and
 * delete; refusals: a bad cron, a submit flag a template cannot take, another user's schedule.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hpcqAs } from '../support/as-user.js';
import { getJob, startDaemon, waitForEnd } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, OTHER_USER } from '../support/privileged.js';
import { EVERY_SECOND, jobsOf, listSchedules } from '../support/schedules.js';

cleanUpJobTests();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ScheduleJson {
  schedule_id: string;
  job: { env: Record<string, string>; cmd_line: string };
  recent_events: { kind: string; job_id: string; event_id: string }[];
}

describe('hpcq schedule', () => {
  it('creates a per-second schedule whose jobs run as the user; lists, shows, watches, triggers, suspends and deletes it', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const dir = makeJobUserDir('cli-schedule');
    const hpcq = (args: readonly string[]) => hpcqAs(JOB_USER, d.address, args);

    const created = await hpcq([
      'schedule', 'create', '--name', 'tick', '--cron', EVERY_SECOND, '--export', 'GREETING=Hello_World',
      '--stdout', '/dev/null', '--stderr', '/dev/null', '--', `echo "$HPCQ_JOB_ID $(id -un) $GREETING" >> ${dir}/runs`,
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^sched-\d+\n$/);
    const id = created.stdout.trim();
    // Followed in both output forms (--history: a watch may connect after the first tick); each
    // ends by itself when the schedule is deleted.
    const watchJson = hpcq(['schedule', 'watch', '--history', '--json', id]);
    const watchText = hpcq(['schedule', 'watch', '--history', id]);

    const list = await hpcq(['schedule', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+CRON\s+TZ\s+POLICY\s+STATE\s+LAST TICK\s+NEXT TICK\s+ACTIVE JOBS\s+OWNER$/);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+tick\\s+\\* \\* \\* \\* \\* \\*\\s+UTC\\s+allow\\s+active\\s.*\\s${JOB_USER}$`, 'm'));

    await sleep(3_000);
    const show = await hpcq(['schedule', 'show', id]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^State:\s+active$/m);
    expect(show.stdout).toMatch(/^ {2}Run user:\s+hpcq-job \(the owner\)$/m);
    expect(show.stdout).toMatch(/^ {2}Queue:\s+the cluster's default$/m);
    const firedInText = [...show.stdout.matchAll(/^\S+\s+fired\s+\S+\s+(\d+)$/gm)].map((m) => m[1]!);
    expect(firedInText.length).toBeGreaterThanOrEqual(2);
    const shown = JSON.parse((await hpcq(['schedule', 'show', id, '--json'])).stdout) as ScheduleJson;
    // Variable names are data: not turned into snake_case like the field names.
    expect(shown.job.env).toEqual({ GREETING: 'Hello_World' });
    const fired = shown.recent_events.filter((e) => e.kind === 'SCHEDULE_EVENT_KIND_FIRED').map((e) => e.job_id);
    expect(fired.slice(0, firedInText.length)).toEqual(firedInText);

    // One job per event id; a command after -- replaces the template's (with --argv, as argv).
    const trigger = (args: readonly string[]) => hpcq(['schedule', 'trigger', '--parsable', ...args]);
    const first = await trigger(['--event-id', 'e1', id]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^\d+\n$/);
    expect((await trigger(['--event-id', 'e1', id])).stdout).toBe(first.stdout);
    const overridden = await trigger(['--argv', id, '--', 'sh', '-c', `echo "override $GREETING" >> ${dir}/runs`]);
    expect(overridden.code, overridden.stderr).toBe(0);
    expect(await getJob(d, overridden.stdout.trim())).toMatchObject({ argv: ['sh', '-c', expect.stringContaining('override')], cmdLine: '' });

    const suspended = await hpcq(['schedule', 'suspend', id]);
    expect(suspended).toMatchObject({ code: 0, stdout: `schedule ${id}: suspended\n` });
    const count = (await jobsOf(d, id)).length;
    const refused = await trigger([id]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^hpcq: JobSuspend: /);
    await sleep(2_000);
    expect(await jobsOf(d, id)).toHaveLength(count);

    // Every job ran as the user, and wrote its line.
    const triggered = first.stdout.trim();
    for (const jobId of [...fired, triggered]) {
      expect(await waitForEnd(d, jobId)).toMatchObject({ jobStatus: 'completed', runUser: JOB_USER, scheduleId: id });
    }
    await waitForEnd(d, overridden.stdout.trim());
    const runs = linesOf(join(dir, 'runs'));
    for (const jobId of [...fired, triggered]) expect(runs).toContain(`${jobId} ${JOB_USER} Hello_World`);
    expect(runs).toContain('override Hello_World');

    // Another user neither sees it nor can show it.
    const other = await hpcqAs(OTHER_USER, d.address, ['schedule', 'show', id]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/^hpcq: ResourceNotFound\.Schedule: /);
    expect((await hpcqAs(OTHER_USER, d.address, ['schedule', 'list'])).stdout).not.toContain(id);

    const deleted = await hpcq(['schedule', 'delete', id]);
    expect(deleted).toMatchObject({ code: 0, stdout: `schedule ${id} deleted\n` });
    expect((await listSchedules(d)).schedules).toEqual([]);

    const json = await watchJson;
    expect(json.code, json.stderr).toBe(0);
    const messages = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { schedule: { schedule_id: string }; event?: { kind: string; job_id: string; event_id: string } });
    expect(messages[0]).toMatchObject({ schedule: { schedule_id: id } });
    expect(messages[0]!.event).toBeUndefined();
    const events = messages.flatMap((m) => (m.event ? [m.event] : []));
    expect(events.filter((e) => e.kind === 'SCHEDULE_EVENT_KIND_FIRED').map((e) => e.job_id).slice(0, fired.length)).toEqual(fired);
    expect(events.filter((e) => e.kind === 'SCHEDULE_EVENT_KIND_TRIGGERED').map((e) => [e.event_id, e.job_id])).toEqual([
      ['e1', triggered],
      ['', overridden.stdout.trim()],
    ]);
    const text = await watchText;
    expect(text).toMatchObject({ code: 0, stderr: `schedule ${id} was deleted\n` });
    expect(text.stdout).toMatch(new RegExp(`^\\S+\\s+${id}\\s+fired\\s+tick \\S+\\s+job ${fired[0]}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^\\S+\\s+${id}\\s+triggered\\s+tick \\S+\\s+job ${triggered}\\s+event_id e1; by uid:\\d+$`, 'm'));
  });

  it('refuses a bad cron (InvalidParameter.CronExpression), flags a template cannot take, and an empty update', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const hpcq = (args: readonly string[]) => hpcqAs(JOB_USER, d.address, args);
    const create = (args: readonly string[]) => hpcq(['schedule', 'create', '--name', 'bad', ...args, '--', 'true']);

    const cron = await create(['--cron', '61 * * * *']);
    expect(cron.code).toBe(2);
    expect(cron.stdout).toBe('');
    expect(cron.stderr).toMatch(/^hpcq: InvalidParameter\.CronExpression: /);

    const hold = await create(['--cron', '* * * * *', '--hold']);
    expect(hold.code).toBe(2);
    expect(hold.stderr).toMatch(/^hpcq: InvalidUsage: a schedule's job template cannot take -H\/--hold: /);
    const begin = await create(['--cron', '* * * * *', '--begin', 'now+1m']);
    expect(begin.code).toBe(2);
    expect(begin.stderr).toContain('cannot take --begin');

    const update = await hpcq(['schedule', 'update', 'sched-1']);
    expect(update.code).toBe(2);
    expect(update.stderr).toMatch(/^hpcq: InvalidUsage: give at least one of --cron/);
    expect((await listSchedules(d)).schedules).toEqual([]);
  });
});
