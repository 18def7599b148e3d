/**
 * Slurm flag parity of the CLI against a real daemon, run as the real test users: squeue (active
 * jobs by default, -a, -t, -u, --me, -p, -j, -n, -o, -h), sbatch units on submit (-t in minutes,
 * --time-limit in seconds, --mem, -c, -p), sacct (-S, -E, -s, -u, --me, -r, -j, -o, -n, -P),
 * scancel (several ids in one request, -u, --me, -n, -t, -p, --signal, no empty selection), sinfo -N,
 * completion and the help examples.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { hpcqAs, type Run } from '../support/as-user.js';
import { isRunning, listJobs, rejection, startDaemon, waitForEnd, waitForJob, type DaemonHandle } from '../support/daemon-harness.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER, OTHER_USER } from '../support/privileged.js';

cleanUpJobTests();

/** The ids of a table's rows (the first column), without the header line. */
const idsOf = (stdout: string, header = true) =>
  stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(header ? 1 : 0)
    .map((l) => l.trim().split(/\s+/)[0]!);

interface JobJson {
  job_id: string;
  state: string;
  time_limit: number;
  mem_limit: number;
  core_limit: number;
  scheduler_queue_name: string;
  start_time: string;
  term_signal: number;
}

function harness(d: DaemonHandle) {
  const as = (user: string, args: readonly string[]) => hpcqAs(user, d.address, args);
  const ok = (run: Run) => {
    expect(run.code, run.stderr).toBe(0);
    return run.stdout;
  };
  return {
    as,
    ok,
    /** Submits as `user` with the CLI; returns the job id. */
    async submit(user: string, name: string, cmd: string, extra: readonly string[] = []): Promise<string> {
      return ok(await as(user, ['submit', '--parsable', '-J', name, '--stdout', '/dev/null', '--stderr', '/dev/null', ...extra, '--', cmd])).trim();
    },
    async job(id: string): Promise<JobJson> {
      return (JSON.parse(ok(await as('root', ['status', id, '--json']))) as { job: JobJson }).job;
    },
    running: (id: string) => waitForJob(d, id, isRunning),
    ended: (id: string) => waitForEnd(d, id),
  };
}

