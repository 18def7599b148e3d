// Runs once before all test files: creates the Unix test accounts (as root) so that parallel
// test files never race on useradd, and makes sure those accounts can run the built CLI.
import { execFileSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ensureTestUsers, isRoot, JOB_USER } from './privileged.js';
import { prepareSharedSlurm } from './slurm-cluster.js';

const PACKAGE_ROOT = resolve(import.meta.dirname, '..', '..');

export default function setup(): () => Promise<void> {
  if (ensureTestUsers() && isRoot) letTestUsersReachCheckout();
  // Started only if a test file asks for it (sharedSlurmCluster); stopped after the run.
  return prepareSharedSlurm();
}

/**
 * Access tests run the CLI as the test accounts, so they must be able to reach the checkout. A
 * clone under a private directory (e.g. /root) is made traversable (o+x, not listable) on this
 * test machine, and says so.
 */
function letTestUsersReachCheckout(): void {
  const canRead = () => {
    try {
      execFileSync('setpriv', ['--reuid', JOB_USER, '--regid', JOB_USER, '--init-groups', '--', 'test', '-r', `${PACKAGE_ROOT}/package.json`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (canRead()) return;
  for (let dir = PACKAGE_ROOT; ; dir = dirname(dir)) {
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(dir, mode | 0o001);
      process.stderr.write(`test setup: made ${dir} traversable (o+x) so the test accounts can run the CLI\n`);
    }
    if (dir === dirname(dir)) break;
  }
}
