/**
 * Configuration problems as an admin reads them: `file:line:col: key.path: message`, with a
 * suggestion for a misspelt key. The position comes from the YAML document, so it is the place to
 * edit, not just a key path to search for.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type YAMLError } from 'yaml';
import { z } from 'zod';

/** Keys and list indexes from the top of the file, e.g. ['clusters', 0, 'queues', 1, 'max_running']. */
export type KeyPath = readonly (string | number)[];

export interface Problem {
  path: KeyPath;
  message: string;
  /** Point at the key itself (an unknown key) rather than at its value. */
  atKey?: boolean;
  /** The value did not come from the file (environment, flag, or derived from those): no position. */
  notInFile?: boolean;
}

/** Where a key or value starts in the file, 1-based; undefined when the file does not say. */
export type Locate = (path: KeyPath, atKey: boolean) => { line: number; col: number } | undefined;

/**
 * The problems as ConfigError lines, in file order like a compiler's (those without a position,
 * from the environment or flags, first), each once.
 */
export function formatProblems(problems: readonly Problem[], source: string, locate: Locate | undefined): string[] {
  const located = problems.map((problem, i) => ({ problem, i, pos: problem.notInFile ? undefined : locate?.(problem.path, problem.atKey ?? false) }));
  located.sort((a, b) => (a.pos?.line ?? 0) - (b.pos?.line ?? 0) || (a.pos?.col ?? 0) - (b.pos?.col ?? 0) || a.i - b.i);
  const lines = located.map(({ problem, pos }) => {
    const where = problem.path.length > 0 ? problem.path.join('.') : '(top level)';
    return pos ? `${source}:${pos.line}:${pos.col}: ${where}: ${problem.message}` : `${where}: ${problem.message}`;
  });
  return [...new Set(lines)];
}

/** A YAML syntax error as a problem line: `file:line:col: not valid YAML/JSON: message`. */
export function formatSyntaxError(err: YAMLError, source: string): string {
  // The message repeats the position and quotes the source below it; keep the first sentence.
  const message = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  const pos = err.linePos?.[0];
  return pos ? `${source}:${pos.line}:${pos.col}: not valid YAML/JSON: ${message}` : `not valid YAML/JSON: ${message}`;
}

/**
 * Finds a key path in the parsed document. A path the file does not have all of (a missing
 * required key, a value taken from the default) resolves to the deepest part it has: the mapping
 * the key belongs in.
 */
export function locator(doc: Document, lines: LineCounter): Locate {
  return (path, atKey) => {
    let node: unknown = doc.contents;
    let offset = startOf(node);
    for (const [i, segment] of path.entries()) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
        if (!pair) break;
        if (atKey && i === path.length - 1) return position(lines, startOf(pair.key));
        node = pair.value;
        offset = startOf(pair.value) ?? startOf(pair.key) ?? offset;
      } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        node = node.items[segment];
        offset = startOf(node) ?? offset;
      } else {
        break;
      }
    }
    return position(lines, offset);
  };
}

function startOf(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range?.[0];
}

function position(lines: LineCounter, offset: number | undefined) {
  return offset === undefined ? undefined : lines.linePos(offset);
}

/** The schema's issues as problems: one per unknown key (with a suggestion), a missing key said so. */
export function schemaProblems(issues: readonly z.core.$ZodIssue[], raw: unknown, schema: z.ZodType): Problem[] {
  const problems: Problem[] = [];
  for (const issue of issues) {
    const path = issue.path.map((s) => (typeof s === 'number' ? s : String(s)));
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys(schema, path);
      for (const key of issue.keys) problems.push({ path: [...path, key], atKey: true, message: unknownKeyMessage(key, known) });
    } else if (issue.code === 'invalid_type' && path.length > 0 && valueAt(raw, path) === undefined) {
      problems.push({ path, message: 'required key is missing' });
    } else {
      problems.push({ path, message: issue.message });
    }
  }
  return problems;
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const suggestion = suggestKey(key, known);
  if (suggestion) return `unknown key; did you mean "${suggestion}"?`;
  return known.length > 0 ? `unknown key; expected one of ${known.join(', ')}` : 'unknown key';
}

/**
 * The known key an unknown one most likely meant: the same key in camelCase or with dashes, one
 * at most two edits away, or the only key that starts or ends with it (or that it starts with).
 */
export function suggestKey(key: string, known: readonly string[]): string | undefined {
  const k = key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/-/g, '_').toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(k, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  // Two edits turn any two-letter key into any other: ask for more than that.
  if (best !== undefined && bestDistance < k.length) return best;
  const prefixed = known.filter((c) => Math.min(c.length, k.length) >= 3 && (c.startsWith(k) || c.endsWith(k) || k.startsWith(c)));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = row;
  }
  return previous[b.length]!;
}

/** The keys the schema allows in the mapping at `path` (list indexes step into the element schema). */
function knownKeys(schema: z.ZodType, path: KeyPath): string[] {
  let s: unknown = schema;
  for (const segment of [...path, undefined]) {
    // Defaults, prefaults and optionals wrap the schema that says which keys exist.
    while (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap();
    if (segment === undefined) break;
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, unknown>)[String(segment)];
    else if (s instanceof z.ZodArray) s = s.element;
    else return [];
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

export function valueAt(root: unknown, path: KeyPath): unknown {
  let value = root;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}
