/**
 * Finding processes in /proc for tests: by a predicate over their pid, skipping those that end (or
 * cannot be read) while they are looked at.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Pids (of all processes, or of `among`) for which `matches` holds; a process gone meanwhile is left out. */
export function pidsWhere(matches: (pid: number) => boolean, among?: readonly number[]): number[] {
  const pids = among ?? readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
  return pids.filter((pid) => {
    try {
      return matches(pid);
    } catch {
      return false;
    }
  });
}

/** A process's name (/proc/<pid>/comm: the first 15 bytes of its executable's name). */
export function commOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
}

/** The direct children of `pid` (of its main thread). */
export function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}
