/**
 * The YAML file of `hpcq group submit`: a job group (SubmitJobGroup, Tencent Batch's Job.Tasks +
 * Dependences) as a SubmitJobGroupRequest. Pure: the caller reads the file.
 *
 *   name: pipeline              # required: the group's name (job-name rules)
 *   client_token: run-42        # optional idempotency key (--client-token wins)
 *   defaults:                   # optional: every task takes these unless it sets the key itself
 *     queue: normal
 *     mem_limit: 2G
 *   tasks:
 *     - task_name: pre_task     # required, unique in the group
 *       cmd_line: ./prepare.sh  # exactly one of cmd_line, argv (a list), input_file
 *       core_limit: 2
 *       mem_limit: 4G           # MiB, or with a K/M/G/T suffix
 *       time_limit: 1h          # seconds, or 1h30m / 90m / 01:30:00
 *       queue: normal           # scheduler_queue_name (or hpcqueue_id: ...)
 *     - task_name: post_task
 *       argv: [python3, post.py]
 *   dependences:                # end_task runs after start_task completed
 *     - {start_task: pre_task, end_task: post_task}
 *     - "pre_task -> post_task" # the same, shorter; "a -> b -> c" is a chain
 *
 * A task's other keys: name (default: its task_name), run_user, env (a mapping of strings),
 * working_dir, stdout, stderr, description, priority, resource_limit, cluster_id, zone, retry
 * {max_retry_count, retry_on_timeout, retry_on_out_of_memory, exit_codes, backoff_seconds}.
 * working_dir defaults to the directory hpcq ran in (as with sbatch); a relative working_dir is
 * relative to that directory, a relative input_file, stdout or stderr to the task's working_dir.
 * An empty value (`key:` alone) is the same as leaving the key out. A key hpcq does not know, or
 * a value of the wrong type, is an error naming the key and the task: nothing is dropped.
 * defaults may set any task key except task_name, name and the command; a task that sets queue
 * or hpcqueue_id takes neither from defaults; env and retry are replaced whole, not merged.
 */
import { posix } from 'node:path';
import { parse, YAMLParseError } from 'yaml';
import type { RetryPolicy } from '../gen/hpcq/v1/job.js';
import type { SubmitJobGroupRequest, SubmitJobRequest, TaskDependence } from '../gen/hpcq/v1/job_service.js';
import { resolveOutputPath } from './batch-script.js';
import { UsageError } from './errors.js';
import { parseDuration, parseMemMiB, rfc3339 } from './format.js';

export interface GroupFileOptions {
  /** Absolute directory `hpcq group submit` runs in: the default working directory. */
  cwd: string;
  /** The request time (default: now), sent as every task's timestamp. */
  nowMs?: number;
  /** How to name the file in messages (e.g. the path as given). */
  source?: string;
}

const TOP_KEYS = ['name', 'client_token', 'defaults', 'tasks', 'dependences'] as const;
const COMMAND_KEYS = ['cmd_line', 'argv', 'input_file'] as const;
const QUEUE_KEYS = ['queue', 'hpcqueue_id'] as const;
/** Task keys defaults may set. */
const DEFAULT_KEYS = [
  'run_user',
  'core_limit',
  'mem_limit',
  'time_limit',
  ...QUEUE_KEYS,
  'cluster_id',
  'zone',
  'env',
  'working_dir',
  'stdout',
  'stderr',
  'description',
  'priority',
  'resource_limit',
  'retry',
] as const;
const TASK_KEYS = ['task_name', 'name', ...COMMAND_KEYS, ...DEFAULT_KEYS] as const;
const RETRY_KEYS = ['max_retry_count', 'retry_on_timeout', 'retry_on_out_of_memory', 'exit_codes', 'backoff_seconds'] as const;
const DEPENDENCE_KEYS = ['start_task', 'end_task'] as const;

type TaskKey = (typeof TASK_KEYS)[number];

/** A task's keys after type checks: strings, numbers, lists, env and retry in their API form. */
type TaskValues = Partial<Record<TaskKey, string | number | string[] | Record<string, string> | RetryPolicy>>;

/** Where a value sits, for messages (`task pre_task`) and the error's field (`tasks.0`). */
interface Where {
  label: string;
  field: string;
}

