/** The YAML group file of `hpcq group submit`: what it becomes as a SubmitJobGroupRequest, and what it refuses. */
import { describe, expect, it } from 'vitest';
import { submitRequest } from '../support/submit-request.js';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { UsageError } from '../../src/cli/errors.js';
import { parseGroupFile } from '../../src/cli/group-file.js';

const NOW = Date.parse('2026-03-04T05:06:07Z');
const CWD = '/home/alice/run';
const parseText = (text: string) => parseGroupFile(text, { cwd: CWD, nowMs: NOW, source: 'group.yaml' });

/** A task as the parser builds it when the file gives only its name and command. */
function task(fields: Partial<SubmitJobRequest>): SubmitJobRequest {
  return submitRequest({ timestamp: '2026-03-04T05:06:07Z', submitType: 1, workingDir: CWD, ...fields });
}

/** The error the text is refused with. */
function refusal(text: string): UsageError {
  try {
    parseText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return err as UsageError;
  }
  throw new Error('the group file was accepted');
}

const EXAMPLE = `
name: pipeline
client_token: run-42
defaults:
  queue: normal
  mem_limit: 2G
tasks:
  - task_name: pre_task
    cmd_line: ./prepare.sh
    core_limit: 2
    mem_limit: 4G
    time_limit: 1h
    queue: normal
    run_user: alice
    env: {A: "1"}
    working_dir: /scratch/x
    stdout: /scratch/x/%x-%j.out
    stderr: err/%x-%j.err
    description: prepares the input
    priority: 5
    retry: {max_retry_count: 2, retry_on_timeout: false, retry_on_out_of_memory: true, exit_codes: [75], backoff_seconds: 10}
  - task_name: post_task
    argv: [python3, post.py]
dependences:
  - {start_task: pre_task, end_task: post_task}
`;

