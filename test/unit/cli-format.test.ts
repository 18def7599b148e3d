import { Metadata, status } from '@grpc/grpc-js';
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { toServiceError } from '../../src/api/grpc-status.js';
import { defaultAddress, normalizeAddress, resolveAddress } from '../../src/cli/address.js';
import { buildSubmitRequest, parseExport } from '../../src/cli/commands/submit.js';
import { parseTimeoutOption } from '../../src/cli/context.js';
import { connectProblem, describeError, renderFailure, UsageError } from '../../src/cli/errors.js';
import {
  commandLineFromWords,
  formatBytes,
  formatCpuTime,
  formatDurationShort,
  formatElapsed,
  formatMiB,
  formatTime,
  parseDuration,
  parseInteger,
  parseMemMiB,
  renderKeyValues,
  renderTable,
  rfc3339,
  shellQuote,
} from '../../src/cli/format.js';
import {
  isTerminal,
  jobExitStatus,
  jobRow,
  parseStates,
  reasonOrExit,
  renderJobStatus,
  renderJobTable,
  renderQueues,
  STATE_NAMES,
  stateName,
  watchLine,
} from '../../src/cli/job-view.js';
import { protoJson, snakeCase } from '../../src/cli/proto-json.js';
import { HpcqError } from '../../src/core/errors.js';
import { JOB_STATES, TERMINAL_STATES } from '../../src/core/job.js';
import { JobState, type Job } from '../../src/gen/hpcq/v1/job.js';
import { GetJobResponse, SubmitJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import type { Logger } from '../../src/logger.js';

function job(overrides: Partial<Job> = {}): Job {
  return {
    jobId: '12',
    hpcjobUuid: 'hpcjob-abc12345',
    name: 'sim',
    clusterId: 'hpcq-test',
    zone: 'test-zone',
    hpcqueueId: 'hpcq-normal',
    schedulerQueueName: 'normal',
    runUser: 'alice',
    cmdLine: 'sleep 1',
    inputFile: '',
    coreLimit: 2,
    memLimit: 1536,
    timeLimit: 5400,
    resourceLimit: '',
    priority: 0,
    state: JobState.JOB_STATE_COMPLETED,
    jobStatus: 'completed',
    reason: '',
    exitCode: 0,
    termSignal: 0,
    submitTime: '2026-01-02T03:04:00.000Z',
    startTime: '2026-01-02T03:04:05.000Z',
    endTime: '2026-01-02T03:05:10.000Z',
    stdoutPath: '/home/alice/hpcq-12.out',
    stderrPath: '/home/alice/hpcq-12.err',
    enforcement: 'cgroup2',
    limitHit: '',
    usage: { cpuTimeUsec: 1_234_000, userCpuUsec: 1_000_000, systemCpuUsec: 234_000, peakMemoryBytes: 12.5 * 1024 * 1024, wallTimeMs: 65_000 },
    submitType: 1,
    clientToken: '',
    argv: [],
    envNames: [],
    workingDir: '/home/alice',
    description: '',
    dependsOn: [],
    retry: undefined,
    attempt: 1,
    previousAttempts: [],
    groupId: '',
    taskName: '',
    array: undefined,
    instanceCounts: {},
    arrayJobId: '',
    arrayIndex: 0,
    beginTime: '',
    heldBy: '',
    scheduleId: '',
    scheduleTickTime: '',
    schedulerJobId: '',
    ...overrides,
  };
}

describe('parseDuration', () => {
  it.each([
    ['3600', 3600],
    ['1h30m', 5400],
    ['90m', 5400],
    ['01:30:00', 5400],
    ['1:30:00', 5400],
    ['30:00', 1800],
    ['45s', 45],
    ['2d', 172_800],
    ['1d2h3m4s', 93_784],
    ['1H30M', 5400],
    ['1-12:00:00', 129_600],
    ['1-12', 129_600],
    ['0', 0],
  ])('%s -> %i s', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '1x', 'h', '1m1h', '1h1h', '01:60:00', '10:75', '1.5h', '-5', '1:2:3:4'])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });
});

