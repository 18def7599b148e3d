/**
 * `npm run bench`: starts real daemons in temp dirs and prints the figures the issues ask for.
 * `npm run bench -- scale submit` runs only the named sections (submit, access, launch, group,
 * array, restart, dispatch, scale).
 * HPCQ_BENCH_SCALE_JOBS sets the size of the history for the scale run (default 1,000,000).
 */
import { accessThroughput } from './access-bench.js';
import { arrayRun } from './array-bench.js';
import { benchRunUser } from './bench-daemon.js';
import { launchLatency, restartWithRunningJobs, submitThroughput } from './daemon-bench.js';
import { dispatchPassCost } from './dispatch-bench.js';
import { groupRun } from './group-bench.js';
import { scaleRun } from './scale-bench.js';

function line(label: string, value: string): void {
  process.stdout.write(`${label.padEnd(58)} ${value}\n`);
}
const f1 = (n: number) => n.toFixed(1);

const SECTIONS = ['submit', 'access', 'launch', 'group', 'array', 'restart', 'dispatch', 'scale'] as const;

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((a) => !(SECTIONS as readonly string[]).includes(a));
  if (unknown.length > 0) throw new Error(`unknown section(s) ${unknown.join(', ')}; known: ${SECTIONS.join(', ')}`);
  const run = (section: (typeof SECTIONS)[number]) => asked.length === 0 || asked.includes(section);
  const runUser = benchRunUser();
  process.stdout.write(`hpcq benchmark (jobs run as ${runUser})\n`);
  if (run('submit')) await submitSection(runUser);
  if (run('access')) await accessSection(runUser);
  if (run('launch')) await launchSection(runUser);
  if (run('group')) await groupSection(runUser);
  if (run('array')) await arraySection(runUser);
  if (run('restart')) await restartSection(runUser);
  if (run('dispatch')) await dispatchSection();
  if (run('scale')) await scaleSection();
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
  process.stdout.write('\n== Launch latency on an idle daemon and 1,000 `true` jobs\n');
  for (const mode of ['auto', 'rlimit'] as const) {
    const l = await launchLatency(runUser, mode, 200, 1000);
    line(`  [${l.enforcement}] submit -> RUNNING p50 / p99`, `${f1(l.submitToRunningP50Ms)} / ${f1(l.submitToRunningP99Ms)} ms`);
    line(`  [${l.enforcement}] submit -> COMPLETED p50 (true)`, `${f1(l.submitToCompletedP50Ms)} ms`);
    line(`  [${l.enforcement}] 1,000 true jobs submitted at once, all done`, `${l.thousandJobsSeconds.toFixed(2)} s`);
    line(`  [${l.enforcement}] daemon peak RSS`, `${f1(l.peakRssMb)} MiB`);
  }
}

async function arraySection(runUser: string): Promise<void> {
  process.stdout.write('\n== A 10,000-instance array of `true` (one SubmitJob)\n');
  const a = await arrayRun(runUser, 10_000);
  line('  SubmitJob latency (array job and every instance stored)', `${f1(a.submitMs)} ms`);
  line(`  all ${a.instances.toLocaleString('en')} instances done`, `${a.allDoneSeconds.toFixed(2)} s`);
  line('  daemon peak RSS', `${f1(a.peakRssMb)} MiB`);
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

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
