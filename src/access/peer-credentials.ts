/**
 * Who is on the other end of a unix-socket connection, as the kernel recorded it at connect time
 * (SO_PEERCRED), read through the native addon src/native/peer-credentials.c because Node has no
 * API for it. The identity must be taken here, when the connection is accepted, and never looked
 * up later from the pid: by then the process may be gone and its pid reused.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

interface PeerCredentialsAddon {
  getPeerCredentials(fd: number): PeerCredentials;
}

let addon: PeerCredentialsAddon | undefined;

/** Loaded on first use so that modules importing this one load without the compiled addon. */
function loadAddon(): PeerCredentialsAddon {
  if (addon === undefined) {
    // dist/access/ or src/access/ -> package root -> dist/native/ (built by scripts/build-native.sh)
    const path = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'native', 'peer-credentials.node');
    addon = createRequire(import.meta.url)(path) as PeerCredentialsAddon;
  }
  return addon;
}

/** Reads the peer's credentials of a connected unix-socket from the kernel. Throws if the socket has no fd (closed) or is not a unix socket. */
export function peerCredentialsOf(socket: Socket): PeerCredentials {
  // Node keeps the descriptor on its internal libuv handle; it is gone once the socket is destroyed.
  const fd: unknown = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('peer credentials: the socket has no file descriptor (closed or not a native socket)');
  return loadAddon().getPeerCredentials(fd);
}
