import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { currentBootId, parseProcStat, processIsAlive, processStartTicks } from '../../src/exec/process-identity.js';
import { exitFilePath, parseExitRecord, parseRunFileName, parseSupervisorRecord, supervisorFilePath } from '../../src/exec/run-files.js';
import { buildSupervisorArgs, parseHandshake, supervisorPath, type SupervisorSpec } from '../../src/exec/supervisor-process.js';

const minimal: SupervisorSpec = {
  jobId: 42,
  runDir: '/var/lib/hpcq/run',
  user: 'alice',
  uid: 1001,
  gid: 1002,
  cwd: '/home/alice',
  stdoutPath: '/home/alice/job.out',
  stderrPath: '/home/alice/job.err',
  env: { PATH: '/usr/bin:/bin', HOME: '/home/alice' },
  program: '/bin/sh',
  args: ['-c', 'echo hi'],
};

const MINIMAL_ARGS = [
  '--job-id', '42',
  '--run-dir', '/var/lib/hpcq/run',
  '--user', 'alice',
  '--uid', '1001',
  '--gid', '1002',
  '--cwd', '/home/alice',
  '--stdout', '/home/alice/job.out',
  '--stderr', '/home/alice/job.err',
];

describe('buildSupervisorArgs', () => {
  it('builds the minimal command line with the program after --', () => {
    expect(buildSupervisorArgs(minimal)).toEqual([
      ...MINIMAL_ARGS,
      '--env', 'PATH=/usr/bin:/bin',
      '--env', 'HOME=/home/alice',
      '--', '/bin/sh', '-c', 'echo hi',
    ]);
  });

  it('adds every optional setting in a fixed order', () => {
    const args = buildSupervisorArgs({
      ...minimal,
      umask: 0o22,
      timeLimitSeconds: 3600,
      killGraceSeconds: 30,
      cgroupProcs: ['/sys/fs/cgroup/memory/hpcq/42/cgroup.procs', '/sys/fs/cgroup/freezer/hpcq/42/cgroup.procs'],
      kill: { kind: 'cgroup1-freezer', dir: '/sys/fs/cgroup/freezer/hpcq/42' },
      rlimits: { CORE: 0, NOFILE: 1024, AS: 'unlimited' },
      env: { A: 'x=y z' },
      args: ['--', '-x'],
    });
    expect(args).toEqual([
      ...MINIMAL_ARGS,
      '--umask', '0022',
      '--time-limit', '3600',
      '--kill-grace', '30',
      '--cgroup-procs', '/sys/fs/cgroup/memory/hpcq/42/cgroup.procs',
      '--cgroup-procs', '/sys/fs/cgroup/freezer/hpcq/42/cgroup.procs',
      '--kill-cgroup1-freezer', '/sys/fs/cgroup/freezer/hpcq/42',
      '--rlimit', 'AS=unlimited',
      '--rlimit', 'NOFILE=1024',
      '--rlimit', 'CORE=0',
      '--env', 'A=x=y z',
      '--', '/bin/sh', '--', '-x',
    ]);
  });

  it('uses --kill-cgroup2 for a cgroup v2 job and omits a zero time limit', () => {
    const args = buildSupervisorArgs({ ...minimal, timeLimitSeconds: 0, kill: { kind: 'cgroup2', dir: '/sys/fs/cgroup/hpcq/42' } });
    expect(args).not.toContain('--time-limit');
    expect(args.slice(MINIMAL_ARGS.length, MINIMAL_ARGS.length + 2)).toEqual(['--kill-cgroup2', '/sys/fs/cgroup/hpcq/42']);
  });

  it('formats the umask as four octal digits', () => {
    expect(buildSupervisorArgs({ ...minimal, umask: 0o077 })).toContain('0077');
    expect(buildSupervisorArgs({ ...minimal, umask: 0 })).toContain('0000');
  });

  it.each<[string, Partial<SupervisorSpec>]>([
    ['uid 0', { uid: 0 }],
    ['a negative gid', { gid: -1 }],
    ['a fractional job id', { jobId: 1.5 }],
    ['a relative stdout path', { stdoutPath: 'job.out' }],
    ['a relative working directory', { cwd: 'home' }],
    ['a relative program', { program: 'sh' }],
    ['an empty user', { user: '' }],
    ['a user with a slash', { user: '../root' }],
    ['an env key with =', { env: { 'A=B': 'c' } }],
    ['an empty env key', { env: { '': 'c' } }],
    ['NUL in an env value', { env: { A: 'x\0y' } }],
    ['NUL in an argument', { args: ['a\0b'] }],
    ['a negative time limit', { timeLimitSeconds: -1 }],
    ['a fractional grace period', { killGraceSeconds: 0.5 }],
    ['a umask above 0777', { umask: 0o1000 }],
    ['a negative rlimit', { rlimits: { NOFILE: -1 } }],
    ['a relative cgroup file', { cgroupProcs: ['cgroup.procs'] }],
    ['a relative kill directory', { kill: { kind: 'cgroup2', dir: 'hpcq/1' } }],
  ])('rejects %s', (_what, patch) => {
    expect(() => buildSupervisorArgs({ ...minimal, ...patch })).toThrow(RangeError);
  });
});

