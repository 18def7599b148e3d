/**
 * `npm run bench`: starts real daemons in temp dirs and prints the figures the issues ask for.
 * `npm run bench -- scale submit` runs only the named sections (submit, access, launch, group,
 * array, schedule, restart, dispatch, scale, metrics, cli).
 * HPCQ_BENCH_SCALE_JOBS sets the size of the history for the scale run (default 1,000,000);
 * HPCQ_BENCH_METRICS_ROUNDS the number of off/on pairs of the metrics run (default 2).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../package-root.js';
import { accessThroughput } from './access-bench.js';
import { arrayRun } from './array-bench.js';
import { benchRunUser } from './bench-daemon.js';
import { cliStartup } from './cli-start-bench.js';
import { restartWithRunningJobs, submitThroughput } from './daemon-bench.js';
import { dispatchPassCost } from './dispatch-bench.js';
import { groupRun } from './group-bench.js';
import { launchRun } from './launch-bench.js';
import { metricsOverhead } from './metrics-bench.js';
import { scaleRun } from './scale-bench.js';
import { dispatchWithWaiting, scheduleTicks } from './schedule-bench.js';
import { slurmRun } from './slurm-bench.js';

function line(label: string, value: string): void {
  process.stdout.write(`${label.padEnd(58)} ${value}\n`);
}
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);

const SECTIONS = ['submit', 'access', 'launch', 'group', 'array', 'schedule', 'restart', 'dispatch', 'scale', 'metrics', 'cli', 'slurm'] as const;

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((a) => !(SECTIONS as readonly string[]).includes(a));
  if (unknown.length > 0) throw new Error(`unknown section(s) ${unknown.join(', ')}; known: ${SECTIONS.join(', ')}`);
  const run = (section: (typeof SECTIONS)[number]) => asked.length === 0 || asked.includes(section);
  const runUser = benchRunUser();
  if (process.env.HPCQ_TEST_IN_CGROUP2_VM !== '1') process.stdout.write(`hpcq benchmark (jobs run as ${runUser})\n`);
  if (run('submit')) await submitSection(runUser);
  if (run('access')) await accessSection(runUser);
  if (run('launch')) await launchSection(runUser);
  if (run('group')) await groupSection(runUser);
  if (run('array')) await arraySection(runUser);
  if (run('schedule')) await scheduleSection(runUser);
  if (run('restart')) await restartSection(runUser);
  if (run('dispatch')) await dispatchSection();
  if (run('scale')) await scaleSection();
  if (run('metrics')) await metricsSection(runUser);
  if (run('cli')) await cliSection();
  if (run('slurm')) await slurmSection(runUser);
}

async function submitSection(runUser: string): Promise<void> {
  process.stdout.write('\n== Durable SubmitJob (jobs stay pending behind a busy core)\n');
  const submits = await submitThroughput(runUser, [1, 8, 32, 64], (c) => (c === 1 ? 3000 : 20000));
  for (const s of submits.figures) {
    line(`  ${s.clients} client(s), ${s.submits} submits`, `${Math.round(s.jobsPerSecond)} jobs/s  (latency p50 ${s.latencyP50Ms.toFixed(2)} ms, p99 ${s.latencyP99Ms.toFixed(2)} ms)`);
  }
  line('  daemon peak RSS', `${f1(submits.peakRssMb)} MiB`);
}

async function accessSection(runUser: string): Promise<void> {
  process.stdout.write(`\n== Durable SubmitJob with identity and policy on (rate limit lifted): as ${runUser} on the unix socket, and over mutual TLS\n`);
  const a = await accessThroughput(runUser, [1, 64], (c) => (c === 1 ? 3000 : 20000));
  for (const [via, runs] of [['unix socket', a.unix], ['mutual TLS', a.mtls]] as const) {
    for (const { clients, figures } of runs) {
      line(`  ${via}, ${clients} client(s)`, `${Math.round(figures.jobsPerSecond)} jobs/s  (latency p50 ${figures.latencyP50Ms.toFixed(2)} ms, p99 ${figures.latencyP99Ms.toFixed(2)} ms)`);
    }
  }
  line('  reading a connection\'s peer credentials (SO_PEERCRED)', `${a.peerCredentialsUs.toFixed(2)} us`);
}

async function launchSection(runUser: string): Promise<void> {
  // Inside the cgroup v2 VM (see launchInVm): this kernel's mode only, smaller, as it may be emulated.
  const inVm = process.env.HPCQ_TEST_IN_CGROUP2_VM === '1';
  const [samples, burst] = inVm ? [50, 200] : [200, 1000];
  if (!inVm) process.stdout.write(`\n== Launch latency on an idle daemon (${samples} jobs, one at a time) and ${burst.toLocaleString('en')} \`true\` jobs submitted at once\n`);
  for (const mode of inVm ? (['auto'] as const) : (['auto', 'rlimit'] as const)) {
    const l = await launchRun(runUser, mode, samples, burst);
    const e = `[${l.enforcement}${inVm ? ', VM' : ''}]`;
    line(`  ${e} submit -> job's first instruction p50 / p99`, `${f2(l.firstInstructionP50Ms)} / ${f2(l.firstInstructionP99Ms)} ms`);
    line(`  ${e} submit -> RUNNING seen by a watcher p50 / p99`, `${f2(l.submitToRunningP50Ms)} / ${f2(l.submitToRunningP99Ms)} ms`);
    line(`  ${e} submit -> COMPLETED p50`, `${f2(l.submitToCompletedP50Ms)} ms`);
    const bursts = [
      ['first burst, end polled with ListJobs', l.polled],
      ['a WatchJob stream per job', l.watched],
      ['again, end polled: a warm daemon', l.polledWarm],
    ] as const;
    for (const [how, b] of bursts) {
      line(`  ${e} ${l.burst.toLocaleString('en')} true jobs at once (${how}): all done`, `${b.seconds.toFixed(2)} s (${Math.round(l.burst / b.seconds)} jobs/s)`);
      line(`  ${e}   CPU per job: daemon; launcher; supervisors + jobs`, `${f2(b.daemonCpuMsPerJob)}; ${f2(b.launcherCpuMsPerJob)}; ${f2(b.supervisorsCpuMsPerJob)} ms`);
      // After the first burst the peak includes the heap earlier bursts grew (V8 keeps it until its
      // memory reducer runs): the line says so rather than pass it for that burst's own.
      const rssLabel = b === l.polled ? 'daemon peak RSS during the burst' : 'daemon peak RSS (with the heap earlier bursts grew)';
      line(`  ${e}   ${rssLabel}`, `${f1(b.peakRssMb)} MiB (largest sample: own ${f1(b.sampledPeak.anonMb)} + mapped files ${f1(b.sampledPeak.fileMb)})`);
    }
  }
  if (!inVm) await launchInVm();
}

/**
 * The same on a kernel with only cgroup v2 (clone3 into the job's cgroup): this bench run again,
 * inside the VM of scripts/cgroup2-vm.sh. Where the VM is emulated (no hardware virtualization)
 * its times are the emulator's, many times a real machine's: they show the path works, not its speed.
 */