class GroupFileReader {
  constructor(private readonly prefix: string) {}

  fail(where: Where, key: string, message: string): UsageError {
    const label = where.label ? `${where.label}: ` : '';
    const field = [where.field, key].filter((s) => s !== '').join('.');
    return new UsageError(`${this.prefix}${label}${message}`, field);
  }

  /** The mapping's keys that have a value (an empty value counts as absent); unknown keys are errors. */
  mapping(value: unknown, where: Where, what: string, allowed: readonly string[], hint = ''): Map<string, unknown> {
    if (!isMapping(value)) throw this.fail(where, '', `${what} must be a mapping (key: value lines), got ${describe(value)}`);
    const out = new Map<string, unknown>();
    for (const [key, v] of Object.entries(value)) {
      if (!allowed.includes(key)) {
        const inWhat = where.label ? '' : ` in ${what}`;
        throw this.fail(where, key, `unknown key ${JSON.stringify(key)}${inWhat}${hint} (known keys: ${allowed.join(', ')})`);
      }
      if (v !== null && v !== undefined) out.set(key, v);
    }
    return out;
  }

  string(value: unknown, where: Where, key: string): string {
    if (typeof value !== 'string') throw this.fail(where, key, `${key} must be a string, got ${describe(value)}${quoteHint(value)}`);
    return value;
  }

  integer(value: unknown, where: Where, key: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw this.fail(where, key, `${key} must be an integer, got ${describe(value)}`);
    return value;
  }

  boolean(value: unknown, where: Where, key: string): boolean {
    if (typeof value !== 'boolean') throw this.fail(where, key, `${key} must be true or false, got ${describe(value)}`);
    return value;
  }

