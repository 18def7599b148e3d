/**
 * The daemon's listeners and the identity of every connection on them. grpc-js cannot tell who is
 * on a unix socket, so hpcqd accepts connections itself and hands each one to grpc-js through a
 * connection injector, after:
 *
 * - unix sockets: reading the peer's uid, gid and pid from the kernel (SO_PEERCRED) at accept
 *   time - never from anything the client sends, never later by pid;
 * - TCP: completing TLS (mutual TLS when a client CA is configured; a client without a valid
 *   certificate never reaches grpc-js) and keeping the verified certificate;
 * - both: enforcing the connection caps (in total, per uid or per remote address) and a deadline
 *   for the first call, so idle or half-open connections cannot pile up (slowloris).
 *
 * Each accepted socket gets a unique `remoteAddress` (`hpcq-conn:<n>`), which grpc-js reports as
 * the call's peer (test/integration/grpc-connection-injector.test.ts pins that behaviour); the
 * registry maps it back to the connection's identity for the access gate.
 *
 * Lifecycle: start() binds every address (a unix socket appears only once it has its final mode:
 * it is bound in a private directory, chmod'ed, then renamed into place); stop() stops accepting
 * and removes the sockets it created. Open connections are closed by the gRPC server's shutdown.
 */
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { createServer as createTlsServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { AccessConfig } from '../config/daemon-config.js';
import type { Principal } from '../core/access-policy.js';
import { ROOT_SOCKET_DIR } from '../config/default-state-dir.js';
import type { Logger } from '../logger.js';
import type { AuditLog } from './audit-log.js';
import { principalNameOfCertificate } from './certificate-principal.js';
import { peerCredentialsOf } from './peer-credentials.js';

/** What is known of a connection when it is accepted. */
export type ConnectionIdentity =
  | { kind: 'unix'; uid: number; gid: number; pid: number; peer: string }
  | { kind: 'tls'; certificateName: string | undefined; peer: string };

interface Connection {
  identity: ConnectionIdentity;
  socket: Socket;
  firstCallTimer: NodeJS.Timeout | undefined;
  /** The principal built for this connection's account, reused by its calls until `expiresAtMs`. */
  principal?: { value: Principal; expiresAtMs: number };
}

/** Where accepted connections go: a grpc-js connection injector. */
export interface ConnectionSink {
  injectConnection(socket: Socket): void;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Client CA: when present, clients must present a certificate it signed. */
  ca: Buffer | undefined;
}

export class ConnectionRegistry {
  private readonly connections = new Map<string, Connection>();
  /** Open connections per uid (`uid:<n>`) or remote address (`addr:<ip>`), and in total. */
  private readonly perKey = new Map<string, number>();
  private open = 0;

  /** Connections open now (metrics). */
  get openConnections(): number {
    return this.open;
  }
  private readonly servers: { server: NetServer; socketPath?: string; inode?: number }[] = [];
  private nextId = 0;
  /** Addresses actually bound (a TCP port 0 resolves to the chosen port). */
  readonly boundAddresses: string[] = [];

  constructor(
    private readonly sink: ConnectionSink,
    private limits: Pick<AccessConfig, 'maxConnections' | 'maxConnectionsPerUid' | 'firstRequestTimeoutMs'>,
    private readonly audit: AuditLog,
    private readonly log: Logger,
  ) {}

  /** New limits apply to connections accepted from now on. */
  setLimits(limits: Pick<AccessConfig, 'maxConnections' | 'maxConnectionsPerUid' | 'firstRequestTimeoutMs'>): void {
    this.limits = limits;
  }

  /** The identity of the connection a call came on (its grpc-js peer), if it is one of ours. */
  identityOf(peer: string): ConnectionIdentity | undefined {
    return this.connections.get(peer)?.identity;
  }

  /** The principal remembered for a connection, unless it is older than its expiry. */
  cachedPrincipal(peer: string, nowMs: number): Principal | undefined {
    const cached = this.connections.get(peer)?.principal;
    return cached && cached.expiresAtMs > nowMs ? cached.value : undefined;
  }

  /** Remembers the principal of a connection's account, so later calls need no account lookup. */
  rememberPrincipal(peer: string, principal: Principal, expiresAtMs: number): void {
    const c = this.connections.get(peer);
    if (c) c.principal = { value: principal, expiresAtMs };
  }

  /** A call arrived on the connection: it is no longer subject to the first-call deadline. */
  markUsed(peer: string): void {
    const c = this.connections.get(peer);
    if (c?.firstCallTimer) {
      clearTimeout(c.firstCallTimer);
      c.firstCallTimer = undefined;
    }
  }

  async listenUnix(path: string): Promise<void> {
    prepareSocketDir(dirname(path));
    await refuseLiveSocket(path);
    const server = createServer((socket) => this.acceptUnix(socket));
    // Bound in a private directory, given its final mode, then renamed into place: the socket
    // never exists at `path` with other permissions than 0666.
    const privateDir = mkdtempSync(join(dirname(path), '.hpcqd-bind-'));
    const staging = join(privateDir, 's');
    try {
      await listen(server, staging);
      chmodSync(staging, 0o666);
      renameSync(staging, path);
    } catch (err) {
      server.close();
      throw err;
    } finally {
      rmdirSync(privateDir, { recursive: false } as never);
    }
    this.servers.push({ server, socketPath: path, inode: statSync(path).ino });
    this.boundAddresses.push(`unix:${path}`);
  }

  async listenTls(address: string, tls: TlsMaterial): Promise<void> {
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address)!;
    const host = m[1]!.replace(/^\[|\]$/g, '');
    const server = createTlsServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      requestCert: tls.ca !== undefined,
      rejectUnauthorized: tls.ca !== undefined,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.2',
      handshakeTimeout: this.limits.firstRequestTimeoutMs,
    });
    // Where each raw connection came from: by the time a failed handshake is reported, Node has
    // already destroyed the socket and forgotten its address.
    const peers = new WeakMap<Socket, string>();
    // Caps apply before the handshake costs anything.
    server.on('connection', (raw: Socket) => {
      const peer = `${raw.remoteAddress}:${raw.remotePort}`;
      peers.set(raw, peer);
      if (!this.admit(`addr:${raw.remoteAddress}`, peer, raw)) raw.destroy();
    });
    server.on('secureConnection', (socket: TLSSocket) => this.acceptTls(socket));
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      const raw = (socket as unknown as { _parent?: Socket })._parent;
      const peer = (raw && peers.get(raw)) ?? `${socket.remoteAddress}:${socket.remotePort}`;
      const why = (socket as unknown as { authorizationError?: Error | string }).authorizationError;
      this.audit.record({ principal: '', peer, method: 'connect', result: 'refused', reason: 'Unauthenticated.TlsHandshake', status: String(why ?? err.message).slice(0, 200) });
      // A handshake that timed out leaves the socket open on Node 20: close it, or it holds a slot.
      socket.destroy();
      raw?.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(m[2]), host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    const port = typeof bound === 'object' && bound ? bound.port : Number(m[2]);
    this.servers.push({ server });
    this.boundAddresses.push(address.replace(/:\d+$/, `:${port}`));
  }

  /** Replaces the TLS certificate and client CA of every TLS listener (new connections use them). */
  setTls(tls: TlsMaterial): void {
    for (const { server } of this.servers) {
      if ('setSecureContext' in server) {
        (server as ReturnType<typeof createTlsServer>).setSecureContext({ cert: tls.cert, key: tls.key, ca: tls.ca });
      }
    }
  }

  /**
   * Stops accepting; removes the unix sockets this registry created (if still ours). Open
   * connections are left to the gRPC server's drain (net.Server#close would wait for them).
   */
  stop(): void {
    for (const { server } of this.servers) server.close();
    for (const { socketPath, inode } of this.servers) {
      if (socketPath === undefined) continue;
      try {
        const st = lstatSync(socketPath);
        if (st.isSocket() && st.ino === inode) unlinkSync(socketPath);
      } catch {
        // Already gone.
      }
    }
    this.servers.length = 0;
  }

  private acceptUnix(socket: Socket): void {
    let creds;
    try {
      creds = peerCredentialsOf(socket);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not read the peer credentials of a connection; closed');
      socket.destroy();
      return;
    }
    const peer = `uid:${creds.uid}/pid:${creds.pid}`;
    if (!this.admit(`uid:${creds.uid}`, peer, socket)) {
      socket.destroy();
      return;
    }
    this.register(socket, { kind: 'unix', uid: creds.uid, gid: creds.gid, pid: creds.pid, peer });
  }

  private acceptTls(socket: TLSSocket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    let certificateName: string | undefined;
    if (socket.authorized) {
      const cert: PeerCertificate = socket.getPeerCertificate();
      certificateName = cert && Object.keys(cert).length > 0 ? principalNameOfCertificate(cert) : undefined;
    }
    this.register(socket, { kind: 'tls', certificateName, peer });
  }

  /** Counts the connection against the caps; false (and an audit line) when over one. */
  private admit(capKey: string, peer: string, socket: Socket): boolean {
    const count = this.perKey.get(capKey) ?? 0;
    let reason: string | undefined;
    if (this.open >= this.limits.maxConnections) reason = 'LimitExceeded.Connections';
    else if (count >= this.limits.maxConnectionsPerUid) reason = 'LimitExceeded.ConnectionsPerUid';
    if (reason) {
      this.audit.record({ principal: capKey.startsWith('uid:') ? capKey : '', peer, method: 'connect', result: 'refused', reason });
      return false;
    }
    this.perKey.set(capKey, count + 1);
    this.open += 1;
    socket.once('close', () => this.release(capKey));
    return true;
  }

  private release(capKey: string): void {
    this.open -= 1;
    const count = (this.perKey.get(capKey) ?? 1) - 1;
    if (count <= 0) this.perKey.delete(capKey);
    else this.perKey.set(capKey, count);
  }

  private register(socket: Socket, identity: ConnectionIdentity): void {
    const key = `hpcq-conn:${++this.nextId}`;
    // grpc-js reports the socket's remoteAddress (with `:remotePort` when there is a port) as the
    // call's peer: make it name this connection, and only it.
    Object.defineProperty(socket, 'remoteAddress', { value: key, configurable: true });
    Object.defineProperty(socket, 'remotePort', { value: undefined, configurable: true });
    const firstCallTimer = setTimeout(() => {
      this.log.info({ peer: identity.peer }, 'connection made no call before the deadline; closed');
      socket.destroy();
    }, this.limits.firstRequestTimeoutMs);
    firstCallTimer.unref();
    this.connections.set(key, { identity, socket, firstCallTimer });
    socket.once('close', () => {
      const c = this.connections.get(key);
      if (c?.firstCallTimer) clearTimeout(c.firstCallTimer);
      this.connections.delete(key);
    });
    this.sink.injectConnection(socket);
  }
}

/**
 * The directory of a socket: /run/hpcq is created root-owned 0755 (every user may reach the socket,
 * nobody else may put anything there); any other directory must exist already and is left as it is.
 */
function prepareSocketDir(dir: string): void {
  if (dir === ROOT_SOCKET_DIR && process.getuid?.() === 0) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new Error(`${dir} must be a directory owned by root and writable only by root (found uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`);
    }
    chmodSync(dir, 0o755);
  }
}

/** Refuses to take over a socket another process still listens on; leaves anything not a socket alone. */
async function refuseLiveSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`listen path ${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process is listening on ${path}; stop it or listen elsewhere`);
}

function listen(server: NetServer, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

