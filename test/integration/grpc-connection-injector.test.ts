/**
 * Pins the grpc-js behaviour the daemon's unix-socket authentication is built on, so that an
 * upgrade that changes it fails here rather than silently losing who a caller is: connections
 * accepted by our own net.Server and handed over with createConnectionInjector are served, and an
 * own `remoteAddress` property set on the socket before injection is what every call on that
 * connection sees as getPeer() — per connection, whatever metadata the client sends, with an empty
 * auth context (no TLS).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  makeGenericClientConstructor,
  type Client,
  type ConnectionInjector,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type sendUnaryData,
} from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;
const method = (path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const pinService: ServiceDefinition = { Who: method('/pin.Pin/Who', false), WhoStream: method('/pin.Pin/WhoStream', true) };
const PinClient = makeGenericClientConstructor(pinService, 'Pin');

// grpc-js does not export its AuthContext type.
type AuthContext = ReturnType<ServerUnaryCall<Buffer, Buffer>['getAuthContext']>;

/** What the handlers observed, in call order. */
interface Seen {
  peer: string;
  authContext: AuthContext;
  metadata: Record<string, unknown>;
}

type UntypedClient = Client & Record<string, (...args: unknown[]) => unknown>;

function who(client: UntypedClient, metadata = new Metadata()): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Who?.(Buffer.alloc(0), metadata, (err: Error | null, res?: Buffer) => (err ? reject(err) : resolve(String(res)))),
  );
}

async function whoStream(client: UntypedClient, metadata = new Metadata()): Promise<string[]> {
  const stream = client.WhoStream?.(Buffer.alloc(0), metadata) as AsyncIterable<Buffer>;
  const out: string[] = [];
  for await (const message of stream) out.push(String(message));
  return out;
}

describe('grpc-js connection injector', () => {
  let dir: string;
  let sockPath: string;
  let server: Server;
  let injector: ConnectionInjector;
  let listener: NetServer;
  let connections = 0;
  const seen: Seen[] = [];
  const clients: Client[] = [];

  const newClient = (options: Record<string, unknown> = {}): UntypedClient => {
    const client = new PinClient(`unix:${sockPath}`, credentials.createInsecure(), options) as unknown as UntypedClient;
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hpcq-injector-'));
    sockPath = join(dir, 'grpc.sock');
    server = new Server();
    const record = (call: ServerUnaryCall<Buffer, Buffer> | ServerWritableStream<Buffer, Buffer>): string => {
      const peer = call.getPeer();
      seen.push({ peer, authContext: call.getAuthContext(), metadata: call.metadata.getMap() });
      return peer;
    };
    server.addService(pinService, {
      Who: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, Buffer.from(record(call))),
      WhoStream: (call: ServerWritableStream<Buffer, Buffer>) => {
        const peer = Buffer.from(record(call));
        call.write(peer);
        call.write(peer);
        call.end();
      },
    });
    injector = server.createConnectionInjector(ServerCredentials.createInsecure());
    listener = createServer((socket: Socket) => {
      // What the daemon does with the identity read from the kernel: name the connection by it.
      Object.defineProperty(socket, 'remoteAddress', { value: `hpcq-conn:${++connections}`, configurable: true });
      injector.injectConnection(socket);
    });
    listener.listen(sockPath);
    await once(listener, 'listening');
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    injector?.destroy();
    server?.forceShutdown();
    if (listener?.listening) await new Promise((resolve) => listener.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports the injected remoteAddress as the peer of unary and streaming calls', async () => {
    const client = newClient();
    expect(await who(client)).toBe('hpcq-conn:1');
    expect(await whoStream(client)).toEqual(['hpcq-conn:1', 'hpcq-conn:1']);
    expect(connections).toBe(1);
  });

  it('keeps the peer per connection: a second channel gets its own', async () => {
    const second = newClient({ 'grpc.use_local_subchannel_pool': 1 });
    expect(await who(second)).toBe('hpcq-conn:2');
    expect(await whoStream(second)).toEqual(['hpcq-conn:2', 'hpcq-conn:2']);
    expect(connections).toBe(2);
    // The first channel still uses its own connection.
    expect(await who(clients[0] as UntypedClient)).toBe('hpcq-conn:1');
  });

  it('does not let metadata change the peer', async () => {
    const metadata = new Metadata();
    metadata.set('x-user', 'root');
    metadata.set('authorization', 'Bearer forged');
    metadata.set('x-forwarded-for', '127.0.0.1');
    const client = clients[0] as UntypedClient;
    expect(await who(client, metadata)).toBe('hpcq-conn:1');
    expect(await whoStream(client, metadata)).toEqual(['hpcq-conn:1', 'hpcq-conn:1']);
    expect(seen.at(-1)?.metadata).toMatchObject({ 'x-user': 'root', authorization: 'Bearer forged' });
  });

  it('gives an empty auth context on these plaintext connections', () => {
    expect(seen.length).toBeGreaterThan(0);
    for (const { authContext } of seen) {
      expect(authContext).toEqual({});
      expect(authContext.transportSecurityType).toBeUndefined();
    }
  });
});