describe('parseMemMiB and parseInteger', () => {
  it.each([
    ['512', 512],
    ['512M', 512],
    ['4G', 4096],
    ['4g', 4096],
    ['1.5GiB', 1536],
    ['2048K', 2],
    ['1K', 1],
    ['1T', 1024 * 1024],
  ])('%s -> %i MiB', (text, mib) => {
    expect(parseMemMiB(text)).toBe(mib);
  });

  it.each(['', 'lots', '1.5', '4X', '-1'])('rejects %j', (text) => {
    expect(() => parseMemMiB(text)).toThrow(/invalid memory size/);
  });

  it('parses integers strictly', () => {
    expect(parseInteger('42')).toBe(42);
    expect(parseInteger('-3')).toBe(-3);
    for (const bad of ['1e3', '12abc', '', '1.5']) expect(() => parseInteger(bad, 'priority')).toThrow(/invalid priority/);
  });
});

describe('duration, size and time formatting', () => {
  it('formats elapsed time like squeue', () => {
    expect(formatElapsed(0)).toBe('0:00');
    expect(formatElapsed(-5)).toBe('0:00');
    expect(formatElapsed(5.9)).toBe('0:05');
    expect(formatElapsed(65)).toBe('1:05');
    expect(formatElapsed(3723)).toBe('1:02:03');
    expect(formatElapsed(2 * 86_400 + 3 * 3600 + 4 * 60 + 5)).toBe('2-03:04:05');
  });

  it('formats short durations with units', () => {
    expect(formatDurationShort(0)).toBe('0s');
    expect(formatDurationShort(45)).toBe('45s');
    expect(formatDurationShort(5400)).toBe('1h30m');
    expect(formatDurationShort(86_400)).toBe('1d');
    expect(formatDurationShort(93_784)).toBe('1d2h3m4s');
    for (const s of [45, 5400, 93_784]) expect(parseDuration(formatDurationShort(s))).toBe(s);
  });

  it('formats CPU time', () => {
    expect(formatCpuTime(0)).toBe('0.000s');
    expect(formatCpuTime(1_234_000)).toBe('1.234s');
    expect(formatCpuTime(12_345_678)).toBe('12.35s');
    expect(formatCpuTime(3_723_000_000)).toBe('1:02:03');
  });

  it('formats bytes with binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(12.5 * 1024 * 1024)).toBe('12.5 MiB');
    expect(formatBytes(4 * 1024 ** 3)).toBe('4 GiB');
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MiB');
    expect(formatBytes(12.5 * 1024 * 1024, true)).toBe('12.5M');
    expect(formatBytes(700 * 1024, true)).toBe('700K');
  });

  it('formats MiB limits', () => {
    expect(formatMiB(256)).toBe('256M');
    expect(formatMiB(1024)).toBe('1G');
    expect(formatMiB(1536)).toBe('1.5G');
    expect(formatMiB(0)).toBe('0');
    expect(formatMiB(256, true)).toBe('256 MiB');
    expect(formatMiB(4096, true)).toBe('4 GiB');
  });

  it('formats times as local wall-clock time and makes RFC 3339', () => {
    expect(formatTime('')).toBe('');
    expect(formatTime('garbage')).toBe('garbage');
    const t = '2026-01-02T03:04:05.678Z';
    const d = new Date(t);
    expect(formatTime(t)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/);
    expect(formatTime(t)).toContain(`:${String(d.getMinutes()).padStart(2, '0')}:05`);
    expect(rfc3339(Date.parse(t))).toBe('2026-01-02T03:04:05Z');
  });
});

