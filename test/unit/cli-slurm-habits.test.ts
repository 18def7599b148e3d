/**
 * The pure parts of the Slurm-habit flags: squeue's -o format, sacct's -o format and -S/-E times,
 * -t state lists, sbatch-named submit flags in Slurm's units, and sinfo -N lines.
 */
import { describe, expect, it } from 'vitest';
import { buildSubmitRequest } from '../../src/cli/commands/submit.js';
import { renderNodes } from '../../src/cli/commands/queues.js';
import { UsageError } from '../../src/cli/errors.js';
import { commaList, parseStateOption } from '../../src/cli/job-query.js';
import { formatSacctDuration, parseSacctFormat, renderSacct } from '../../src/cli/sacct-format.js';
import { parseSacctTime } from '../../src/cli/slurm-time.js';
import { parseSqueueFormat, renderSqueueFormat, shortState } from '../../src/cli/squeue-format.js';
import { JobState, Job } from '../../src/gen/hpcq/v1/job.js';
import { ListQueuesResponse, Queue } from '../../src/gen/hpcq/v1/queue_service.js';

const NOW = Date.parse('2026-01-02T03:06:00.000Z');

function job(fields: Partial<Job> = {}): Job {
  return {
    ...Job.fromPartial({}),
    jobId: '12',
    name: 'simulation',
    runUser: 'alice',
    hpcqueueId: 'hpcq-normal',
    schedulerQueueName: 'normal',
    coreLimit: 2,
    memLimit: 1536,
    timeLimit: 5400,
    state: JobState.JOB_STATE_RUNNING,
    jobStatus: 'running',
    submitTime: '2026-01-02T03:04:00.000Z',
    startTime: '2026-01-02T03:04:05.000Z',
    ...fields,
  };
}

const CTX = { node: 'node1', nowMs: NOW };

describe('squeue -o', () => {
  it('pads to the size, cuts longer values, right-justifies with a dot, and keeps literal text', () => {
    const parts = parseSqueueFormat('%.6i|-%%%5j|%.2t %M %l %D %R %P %C %m');
    expect(renderSqueueFormat(parts, [job()], CTX)).toBe(
      ' JOBID|-%NAME |ST TIME TIME_LIMIT NODES NODELIST(REASON) PARTITION CPUS MIN_MEMORY\n' +
        '    12|-%simul| R 1:55 1:30:00 1 node1 normal 2 1.5G\n',
    );
  });

  it('shows a pending job with its reason, codes of every state, and -h leaves the header out', () => {
    const pending = job({ state: JobState.JOB_STATE_PENDING, reason: 'Resources', startTime: '' });
    expect(renderSqueueFormat(parseSqueueFormat('%i %t %M %R %S'), [pending], CTX, true)).toBe('12 PD 0:00 (Resources) N/A\n');
    const failed = job({ state: JobState.JOB_STATE_FAILED, reason: 'NonZeroExitCode: exit 3', endTime: '2026-01-02T03:05:00.000Z' });
    expect(renderSqueueFormat(parseSqueueFormat('%T %R'), [failed], CTX, true)).toBe('FAILED (NonZeroExitCode)\n');
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((s) => shortState(s as JobState))).toEqual(['PD', 'R', 'CD', 'F', 'CA', 'TO', 'OOM', 'NF']);
    expect(renderSqueueFormat(parseSqueueFormat('%i'), [job({ jobId: '41', arrayJobId: '40', arrayIndex: 0 })], CTX, true)).toBe('40_0\n');
  });

  it('refuses unknown fields and a dot without a size', () => {
    expect(() => parseSqueueFormat('%i %Q')).toThrow(/unknown squeue format field %Q/);
    expect(() => parseSqueueFormat('%.i')).toThrow(/needs a size/);
    expect(() => parseSqueueFormat('%')).toThrow(/must be followed/);
  });
});

