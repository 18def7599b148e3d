import { describe, it, expect } from 'vitest';
import {
  JOB_STATES,
  JOB_UUID_PATTERN,
  TERMINAL_STATES,
  canTransition,
  copyJob,
  expandRedirectPath,
  isTerminal,
  jobStatusString,
  newPendingJob,
  transition,
  type Job,
  type JobState,
} from '../../src/core/job.js';
import { testJobSpec } from '../support/job-spec.js';

/**
 * The state machine as documented in src/core/job.ts and proto/hpcq/v1/job.proto, written out
 * independently of the implementation: PENDING -> RUNNING | CANCELLED; RUNNING -> any terminal state,
 * or back to PENDING when its retry policy gives it another attempt; PENDING -> PENDING when it is
 * held or released; RUNNING -> RUNNING when a cancel is asked for (who asked is stored).
 */
const EXPECTED_ALLOWED: ReadonlyArray<readonly [JobState, JobState]> = [
  ['PENDING', 'RUNNING'],
  ['PENDING', 'CANCELLED'],
  ['RUNNING', 'COMPLETED'],
  ['RUNNING', 'FAILED'],
  ['RUNNING', 'CANCELLED'],
  ['RUNNING', 'TIMEOUT'],
  ['RUNNING', 'OUT_OF_MEMORY'],
  ['RUNNING', 'NODE_FAIL'],
  ['RUNNING', 'PENDING'],
  ['PENDING', 'PENDING'],
  ['RUNNING', 'RUNNING'],
];
const EXPECTED_TERMINAL: readonly JobState[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL'];

const isExpectedAllowed = (from: JobState, to: JobState): boolean =>
  EXPECTED_ALLOWED.some(([f, t]) => f === from && t === to);

const ALL_PAIRS = JOB_STATES.flatMap((from) => JOB_STATES.map((to) => [from, to] as const));
const ALLOWED_PAIRS = ALL_PAIRS.filter(([from, to]) => isExpectedAllowed(from, to));
const DISALLOWED_PAIRS = ALL_PAIRS.filter(([from, to]) => !isExpectedAllowed(from, to));

function makeJob(overrides: Partial<Job> = {}): Job {
  return {
    id: 42,
    uuid: 'hpcjob-abcd1234',
    ...testJobSpec({
      name: 'render',
      clusterId: 'hpcq-local',
      zone: 'local',
      hpcqueueId: 'hpcq-normal',
      schedulerQueueName: 'normal',
      cmdLine: 'echo hi',
      memoryLimitMb: 1024,
      timeLimitSeconds: 3600,
      stdoutPathTemplate: '/home/alice/hpcq-%j.out',
      stderrPathTemplate: '/home/alice/hpcq-%j.err',
    }),
    state: 'PENDING',
    reason: 'Priority',
    exitCode: 0,
    termSignal: 0,
    submitTimeMs: 1_000,
    startTimeMs: 0,
    endTimeMs: 0,
    stdoutPath: '',
    stderrPath: '',
    enforcement: '',
    limitHit: '',
    // The PENDING event written at submit.
    eventCount: 1,
    attempt: 1,
    previousAttempts: [],
    eligibleAtMs: 0,
    heldBy: '',
    backendJobId: '',
    backendSubmitting: false,
    ...overrides,
  };
}

describe('job states', () => {
  it('uses exactly the eight Slurm states, with the six terminal ones marked terminal', () => {
    expect([...JOB_STATES].sort()).toEqual(
      ['CANCELLED', 'COMPLETED', 'FAILED', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PENDING', 'RUNNING', 'TIMEOUT'],
    );
    expect([...TERMINAL_STATES].sort()).toEqual([...EXPECTED_TERMINAL].sort());
    for (const state of JOB_STATES) {
      expect(isTerminal(state), state).toBe(EXPECTED_TERMINAL.includes(state));
    }
  });

  it('has exactly 11 allowed and 53 disallowed transitions out of 64 pairs', () => {
    expect(ALL_PAIRS).toHaveLength(64);
    expect(ALLOWED_PAIRS).toHaveLength(11);
    expect(DISALLOWED_PAIRS).toHaveLength(53);
  });

  it.each(JOB_STATES.map((s) => [s, jobStatusString(s)] as const))('job_status of %s is %s (EHPC lowercase)', (state, status) => {
    expect(status).toBe(state.toLowerCase());
    expect(status).toMatch(/^[a-z_]+$/);
  });
});

describe('canTransition / transition: allowed pairs', () => {
  it.each(ALLOWED_PAIRS)('%s -> %s is allowed and applied', (from, to) => {
    expect(canTransition(from, to)).toBe(true);
    const job = makeJob({ state: from, startTimeMs: from === 'RUNNING' ? 5_000 : 0 });
    const { job: next, event } = transition(job, to, 'because', 9_000);
    expect(next.state).toBe(to);
    expect(next.reason).toBe('because');
    expect(event).toEqual({ jobId: 42, sequence: 2, state: to, reason: 'because', timeMs: 9_000 });
  });
});

describe('canTransition / transition: disallowed pairs', () => {
  it.each(DISALLOWED_PAIRS)('%s -> %s is refused and throws', (from, to) => {
    expect(canTransition(from, to)).toBe(false);
    const job = makeJob({ state: from });
    const before = structuredClone(job);
    expect(() => transition(job, to, 'nope', 9_000)).toThrow(`illegal job state change ${from} -> ${to} for job 42`);
    // A refused change leaves the job untouched.
    expect(job).toEqual(before);
  });

  it('only a pending (held, released) or running (cancel asked for) job "transitions" to itself', () => {
    for (const state of JOB_STATES) expect(canTransition(state, state), state).toBe(state === 'PENDING' || state === 'RUNNING');
  });

  it('RUNNING -> RUNNING keeps the start time', () => {
    const { job } = transition(makeJob({ state: 'RUNNING', startTimeMs: 5_000 }), 'RUNNING', 'CancelRequested by alice', 9_000);
    expect(job.startTimeMs).toBe(5_000);
  });
});

describe('terminal states are final', () => {
  it.each(EXPECTED_TERMINAL)('%s allows no further state', (terminal) => {
    for (const to of JOB_STATES) {
      expect(canTransition(terminal, to), `${terminal} -> ${to}`).toBe(false);
      expect(() => transition(makeJob({ state: terminal }), to, 'x', 1)).toThrow(/illegal job state change/);
    }
  });

  it('PENDING cannot jump straight to an outcome other than CANCELLED', () => {
    for (const to of ['COMPLETED', 'FAILED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL'] as const) {
      expect(canTransition('PENDING', to), to).toBe(false);
    }
  });

  it('only a running job goes back to PENDING (a retry); an ended one never does', () => {
    for (const from of JOB_STATES) expect(canTransition(from, 'PENDING'), from).toBe(from === 'RUNNING' || from === 'PENDING');
  });
});

describe('transition() bookkeeping', () => {
  it('PENDING -> RUNNING sets startTimeMs only', () => {
    const { job } = transition(makeJob(), 'RUNNING', 'Launched', 2_000);
    expect(job.startTimeMs).toBe(2_000);
    expect(job.endTimeMs).toBe(0);
    expect(job.submitTimeMs).toBe(1_000);
  });

  it.each(EXPECTED_TERMINAL)('RUNNING -> %s sets endTimeMs and keeps startTimeMs', (to) => {
    const { job } = transition(makeJob({ state: 'RUNNING', startTimeMs: 2_000, eventCount: 2 }), to, 'done', 7_000);
    expect(job.startTimeMs).toBe(2_000);
    expect(job.endTimeMs).toBe(7_000);
    expect(job.eventCount).toBe(3);
  });

  it('PENDING -> CANCELLED sets endTimeMs but leaves startTimeMs 0 (the job never started)', () => {
    const { job } = transition(makeJob(), 'CANCELLED', 'CancelledByUser', 3_000);
    expect(job.startTimeMs).toBe(0);
    expect(job.endTimeMs).toBe(3_000);
  });

  it('numbers events consecutively from the stored eventCount', () => {
    const pending = makeJob({ eventCount: 1 });
    const r1 = transition(pending, 'RUNNING', 'Launched', 2_000);
    const r2 = transition(r1.job, 'COMPLETED', 'ExitCode0', 5_000);
    expect([r1.event.sequence, r2.event.sequence]).toEqual([2, 3]);
    expect([r1.job.eventCount, r2.job.eventCount]).toEqual([2, 3]);
    expect(r2.event).toEqual({ jobId: 42, sequence: 3, state: 'COMPLETED', reason: 'ExitCode0', timeMs: 5_000 });
    expect(r2.job).toMatchObject({ state: 'COMPLETED', startTimeMs: 2_000, endTimeMs: 5_000 });
  });

  it('does not mutate its input and copies every other field', () => {
    const original = makeJob({ exitCode: 0, priority: 7 });
    const snapshot = structuredClone(original);
    const { job } = transition(original, 'RUNNING', 'Launched', 2_000);
    expect(original).toEqual(snapshot);
    expect(job).not.toBe(original);
    const { state: _s, reason: _r, eventCount: _e, startTimeMs: _t, ...rest } = job;
    const { state: _s0, reason: _r0, eventCount: _e0, startTimeMs: _t0, ...rest0 } = snapshot;
    expect(rest).toEqual(rest0);
  });
});

describe('newPendingJob / copyJob', () => {
  it('makes a PENDING job from a spec with expanded output paths and its first event counted', () => {
    const spec = testJobSpec({ name: 'sim', stdoutPathTemplate: '/home/%u/%x-%j.out', resourceLimits: { nofile: 64 } });
    const job = newPendingJob(spec, { id: 7, uuid: 'hpcjob-abcdefgh', reason: 'Priority', submitTimeMs: 1_000 });
    expect(job).toEqual({
      ...spec,
      id: 7,
      uuid: 'hpcjob-abcdefgh',
      state: 'PENDING',
      reason: 'Priority',
      exitCode: 0,
      termSignal: 0,
      submitTimeMs: 1_000,
      startTimeMs: 0,
      endTimeMs: 0,
      stdoutPath: '/home/alice/sim-7.out',
      stderrPath: '/tmp/7.err',
      enforcement: '',
      limitHit: '',
      eventCount: 1,
      attempt: 1,
      previousAttempts: [],
      eligibleAtMs: 0,
      heldBy: '',
      backendJobId: '',
      backendSubmitting: false,
    });
    expect(job.resourceLimits).not.toBe(spec.resourceLimits);
  });

  it('copies every field in the same order, usage only when present, limits not shared', () => {
    const pending = newPendingJob(testJobSpec(), { id: 1, uuid: 'hpcjob-00000001', reason: '', submitTimeMs: 1 });
    const done = { ...pending, state: 'COMPLETED' as const, usage: { userCpuUsec: 1, systemCpuUsec: 2, peakMemoryBytes: 3, wallTimeMs: 4 } };
    expect(copyJob(pending)).toEqual(pending);
    expect(Object.keys(copyJob(pending))).toEqual(Object.keys(pending));
    expect(copyJob(pending)).not.toHaveProperty('usage');
    expect(copyJob(done)).toEqual(done);
    expect(Object.keys(copyJob(done))).toEqual([...Object.keys(pending), 'usage']);
    expect(copyJob(done).resourceLimits).not.toBe(done.resourceLimits);
  });
});

describe('expandRedirectPath', () => {
  const job = { id: 1234, name: 'render-frames', runUser: 'alice' };

  it.each([
    ['/home/alice/hpcq-%j.out', '/home/alice/hpcq-1234.out'],
    ['/scratch/%x.log', '/scratch/render-frames.log'],
    ['/scratch/%u/out', '/scratch/alice/out'],
    ['/scratch/100%%', '/scratch/100%'],
    ['/s/%u/%x-%j.%j', '/s/alice/render-frames-1234.1234'],
    ['/plain/path', '/plain/path'],
  ])('%s -> %s', (template, expected) => {
    expect(expandRedirectPath(template, job)).toBe(expected);
  });

  it('%% is a literal percent sign, so %%j is the text %j, not the id', () => {
    expect(expandRedirectPath('/s/%%j', job)).toBe('/s/%j');
    expect(expandRedirectPath('/s/%%%j', job)).toBe('/s/%1234');
    expect(expandRedirectPath('/s/%%%%', job)).toBe('/s/%%');
  });

  it('expands in one pass: values are not expanded again', () => {
    expect(expandRedirectPath('/s/%x', { id: 1, name: '%j', runUser: 'u' })).toBe('/s/%j');
  });
});

describe('JOB_UUID_PATTERN', () => {
  it('matches hpcjob- plus 8 lowercase base-36 characters, nothing else', () => {
    for (const uuid of ['hpcjob-abcd1234', 'hpcjob-00000000', 'hpcjob-zzzzzzzz']) expect(uuid).toMatch(JOB_UUID_PATTERN);
    for (const text of ['hpcjob-ABCD1234', 'hpcjob-abcd123', 'hpcjob-abcd12345', 'hpcjob-abcd-123', 'xhpcjob-abcd1234', 'hpcjob-abcd1234\n', '42']) {
      expect(text).not.toMatch(JOB_UUID_PATTERN);
    }
  });
});
