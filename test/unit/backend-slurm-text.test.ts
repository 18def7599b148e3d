/** What hpcq says to Slurm and reads back: sbatch arguments and script, parsers, state mapping. */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { observe, parseExitRecord, parseSacct, parseScontrolJob, parseSinfo, parseSqueue, sbatchArrayRequest, sbatchRequest, slurmArrayPath, slurmMinutes, slurmTag, taskIndices } from '../../src/backend/slurm/slurm-text.js';
import type { Job } from '../../src/core/job.js';

const job = (extra: Partial<Job> = {}) =>
  ({
    id: 42,
    uuid: 'hpcjob-abcd1234',
    attempt: 2,
    name: 'sim',
    runUser: 'alice',
    home: '/home/alice',
    shell: '/bin/bash',
    clusterId: 'c',
    hpcqueueId: 'q',
    schedulerQueueName: 'batch',
    cores: 4,
    memoryLimitMb: 2048,
    timeLimitSeconds: 61,
    stdoutPath: '/home/alice/out-42%.txt',
    stderrPath: '/home/alice/err-42.txt',
    workingDir: '/scratch/alice',
    argv: [],
    inputFile: '',
    cmdLine: "echo 'it''s' $HOME",
    env: { OMP_NUM_THREADS: '4' },
    ...extra,
  }) as Job;

describe('sbatchRequest', () => {
  it('asks for one task on one node with the limits, paths, directory and tag; no requeue; the environment sbatch has (kept clean by SlurmCommands)', () => {
    const { args } = sbatchRequest(job());
    expect(args).toEqual([
      '--parsable',
      '--job-name=sim',
      '--partition=batch',
      '--nodes=1',
      '--ntasks=1',
      '--cpus-per-task=4',
      '--mem=2048M',
      '--time=2',
      '--chdir=/scratch/alice',
      '--comment=hpcq:hpcjob-abcd1234:2',
      '--export=ALL',
      '--no-requeue',
      '--output=/home/alice/out-42%%.txt',
      '--error=/home/alice/err-42.txt',
    ]);
    expect(slurmMinutes(60)).toBe(1);
    expect(slurmMinutes(1)).toBe(1);
    expect(slurmTag(job())).toBe('hpcq:hpcjob-abcd1234:2');
  });

  it('the script runs the command as given, exports the environment, and records the exit status', () => {
    const { script } = sbatchRequest(job({ cmdLine: 'echo "$OMP_NUM_THREADS $HPCQ_JOB_ID"; exit 3', home: '/tmp/hpcq-unit-home' }));
    const out = execFileSync('sh', ['-c', `sh -s; echo "status=$?"; cat /tmp/hpcq-unit-home/.hpcq/slurm/hpcjob-abcd1234.2.exit; rm -rf /tmp/hpcq-unit-home`], { input: script, encoding: 'utf8' });
    expect(out).toBe('4 42\nstatus=3\n3\n');
    // A cmd_line's syntax error or `exit` ends only the command: its status is still recorded.
    for (const [cmdLine, status] of [['echo (', 2], ['exit 4; echo no', 4]] as const) {
      const s = sbatchRequest(job({ cmdLine, home: '/tmp/hpcq-unit-home4' })).script;
      const o = execFileSync('sh', ['-c', `sh -s 2>/dev/null; echo "status=$?"; cat /tmp/hpcq-unit-home4/.hpcq/slurm/hpcjob-abcd1234.2.exit; rm -rf /tmp/hpcq-unit-home4`], { input: s, encoding: 'utf8' });
      expect(o).toBe(`status=${status}\n${status}\n`);
    }
    const argv = sbatchRequest(job({ argv: ['printf', '%s|', "a b", "c'd"], home: '/tmp/hpcq-unit-home2' })).script;
    expect(execFileSync('sh', ['-c', 'sh -s; rm -rf /tmp/hpcq-unit-home2'], { input: argv, encoding: 'utf8' })).toBe("a b|c'd|");
  });
});