describe('tables and key/value views', () => {
  it('renders aligned tables with right-aligned columns and no trailing spaces', () => {
    const text = renderTable(['ID', 'NAME', 'NOTE'], [['1', 'a', ''], ['100', 'longer', 'x']], ['right', 'left', 'left']);
    expect(text).toBe(' ID  NAME    NOTE\n  1  a\n100  longer  x\n');
  });

  it('renders key: value lines, leaving out undefined values', () => {
    expect(renderKeyValues([['State', 'RUNNING'], ['Skipped', undefined], ['Exit code', '0']])).toBe('State:     RUNNING\nExit code: 0\n');
  });

  it('renders the job table like squeue, with usage for finished jobs', () => {
    const text = renderJobTable([job(), job({ jobId: '13', state: JobState.JOB_STATE_PENDING, jobStatus: 'pending', reason: 'Priority', startTime: '', endTime: '', usage: undefined })]);
    const [header, done, pending] = text.trimEnd().split('\n');
    expect(header!.split(/\s+/)).toEqual(['JOBID', 'NAME', 'USER', 'QUEUE', 'STATE', 'TIME', 'CPUS', 'MEM', 'CPUTIME', 'MAXMEM', 'REASON/EXIT']);
    expect(done!.trim().split(/\s+/)).toEqual(['12', 'sim', 'alice', 'normal', 'COMPLETED', '1:05', '2', '1.5G', '1.234s', '12.5M', 'exit', '0']);
    expect(pending!.trim().split(/\s+/)).toEqual(['13', 'sim', 'alice', 'normal', 'PENDING', '0:00', '2', '1.5G', '(Priority)']);
  });

  it('computes the run time of a running job from its start', () => {
    const running = job({ state: JobState.JOB_STATE_RUNNING, jobStatus: 'running', endTime: '', usage: undefined });
    expect(jobRow(running, Date.parse('2026-01-02T04:05:06Z'))[5]).toBe('1:01:01');
  });

  it('summarizes reasons and exits', () => {
    expect(reasonOrExit(job({ state: JobState.JOB_STATE_FAILED, exitCode: 3, reason: 'NonZeroExitCode: main process exited with 3' }))).toBe('exit 3');
    expect(reasonOrExit(job({ state: JobState.JOB_STATE_TIMEOUT, termSignal: 9, reason: 'TimeLimit: wall time reached time_limit' }))).toBe('signal 9 (TimeLimit)');
    expect(reasonOrExit(job({ state: JobState.JOB_STATE_CANCELLED, reason: 'Cancelled by CancelJob' }))).toBe('exit 0 (Cancelled)');
  });

  it('renders the status view', () => {
    const text = renderJobStatus(job({ state: JobState.JOB_STATE_OUT_OF_MEMORY, jobStatus: 'out_of_memory', exitCode: 0, termSignal: 9, limitHit: 'memory' }));
    expect(text).toMatch(/^State:\s+OUT_OF_MEMORY \(out_of_memory\)$/m);
    expect(text).toMatch(/^Exit code:\s+0$/m);
    expect(text).toMatch(/^Signal:\s+9 \(SIGKILL\)$/m);
    expect(text).toMatch(/^Limit hit:\s+memory$/m);
    expect(text).toMatch(/^Memory limit:\s+1\.5 GiB \(1536 MiB\)$/m);
    expect(text).toMatch(/^Time limit:\s+1h30m \(5400 s\)$/m);
    expect(text).toMatch(/^Peak memory:\s+12\.5 MiB \(13107200 bytes\)$/m);
    expect(text).toMatch(/^CPU time:\s+1\.234s \(user 1\.000s, system 0\.234s\)$/m);
    expect(text).toMatch(/^Wall time:\s+1:05 \(65\.000 s\)$/m);
    expect(text).toMatch(/^Enforcement:\s+cgroup2$/m);
    // A job of the node's own cluster has no scheduler job; one Slurm runs shows its id there.
    expect(text).not.toMatch(/^Scheduler job:/m);
    expect(renderJobStatus(job({ schedulerJobId: '1234_5' }))).toMatch(/^Scheduler job:\s+1234_5$/m);
  });

  it('renders watch lines', () => {
    const running = job({ state: JobState.JOB_STATE_RUNNING, jobStatus: 'running', endTime: '' });
    expect(watchLine(running, undefined)).toMatch(/^\S+ {2}job 12 {2}RUNNING$/);
    const failed = job({ state: JobState.JOB_STATE_FAILED, jobStatus: 'failed', exitCode: 3, reason: 'NonZeroExitCode: x' });
    const line = watchLine(failed, { state: JobState.JOB_STATE_FAILED, jobStatus: 'failed', reason: 'NonZeroExitCode: x', time: failed.endTime, sequence: 3 });
    expect(line).toMatch(/job 12 {2}FAILED +exit 3 {2}NonZeroExitCode: x$/);
  });

  it('renders the queues table and node line', () => {
    const text = renderQueues({
      queues: [
        { clusterId: 'c', zone: 'z', hpcqueueId: 'hpcq-normal', schedulerQueueName: 'normal', isDefault: true, priority: 10, maxCores: 4, defaultCores: 1, maxMemMb: 4096, defaultMemMb: 256, maxTimeSeconds: 3600, defaultTimeSeconds: 600, maxRunning: 0, maxPending: 3, pendingCount: 2, runningCount: 1, allowedGroups: [], allowedUsers: [], usable: true, state: 'open', backend: 'local', partitionState: '', partitionNodes: 0, partitionCpus: 0, partitionIdleCpus: 0, partitionNote: '' },
      ],
      enforcement: 'rlimit',
      nodeCores: 4,
      nodeMemMb: 4096,
      freeCores: 3,
      freeMemMb: 3840,
    });
    expect(text.split('\n')[1]!.split(/\s+/)).toEqual(['c', 'hpcq-normal', 'normal', 'yes', '10', '1/4', '256M/4G', '10m/1h', '-', '3', '2', '1']);
    expect(text).toContain('node: enforcement rlimit, cores 3/4 free, memory 3.8G/4G free');
  });
});

