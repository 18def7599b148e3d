/**
 * What `hpcq squeue` and `hpcq history` share: Slurm-style comma lists, `--me`, listing across
 * several users and queues (ListJobs filters one of each per call), jobs named with -j, and the
 * node name shown for jobs that ran.
 */
import { hostname } from 'node:os';
import type { Job, JobState } from '../gen/hpcq/v1/job.js';
import type { ListJobsRequest } from '../gen/hpcq/v1/job_service.js';
import type { CommandContext } from './context.js';
import { describeError, renderFailure, UsageError } from './errors.js';
import { parseStates } from './job-view.js';

/** A repeatable option taking comma lists (`-u alice,bob -u carol`); empty items are dropped. */
export function commaList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim()).filter((v) => v !== '')];
}

/** Slurm's -t/--states: state names or short codes, comma lists, or `all` (every state: undefined). */
export function parseStateOption(value: string, previous: JobState[] | 'all' = []): JobState[] | 'all' {
  if (previous === 'all' || value.split(',').some((v) => v.trim().toLowerCase() === 'all')) return 'all';
  return [...new Set([...previous, ...parseStates([value])])];
}

/** The users a listing is for: -u's list plus, with --me, the caller's own account (as the daemon knows it). */
export async function selectedUsers(ctx: CommandContext, users: readonly string[] | undefined, me: boolean | undefined): Promise<string[]> {
  const out = [...(users ?? [])];
  if (me) {
    const who = await ctx.client.whoAmI();
    if (!who.user) throw new UsageError(`--me needs an account, and ${who.principal} is not one; name the user with -u`, 'run_user');
    out.push(who.user);
  }
  return [...new Set(out)];
}

export interface ListAcross {
  users: readonly string[];
  queues: readonly string[];
  /** Follow next_page_token to the end (else one page, and its token is returned). */
  allPages: boolean;
}

/**
 * ListJobs once per (user, queue) pair given (an empty list: no filter on it), merged: newest first
 * (the latest end first for a listing by end time) and without duplicates.
 */
export async function listAcross(ctx: CommandContext, base: ListJobsRequest, across: ListAcross): Promise<{ jobs: Job[]; nextPageToken: string }> {
  const users = across.users.length > 0 ? across.users : [''];
  const queues = across.queues.length > 0 ? across.queues : [''];
  if (!across.allPages && users.length * queues.length > 1) {
    throw new UsageError('--limit and --page-token page through one listing: give at most one user and one queue with them', 'page_size');
  }
  const byId = new Map<string, Job>();
  let nextPageToken = '';
  for (const runUser of users) {
    for (const queue of queues) {
      const request: ListJobsRequest = { ...base, runUser: runUser || base.runUser, queue: queue || base.queue };
      for (;;) {
        const page = await ctx.client.listJobs(request);
        for (const job of page.jobs) byId.set(job.jobId, job);
        nextPageToken = page.nextPageToken;
        if (!across.allPages || nextPageToken === '') break;
        request.pageToken = nextPageToken;
      }
    }
  }
  const jobs = [...byId.values()];
  if (users.length * queues.length > 1) {
    const byEnd = base.endAfter !== undefined || base.endBefore !== undefined;
    const endOf = (j: Job) => Date.parse(j.endTime) || 0;
    jobs.sort((a, b) => (byEnd ? endOf(b) - endOf(a) : 0) || Number(b.jobId) - Number(a.jobId));
  }
  return { jobs, nextPageToken };
}

/**
 * The jobs named with -j (GetJob each, any state), in the order given. A job that cannot be read
 * is reported on stderr; `failed` gives the exit status of the worst failure (0 if none).
 */
export async function namedJobs(ctx: CommandContext, ids: readonly string[]): Promise<{ jobs: Job[]; failed: number }> {
  const jobs: Job[] = [];
  let failed = 0;
  for (const id of ids) {
    try {
      const { job } = await ctx.client.getJob(id);
      if (job) jobs.push(job);
    } catch (err) {
      const failure = describeError(err, { address: ctx.address, timeoutMs: ctx.timeoutMs });
      ctx.err(renderFailure(failure, ctx.json, `${id}: `));
      failed = failed === 1 || failure.exitCode === 1 ? 1 : 2;
    }
  }
  return { jobs, failed };
}

/** The filters of -u, -p, -n and -t applied to jobs read by id (ListJobs applies them server-side otherwise). */
export function matchesFilters(job: Job, f: { users: readonly string[]; queues: readonly string[]; names: readonly string[]; states?: readonly JobState[] }): boolean {
  if (f.users.length > 0 && !f.users.includes(job.runUser)) return false;
  if (f.queues.length > 0 && !f.queues.includes(job.hpcqueueId) && !f.queues.includes(job.schedulerQueueName)) return false;
  if (f.names.length > 0 && !f.names.includes(job.name)) return false;
  return f.states === undefined || f.states.length === 0 || f.states.includes(job.state);
}

/** The node name shown for jobs that ran: this host for a local daemon, else the daemon's host. */
export function nodeName(address: string): string {
  if (address.startsWith('unix:')) return hostname().split('.')[0] ?? 'localhost';
  const host = address.replace(/^[a-z]+:\/\//i, '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host || 'localhost';
}