  /** An integer, or a string the parser reads (units). */
  measure(value: unknown, where: Where, key: string, parseText: (text: string) => number, units: string): number {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw this.fail(where, key, `${key} must be a whole number of ${units}, or a string with units, got ${describe(value)}`);
      return value;
    }
    if (typeof value !== 'string') throw this.fail(where, key, `${key} must be a number of ${units} or a string with units, got ${describe(value)}`);
    try {
      return parseText(value);
    } catch (err) {
      throw this.fail(where, key, `${key}: ${(err as Error).message}`);
    }
  }

  stringList(value: unknown, where: Where, key: string): string[] {
    if (!Array.isArray(value)) throw this.fail(where, key, `${key} must be a list of strings, got ${describe(value)}`);
    if (value.length === 0) throw this.fail(where, key, `${key} must not be empty`);
    return value.map((item, i) => {
      if (typeof item !== 'string') throw this.fail(where, key, `${key}[${i}] must be a string, got ${describe(item)}${quoteHint(item)}`);
      return item;
    });
  }

  env(value: unknown, where: Where): Record<string, string> {
    const entries = this.mappingEntries(value, where, 'env');
    return Object.fromEntries(
      entries.map(([name, v]) => {
        if (typeof v !== 'string') throw this.fail(where, 'env', `env ${name} must be a string, got ${describe(v)}${quoteHint(v)}`);
        return [name, v];
      }),
    );
  }

  private mappingEntries(value: unknown, where: Where, key: string): [string, unknown][] {
    if (!isMapping(value)) throw this.fail(where, key, `${key} must be a mapping (NAME: value), got ${describe(value)}`);
    return Object.entries(value);
  }

  retry(value: unknown, where: Where): RetryPolicy {
    const inner: Where = { label: where.label ? `${where.label}: retry` : 'retry', field: where.field ? `${where.field}.retry` : 'retry' };
    const m = this.mapping(value, inner, 'retry', RETRY_KEYS);
    const count = m.get('max_retry_count');
    if (count === undefined) throw this.fail(inner, 'max_retry_count', 'retry needs max_retry_count');
    const exitCodes = m.get('exit_codes');
    if (exitCodes !== undefined && !Array.isArray(exitCodes)) throw this.fail(inner, 'exit_codes', `exit_codes must be a list of integers, got ${describe(exitCodes)}`);
    const backoff = m.get('backoff_seconds');
    const flag = (key: string) => {
      const v = m.get(key);
      return v === undefined ? false : this.boolean(v, inner, key);
    };
    return {
      maxRetryCount: this.integer(count, inner, 'max_retry_count'),
      retryOnTimeout: flag('retry_on_timeout'),
      retryOnOutOfMemory: flag('retry_on_out_of_memory'),
      exitCodes: (exitCodes ?? []).map((code: unknown, i: number) => this.integer(code, inner, `exit_codes[${i}]`)),
      backoffSeconds: backoff === undefined ? 0 : this.measure(backoff, inner, 'backoff_seconds', parseDuration, 'seconds'),
    };
  }

  /** Type-checks the keys of a task (or of defaults). */
  taskValues(m: Map<string, unknown>, where: Where): TaskValues {
    const out: TaskValues = {};
    for (const [key, value] of m) {
      switch (key as TaskKey) {
        case 'core_limit':
        case 'priority':
          out[key as TaskKey] = this.integer(value, where, key);
          break;
        case 'mem_limit':
          out.mem_limit = this.measure(value, where, key, parseMemMiB, 'MiB');
          break;
        case 'time_limit':
          out.time_limit = this.measure(value, where, key, parseDuration, 'seconds');
          break;
        case 'argv':
          out.argv = this.stringList(value, where, key);
          break;
        case 'env':
          out.env = this.env(value, where);
          break;
        case 'retry':
          out.retry = this.retry(value, where);
          break;
        default:
          out[key as TaskKey] = this.string(value, where, key);
      }
    }
    return out;
  }

  dependences(value: unknown): TaskDependence[] {
    if (!Array.isArray(value)) throw this.fail({ label: '', field: 'dependences' }, '', `dependences must be a list, got ${describe(value)}`);
    return value.flatMap((item: unknown, i) => {
      const where: Where = { label: `dependences[${i}]`, field: `dependences.${i}` };
      if (typeof item === 'string') {
        const names = item.split('->').map((s) => s.trim());
        if (names.length < 2 || names.some((n) => n === '')) {
          throw this.fail(where, '', `a dependence is {start_task: A, end_task: B} or "A -> B" (a chain: "A -> B -> C"), got ${JSON.stringify(item)}`);
        }
        return names.slice(1).map((endTask, j) => ({ startTask: names[j]!, endTask }));
      }
      const m = this.mapping(item, where, 'a dependence', DEPENDENCE_KEYS, ' ({start_task: A, end_task: B} or "A -> B")');
      for (const key of DEPENDENCE_KEYS) if (!m.has(key)) throw this.fail(where, key, `a dependence needs ${key}`);
      return [{ startTask: this.string(m.get('start_task'), where, 'start_task'), endTask: this.string(m.get('end_task'), where, 'end_task') }];
    });
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value in a message: a scalar as YAML shows it, else its kind. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** For a number or boolean where a string belongs: YAML read it as one; quoting keeps the text. */
function quoteHint(value: unknown): string {
  return typeof value === 'number' || typeof value === 'boolean' ? ' (quote it to make it a string)' : '';
}

/** Absolute or ~/...: kept; else relative to `base`. */
function resolvePath(path: string, base: string): string {
  if (path === '' || posix.isAbsolute(path) || path.startsWith('~')) return path;
  return posix.resolve(base, path);
}

/** Parses a group file into the request `hpcq group submit` sends. Throws UsageError, naming the key and the task. */
export function parseGroupFile(text: string, opts: GroupFileOptions): SubmitJobGroupRequest {
  const prefix = opts.source ? `${opts.source}: ` : '';
  const r = new GroupFileReader(prefix);
  const top: Where = { label: '', field: '' };
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    if (err instanceof YAMLParseError) throw new UsageError(`${prefix}not valid YAML: ${err.message.split('\n')[0]!.replace(/:$/, '')}`);
    throw err;
  }
  if (doc === null || doc === undefined) throw r.fail(top, '', 'the group file is empty; it needs name and tasks');
  const m = r.mapping(doc, top, 'the group file', TOP_KEYS);

  const name = m.get('name');
  if (name === undefined) throw r.fail(top, 'name', 'name (the group\'s name) is required');
  const clientToken = m.get('client_token');
  const defaultsValue = m.get('defaults');
  const defaultsWhere: Where = { label: 'defaults', field: 'defaults' };
  const defaults = defaultsValue === undefined ? {} : r.taskValues(r.mapping(defaultsValue, defaultsWhere, 'defaults', DEFAULT_KEYS, ' (task_name, name and the command cannot be defaults)'), defaultsWhere);

  const tasksValue = m.get('tasks');
  if (tasksValue === undefined) throw r.fail(top, 'tasks', 'tasks (a list of tasks) is required');
  if (!Array.isArray(tasksValue)) throw r.fail(top, 'tasks', `tasks must be a list, got ${describe(tasksValue)}`);
  const timestamp = rfc3339(opts.nowMs ?? Date.now());
  const tasks = tasksValue.map((item: unknown, i): SubmitJobRequest => {
    const taskName = isMapping(item) && typeof item.task_name === 'string' && item.task_name !== '' ? item.task_name : undefined;
    const where: Where = { label: taskName !== undefined ? `task ${taskName}` : `tasks[${i}]`, field: `tasks.${i}` };
    const own = r.taskValues(r.mapping(item, where, 'a task', TASK_KEYS), where);
    if (own.task_name === undefined) throw r.fail(where, 'task_name', 'task_name is required');
    const commands = COMMAND_KEYS.filter((k) => own[k] !== undefined);
    if (commands.length !== 1) {
      throw r.fail(where, commands[1] ?? 'cmd_line', `give exactly one of ${COMMAND_KEYS.join(', ')}${commands.length ? ` (it has ${commands.join(' and ')})` : ''}`);
    }
    const merged: TaskValues = { ...own };
    const ownQueue = QUEUE_KEYS.some((k) => own[k] !== undefined);
    for (const key of DEFAULT_KEYS) {
      if (merged[key] !== undefined || defaults[key] === undefined) continue;
      if (ownQueue && (QUEUE_KEYS as readonly string[]).includes(key)) continue;
      merged[key] = defaults[key];
    }
    return taskRequest(merged, timestamp, opts.cwd);
  });

  const dependencesValue = m.get('dependences');
  return {
    name: r.string(name, top, 'name'),
    tasks,
    dependences: dependencesValue === undefined ? [] : r.dependences(dependencesValue),
    clientToken: clientToken === undefined ? '' : r.string(clientToken, top, 'client_token'),
  };
}

