/**
 * Reads the Prometheus text exposition format (version 0.0.4) for tests: the samples, and the
 * problems `promtool check metrics` would report on the checks it makes (HELP and TYPE for every
 * family, `_total` on counters and only on counters, well-formed histograms, valid names), so the
 * format is checked where promtool is not installed.
 */
import { execFileSync } from 'node:child_process';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    // Go's float syntax (ParseFloat): NaN and ±Inf in any case are values too (prom-client writes Nan).
    if (Number.isNaN(Number(m[3])) && !/^[-+]?(nan|inf|infinity)$/i.test(m[3]!)) throw new Error(`not a number: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`; 0 when there is none. */
export function valueOf(text: string, name: string, labels: Record<string, string> = {}): number {
  const matching = parseSamples(text).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matching.length > 1) throw new Error(`${matching.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return matching[0]?.value ?? 0;
}

/** Problems with the exposition, as promtool would name them; [] when it is well-formed. */
export function lintExposition(text: string): string[] {
  const problems: string[] = [];
  const help = new Set<string>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (!m) continue;
    const [, kind, name, rest] = m as unknown as [string, string, string, string];
    if (!NAME.test(name)) problems.push(`${name}: invalid metric name`);
    if (kind === 'HELP') {
      if (rest.trim() === '') problems.push(`${name}: no help text`);
      help.add(name);
    } else {
      if (types.has(name)) problems.push(`${name}: TYPE given twice`);
      types.set(name, rest);
    }
  }
  for (const [name, type] of types) {
    if (!help.has(name)) problems.push(`${name}: no HELP`);
    if (type === 'counter' && !name.endsWith('_total')) problems.push(`${name}: counter metrics should have "_total" suffix`);
    if (type !== 'counter' && type !== 'untyped' && name.endsWith('_total')) problems.push(`${name}: non-counter metrics should not have "_total" suffix`);
    if (/[A-Z]/.test(name)) problems.push(`${name}: metric names should be written in 'snake_case' not 'camelCase'`);
  }
  const familyOf = (sample: string) => {
    if (types.has(sample)) return sample;
    const base = sample.replace(/_(bucket|sum|count)$/, '');
    return types.get(base) === 'histogram' || types.get(base) === 'summary' ? base : undefined;
  };
  const buckets = new Map<string, Array<{ le: number; value: number }>>();
  for (const s of parseSamples(text)) {
    const family = familyOf(s.name);
    if (family === undefined) problems.push(`${s.name}: sample without TYPE`);
    if (s.name.endsWith('_bucket') && family !== undefined && types.get(family) === 'histogram') {
      const key = `${family}${JSON.stringify({ ...s.labels, le: undefined })}`;
      const list = buckets.get(key) ?? [];
      list.push({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), value: s.value });
      buckets.set(key, list);
    }
  }
  for (const [key, list] of buckets) {
    if (list.at(-1)?.le !== Infinity) problems.push(`${key}: histogram without a +Inf bucket`);
    for (let i = 1; i < list.length; i++) {
      if (list[i]!.le <= list[i - 1]!.le || list[i]!.value < list[i - 1]!.value) problems.push(`${key}: buckets not ascending and cumulative`);
    }
  }
  return problems;
}

/** `promtool check metrics` on the text when promtool is installed: its output, or undefined when it is not. */
export function promtoolCheck(text: string): { ok: boolean; output: string } | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v promtool'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  try {
    return { ok: true, output: execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
