/** Where hpcqd keeps its state when neither the config nor HPCQ_STATE_DIR says: shared by daemon and CLI. */
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The state directory of a root daemon. */
export const ROOT_STATE_DIR = '/var/lib/hpcq';

export function defaultStateDir(uid: number, env: NodeJS.ProcessEnv): string {
  if (uid === 0) return ROOT_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'hpcq');
}

/** Where a root daemon's socket lives: a root-owned 0755 directory, so every local user can connect. */
export const ROOT_SOCKET_DIR = '/run/hpcq';
/** The system daemon's socket, which the CLI uses by default. */
export const ROOT_SOCKET_PATH = join(ROOT_SOCKET_DIR, 'hpcqd.sock');

/**
 * The daemon's default unix socket: as root /run/hpcq/hpcqd.sock for the default state directory
 * and /run/hpcq/hpcqd-<hash>.sock for another one (so daemons side by side do not collide);
 * otherwise inside the (private) state directory, for a personal daemon.
 */
export function defaultSocketPath(stateDir: string, uid: number): string {
  if (uid !== 0) return join(stateDir, 'hpcqd.sock');
  if (stateDir === ROOT_STATE_DIR) return ROOT_SOCKET_PATH;
  return join(ROOT_SOCKET_DIR, `hpcqd-${stateDirHash(stateDir)}.sock`);
}

/** A short stable name for a non-default state directory (cgroup parents and sockets). */
export function stateDirHash(stateDir: string): string {
  return createHash('sha256').update(stateDir).digest('hex').slice(0, 10);
}
