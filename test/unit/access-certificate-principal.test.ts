/**
 * principalNameOfCertificate on the PeerCertificate objects a real mutual-TLS handshake yields
 * (a TLS server on loopback, client certificates from a throw-away CA), plus the escaped and
 * malformed renderings that such certificates rarely produce but a careful parser must handle.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type PeerCertificate, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { principalNameOfCertificate } from '../../src/access/certificate-principal.js';
import { makeTestPki, type TestPki } from '../support/tls-fixtures.js';

describe('principalNameOfCertificate', () => {
  let dir: string;
  let pki: TestPki;
  let server: Server;
  let port: number;
  /** Server sides of the connections that passed verification. */
  const accepted: TLSSocket[] = [];
  const clients: TLSSocket[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hpcq-mtls-'));
    pki = makeTestPki(dir);
    server = createServer({
      key: readFileSync(pki.serverKey),
      cert: readFileSync(pki.serverCert),
      ca: readFileSync(pki.caCert),
      requestCert: true,
      rejectUnauthorized: true,
    });
    server.on('secureConnection', (socket: TLSSocket) => accepted.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const socket of [...clients, ...accepted]) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  function connectWith(client: { cert: string; key: string }): TLSSocket {
    const socket = connect({ host: '127.0.0.1', port, ca: readFileSync(pki.caCert), cert: readFileSync(client.cert), key: readFileSync(client.key) });
    clients.push(socket);
    return socket;
  }

  /** The certificate the server saw from a client presenting `client`. */
  async function peerCertificateOf(client: { cert: string; key: string }): Promise<PeerCertificate> {
    const secured = once(server, 'secureConnection') as Promise<[TLSSocket]>;
    connectWith(client);
    const [serverSide] = await secured;
    expect(serverSide.authorized).toBe(true);
    return serverSide.getPeerCertificate();
  }

  it('takes the subject CN of a certificate without subject alternative names', async () => {
    const cert = await peerCertificateOf(pki.clientCert('portal-cn'));
    expect(cert.subjectaltname).toBeUndefined();
    expect(principalNameOfCertificate(cert)).toBe('portal-cn');
  });

  it('takes a DNS subject alternative name over the CN', async () => {
    const cert = await peerCertificateOf(pki.clientCert('not-this-cn', { san: 'DNS:portal.example' }));
    expect(principalNameOfCertificate(cert)).toBe('portal.example');
  });

  it('takes a URI subject alternative name over DNS ones, wherever it is listed', async () => {
    const cert = await peerCertificateOf(
      pki.clientCert('not-this-cn', { san: 'DNS:portal.example, IP:10.1.2.3, URI:spiffe://hpcq.example/portal, URI:spiffe://hpcq.example/other' }),
    );
    expect(principalNameOfCertificate(cert)).toBe('spiffe://hpcq.example/portal');
  });

  it('falls back to the CN when the subject alternative names hold no URI or DNS name', async () => {
    const cert = await peerCertificateOf(pki.clientCert('portal-ip', { san: 'IP:10.1.2.3, email:ops@example.org' }));
    expect(principalNameOfCertificate(cert)).toBe('portal-ip');
  });

  it('never sees a client certificate signed by a CA the server does not trust: the server drops it', async () => {
    const acceptedBefore = accepted.length;
    const refused = once(server, 'tlsClientError') as Promise<[Error, TLSSocket]>;
    const socket = connectWith(pki.clientCert('intruder', { signedBy: 'foreign', san: 'URI:spiffe://hpcq.example/portal' }));
    const clientErrors: Error[] = [];
    socket.on('error', (err) => clientErrors.push(err));
    const closed = once(socket, 'close');

    // Node verifies the client certificate after the handshake and then destroys the socket: the
    // server reports a hang-up with the verification error on the socket. With TLS 1.3 the client
    // has already finished its side, so it sees the connection closed, with no error or an ECONNRESET.
    const [, serverSide] = await refused;
    expect(serverSide.authorized).toBe(false);
    expect(String(serverSide.authorizationError)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    await closed;
    expect(clientErrors.map((err) => (err as NodeJS.ErrnoException).code).filter((code) => code !== 'ECONNRESET')).toEqual([]);
    expect(accepted.length).toBe(acceptedBefore);
  });

  // Node's own renderings, as getPeerCertificate() gives them for certificates holding such names.
  describe('parsing Node’s subjectaltname rendering', () => {
    const certificate = (subjectaltname: string | undefined, CN?: string | string[]) =>
      ({ subjectaltname, subject: CN === undefined ? {} : { CN } }) as unknown as PeerCertificate;

    it('decodes a URI that Node wrote JSON-escaped because it holds a comma or quote', () => {
      expect(principalNameOfCertificate(certificate('URI:"spiffe://a\\u002cb/q\\\\x", DNS:ex.example'))).toBe('spiffe://a,b/q\\x');
      expect(principalNameOfCertificate(certificate('DirName:"O=org\\u002cCN=x\\\\\\u002c y", DNS:ex.example'))).toBe('ex.example');
    });

    it('does not split inside an escaped value', () => {
      // One DNS name holding ", URI:spiffe://evil": read as a second entry, it would win as a URI.
      expect(principalNameOfCertificate(certificate('DNS:"a\\u002c URI:spiffe://evil"'))).toBe('a, URI:spiffe://evil');
    });

    it('refuses names with control characters, non-ASCII bytes in IA5 names, or over 256 characters', () => {
      expect(principalNameOfCertificate(certificate('URI:"spiffe://a\\u0001b"'))).toBeUndefined();
      expect(principalNameOfCertificate(certificate('DNS:"caf\\u00c3\\u00a9.example"'))).toBeUndefined();
      expect(principalNameOfCertificate(certificate(`URI:spiffe://${'a'.repeat(250)}`))).toBeUndefined();
      expect(principalNameOfCertificate(certificate(`URI:spiffe://${'a'.repeat(247)}`))).toHaveLength(256);
      expect(principalNameOfCertificate(certificate(undefined, 'evil\u202egpj.exe'))).toBeUndefined();
      expect(principalNameOfCertificate(certificate(undefined, 'ünïcode-cn'))).toBe('ünïcode-cn');
    });

    it('does not fall back to another name when the chosen one is refused', () => {
      expect(principalNameOfCertificate(certificate('URI:"spiffe://a\\u0001b", DNS:ok.example', 'ok-cn'))).toBeUndefined();
    });

    it('gives undefined for malformed renderings, several CNs, or no certificate', () => {
      expect(principalNameOfCertificate(certificate('URI:"unterminated', 'cn'))).toBeUndefined();
      expect(principalNameOfCertificate(certificate('DNS:a.example,DNS:b.example', 'cn'))).toBeUndefined();
      expect(principalNameOfCertificate(certificate('no colon here', 'cn'))).toBeUndefined();
      expect(principalNameOfCertificate(certificate(undefined, ['first', 'second']))).toBeUndefined();
      expect(principalNameOfCertificate(certificate(undefined, ''))).toBeUndefined();
      expect(principalNameOfCertificate({} as PeerCertificate)).toBeUndefined();
    });
  });
});
