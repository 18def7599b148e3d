/**
 * Who may do what: the access decisions, as pure functions over a principal, the configured policy
 * and the accounts involved. The API authenticates (src/access/) and the engine asks these; nothing
 * else decides. Read as a table:
 *
 * - admin: uid 0, the daemon's own uid (a personal daemon), a member of `admin_groups`, or a
 *   principal listed with `admin: true`. Sees and acts on every job; may submit as any allowed account.
 * - run as: a caller may submit as its own account; a listed principal also as its `run_users`
 *   (names, or `@group`); an admin as anyone. Otherwise OperationDenied.RunUserNotAllowed.
 *   Rules name certificate subjects as they are and local accounts as `uid:<n>` or `user:<name>`.
 * - run account: never uid 0 or below `min_uid`, never with group root among its groups unless
 *   `allow_root_group` (OperationDenied.RunUserPrivileged) - for admins too.
 * - queue: a queue with `allowed_users`/`allowed_groups` takes only jobs of those accounts
 *   (OperationDenied.QueueNotAllowed).
 * - jobs: a non-admin sees (get, list, watch) only the jobs it could submit, unless
 *   `job_visibility: all`; another's job answers NOT_FOUND, so ids reveal nothing. Acting on a job
 *   (cancel) needs the same right as submitting it.
 */
import type { AccessConfig, PrincipalRule, QueueConfig } from '../config/daemon-config.js';
import { HpcqError } from './errors.js';
import type { UserAccount } from './ports.js';

/** An authenticated caller. Built by src/access/ from the kernel, a certificate or a token. */
export interface Principal {
  /** `uid:<n>` for a local account, else the certificate subject. */
  name: string;
  /** How the identity was established. */
  via: 'unix' | 'certificate' | 'token';
  /** The Unix account the caller is (local callers and tokens); absent for a certificate principal. */
  account?: UserAccount;
  /** Where the call came from, for the audit log: `uid:<n>/pid:<p>` or `ip:port`. */
  peer: string;
}

/** The policy view of one decision: the access config and the daemon's own uid. */
export interface AccessContext {
  access: AccessConfig;
  daemonUid: number;
}

export function isAdmin(principal: Principal, ctx: AccessContext): boolean {
  const account = principal.account;
  if (account) {
    if (account.uid === 0 || account.uid === ctx.daemonUid) return true;
    if (account.groups.some((g) => ctx.access.adminGroups.includes(g.name))) return true;
  }
  return ruleOf(principal, ctx.access)?.admin === true;
}

/**
 * The `access.principals` entry of a principal. Certificate subjects and local accounts are kept
 * apart, so neither can take the other's rule: a local account (unix socket or token) matches
 * `uid:<n>` or `user:<name>`; a certificate principal matches its subject exactly, and a subject
 * that looks like `uid:`/`user:` matches nothing.
 */
export function ruleOf(principal: Principal, access: AccessConfig): PrincipalRule | undefined {
  if (principal.via === 'certificate') {
    if (/^(uid|user):/.test(principal.name)) return undefined;
    return access.principals.find((p) => p.name === principal.name);
  }
  const account = principal.account;
  if (!account) return undefined;
  return access.principals.find((p) => p.name === `uid:${account.uid}` || p.name === `user:${account.name}`);
}

/** Whether the principal may have jobs run as `runAccount`. */
export function mayRunAs(principal: Principal, runAccount: UserAccount, ctx: AccessContext): boolean {
  if (isAdmin(principal, ctx)) return true;
  if (principal.account !== undefined && principal.account.uid === runAccount.uid) return true;
  const rule = ruleOf(principal, ctx.access);
  if (!rule) return false;
  return rule.runUsers.some((entry) =>
    entry.startsWith('@') ? runAccount.groups.some((g) => g.name === entry.slice(1)) : entry === runAccount.name,
  );
}

