/** Where hpcqd keeps its state when neither the config nor HPCQ_STATE_DIR says: shared by daemon and CLI. */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The state directory of a root daemon. */
export const ROOT_STATE_DIR = '/var/lib/hpcq';

export function defaultStateDir(uid: number, env: NodeJS.ProcessEnv): string {
  if (uid === 0) return ROOT_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'hpcq');
}

/** The daemon's default unix socket inside its state directory. */
export function defaultSocketPath(stateDir: string): string {
  return join(stateDir, 'hpcqd.sock');
}
