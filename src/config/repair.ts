/**
 * When the schema refuses a file, the cross-field checks (duplicate ids, one default queue, a
 * default above its maximum...) still run, on what is left once every refused part is taken out:
 * an unknown key is dropped, a bad value falls back to its default, a queue or cluster that cannot
 * be repaired (a required key missing) is left out. So one run reports every problem. A check that
 * involves a part taken out is not reported: it would judge a default, or a list with a hole, that
 * the admin did not write.
 */
import type { z } from 'zod';
import { valueAt, type KeyPath } from './problems.js';

export interface Repaired<T> {
  data: T;
  /** A path in `data` (whose lists may have lost elements) as the path in the file. */
  toFilePath(path: KeyPath): KeyPath;
  /** True when a check at this file path may involve a part taken out. */
  touchesRepair(path: KeyPath): boolean;
}

/** Marks a list element taken out, so that paths keep the file's indexes while repairing. */
const TAKEN_OUT = Symbol('taken out');
const MAX_ROUNDS = 20;

export function repairForChecks<T>(schema: z.ZodType<T>, raw: unknown): Repaired<T> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const file: unknown = structuredClone(raw);
  const takenOut: KeyPath[] = [];

  /** Takes out the value at `path` (the file's indexes); false when nothing could be. */
  const takeOut = (path: KeyPath): boolean => {
    if (path.length === 0) return false;
    const parent = valueAt(file, path.slice(0, -1));
    const last = path[path.length - 1]!;
    if (Array.isArray(parent) && typeof last === 'number' && last < parent.length && parent[last] !== TAKEN_OUT) {
      parent[last] = TAKEN_OUT;
    } else if (typeof parent === 'object' && parent !== null && !Array.isArray(parent) && Object.hasOwn(parent, last)) {
      delete (parent as Record<string, unknown>)[last];
    } else {
      // Missing (a required key): take out what needs it.
      return takeOut(path.slice(0, -1));
    }
    takenOut.push(path);
    return true;
  };

  for (let round = 0; round < MAX_ROUNDS; round++) {
    const kept = new Map<string, number[]>();
    const view = withoutTakenOut(file, [], kept);
    const toFilePath = (path: KeyPath): KeyPath => {
      const out: (string | number)[] = [];
      for (const segment of path) out.push(typeof segment === 'number' ? (kept.get(JSON.stringify(out))?.[segment] ?? segment) : segment);
      return out;
    };
    const result = schema.safeParse(view);
    if (result.success) {
      const touchesRepair = (path: KeyPath) => takenOut.some((t) => isPrefix(t, path) || isPrefix(path, t));
      return { data: result.data, toFilePath, touchesRepair };
    }
    let changed = false;
    for (const issue of result.error.issues) {
      const path = toFilePath(issue.path.map((s) => (typeof s === 'number' ? s : String(s))));
      if (issue.code === 'unrecognized_keys') {
        // An unknown key is ignored; the checks of the rest stay meaningful.
        for (const key of issue.keys) delete (valueAt(file, path) as Record<string, unknown>)[key];
        changed = true;
      } else {
        changed = takeOut(path) || changed;
      }
    }
    if (!changed) return undefined;
  }
  return undefined;
}

/** A copy without the taken-out list elements; `kept` records the file index of each element left. */
function withoutTakenOut(value: unknown, path: (string | number)[], kept: Map<string, number[]>): unknown {
  if (Array.isArray(value)) {
    const indexes = value.flatMap((v, i) => (v === TAKEN_OUT ? [] : [i]));
    kept.set(JSON.stringify(path), indexes);
    return indexes.map((i) => withoutTakenOut(value[i], [...path, i], kept));
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutTakenOut(v, [...path, k], kept)]));
  }
  return value;
}

function isPrefix(prefix: KeyPath, path: KeyPath): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}
