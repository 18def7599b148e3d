// Caller limits and hostile input against a real hpcqd (RELIABILITY I1 I5 I10 I11 I13 I14):
// per-principal request rate, connections per uid, concurrent calls per connection, the first-call
// deadline (slowloris), oversized and malformed requests, quoting of huge values, and
// unauthenticated floods vs the audit log.
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { Client, credentials, Metadata, status, type CallOptions, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONCURRENT_STREAMS } from '../../src/api/grpc-server.js';
import { retryDelayMsOf } from '../../src/api/grpc-status.js';
import { AccessServiceClient, type CreateTokenResponse } from '../../src/gen/hpcq/v1/access_service.js';
import {
  JobServiceClient,
  SubmitJobRequest,
  SubmitJobResponse,
  type ListJobsRequest,
  type ListJobsResponse,
} from '../../src/gen/hpcq/v1/job_service.js';
import { call, emptySubmit, getJob, listJobs, reasonOf, rejection, startDaemon, stopAll, submit, TEST_CONFIG, type DaemonHandle } from '../support/daemon-harness.js';
import { runAs } from '../support/as-user.js';
import { ensureTestUsers, isRoot, JOB_USER, need, OTHER_USER, uidOf } from '../support/privileged.js';
import { makeTestPki, type TestPki } from '../support/tls-fixtures.js';
import { auditLine, auditLines } from '../support/audit-log.js';

const privileged = () => need(isRoot && ensureTestUsers(), 'root and the test users, to run jobs and programs as them');

let tmp: string;
let pki: TestPki;
beforeAll(() => {
  if (!isRoot) return;
  tmp = mkdtempSync(join(tmpdir(), 'hpcq-limits-'));
  chmodSync(tmp, 0o755);
  pki = makeTestPki(tmp);
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await stopAll();
});

/** A daemon with server-only TLS on 127.0.0.1 and `access` YAML lines. */
async function startTlsDaemon(access = ''): Promise<{ d: DaemonHandle; tcp: string }> {
  const config = `${TEST_CONFIG}\ntls:\n  cert_file: "${pki.serverCert}"\n  key_file: "${pki.serverKey}"\n${access ? `access:\n${access}\n` : ''}`;
  const d = await startDaemon({ config, extraListen: ['127.0.0.1:0'] });
  return { d, tcp: d.addresses.find((a) => !a.startsWith('unix:'))! };
}

const tlsCreds = (): ChannelCredentials => credentials.createSsl(readFileSync(pki.caCert));