describe('job states and exit status', () => {
  it('parses state filters in any spelling', () => {
    expect(parseStates(['pending', 'RUNNING'])).toEqual([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING]);
    expect(parseStates(['completed,failed', 'JOB_STATE_TIMEOUT', 'out-of-memory', 'CA', 'pd'])).toEqual([
      JobState.JOB_STATE_COMPLETED,
      JobState.JOB_STATE_FAILED,
      JobState.JOB_STATE_TIMEOUT,
      JobState.JOB_STATE_OUT_OF_MEMORY,
      JobState.JOB_STATE_CANCELLED,
      JobState.JOB_STATE_PENDING,
    ]);
    expect(parseStates(['canceled', 'cancelled'])).toEqual([JobState.JOB_STATE_CANCELLED]);
    expect(() => parseStates(['done'])).toThrow(/unknown job state "done"/);
  });

  it('names states', () => {
    expect(stateName(JobState.JOB_STATE_OUT_OF_MEMORY)).toBe('OUT_OF_MEMORY');
    expect(stateName(JobState.UNRECOGNIZED, 'weird')).toBe('WEIRD');
    expect(stateName(JobState.JOB_STATE_UNSPECIFIED)).toBe('UNKNOWN');
    expect(stateName(99 as JobState, 'future')).toBe('FUTURE');
  });

  it('agrees with the daemon on every state: name, terminal or not, and the --state spelling', () => {
    const byName: Record<string, JobState> = {
      PENDING: JobState.JOB_STATE_PENDING,
      RUNNING: JobState.JOB_STATE_RUNNING,
      COMPLETED: JobState.JOB_STATE_COMPLETED,
      FAILED: JobState.JOB_STATE_FAILED,
      CANCELLED: JobState.JOB_STATE_CANCELLED,
      TIMEOUT: JobState.JOB_STATE_TIMEOUT,
      OUT_OF_MEMORY: JobState.JOB_STATE_OUT_OF_MEMORY,
      NODE_FAIL: JobState.JOB_STATE_NODE_FAIL,
    };
    expect(Object.keys(byName)).toEqual([...JOB_STATES]);
    for (const [name, proto] of Object.entries(byName)) {
      expect(stateName(proto), name).toBe(name);
      expect(isTerminal(proto), name).toBe(TERMINAL_STATES.has(name as (typeof JOB_STATES)[number]));
      expect(parseStates([name.toLowerCase()]), name).toEqual([proto]);
    }
    for (const state of [JobState.JOB_STATE_UNSPECIFIED, JobState.UNRECOGNIZED, 99 as JobState]) expect(isTerminal(state)).toBe(false);
    expect(STATE_NAMES).toBe('pending, running, completed, failed, cancelled, timeout, out_of_memory, node_fail');
    expect(parseStates(['PD,R,CD,F,CA,TO,OOM,NF'])).toEqual(Object.values(byName));
  });

  it('maps a finished job to an exit status like srun', () => {
    expect(jobExitStatus({ state: JobState.JOB_STATE_COMPLETED, exitCode: 0, termSignal: 0 })).toBe(0);
    expect(jobExitStatus({ state: JobState.JOB_STATE_FAILED, exitCode: 3, termSignal: 0 })).toBe(3);
    expect(jobExitStatus({ state: JobState.JOB_STATE_TIMEOUT, exitCode: 0, termSignal: 9 })).toBe(137);
    expect(jobExitStatus({ state: JobState.JOB_STATE_CANCELLED, exitCode: 0, termSignal: 0 })).toBe(1);
    expect(jobExitStatus({ state: JobState.JOB_STATE_NODE_FAIL, exitCode: 0, termSignal: 0 })).toBe(1);
  });
});

