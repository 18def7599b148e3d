/**
 * Batch scripts the way sbatch reads them: the `#SBATCH` directives (and hpcq's own `#HPCQ`, which
 * take the same options) at the head of a script, and what they mean as `hpcq submit` options.
 * Pure: the caller reads the file and passes its text and the directory it was submitted from.
 *
 * Like sbatch: directives are the lines that start with `#SBATCH` or `#HPCQ` and whitespace, before
 * the first line that is neither blank nor a comment (the `#!` line counts as a comment); a
 * directive after the first command is an ordinary comment. Each directive line is split into
 * words like a simple shell line (whitespace, '...' and "..." quotes, backslash escapes, a `#`
 * starting a word begins a comment) and may hold several options: `--opt=value`, `--opt value`,
 * `-X value`, `-Xvalue`.
 *
 * Every option is either honoured or refused with an error naming it and its line, never
 * dropped. Honoured: -J/--job-name, -c/--cpus-per-task, --mem, -t/--time (Slurm's units: a bare
 * number is minutes), -p/--partition, -o/--output, -e/--error (%j %x %u %%), -D/--chdir,
 * --export, -d/--dependency, --comment, and -N/--nodes 1, -n/--ntasks 1 (what every hpcq job is).
 * --export's ALL and NONE are accepted as its first item and change nothing: an hpcq job never
 * inherits the submitter's environment, it always starts from a clean one plus the named variables.
 */
import { posix } from 'node:path';
import type { Dependency } from '../gen/hpcq/v1/job.js';
import { UsageError } from './errors.js';
import { parseInteger, parseMemMiB } from './format.js';
import { parseArraySpec, parseDependency, parseExport } from './submit-syntax.js';

export type DirectiveKind = '#SBATCH' | '#HPCQ';

/** One option of a directive line, as written: `flag` is `-J` or `--job-name`. */
export interface BatchDirective {
  flag: string;
  value?: string;
  /** 1-based line number in the script. */
  line: number;
  /** The directive word the line started with. */
  directive: DirectiveKind;
}

export interface BatchDirectives {
  options: BatchDirective[];
}

/** The submit options a script's directives set (the field names of `hpcq submit`'s options). */
export interface ScriptOptions {
  name?: string;
  coreLimit?: number;
  memLimit?: number;
  /** Seconds. */
  timeLimit?: number;
  queue?: string;
  /** As written (after the % check): may be relative to the working directory. */
  stdout?: string;
  stderr?: string;
  /** Absolute (a relative -D is resolved against the directory hpcq submit runs in). */
  chdir?: string;
  export?: Record<string, string>;
  dependency?: Dependency[];
  description?: string;
  array?: { count: number; parallelism: number };
}

interface OptionSpec {
  long: string;
  short?: string;
  /** Whether the option takes a value. */
  arg: boolean;
}

/** The options hpcq knows (honoured, or refused with a specific message). */
const SPECS: readonly OptionSpec[] = [
  { long: '--job-name', short: '-J', arg: true },
  { long: '--cpus-per-task', short: '-c', arg: true },
  { long: '--mem', arg: true },
  { long: '--time', short: '-t', arg: true },
  { long: '--partition', short: '-p', arg: true },
  { long: '--output', short: '-o', arg: true },
  { long: '--error', short: '-e', arg: true },
  { long: '--chdir', short: '-D', arg: true },
  { long: '--export', arg: true },
  { long: '--dependency', short: '-d', arg: true },
  { long: '--comment', arg: true },
  { long: '--nodes', short: '-N', arg: true },
  { long: '--ntasks', short: '-n', arg: true },
  { long: '--array', short: '-a', arg: true },
  { long: '--requeue', arg: false },
  { long: '--no-requeue', arg: false },
];
const BY_LONG = new Map(SPECS.map((s) => [s.long, s]));
const BY_SHORT = new Map(SPECS.filter((s) => s.short !== undefined).map((s) => [s.short!, s]));

const DIRECTIVE_RE = /^#(SBATCH|HPCQ)(?:[ \t]+(.*))?$/;

/**
 * The directives at the head of a batch script, in order. Throws a UsageError (naming
 * `scriptName` and the line) for a directive line that cannot be split or holds a non-option word.
 */
