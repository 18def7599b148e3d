/**
 * Which hpcqd the CLI talks to: --addr, else $HPCQ_ADDR, else the node's system daemon at
 * unix:/run/hpcq/hpcqd.sock, which every user reaches (the daemon knows callers by their uid).
 * A user without a system daemon but with a personal one (hpcqd started as that user) reaches
 * unix:$XDG_STATE_HOME/hpcq/hpcqd.sock instead.
 */
import { existsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { defaultSocketPath, defaultStateDir, ROOT_SOCKET_PATH } from '../config/default-state-dir.js';
import { UsageError } from './errors.js';

export function defaultAddress(uid: number, env: NodeJS.ProcessEnv, exists: (path: string) => boolean = existsSync): string {
  if (uid === 0 || exists(ROOT_SOCKET_PATH)) return `unix:${ROOT_SOCKET_PATH}`;
  const personal = defaultSocketPath(defaultStateDir(uid, env), uid);
  return `unix:${exists(personal) ? personal : ROOT_SOCKET_PATH}`;
}

/**
 * Checks and normalizes an address: `unix:/abs/path.sock` (also `unix:///abs`), a bare absolute
 * path (taken as a unix socket), `host:port` / `[v6]:port`, or a gRPC target with an explicit
 * scheme (dns:, ipv4:, ipv6:, unix-abstract:).
 */
export function normalizeAddress(address: string): string {
  const a = address.trim();
  if (a.startsWith('/')) return `unix:${a}`;
  if (a.startsWith('unix:')) {
    const path = a.startsWith('unix://') ? a.slice('unix://'.length) : a.slice('unix:'.length);
    if (!isAbsolute(path)) throw new UsageError(`unix socket path must be absolute: ${JSON.stringify(address)}`, 'addr');
    return `unix:${path}`;
  }
  if (/^(dns|ipv4|ipv6|unix-abstract):/.test(a)) return a;
  if (/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/.test(a)) return a;
  throw new UsageError(`invalid address ${JSON.stringify(address)}: expected unix:/abs/path.sock or host:port`, 'addr');
}

/** The address to use, from the --addr flag, the environment and the uid. */
export function resolveAddress(flag: string | undefined, env: NodeJS.ProcessEnv, uid: number): string {
  return normalizeAddress(flag || env.HPCQ_ADDR || defaultAddress(uid, env));
}
