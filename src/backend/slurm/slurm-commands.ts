/**
 * Runs Slurm's commands: as root for reading the queue, as the job's user for sbatch and its own
 * scancel (setpriv with the user's uid, gid and supplementary groups, so munge vouches for the real
 * user and Slurm's accounting and limits apply; never `sbatch --uid`). Every command has a
 * deadline and a clean environment (only what Slurm needs to find the cluster).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { UserAccount } from '../../core/ports.js';

export interface SlurmCommandOptions {
  /** Directory of sbatch, squeue, ...; default: found on PATH (/usr/bin, /usr/local/bin, ...). */
  binDir?: string;
  /** SLURM_CONF and the like, for a cluster whose config is not in the default place. */
  env: Readonly<Record<string, string>>;
  /** Deadline of one command. */
  timeoutMs: number;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const SEARCH_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin';
/** Output beyond this is cut (squeue of 10,000 jobs is about 700 KB). */
const MAX_OUTPUT = 64 * 1024 * 1024;

export class SlurmCommands {
  constructor(private readonly options: SlurmCommandOptions) {}

  /** Runs `program` as root (the daemon), or as `user` when given; never rejects. */
  run(program: string, args: readonly string[], opts: { user?: UserAccount; input?: string } = {}): Promise<CommandResult> {
    const path = this.options.binDir ? join(this.options.binDir, program) : program;
    const user = opts.user;
    const env: Record<string, string> = { PATH: SEARCH_PATH, LANG: 'C', ...this.options.env };
    if (user) Object.assign(env, { HOME: user.home, USER: user.name, LOGNAME: user.name });
    const [file, argv] = user
      ? ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', path, ...args]]
      : [path, [...args]];
    return new Promise((resolve) => {
      const child = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'], cwd: '/' });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.options.timeoutMs);
      child.stdout.on('data', (d: Buffer) => {
        if (stdout.length < MAX_OUTPUT) stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 65536) stderr += d.toString();
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
      const done = (code: number | null) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr, timedOut });
      };
      child.once('error', (err) => {
        stderr += err.message;
        done(null);
      });
      child.once('close', (code) => done(code));
    });
  }
}

/** One line saying why a command failed, for reasons and logs. */
export function failureText(program: string, r: CommandResult): string {
  if (r.timedOut) return `${program} did not answer in time`;
  const first = r.stderr.trim().split('\n')[0] ?? '';
  return `${program} exited ${r.code ?? 'on a signal'}${first ? `: ${first.slice(0, 200)}` : ''}`;
}