describe('Slurm habits of the hpcq CLI', () => {
  it('squeue: active jobs by default; -a, -t, -u, --me, -p, -j, -n, -o and -h as in Slurm', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { as, ok, submit, running, ended } = harness(d);
    const done = await submit(JOB_USER, 'done', 'true');
    await ended(done);
    const run = await submit(JOB_USER, 'sim', 'sleep 300', ['-t', '5']);
    const blocker = await submit(JOB_USER, 'blocker', 'sleep 300', ['-p', 'debug']);
    await running(blocker);
    const queued = await submit(JOB_USER, 'queued', 'sleep 300', ['-p', 'debug']); // debug runs one job at a time
    const others = await submit(OTHER_USER, 'sim', 'sleep 300');
    await Promise.all([running(run), running(others)]);

    // Default: pending and running only (squeue); a user sees their own jobs.
    expect(idsOf(ok(await as(JOB_USER, ['squeue'])))).toEqual([queued, blocker, run]);
    expect(idsOf(ok(await as(JOB_USER, ['squeue', '-a'])))).toEqual([queued, blocker, run, done]);
    expect(idsOf(ok(await as(JOB_USER, ['squeue', '-t', 'all'])))).toEqual([queued, blocker, run, done]);
    expect(idsOf(ok(await as(JOB_USER, ['squeue', '-t', 'PD'])))).toEqual([queued]);
    expect(idsOf(ok(await as(JOB_USER, ['squeue', '-t', 'r,CD'])))).toEqual([blocker, run, done]);
    // -u and --me (root sees everyone's jobs); several users are merged newest first.
    expect(idsOf(ok(await as('root', ['squeue', '-u', OTHER_USER])))).toEqual([others]);
    expect(idsOf(ok(await as('root', ['squeue', '-u', `${JOB_USER},${OTHER_USER}`])))).toEqual([others, queued, blocker, run]);
    expect(idsOf(ok(await as(OTHER_USER, ['squeue', '--me'])))).toEqual([others]);
    expect(idsOf(ok(await as('root', ['squeue', '--me'])))).toEqual([]);
    // -p: queues by name or hpcqueue_id; -j: those jobs in any state; -n: by name.
    expect(idsOf(ok(await as(JOB_USER, ['squeue', '-p', 'debug'])))).toEqual([queued, blocker]);
    expect(idsOf(ok(await as('root', ['squeue', '-p', 'hpcq-normal'])))).toEqual([others, run]);
    expect(idsOf(ok(await as(JOB_USER, ['squeue', '-j', `${done},${queued}`])))).toEqual([done, queued]);
    expect(idsOf(ok(await as('root', ['squeue', '-n', 'sim'])))).toEqual([others, run]);
    // -o with squeue's fields and widths; -h leaves the header out. %l is the limit of -t 5 (minutes).
    const formatted = ok(await as(JOB_USER, ['squeue', '-h', '-o', '%i|%.8j|%u|%T|%t|%l|%D|%R|%P', '-j', `${run},${queued}`])).split('\n');
    expect(formatted[0]).toBe(`${run}|     sim|${JOB_USER}|RUNNING|R|5:00|1|${formatted[0]!.split('|')[7]}|normal`);
    expect(formatted[1]).toMatch(new RegExp(`^${queued}\\|  queued\\|${JOB_USER}\\|PENDING\\|PD\\|0:30\\|1\\|\\(\\w+\\)\\|debug$`));
    expect(ok(await as(JOB_USER, ['squeue', '-o', '%.6i %t'])).split('\n')[0]).toBe(' JOBID ST');
    const bad = await as(JOB_USER, ['squeue', '-o', '%Q']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown squeue format field %Q/);
  });

  it('submit: sbatch flags in Slurm units (-t minutes), the EHPC flags in the API units', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { as, submit, job } = harness(d);
    const hold = ['-H']; // held: nothing needs to run
    expect((await job(await submit(JOB_USER, 'a', 'true', [...hold, '-t', '30']))).time_limit).toBe(1800);
    expect((await job(await submit(JOB_USER, 'b', 'true', [...hold, '--time-limit', '30']))).time_limit).toBe(30);
    expect((await job(await submit(JOB_USER, 'c', 'true', [...hold, '-t', '45:00']))).time_limit).toBe(2700);
    expect((await job(await submit(JOB_USER, 'd', 'true', [...hold, '-t', '0-1:00:00']))).time_limit).toBe(3600);
    const sbatchStyle = await job(await submit(JOB_USER, 'e', 'true', [...hold, '--mem', '512', '-c', '2', '-p', 'debug']));
    expect(sbatchStyle).toMatchObject({ mem_limit: 512, core_limit: 2, scheduler_queue_name: 'debug' });
    const both = await as(JOB_USER, ['submit', '-J', 'f', '-t', '5', '--time-limit', '300', '--', 'true']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give -t\/--time or --time-limit, not both/);
  });

  it('sacct: finished jobs in a time window (-S, -E), the latest end first; -s, -u, --me, -r, -j, -o, -n, -P', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { as, ok, submit, ended } = harness(d);
    const slow = await submit(JOB_USER, 'slow', 'sleep 2');
    const failed = await submit(JOB_USER, 'failed', 'exit 3', ['-p', 'debug']);
    await ended(failed);
    const others = await submit(OTHER_USER, 'theirs', 'true');
    await Promise.all([ended(slow), ended(others)]);
    const active = await submit(JOB_USER, 'active', 'sleep 300');

    // slow has the lowest id but ended last: the latest end comes first.
    expect(idsOf(ok(await as('root', ['sacct', '-S', 'now-1hour'])), false).slice(2)).toEqual([slow, others, failed]);
    expect(idsOf(ok(await as(JOB_USER, ['sacct', '-S', 'now-1hour'])), false).slice(2)).toEqual([slow, failed]);
    expect(ok(await as(JOB_USER, ['sacct', '-S', 'now-1hour', '-E', 'now-30minutes', '-n']))).toBe('');
    expect(ok(await as(JOB_USER, ['sacct', '-S', 'now+1hour', '-n']))).toBe('');
    expect(idsOf(ok(await as('root', ['sacct', '-S', 'now-1hour', '-s', 'F', '-n'])), false)).toEqual([failed]);
    expect(idsOf(ok(await as('root', ['sacct', '-S', 'now-1hour', '-u', OTHER_USER, '-n'])), false)).toEqual([others]);
    expect(idsOf(ok(await as(OTHER_USER, ['sacct', '-S', 'now-1hour', '--me', '-n'])), false)).toEqual([others]);
    expect(idsOf(ok(await as('root', ['sacct', '-S', 'now-1hour', '-r', 'debug', '-n'])), false)).toEqual([failed]);
    // -o with sacct's fields, parsable; -j shows a job whatever its state or end.
    expect(ok(await as(JOB_USER, ['sacct', '-S', 'now-1hour', '-P', '-o', 'JobID,JobName,State,ExitCode,Partition']))).toBe(
      `JobID|JobName|State|ExitCode|Partition\n${slow}|slow|COMPLETED|0:0|normal\n${failed}|failed|FAILED|3:0|debug\n`,
    );
    expect(ok(await as(JOB_USER, ['sacct', '-j', `${active},${failed}`, '-n', '-p', '-o', 'JobID,State']))).toBe(`${active}|RUNNING|\n${failed}|FAILED|\n`);
    const header = ok(await as(JOB_USER, ['sacct'])).split('\n');
    expect(header[0]!.trim().split(/\s+/)).toEqual(['JobID', 'JobName', 'User', 'Partition', 'State', 'ExitCode', 'Elapsed', 'Start', 'End']);
    expect(header[1]).toMatch(/^-{12} -{10} /);
    const json = JSON.parse(ok(await as(JOB_USER, ['sacct', '-S', 'now-1hour', '--json']))) as { jobs: JobJson[] };
    expect(json.jobs.map((j) => j.job_id)).toEqual([slow, failed]);
    // The API underneath: end_after present (even empty) lists finished jobs by end time; bad times are refused.
    expect((await listJobs(d, { endAfter: '' })).jobs.map((j) => j.jobId)).toEqual([slow, others, failed]);
    expect((await rejection(listJobs(d, { endAfter: 'yesterday' }))).reason).toBe('InvalidParameterValue.Time');
    expect((await rejection(listJobs(d, { endAfter: '2026-01-02T00:00:00Z', endBefore: '2026-01-01T00:00:00Z' }))).reason).toBe('InvalidParameterValue.EndWindow');
    const byId = await listJobs(d, { pageSize: 1 });
    expect((await rejection(listJobs(d, { endAfter: '', pageToken: byId.nextPageToken }))).reason).toBe('InvalidParameter.PageToken');
    const pendingState = await as(JOB_USER, ['sacct', '-s', 'PD']);
    expect(pendingState.code).toBe(2);
    expect(pendingState.stderr).toMatch(/use hpcq squeue/);
  });

  it('scancel: several ids in one request (a pending one never starts), -u, --me, -n, -t, -p, --signal; never everything', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { as, ok, submit, job, running, ended } = harness(d);
    // The case: cancelling the running job of a one-at-a-time queue frees its slot, and the
    // pending job named in the same request must not start in that moment.
    const first = await submit(JOB_USER, 'first', 'sleep 300', ['-p', 'debug']);
    await running(first);
    const second = await submit(JOB_USER, 'second', 'sleep 300', ['-p', 'debug']);
    const both = ok(await as(JOB_USER, ['scancel', first, second]));
    expect(both).toMatch(new RegExp(`^job ${first} .*: (RUNNING, cancel requested|CANCELLED)`, 'm'));
    expect(both).toMatch(new RegExp(`^job ${second} .*: CANCELLED$`, 'm'));
    await ended(first);
    expect(await job(second)).toMatchObject({ state: 'JOB_STATE_CANCELLED', start_time: '' });

    const mine = [await submit(JOB_USER, 'sweep', 'sleep 300'), await submit(JOB_USER, 'sweep', 'sleep 300')];
    const held = await submit(JOB_USER, 'held', 'sleep 300', ['-H']);
    const theirs = await submit(OTHER_USER, 'sweep', 'sleep 300');
    const inDebug = await submit(OTHER_USER, 'dbg', 'sleep 300', ['-p', 'debug']);
    await Promise.all([...mine, theirs, inDebug].map(running));
    // Another user's jobs are never matched by a user who may not see them.
    expect(ok(await as(JOB_USER, ['scancel', '-u', OTHER_USER]))).toBe('');
    expect((await job(theirs)).state).toBe('JOB_STATE_RUNNING');
    // -t narrows: only the held (pending) job of --me.
    expect(ok(await as(JOB_USER, ['scancel', '--me', '-t', 'PENDING']))).toMatch(new RegExp(`^job ${held} \\(hpcjob-\\w+\\): CANCELLED\n$`));
    expect((await job(held)).state).toBe('JOB_STATE_CANCELLED');
    expect((await job(mine[0]!)).state).toBe('JOB_STATE_RUNNING');
    // -n with --me: both sweeps of JOB_USER, not OTHER_USER's.
    expect(ok(await as(JOB_USER, ['scancel', '--me', '-n', 'sweep'])).trim().split('\n')).toHaveLength(2);
    // -p and -u as root.
    expect(ok(await as('root', ['scancel', '-p', 'debug'])).trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^job ${inDebug} `))]);
    // --signal: the signal reaches the running job, which goes on (here: its trap exits 7); a
    // name that is no signal is refused.
    const bogus = await as('root', ['scancel', '--signal', 'NOSUCH', theirs]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/InvalidParameterValue\.Signal/);
    const trapping = await submit(OTHER_USER, 'trapper', "trap 'exit 7' USR1; while :; do sleep 0.1; done");
    await running(trapping);
    // The shell sets its trap as its first step; give it that moment.
    await new Promise((r) => setTimeout(r, 1000));
    ok(await as('root', ['scancel', '--signal', 'USR1', trapping]));
    expect(await ended(trapping)).toMatchObject({ jobStatus: 'failed', exitCode: 7 });
    ok(await as('root', ['scancel', '--signal', 'SIGTERM', '-u', OTHER_USER]));
    expect((await ended(theirs)).termSignal).toBe(15);
    expect((await ended(theirs)).jobStatus).not.toBe('cancelled');
    for (const id of [...mine, inDebug]) expect((await ended(id)).jobStatus).toBe('cancelled');

    for (const args of [[], ['-t', 'PENDING']]) {
      const refused = await as(JOB_USER, ['scancel', ...args]);
      expect(refused.code, args.join(' ')).toBe(2);
      expect(refused.stderr).toMatch(/never cancels every job/);
    }
  });

  it('sinfo -N, completion and help examples', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const { as, ok } = harness(d);
    const nodes = ok(await as(JOB_USER, ['sinfo', '-N'])).trim().split('\n');
    expect(nodes[0]!.trim().split(/\s+/)).toEqual(['NODELIST', 'NODES', 'PARTITION', 'STATE']);
    expect(nodes.slice(1).map((l) => l.trim().split(/\s+/).slice(1))).toEqual([
      ['1', 'normal*', 'idle'],
      ['1', 'debug', 'idle'],
    ]);
    expect(ok(await as(JOB_USER, ['sinfo', '-N', '-h', '-p', 'debug'])).trim().split(/\s+/).slice(1)).toEqual(['1', 'debug', 'idle']);
    for (const shell of ['bash', 'zsh']) {
      const script = ok(await as(JOB_USER, ['completion', shell]));
      if (shell === 'bash' || spawnSync('zsh', ['-c', 'true']).status === 0) expect(spawnSync(shell, ['-n'], { input: script }).status, shell).toBe(0);
    }
    for (const args of [['--help'], ['squeue', '--help'], ['sacct', '--help'], ['scancel', '--help'], ['sinfo', '--help']]) {
      expect(ok(await as(JOB_USER, args)), args.join(' ')).toMatch(/Examples:\n {2}hpcq /);
    }
  });
});