describe('parseExitRecord', () => {
  const exited = [
    'status=exited',
    'exit_code=3',
    'signal=0',
    'timed_out=0',
    'cancelled=0',
    'job_pid=1234',
    'start_ms=1700000000000',
    'end_ms=1700000001500',
    'utime_us=1200',
    'stime_us=340',
    'maxrss_kb=2048',
    '',
  ].join('\n');

  it('parses a normal exit', () => {
    expect(parseExitRecord(exited)).toEqual({
      status: 'exited',
      exitCode: 3,
      signal: 0,
      timedOut: false,
      cancelled: false,
      jobPid: 1234,
      startMs: 1700000000000,
      endMs: 1700000001500,
      utimeUs: 1200,
      stimeUs: 340,
      maxrssKb: 2048,
      // An older supervisor's record: no accounting, nothing removed.
      accounting: new Map(),
      cgroupsRemoved: false,
    });
  });

  it('decodes the accounting the supervisor read (escaped paths and contents) and cgroups_removed', () => {
    const text = exited.concat(
      'cgroups_removed=1\n',
      'account:/sys/fs/cgroup/hpcq/job%3D7/memory.events=low%200%0Ahigh%200%0Aoom_kill%202%0A\n',
      'account:/sys/fs/cgroup/hpcq/job_7/memory.peak=104857600%0A\n',
    );
    const record = parseExitRecord(text);
    expect(record.cgroupsRemoved).toBe(true);
    expect([...record.accounting]).toEqual([
      ['/sys/fs/cgroup/hpcq/job=7/memory.events', 'low 0\nhigh 0\noom_kill 2\n'],
      ['/sys/fs/cgroup/hpcq/job_7/memory.peak', '104857600\n'],
    ]);
    expect(() => parseExitRecord(exited.concat('account:/x=%ZZ\n'))).toThrow(/malformed/);
    expect(() => parseExitRecord(exited.concat('cgroups_removed=2\n'))).toThrow(/malformed/);
  });

  it('parses a timed-out, signalled job and ignores unknown keys', () => {
    const text = exited
      .replace('status=exited', 'status=signaled')
      .replace('signal=0', 'signal=9')
      .replace('timed_out=0', 'timed_out=1')
      .concat('future_field=whatever\n');
    expect(parseExitRecord(text)).toMatchObject({ status: 'signaled', signal: 9, timedOut: true, cancelled: false });
  });

  it('keeps the whole error of a launch failure, including = and :', () => {
    const text = exited
      .replace('status=exited', 'status=launch_failed')
      .concat('error=open stdout /home/u/a=b.out: Too many levels of symbolic links\n');
    const record = parseExitRecord(text);
    expect(record.status).toBe('launch_failed');
    expect(record.error).toBe('open stdout /home/u/a=b.out: Too many levels of symbolic links');
  });

  it.each([
    ['an empty file', ''],
    ['an unknown status', exited.replace('status=exited', 'status=done')],
    ['a missing field', exited.replace('maxrss_kb=2048\n', '')],
    ['a non-numeric field', exited.replace('exit_code=3', 'exit_code=three')],
    ['a flag that is not 0 or 1', exited.replace('cancelled=0', 'cancelled=2')],
    ['a line without =', exited + 'garbage\n'],
  ])('rejects %s', (_what, text) => {
    expect(() => parseExitRecord(text)).toThrow(/malformed supervisor exit file/);
  });
});

