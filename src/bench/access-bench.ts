/**
 * What access control costs: durable submits/s with identity and policy on, from an ordinary user
 * on the unix socket (kernel identity, run_user defaulted to the caller, policy checks) and from a
 * mutual-TLS principal allowed to submit as that user; and the per-connection cost of reading the
 * peer's credentials from the kernel. The rate limit is lifted in the bench's configuration.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerCredentialsOf } from '../access/peer-credentials.js';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { cancelPending, withBusyCore } from './daemon-bench.js';
import type { SubmitLoadFigures, SubmitLoadSpec } from './submit-load.js';

const SUBMIT_LOAD = join(dirname(fileURLToPath(import.meta.url)), 'submit-load.js');

export interface AccessFigures {
  unix: { clients: number; figures: SubmitLoadFigures }[];
  mtls: { clients: number; figures: SubmitLoadFigures }[];
  peerCredentialsUs: number;
}

export async function accessThroughput(runUser: string, clientCounts: readonly number[], submits: (clients: number) => number): Promise<AccessFigures> {
  const pkiDir = mkdtempSync(join(tmpdir(), 'hpcq-bench-pki-'));
  const pki = makePki(pkiDir);
  const access = {
    rate_limit: '{ submits_per_second: 0 }',
    max_connections_per_uid: '1024',
    max_streams_per_principal: '100000',
    principals: `[{ name: bench-portal, run_users: [${runUser}] }]`,
  };
  const config = `${benchConfig({ cores: 1, access })}
tls:
  cert_file: ${pki.serverCert}
  key_file: ${pki.serverKey}
  client_ca_file: ${pki.ca}
`;
  const daemon = await BenchDaemon.start(config, undefined, ['127.0.0.1:0']);
  const tcp = daemon.addresses.find((a) => !a.startsWith('unix:'))!;
  try {
    return await withBusyCore(daemon, runUser, async () => {
      const unix: AccessFigures['unix'] = [];
      const mtls: AccessFigures['mtls'] = [];
      for (const clients of clientCounts) {
        const request = { name: `bench-${clients}`, cmdLine: 'true' };
        unix.push({ clients, figures: await load(runUser, { address: daemon.address, clients, total: submits(clients), request }) });
        const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
        mtls.push({ clients, figures: await load(undefined, { address: tcp, clients, total: submits(clients), request: { ...request, runUser }, tls }) });
        await cancelPending(daemon);
      }
      return { unix, mtls, peerCredentialsUs: await peerCredentialsCost(pkiDir, 200, 50) };
    });
  } finally {
    await daemon.close();
    rmSync(pkiDir, { recursive: true, force: true });
  }
}

/** Runs the load generator, as `user` when given (setpriv keeps its groups), else as ourselves. */
function load(user: string | undefined, spec: SubmitLoadSpec): Promise<SubmitLoadFigures> {
  const node = [process.execPath, SUBMIT_LOAD, JSON.stringify(spec)];
  const [cmd, ...args] = user === undefined ? node : ['setpriv', '--reuid', user, '--regid', user, '--init-groups', '--', ...node];
  return new Promise((resolve, reject) =>
    execFile(cmd!, args, { maxBuffer: 1 << 20, cwd: '/' }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as SubmitLoadFigures))),
  );
}

/** Mean cost of one SO_PEERCRED read on accepted unix-socket connections, microseconds. */
async function peerCredentialsCost(dir: string, connections: number, readsEach: number): Promise<number> {
  const path = join(dir, 'peercred.sock');
  const accepted: Socket[] = [];
  const server = createServer((s) => accepted.push(s));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const clients = await Promise.all(Array.from({ length: connections }, () => new Promise<Socket>((resolve) => { const c = connect(path, () => resolve(c)); })));
  while (accepted.length < connections) await new Promise((r) => setTimeout(r, 5));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < readsEach; i++) for (const s of accepted) peerCredentialsOf(s);
  const us = Number(process.hrtime.bigint() - t0) / 1000 / (connections * readsEach);
  for (const c of [...clients, ...accepted]) c.destroy();
  server.close();
  return us;
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate with CN bench-portal (openssl). */
function makePki(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (name: string) => ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name));
  key('ca.key');
  ssl('req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=hpcq bench CA', '-days', '2', '-out', f('ca.pem'));
  for (const [name, cn, ext] of [
    ['server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'],
    ['client', 'bench-portal', 'extendedKeyUsage=clientAuth\n'],
  ] as const) {
    key(`${name}.key`);
    ssl('req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}
