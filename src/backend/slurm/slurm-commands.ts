/**
 * Runs Slurm's commands: as root for reading the queue, as the job's user for sbatch and its own
 * scancel (setpriv with the user's uid, gid and supplementary groups, so munge vouches for the real
 * user and Slurm's accounting and limits apply; never `sbatch --uid`). Every command has a
 * deadline and a clean environment (only what Slurm needs to find the cluster).
 */
import { join } from 'node:path';
import type { UserAccount } from '../../core/ports.js';
import { CommandRunner } from '../../system/command-runner.js';
import { CommandSlots } from './command-slots.js';

export interface SlurmCommandOptions {
  /** Directory of sbatch, squeue, ...; default: found on PATH (/usr/bin, /usr/local/bin, ...). */
  binDir?: string;
  /** SLURM_CONF and the like, for a cluster whose config is not in the default place. */
  env: Readonly<Record<string, string>>;
  /** Deadline of one command. */
  timeoutMs: number;
  /** Starts the commands; default: one runner shared by every Slurm cluster of the daemon. */
  runner?: CommandRunner;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const SEARCH_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin';

/**
 * Slurm commands running at once, per daemon: cancelling a 1,000-instance array is 1,000 scancel,
 * which wait their turn here instead of all forking at once (the runner refuses beyond 256).
 */
const commandSlots = new CommandSlots(32);

let sharedRunner: CommandRunner | undefined;

export class SlurmCommands {
  private readonly runner: CommandRunner;

  constructor(private readonly options: SlurmCommandOptions) {
    this.runner = options.runner ?? (sharedRunner ??= new CommandRunner());
  }

  /** Runs `program` as root (the daemon), or as `user` when given; never rejects. */
  async run(program: string, args: readonly string[], opts: { user?: UserAccount; input?: string } = {}): Promise<CommandResult> {
    return commandSlots.run(() => this.runNow(program, args, opts));
  }

  private async runNow(program: string, args: readonly string[], opts: { user?: UserAccount; input?: string }): Promise<CommandResult> {
    const path = this.options.binDir ? join(this.options.binDir, program) : program;
    const user = opts.user;
    const env: Record<string, string> = { PATH: SEARCH_PATH, LANG: 'C', ...this.options.env };
    if (user) Object.assign(env, { HOME: user.home, USER: user.name, LOGNAME: user.name });
    const argv = user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', path, ...args] : [path, ...args];
    const r = await this.runner.run(argv, { env, input: opts.input ?? '', timeoutMs: this.options.timeoutMs });
    return { code: r.code, stdout: r.stdout, stderr: r.startError ?? r.stderr, timedOut: r.timedOut };
  }
}

/** One line saying why a command failed, for reasons and logs. */
export function failureText(program: string, r: CommandResult): string {
  if (r.timedOut) return `${program} did not answer in time`;
  const first = r.stderr.trim().split('\n')[0] ?? '';
  return `${program} exited ${r.code ?? 'on a signal'}${first ? `: ${first.slice(0, 200)}` : ''}`;
}
