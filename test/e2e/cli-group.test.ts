/**
 * `hpcq group submit` and `hpcq group status`, run by a real user against a real daemon: a YAML
 * group file becomes a job group whose tasks run in dependence order, in the directory the group
 * was submitted from; a loop, or a key hpcq does not know, is refused and nothing is submitted.
 */
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hpcqAs } from '../support/as-user.js';
import { listJobs, startDaemon, stopAll, type DaemonHandle } from '../support/daemon-harness.js';
import { linesOf, makeJobUserDir, removeJobUserDirs } from '../support/durability.js';
import { ensureTestUsers, gidOf, isRoot, JOB_USER, need, uidOf } from '../support/privileged.js';

afterEach(async () => {
  await stopAll();
  removeJobUserDirs();
});

const ready = () => need(isRoot && ensureTestUsers(), 'root and the test accounts');

/** Writes a file owned by the job user. */
function writeUserFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o644 });
  chownSync(path, uidOf(JOB_USER), gidOf(JOB_USER));
  return path;
}

interface GroupStatusJson {
  group_id: string;
  name: string;
  finished: boolean;
  counts: Record<string, number>;
  tasks: { task_name: string; job: { job_id: string; job_status: string; working_dir: string; run_user: string } }[];
}

/** Tencent Batch's example: pre_task writes a file, post_task (after it) reads it. */
const PIPELINE = `
name: pipeline
defaults:
  queue: normal
  time_limit: 1m
  stdout: "%x-%j.out"
tasks:
  - task_name: pre_task
    cmd_line: sleep 1; echo "made by $HPCQ_JOB_NAME" > data.txt
  - task_name: post_task
    argv: [sh, -c, 'cat data.txt; echo "read by post_task"']
dependences:
  - pre_task -> post_task
`;

describe('hpcq group', () => {
  let d: DaemonHandle;
  let dir: string;
  /** hpcq as the job user, run in its directory. */
  const hpcq = (args: readonly string[]) => hpcqAs(JOB_USER, d.address, args, {}, dir);

  it('submits a group file, runs post_task after pre_task in the directory it was submitted from, and reports the group finished', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('group');
    writeUserFile(dir, 'pipeline.yaml', PIPELINE);

    const submitted = await hpcq(['group', 'submit', '--parsable', 'pipeline.yaml']);
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    expect(submitted.stdout).toMatch(/^group-\d+\n$/);
    const groupId = submitted.stdout.trim();

    let status: GroupStatusJson | undefined;
    const deadline = Date.now() + 20_000;
    for (;;) {
      const run = await hpcq(['group', 'status', groupId, '--json']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      status = JSON.parse(run.stdout) as GroupStatusJson;
      if (status.finished || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toMatchObject({ group_id: groupId, name: 'pipeline', finished: true, counts: { completed: 2 } });
    expect(status.tasks.map((t) => [t.task_name, t.job.job_status, t.job.working_dir, t.job.run_user])).toEqual([
      ['pre_task', 'completed', dir, JOB_USER],
      ['post_task', 'completed', dir, JOB_USER],
    ]);
    const [pre, post] = status.tasks.map((t) => t.job.job_id);
    expect(readFileSync(join(dir, 'data.txt'), 'utf8')).toBe('made by pre_task\n');
    // post_task ran after pre_task had written the file; its stdout path was relative to the directory.
    expect(linesOf(join(dir, `post_task-${post}.out`))).toEqual(['made by pre_task', 'read by post_task']);
    expect(linesOf(join(dir, `pre_task-${pre}.out`))).toEqual([]);

    const table = await hpcq(['group', 'status', groupId]);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^TASK\s+JOBID\s+STATE\s+REASON\/EXIT$/);
    expect(table.stdout).toMatch(new RegExp(`^pre_task\\s+${pre}\\s+COMPLETED\\s+exit 0$`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^post_task\\s+${post}\\s+COMPLETED\\s+exit 0$`, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^group ${groupId} \\(pipeline\\): 2 tasks, completed 2; finished\\n$`, 'm'));
  });

  it('prints the response as JSON and, with --client-token, answers a resubmission with the same group', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('group-token');
    writeUserFile(dir, 'one.yaml', 'name: once\ntasks:\n  - {task_name: Only, cmd_line: "true"}\n');

    const first = await hpcq(['group', 'submit', '--client-token', 'tok-1', 'one.yaml']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const response = JSON.parse(first.stdout) as { group_id: string; task_job_ids: Record<string, string>; ret_code: number };
    // Task names are data: kept as written, not turned into snake_case.
    expect(response).toEqual({ group_id: expect.stringMatching(/^group-\d+$/), task_job_ids: { Only: expect.stringMatching(/^\d+$/) }, ret_code: 0 });

    const again = await hpcq(['group', 'submit', '--client-token', 'tok-1', 'one.yaml']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(response);
    expect((await listJobs(d)).jobs).toHaveLength(1);
  });

  it('refuses a loop (DependenceUnfeasible) and an unknown key, submitting nothing', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('group-refused');
    writeUserFile(
      dir,
      'loop.yaml',
      'name: loop\ntasks:\n  - {task_name: a, cmd_line: "true"}\n  - {task_name: b, cmd_line: "true"}\ndependences:\n  - a -> b\n  - {start_task: b, end_task: a}\n',
    );
    writeUserFile(dir, 'typo.yaml', 'name: typo\ntasks:\n  - {task_name: a, cmd_line: "true", cpus: 2}\n');

    const loop = await hpcq(['group', 'submit', 'loop.yaml']);
    expect(loop.code).toBe(2);
    expect(loop.stdout).toBe('');
    expect(loop.stderr).toMatch(/^hpcq: InvalidParameterValue\.DependenceUnfeasible: the dependences form a loop/);

    const typo = await hpcq(['group', 'submit', 'typo.yaml']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^hpcq: InvalidUsage: typo\.yaml: task a: unknown key "cpus" \(known keys: /);

    const missing = await hpcq(['group', 'status', 'group-999']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^hpcq: ResourceNotFound\.JobGroup: /);

    expect((await listJobs(d)).jobs).toHaveLength(0);
  });
});
