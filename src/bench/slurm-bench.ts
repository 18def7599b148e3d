/**
 * A Slurm cluster behind hpcq (backend: slurm), on a single-node Slurm the project's script starts:
 * - 1,000 `true` jobs submitted with sbatch directly (as the bench user), then the same 1,000
 *   through hpcq: submits/s and the time until all are done, side by side in one run;
 * - the daemon's CPU per poll cycle with 10,000 active jobs: parsing one squeue listing of them
 *   and comparing each with the last (squeue's own work is slurmctld's).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { observe, parseSqueue } from '../backend/slurm/slurm-text.js';
import { BenchDaemon } from './bench-daemon.js';
import { mapWithConcurrency } from './concurrency.js';

const indices = (n: number) => Array.from({ length: n }, (_, i) => i);

const execFileAsync = promisify(execFile);
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'slurm-test-cluster.sh');

export interface SlurmFigures {
  jobs: number;
  direct: { submitsPerSecond: number; makespanSeconds: number };
  viaHpcq: { submitsPerSecond: number; makespanSeconds: number };
  daemonCpuMsPerJob: number;
  pollCpuMsPer10k: number;
}

export async function slurmRun(runUser: string, jobs: number): Promise<SlurmFigures> {
  execFileSync(SCRIPT, ['install'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-bench-slurm-'));
  chmodSync(dir, 0o755);
  const cluster = join(dir, 'cluster');
  mkdirSync(cluster, { mode: 0o755 });
  try {
    const out = execFileSync(SCRIPT, ['start', cluster], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, HPCQ_SLURM_MIN_JOB_AGE: '10' } });
    const slurmConf = /^SLURM_CONF=(.*)$/m.exec(out)![1]!;
    const env = { ...process.env, SLURM_CONF: slurmConf };
    const asUser = (args: string[]) => execFileAsync('setpriv', ['--reuid', runUser, '--regid', runUser, '--init-groups', '--', ...args], { env, cwd: '/tmp' });
    const queueEmpty = async () => (await execFileAsync('squeue', ['-h', '-o', '%i'], { env })).stdout.trim() === '';

    // sbatch directly, 16 at a time.
    const t0 = performance.now();
    await mapWithConcurrency(indices(jobs), 16, () => asUser(['sbatch', '--parsable', '-o', '/dev/null', '-e', '/dev/null', '--wrap', 'true']));
    const directSubmitted = performance.now();
    while (!(await queueEmpty())) await new Promise((r) => setTimeout(r, 100));
    const direct = { submitsPerSecond: jobs / ((directSubmitted - t0) / 1000), makespanSeconds: (performance.now() - t0) / 1000 };

    // The same through hpcq.
    const daemon = await BenchDaemon.start(slurmBenchConfig(slurmConf));
    try {
      const t1 = performance.now();
      const cpu0 = daemon.cpuMs();
      const ids: string[] = [];
      await mapWithConcurrency(indices(jobs), 16, async () => {
        ids.push((await daemon.submit({ name: 'bench', runUser, cmdLine: 'true', stdoutRedirectPath: '/dev/null', stderrRedirectPath: '/dev/null' })).jobId);
      });
      const submitted = performance.now();
      await mapWithConcurrency(ids, 64, (id) => daemon.waitFor(id, ['completed', 'failed', 'node_fail', 'cancelled']));
      const viaHpcq = { submitsPerSecond: jobs / ((submitted - t1) / 1000), makespanSeconds: (performance.now() - t1) / 1000 };
      return { jobs, direct, viaHpcq, daemonCpuMsPerJob: (daemon.cpuMs() - cpu0) / jobs, pollCpuMsPer10k: pollParseCpuMs(10_000) };
    } finally {
      await daemon.close();
    }
  } finally {
    execFileSync(SCRIPT, ['stop', cluster], { stdio: ['ignore', 'ignore', 'inherit'] });
    rmSync(dir, { recursive: true, force: true });
  }
}

function slurmBenchConfig(slurmConf: string): string {
  return `
clusters:
  - cluster_id: bench
    zone: bench
    backend: slurm
    slurm:
      conf: ${slurmConf}
      poll_interval_seconds: 1
    queues:
      - hpcqueue_id: hpcq-normal
        scheduler_queue_name: debug
        default: true
        default_mem_mb: 64
        max_pending: 10000000
`;
}

/** CPU of one poll's parse and comparison for `n` active jobs, ms (median of 20). */
function pollParseCpuMs(n: number): number {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${1000 + i}|${i % 3 === 0 ? 'RUNNING' : 'PENDING'}|${i % 3 === 0 ? 'None' : 'Priority'}|N/A|hpcq:hpcjob-${i.toString(36).padStart(8, '0')}:1`);
  const text = lines.join('\n');
  const times: number[] = [];
  for (let round = 0; round < 20; round++) {
    const t0 = process.cpuUsage();
    const byTag = new Map(parseSqueue(text).map((e) => [e.comment, e] as const));
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const e = byTag.get(`hpcq:hpcjob-${i.toString(36).padStart(8, '0')}:1`);
      if (e && observe(e.state, e.reason).kind !== 'pending') changed++;
    }
    const used = process.cpuUsage(t0);
    if (changed === 0) throw new Error('no job observed');
    times.push((used.user + used.system) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[10]!;
}
