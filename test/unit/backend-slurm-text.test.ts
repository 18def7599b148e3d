/** What hpcq says to Slurm and reads back: sbatch arguments and script, parsers, state mapping. */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { observe, parseExitRecord, parseSacct, parseScontrolJob, parseSinfo, parseSqueue, sbatchRequest, slurmMinutes, slurmTag } from '../../src/backend/slurm/slurm-text.js';
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
  it('asks for one task on one node with the limits, paths, directory and tag; no requeue; a bare environment', () => {
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
      '--output=/home/alice/out-42%%.txt',
      '--error=/home/alice/err-42.txt',
      '--chdir=/scratch/alice',
      '--comment=hpcq:hpcjob-abcd1234:2',
      '--export=NONE',
      '--no-requeue',
    ]);
    expect(slurmMinutes(60)).toBe(1);
    expect(slurmMinutes(1)).toBe(1);
    expect(slurmTag(job())).toBe('hpcq:hpcjob-abcd1234:2');
  });

  it('the script runs the command as given, exports the environment, and records the exit status', () => {
    const { script } = sbatchRequest(job({ cmdLine: 'echo "$OMP_NUM_THREADS $HPCQ_JOB_ID"; exit 3', home: '/tmp/hpcq-unit-home' }));
    const out = execFileSync('sh', ['-c', `sh -s; echo "status=$?"; cat /tmp/hpcq-unit-home/.hpcq/slurm/hpcjob-abcd1234.2.exit; rm -rf /tmp/hpcq-unit-home`], { input: script, encoding: 'utf8' });
    expect(out).toBe('4 42\nstatus=3\n3\n');
    const argv = sbatchRequest(job({ argv: ['printf', '%s|', "a b", "c'd"], home: '/tmp/hpcq-unit-home2' })).script;
    expect(execFileSync('sh', ['-c', 'sh -s; rm -rf /tmp/hpcq-unit-home2'], { input: argv, encoding: 'utf8' })).toBe("a b|c'd|");
  });
});

describe('parsers', () => {
  it('squeue: only hpcq-tagged lines', () => {
    expect(parseSqueue('12|PENDING|Priority|hpcq:hpcjob-a:1\n13|RUNNING|None|(null)\n14_3|COMPLETED|None|hpcq:hpcjob-b:2\n')).toEqual([
      { slurmId: '12', state: 'PENDING', reason: 'Priority', comment: 'hpcq:hpcjob-a:1' },
      { slurmId: '14_3', state: 'COMPLETED', reason: 'None', comment: 'hpcq:hpcjob-b:2' },
    ]);
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
