/**
 * Tests that need root, writable cgroups or a second Unix user skip on a developer's machine but
 * must run in CI: there HPCQ_TEST_REQUIRE_PRIVILEGED=1 turns every such skip into a failure.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const requirePrivileged = process.env.HPCQ_TEST_REQUIRE_PRIVILEGED === '1';
export const isRoot = process.getuid?.() === 0;

/**
 * Returns true when the capability is present. When absent: returns false (caller skips) or, in
 * CI, throws so the test fails instead of skipping.
 */
export function need(capability: boolean, what: string): boolean {
  if (capability) return true;
  if (requirePrivileged) throw new Error(`required test capability missing: ${what}`);
  return false;
}

/** The unprivileged account jobs run as in tests, with one supplementary group. */
export const JOB_USER = 'hpcq-job';
export const JOB_USER_GROUP = 'hpcq-grp';
/** A second unprivileged account, for cross-user checks. */
export const OTHER_USER = 'hpcq-other';
/** An unprivileged account in ADMIN_GROUP: an hpcq admin when access.admin_groups names that group. */
export const ADMIN_USER = 'hpcq-admin';
export const ADMIN_GROUP = 'hpcq-admins';

/** Whether the account exists (getent passwd). */
export function userExists(name: string): boolean {
  try {
    execFileSync('getent', ['passwd', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The uid and primary gid of an account (`id -u` / `id -g`). */
const uids = new Map<string, number>();
/** The uid of an account (cached: tests ask often). */
export function uidOf(user: string): number {
  let uid = uids.get(user);
  if (uid === undefined) uids.set(user, (uid = Number(execFileSync('id', ['-u', user]).toString().trim())));
  return uid;
}
export const gidOf = (user: string): number => Number(execFileSync('id', ['-g', user]).toString().trim());

/** Creates the test accounts if missing (root only). Returns whether they exist. */
export function ensureTestUsers(): boolean {
  if (!isRoot) return userExists(JOB_USER) && userExists(OTHER_USER) && userExists(ADMIN_USER);
  for (const group of [JOB_USER_GROUP, ADMIN_GROUP]) {
    try {
      execFileSync('getent', ['group', group], { stdio: 'ignore' });
    } catch {
      execFileSync('groupadd', [group]);
    }
  }
  for (const name of [JOB_USER, OTHER_USER, ADMIN_USER]) {
    if (!userExists(name)) {
      const args = ['--create-home', '--shell', '/bin/sh'];
      if (name === JOB_USER) args.push('--groups', JOB_USER_GROUP);
      if (name === ADMIN_USER) args.push('--groups', ADMIN_GROUP);
      execFileSync('useradd', [...args, name]);
    }
  }
  return existsSync(`/home/${JOB_USER}`);
}