describe('submit request', () => {
  const base = { name: 'x', submitType: 1 };

  it('takes trailing words as the command line', () => {
    expect(buildSubmitRequest(base, ['sleep', '10']).cmdLine).toBe('sleep 10');
    expect(buildSubmitRequest(base, ['sleep 10; exit 3']).cmdLine).toBe('sleep 10; exit 3');
    expect(buildSubmitRequest(base, ['sh', '-c', 'echo "a b"; exit 2']).cmdLine).toBe(`sh -c 'echo "a b"; exit 2'`);
    expect(() => buildSubmitRequest({ ...base, cmdLine: 'true' }, ['false'])).toThrow(UsageError);
  });

  it('fills in the defaults: no run_user (the daemon takes the caller\'s account), cli submit type, timestamp now', () => {
    const req = buildSubmitRequest(base, [], Date.parse('2026-01-02T03:04:05.600Z'));
    expect(req).toMatchObject({ runUser: '', submitType: 1, timestamp: '2026-01-02T03:04:05Z', cmdLine: '', name: 'x' });
    expect(buildSubmitRequest({ ...base, timestamp: false }, []).timestamp).toBe('');
    expect(buildSubmitRequest({ ...base, queue: 'debug', memLimit: 512, stdout: '/tmp/o' }, []).schedulerQueueName).toBe('debug');
  });

  it('maps every option to its request field', () => {
    const req = buildSubmitRequest(
      {
        name: 'x',
        submitType: 0,
        clusterId: 'c',
        zone: 'z',
        runUser: 'bob',
        inputFile: '/home/bob/run.sh',
        coreLimit: 2,
        memLimit: 512,
        timeLimit: 60,
        resourceLimit: 'pids=10',
        hpcqueueId: 'hpcq-debug',
        queue: 'debug',
        stdout: '/tmp/o',
        stderr: '/tmp/e',
        priority: 7,
        clientToken: 'tok',
        timestamp: '2026-01-02T03:04:05Z',
        export: { OMP_PROC_BIND: 'true' },
        chdir: '/scratch/run',
        description: 'a run',
      },
      [],
    );
    expect(req).toEqual({
      timestamp: '2026-01-02T03:04:05Z',
      clusterId: 'c',
      zone: 'z',
      runUser: 'bob',
      name: 'x',
      cmdLine: '',
      inputFile: '/home/bob/run.sh',
      coreLimit: 2,
      memLimit: 512,
      timeLimit: 60,
      resourceLimit: 'pids=10',
      hpcqueueId: 'hpcq-debug',
      schedulerQueueName: 'debug',
      stdoutRedirectPath: '/tmp/o',
      stderrRedirectPath: '/tmp/e',
      priority: 7,
      submitType: 0,
      clientToken: 'tok',
      argv: [],
      env: { OMP_PROC_BIND: 'true' },
      workingDir: '/scratch/run',
      description: 'a run',
      dependsOn: [],
      retry: undefined,
      taskName: '',
      array: undefined,
      beginTime: '',
      hold: false,
    });
  });

  it('--argv sends the trailing words as argv, unquoted and without a shell line', () => {
    const req = buildSubmitRequest({ ...base, argv: true }, ['printf', '%s|', 'a b', '$(id)', "it's"]);
    expect(req).toMatchObject({ argv: ['printf', '%s|', 'a b', '$(id)', "it's"], cmdLine: '' });
    expect(() => buildSubmitRequest({ ...base, argv: true }, [])).toThrow(UsageError);
  });

  it('--export takes NAME=value lists, repeatable; a value may hold = and commas are separators', () => {
    expect(parseExport('A=1,B=x=y')).toEqual({ A: '1', B: 'x=y' });
    expect(parseExport('C=3', { A: '1' })).toEqual({ A: '1', C: '3' });
    expect(() => parseExport('ALL')).toThrow(/NAME=value/);
    expect(() => parseExport('=v')).toThrow(/NAME=value/);
  });

  it('quotes words for the shell only when needed', () => {
    expect(shellQuote('plain-word_1.txt')).toBe('plain-word_1.txt');
    expect(shellQuote('')).toBe(`''`);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(commandLineFromWords(['echo', '$HOME', 'a b'])).toBe(`echo '$HOME' 'a b'`);
  });
});

