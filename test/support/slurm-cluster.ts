/**
 * A real single-node Slurm cluster for tests (groundwork for a `backend: slurm`), run by
 * scripts/slurm-test-cluster.sh: the script installs Slurm from Debian's packages when missing and
 * runs munged, slurmctld and slurmd without systemd, everything under one temp dir per cluster.
 * Needs root: slurmd starts jobs as their users.
 */
import { execFile } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { isRoot } from './privileged.js';

const execFileAsync = promisify(execFile);

export const SLURM_SCRIPT = resolve(import.meta.dirname, '..', '..', 'scripts', 'slurm-test-cluster.sh');

export interface SlurmCluster {
  /** Holds the cluster's config, munge key and socket, state, spool and logs. */
  dir: string;
  /** What Slurm commands need to reach this cluster (SLURM_CONF); add it to their environment. */
  env: Record<string, string>;
  /** Cancels the jobs, stops the daemons, kills leftovers and removes `dir`. Idempotent. */
  stop(): Promise<void>;
  /** Stops only slurmctld (a controller outage); jobs keep running under slurmd. */
  stopController(): Promise<void>;
  /** Starts slurmctld again (it recovers its state) and waits until the node is back. */
  startController(): Promise<void>;
}

export interface SlurmClusterOptions {
  /** MinJobAge: seconds a finished job stays visible to scontrol (Slurm's default is 300). */
  minJobAge?: number;
}

/** Runs a subcommand of the script; a failure's message carries the script's stderr (log tails). */
async function script(args: readonly string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const { stdout } = await execFileAsync(SLURM_SCRIPT, args, { env, timeout: timeoutMs, encoding: 'utf8' });
  return stdout;
}

function onPath(program: string): boolean {
  // Root's daemons live in sbin, which a test runner's PATH may lack (the script adds it too).
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Whether this process can run a test cluster: root, with Slurm and munge installed or apt-get to
 * install them. Use with need(...) so CI fails instead of skipping.
 */
export function slurmAvailable(): boolean {
  if (!isRoot) return false;
  return ['slurmctld', 'slurmd', 'munged', 'sbatch'].every(onPath) || onPath('apt-get');
}

/** Installs Slurm if needed and starts a cluster in a fresh temp dir; resolves once the node is idle. */
export async function startSlurmCluster(options: SlurmClusterOptions = {}): Promise<SlurmCluster> {
  // apt-get may have to download and unpack the packages first: minutes on a slow mirror.
  await script(['install'], 600_000);
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-slurm-'));
  // mkdtemp makes the dir 0700; the job users' sbatch and squeue must read slurm.conf in it and
  // reach the munge socket under it.
  chmodSync(dir, 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (options.minJobAge !== undefined) env.HPCQ_SLURM_MIN_JOB_AGE = String(options.minJobAge);
  let stdout: string;
  try {
    stdout = await script(['start', dir], 120_000, env);
  } catch (err) {
    // Whatever did start must not outlive a failed start.
    await script(['stop', dir], 60_000).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  // stdout is only KEY=value lines, by the script's contract.
  const clusterEnv: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) clusterEnv[line.slice(0, eq)] = line.slice(eq + 1);
  }
  if (!clusterEnv.SLURM_CONF) throw new Error(`${SLURM_SCRIPT} start printed no SLURM_CONF: ${JSON.stringify(stdout)}`);
  let stopped = false;
  return {
    dir,
    env: clusterEnv,
    stop: async () => {
      if (stopped) return;
      await script(['stop', dir], 60_000);
      stopped = true;
      rmSync(dir, { recursive: true, force: true });
    },
    stopController: async () => void (await script(['stop-ctld', dir], 60_000)),
    startController: async () => void (await script(['start-ctld', dir], 120_000)),
  };
}

/** Set by the global setup: the directory of the one Slurm cluster a test run shares. */
export const SHARED_SLURM_ENV = 'HPCQ_TEST_SLURM_DIR';

/**
 * The test run's Slurm cluster, started by the first test file that asks (installing Slurm if
 * needed) and stopped by the global teardown: one cluster per run, since two on one machine would
 * share ports and cgroups. MinJobAge is 2 s, so that a test can see a finished job purged.
 */
export async function sharedSlurmCluster(): Promise<Omit<SlurmCluster, 'stop'>> {
  const shared = process.env[SHARED_SLURM_ENV];
  if (!shared) throw new Error(`${SHARED_SLURM_ENV} is not set: run the tests through vitest (global setup)`);
  const dir = join(shared, 'cluster');
  const envFile = join(shared, 'env.json');
  const failedFile = join(shared, 'failed');
  let starter = false;
  try {
    mkdirSync(join(shared, 'lock'));
    starter = true;
  } catch {
    // Another test file starts it: wait for its outcome below.
  }
  if (starter) {
    try {
      await script(['install'], 600_000);
      mkdirSync(dir, { mode: 0o755 });
      chmodSync(dir, 0o755);
      const stdout = await script(['start', dir], 120_000, { ...process.env, HPCQ_SLURM_MIN_JOB_AGE: '2' });
      writeFileSync(join(shared, 'started'), '');
      const env: Record<string, string> = {};
      for (const line of stdout.split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
      }
      writeFileSync(envFile, JSON.stringify(env));
    } catch (err) {
      writeFileSync(failedFile, String((err as Error).message));
      throw err;
    }
  }
  for (const deadline = Date.now() + 660_000; !existsSync(envFile); ) {
    if (existsSync(failedFile)) throw new Error(`the shared Slurm cluster did not start: ${readFileSync(failedFile, 'utf8')}`);
    if (Date.now() > deadline) throw new Error('timed out waiting for the shared Slurm cluster');
    await new Promise((r) => setTimeout(r, 500));
  }
  const env = JSON.parse(readFileSync(envFile, 'utf8')) as Record<string, string>;
  return {
    dir,
    env,
    stopController: async () => void (await script(['stop-ctld', dir], 60_000)),
    startController: async () => void (await script(['start-ctld', dir], 120_000)),
  };
}

/** For the global setup: a directory for the shared cluster, and its teardown. */
export function prepareSharedSlurm(): () => Promise<void> {
  const shared = mkdtempSync(join(tmpdir(), 'hpcq-slurm-run-'));
  // Job users read slurm.conf and reach the munge socket below it.
  chmodSync(shared, 0o755);
  process.env[SHARED_SLURM_ENV] = shared;
  return async () => {
    if (existsSync(join(shared, 'started')) || existsSync(join(shared, 'lock'))) await script(['stop', join(shared, 'cluster')], 60_000).catch(() => undefined);
    rmSync(shared, { recursive: true, force: true });
  };
}