async function launchInVm(): Promise<void> {
  const script = join(packageRoot(), 'scripts', 'cgroup2-vm.sh');
  if (!existsSync('/dev/kvm') || process.getuid?.() !== 0) {
    process.stdout.write('  [cgroup2, VM] not run: needs root and /dev/kvm\n');
    return;
  }
  const run = spawnSync(script, ['run', '--', process.execPath, fileURLToPath(import.meta.url), 'launch'], { cwd: packageRoot(), encoding: 'utf8', env: { ...process.env, HPCQ_VM_TIMEOUT: '900' } });
  const out = `${run.stdout}${run.stderr}`;
  const figures = out.split('\n').filter((l) => l.includes('[cgroup2, VM]'));
  if (run.status !== 0 || figures.length === 0) throw new Error(`the cgroup v2 VM launch bench failed (status ${run.status}):\n${out.slice(-4000)}`);
  const emulated = /emulating the VM \(TCG\)/.test(out) ? ' (emulated CPU: not this machine\'s speed)' : '';
  process.stdout.write(`  cgroup v2 kernel in a VM${emulated}:\n${figures.join('\n')}\n`);
}

async function arraySection(runUser: string): Promise<void> {
  process.stdout.write('\n== A 10,000-instance array of `true` (one SubmitJob)\n');
  const a = await arrayRun(runUser, 10_000);
  line('  SubmitJob latency (array job and every instance stored)', `${f1(a.submitMs)} ms`);
  line(`  all ${a.instances.toLocaleString('en')} instances done`, `${a.allDoneSeconds.toFixed(2)} s`);
  line('  daemon peak RSS', `${f1(a.peakRssMb)} MiB`);
}