describe('JSON output', () => {
  it('uses snake_case proto names and keeps default values', () => {
    expect(snakeCase('hpcjobUuid')).toBe('hpcjob_uuid');
    const json = protoJson(SubmitJobResponse, { action: 'HpcJobSubmitJobResponse', jobStatus: 'pending', hpcjobUuid: 'hpcjob-abc12345', jobId: '7', retCode: 0 });
    expect(json).toEqual({ action: 'HpcJobSubmitJobResponse', job_status: 'pending', hpcjob_uuid: 'hpcjob-abc12345', job_id: '7', ret_code: 0 });
  });

  it('prints enums by name, nested messages, and leaves out unset messages', () => {
    const out = protoJson(GetJobResponse, { job: job() }) as { job: Record<string, unknown> };
    expect(out.job.state).toBe('JOB_STATE_COMPLETED');
    expect(out.job.exit_code).toBe(0);
    expect(out.job.usage).toEqual({ cpu_time_usec: 1_234_000, user_cpu_usec: 1_000_000, system_cpu_usec: 234_000, peak_memory_bytes: 13_107_200, wall_time_ms: 65_000 });
    const pending = protoJson(GetJobResponse, { job: job({ usage: undefined }) }) as { job: Record<string, unknown> };
    expect('usage' in pending.job).toBe(false);
    expect(protoJson(GetJobResponse, { job: undefined })).toEqual({});
  });
});

describe('errors', () => {
  const ctx = { address: 'unix:/run/x.sock', timeoutMs: 5000 };

  it('decodes the server reason and maps client errors to exit 2', () => {
    const err = Object.assign(new Error('x'), toServiceError(new HpcqError('InvalidParameter.JobNameTooLong', 'invalid', 'name too long', 'name'), {} as Logger, 'SubmitJob'));
    const f = describeError(err, ctx);
    expect(f).toEqual({ code: status.INVALID_ARGUMENT, status: 'INVALID_ARGUMENT', reason: 'InvalidParameter.JobNameTooLong', field: 'name', message: 'name too long', exitCode: 2 });
    expect(renderFailure(f, false)).toBe('hpcq: InvalidParameter.JobNameTooLong: name too long\n');
    expect(JSON.parse(renderFailure(f, true))).toEqual({ code: 3, status: 'INVALID_ARGUMENT', reason: 'InvalidParameter.JobNameTooLong', field: 'name', message: 'name too long' });
  });

  it('maps server-side unavailability (with a reason) to exit 1', () => {
    const err = Object.assign(new Error('x'), toServiceError(new HpcqError('ResourceUnavailable.Store', 'unavailable', 'store closed'), {} as Logger, 'SubmitJob'));
    expect(describeError(err, ctx)).toMatchObject({ reason: 'ResourceUnavailable.Store', exitCode: 1 });
  });

  it('explains an unreachable daemon with the address tried', () => {
    const details = 'No connection established. Last error: Error: connect ENOENT /run/x.sock. Resolution note: ';
    expect(connectProblem(details)).toBe('connect ENOENT /run/x.sock');
    const f = describeError({ code: status.UNAVAILABLE, details, metadata: new Metadata() }, ctx);
    expect(f.reason).toBe('DaemonUnreachable');
    expect(f.exitCode).toBe(1);
    expect(f.message).toContain('cannot reach hpcqd at unix:/run/x.sock: connect ENOENT /run/x.sock');
    expect(f.message).toContain('HPCQ_ADDR');
  });

  it('reports deadlines, plain statuses and usage errors', () => {
    expect(describeError({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: new Metadata() }, ctx).message).toContain('within 5 s');
    expect(describeError({ code: status.NOT_FOUND, details: 'nope', metadata: new Metadata() }, ctx)).toMatchObject({ reason: 'NotFound', exitCode: 2 });
    expect(describeError({ code: status.INTERNAL, details: 'boom', metadata: new Metadata() }, ctx)).toMatchObject({ reason: 'Internal', exitCode: 1 });
    expect(describeError(new UsageError('bad flag'), ctx)).toMatchObject({ reason: 'InvalidUsage', exitCode: 2 });
  });
});

