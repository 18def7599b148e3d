/**
 * Creates and checks the state directory. It holds the database and the run files that decide
 * which jobs get re-attached, so it must be a real directory owned by the daemon's user and not
 * writable by anyone else.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface StatePaths {
  root: string;
  database: string;
  /** Supervisor pid and exit files of running jobs. */
  run: string;
}

export function prepareStateDir(root: string, uid: number): StatePaths {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  checkOwnDirectory(root, uid);
  const paths = { root, database: join(root, 'db'), run: join(root, 'run') };
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
