/** Where hpcqd keeps its state when neither the config nor HPCQ_STATE_DIR says: shared by daemon and CLI. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultStateDir(uid: number, env: NodeJS.ProcessEnv): string {
  if (uid === 0) return '/var/lib/hpcq';
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'hpcq');
}

/** The daemon's default unix socket inside its state directory. */
export function defaultSocketPath(stateDir: string): string {
  return join(stateDir, 'hpcqd.sock');
}
