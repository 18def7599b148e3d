/**
 * peerCredentialsOf with the real compiled addon (dist/native/peer-credentials.node) on real
 * sockets: the kernel's SO_PEERCRED answer for a client in this process and for one running as
 * another user, and refusals for TCP and closed sockets.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peerCredentialsOf } from '../../src/access/peer-credentials.js';
import { JOB_USER, ensureTestUsers, gidOf, isRoot, need, uidOf } from '../support/privileged.js';

/** Listens on `address` (a unix socket path or TCP port 0 on loopback). */
async function listen(address: string | 0): Promise<Server> {
  const server = createServer();
  if (address === 0) server.listen(0, '127.0.0.1');
  else server.listen(address);
  await once(server, 'listening');
  return server;
}

const nextConnection = async (server: Server): Promise<Socket> => ((await once(server, 'connection')) as [Socket])[0];

describe('peerCredentialsOf', () => {
  let dir: string;
  let sockPath: string;
  let server: Server;
  const clients: Socket[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hpcq-peercred-'));
    // The other-user client must reach the socket.
    chmodSync(dir, 0o755);
    sockPath = join(dir, 'peer.sock');
    server = await listen(sockPath);
    chmodSync(sockPath, 0o666);
  });

  afterAll(async () => {
    for (const client of clients) client.destroy();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the uid, gid and pid of a client in this process', async () => {
    const accepted = nextConnection(server);
    clients.push(connect(sockPath));
    const socket = await accepted;
    expect(peerCredentialsOf(socket)).toEqual({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
    socket.destroy();
  });

  it('gives the uid, gid and pid of a client running as another user', async (ctx) => {
    if (!need(isRoot && ensureTestUsers(), `root and the ${JOB_USER} account`)) return ctx.skip();
    const accepted = nextConnection(server);
    // setpriv execs node in place, so the child's pid is the connecting process's pid.
    const child = spawn(
      'setpriv',
      [
        '--reuid', JOB_USER, '--regid', String(gidOf(JOB_USER)), '--init-groups',
        process.execPath, '-e',
        `const s = require('node:net').connect(${JSON.stringify(sockPath)});
         const end = () => process.exit(0);
         s.on('error', (e) => { console.error(e.message); process.exit(1); });
         process.stdin.on('end', end).resume();
         setTimeout(end, 5000);`,
      ],
      { cwd: dir, stdio: ['pipe', 'ignore', 'inherit'] },
    );
    try {
      const socket = await accepted;
      expect(peerCredentialsOf(socket)).toEqual({ pid: child.pid, uid: uidOf(JOB_USER), gid: gidOf(JOB_USER) });
      socket.destroy();
    } finally {
      child.stdin?.end();
      if (child.exitCode === null) await once(child, 'exit');
    }
  });

  it('refuses a TCP socket', async () => {
    const tcp = await listen(0);
    try {
      const port = (tcp.address() as { port: number }).port;
      const accepted = nextConnection(tcp);
      const client = connect(port, '127.0.0.1');
      const socket = await accepted;
      expect(() => peerCredentialsOf(socket)).toThrow(expect.objectContaining({ code: 'ERR_NOT_UNIX_SOCKET' }));
      socket.destroy();
      client.destroy();
    } finally {
      await new Promise((resolve) => tcp.close(resolve));
    }
  });

  it('refuses a destroyed socket', async () => {
    const accepted = nextConnection(server);
    clients.push(connect(sockPath));
    const socket = await accepted;
    socket.destroy();
    expect(() => peerCredentialsOf(socket)).toThrow(/no file descriptor/);
  });
});