/** The SubmitJobRequest of a task's (merged) values; every field not given is its empty value. */
function taskRequest(v: TaskValues, timestamp: string, cwd: string): SubmitJobRequest {
  const str = (key: TaskKey) => (v[key] as string | undefined) ?? '';
  const num = (key: TaskKey) => (v[key] as number | undefined) ?? 0;
  const workingDir = resolvePath(str('working_dir') || cwd, cwd);
  const outputPath = (key: TaskKey) => (v[key] === undefined ? '' : resolveOutputPath(str(key), workingDir));
  return {
    timestamp,
    clusterId: str('cluster_id'),
    zone: str('zone'),
    runUser: str('run_user'),
    // Empty: the daemon names the job after its task.
    name: str('name'),
    cmdLine: str('cmd_line'),
    inputFile: resolvePath(str('input_file'), workingDir),
    coreLimit: num('core_limit'),
    memLimit: num('mem_limit'),
    timeLimit: num('time_limit'),
    resourceLimit: str('resource_limit'),
    hpcqueueId: str('hpcqueue_id'),
    schedulerQueueName: str('queue'),
    stdoutRedirectPath: outputPath('stdout'),
    stderrRedirectPath: outputPath('stderr'),
    priority: num('priority'),
    submitType: 1,
    // The group's client_token covers every task.
    clientToken: '',
    argv: [...((v.argv as string[] | undefined) ?? [])],
    env: { ...((v.env as Record<string, string> | undefined) ?? {}) },
    workingDir,
    description: str('description'),
    dependsOn: [],
    retry: v.retry === undefined ? undefined : { ...(v.retry as RetryPolicy), exitCodes: [...(v.retry as RetryPolicy).exitCodes] },
    taskName: str('task_name'),
    array: undefined,
    beginTime: '',
    hold: false,
  };
}
