// Remote access through hpcqd's TLS listener (ACCESS A1 A2 A3 A7 A11): TCP only with TLS, mutual
// TLS with certificate principals and their run_users, and bearer tokens: minted, verified,
// forged, expired, revoked by rotating the key.
import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type CallOptions, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AccessServiceClient, type CreateTokenResponse, type WhoAmIResponse } from '../../src/gen/hpcq/v1/access_service.js';
import { JobServiceClient, type SubmitJobRequest, type SubmitJobResponse } from '../../src/gen/hpcq/v1/job_service.js';
import { emptySubmit, getJob, listJobs, rejection, startDaemon, stopAll, TEST_CONFIG, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import { hpcqAs } from '../support/as-user.js';
import { ensureTestUsers, isRoot, JOB_USER, need, OTHER_USER, uidOf } from '../support/privileged.js';
import { makeTestPki, type TestPki } from '../support/tls-fixtures.js';
import { auditLine, auditLines } from '../support/audit-log.js';

const privileged = () => need(isRoot && ensureTestUsers(), 'root and the test users, to run jobs and the CLI as them');

let pkiDir: string;
let pki: TestPki;
/** Client certificates: CN=portal by the trusted CA, CN=portal by a foreign CA, a SPIFFE SAN, an unlisted CN. */
let portal: { cert: string; key: string };
let foreignPortal: { cert: string; key: string };
let spiffePortal: { cert: string; key: string };
let stranger: { cert: string; key: string };

beforeAll(() => {
  if (!isRoot) return;
  pkiDir = mkdtempSync(join(tmpdir(), 'hpcq-pki-'));
  chmodSync(pkiDir, 0o755);
  pki = makeTestPki(pkiDir);
  portal = pki.clientCert('portal');
  foreignPortal = pki.clientCert('portal', { signedBy: 'foreign' });
  spiffePortal = pki.clientCert('portal-frontend', { san: 'URI:spiffe://test/portal' });
  stranger = pki.clientCert('stranger');
});
afterAll(() => {
  if (pkiDir) rmSync(pkiDir, { recursive: true, force: true });
});
afterEach(stopAll);

/** TEST_CONFIG plus a tls section (mutual when `mutual`) and `access` YAML lines. */
function tlsConfig(opts: { mutual?: boolean; access?: string } = {}): string {
  const tls = [`  cert_file: "${pki.serverCert}"`, `  key_file: "${pki.serverKey}"`, ...(opts.mutual ? [`  client_ca_file: "${pki.caCert}"`] : [])];
  return `${TEST_CONFIG}\ntls:\n${tls.join('\n')}\n${opts.access ? `access:\n${opts.access}\n` : ''}`;
}

async function startTlsDaemon(opts: { mutual?: boolean; access?: string } = {}): Promise<{ d: DaemonHandle; tcp: string }> {
  const d = await startDaemon({ config: tlsConfig(opts), extraListen: ['127.0.0.1:0'] });
  const tcp = d.addresses.find((a) => !a.startsWith('unix:'));
  if (!tcp) throw new Error(`no TCP address among ${d.addresses.join(', ')}`);
  return { d, tcp };
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/** A gRPC client of both services over one set of channel credentials; `md` goes with every call. */
class Remote {
  readonly jobs: InstanceType<typeof JobServiceClient>;
  readonly access: InstanceType<typeof AccessServiceClient>;
  constructor(address: string, creds: ChannelCredentials, private readonly md: Record<string, string> = {}) {
    this.jobs = new JobServiceClient(address, creds);
    this.access = new AccessServiceClient(address, creds);
  }
  private rpc<Req, Res>(client: object, fn: Unary<Req, Res>, req: Req): Promise<Res> {
    const md = new Metadata();
    for (const [k, v] of Object.entries(this.md)) md.set(k, v);
    return new Promise((resolve, reject) => fn.call(client, req, md, { deadline: Date.now() + 15_000 }, (err, res) => (err ? reject(err) : resolve(res))));
  }
  submit(req: Partial<SubmitJobRequest>): Promise<SubmitJobResponse> {
    return this.rpc<SubmitJobRequest, SubmitJobResponse>(this.jobs, this.jobs.submitJob, { ...emptySubmit, ...req });
  }
  whoAmI(): Promise<WhoAmIResponse> {
    return this.rpc<object, WhoAmIResponse>(this.access, this.access.whoAmI, {});
  }
  createToken(user = '', lifespanSeconds = 600): Promise<CreateTokenResponse> {
    return this.rpc<{ user: string; lifespanSeconds: number }, CreateTokenResponse>(this.access, this.access.createToken, { user, lifespanSeconds });
  }
  close(): void {
    this.jobs.close();
    this.access.close();
  }
}

const remotes: Remote[] = [];
afterEach(() => {
  for (const r of remotes.splice(0)) r.close();
});

/** TLS client trusting the test CA; with a client certificate when `cert` is given. */
function tlsClient(tcp: string, cert?: { cert: string; key: string }, md: Record<string, string> = {}): Remote {
  const creds = credentials.createSsl(readFileSync(pki.caCert), cert ? readFileSync(cert.key) : null, cert ? readFileSync(cert.cert) : null);
  const r = new Remote(tcp, creds, md);
  remotes.push(r);
  return r;
}

const bearer = (token: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${token}`, ...extra });

/** A job that succeeds only if it runs as JOB_USER. */
const asJobUser = (extra: Partial<SubmitJobRequest> = {}): Partial<SubmitJobRequest> => ({
  name: 'remote',
  cmdLine: `test "$(id -un)" = ${JOB_USER}`,
  stdoutRedirectPath: '/dev/null',
  stderrRedirectPath: '/dev/null',
  ...extra,
});

const stateOf = (d: DaemonHandle) => join(d.stateDir, 'state');



/** Everything audited before now: writes a refused CancelJob as root and waits for its line. */
let markers = 0;
async function auditSoFar(d: DaemonHandle): Promise<Record<string, unknown>[]> {
  const jobId = `marker-${++markers}`;
  await rejection(new Promise((res, rej) => d.jobs.cancelJob({ jobId }, (err, r) => (err ? rej(err) : res(r)))));
  await auditLine(d, (l) => l.method === 'CancelJob' && l.jobId === jobId);
  return auditLines(d);
}

/** Signs a token the way token-authority mints them, with `key`, overriding claims/times as given. */
async function signToken(key: Parameters<SignJWT['sign']>[0], opts: { user: string; uid: number; iat: number; exp: number }): Promise<string> {
  return new SignJWT({ uid: opts.uid, issued_by: 'uid:0' })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .setSubject(opts.user)
    .setIssuer('hpcq')
    .setAudience('hpcq')
    .setIssuedAt(opts.iat)
    .setNotBefore(opts.iat)
    .setExpirationTime(opts.exp)
    .setJti(randomUUID())
    .sign(key);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

describe('TCP needs TLS (A11)', () => {
  it('a TCP listen address without tls refuses to start, naming tls.cert_file', async () => {
    if (!privileged()) return;
    const started = startDaemon({ config: TEST_CONFIG, extraListen: ['127.0.0.1:0'] });
    await expect(started).rejects.toThrow(/tls\.cert_file/);
  });

  it('a plaintext client on the TLS listener gets UNAVAILABLE and runs no handler', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon();
    const plain = new Remote(tcp, credentials.createInsecure());
    remotes.push(plain);
    const r = await rejection(plain.submit(asJobUser({ runUser: JOB_USER })));
    expect(r.code).toBe(status.UNAVAILABLE);
    expect((await auditSoFar(d)).filter((l) => l.method === 'SubmitJob')).toEqual([]);
    expect((await listJobs(d)).jobs).toEqual([]);
  });
});

const handshakeRefused = (l: Record<string, unknown>) => l.method === 'connect' && l.result === 'refused' && l.reason === 'Unauthenticated.TlsHandshake';

describe('mutual TLS (A1 A2 A3)', () => {
  const POLICY = `  principals:\n    - name: portal\n      run_users: [${JOB_USER}]\n    - name: "spiffe://test/portal"\n      run_users: [${JOB_USER}]`;

  it('A1/A2: no client certificate, or one signed by a foreign CA, is refused at the handshake and stores nothing', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon({ mutual: true, access: POLICY });
    const none = await rejection(tlsClient(tcp).submit(asJobUser({ runUser: JOB_USER })));
    expect(none.code).toBe(status.UNAVAILABLE);
    const foreign = await rejection(tlsClient(tcp, foreignPortal).submit(asJobUser({ runUser: JOB_USER })));
    expect(foreign.code).toBe(status.UNAVAILABLE);
    // A refused-connection line per attempt (the foreign one included).
    await auditLine(d, (l) => handshakeRefused(l) && auditLines(d).filter(handshakeRefused).length >= 2);
    const lines = await auditSoFar(d);
    expect(lines.filter((l) => l.method === 'SubmitJob')).toEqual([]);
    expect((await listJobs(d)).jobs).toEqual([]);
  });

  it('A2: the audit line of a certificate refused at the handshake names the client\'s address', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon({ mutual: true, access: POLICY });
    expect((await rejection(tlsClient(tcp, foreignPortal).whoAmI())).code).toBe(status.UNAVAILABLE);
    const line = await auditLine(d, handshakeRefused);
    expect(line).toMatchObject({ principal: '', result: 'refused' });
    expect(line.peer).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('A3: principal portal (CN or SPIFFE SAN) submits as its run_users only; a run_user is required', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon({ mutual: true, access: POLICY });
    for (const [cert, name] of [
      [portal, 'portal'],
      [spiffePortal, 'spiffe://test/portal'],
    ] as const) {
      const client = tlsClient(tcp, cert);
      const me = await client.whoAmI();
      expect(me).toMatchObject({ principal: name, authenticatedBy: 'certificate', user: '', admin: false, runUsers: [JOB_USER] });

      const ok = await client.submit(asJobUser({ runUser: JOB_USER }));
      const job = await waitForEnd(d, ok.jobId);
      expect(job.runUser).toBe(JOB_USER);
      expect(job.jobStatus).toBe('completed'); // `id -un` inside was hpcq-job

      const before = (await listJobs(d)).jobs.length;
      expect(await rejection(client.submit(asJobUser({ runUser: OTHER_USER })))).toMatchObject({
        code: status.PERMISSION_DENIED,
        reason: 'OperationDenied.RunUserNotAllowed',
        field: 'run_user',
      });
      expect(await rejection(client.submit(asJobUser({ runUser: '' })))).toMatchObject({
        code: status.INVALID_ARGUMENT,
        reason: 'MissingParameter.RunUser',
      });
      expect((await listJobs(d)).jobs.length).toBe(before);
    }
    const denied = await auditLine(d, (l) => l.method === 'SubmitJob' && l.result === 'refused' && l.runUser === OTHER_USER);
    expect(denied).toMatchObject({ principal: 'portal', reason: 'OperationDenied.RunUserNotAllowed' });
  });

  it('A3: a certificate principal that is not listed cannot submit as anyone', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon({ mutual: true, access: POLICY });
    const client = tlsClient(tcp, stranger);
    expect((await client.whoAmI()).principal).toBe('stranger');
    for (const runUser of [JOB_USER, OTHER_USER]) {
      expect(await rejection(client.submit(asJobUser({ runUser })))).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'OperationDenied.RunUserNotAllowed' });
    }
    expect((await rejection(client.submit(asJobUser({ runUser: '' })))).reason).toBe('MissingParameter.RunUser');
    expect((await listJobs(d)).jobs).toEqual([]);
  });
});

describe('tokens (A7)', () => {
  /** `hpcq token create` as `user` over the unix socket; returns the token. */
  async function tokenVia(user: string, d: DaemonHandle, args: string[] = []): Promise<string> {
    const run = await hpcqAs(user, d.address, ['token', 'create', '--lifespan', '10m', ...args]);
    expect(run.code, run.stderr).toBe(0);
    const token = run.stdout.trim();
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    return token;
  }

  it('a token from `hpcq token create` acts as its user over TLS, in-process and through the CLI', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon();
    const token = await tokenVia(JOB_USER, d);
    const client = tlsClient(tcp, undefined, bearer(token));
    expect(await client.whoAmI()).toMatchObject({ principal: `uid:${uidOf(JOB_USER)}`, authenticatedBy: 'token', user: JOB_USER, uid: uidOf(JOB_USER), admin: false });

    const res = await client.submit(asJobUser());
    const job = await waitForEnd(d, res.jobId);
    expect(job).toMatchObject({ runUser: JOB_USER, jobStatus: 'completed' });

    // The CLI as root, but with the token on TCP: it is hpcq-job that submits.
    const tlsEnv = { HPCQ_TOKEN: token };
    const who = await hpcqAs('root', tcp, ['whoami', '--json', '--tls-ca', pki.caCert], tlsEnv);
    expect(who.code, who.stderr).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ principal: `uid:${uidOf(JOB_USER)}`, authenticated_by: 'token' });
    const sub = await hpcqAs('root', tcp, ['submit', '--tls-ca', pki.caCert, '--name', 'cli-token', '--stdout', '/dev/null', '--stderr', '/dev/null', '--', `test "$(id -un)" = ${JOB_USER}`], tlsEnv);
    expect(sub.code, sub.stderr).toBe(0);
    const cliJob = await waitForEnd(d, (JSON.parse(sub.stdout) as { job_id: string }).job_id);
    expect(cliJob).toMatchObject({ runUser: JOB_USER, jobStatus: 'completed' });
  });

  it('no token, an expired one, a forged, unsigned or tampered one: UNAUTHENTICATED; metadata cannot change the user', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon();
    const token = await tokenVia(JOB_USER, d);
    const unauthenticated = async (md: Record<string, string>) => rejection(tlsClient(tcp, undefined, md).submit(asJobUser({ runUser: JOB_USER })));

    expect(await unauthenticated({})).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'Unauthenticated.CredentialRequired' });

    const now = Math.floor(Date.now() / 1000);
    const daemonKey = createPrivateKey(readFileSync(join(stateOf(d), 'token-signing-key.pem')));
    // Control: the same construction, not expired, is accepted (so the refusals below are about what differs).
    const fresh = await signToken(daemonKey, { user: JOB_USER, uid: uidOf(JOB_USER), iat: now, exp: now + 600 });
    expect((await tlsClient(tcp, undefined, bearer(fresh)).whoAmI()).principal).toBe(`uid:${uidOf(JOB_USER)}`);

    const expired = await signToken(daemonKey, { user: JOB_USER, uid: uidOf(JOB_USER), iat: now - 7200, exp: now - 3600 });
    expect(await unauthenticated(bearer(expired))).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'Unauthenticated.TokenExpired' });

    const otherKey = generateKeyPairSync('ed25519').privateKey;
    const forged = await signToken(otherKey, { user: JOB_USER, uid: uidOf(JOB_USER), iat: now, exp: now + 600 });
    expect(await unauthenticated(bearer(forged))).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'Unauthenticated.TokenInvalid' });

    const [, payload] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`;
    expect(await unauthenticated(bearer(unsigned))).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'Unauthenticated.TokenInvalid' });
    const [header, , signature] = token.split('.');
    const tampered = `${header}.${b64({ ...claims, sub: OTHER_USER, uid: uidOf(OTHER_USER) })}.${signature}`;
    expect(await unauthenticated(bearer(tampered))).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'Unauthenticated.TokenInvalid' });
    expect(await unauthenticated({ authorization: token })).toMatchObject({ code: status.UNAUTHENTICATED });
    expect((await listJobs(d)).jobs).toEqual([]);

    // x-user (or any other header) does not change who the token is.
    const spoof = tlsClient(tcp, undefined, bearer(token, { 'x-user': OTHER_USER, 'x-uid': String(uidOf(OTHER_USER)) }));
    expect((await spoof.whoAmI()).principal).toBe(`uid:${uidOf(JOB_USER)}`);
    const job = await getJob(d, (await spoof.submit(asJobUser())).jobId);
    expect(job.runUser).toBe(JOB_USER);
    expect(await rejection(spoof.submit(asJobUser({ runUser: OTHER_USER })))).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'OperationDenied.RunUserNotAllowed' });
  });

  it('only an admin mints tokens for others; a token cannot mint tokens; rotating the key revokes them', async () => {
    if (!privileged()) return;
    const { d, tcp } = await startTlsDaemon();
    const denied = await hpcqAs(OTHER_USER, d.address, ['token', 'create', '--user', JOB_USER, '--json']);
    expect(denied.code).toBe(2);
    expect(JSON.parse(denied.stderr)).toMatchObject({ status: 'PERMISSION_DENIED', reason: 'OperationDenied.AdminRequired' });
    expect(denied.stdout).toBe('');

    const token = await tokenVia('root', d, ['--user', JOB_USER]);
    const client = tlsClient(tcp, undefined, bearer(token));
    expect((await client.whoAmI()).principal).toBe(`uid:${uidOf(JOB_USER)}`);
    expect(await rejection(client.createToken())).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'OperationDenied.TokenFromToken' });
    expect(await rejection(client.createToken(JOB_USER, 60))).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'OperationDenied.TokenFromToken' });

    const keyPath = join(stateOf(d), 'token-signing-key.pem');
    const oldKey = readFileSync(keyPath, 'utf8');
    rmSync(keyPath);
    const reload = await hpcqAs('root', d.address, ['reconfigure']);
    expect(reload.code, reload.stderr).toBe(0);
    expect(readFileSync(keyPath, 'utf8')).not.toBe(oldKey);
    // A new connection, so that nothing cached on the old one could matter.
    expect(await rejection(tlsClient(tcp, undefined, bearer(token)).whoAmI())).toMatchObject({ code: status.UNAUTHENTICATED, reason: 'Unauthenticated.TokenInvalid' });
    expect(await rejection(client.whoAmI())).toMatchObject({ code: status.UNAUTHENTICATED });
    // Tokens minted after the rotation work.
    const fresh = await tokenVia(JOB_USER, d);
    expect((await tlsClient(tcp, undefined, bearer(fresh)).whoAmI()).authenticatedBy).toBe('token');
  });
});