describe('--timeout', () => {
  it.each([
    ['30', 30],
    ['0.5', 0.5],
    ['1m', 60],
    ['00:01:30', 90],
  ])('%s -> %d s', (text, seconds) => {
    expect(parseTimeoutOption(text)).toBe(seconds);
  });

  it.each(['0', '0s', '-1', 'soon'])('rejects %j as a usage error', (text) => {
    expect(() => parseTimeoutOption(text)).toThrow(InvalidArgumentError);
  });
});

describe('address', () => {
  const SYSTEM = '/run/hpcq/hpcqd.sock';
  /** An `exists` that finds exactly these paths. */
  const only =
    (...paths: string[]) =>
    (path: string) =>
      paths.includes(path);

  it('root: the system socket, whether or not it exists', () => {
    expect(defaultAddress(0, {}, only())).toBe(`unix:${SYSTEM}`);
    expect(defaultAddress(0, { HOME: '/root' }, only(SYSTEM))).toBe(`unix:${SYSTEM}`);
  });

  it('a user: the system socket when it exists, even with a personal daemon', () => {
    expect(defaultAddress(1000, { HOME: '/home/a' }, only(SYSTEM))).toBe(`unix:${SYSTEM}`);
    expect(defaultAddress(1000, { HOME: '/home/a' }, only(SYSTEM, '/home/a/.local/state/hpcq/hpcqd.sock'))).toBe(`unix:${SYSTEM}`);
  });

  it('a user without the system socket: the personal one if it exists', () => {
    expect(defaultAddress(1000, { XDG_STATE_HOME: '/x/state', HOME: '/home/a' }, only('/x/state/hpcq/hpcqd.sock'))).toBe('unix:/x/state/hpcq/hpcqd.sock');
    expect(defaultAddress(1000, { HOME: '/home/a' }, only('/home/a/.local/state/hpcq/hpcqd.sock'))).toBe('unix:/home/a/.local/state/hpcq/hpcqd.sock');
    // The personal socket is looked for where the daemon puts it (XDG_STATE_HOME wins over HOME).
    expect(defaultAddress(1000, { XDG_STATE_HOME: '/x/state', HOME: '/home/a' }, only('/home/a/.local/state/hpcq/hpcqd.sock'))).toBe(`unix:${SYSTEM}`);
  });

  it('a user with neither: the system socket, so the error names it', () => {
    expect(defaultAddress(1000, { HOME: '/home/a' }, only())).toBe(`unix:${SYSTEM}`);
  });

  it('asks only about the sockets it may use', () => {
    const asked: string[] = [];
    defaultAddress(1000, { HOME: '/home/a' }, (path) => {
      asked.push(path);
      return false;
    });
    expect(asked).toEqual([SYSTEM, '/home/a/.local/state/hpcq/hpcqd.sock']);
  });

  it('prefers --addr, then HPCQ_ADDR', () => {
    expect(resolveAddress('localhost:7000', { HPCQ_ADDR: 'unix:/e.sock' }, 1000)).toBe('localhost:7000');
    expect(resolveAddress('/flag.sock', { HPCQ_ADDR: 'unix:/e.sock' }, 0)).toBe('unix:/flag.sock');
    expect(resolveAddress(undefined, { HPCQ_ADDR: 'unix:/e.sock' }, 1000)).toBe('unix:/e.sock');
    expect(resolveAddress('', { HPCQ_ADDR: 'unix:/e.sock' }, 1000)).toBe('unix:/e.sock');
    // Then the default; as root it does not depend on which sockets exist.
    expect(resolveAddress(undefined, { HPCQ_ADDR: '' }, 0)).toBe(`unix:${SYSTEM}`);
    expect(resolveAddress(undefined, {}, 0)).toBe(`unix:${SYSTEM}`);
  });

  it('normalizes and checks addresses', () => {
    expect(normalizeAddress('/run/hpcq.sock')).toBe('unix:/run/hpcq.sock');
    expect(normalizeAddress('unix:///run/hpcq.sock')).toBe('unix:/run/hpcq.sock');
    expect(normalizeAddress('[::1]:7000')).toBe('[::1]:7000');
    expect(normalizeAddress('dns:///host:7000')).toBe('dns:///host:7000');
    expect(() => normalizeAddress('unix:rel.sock')).toThrow(UsageError);
    expect(() => normalizeAddress('nohostport')).toThrow(/invalid address/);
  });
});
