/**
 * `hpcq submit script.sh` like sbatch, run by a real user against a real daemon: the #SBATCH
 * directives at the head of the script become the job's options, the command line wins over
 * them, the job runs the script from where it was submitted, and an option hpcq does not
 * support is refused by name and line before anything is sent.
 */
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hpcqAs } from '../support/as-user.js';
import { getJob, listJobs, startDaemon, stopAll, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import { makeJobUserDir, removeJobUserDirs } from '../support/durability.js';
import { ensureTestUsers, gidOf, isRoot, JOB_USER, need, uidOf } from '../support/privileged.js';

afterEach(async () => {
  await stopAll();
  removeJobUserDirs();
});

const ready = () => need(isRoot && ensureTestUsers(), 'root and the test accounts');

/** Writes a script owned by the job user (mode 0644: not executable, so the daemon runs it with /bin/sh). */
function writeScript(dir: string, name: string, lines: readonly string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n') + '\n', { mode: 0o644 });
  chownSync(path, uidOf(JOB_USER), gidOf(JOB_USER));
  return path;
}

describe('hpcq submit with a batch script', () => {
  let d: DaemonHandle;
  let dir: string;
  /** hpcq as the job user, run in the script's directory. */
  const hpcq = (args: readonly string[]) => hpcqAs(JOB_USER, d.address, args, {}, dir);

  async function submitted(args: readonly string[]): Promise<string> {
    const r = await hpcq(['submit', '--parsable', ...args]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // --parsable: the job id and a newline, nothing else.
    expect(r.stdout).toMatch(/^\d+\n$/);
    return r.stdout.trim();
  }

  it('reads the #SBATCH directives, runs the script in the directory it was submitted from, and --parsable prints only the id', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('batch');
    writeScript(dir, 'job.sh', [
      '#!/bin/sh',
      '#SBATCH -J scripted',
      '#SBATCH -t 2',
      '#SBATCH --mem=256M',
      `#SBATCH -o ${dir}/%x-%j.out`,
      '#SBATCH --export=GREETING=hi',
      '',
      'echo "$GREETING $(pwd)"',
      '#SBATCH --gres=gpu:1',
    ]);
    const id = await submitted(['job.sh']);

    const job = await waitForEnd(d, id);
    expect(job.jobStatus).toBe('completed');
    expect(job).toMatchObject({
      name: 'scripted',
      timeLimit: 120, // -t 2 is two minutes, as in sbatch
      memLimit: 256,
      runUser: JOB_USER,
      inputFile: join(dir, 'job.sh'),
      cmdLine: '',
      workingDir: dir,
      stdoutPath: join(dir, `scripted-${id}.out`),
      // -o without -e: stderr goes to the same file, as in sbatch.
      stderrPath: join(dir, `scripted-${id}.out`),
      envNames: ['GREETING'],
    });
    expect(readFileSync(join(dir, `scripted-${id}.out`), 'utf8')).toBe(`hi ${dir}\n`);
    expect((await getJob(d, id)).timeLimit).toBe(120);
  });

  it('lets the command line win over the directives and names the job after the script by default', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('batch-cli');
    writeScript(dir, 'job.sh', ['#!/bin/sh', '#SBATCH -J scripted', '#SBATCH -t 2', `#SBATCH -o ${dir}/%x-%j.out`, 'echo ran']);
    const id = await submitted(['-J', 'fromcli', '--time-limit', '45', 'job.sh']);
    const job = await waitForEnd(d, id);
    expect(job).toMatchObject({ jobStatus: 'completed', name: 'fromcli', timeLimit: 45, stdoutPath: join(dir, `fromcli-${id}.out`) });
    expect(readFileSync(join(dir, `fromcli-${id}.out`), 'utf8')).toBe('ran\n');

    // No -J anywhere: the file name, made a valid job name.
    writeScript(dir, 'plain run.sh', ['echo plain']);
    const plain = await waitForEnd(d, await submitted([join(dir, 'plain run.sh')]));
    expect(plain).toMatchObject({ jobStatus: 'completed', name: 'plain_run_sh', workingDir: dir });
  });

  it('refuses an unsupported option by name and line, an --array index set not from 0, and script arguments, submitting nothing', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('batch-refused');
    writeScript(dir, 'gres.sh', ['#!/bin/sh', '#SBATCH -J gpu', '', '#SBATCH --gres=gpu:1', 'nvidia-smi']);
    writeScript(dir, 'array.sh', ['#!/bin/sh', '#SBATCH --array=1-3', 'echo $SLURM_ARRAY_TASK_ID']);
    writeScript(dir, 'ok.sh', ['#!/bin/sh', 'echo ok']);

    const gres = await hpcq(['submit', 'gres.sh']);
    expect(gres.code).toBe(2);
    expect(gres.stdout).toBe('');
    expect(gres.stderr).toBe('hpcq: InvalidUsage: gres.sh line 4: #SBATCH --gres is not supported by hpcq\n');

    const array = await hpcq(['submit', '--parsable', 'array.sh']);
    expect(array.code).toBe(2);
    expect(array.stderr).toMatch(/^hpcq: InvalidUsage: array\.sh line 2: #SBATCH --array: --array takes N, 0-M/);

    const args = await hpcq(['submit', 'ok.sh', 'one', 'two']);
    expect(args.code).toBe(2);
    expect(args.stderr).toMatch(/^hpcq: InvalidUsage: ok\.sh is a file, so it is submitted as a batch script, which takes no arguments/);

    expect((await listJobs(d)).jobs).toHaveLength(0);
  });

  it('#SBATCH --array=0-3%2 submits an array; %a names each instance\'s output', async () => {
    if (!ready()) return;
    d = await startDaemon();
    dir = makeJobUserDir('batch-array');
    writeScript(dir, 'parts.sh', ['#!/bin/sh', '#SBATCH --array=0-3%2', `#SBATCH -o ${dir}/part-%a.out`, 'echo "part $HPCQ_ARRAY_INDEX of $HPCQ_ARRAY_COUNT"']);
    const run = await hpcq(['submit', '--parsable', 'parts.sh']);
    expect(run.code, run.stderr).toBe(0);
    const jobId = run.stdout.trim();
    const array = await waitForEnd(d, jobId);
    expect(array).toMatchObject({ jobStatus: 'completed', array: { count: 4, parallelism: 2 } });
    expect(readFileSync(join(dir, 'part-3.out'), 'utf8')).toBe('part 3 of 4\n');
  });
});
