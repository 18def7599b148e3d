/**
 * What the job-model integration tests share: after each test, the jobs of daemons that were
 * killed (and so could not cancel them) are killed, every daemon is stopped and the job user's
 * directories are removed; and the capability check for running jobs as the test accounts.
 */
import { afterEach } from 'vitest';
import { stopAll, type DaemonHandle } from './daemon-harness.js';
import { killJobsOf, removeJobUserDirs } from './durability.js';
import { ensureTestUsers, isRoot, need } from './privileged.js';

/** Registers the clean-up; push a daemon you kill -9 (and restart) onto the returned list. */
export function cleanUpJobTests(): DaemonHandle[] {
  const daemons: DaemonHandle[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0)) await killJobsOf(d.stateDir);
    await stopAll();
    removeJobUserDirs();
  });
  return daemons;
}

/** Root and the test accounts, to run jobs as them (a failure in CI, a skip elsewhere). */
export const canRunJobs = (): boolean => need(isRoot && ensureTestUsers(), 'root and the test accounts');