describe('arrays as one sbatch --array', () => {
  // Array job 10 with three instances 11..13 (ids follow the array job's), parallelism 2.
  const array = job({ id: 10, uuid: 'hpcjob-array', attempt: 1, array: { count: 3, parallelism: 2 } } as Partial<Job>);
  const instance = (index: number, template: string, home: string) =>
    job({
      id: 11 + index,
      uuid: `hpcjob-inst${index}`,
      attempt: 1,
      home,
      arrayInstance: { arrayJobId: 10, index, count: 3 },
      stdoutPathTemplate: template,
      stderrPathTemplate: template,
      stdoutPath: template.replace('%j', String(11 + index)).replace('%a', String(index)).replace('%A', '10'),
      stderrPath: template.replace('%j', String(11 + index)).replace('%a', String(index)).replace('%A', '10'),
      cmdLine: 'echo "$HPCQ_JOB_ID $HPCQ_JOB_UUID $HPCQ_ARRAY_INDEX $HPCQ_ARRAY_JOB_ID $OMP_NUM_THREADS"; exit $HPCQ_ARRAY_INDEX',
    } as Partial<Job>);

  it('one sbatch with --array=0-<n-1>%<parallelism>, tagged with the array job; paths in Slurm patterns when they can be', () => {
    const { args } = sbatchArrayRequest(array, [0, 1, 2].map((i) => instance(i, '/home/alice/%x-%A_%a.out', '/home/alice')));
    expect(args).toContain('--array=0-2%2');
    expect(args).toContain('--comment=hpcq:hpcjob-array:1');
    expect(args).toContain('--output=/home/alice/sim-10_%a.out');
    expect(args).toContain('--error=/home/alice/sim-10_%a.out');
    expect(slurmArrayPath('/d/%j.out', array)).toBeUndefined();
    expect(slurmArrayPath('/d/100%%-%u-%a.out', array)).toBe('/d/100%%-alice-%a.out');
    expect(sbatchArrayRequest({ ...array, array: { count: 3, parallelism: 0 } } as Job, [0, 1, 2].map((i) => instance(i, '/d/%a', '/h'))).args).toContain('--array=0-2');
    expect(() => sbatchArrayRequest(array, [instance(0, '/d/%a', '/h')])).toThrow(RangeError);
  });

  it("each task is its instance: own id, uuid, index, exit record and (for %j paths) its own output files", () => {
    const home = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
    try {
      const { args, script } = sbatchArrayRequest(array, [0, 1, 2].map((i) => instance(i, `${home}/out-%j.txt`, home)));
      expect(args).toContain('--output=/dev/null');
      for (const task of [0, 2]) {
        const status = execFileSync('sh', ['-c', `SLURM_ARRAY_TASK_ID=${task} sh -s; echo $?`], { input: script, encoding: 'utf8' });
        expect(status).toBe(`${task}\n`);
        expect(execFileSync('cat', [`${home}/out-${11 + task}.txt`], { encoding: 'utf8' })).toBe(`${11 + task} hpcjob-inst${task} ${task} 10 4\n`);
        expect(execFileSync('cat', [`${home}/.hpcq/slurm/hpcjob-inst${task}.1.exit`], { encoding: 'utf8' })).toBe(`${task}\n`);
      }
      // A task that is no instance of the array runs nothing.
      expect(execFileSync('sh', ['-c', 'SLURM_ARRAY_TASK_ID=7 sh -s 2>&1; echo " $?"'], { input: script, encoding: 'utf8' })).toBe('hpcq: task 7 is not an instance of array job 10\n 1\n');
    } finally {
      execFileSync('rm', ['-rf', home]);
    }
  });
});

