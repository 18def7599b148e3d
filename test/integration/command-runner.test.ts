/**
 * hpcq-command-runner through CommandRunner: the real helper program runs real commands (what the
 * Slurm backend starts sbatch, squeue and scancel with).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandRunner } from '../../src/system/command-runner.js';

const ENV = { PATH: '/usr/bin:/bin', LANG: 'C' };
const runner = new CommandRunner();
afterAll(() => runner.close());

describe('hpcq-command-runner', () => {
  it('runs a command with exactly the given environment and stdin, and reports its status and output', async () => {
    const r = await runner.run(['sh', '-c', 'env | sort; cat > /dev/null; echo oops >&2; exit 3'], { env: { ...ENV, ONLY: 'this' }, input: 'x', timeoutMs: 10_000 });
    expect(r).toMatchObject({ code: 3, signal: null, timedOut: false, stderr: 'oops\n' });
    // Only what was given, plus what sh itself sets (PWD, SHLVL, _).
    const names = r.stdout.trim().split('\n').map((l) => l.split('=')[0]);
    expect(names.filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n!))).toEqual(['LANG', 'ONLY', 'PATH']);
    expect(r.stdout).toContain('PWD=/\n');
  });

  it('passes a large stdin through and returns a large stdout whole', async () => {
    const input = 'abcdefghij'.repeat(300_000); // 3 MB: many pipe buffers each way
    const r = await runner.run(['cat'], { env: ENV, input, timeoutMs: 30_000 });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(input.length);
    expect(r.stdout === input).toBe(true);
  });

  it('the command inherits no descriptor of the daemon or the runner: only its three pipes', async () => {
    const r = await runner.run(['sh', '-c', 'ls /proc/$$/fd'], { env: ENV, timeoutMs: 10_000 });
    expect(r.stdout.trim().split('\n').sort()).toEqual(['0', '1', '2']);
  });

  it('a signal, a deadline and a program that does not exist are told apart', async () => {
    const [signalled, late, missing] = await Promise.all([
      runner.run(['sh', '-c', 'kill -TERM $$'], { env: ENV, timeoutMs: 10_000 }),
      runner.run(['sleep', '30'], { env: ENV, timeoutMs: 200 }),
      runner.run(['/nonexistent/hpcq-no-such-program'], { env: ENV, timeoutMs: 10_000 }),
    ]);
    expect(signalled).toMatchObject({ code: null, signal: 15, timedOut: false });
    expect(late).toMatchObject({ code: null, timedOut: true });
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/^cannot run \/nonexistent\/hpcq-no-such-program: No such file or directory/);
  });

  it('runs many commands at once, each answered with its own output', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => runner.run(['sh', '-c', `sleep 0.0$((${i} % 10)); echo ${i}`], { env: ENV, timeoutMs: 30_000 })));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 100 }, (_, i) => `${i}\n`));
  });

  it('keeps at most 64 KiB of stderr and still lets a chatty command finish', async () => {
    const r = await runner.run(['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" x >&2; echo done'], { env: ENV, timeoutMs: 30_000 });
    expect(r).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(r.stderr.length).toBe(65536);
  });

  it('if the runner dies, its commands are answered as not run, and the next command starts a new runner', async () => {
    const own = new CommandRunner();
    try {
      const first = await own.run(['sh', '-c', 'echo $PPID'], { env: ENV, timeoutMs: 10_000 });
      const runnerPid = Number(first.stdout.trim());
      expect(execFileSync('cat', [`/proc/${runnerPid}/comm`], { encoding: 'utf8' }).trim()).toBe('hpcq-command-ru'); // comm: the first 15 characters
      const pending = own.run(['sleep', '30'], { env: ENV, timeoutMs: 60_000 });
      await new Promise((r) => setTimeout(r, 100));
      process.kill(runnerPid, 'SIGKILL');
      expect(await pending).toMatchObject({ code: null, startError: expect.stringMatching(/command runner ended/) });
      const again = await own.run(['sh', '-c', 'echo $PPID'], { env: ENV, timeoutMs: 10_000 });
      expect(again.code).toBe(0);
      expect(Number(again.stdout.trim())).not.toBe(runnerPid);
    } finally {
      own.close();
    }
  });
});
