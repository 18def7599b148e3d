/**
 * A throw-away PKI for TLS tests: a CA the daemon trusts, a server certificate for localhost, and
 * client certificates on demand, signed by that CA or by a foreign one the server must refuse.
 * Real certificates from the `openssl` CLI, because what is under test is how Node and OpenSSL
 * present and verify them, which hand-made certificate objects would not exercise.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ClientCertOptions {
  /** subjectAltName value in openssl syntax, e.g. `URI:spiffe://portal, DNS:portal.example`. */
  san?: string;
  /** The issuing CA; 'foreign' is one the server does not trust. Default 'ca'. */
  signedBy?: 'ca' | 'foreign';
  /** Validity in days; default 30. */
  days?: number;
}

export interface TestPki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  foreignCaCert: string;
  /** Creates a client certificate with CN=name; returns the paths of its certificate and key. */
  clientCert(name: string, opts?: ClientCertOptions): { cert: string; key: string };
}

// Our own minimal config, so that neither the distribution's openssl.cnf (absent on some minimal
// images, different defaults elsewhere) nor OPENSSL_CONF changes what gets generated.
const REQ_CONFIG = '[req]\ndistinguished_name = dn\n[dn]\n';

const CA_EXTENSIONS = ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash'];

function leafExtensions(usage: 'serverAuth' | 'clientAuth', san: string | undefined): string[] {
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature',
    `extendedKeyUsage = ${usage}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid:always',
    ...(san === undefined ? [] : [`subjectAltName = ${san}`]),
  ];
}

let opensslChecked = false;

/** Makes sure the `openssl` CLI can run; as root, installs Debian's package if it is missing. */
function ensureOpenssl(): void {
  if (opensslChecked) return;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (process.getuid?.() !== 0) throw new Error('TLS tests need the openssl command; install the openssl package', { cause: err });
    const install = () =>
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'openssl'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    try {
      install();
    } catch {
      // The package lists of a fresh image are often empty or stale.
      execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'] });
      install();
    }
  }
  opensslChecked = true;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `-subj` syntax treats these as structure; a backslash makes them literal. */
function subject(commonName: string): string {
  return `/CN=${commonName.replace(/[\\/=+]/g, (c) => `\\${c}`)}`;
}

function newKey(path: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
  chmodSync(path, 0o600);
}

export function makeTestPki(dir: string): TestPki {
  ensureOpenssl();
  const reqConfig = join(dir, 'req.cnf');
  writeFileSync(reqConfig, REQ_CONFIG);
  let count = 0;

  /** Key, CSR and certificate `<base>.{key,csr,pem}`; self-signed when no issuer is given. */
  const issue = (base: string, commonName: string, extensions: string[], days: number, issuer?: { cert: string; key: string }) => {
    const key = join(dir, `${base}.key`);
    const csr = join(dir, `${base}.csr`);
    const cert = join(dir, `${base}.pem`);
    const extFile = join(dir, `${base}.ext`);
    newKey(key);
    openssl(['req', '-new', '-config', reqConfig, '-key', key, '-subj', subject(commonName), '-out', csr]);
    writeFileSync(extFile, `[ext]\n${extensions.join('\n')}\n`);
    const signer = issuer === undefined ? ['-signkey', key] : ['-CA', issuer.cert, '-CAkey', issuer.key];
    // X.509 wants serials unique per CA; random ones need no serial file to keep.
    const serial = `0x${randomBytes(16).toString('hex')}`;
    openssl(['x509', '-req', '-in', csr, ...signer, '-set_serial', serial, '-days', String(days), '-extfile', extFile, '-extensions', 'ext', '-out', cert]);
    return { cert, key };
  };

  const ca = issue('ca', 'hpcq test CA', CA_EXTENSIONS, 3650);
  const foreignCa = issue('foreign-ca', 'hpcq foreign test CA', CA_EXTENSIONS, 3650);
  const server = issue('server', 'localhost', leafExtensions('serverAuth', 'DNS:localhost, IP:127.0.0.1, IP:::1'), 365, ca);

  return {
    caCert: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    foreignCaCert: foreignCa.cert,
    clientCert(name, opts = {}) {
      const days = opts.days ?? 30;
      if (!Number.isInteger(days) || days < 1) throw new Error(`clientCert: days must be a positive whole number, not ${days}`);
      const issuer = opts.signedBy === 'foreign' ? foreignCa : ca;
      // The name goes into a file name only as a readable hint; the counter keeps files apart.
      const base = `client-${++count}-${name.replace(/[^a-z0-9_.-]/gi, '_').slice(0, 40)}`;
      return issue(base, name, leafExtensions('clientAuth', opts.san), days, issuer);
    },
  };
}
