import { describe, expect, it } from 'vitest';
import type { JobUsage } from '../../src/core/job.js';
import { decideOutcome, type RunObservation } from '../../src/core/outcome.js';

const END = 1_767_225_600_000;
const SIGKILL = 9;
const SIGTERM = 15;
const SIGXCPU = 24;

/** CPU time of `seconds`, all user time. */
const cpu = (seconds: number): JobUsage => ({ userCpuUsec: seconds * 1e6, systemCpuUsec: 0, peakMemoryBytes: 1 << 20, wallTimeMs: 1000 });

function observed(fields: Partial<RunObservation>): RunObservation {
  return { timedOut: false, cancelled: false, oomKills: 0, endTimeMs: END, ...fields };
}

describe('decideOutcome', () => {
  it.each([
    ['exit 0', { exitCode: 0 }, 'COMPLETED', '', ''],
    ['exit 3', { exitCode: 3 }, 'FAILED', 'NonZeroExitCode: main process exited with 3', ''],
    ['killed by a signal', { signal: SIGTERM }, 'FAILED', 'Signal: main process killed by signal 15', ''],
    ['launch failure', { launchError: 'no such file' }, 'FAILED', 'LaunchFailed: no such file', ''],
    ['cancelled', { cancelled: true, signal: SIGTERM }, 'CANCELLED', 'Cancelled', ''],
    ['cancelled, naming who', { cancelled: true, cancelledBy: 'alice', signal: SIGTERM }, 'CANCELLED', 'Cancelled by alice', ''],
    ['OOM kill', { oomKills: 2, signal: SIGKILL }, 'OUT_OF_MEMORY', 'OutOfMemory: 2 process(es) killed by the memory limit', 'memory'],
    ['wall time', { timedOut: true, signal: SIGTERM }, 'TIMEOUT', 'TimeLimit: wall time reached time_limit', 'time'],
    ['RLIMIT_CPU soft limit', { cpuTimeLimitSeconds: 10, signal: SIGXCPU, usage: cpu(10) }, 'TIMEOUT', 'TimeLimit: CPU time reached cores x time_limit (RLIMIT_CPU)', 'cpu_time'],
    ['RLIMIT_CPU hard limit, usage within the 10% slack', { cpuTimeLimitSeconds: 10, signal: SIGKILL, usage: cpu(9) }, 'TIMEOUT', 'TimeLimit: CPU time reached cores x time_limit (RLIMIT_CPU)', 'cpu_time'],
  ] as const)('%s -> %s', (_title, fields, state, reason, limitHit) => {
    expect(decideOutcome(observed(fields))).toMatchObject({ state, reason, limitHit, endTimeMs: END });
  });

  it('an OOM kill of a child wins over a main process that exited 0 (never reported as success)', () => {
    expect(decideOutcome(observed({ exitCode: 0, oomKills: 1 })).state).toBe('OUT_OF_MEMORY');
  });

  it('precedence: launch failure > cancel > memory > wall time > CPU time > exit status', () => {
    const all = { launchError: 'x', cancelled: true, oomKills: 1, timedOut: true, cpuTimeLimitSeconds: 1, signal: SIGXCPU, usage: cpu(5) };
    expect(decideOutcome(observed(all)).state).toBe('FAILED');
    expect(decideOutcome(observed({ ...all, launchError: undefined })).state).toBe('CANCELLED');
    expect(decideOutcome(observed({ ...all, launchError: undefined, cancelled: false })).state).toBe('OUT_OF_MEMORY');
    expect(decideOutcome(observed({ ...all, launchError: undefined, cancelled: false, oomKills: 0 })).limitHit).toBe('time');
    expect(decideOutcome(observed({ ...all, launchError: undefined, cancelled: false, oomKills: 0, timedOut: false })).limitHit).toBe('cpu_time');
  });

  it('a SIGKILL far below the CPU allowance, or without an RLIMIT_CPU, is a plain FAILED', () => {
    expect(decideOutcome(observed({ cpuTimeLimitSeconds: 100, signal: SIGKILL, usage: cpu(1) }))).toMatchObject({ state: 'FAILED', limitHit: '' });
    expect(decideOutcome(observed({ signal: SIGXCPU, usage: cpu(100) }))).toMatchObject({ state: 'FAILED', limitHit: '' });
    expect(decideOutcome(observed({ cpuTimeLimitSeconds: 10, signal: SIGXCPU }))).toMatchObject({ state: 'FAILED', limitHit: '' });
  });

  it('carries exit code, signal and usage through; missing ones are 0 / absent', () => {
    const usage = cpu(2);
    expect(decideOutcome(observed({ exitCode: 3, usage }))).toEqual({
      state: 'FAILED',
      reason: 'NonZeroExitCode: main process exited with 3',
      exitCode: 3,
      termSignal: 0,
      limitHit: '',
      usage,
      endTimeMs: END,
    });
    const launch = decideOutcome(observed({ launchError: 'x' }));
    expect(launch).toMatchObject({ exitCode: 0, termSignal: 0 });
    expect('usage' in launch).toBe(false);
  });
});
