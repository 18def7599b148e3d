/** AuditLog: JSON lines in a private file, and the rate limit on refusals. */
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, type AuditEntry, type AuditLogOptions } from '../../src/access/audit-log.js';

const T0 = Date.UTC(2025, 0, 31, 12, 0, 0, 0);

let dir: string;
let path: string;
let clock: number;
let log: AuditLog | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hpcq-audit-test-'));
  path = join(dir, 'audit.log');
  clock = T0;
});

afterEach(async () => {
  await log?.close();
  log = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function open(opts: AuditLogOptions = {}): AuditLog {
  log = AuditLog.open(path, { now: () => clock, ...opts });
  return log;
}

async function linesAfterClose(): Promise<Record<string, unknown>[]> {
  await log?.close();
  const text = readFileSync(path, 'utf8');
  expect(text === '' || text.endsWith('\n')).toBe(true);
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function refusal(principal: string, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    principal,
    peer: '10.0.0.7:40000',
    method: 'SubmitJob',
    result: 'refused',
    reason: 'OperationDenied.RunUserNotAllowed',
    status: 'PERMISSION_DENIED',
    ...overrides,
  };
}

describe('AuditLog', () => {
  it('writes one JSON line per entry, fields in order, absent or empty optional fields left out', async () => {
    const audit = open();
    audit.record({ principal: 'uid:1001', peer: '1001:4242', method: 'SubmitJob', result: 'ok', jobId: '17', runUser: 'alice' });
    clock += 1;
    audit.record({ principal: '', peer: '10.0.0.7:40000', method: 'connect', result: 'refused', reason: 'Unauthenticated.NoIdentity', status: 'UNAUTHENTICATED', jobId: '' });

    await audit.close();
    expect(readFileSync(path, 'utf8')).toBe(
      '{"time":"2025-01-31T12:00:00.000Z","principal":"uid:1001","peer":"1001:4242","method":"SubmitJob","result":"ok","jobId":"17","runUser":"alice"}\n' +
        '{"time":"2025-01-31T12:00:00.001Z","principal":"","peer":"10.0.0.7:40000","method":"connect","result":"refused","reason":"Unauthenticated.NoIdentity","status":"UNAUTHENTICATED"}\n',
    );
  });

  it('writes a line within its flush interval while open, and many lines whole and in order', async () => {
    const audit = open();
    audit.record({ principal: 'uid:1001', peer: '1001:1', method: 'SubmitJob', result: 'ok', jobId: '1' });
    // Not a full batch: the timer writes it (FLUSH_INTERVAL_MS, 200 ms), the file still open.
    await vi.waitFor(() => expect(readFileSync(path, 'utf8')).toContain('"jobId":"1"'), { timeout: 5000 });
    // Several batches' worth (8 KiB each): every line once, whole, in order.
    for (let i = 2; i <= 500; i++) audit.record({ principal: 'uid:1001', peer: '1001:1', method: 'SubmitJob', result: 'ok', jobId: String(i) });
    const lines = await linesAfterClose();
    expect(lines.map((l) => l.jobId)).toEqual(Array.from({ length: 500 }, (_, i) => String(i + 1)));
  });

  it('creates the file with mode 0600 and appends to an existing one', async () => {
    open().record(refusal('uid:1', { result: 'ok' }));
    await log?.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    open().record(refusal('uid:2', { result: 'ok' }));
    expect((await linesAfterClose()).map((l) => l.principal)).toEqual(['uid:1', 'uid:2']);
  });

  it.each(['644', '640', '620', '604', '602'])('refuses an existing file with mode %s', (mode) => {
    writeFileSync(path, '');
    chmodSync(path, parseInt(mode, 8));
    expect(() => AuditLog.open(path)).toThrow(/group or others.*chmod 600/);
  });

  it('refuses a symlink (O_NOFOLLOW), even to a good file', () => {
    const target = join(dir, 'real.log');
    writeFileSync(target, '', { mode: 0o600 });
    symlinkSync(target, path);
    expect(() => AuditLog.open(path)).toThrow(/symlink/);
    expect(() => AuditLog.open(path)).toThrow(expect.objectContaining({ cause: expect.objectContaining({ code: 'ELOOP' }) }));
  });

  it('refuses a path that is not a regular file', () => {
    expect(() => AuditLog.open(dir)).toThrow(/cannot open the audit log/); // EISDIR on a directory
    expect(() => AuditLog.open('/dev/null')).toThrow(/not a regular file/);
  });

  it.runIf(process.geteuid?.() === 0)('refuses a file owned by another user', () => {
    writeFileSync(path, '', { mode: 0o600 });
    chownSync(path, 65534, 65534);
    expect(() => AuditLog.open(path)).toThrow(/owned by uid 65534/);
  });

  it('writes at most the burst of a refusal flood, then reports the dropped ones', async () => {
    const audit = open({ refusalsPerSecond: 5, refusalBurst: 20 });
    for (let i = 0; i < 1000; i++) audit.record(refusal('uid:666'));
    clock += 200; // one token back at 5/s
    audit.record(refusal('uid:666', { method: 'CancelJob' }));
    audit.record(refusal('uid:666')); // over the limit again: counted
    clock += 200;
    audit.record(refusal('uid:666', { result: 'error', reason: 'Internal.Bug', status: 'INTERNAL' }));

    const lines = await linesAfterClose();
    expect(lines).toHaveLength(22);
    expect(lines.slice(0, 20).every((l) => l.suppressed === undefined)).toBe(true);
    expect(lines[20]).toMatchObject({ method: 'CancelJob', suppressed: 980, time: '2025-01-31T12:00:00.200Z' });
    expect(lines[21]).toMatchObject({ result: 'error', suppressed: 1 });
  });

  it('never drops ok entries, even from a principal whose refusals are limited', async () => {
    const audit = open({ refusalsPerSecond: 1, refusalBurst: 2 });
    for (let i = 0; i < 50; i++) audit.record(refusal('uid:7'));
    for (let i = 0; i < 500; i++) audit.record({ principal: 'uid:7', peer: '7:1', method: 'GetJob', result: 'ok', jobId: String(i) });
    const lines = await linesAfterClose();
    expect(lines.filter((l) => l.result === 'ok').map((l) => l.jobId)).toEqual(Array.from({ length: 500 }, (_, i) => String(i)));
    expect(lines.filter((l) => l.result === 'refused')).toHaveLength(2);
  });

  it('limits each principal separately: A flooding does not suppress B', async () => {
    const audit = open({ refusalsPerSecond: 1, refusalBurst: 3 });
    for (let i = 0; i < 100; i++) audit.record(refusal('uid:A'));
    for (let i = 0; i < 3; i++) audit.record(refusal('uid:B'));
    const lines = await linesAfterClose();
    expect(lines.filter((l) => l.principal === 'uid:A')).toHaveLength(3);
    expect(lines.filter((l) => l.principal === 'uid:B')).toHaveLength(3);
    expect(lines.some((l) => l.suppressed !== undefined)).toBe(false);
  });

  it('limits unauthenticated refusals per peer host, whatever the port', async () => {
    const audit = open({ refusalsPerSecond: 1, refusalBurst: 2 });
    for (let port = 40000; port < 40100; port++) audit.record(refusal('', { method: 'connect', peer: `10.0.0.7:${port}` }));
    audit.record(refusal('', { method: 'connect', peer: '10.0.0.8:50000' }));
    const lines = await linesAfterClose();
    expect(lines.map((l) => l.peer)).toEqual(['10.0.0.7:40000', '10.0.0.7:40001', '10.0.0.8:50000']);
  });

  it('cuts strings longer than 256 characters and escapes control characters', async () => {
    const audit = open();
    const long = 'j'.repeat(10_000);
    audit.record({ principal: `spiffe://${'p'.repeat(300)}`, peer: '1:2', method: 'SubmitJob', result: 'ok', jobId: long, runUser: 'x\n\u001b[2J\u009b' });
    audit.record({ principal: 'uid:1', peer: '1:2', method: 'SubmitJob', result: 'ok', jobId: 'j'.repeat(256) });
    const lines = await linesAfterClose();
    expect(lines[0]?.jobId).toBe(`${'j'.repeat(256)}…`);
    expect((lines[0]?.principal as string).length).toBe(257);
    expect(lines[0]?.runUser).toBe('x\n\u001b[2J\u009b');
    expect(lines[1]?.jobId).toBe('j'.repeat(256));
    const text = readFileSync(path, 'utf8');
    expect(text.split('\n')).toHaveLength(3); // the newline inside a value stays escaped
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  it('closes idempotently and ignores entries after close', async () => {
    const audit = open();
    audit.record(refusal('uid:1', { result: 'ok' }));
    const first = audit.close();
    expect(audit.close()).toBe(first);
    await first;
    audit.record(refusal('uid:2', { result: 'ok' }));
    expect(readFileSync(path, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  });
});