describe('parsers', () => {
  it('squeue: only hpcq-tagged lines; array tasks pending together come back one per task', () => {
    expect(parseSqueue('12|PENDING|Priority|N/A|hpcq:hpcjob-a:1\n13|RUNNING|None|N/A|(null)\n14_3|COMPLETED|None|3|hpcq:hpcjob-b:2\n15_[4-6%2]|PENDING|JobArrayTaskLimit|4-6%2|hpcq:hpcjob-c:1|x\n')).toEqual([
      { slurmId: '12', state: 'PENDING', reason: 'Priority', comment: 'hpcq:hpcjob-a:1' },
      { slurmId: '14_3', state: 'COMPLETED', reason: 'None', comment: 'hpcq:hpcjob-b:2' },
      ...[4, 5, 6].map((i) => ({ slurmId: `15_${i}`, state: 'PENDING', reason: 'JobArrayTaskLimit', comment: 'hpcq:hpcjob-c:1|x' })),
    ]);
    expect(taskIndices('0,3,5-7%2')).toEqual([0, 3, 5, 6, 7]);
    expect(taskIndices('0-8:4')).toEqual([0, 4, 8]);
    expect(taskIndices('N/A')).toEqual([]);
  });

  it('scontrol, sacct, exit records and sinfo', () => {
    expect(parseScontrolJob('JobId=5 JobName=wrap JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0')).toEqual({ state: 'FAILED', reason: 'NonZeroExitCode', exit: { exitCode: 3, termSignal: 0 } });
    expect(parseScontrolJob('slurm_load_jobs error: Invalid job id specified')).toBeUndefined();
    expect(parseSacct('CANCELLED by 1001|0:15\n')).toEqual({ state: 'CANCELLED', exit: { exitCode: 0, termSignal: 15 } });
    expect(parseSacct('')).toBeUndefined();
    expect(parseExitRecord('0\n')).toEqual({ exitCode: 0, termSignal: 0 });
    expect(parseExitRecord('137\n')).toEqual({ exitCode: 0, termSignal: 9 });
    expect(parseExitRecord('garbage')).toBeUndefined();
    expect(parseSinfo('up|1|1/1/0/2\nup|2|0/8/0/8\n')).toEqual({ state: 'up', nodes: 3, cpus: 10, idleCpus: 9 });
  });
});

describe('observe', () => {
  it.each([
    ['PENDING', 'Resources', { kind: 'pending', reason: 'Slurm: Resources' }],
    ['RUNNING', 'None', { kind: 'running' }],
    ['COMPLETING', 'None', { kind: 'running' }],
    ['COMPLETED', 'None', { kind: 'ended', state: 'COMPLETED', reason: '', limitHit: '' }],
    ['FAILED', 'NonZeroExitCode', { kind: 'failed-needs-exit-code', reason: 'Slurm: FAILED (NonZeroExitCode)' }],
    ['TIMEOUT', 'TimeLimit', { kind: 'ended', state: 'TIMEOUT', reason: 'Slurm: TIMEOUT', limitHit: 'time' }],
    ['DEADLINE', '', { kind: 'ended', state: 'TIMEOUT', reason: 'Slurm: DEADLINE', limitHit: 'time' }],
    ['OUT_OF_MEMORY', '', { kind: 'ended', state: 'OUT_OF_MEMORY', reason: 'Slurm: OUT_OF_MEMORY', limitHit: 'memory' }],
    ['CANCELLED', '', { kind: 'ended', state: 'CANCELLED', reason: 'Slurm: CANCELLED', limitHit: '' }],
    ['NODE_FAIL', '', { kind: 'ended', state: 'NODE_FAIL', reason: 'Slurm: NODE_FAIL', limitHit: '' }],
    ['BOOT_FAIL', '', { kind: 'ended', state: 'NODE_FAIL', reason: 'Slurm: BOOT_FAIL', limitHit: '' }],
  ])('%s (%s)', (state, reason, expected) => {
    expect(observe(state, reason)).toEqual(expected);
  });
});

describe('the batch script and signals', () => {
  it('a signal to the whole job (scancel --signal --full) reaches the job, and the script records its status', () => {
    const { script } = sbatchRequest(job({ cmdLine: "trap 'exit 7' USR1; kill -USR1 0; sleep 5; exit 1", home: '/tmp/hpcq-unit-home3' }));
    // `kill -USR1 0` signals the whole process group, as --full does: the script's shell included.
    // setsid: a group of its own (the wrapper shell handles the signal too), never the test runner's.
    const out = execFileSync('setsid', ['-w', 'sh', '-c', 'trap : USR1; sh -s; echo "status=$?"; cat /tmp/hpcq-unit-home3/.hpcq/slurm/hpcjob-abcd1234.2.exit; rm -rf /tmp/hpcq-unit-home3'], { input: script, encoding: 'utf8' });
    expect(out).toBe('status=7\n7\n');
  });
});