async function slurmSection(runUser: string): Promise<void> {
  process.stdout.write('\n== 1,000 `true` jobs on a single-node Slurm: sbatch directly, then through hpcq (backend: slurm)\n');
  const s = await slurmRun(runUser, 1000);
  line('  sbatch directly: submits/s, all done', `${Math.round(s.direct.submitsPerSecond)} /s, ${s.direct.makespanSeconds.toFixed(1)} s`);
  line('  through hpcq: submits/s, all done', `${Math.round(s.viaHpcq.submitsPerSecond)} /s, ${s.viaHpcq.makespanSeconds.toFixed(1)} s (${((s.viaHpcq.makespanSeconds / s.direct.makespanSeconds - 1) * 100).toFixed(0)}% makespan)`);
  line('  daemon CPU per job through hpcq', `${s.daemonCpuMsPerJob.toFixed(1)} ms`);
  line('  daemon CPU per poll cycle, 10,000 active jobs', `${s.pollCpuMsPer10k.toFixed(1)} ms`);
}

async function scheduleSection(runUser: string): Promise<void> {
  process.stdout.write('\n== 1,000 schedules ticking every second (queue stopped: the ticks alone)\n');
  const s = await scheduleTicks(runUser, 1000, 20);
  line(`  ${s.ticks.toLocaleString('en')} ticks in ${s.seconds} s: lateness p50 / p99`, `${s.latenessP50Ms.toFixed(0)} / ${s.latenessP99Ms.toFixed(0)} ms`);
  line('  daemon CPU while ticking', `${(s.cpuShare * 100).toFixed(0)}% of a core (${s.cpuMsPerTick.toFixed(2)} ms per tick)`);
  process.stdout.write('\n== Dispatch with held and future jobs pending (half held, half begin_time a day ahead)\n');
  for (const waiting of [0, 100_000]) {
    const w = await dispatchWithWaiting(runUser, waiting, 200);
    line(`  ${waiting.toLocaleString('en')} waiting: true job submit -> COMPLETED p50 / p99`, `${f1(w.submitToCompletedP50Ms)} / ${f1(w.submitToCompletedP99Ms)} ms (daemon CPU ${f1(w.daemonCpuMsPerJob)} ms per job)`);
  }
}

async function groupSection(runUser: string): Promise<void> {
  process.stdout.write('\n== Job groups: 1,000 `true` tasks as a chain and as a fan-out (one SubmitJobGroup each)\n');
  for (const shape of ['chain', 'fan-out'] as const) {
    const g = await groupRun(runUser, shape, 1000);
    line(`  ${shape}: SubmitJobGroup latency`, `${f1(g.submitMs)} ms`);
    line(`  ${shape}: all ${g.tasks} tasks done`, `${g.allDoneSeconds.toFixed(2)} s`);
    line(`  ${shape}: daemon CPU per finished task`, `${g.daemonCpuMsPerTask.toFixed(2)} ms`);
  }
}