describe('sacct -o and its times', () => {
  it('prints fixed-width columns with a dashed line, cuts with +, and -p / -P with bars', () => {
    const ended = job({ state: JobState.JOB_STATE_FAILED, jobStatus: 'failed', exitCode: 3, endTime: '2026-01-02T03:05:10.000Z', usage: undefined });
    const columns = parseSacctFormat('JobID,jobname%5,State,ExitCode,Elapsed');
    expect(renderSacct(columns, [ended], { nowMs: NOW })).toBe(
      'JobID        JobNa      State ExitCode    Elapsed\n' + '------------ ----- ---------- -------- ----------\n' + '12           simu+     FAILED      3:0   00:01:05\n',
    );
    expect(renderSacct(columns, [ended], { nowMs: NOW, parsable: 'trailing', noHeader: true })).toBe('12|simulation|FAILED|3:0|00:01:05|\n');
    expect(renderSacct(columns, [ended], { nowMs: NOW, parsable: 'between' })).toBe('JobID|JobName|State|ExitCode|Elapsed\n12|simulation|FAILED|3:0|00:01:05\n');
    expect(() => parseSacctFormat('JobID,Bogus')).toThrow(/unknown sacct field "Bogus"/);
    expect(formatSacctDuration(90_061)).toBe('1-01:01:01');
  });

  it('reads sacct times in the local zone, relative ones from now', () => {
    const now = new Date(2026, 2, 10, 14, 30, 15).getTime();
    expect(parseSacctTime('now', now)).toBe(now);
    expect(parseSacctTime('now-2hours', now)).toBe(now - 7_200_000);
    expect(parseSacctTime('now-1day', now)).toBe(now - 86_400_000);
    expect(parseSacctTime('now-90', now)).toBe(now - 90_000);
    expect(parseSacctTime('now+1week', now)).toBe(now + 604_800_000);
    expect(parseSacctTime('midnight', now)).toBe(new Date(2026, 2, 10).getTime());
    expect(parseSacctTime('today', now)).toBe(new Date(2026, 2, 10).getTime());
    expect(parseSacctTime('tomorrow', now)).toBe(new Date(2026, 2, 11).getTime());
    expect(parseSacctTime('2026-03-01', now)).toBe(new Date(2026, 2, 1).getTime());
    expect(parseSacctTime('2026-03-01T08:30', now)).toBe(new Date(2026, 2, 1, 8, 30).getTime());
    expect(parseSacctTime('2026-03-01T08:30:05', now)).toBe(new Date(2026, 2, 1, 8, 30, 5).getTime());
    expect(parseSacctTime('03/01', now)).toBe(new Date(2026, 2, 1).getTime());
    expect(parseSacctTime('03/01/25', now)).toBe(new Date(2025, 2, 1).getTime());
    expect(parseSacctTime('0301', now)).toBe(new Date(2026, 2, 1).getTime());
    expect(parseSacctTime('08:00', now)).toBe(new Date(2026, 2, 10, 8).getTime());
    expect(parseSacctTime('2026-03-01T08:30:00Z', now)).toBe(Date.parse('2026-03-01T08:30:00Z'));
    expect(() => parseSacctTime('2026-02-30', now)).toThrow(/no such date/);
    expect(() => parseSacctTime('now-3fortnights', now)).toThrow(/unknown unit/);
    expect(() => parseSacctTime('yesterdayish', now)).toThrow(/use YYYY-MM-DD/);
  });
});

describe('-t state lists and comma lists', () => {
  it('takes names, codes, comma lists and all', () => {
    expect(parseStateOption('PD,r')).toEqual([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING]);
    expect(parseStateOption('CD', [JobState.JOB_STATE_FAILED])).toEqual([JobState.JOB_STATE_FAILED, JobState.JOB_STATE_COMPLETED]);
    expect(parseStateOption('all')).toBe('all');
    expect(parseStateOption('PD', 'all')).toBe('all');
    expect(() => parseStateOption('CG')).toThrow(/unknown job state "CG"/);
    expect(commaList('alice,,bob', ['carol'])).toEqual(['carol', 'alice', 'bob']);
  });
});

describe('submit: sbatch-named flags in Slurm units', () => {
  const base = { submitType: 1, name: 'x' };
  it('reads -t in minutes and keeps --time-limit in seconds', () => {
    expect(buildSubmitRequest({ ...base, time: 30 * 60 }, ['true']).timeLimit).toBe(1800);
    expect(buildSubmitRequest({ ...base, timeLimit: 30 }, ['true']).timeLimit).toBe(30);
    const req = buildSubmitRequest({ ...base, mem: 2048, cpusPerTask: 4, partition: 'debug' }, ['true']);
    expect(req).toMatchObject({ memLimit: 2048, coreLimit: 4, schedulerQueueName: 'debug' });
    expect(() => buildSubmitRequest({ ...base, time: 60, timeLimit: 60 }, ['true'])).toThrow(UsageError);
    expect(() => buildSubmitRequest({ ...base, partition: 'a', queue: 'b' }, ['true'])).toThrow(/give -p\/--partition or --queue, not both/);
  });
});

describe('sinfo -N', () => {
  it('shows the node once per queue with the queue state or the node usage', () => {
    const queue = (fields: Partial<Queue>) => ({ ...Queue.fromPartial({}), backend: 'local', state: 'open', ...fields });
    const res = ListQueuesResponse.fromPartial({
      nodeCores: 4,
      freeCores: 2,
      queues: [queue({ schedulerQueueName: 'normal', isDefault: true }), queue({ schedulerQueueName: 'debug', state: 'draining' })],
    });
    expect(renderNodes(res, 'node1')).toBe('NODELIST  NODES  PARTITION  STATE\nnode1         1  normal*    mix\nnode1         1  debug      drain\n');
  });
});