export function parseBatchDirectives(text: string, scriptName = 'script'): BatchDirectives {
  const options: BatchDirective[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    const number = index + 1;
    if (index === 0 && line.startsWith('#!')) continue;
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (!trimmed.startsWith('#')) break; // the first command: no directives after it
    const m = DIRECTIVE_RE.exec(line);
    if (!m) continue; // an ordinary comment
    const directive = `#${m[1]!}` as DirectiveKind;
    const where = `${scriptName} line ${number}`;
    let words: string[];
    try {
      words = splitWords(m[2] ?? '');
    } catch (err) {
      throw new UsageError(`${where}: ${directive} ${(err as Error).message}`);
    }
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      const next = (): string | undefined => (i + 1 < words.length ? words[++i] : undefined);
      const needsValue = (flag: string): string => {
        const value = next();
        if (value === undefined) throw new UsageError(`${where}: ${directive} ${flag} needs a value`);
        return value;
      };
      /** An unknown option takes the next word as its value unless that looks like an option. */
      const maybeValue = (): string | undefined => (i + 1 < words.length && !words[i + 1]!.startsWith('-') ? next() : undefined);
      if (word.startsWith('--') && word.length > 2) {
        const eq = word.indexOf('=');
        if (eq > 0) {
          options.push({ flag: word.slice(0, eq), value: word.slice(eq + 1), line: number, directive });
          continue;
        }
        const spec = BY_LONG.get(word);
        const value = spec ? (spec.arg ? needsValue(word) : undefined) : maybeValue();
        options.push(value === undefined ? { flag: word, line: number, directive } : { flag: word, value, line: number, directive });
      } else if (word.startsWith('-') && word.length > 1 && word !== '--') {
        const flag = word.slice(0, 2);
        const attached = word.slice(2);
        const spec = BY_SHORT.get(flag);
        let value: string | undefined;
        if (attached !== '') value = attached;
        else if (spec) value = spec.arg ? needsValue(flag) : undefined;
        else value = maybeValue();
        options.push(value === undefined ? { flag, line: number, directive } : { flag, value, line: number, directive });
      } else {
        throw new UsageError(`${where}: ${directive} takes options, not ${JSON.stringify(word)}`);
      }
    }
  }
  return { options };
}

