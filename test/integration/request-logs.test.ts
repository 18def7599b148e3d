// The daemon's log: one JSON line per request and per state change, and its level changed while it runs.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { hpcqAs } from '../support/as-user.js';
import type { DaemonHandle } from '../support/daemon-harness.js';
import { cancelJob, CLI_MAIN, rejection, startDaemon, submit, waitForEnd } from '../support/daemon-harness.js';
import { waitForOutput } from '../support/durability.js';
import { canRunJobs, cleanUpJobTests } from '../support/job-tests.js';
import { JOB_USER } from '../support/privileged.js';

cleanUpJobTests();

type LogLine = Record<string, unknown> & { level: number; time: string; msg: string };
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const quiet = { stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' };

/** The daemon's pino lines so far (its ready line and anything not JSON left out). */
function logLines(d: DaemonHandle): LogLine[] {
  return d
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{"level":'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Waits for the one line matching `fields` and returns it (fails if there are several). */
async function lineWith(d: DaemonHandle, fields: Record<string, unknown>): Promise<LogLine> {
  const matches = () => logLines(d).filter((l) => Object.entries(fields).every(([k, v]) => l[k] === v));
  for (let i = 0; i < 100 && matches().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  const found = matches();
  expect(found, `log lines with ${JSON.stringify(fields)}`).toHaveLength(1);
  expect(found[0]!.time).toMatch(ISO_TIME);
  return found[0]!;
}

/** `hpcq log-level [level]` as root (an admin) against the daemon. */
function logLevelCli(d: DaemonHandle, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_MAIN, 'log-level', ...args], { env: { PATH: process.env.PATH, HPCQ_ADDR: d.address } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

const dispatchLines = (d: DaemonHandle) => logLines(d).filter((l) => l.msg === 'dispatch pass');

describe('request and state change log lines', () => {
  it('an accepted submit, a refused submit and a cancel: one line each, with principal, method, job id and reason', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const held = await submit(d, { name: 'held', runUser: JOB_USER, cmdLine: 'true', hold: true, ...quiet });
    expect(await lineWith(d, { msg: 'request accepted', method: 'SubmitJob', jobId: held.jobId })).toMatchObject({
      level: 30,
      service: 'hpcqd',
      principal: 'uid:0',
      user: 'root',
      runUser: JOB_USER,
      result: 'ok',
    });

    const refused = await rejection(submit(d, { name: 'nobody', runUser: 'hpcq-no-such-user', cmdLine: 'true' }));
    expect(refused.reason).toBe('InvalidParameter.RunUserNotFound');
    expect(await lineWith(d, { msg: 'request refused', method: 'SubmitJob' })).toMatchObject({
      principal: 'uid:0',
      result: 'refused',
      reason: 'InvalidParameter.RunUserNotFound',
      runUser: 'hpcq-no-such-user',
    });

    await cancelJob(d, held.jobId);
    expect(await lineWith(d, { msg: 'request accepted', method: 'CancelJob' })).toMatchObject({ principal: 'uid:0', jobId: held.jobId, result: 'ok' });
    expect(await lineWith(d, { msg: 'job state changed', jobId: Number(held.jobId), state: 'CANCELLED' })).toMatchObject({
      queue: 'hpcq-normal',
      runUser: JOB_USER,
      from: 'PENDING',
      reason: expect.stringMatching(/^Cancelled by uid:0/),
      exitCode: 0,
    });
  });

  it('state changes name the queue, the run user and how the job ended; a launch failure is a warning', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const bad = await submit(d, { name: 'bad', runUser: JOB_USER, hpcqueueId: 'hpcq-debug', cmdLine: 'exit 3', ...quiet });
    await waitForEnd(d, bad.jobId);
    expect(await lineWith(d, { msg: 'job state changed', jobId: Number(bad.jobId), state: 'RUNNING' })).toMatchObject({ queue: 'hpcq-debug', runUser: JOB_USER, from: 'PENDING' });
    expect(await lineWith(d, { msg: 'job state changed', jobId: Number(bad.jobId), state: 'FAILED' })).toMatchObject({
      queue: 'hpcq-debug',
      runUser: JOB_USER,
      from: 'RUNNING',
      exitCode: 3,
    });

    const unlaunchable = await submit(d, { name: 'nowhere', runUser: JOB_USER, cmdLine: 'true', stdoutRedirectPath: `/tmp/hpcq-no-such-dir-${process.pid}/out`, stderrRedirectPath: '/dev/null' });
    await waitForEnd(d, unlaunchable.jobId);
    expect(await lineWith(d, { msg: 'job launch failed', jobId: Number(unlaunchable.jobId) })).toMatchObject({
      level: 40,
      queue: 'hpcq-normal',
      runUser: JOB_USER,
      state: 'FAILED',
      reason: expect.stringMatching(/^LaunchFailed: /),
    });
  });
});

describe('changing the log level while the daemon runs', () => {
  it('hpcq log-level debug adds dispatch lines; SIGUSR2 toggles back to the configured level and to debug again', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const run = async (name: string) => waitForEnd(d, (await submit(d, { name, runUser: JOB_USER, cmdLine: 'true', ...quiet })).jobId);
    await run('at-info');
    expect(dispatchLines(d)).toEqual([]);

    expect(await logLevelCli(d)).toEqual({ code: 0, stdout: 'log level: info\n', stderr: '' });
    expect(await logLevelCli(d, 'debug')).toEqual({ code: 0, stdout: 'log level: debug (was info)\n', stderr: '' });
    await run('at-debug');
    const atDebug = dispatchLines(d);
    expect(atDebug.length).toBeGreaterThan(0);
    expect(atDebug[0]).toMatchObject({ level: 20, started: expect.any(Number), passMs: expect.any(Number) });
    expect(atDebug[0]!.time).toMatch(ISO_TIME);

    d.proc.kill('SIGUSR2');
    await waitForOutput(d, /"logLevel":"info","previous":"debug"/);
    await run('back-at-info');
    expect(dispatchLines(d)).toHaveLength(atDebug.length);

    d.proc.kill('SIGUSR2');
    await waitForOutput(d, /"logLevel":"debug","previous":"info"/);
    await run('debug-again');
    expect(dispatchLines(d).length).toBeGreaterThan(atDebug.length);
  });

  it('only admins may change it, and only to a pino level', async () => {
    if (!canRunJobs()) return;
    const d = await startDaemon();
    const denied = await hpcqAs(JOB_USER, d.address, ['log-level', 'debug']);
    expect(denied.code).toBe(2);
    expect(denied.stderr).toContain('OperationDenied.AdminRequired');
    const invalid = await logLevelCli(d, 'loud');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('InvalidParameterValue.LogLevel');
    expect(await lineWith(d, { msg: 'request refused', method: 'SetLogLevel', principal: 'uid:0' })).toMatchObject({ reason: 'InvalidParameterValue.LogLevel' });
  });
});