/** Throws unless `principal` may run jobs as `runAccount`. */
export function assertMayRunAs(principal: Principal, runAccount: UserAccount, ctx: AccessContext): void {
  if (!mayRunAs(principal, runAccount, ctx)) {
    throw new HpcqError('OperationDenied.RunUserNotAllowed', 'permission', `${principal.name} may not run jobs as ${runAccount.name}`, 'run_user');
  }
}

/** Throws unless jobs may run as this account at all (whoever asks). */
export function assertRunnableAccount(account: UserAccount, ctx: AccessContext): void {
  if (account.uid === 0) {
    throw new HpcqError('OperationDenied.RunUserPrivileged', 'permission', `run_user ${account.name} has uid 0; jobs never run as root`, 'run_user');
  }
  // A personal (non-root) daemon can run jobs only as its own user, whatever that uid is.
  if (ctx.daemonUid !== 0 && account.uid !== ctx.daemonUid) {
    throw new HpcqError('OperationDenied.RunUserNotAllowed', 'permission', `this hpcqd runs unprivileged (uid ${ctx.daemonUid}) and can run jobs only as that user`, 'run_user');
  }
  if (ctx.daemonUid === 0 && account.uid < ctx.access.minUid) {
    throw new HpcqError('OperationDenied.RunUserPrivileged', 'permission', `run_user ${account.name} is a system account (uid ${account.uid} < min_uid ${ctx.access.minUid})`, 'run_user');
  }
  if (!ctx.access.allowRootGroup && (account.gid === 0 || account.groups.some((g) => g.gid === 0))) {
    throw new HpcqError('OperationDenied.RunUserPrivileged', 'permission', `run_user ${account.name} has group root (gid 0); set access.allow_root_group to allow it`, 'run_user');
  }
}

/** Whether the queue takes jobs of `account` (Slurm's AllowGroups / AllowAccounts). */
export function queueAllows(queue: Pick<QueueConfig, 'allowedGroups' | 'allowedUsers'>, account: UserAccount | undefined): boolean {
  if (queue.allowedGroups.length === 0 && queue.allowedUsers.length === 0) return true;
  if (!account) return false;
  return queue.allowedUsers.includes(account.name) || account.groups.some((g) => queue.allowedGroups.includes(g.name));
}

export function assertQueueAllows(queue: Pick<QueueConfig, 'hpcqueueId' | 'allowedGroups' | 'allowedUsers'>, account: UserAccount): void {
  if (!queueAllows(queue, account)) {
    throw new HpcqError('OperationDenied.QueueNotAllowed', 'permission', `queue ${queue.hpcqueueId} does not take jobs of ${account.name}`, 'hpcqueue_id');
  }
}

/** Whether the principal may act on (cancel, hold) a job that runs as `runAccount`. */
export function mayActOnJob(principal: Principal, runAccount: UserAccount, ctx: AccessContext): boolean {
  return mayRunAs(principal, runAccount, ctx);
}

/** Whether the principal may see a job that runs as `runAccount`. */
export function mayViewJob(principal: Principal, runAccount: UserAccount, ctx: AccessContext): boolean {
  return ctx.access.jobVisibility === 'all' || mayActOnJob(principal, runAccount, ctx);
}

/**
 * What a ListJobs may return: every job (`{}`), the jobs of one run_user, or nothing (another
 * user's jobs, shown as none). `requested` is the account of the run_user filter, if one was given
 * and exists. A non-admin lists its own jobs by default; a principal without an account (a
 * certificate acting for several users) names the run_user it lists.
 */
export function listScope(
  principal: Principal,
  requestedName: string,
  requested: UserAccount | undefined,
  ctx: AccessContext,
): { runUser?: string } | 'nothing' {
  if (ctx.access.jobVisibility === 'all' || isAdmin(principal, ctx)) return requestedName ? { runUser: requestedName } : {};
  if (requestedName === '') {
    if (principal.account) return { runUser: principal.account.name };
    throw new HpcqError('MissingParameter.RunUser', 'invalid', `${principal.name} acts for other accounts; give run_user to list one of them`, 'run_user');
  }
  return requested && mayActOnJob(principal, requested, ctx) ? { runUser: requestedName } : 'nothing';
}