describe('parseGroupFile', () => {
  it('turns the documented example into the request, every other field empty', () => {
    expect(parseText(EXAMPLE)).toEqual({
      name: 'pipeline',
      clientToken: 'run-42',
      tasks: [
        task({
          taskName: 'pre_task',
          cmdLine: './prepare.sh',
          coreLimit: 2,
          memLimit: 4096,
          timeLimit: 3600,
          schedulerQueueName: 'normal',
          runUser: 'alice',
          env: { A: '1' },
          workingDir: '/scratch/x',
          stdoutRedirectPath: '/scratch/x/%x-%j.out',
          // Relative: to the task's working directory, as with sbatch -e.
          stderrRedirectPath: '/scratch/x/err/%x-%j.err',
          description: 'prepares the input',
          priority: 5,
          retry: { maxRetryCount: 2, retryOnTimeout: false, retryOnOutOfMemory: true, exitCodes: [75], backoffSeconds: 10 },
        }),
        // Defaults fill in what the task leaves out; the working directory is where hpcq ran.
        task({ taskName: 'post_task', argv: ['python3', 'post.py'], schedulerQueueName: 'normal', memLimit: 2048 }),
      ],
      dependences: [{ startTask: 'pre_task', endTask: 'post_task' }],
    });
  });

  it.each([
    ['"a -> b"', [{ startTask: 'a', endTask: 'b' }]],
    ['"a->b"', [{ startTask: 'a', endTask: 'b' }]],
    [
      '"a -> b -> c"',
      [
        { startTask: 'a', endTask: 'b' },
        { startTask: 'b', endTask: 'c' },
      ],
    ],
    ['{start_task: a, end_task: c}', [{ startTask: 'a', endTask: 'c' }]],
  ])('reads the dependence %s', (dependence, expected) => {
    const text = `name: g\ntasks:\n  - {task_name: a, cmd_line: "true"}\n  - {task_name: b, cmd_line: "true"}\n  - {task_name: c, cmd_line: "true"}\ndependences:\n  - ${dependence}\n`;
    expect(parseText(text).dependences).toEqual(expected);
  });

  it('merges defaults key by key: a task keeps what it sets, queue and hpcqueue_id go together, env and retry are replaced whole', () => {
    const req = parseText(`
name: g
defaults:
  queue: normal
  core_limit: 4
  env: {A: "1", B: "2"}
  retry: {max_retry_count: 1}
  working_dir: /data
  stdout: logs/%j.out
tasks:
  - {task_name: a, cmd_line: x}
  - {task_name: b, cmd_line: x, core_limit: 1, hpcqueue_id: q-1, env: {C: "3"}}
  - {task_name: c, cmd_line: x, working_dir: sub, retry: {max_retry_count: 3, exit_codes: [1, 2]}}
`);
    const [a, b, c] = req.tasks;
    expect(a).toMatchObject({ schedulerQueueName: 'normal', hpcqueueId: '', coreLimit: 4, env: { A: '1', B: '2' }, workingDir: '/data', stdoutRedirectPath: '/data/logs/%j.out' });
    expect(a!.retry).toEqual({ maxRetryCount: 1, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0 });
    expect(b).toMatchObject({ schedulerQueueName: '', hpcqueueId: 'q-1', coreLimit: 1, env: { C: '3' } });
    // A relative working_dir is relative to where hpcq ran; the default stdout to the task's working directory.
    expect(c).toMatchObject({ workingDir: `${CWD}/sub`, stdoutRedirectPath: `${CWD}/sub/logs/%j.out`, coreLimit: 4 });
    expect(c!.retry).toEqual({ maxRetryCount: 3, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [1, 2], backoffSeconds: 0 });
    expect(req.clientToken).toBe('');
  });

  it.each([
    [512, 512],
    ['512', 512],
    ['512M', 512],
    ['4G', 4096],
    ['1.5G', 1536],
    ['1T', 1048576],
  ])('reads mem_limit %j as %d MiB', (value, mib) => {
    expect(parseText(`name: g\ntasks:\n  - {task_name: a, cmd_line: x, mem_limit: ${JSON.stringify(value)}}\n`).tasks[0]!.memLimit).toBe(mib);
  });

  it.each([
    [5400, 5400],
    ['5400', 5400],
    ['1h30m', 5400],
    ['90m', 5400],
    ['01:30:00', 5400],
    ['1-00:00:00', 86400],
  ])('reads time_limit %j as %d s', (value, seconds) => {
    expect(parseText(`name: g\ntasks:\n  - {task_name: a, cmd_line: x, time_limit: ${JSON.stringify(value)}}\n`).tasks[0]!.timeLimit).toBe(seconds);
  });

  it('takes input_file relative to the working directory and stamps every task with the time', () => {
    const req = parseGroupFile('name: g\ntasks:\n  - {task_name: a, input_file: job.sh}\n  - {task_name: b, input_file: /abs/job.sh}\n', { cwd: '/w', nowMs: 0 });
    expect(req.tasks.map((t) => [t.inputFile, t.timestamp, t.submitType])).toEqual([
      ['/w/job.sh', '1970-01-01T00:00:00Z', 1],
      ['/abs/job.sh', '1970-01-01T00:00:00Z', 1],
    ]);
  });

  it.each([
    ['an unknown task key, naming it and the task', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, cpus: 2}\n', /^group\.yaml: task a: unknown key "cpus" \(known keys: task_name, .*\)$/, 'tasks.0.cpus'],
    ['an unknown key of a task without a name', 'name: g\ntasks:\n  - {cmd_line: x, gpus: 1}\n', /^group\.yaml: tasks\[0\]: unknown key "gpus"/, 'tasks.0.gpus'],
    ['an unknown top-level key', 'name: g\ntask:\n  - {task_name: a, cmd_line: x}\n', /^group\.yaml: unknown key "task" in the group file/, 'task'],
    ['an unknown retry key', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, retry: {max_retry_count: 1, retries: 2}}\n', /^group\.yaml: task a: retry: unknown key "retries"/, 'tasks.0.retry.retries'],
    ['an unknown dependence key', 'name: g\ntasks: [{task_name: a, cmd_line: x}]\ndependences:\n  - {start_task: a, end_task: a, after: ok}\n', /^group\.yaml: dependences\[0\]: unknown key "after"/, 'dependences.0.after'],
    ['a command in defaults', 'name: g\ndefaults: {cmd_line: x}\ntasks: [{task_name: a, cmd_line: x}]\n', /^group\.yaml: defaults: unknown key "cmd_line" \(task_name, name and the command cannot be defaults\)/, 'defaults.cmd_line'],
    ['two commands in one task', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, argv: [y]}\n', /^group\.yaml: task a: give exactly one of cmd_line, argv, input_file \(it has cmd_line and argv\)$/, 'tasks.0.argv'],
    ['a task without a command', 'name: g\ntasks:\n  - {task_name: a}\n', /^group\.yaml: task a: give exactly one of cmd_line, argv, input_file$/, 'tasks.0.cmd_line'],
    ['a missing task_name', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x}\n  - {cmd_line: y}\n', /^group\.yaml: tasks\[1\]: task_name is required$/, 'tasks.1.task_name'],
    ['a missing name', 'tasks:\n  - {task_name: a, cmd_line: x}\n', /^group\.yaml: name \(the group's name\) is required$/, 'name'],
    ['missing tasks', 'name: g\n', /^group\.yaml: tasks \(a list of tasks\) is required$/, 'tasks'],
    ['a string core_limit', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, core_limit: "2"}\n', /^group\.yaml: task a: core_limit must be an integer, got "2"$/, 'tasks.0.core_limit'],
    ['a fractional core_limit', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, core_limit: 1.5}\n', /core_limit must be an integer, got 1\.5/, 'tasks.0.core_limit'],
    ['a number as an env value', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, env: {A: 1}}\n', /^group\.yaml: task a: env A must be a string, got 1 \(quote it to make it a string\)$/, 'tasks.0.env'],
    ['a number in argv', 'name: g\ntasks:\n  - {task_name: a, argv: [sleep, 5]}\n', /task a: argv\[1\] must be a string, got 5 \(quote it/, 'tasks.0.argv'],
    ['an empty argv', 'name: g\ntasks:\n  - {task_name: a, argv: []}\n', /task a: argv must not be empty/, 'tasks.0.argv'],
    ['argv as a string', 'name: g\ntasks:\n  - {task_name: a, argv: python3 post.py}\n', /task a: argv must be a list of strings, got "python3 post\.py"/, 'tasks.0.argv'],
    ['a bad memory size', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, mem_limit: 4X}\n', /^group\.yaml: task a: mem_limit: invalid memory size "4X"/, 'tasks.0.mem_limit'],
    ['a bad duration', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, time_limit: soon}\n', /^group\.yaml: task a: time_limit: invalid duration "soon"/, 'tasks.0.time_limit'],
    ['a string boolean', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, retry: {max_retry_count: 1, retry_on_timeout: "yes"}}\n', /retry_on_timeout must be true or false, got "yes"/, 'tasks.0.retry.retry_on_timeout'],
    ['retry without max_retry_count', 'name: g\ntasks:\n  - {task_name: a, cmd_line: x, retry: {exit_codes: [1]}}\n', /task a: retry: retry needs max_retry_count/, 'tasks.0.retry.max_retry_count'],
    ['tasks as a mapping', 'name: g\ntasks: {task_name: a}\n', /^group\.yaml: tasks must be a list, got a mapping$/, 'tasks'],
    ['a dependence without an arrow', 'name: g\ntasks: [{task_name: a, cmd_line: x}]\ndependences: ["a b"]\n', /dependences\[0\]: a dependence is \{start_task: A, end_task: B\} or "A -> B"/, 'dependences.0'],
    ['a dependence without end_task', 'name: g\ntasks: [{task_name: a, cmd_line: x}]\ndependences: [{start_task: a}]\n', /dependences\[0\]: a dependence needs end_task/, 'dependences.0.end_task'],
    ['a list at the top', '- a\n', /^group\.yaml: the group file must be a mapping/, ''],
    ['an empty file', '# nothing\n', /^group\.yaml: the group file is empty/, ''],
    ['a repeated key', 'name: g\nname: h\ntasks: []\n', /^group\.yaml: not valid YAML: Map keys must be unique at line 2, column 1$/, ''],
    ['two documents', 'name: g\n---\nname: h\n', /^group\.yaml: not valid YAML: Source contains multiple documents/, ''],
  ])('refuses %s', (_what, text, message, field) => {
    const err = refusal(text);
    expect(err.message).toMatch(message);
    expect(err.field).toBe(field);
  });

  it('treats an empty value as a key left out', () => {
    const req = parseText('name: g\ndefaults:\ndependences:\ntasks:\n  - task_name: a\n    cmd_line: x\n    argv:\n    stdout:\n');
    expect(req.tasks[0]).toEqual(task({ taskName: 'a', cmdLine: 'x' }));
    expect(req.dependences).toEqual([]);
  });

  it('leaves the checks of names, duplicates and loops to the daemon, passing them through', () => {
    const req = parseText('name: 9bad\ntasks:\n  - {task_name: a, cmd_line: x}\n  - {task_name: a, cmd_line: y}\ndependences: ["a -> a"]\n');
    expect(req.name).toBe('9bad');
    expect(req.tasks.map((t) => t.taskName)).toEqual(['a', 'a']);
    expect(req.dependences).toEqual([{ startTask: 'a', endTask: 'a' }]);
  });
});