function jobsClient(address: string, creds = credentials.createInsecure()): InstanceType<typeof JobServiceClient> {
  const c = new JobServiceClient(address, creds);
  clients.push(c);
  return c;
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;
function rpc<Req, Res>(client: object, fn: Unary<Req, Res>, req: Req, md: Record<string, string> = {}): Promise<Res> {
  const meta = new Metadata();
  for (const [k, v] of Object.entries(md)) meta.set(k, v);
  return new Promise((resolve, reject) => fn.call(client, req, meta, { deadline: Date.now() + 15_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

const LIST_ALL: ListJobsRequest = { clusterId: '', queue: '', states: [], runUser: '', pageSize: 0, pageToken: '', includeInstances: false };
const quickJob: Partial<SubmitJobRequest> = { name: 'quick', cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' };

/** A token for `user`, minted by root over the unix socket. */
async function tokenFor(d: DaemonHandle, user: string): Promise<string> {
  const access = new AccessServiceClient(d.address, credentials.createInsecure());
  clients.push(access);
  const res = await rpc<{ user: string; lifespanSeconds: number }, CreateTokenResponse>(access, access.createToken, { user, lifespanSeconds: 600 });
  return res.token;
}



/** Everything audited so far: writes a refused CancelJob as root and waits for its line. */
let markers = 0;
async function auditSoFar(d: DaemonHandle): Promise<Record<string, unknown>[]> {
  const jobId = `marker-${++markers}`;
  await rejection(call(d.jobs.cancelJob, d.jobs, { jobId }));
  await auditLine(d, (l) => l.method === 'CancelJob' && l.jobId === jobId);
  return auditLines(d);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the ms until the server closes `socket` (or rejects after `timeoutMs`). */
function closedWithin(what: string, socket: Socket, timeoutMs: number): Promise<number> {
  const start = Date.now();
  socket.on('error', () => {});
  // Read (and drop) what the server sends: a paused socket would never see the server's FIN.
  socket.resume();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not closed within ${timeoutMs} ms`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

describe('request rate per principal (I10)', () => {
  it('past its burst a principal gets RequestLimitExceeded with RetryInfo; others and admins are unaffected', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon('  rate_limit:\n    submits_per_second: 5\n    burst: 5');
    const [jobToken, otherToken] = [await tokenFor(d, JOB_USER), await tokenFor(d, OTHER_USER)];
    const asJob = { authorization: `Bearer ${jobToken}` };
    const asOther = { authorization: `Bearer ${otherToken}` };
    const jobClient = jobsClient(tcp, tlsCreds());
    const otherClient = jobsClient(tcp, tlsCreds());

    const outcomes: (ServiceError | null)[] = [];
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      const p =
        i % 3 === 0
          ? rpc<SubmitJobRequest, SubmitJobResponse>(jobClient, jobClient.submitJob, { ...emptySubmit, ...quickJob }, asJob)
          : i % 3 === 1
            ? rpc<ListJobsRequest, ListJobsResponse>(jobClient, jobClient.listJobs, LIST_ALL, asJob)
            : rpc<{ jobId: string }, unknown>(jobClient, jobClient.getJob, { jobId: '999999' }, asJob);
      outcomes.push(await p.then(() => null, (err: ServiceError) => err));
    }
    const elapsedSeconds = (Date.now() - started) / 1000;
    const kinds = outcomes.map((e) =>
      e === null || e.code === status.NOT_FOUND ? 'served' : reasonOf(e).reason === 'RequestLimitExceeded' ? 'limited' : `${status[e.code]} ${reasonOf(e).reason}`,
    );
    expect(kinds.filter((k) => k !== 'served' && k !== 'limited')).toEqual([]);
    const served = kinds.filter((k) => k === 'served').length;
    // The burst, plus what the bucket regained (5/s) while the calls were made.
    expect(served).toBeGreaterThanOrEqual(5);
    expect(served).toBeLessThanOrEqual(5 + Math.ceil(5 * elapsedSeconds));
    expect(kinds.indexOf('limited')).toBeGreaterThanOrEqual(5);
    const limited = outcomes.filter((_, i) => kinds[i] === 'limited') as ServiceError[];
    expect(limited.length).toBeGreaterThan(0);
    for (const err of limited) {
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      const delay = retryDelayMsOf(err);
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThanOrEqual(1000);
    }
    await auditLine(d, (l) => l.reason === 'RequestLimitExceeded' && l.principal === `uid:${uidOf(JOB_USER)}`);

    // Another principal has its own bucket.
    for (let i = 0; i < 3; i++) await rpc<ListJobsRequest, ListJobsResponse>(otherClient, otherClient.listJobs, LIST_ALL, asOther);

    await sleep(retryDelayMsOf(limited.at(-1)!)! + 50);
    await rpc<ListJobsRequest, ListJobsResponse>(jobClient, jobClient.listJobs, LIST_ALL, asJob);

    // root on the unix socket is an admin: exempt.
    for (let i = 0; i < 30; i++) await listJobs(d);
  });
});

describe('connections per uid (I11)', () => {
  it('hpcq-other\'s 4th and 5th connections are closed at once; root is unaffected; the refusal is audited', async () => {
    if (!privileged()) return;
    const d = await startDaemon({ config: `${TEST_CONFIG}\naccess:\n  max_connections_per_uid: 3\n` });
    // Opens 5 connections one after another, reports which the server closed, holds the rest a while.
    const script = join(tmp, 'open-connections.mjs');
    writeFileSync(
      script,
      `import { connect } from 'node:net';
const closed = [];
const sockets = [];
for (let i = 0; i < 5; i++) {
  const s = connect(process.argv[2]);
  sockets.push(s);
  closed.push(false);
  s.on('error', () => {});
  s.resume();
  s.on('close', () => { closed[i] = true; });
  await new Promise((res) => { s.once('connect', res); s.once('close', res); });
  await new Promise((res) => setTimeout(res, 100));
}
await new Promise((res) => setTimeout(res, 500));
console.log(JSON.stringify(closed));
await new Promise((res) => setTimeout(res, 1500));
process.exit(0);
`,
    );
    chmodSync(script, 0o644);
    const run = runAs(OTHER_USER, [process.execPath, script, d.address.slice('unix:'.length)]);
    const refused = await auditLine(d, (l) => l.method === 'connect' && l.reason === 'LimitExceeded.ConnectionsPerUid');
    expect(refused).toMatchObject({ principal: `uid:${uidOf(OTHER_USER)}`, result: 'refused' });
    // While hpcq-other holds its 3 connections, root's calls (old and new connections) work.
    expect((await listJobs(d)).jobs).toEqual([]);
    const fresh = jobsClient(d.address);
    await rpc<ListJobsRequest, ListJobsResponse>(fresh, fresh.listJobs, LIST_ALL);
    const result = await run;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([false, false, false, true, true]);
  });
});

describe('concurrent calls per connection (I11)', () => {
  it('the server advertises 128 concurrent streams; 400 calls sent at once on one connection all succeed, the rest queued by the client', async () => {
    if (!privileged()) return;
    const d = await startDaemon();
    const session = http2.connect('http://localhost', { createConnection: () => netConnect(d.address.slice('unix:'.length)) });
    session.on('error', () => {});
    const settings = await new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve));
    session.destroy();
    expect(settings.maxConcurrentStreams).toBe(MAX_CONCURRENT_STREAMS);
    expect(MAX_CONCURRENT_STREAMS).toBe(128);
    // Past the limit grpc-js holds calls until a stream ends, rather than having them refused.
    const client = jobsClient(d.address);
    const results = await Promise.allSettled(Array.from({ length: 400 }, () => rpc<ListJobsRequest, ListJobsResponse>(client, client.listJobs, LIST_ALL)));
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
  });
});

describe('first-call deadline (slowloris)', () => {
  const DEADLINE = '  first_request_timeout_seconds: 1';

  it('unix socket: an idle connection and one stuck in half a frame are closed within ~3 s; a real client keeps working', async () => {
    if (!privileged()) return;
    const d = await startDaemon({ config: `${TEST_CONFIG}\naccess:\n${DEADLINE}\n` });
    await listJobs(d);
    const path = d.address.slice('unix:'.length);
    const idle = netConnect(path);
    const halfFrame = netConnect(path, () => {
      // The HTTP/2 client preface, then 5 of the 9 bytes of a SETTINGS frame header.
      halfFrame.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0x00, 0x00, 0x06, 0x04, 0x00])]));
    });
    const closes = await Promise.all([closedWithin('idle', idle, 3000), closedWithin('half frame', halfFrame, 3000)]);
    for (const ms of closes) expect(ms).toBeGreaterThanOrEqual(500);
    // The harness client's connection made its first call long ago: it stays usable.
    expect((await listJobs(d)).jobs).toEqual([]);
  });

  it('TCP: a connection that never starts TLS, and a TLS one that makes no call, are closed within ~3 s', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon(DEADLINE);
    const [host, port] = [tcp.slice(0, tcp.lastIndexOf(':')), Number(tcp.slice(tcp.lastIndexOf(':') + 1))];
    const tlsIdle = tlsConnect({ host, port, ca: readFileSync(pki.caCert), servername: 'localhost', ALPNProtocols: ['h2'] });
    await new Promise<void>((res, rej) => tlsIdle.once('secureConnect', () => res()).once('error', rej));
    const closes = await Promise.all([closedWithin('no TLS handshake', netConnect(port, host), 3000), closedWithin('TLS, no call', tlsIdle, 3000)]);
    for (const ms of closes) expect(ms).toBeGreaterThanOrEqual(500);
    expect((await listJobs(d)).jobs).toEqual([]);
  });
});

describe('oversized and malformed requests (I1 I5 I13)', () => {
  it('I1: a 2 MiB SubmitJob is RESOURCE_EXHAUSTED and stores nothing', async () => {
    if (!privileged()) return;
    const d = await startDaemon();
    const r = await rejection(submit(d, { ...quickJob, runUser: JOB_USER, cmdLine: `echo ${'x'.repeat(2 * 1024 * 1024)}` }));
    expect(r.code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await listJobs(d)).jobs).toEqual([]);
  });

  it('I13: 100 KiB of metadata fails the call; the daemon answers the next one', async () => {
    if (!privileged()) return;
    const d = await startDaemon();
    const big = jobsClient(d.address);
    const err = await rpc<ListJobsRequest, ListJobsResponse>(big, big.listJobs, LIST_ALL, { 'x-big': 'a'.repeat(100 * 1024) }).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(err, 'the call with 100 KiB of metadata succeeded').toBeDefined();
    expect((await listJobs(d)).jobs).toEqual([]);
    const next = jobsClient(d.address);
    await rpc<ListJobsRequest, ListJobsResponse>(next, next.listJobs, LIST_ALL);
  });

  it('bytes that are not protobuf: INVALID_ARGUMENT MalformedRequest; I5: unknown fields are ignored', async () => {
    if (!privileged()) return;
    const d = await startDaemon();
    const raw = new Client(d.address, credentials.createInsecure());
    clients.push(raw);
    const send = (bytes: Buffer) =>
      new Promise<Buffer>((resolve, reject) =>
        raw.makeUnaryRequest('/hpcq.v1.JobService/SubmitJob', (b: Buffer) => b, (b: Buffer) => b, bytes, (err, res) => (err ? reject(err) : resolve(res!))),
      );
    expect(await rejection(send(Buffer.from([0xff, 0xff, 0xff])))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'InvalidParameter.MalformedRequest' });
    expect((await listJobs(d)).jobs).toEqual([]);

    const valid = SubmitJobRequest.encode({ ...emptySubmit, ...quickJob, name: 'unknown-fields', runUser: JOB_USER }).finish();
    // Field 99 varint 1, field 100 length-delimited "abc", field 101 fixed64: none exist in the schema.
    const unknown = Buffer.from([0x98, 0x06, 0x01, 0xa2, 0x06, 0x03, 0x61, 0x62, 0x63, 0xa9, 0x06, ...randomBytes(8)]);
    const res = SubmitJobResponse.decode(await send(Buffer.concat([Buffer.from(valid), unknown])));
    expect(res.jobId).not.toBe('');
    expect(await getJob(d, res.jobId)).toMatchObject({ name: 'unknown-fields', runUser: JOB_USER });
  });

  it('a 100,000-character cluster_id is NOT_FOUND with a short status message', async () => {
    if (!privileged()) return;
    const d = await startDaemon();
    const r = await rejection(submit(d, { ...quickJob, runUser: JOB_USER, clusterId: 'c'.repeat(100_000) }));
    expect(r.code).toBe(status.NOT_FOUND);
    expect(r.reason).toBe('ResourceNotFound.Cluster');
    expect(r.message.length).toBeLessThan(400);
    expect((await listJobs(d)).jobs).toEqual([]);
  });
});

describe('unauthenticated floods (I14)', () => {
  it('500 calls without a credential are all UNAUTHENTICATED; their audit lines are rate-limited; nothing is stored', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon();
    const before = (await auditSoFar(d)).length;
    const anon = jobsClient(tcp, tlsCreds());
    const codes: string[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const calls = Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0
          ? rpc<SubmitJobRequest, SubmitJobResponse>(anon, anon.submitJob, { ...emptySubmit, ...quickJob, runUser: JOB_USER })
          : rpc<ListJobsRequest, ListJobsResponse>(anon, anon.listJobs, LIST_ALL)
        ).then(
          () => 'OK',
          (e: ServiceError) => `${status[e.code]} ${reasonOf(e).reason}`,
        ),
      );
      codes.push(...(await Promise.all(calls)));
    }
    expect(codes.length).toBe(500);
    expect(codes.filter((c) => c !== 'UNAUTHENTICATED Unauthenticated.CredentialRequired')).toEqual([]);
    const lines = (await auditSoFar(d)).slice(before).filter((l) => l.method !== 'CancelJob');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThan(100);
    expect(lines.every((l) => l.result === 'refused' && l.principal === '')).toBe(true);
    expect((await listJobs(d)).jobs).toEqual([]);
  });
});
