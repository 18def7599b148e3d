/**
 * Creates, checks and locks the state directory. It holds the database and the run files that
 * decide which jobs get re-attached, so it must be a real directory owned by the daemon's user and
 * not writable by anyone else, and only one hpcqd may use it at a time.
 *
 * The lock is `<state>/hpcqd.pid` (pid and start time of the daemon holding it), taken before the
 * database is opened: LevelDB's own LOCK refuses a second opener too, but only after that opener
 * has already rotated the first daemon's LevelDB LOG file. A lock left by a daemon that was killed
 * is stale once its pid is gone or belongs to a later process (start time), and is taken over.
 * LevelDB's lock stays the authority for the rare race of two daemons taking over one stale lock.
 */
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { processIsAlive, processStartTicks } from '../exec/process-identity.js';

export interface StatePaths {
  root: string;
  database: string;
  /** Supervisor pid and exit files of running jobs. */
  run: string;
  /** The Ed25519 key tokens are signed with; replacing or deleting it (then a reload) revokes every token. */
  tokenKey: string;
  /** The daemon lock: pid and start time of the hpcqd using this directory. */
  lock: string;
}

export function prepareStateDir(root: string, uid: number): StatePaths {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  checkOwnDirectory(root, uid);
  const paths = { root, database: join(root, 'db'), run: join(root, 'run'), lock: join(root, 'hpcqd.pid'), tokenKey: join(root, 'token-signing-key.pem') };
  mkdirSync(paths.run, { recursive: true, mode: 0o700 });
  checkOwnDirectory(paths.run, uid);
  return paths;
}

function checkOwnDirectory(path: string, uid: number): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`state path ${path} must be a directory, not a symlink or file`);
  if (st.uid !== uid) throw new Error(`state path ${path} is owned by uid ${st.uid}, not by the daemon's uid ${uid}`);
  if ((st.mode & 0o022) !== 0) throw new Error(`state path ${path} is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod go-w it`);
}

/** Thrown when another live hpcqd holds the state directory's lock. */
export class StateDirLockedError extends Error {
  override readonly name = 'StateDirLockedError';
}

/**
 * Takes the state directory's lock for this process; returns the function that releases it.
 * Throws StateDirLockedError if a live hpcqd holds it.
 */
export function lockStateDir(paths: StatePaths): () => void {
  const self = `pid=${process.pid}\nstart_ticks=${processStartTicks(process.pid) ?? 0}\n`;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(paths.lock, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readHolder(paths.lock);
      // Taken again right after a stale one was removed: another daemon won the race.
      if (attempt > 0 || (holder && processIsAlive(holder.pid, holder.startTicks))) throw lockedBy(paths, holder);
      unlinkSync(paths.lock); // stale: its daemon is gone
      continue;
    }
    try {
      writeSync(fd, self);
    } catch (err) {
      unlinkSync(paths.lock);
      throw new Error(`cannot write the state directory lock ${paths.lock}: ${(err as Error).message}`, { cause: err });
    } finally {
      closeSync(fd);
    }
    return () => {
      try {
        if (readFileSync(paths.lock, 'utf8') === self) unlinkSync(paths.lock);
      } catch {
        // already gone
      }
    };
  }
}

function readHolder(path: string): { pid: number; startTicks: number } | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    const pid = Number(/^pid=(\d+)$/m.exec(text)?.[1]);
    const startTicks = Number(/^start_ticks=(\d+)$/m.exec(text)?.[1]);
    return Number.isSafeInteger(pid) && Number.isSafeInteger(startTicks) ? { pid, startTicks } : undefined;
  } catch {
    return undefined;
  }
}

function lockedBy(paths: StatePaths, holder: { pid: number } | undefined): StateDirLockedError {
  return new StateDirLockedError(
    `another hpcqd${holder ? ` (pid ${holder.pid})` : ''} is using the state directory ${paths.root} (it holds the lock ${paths.lock}). ` +
      'Stop the other daemon, or give this one a different state directory.',
  );
}