/**
 * Splits a directive's text into words like a shell does in simple cases: blanks separate words,
 * '...' keeps everything literally, "..." keeps everything but `\"`, `\\`, `\$` and `` \` ``, a
 * backslash outside quotes keeps the next character, and a `#` that starts a word begins a comment.
 * No expansion of any kind. Throws an Error for an unterminated quote.
 */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error('has an unterminated \' quote');
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      let closed = false;
      for (i++; i < text.length; i++) {
        const d = text[i]!;
        if (d === '"') {
          closed = true;
          break;
        }
        if (d === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) {
          word += text[++i];
        } else {
          word += d;
        }
      }
      if (!closed) throw new Error('has an unterminated " quote');
    } else if (c === '\\') {
      inWord = true;
      if (i + 1 < text.length) word += text[++i];
    } else {
      inWord = true;
      word += c;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * A time limit in Slurm's -t/--time formats, in seconds: `minutes`, `minutes:seconds`,
 * `hours:minutes:seconds`, `days-hours`, `days-hours:minutes`, `days-hours:minutes:seconds`.
 * A bare number is MINUTES (sbatch -t 30 is half an hour). Like Slurm, fields after the first are
 * not range-checked (`1:90` is 150 s). 0, UNLIMITED and INFINITE (no limit) are refused: an hpcq
 * job always has one (the queue's default when none is given).
 */
export function parseSlurmTime(text: string): number {
  const s = text.trim();
  const invalid = (why: string) => new Error(`invalid time ${JSON.stringify(text)}: ${why}`);
  if (/^(unlimited|infinite|-1)$/i.test(s)) throw invalid('hpcq has no unlimited time limit: give one, or leave it out for the queue\'s default');
  let seconds: number;
  let m: RegExpExecArray | null;
  if ((m = /^(\d+)$/.exec(s))) {
    seconds = Number(m[1]) * 60;
  } else if ((m = /^(\d+):(\d+)$/.exec(s))) {
    seconds = Number(m[1]) * 60 + Number(m[2]);
  } else if ((m = /^(\d+):(\d+):(\d+)$/.exec(s))) {
    seconds = Number(m[1]) * 3_600 + Number(m[2]) * 60 + Number(m[3]);
  } else if ((m = /^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$/.exec(s))) {
    seconds = Number(m[1]) * 86_400 + Number(m[2]) * 3_600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
  } else {
    throw invalid('use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (a bare number is minutes)');
  }
  if (!Number.isSafeInteger(seconds)) throw invalid('too large');
  if (seconds === 0) throw invalid('a time limit of 0 means "unlimited" to Slurm, which hpcq does not have: give a limit, or leave it out for the queue\'s default');
  return seconds;
}

/** Checks an -o/-e file name pattern: hpcq expands %j, %x, %u and %% exactly as Slurm does; any other % pattern is refused. */
export function checkOutputPattern(path: string): string {
  for (const m of path.matchAll(/%(\d*)(.?)/gs)) {
    const [whole, width, letter] = m;
    if (width === '' && letter !== '' && 'jxuaA%'.includes(letter!)) continue;
    const what = letter === '' ? 'a % at the end' : whole;
    const meaning = width !== '' ? ' (zero-padding)' : '';
    throw new Error(`${what}${meaning} is not supported in a file name: hpcq expands only %j (job id), %x (job name), %u (user), %A (array job id), %a (array index) and %%`);
  }
  return path;
}

/**
 * Resolves an -o/-e path from a directive against the job's working directory, as Slurm does for
 * a relative one. Absolute paths, `~/...` (hpcq's home prefix) and a relative path when the
 * working directory is not known as an absolute path are returned as they are.
 */
export function resolveOutputPath(path: string, workingDir: string): string {
  if (path.startsWith('/') || path.startsWith('~/') || !workingDir.startsWith('/')) return path;
  const resolved = posix.resolve(workingDir, path);
  return path.endsWith('/') && !resolved.endsWith('/') ? `${resolved}/` : resolved;
}

/** A job name from a script's file name: [A-Za-z0-9_-] (others become `_`), not starting with a digit, at most 64 characters. */
export function jobNameFromPath(path: string): string {
  let name = posix.basename(path).replace(/[^A-Za-z0-9_-]/g, '_');
  if (name === '' || /^\d/.test(name)) name = `j${name}`;
  return name.slice(0, 64);
}

/**
 * What the directives mean as submit options; later directives override earlier ones (--export
 * and --dependency add up, as on the command line). `cwd` is where hpcq submit runs (for a
 * relative -D). Throws a UsageError naming the script, the line and the option for anything hpcq
 * does not support, e.g. `run.sh line 4: #SBATCH --gres is not supported by hpcq`.
 */
export function directivesToOptions(directives: BatchDirectives, scriptName: string, cwd: string): ScriptOptions {
  const out: ScriptOptions = {};
  for (const d of directives.options) {
    const spec = d.flag.startsWith('--') ? BY_LONG.get(d.flag) : BY_SHORT.get(d.flag);
    const where = `${scriptName} line ${d.line}: ${d.directive} ${d.flag}`;
    if (!spec) throw new UsageError(`${where} is not supported by hpcq`);
    if (!spec.arg && d.value !== undefined) throw new UsageError(`${where} takes no value`);
    const value = d.value ?? '';
    const parse = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (err) {
        throw new UsageError(`${where}: ${(err as Error).message}`);
      }
    };
    switch (spec.long) {
      case '--job-name':
        out.name = value;
        break;
      case '--cpus-per-task':
        out.coreLimit = parse(() => {
          const n = parseInteger(value, 'core count');
          if (n < 1) throw new Error(`the core count must be at least 1, got ${n}`);
          return n;
        });
        break;
      case '--mem':
        out.memLimit = parse(() => {
          const mib = parseMemMiB(value);
          if (mib === 0) throw new Error('--mem=0 (all of the node\'s memory) is not supported: give a size');
          return mib;
        });
        break;
      case '--time':
        out.timeLimit = parse(() => parseSlurmTime(value));
        break;
      case '--partition':
        if (value.includes(',')) throw new UsageError(`${where}: a job goes to one queue, not a list (${JSON.stringify(value)})`);
        out.queue = value;
        break;
      case '--output':
      case '--error': {
        if (value === '') throw new UsageError(`${where} needs a file name`);
        const path = parse(() => checkOutputPattern(value));
        if (spec.long === '--output') out.stdout = path;
        else out.stderr = path;
        break;
      }
      case '--chdir':
        if (value === '') throw new UsageError(`${where} needs a directory`);
        out.chdir = posix.resolve(cwd, value);
        break;
      case '--export': {
        // ALL (Slurm's default) and NONE only say what to start from: an hpcq job always starts
        // from a clean environment, so either is accepted as the first item and changes nothing.
        const items = value.split(',');
        if (items[0] !== undefined && /^(ALL|NONE)$/.test(items[0])) items.shift();
        const bare = items.find((item) => item !== '' && !item.includes('='));
        if (bare !== undefined) {
          throw new UsageError(
            /^(ALL|NONE)$/.test(bare)
              ? `${where}: ${bare} may only be the first item`
              : `${where}: ${JSON.stringify(bare)} without a value is not supported (hpcq does not pass on the submitter's environment): give NAME=value`,
          );
        }
        out.export = parse(() => parseExport(items.join(','), out.export));
        break;
      }
      case '--dependency':
        out.dependency = parse(() => parseDependency(value, out.dependency));
        break;
      case '--comment':
        out.description = value;
        break;
      case '--nodes':
        if (!/^1(-1)?$/.test(value.trim())) throw new UsageError(`${where} ${value} is not supported: an hpcq job runs on one node`);
        break;
      case '--ntasks':
        if (value.trim() !== '1') throw new UsageError(`${where} ${value} is not supported: an hpcq job is one task (give its cores with -c)`);
        break;
      case '--array':
        out.array = parse(() => parseArraySpec(value));
        break;
      default:
        throw new UsageError(`${where} is not supported by hpcq`);
    }
  }
  return out;
}

/** parseBatchDirectives, then directivesToOptions. */
export function readBatchScript(text: string, scriptName: string, cwd: string): ScriptOptions {
  return directivesToOptions(parseBatchDirectives(text, scriptName), scriptName, cwd);
}
