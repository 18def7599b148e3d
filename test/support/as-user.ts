/**
 * Runs programs as real Unix users (setpriv --reuid --regid --init-groups), so access-control tests
 * exercise the identity the kernel reports, not one a test claims.
 */
import { execFile } from 'node:child_process';
import { CLI_MAIN } from './daemon-harness.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv` as `user` with its groups (no shell) in `cwd`; never rejects on a non-zero exit. */
export function runAs(user: string, argv: readonly string[], env: Record<string, string> = {}, timeoutMs = 45_000, cwd = '/'): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      'setpriv',
      ['--reuid', user, '--regid', user, '--init-groups', '--', ...argv],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/', ...env }, timeout: timeoutMs, cwd },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(`${argv.join(' ')} as ${user}: ${err.message}\n${stderr}`));
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** Runs the hpcq CLI as `user` against `address` (HPCQ_ADDR); `env` adds e.g. HPCQ_TOKEN; `cwd` is where it runs (default /). */
export function hpcqAs(user: string, address: string, args: readonly string[], env: Record<string, string> = {}, cwd = '/'): Promise<Run> {
  return runAs(user, [process.execPath, CLI_MAIN, ...args], { HPCQ_ADDR: address, ...env }, undefined, cwd);
}

/** `hpcq ... --json` as `user`, parsed; throws with stderr when it fails. */
export async function hpcqJsonAs<T>(user: string, address: string, args: readonly string[], env: Record<string, string> = {}): Promise<T> {
  const run = await hpcqAs(user, address, [...args, '--json'], env);
  if (run.code !== 0) throw new Error(`hpcq ${args.join(' ')} as ${user} exited ${run.code}: ${run.stderr}`);
  return JSON.parse(run.stdout) as T;
}