describe('parseSupervisorRecord', () => {
  it('parses pid, start ticks and boot id', () => {
    const text = 'supervisor_pid=77\nsupervisor_start_ticks=123456\nboot_id=f14cb0c0-94d5-4f54-8ca1-5e24dc28c83a\n';
    expect(parseSupervisorRecord(text)).toEqual({
      supervisorPid: 77,
      supervisorStartTicks: 123456,
      bootId: 'f14cb0c0-94d5-4f54-8ca1-5e24dc28c83a',
    });
  });

  it('rejects a record without a boot id', () => {
    expect(() => parseSupervisorRecord('supervisor_pid=77\nsupervisor_start_ticks=1\n')).toThrow(/boot_id/);
  });
});

describe('parseHandshake', () => {
  it('reads started and failed lines', () => {
    expect(parseHandshake('started 4242 998877')).toEqual({ ok: true, jobPid: 4242, jobStartTicks: 998877 });
    expect(parseHandshake('failed chdir /x: Permission denied')).toEqual({ ok: false, message: 'chdir /x: Permission denied' });
  });

  it('treats anything else as a failure', () => {
    expect(parseHandshake('started 12')).toMatchObject({ ok: false });
    expect(parseHandshake('')).toMatchObject({ ok: false });
  });
});

describe('process identity', () => {
  it('parses /proc/<pid>/stat after the last parenthesis of the command name', () => {
    const fields = ['S', '1', '100', '100', '0', '-1', '4194560'];
    while (fields.length < 19) fields.push('0');
    fields.push('555666'); // field 22
    fields.push('0', '0');
    const text = `123 (evil) 1 2 (x) ${fields.join(' ')}\n`;
    expect(parseProcStat(text)).toEqual({ state: 'S', ppid: 1, startTicks: 555666 });
    expect(parseProcStat('no parenthesis here')).toBeUndefined();
  });

  it('knows this process is alive only with its own start time', () => {
    const ticks = processStartTicks(process.pid);
    expect(ticks).toBeGreaterThan(0);
    expect(processIsAlive(process.pid, ticks!)).toBe(true);
    expect(processIsAlive(process.pid, ticks! + 1)).toBe(false);
    expect(processIsAlive(0, ticks!)).toBe(false);
    expect(processIsAlive(-1, ticks!)).toBe(false);
  });

  it('reads the boot id', () => {
    expect(currentBootId()).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('paths', () => {
  it('finds the supervisor under dist/libexec of the package root', () => {
    const path = supervisorPath();
    expect(path.endsWith(join('dist', 'libexec', 'hpcq-supervisor'))).toBe(true);
    const root = dirname(dirname(dirname(path)));
    expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name).toBe('hpcq');
    expect(existsSync(join(root, 'src', 'launcher', 'hpcq-supervisor.c'))).toBe(true);
  });

  it('names the run files by job id', () => {
    expect(supervisorFilePath('/run/hpcq', 9)).toBe('/run/hpcq/9.sup');
    expect(exitFilePath('/run/hpcq', 9)).toBe('/run/hpcq/9.exit');
  });

  it('tells run files, and their temporaries, from other files of the run directory', () => {
    expect(parseRunFileName('9.sup')).toEqual({ jobId: 9, kind: 'sup', temporary: false });
    expect(parseRunFileName('12.exit')).toEqual({ jobId: 12, kind: 'exit', temporary: false });
    expect(parseRunFileName('12.exit.tmp')).toEqual({ jobId: 12, kind: 'exit', temporary: true });
    for (const other of ['daemon-boot', 'daemon-boot.tmp', '9.sup.old', 'x.exit', '.exit', '9.exit~']) {
      expect(parseRunFileName(other)).toBeUndefined();
    }
  });
});