async function restartSection(runUser: string): Promise<void> {
  process.stdout.write('\n== Restart with running jobs (kill -9, restart, re-attach)\n');
  const r = await restartWithRunningJobs(runUser, 100);
  line(`  ${r.jobs} running jobs: restart to serving, all re-attached`, `${f1(r.restartToReattachedMs)} ms (${r.stillRunning} still running)`);
}

async function dispatchSection(): Promise<void> {
  process.stdout.write('\n== Dispatch pass with many pending jobs that cannot start (memory-bound, a queue at max_running)\n');
  for (const n of [1_000, 10_000, 100_000]) {
    const d = await dispatchPassCost(n);
    line(`  ${n.toLocaleString('en')} pending`, `${d.passMs.toFixed(3)} ms per pass (${d.examined} examined)`);
  }
}

async function scaleSection(): Promise<void> {
  const scaleJobs = Number(process.env.HPCQ_BENCH_SCALE_JOBS ?? 1_000_000);
  process.stdout.write(`\n== Scale: ${scaleJobs.toLocaleString('en')} stored finished jobs\n`);
  const sc = await scaleRun(scaleJobs);
  line('  history generated through the store layout', `${f1(sc.generationSeconds)} s`);
  line('  daemon start to serving', `${f1(sc.startupMs)} ms`);
  line('  daemon RSS after start / after the reads / peak', `${f1(sc.rssAfterStartMb)} / ${f1(sc.rssAfterReadsMb)} / ${f1(sc.peakRssMb)} MiB`);
  line('  RSS after the reads: own (anon) + mapped files', `${f1(sc.rssAnonAfterReadsMb)} + ${f1(sc.rssFileAfterReadsMb)} MiB`);
  line('  GetJob p50 / p99 / p99.9 (20,000 random ids, client warmed up)', `${sc.getJobP50Ms.toFixed(2)} / ${sc.getJobP99Ms.toFixed(2)} / ${sc.getJobP999Ms.toFixed(2)} ms`);
  line('  ListJobs page of 100 by state / user p50 / p99', `${sc.listPageP50Ms.toFixed(2)} / ${sc.listPageP99Ms.toFixed(2)} ms`);
}

async function metricsSection(runUser: string): Promise<void> {
  const rounds = Number(process.env.HPCQ_BENCH_METRICS_ROUNDS ?? 2);
  process.stdout.write(`\n== Durable SubmitJob with metrics off and on (64 clients, 20,000 submits; alternating, ${rounds} of each; /metrics scraped every second)\n`);
  const m = await metricsOverhead(runUser, 64, 20_000, rounds);
  const runs = (jobsPerSecond: number[], cpuUs: number[]) => jobsPerSecond.map((v, i) => `${Math.round(v)} jobs/s (${cpuUs[i]!.toFixed(0)} us CPU/submit)`).join(', ');
  line('  metrics off, each run', runs(m.off, m.offCpuUs));
  line('  metrics on, each run', `${runs(m.on, m.onCpuUs)}; ${m.scrapes} scrapes`);
  line('  cost of metrics (mean throughput)', `${m.costPercent.toFixed(1)}%`);
}

async function cliSection(): Promise<void> {
  process.stdout.write('\n== hpcq start-up as an installed command (scripts/install-service.sh into a temp prefix; spawn to exit)\n');
  const c = await cliStartup(20);
  if (!c) return line('  skipped', 'installing needs root');
  line(`  hpcq --version p50 / p99 (${c.runs} runs)`, `${f1(c.versionP50Ms)} / ${f1(c.versionP99Ms)} ms  (node -e 0: ${f1(c.nodeP50Ms)} ms)`);
  line(`  hpcq list, one ListJobs on the unix socket, p50 / p99 (${c.runs} runs)`, `${f1(c.listP50Ms)} / ${f1(c.listP99Ms)} ms`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
