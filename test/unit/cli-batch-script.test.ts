import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkOutputPattern,
  jobNameFromPath,
  parseBatchDirectives,
  parseSlurmTime,
  readBatchScript,
  resolveOutputPath,
  splitWords,
} from '../../src/cli/batch-script.js';
import { buildSubmitRequest, loadBatchScript, mergeBatchScript, retryPolicy, type BatchScriptSource, type SubmitOptions } from '../../src/cli/commands/submit.js';
import { UsageError } from '../../src/cli/errors.js';
import { parseExitCodes } from '../../src/cli/submit-syntax.js';
import { DependencyCondition } from '../../src/gen/hpcq/v1/job.js';

const script = (...lines: string[]) => lines.join('\n') + '\n';

describe('parseBatchDirectives', () => {
  it.each<[string, string, { flag: string; value?: string; line: number; directive: string }[]]>([
    [
      'every option form, several on one line',
      script('#!/bin/bash', '#SBATCH -J sim', '#SBATCH --time=30', '#SBATCH -c 4 --mem 2G', '#SBATCH -pdebug', '#SBATCH --requeue'),
      [
        { flag: '-J', value: 'sim', line: 2, directive: '#SBATCH' },
        { flag: '--time', value: '30', line: 3, directive: '#SBATCH' },
        { flag: '-c', value: '4', line: 4, directive: '#SBATCH' },
        { flag: '--mem', value: '2G', line: 4, directive: '#SBATCH' },
        { flag: '-p', value: 'debug', line: 5, directive: '#SBATCH' },
        { flag: '--requeue', line: 6, directive: '#SBATCH' },
      ],
    ],
    [
      '#HPCQ and #SBATCH mixed, with blank lines and comments between them',
      script('#!/bin/sh', '#HPCQ -J a', '', '# a comment', '#SBATCH\t-t 5', '   ', '#HPCQ --comment=x'),
      [
        { flag: '-J', value: 'a', line: 2, directive: '#HPCQ' },
        { flag: '-t', value: '5', line: 5, directive: '#SBATCH' },
        { flag: '--comment', value: 'x', line: 7, directive: '#HPCQ' },
      ],
    ],
    [
      'directives after the first command are ordinary comments',
      script('#!/bin/sh', '#SBATCH -J before', 'echo hi', '#SBATCH -J after', '#SBATCH --gres=gpu:1'),
      [{ flag: '-J', value: 'before', line: 2, directive: '#SBATCH' }],
    ],
    [
      'an indented command also ends the head',
      script('#SBATCH -J a', '  module load x', '#SBATCH -J b'),
      [{ flag: '-J', value: 'a', line: 1, directive: '#SBATCH' }],
    ],
    [
      'lookalikes are comments: ##SBATCH, #SBATCHX, indented, lower case, #! after line 1',
      script('##SBATCH -J a', '#SBATCHX -J b', ' #SBATCH -J c', '#sbatch -J d', '#!SBATCH -J e', '#SBATCH', '#SBATCH -J f'),
      [{ flag: '-J', value: 'f', line: 7, directive: '#SBATCH' }],
    ],
    [
      'quotes, escapes and trailing comments',
      script(
        `#SBATCH --comment "a b # c" -J 'x y'`,
        `#SBATCH --comment=it\\'s # not part of it`,
        `#SBATCH --comment="say \\"hi\\" \\$HOME" --export=A='1 2'`,
        `#SBATCH --comment=a#b`,
        `#SBATCH -J '' --comment=""`,
      ),
      [
        { flag: '--comment', value: 'a b # c', line: 1, directive: '#SBATCH' },
        { flag: '-J', value: 'x y', line: 1, directive: '#SBATCH' },
        { flag: '--comment', value: "it's", line: 2, directive: '#SBATCH' },
        { flag: '--comment', value: 'say "hi" $HOME', line: 3, directive: '#SBATCH' },
        { flag: '--export', value: 'A=1 2', line: 3, directive: '#SBATCH' },
        { flag: '--comment', value: 'a#b', line: 4, directive: '#SBATCH' },
        { flag: '-J', value: '', line: 5, directive: '#SBATCH' },
        { flag: '--comment', value: '', line: 5, directive: '#SBATCH' },
      ],
    ],
    [
      'CRLF line ends and a byte order mark',
      '\uFEFF#!/bin/sh\r\n#SBATCH -J win\r\n#SBATCH -t 1\r\necho\r\n',
      [
        { flag: '-J', value: 'win', line: 2, directive: '#SBATCH' },
        { flag: '-t', value: '1', line: 3, directive: '#SBATCH' },
      ],
    ],
    [
      'a known option takes the next word even if it starts with -; an unknown one only if it does not',
      script('#SBATCH --comment -x -J y', '#SBATCH --gres gpu:1 --exclusive -J z'),
      [
        { flag: '--comment', value: '-x', line: 1, directive: '#SBATCH' },
        { flag: '-J', value: 'y', line: 1, directive: '#SBATCH' },
        { flag: '--gres', value: 'gpu:1', line: 2, directive: '#SBATCH' },
        { flag: '--exclusive', line: 2, directive: '#SBATCH' },
        { flag: '-J', value: 'z', line: 2, directive: '#SBATCH' },
      ],
    ],
    ['no directives at all', script('#!/bin/sh', 'echo hi'), []],
    ['an empty file', '', []],
  ])('%s', (_, text, expected) => {
    expect(parseBatchDirectives(text).options).toEqual(expected);
  });

  it.each([
    ['an unterminated quote', script('#!/bin/sh', '', `#SBATCH --comment "open`), /^run\.sh line 3: #SBATCH has an unterminated " quote$/],
    ['a word that is not an option', script('#SBATCH -J a', '#SBATCH sim'), /^run\.sh line 2: #SBATCH takes options, not "sim"$/],
    ['a missing value', script('#SBATCH -t 5 -J'), /^run\.sh line 1: #SBATCH -J needs a value$/],
    ['a lone --', script('#HPCQ --'), /^run\.sh line 1: #HPCQ takes options, not "--"$/],
  ])('refuses %s, naming the line', (_, text, message) => {
    expect(() => parseBatchDirectives(text, 'run.sh')).toThrow(UsageError);
    expect(() => parseBatchDirectives(text, 'run.sh')).toThrow(message);
  });

  it('splits words like a simple shell line', () => {
    expect(splitWords(`  a  'b c'd "e\\"f" g\\ h  # rest`)).toEqual(['a', 'b cd', 'e"f', 'g h']);
    expect(splitWords(`"a\\nb" 'c\\d'`)).toEqual(['a\\nb', 'c\\d']);
    expect(splitWords('')).toEqual([]);
    expect(() => splitWords(`'x`)).toThrow(/unterminated ' quote/);
  });
});

describe('parseSlurmTime: Slurm -t units, a bare number is minutes', () => {
  it.each([
    ['30', 1_800],
    ['0:30', 30],
    ['1:30', 90],
    ['90:00', 5_400],
    ['0:90', 90],
    ['2:00:00', 7_200],
    ['1:02:03', 3_723],
    ['1-2', 93_600],
    ['1-2:3', 93_780],
    ['1-2:3:4', 93_784],
    ['0-0:0:1', 1],
    ['7-00:00:00', 604_800],
    [' 5 ', 300],
  ])('%s -> %i s', (text, seconds) => {
    expect(parseSlurmTime(text)).toBe(seconds);
  });

  it.each([
    ['0', /unlimited/],
    ['0:00', /unlimited/],
    ['UNLIMITED', /no unlimited/],
    ['infinite', /no unlimited/],
    ['-1', /no unlimited/],
    ['1h', /a bare number is minutes/],
    ['1:2:3:4', /use minutes/],
    ['1-', /use minutes/],
    ['-5', /use minutes/],
    ['1.5', /use minutes/],
    ['', /use minutes/],
    ['9'.repeat(20), /too large/],
  ])('refuses %j', (text, message) => {
    expect(() => parseSlurmTime(text)).toThrow(message);
  });
});

describe('directives as submit options', () => {
  const read = (text: string) => readBatchScript(text, 'run.sh', '/home/u/proj');

  it('maps every supported option', () => {
    expect(
      read(
        script(
          '#!/bin/sh',
          '#SBATCH --job-name=sim',
          '#SBATCH --cpus-per-task 4',
          '#SBATCH --mem=1536M',
          '#SBATCH -t 1-0',
          '#SBATCH --partition debug',
          '#SBATCH -o logs/%x-%j.out -e /tmp/%u-%%.err',
          '#SBATCH -D work',
          '#SBATCH --export=ALL,OMP_NUM_THREADS=4,X=a=b',
          '#SBATCH --export NONE,Y=2',
          '#SBATCH -d afterok:12:13 --dependency=afterany:14',
          '#SBATCH --comment "a long run"',
          '#HPCQ -N 1 --nodes=1-1 -n 1',
        ),
      ),
    ).toEqual({
      name: 'sim',
      coreLimit: 4,
      memLimit: 1536,
      timeLimit: 86_400,
      queue: 'debug',
      stdout: 'logs/%x-%j.out',
      stderr: '/tmp/%u-%%.err',
      chdir: '/home/u/proj/work',
      export: { OMP_NUM_THREADS: '4', X: 'a=b', Y: '2' },
      dependency: [
        { jobId: '12', condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_OK },
        { jobId: '13', condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_OK },
        { jobId: '14', condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_ANY },
      ],
      description: 'a long run',
    });
  });

  it('short and long forms are the same; a later directive overrides an earlier one', () => {
    expect(read(script('#SBATCH -J a -c2 --mem 4G', '#HPCQ --job-name b -t 90', '#SBATCH -D /abs -D ../other'))).toEqual({
      name: 'b',
      coreLimit: 2,
      memLimit: 4096,
      timeLimit: 5_400,
      chdir: '/home/u/other',
    });
    expect(read(script('#SBATCH --export=ALL'))).toEqual({ export: {} });
    expect(read(script('#SBATCH --mem=512'))).toEqual({ memLimit: 512 });
    expect(read(script('#SBATCH --mem=1G --mem=100K'))).toEqual({ memLimit: 1 });
    expect(read(script('#SBATCH --array=0-99%10 -o /x/%A_%a.out'))).toEqual({ array: { count: 100, parallelism: 10 }, stdout: '/x/%A_%a.out' });
    expect(read(script('#SBATCH -a 5'))).toEqual({ array: { count: 5, parallelism: 0 } });
  });

  it.each([
    ['an unknown option, by line', script('#!/bin/sh', '#SBATCH -J x', '', '#SBATCH --gres=gpu:1'), 'run.sh line 4: #SBATCH --gres is not supported by hpcq'],
    ['an unknown short option', script('#HPCQ -A project'), 'run.sh line 1: #HPCQ -A is not supported by hpcq'],
    ['an unknown option without value', script('#SBATCH --exclusive'), 'run.sh line 1: #SBATCH --exclusive is not supported by hpcq'],
    ['an --array index set that does not start at 0', script('#SBATCH -J x', '#SBATCH --array=1-3'), /^run\.sh line 2: #SBATCH --array.*N, 0-M/],
    ['an --array list', script('#SBATCH -a 1,3,5'), /^run\.sh line 1: #SBATCH -a: --array takes N, 0-M/],
    ['--requeue', script('#SBATCH --requeue'), 'run.sh line 1: #SBATCH --requeue is not supported by hpcq'],
    ['--no-requeue', script('#SBATCH --no-requeue'), 'run.sh line 1: #SBATCH --no-requeue is not supported by hpcq'],
    ['a value for a flag', script('#SBATCH --requeue=yes'), 'run.sh line 1: #SBATCH --requeue takes no value'],
    ['more than one node', script('#SBATCH -N 2'), 'run.sh line 1: #SBATCH -N 2 is not supported: an hpcq job runs on one node'],
    ['more than one task', script('#SBATCH --ntasks=4'), 'run.sh line 1: #SBATCH --ntasks 4 is not supported: an hpcq job is one task (give its cores with -c)'],
    ['a bad time', script('#SBATCH -t 1h'), /^run\.sh line 1: #SBATCH -t: invalid time "1h": /],
    ['a time of 0', script('#SBATCH --time=0'), /^run\.sh line 1: #SBATCH --time: invalid time "0": .*unlimited/],
    ['a bad size', script('#SBATCH --mem=lots'), /^run\.sh line 1: #SBATCH --mem: invalid memory size "lots"/],
    ['--mem=0', script('#SBATCH --mem=0'), /--mem=0 \(all of the node's memory\) is not supported/],
    ['0 cores', script('#SBATCH -c 0'), /^run\.sh line 1: #SBATCH -c: the core count must be at least 1/],
    ['a bad core count', script('#SBATCH -c two'), /^run\.sh line 1: #SBATCH -c: invalid core count "two"/],
    ['a list of partitions', script('#SBATCH -p a,b'), /^run\.sh line 1: #SBATCH -p: a job goes to one queue/],
    ['an unknown % pattern', script('#SBATCH -o out-%N.txt'), /^run\.sh line 1: #SBATCH -o: %N is not supported in a file name: hpcq expands only %j/],
    ['a zero-padded % pattern', script('#SBATCH --error=e-%4a'), /^run\.sh line 1: #SBATCH --error: %4a \(zero-padding\) is not supported/],
    ['an empty output', script("#SBATCH -o ''"), 'run.sh line 1: #SBATCH -o needs a file name'],
    ['a name without value in --export', script('#SBATCH --export=ALL,PATH'), /^run\.sh line 1: #SBATCH --export: "PATH" without a value is not supported/],
    ['ALL not first in --export', script('#SBATCH --export=A=1,ALL'), 'run.sh line 1: #SBATCH --export: ALL may only be the first item'],
    ['a bad dependency', script('#SBATCH -d singleton'), /^run\.sh line 1: #SBATCH -d: --dependency takes TYPE:ID/],
    ['the first bad directive, not a later one', script('#SBATCH --gres=gpu:1', '#SBATCH --array=1-3'), 'run.sh line 1: #SBATCH --gres is not supported by hpcq'],
  ])('refuses %s, naming the option and its line', (_, text, message) => {
    expect(() => read(text)).toThrow(UsageError);
    expect(() => read(text)).toThrow(message);
  });

  it('checks output file patterns: %j %x %u %% only', () => {
    for (const ok of ['/o/%j.out', '%x-%j-%u.log', '100%%.txt', 'plain']) expect(checkOutputPattern(ok)).toBe(ok);
    expect(() => checkOutputPattern('%4j.out')).toThrow(/%4j \(zero-padding\) is not supported/);
    expect(() => checkOutputPattern('%J.out')).toThrow(/%J is not supported/);
    expect(() => checkOutputPattern('out%')).toThrow(/a % at the end is not supported/);
  });

  it('resolves a relative output path against the working directory', () => {
    expect(resolveOutputPath('logs/%j.out', '/w/d')).toBe('/w/d/logs/%j.out');
    expect(resolveOutputPath('../%j.out', '/w/d/')).toBe('/w/%j.out');
    expect(resolveOutputPath('/abs/%j', '/w')).toBe('/abs/%j');
    expect(resolveOutputPath('~/o/%j', '/w')).toBe('~/o/%j');
    expect(resolveOutputPath('logs/', '/w')).toBe('/w/logs/');
    expect(resolveOutputPath('rel', 'not-absolute')).toBe('rel');
  });

  it.each([
    ['run.sh', 'run_sh'],
    ['/home/u/jobs/sim-2.slurm', 'sim-2_slurm'],
    ['my job (v2).sh', 'my_job__v2__sh'],
    ['2nd.sh', 'j2nd_sh'],
    ['_x', '_x'],
    ['é.sh', '__sh'],
    ['a'.repeat(80), 'a'.repeat(64)],
  ])('names a job after its script: %s -> %s', (path, name) => {
    expect(jobNameFromPath(path)).toBe(name);
  });
});

describe('submitting a batch script: command-line options win over directives', () => {
  const base: SubmitOptions = { submitType: 1 };
  const now = Date.parse('2026-01-02T03:04:05Z');
  const source = (...lines: string[]): BatchScriptSource => ({ path: '/home/u/proj/run.sh', text: script('#!/bin/sh', ...lines, 'srun ./sim'), cwd: '/home/u/proj', displayName: 'run.sh' });
  const full = source(
    '#SBATCH -J scripted -c 2 --mem=256M -t 2 -p debug',
    '#SBATCH -o out/%x-%j.out',
    '#SBATCH --export=GREETING=hi,A=1 -d 7 --comment=from-script',
  );

  it('takes the directives when the command line gives nothing', () => {
    expect(buildSubmitRequest(base, ['run.sh'], now, full)).toMatchObject({
      name: 'scripted',
      inputFile: '/home/u/proj/run.sh',
      cmdLine: '',
      argv: [],
      coreLimit: 2,
      memLimit: 256,
      timeLimit: 120,
      schedulerQueueName: 'debug',
      stdoutRedirectPath: '/home/u/proj/out/%x-%j.out',
      stderrRedirectPath: '/home/u/proj/out/%x-%j.out',
      workingDir: '/home/u/proj',
      env: { GREETING: 'hi', A: '1' },
      dependsOn: [{ jobId: '7', condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_OK }],
      description: 'from-script',
      retry: undefined,
    });
  });

  it('lets every command-line option win; --time-limit keeps its own units', () => {
    const req = buildSubmitRequest(
      {
        ...base,
        name: 'cli',
        coreLimit: 1,
        memLimit: 512,
        timeLimit: 30,
        queue: 'normal',
        stdout: '/tmp/o',
        chdir: '/scratch',
        export: { B: '2' },
        dependency: [{ jobId: '9', condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_ANY }],
        description: 'from-cli',
      },
      ['run.sh'],
      now,
      full,
    );
    expect(req).toMatchObject({
      name: 'cli',
      coreLimit: 1,
      memLimit: 512,
      timeLimit: 30,
      schedulerQueueName: 'normal',
      stdoutRedirectPath: '/tmp/o',
      stderrRedirectPath: '/tmp/o',
      workingDir: '/scratch',
      env: { B: '2' },
      dependsOn: [{ jobId: '9', condition: DependencyCondition.DEPENDENCY_CONDITION_AFTER_ANY }],
      description: 'from-cli',
      inputFile: '/home/u/proj/run.sh',
    });
  });

  it('defaults the name to the file name and the working directory to where hpcq submit runs', () => {
    expect(buildSubmitRequest(base, ['run.sh'], now, source())).toMatchObject({ name: 'run_sh', workingDir: '/home/u/proj', stdoutRedirectPath: '', stderrRedirectPath: '' });
  });

  it('resolves -D against the current directory and -o/-e against the working directory', () => {
    const s = source('#SBATCH -D sub -o o.txt -e /abs/e.txt');
    expect(buildSubmitRequest(base, ['run.sh'], now, s)).toMatchObject({ workingDir: '/home/u/proj/sub', stdoutRedirectPath: '/home/u/proj/sub/o.txt', stderrRedirectPath: '/abs/e.txt' });
    // A -D on the command line moves the directive's relative outputs along.
    expect(buildSubmitRequest({ ...base, chdir: '/scratch' }, ['run.sh'], now, s)).toMatchObject({ workingDir: '/scratch', stdoutRedirectPath: '/scratch/o.txt' });
    // -e alone leaves stdout to the daemon's default; the command line's paths are sent as given.
    expect(buildSubmitRequest(base, ['run.sh'], now, source('#SBATCH -e e.txt'))).toMatchObject({ stdoutRedirectPath: '', stderrRedirectPath: '/home/u/proj/e.txt' });
    expect(buildSubmitRequest({ ...base, stderr: '~/e' }, ['run.sh'], now, source('#SBATCH -o o.txt'))).toMatchObject({ stdoutRedirectPath: '/home/u/proj/o.txt', stderrRedirectPath: '~/e' });
  });

  it('refuses script arguments, another command form, and reports bad directives with the script name', () => {
    expect(() => buildSubmitRequest(base, ['run.sh', 'arg'], now, full)).toThrow(/run\.sh is a file, so it is submitted as a batch script, which takes no arguments \(arg\).*--cmd-line '\/home\/u\/proj\/run\.sh arg'/);
    expect(() => mergeBatchScript({ ...base, cmdLine: 'true' }, full)).toThrow(UsageError);
    expect(() => mergeBatchScript({ ...base, argv: true }, full)).toThrow(UsageError);
    expect(() => mergeBatchScript(base, { ...full, path: 'run.sh' })).toThrow(/must be absolute/);
    expect(() => buildSubmitRequest({ ...base, name: 'x' }, ['run.sh'], now, source('#SBATCH --gres=gpu:1'))).toThrow('run.sh line 2: #SBATCH --gres is not supported by hpcq');
  });

  it('requires --name when there is no script', () => {
    expect(() => buildSubmitRequest(base, ['true'], now)).toThrow(UsageError);
    expect(() => buildSubmitRequest(base, ['true'], now)).toThrow(/--name is required/);
  });
});

describe('loadBatchScript', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-batch-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'run.sh'), script('#!/bin/sh', '#SBATCH -J from-file', 'echo hi'));
  mkdirSync(join(dir, 'subdir'));

  it('reads the only word as a script when it is an existing file', () => {
    expect(loadBatchScript({ submitType: 1 }, ['run.sh'], dir)).toEqual({
      path: join(dir, 'run.sh'),
      text: script('#!/bin/sh', '#SBATCH -J from-file', 'echo hi'),
      cwd: dir,
      displayName: 'run.sh',
    });
    expect(loadBatchScript({ submitType: 1 }, [join(dir, 'run.sh')], '/')?.path).toBe(join(dir, 'run.sh'));
  });

  it('leaves command lines, directories, missing files and other command forms alone', () => {
    expect(loadBatchScript({ submitType: 1 }, [], dir)).toBeUndefined();
    expect(loadBatchScript({ submitType: 1 }, ['no-such.sh'], dir)).toBeUndefined();
    expect(loadBatchScript({ submitType: 1 }, ['subdir'], dir)).toBeUndefined();
    expect(loadBatchScript({ submitType: 1 }, ['sleep 10; exit 3'], dir)).toBeUndefined();
    expect(loadBatchScript({ submitType: 1, argv: true }, ['run.sh'], dir)).toBeUndefined();
    expect(loadBatchScript({ submitType: 1, inputFile: '/x' }, ['run.sh'], dir)).toBeUndefined();
  });

  it('refuses arguments after a script', () => {
    expect(() => loadBatchScript({ submitType: 1 }, ['run.sh', '1', 'two words'], dir)).toThrow(/takes no arguments \(1 two words\)/);
  });
});

describe('retry flags', () => {
  it('send no policy unless asked', () => {
    expect(retryPolicy({ submitType: 1 })).toBeUndefined();
    expect(buildSubmitRequest({ name: 'x', submitType: 1 }, ['true']).retry).toBeUndefined();
  });

  it('map to the RetryPolicy', () => {
    expect(buildSubmitRequest({ name: 'x', submitType: 1, maxRetries: 3, retryOnTimeout: true, retryOnOom: true, retryExitCodes: [1, 75], retryBackoff: 60 }, ['true']).retry).toEqual({
      maxRetryCount: 3,
      retryOnTimeout: true,
      retryOnOutOfMemory: true,
      exitCodes: [1, 75],
      backoffSeconds: 60,
    });
    expect(retryPolicy({ submitType: 1, maxRetries: 0 })).toEqual({ maxRetryCount: 0, retryOnTimeout: false, retryOnOutOfMemory: false, exitCodes: [], backoffSeconds: 0 });
  });

  it('refuse refinements without --max-retries', () => {
    expect(() => retryPolicy({ submitType: 1, retryOnTimeout: true })).toThrow(/need --max-retries/);
    expect(() => retryPolicy({ submitType: 1, retryBackoff: 5 })).toThrow(UsageError);
  });

  it('--retry-exit-codes takes comma-separated integers, repeatable', () => {
    expect(parseExitCodes('1,75')).toEqual([1, 75]);
    expect(parseExitCodes('3', [1])).toEqual([1, 3]);
    expect(() => parseExitCodes('1,x')).toThrow(/invalid exit code "x"/);
    expect(() => parseExitCodes(',')).toThrow(/comma-separated list/);
  });
});
