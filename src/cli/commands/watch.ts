/** `hpcq watch`: follows WatchJob and prints one line per state change. */
import type { Command } from 'commander';
import { JobState, type Job, type JobEvent } from '../../gen/hpcq/v1/job.js';
import { WatchJobResponse } from '../../gen/hpcq/v1/job_service.js';
import { action, addGlobalOptions, type CommandContext } from '../context.js';
import { isTerminal, jobExitStatus, stateName, watchLine } from '../job-view.js';
import { protoJson } from '../proto-json.js';

export function registerWatch(program: Command): void {
  const cmd = program
    .command('watch')
    .summary('follow a job until it ends')
    .description(
      'Follow a job (WatchJob) and print one line per state change: local time,\n' +
        'job, state, reason (and the exit code or signal at the end).\n' +
        'With --json, each WatchJobResponse is one JSON object per line (JSON Lines).\n' +
        'Exit status: 0 if the job ends COMPLETED, else 1; with --exit-code, the\n' +
        "job's own exit status (its exit code, 128+N if killed by signal N, else 1).",
    )
    .argument('<job>', 'job_id or hpcjob_uuid')
    .option('--history', 'first replay the job\'s stored event log (every state change since submission)')
    .option('--exit-code', 'exit with the job\'s exit status, like submit --wait');
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, opts, id: string) => {
      const jsonLine = (m: WatchJobResponse) => ctx.out(`${JSON.stringify(protoJson(WatchJobResponse, m))}\n`);
      const result = await followJob(ctx, id, {
        history: opts.history === true,
        onChange: ctx.json ? undefined : (line) => ctx.out(`${line}\n`),
        onMessage: ctx.json ? jsonLine : undefined,
      });
      if (opts.exitCode === true) return result.exitStatus;
      return result.job.state === JobState.JOB_STATE_COMPLETED ? 0 : 1;
    }),
  );
}

export interface FollowOptions {
  /** Replay the stored event log first. */
  history: boolean;
  /** Called with each new human-readable line (consecutive duplicates dropped). */
  onChange?: ((line: string) => void) | undefined;
  /** Called with every raw message. */
  onMessage?: ((message: WatchJobResponse) => void) | undefined;
}

export interface FollowResult {
  job: Job;
  exitStatus: number;
}

/** Follows the job until a terminal state; throws if the stream ends before one. */
export async function followJob(ctx: CommandContext, id: string, opts: FollowOptions): Promise<FollowResult> {
  let last: Job | undefined;
  let lastSequence = 0;
  let lastKey = '';
  for await (const message of ctx.client.watchJob(id, opts.history, ctx.streamTimeoutMs)) {
    opts.onMessage?.(message);
    const job = message.job;
    if (!job) continue;
    last = job;
    const event: JobEvent | undefined = message.event;
    if (event) {
      // A replayed event may overlap the live ones; the sequence tells.
      if (event.sequence > 0 && event.sequence <= lastSequence) continue;
      lastSequence = Math.max(lastSequence, event.sequence);
    } else if (opts.history) {
      // The first message is the job as it is now; the replayed history that follows starts at submission.
      continue;
    }
    const key = `${event ? event.state : job.state}\u0000${event ? event.reason : job.reason}`;
    if (key === lastKey) continue;
    lastKey = key;
    opts.onChange?.(watchLine(job, event));
  }
  if (!last) throw new Error(`the watch of job ${id} ended without any message`);
  if (!isTerminal(last.state)) {
    throw new Error(`the watch of job ${last.jobId} ended while it was ${stateName(last.state, last.jobStatus)} (hpcqd stopping?)`);
  }
  return { job: last, exitStatus: jobExitStatus(last) };
}
