/**
 * The hpcq CLI (dist/cli/main.js, run as a child process) against a real hpcqd started by the
 * harness. Jobs run as an unprivileged account: hpcq-job when the tests run as root, else the
 * current user (a non-root daemon runs jobs only as itself).
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CLI_MAIN,
  isRunning,
  PACKAGE_ROOT,
  makeStateDir,
  startDaemon,
  stopAll,
  TEST_CONFIG,
  waitForEnd as waitForEndOf,
  waitForJob,
  type DaemonHandle,
} from '../support/daemon-harness.js';
import { isRoot, JOB_USER, need, userExists } from '../support/privileged.js';
import { HPCQD_ENV, HPCQD_NODE_FLAGS, HPCQD_THREADPOOL_SIZE } from '../../src/daemon/process-tuning.js';
import { pidAlive } from '../support/durability.js';

const RUN_USER = isRoot ? JOB_USER : userInfo().username;
/** As root the invoking user (root) cannot run jobs, so name the test account; otherwise rely on the default. */
const USER_ARGS = isRoot ? ['--run-user', JOB_USER] : [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli/main.js ...args` (no shell) with HPCQ_ADDR set; never rejects on a non-zero exit. */
function hpcq(address: string, args: readonly string[], timeoutMs = 45_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI_MAIN, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/', HPCQ_ADDR: address }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(`hpcq ${args.join(' ')}: ${err.message}\n${stderr}`));
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}

interface JobJson {
  job_id: string;
  hpcjob_uuid: string;
  state: string;
  job_status: string;
  exit_code: number;
  term_signal: number;
  run_user: string;
  cmd_line: string;
  stdout_path: string;
  time_limit: number;
  usage?: { cpu_time_usec: number; peak_memory_bytes: number; wall_time_ms: number };
}

describe('hpcq CLI against a real daemon', () => {
  let usable = true;
  let daemon: DaemonHandle;
  let outDir = '';

  beforeAll(() => {
    // As root the jobs need the unprivileged test account (created by the global setup).
    if (isRoot) usable = need(userExists(JOB_USER), `test account ${JOB_USER}`);
  });

  beforeEach(async (ctx) => {
    if (!usable) ctx.skip();
    // Job output goes to a sticky world-writable temp dir, not the run user's home.
    outDir = mkdtempSync(join(tmpdir(), 'hpcq-cli-out-'));
    chmodSync(outDir, 0o1777);
    daemon = await startDaemon();
  });

  afterEach(async () => {
    await stopAll(); // cancels the daemon's pending and running jobs first
    if (outDir) rmSync(outDir, { recursive: true, force: true });
    outDir = '';
  });

  const run = (args: readonly string[]) => hpcq(daemon.address, args);
  const outArgs = () => ['--stdout', join(outDir, '%j.out'), '--stderr', join(outDir, '%j.err')];

  /** Submits through the CLI and returns the EHPC response. */
  async function submit(name: string, command: string, extra: readonly string[] = []): Promise<{ job_id: string; hpcjob_uuid: string }> {
    const r = await run(['submit', '--name', name, ...USER_ARGS, ...outArgs(), ...extra, '--', command]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { job_id: string; hpcjob_uuid: string };
  }

  async function status(id: string): Promise<JobJson> {
    const r = await run(['status', id, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { job: JobJson }).job;
  }

  // Waiting is set-up, not what these tests check: follow the job over gRPC (WatchJob).
  const waitForRunning = (id: string) => waitForJob(daemon, id, isRunning);
  const waitForEnd = (id: string) => waitForEndOf(daemon, id);

  it('submit prints the EHPC response, with or without --json', async () => {
    for (const json of [[], ['--json']]) {
      const r = await run(['submit', ...json, '--name', 'ehpc', ...USER_ARGS, ...outArgs(), '--cmd-line', 'true']);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(res).toEqual({
        action: 'HpcJobSubmitJobResponse',
        job_status: 'pending',
        hpcjob_uuid: expect.stringMatching(/^hpcjob-[0-9a-z]{8}$/),
        job_id: expect.stringMatching(/^\d+$/),
        ret_code: 0,
      });
      expect(Object.keys(res)).toEqual(['action', 'job_status', 'hpcjob_uuid', 'job_id', 'ret_code']);
    }
  });

  it('submit takes every request field and the command as trailing words', async () => {
    const r = await run([
      'submit', '--name', 'all-fields', ...USER_ARGS, ...outArgs(),
      '--cluster-id', 'hpcq-test', '--zone', 'test-zone', '--hpcqueue-id', 'hpcq-debug', '--queue', 'debug',
      '--core-limit', '2', '--mem-limit', '512', '--time-limit', '00:00:45', '--resource-limit', 'nofile=1024',
      '--priority', '5', '--submit-type', '0', '--client-token', 'tok-1',
      '--', 'echo', 'hello world',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const id = (JSON.parse(r.stdout) as { job_id: string }).job_id;
    await waitForEnd(id);
    const job = (await status(id)) as JobJson & Record<string, unknown>;
    expect(job).toMatchObject({
      cluster_id: 'hpcq-test', zone: 'test-zone', hpcqueue_id: 'hpcq-debug', scheduler_queue_name: 'debug',
      core_limit: 2, mem_limit: 512, time_limit: 45, priority: 5, submit_type: 0, client_token: 'tok-1',
      run_user: RUN_USER, cmd_line: "echo 'hello world'", state: 'JOB_STATE_COMPLETED',
    });
    expect(job.resource_limit).toContain('nofile=1024');
    expect(job.stdout_path).toBe(join(outDir, `${id}.out`));
    expect(readFileSync(job.stdout_path, 'utf8')).toBe('hello world\n');

    // Time limits in the other accepted forms.
    for (const [form, seconds] of [['1m', 60], ['50s', 50], ['30', 30]] as const) {
      const s = await submit('tl', 'true', ['--queue', 'debug', '--time-limit', form]);
      expect((await status(s.job_id)).time_limit).toBe(seconds);
    }
  });

  it('status shows a finished job, by job_id or uuid, as text or JSON', async () => {
    const ok = await submit('done', 'echo out');
    const bad = await submit('bad', 'exit 3');
    await waitForEnd(ok.job_id);
    await waitForEnd(bad.job_id);

    const text = await run(['status', ok.job_id]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^State:\s+COMPLETED \(completed\)$/m);
    expect(text.stdout).toMatch(/^Exit code:\s+0$/m);
    expect(text.stdout).toMatch(new RegExp(`^User:\\s+${RUN_USER}$`, 'm'));
    expect(text.stdout).toMatch(/^Peak memory:\s+\S+ \S+ \(\d+ bytes\)$/m);
    expect(text.stdout).toMatch(/^CPU time:\s+\S+/m);
    expect(text.stdout).toMatch(/^Wall time:\s+\S+/m);
    expect(text.stdout).toMatch(/^Enforcement:\s+(cgroup2|cgroup1|rlimit)$/m);

    const byUuid = await run(['status', bad.hpcjob_uuid]);
    expect(byUuid.stdout).toMatch(/^State:\s+FAILED \(failed\)$/m);
    expect(byUuid.stdout).toMatch(/^Exit code:\s+3$/m);
    expect(byUuid.stdout).toMatch(/^Reason:\s+NonZeroExitCode/m);

    const json = await status(bad.job_id);
    expect(json).toMatchObject({ job_id: bad.job_id, hpcjob_uuid: bad.hpcjob_uuid, state: 'JOB_STATE_FAILED', job_status: 'failed', exit_code: 3, run_user: RUN_USER });
    expect(json.usage?.wall_time_ms).toBeGreaterThanOrEqual(0);

    const missing = await run(['status', '99999']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^hpcq: ResourceNotFound\.Job: /);
  });

  it('list shows jobs with filters and follows pages with --all', async () => {
    const a = await submit('list-a', 'true');
    const b = await submit('list-b', 'exit 1');
    const c = await submit('list-c', 'true', ['--queue', 'debug']);
    for (const j of [a, b, c]) await waitForEnd(j.job_id);
    const ids = (stdout: string) =>
      stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => l.trim().split(/\s+/)[0]);

    // Like squeue, list shows pending and running jobs by default; -t all shows every state.
    expect(ids((await run(['list'])).stdout)).toEqual([]);
    const all = await run(['list', '-t', 'all']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split('\n')[0]!.trim().split(/\s+/)).toEqual(['JOBID', 'NAME', 'USER', 'QUEUE', 'STATE', 'TIME', 'CPUS', 'MEM', 'CPUTIME', 'MAXMEM', 'REASON/EXIT']);
    expect(ids(all.stdout)).toEqual([c.job_id, b.job_id, a.job_id]);
    const rowOfB = all.stdout.split('\n').find((l) => l.trim().startsWith(`${b.job_id} `))!;
    expect(rowOfB).toMatch(new RegExp(`list-b\\s+${RUN_USER}\\s+normal\\s+FAILED\\s+\\S+\\s+1\\s+256M\\s+\\S+\\s+\\S+\\s+exit 1$`));

    expect(ids((await run(['list', '--state', 'completed'])).stdout)).toEqual([c.job_id, a.job_id]);
    expect(ids((await run(['list', '--state', 'FAILED', '--state', 'pending'])).stdout)).toEqual([b.job_id]);
    expect(ids((await run(['list', '--state', 'running,pending'])).stdout)).toEqual([]);
    expect(ids((await run(['list', '-t', 'all', '--queue', 'debug'])).stdout)).toEqual([c.job_id]);
    expect(ids((await run(['list', '-t', 'all', '--queue', 'hpcq-normal', '--cluster-id', 'hpcq-test'])).stdout)).toEqual([b.job_id, a.job_id]);
    expect(ids((await run(['list', '-t', 'all', '--user', RUN_USER])).stdout)).toHaveLength(3);
    expect(ids((await run(['squeue', '--user', 'nobody-here'])).stdout)).toEqual([]);

    const page = await run(['list', '-t', 'all', '--limit', '1']);
    expect(ids(page.stdout)).toEqual([c.job_id]);
    expect(page.stderr).toMatch(/--page-token \S+, or leave out --limit/);
    const everything = await run(['list', '--limit', '1', '--all']);
    expect(ids(everything.stdout)).toEqual([c.job_id, b.job_id, a.job_id]);
    expect(everything.stderr).toBe('');

    const onePage = JSON.parse((await run(['list', '-t', 'all', '--json', '--limit', '2'])).stdout) as { jobs: JobJson[]; next_page_token: string };
    expect(onePage.jobs.map((j) => j.job_id)).toEqual([c.job_id, b.job_id]);
    expect(onePage.next_page_token).not.toBe('');
    const next = JSON.parse((await run(['list', '-t', 'all', '--json', '--limit', '2', '--page-token', onePage.next_page_token])).stdout) as { jobs: JobJson[] };
    expect(next.jobs.map((j) => j.job_id)).toEqual([a.job_id]);
    const allJson = JSON.parse((await run(['--json', 'list', '--limit', '1', '--all'])).stdout) as { jobs: JobJson[]; next_page_token: string };
    expect(allJson.jobs.map((j) => j.job_id)).toEqual([c.job_id, b.job_id, a.job_id]);
    expect(allJson.next_page_token).toBe('');

    const badState = await run(['list', '--state', 'bogus']);
    expect(badState.code).toBe(2);
    expect(badState.stderr).toMatch(/unknown job state "bogus"/);
  });

  it('cancel ends a running sleep as CANCELLED; unknown jobs fail with exit 2', async () => {
    const { job_id } = await submit('sleeper', 'sleep 300');
    await waitForRunning(job_id);
    const r = await run(['cancel', job_id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^job ${job_id} \\(hpcjob-[0-9a-z]{8}\\): (RUNNING|CANCELLED)`));
    const watch = await run(['watch', job_id, '--timeout', '30']);
    expect(watch.stdout.trim().split('\n').at(-1)).toMatch(new RegExp(`job ${job_id}  CANCELLED`));
    expect(watch.code).toBe(1);
    expect((await status(job_id)).state).toBe('JOB_STATE_CANCELLED');

    // A pending job is cancelled at once; --json gives an array of CancelJobResponse.
    const blocker = await submit('blocker', 'sleep 300', ['--queue', 'debug']);
    await waitForRunning(blocker.job_id);
    const queued = await submit('queued', 'sleep 300', ['--queue', 'debug']);
    const json = await run(['cancel', '--json', queued.job_id, '--wait']);
    expect(json.code, json.stderr).toBe(0);
    const responses = JSON.parse(json.stdout) as { job: JobJson }[];
    expect(responses).toHaveLength(1);
    expect(responses[0]!.job).toMatchObject({ job_id: queued.job_id, state: 'JOB_STATE_CANCELLED' });

    const wait = await run(['cancel', blocker.job_id, '--wait']);
    expect(wait.code, wait.stderr).toBe(0);
    expect(wait.stdout).toMatch(new RegExp(`job ${blocker.job_id} .*: CANCELLED`));

    const mixed = await run(['cancel', '99999', job_id]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/^hpcq: 99999: ResourceNotFound\.Job: /m);
    expect(mixed.stderr.trim().split('\n')).toHaveLength(2); // the finished job cannot be cancelled either

    const mixedJson = await run(['cancel', '--json', '99999']);
    expect(mixedJson.code).toBe(2);
    expect(JSON.parse(mixedJson.stdout)).toEqual([]);
    expect(JSON.parse(mixedJson.stderr)).toMatchObject({ code: 5, reason: 'ResourceNotFound.Job', field: 'job_id', job_id: '99999' });
  });

  it('watch follows a job to the end, as lines or JSON Lines, with its exit status', async () => {
    const { job_id } = await submit('watched', 'sleep 1');
    const r = await run(['watch', job_id]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}  job ${job_id}  COMPLETED +exit 0$`));
    expect(lines.length).toBeGreaterThanOrEqual(2);

    const history = await run(['watch', job_id, '--history']);
    expect(history.stdout.trim().split('\n').map((l) => l.split(/\s+/)[3])).toEqual(['PENDING', 'RUNNING', 'COMPLETED']);

    const json = await run(['watch', job_id, '--json', '--history']);
    expect(json.code).toBe(0);
    const messages = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as { job: JobJson; event?: { state: string; sequence: number } });
    expect(messages[0]!.event).toBeUndefined();
    expect(messages.slice(1).map((m) => m.event!.state)).toEqual(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING', 'JOB_STATE_COMPLETED']);
    expect(messages.at(-1)!.job.state).toBe('JOB_STATE_COMPLETED');

    const failing = await submit('fails', 'exit 4');
    expect((await run(['watch', failing.job_id])).code).toBe(1);
    expect((await run(['watch', failing.job_id, '--exit-code'])).code).toBe(4);
  });

  it('submit --wait exits with the job exit status', async () => {
    const failed = await run(['submit', '--name', 'wait3', ...USER_ARGS, ...outArgs(), '--wait', '--', 'sleep 0.2; exit 3']);
    expect(failed.code).toBe(3);
    expect(JSON.parse(failed.stdout)).toMatchObject({ action: 'HpcJobSubmitJobResponse', ret_code: 0 });
    expect(failed.stderr).toMatch(/FAILED +exit 3/);

    const ok = await run(['submit', '--name', 'wait0', ...USER_ARGS, ...outArgs(), '--wait', '--quiet', '--', 'true']);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
    const id = (JSON.parse(ok.stdout) as { job_id: string }).job_id;
    expect((await status(id)).state).toBe('JOB_STATE_COMPLETED');
  });

  it('queues lists hpcq-normal and hpcq-debug with their counts and the node', async () => {
    const { job_id } = await submit('in-debug', 'sleep 300', ['--queue', 'debug']);
    await waitForRunning(job_id);
    await submit('waits', 'true', ['--queue', 'debug']); // debug allows one running job: this one waits

    const text = await run(['queues']);
    expect(text.code, text.stderr).toBe(0);
    const rows = text.stdout.split('\n');
    expect(rows[0]!.trim().split(/\s+/)).toEqual(['CLUSTER', 'QUEUE_ID', 'NAME', 'DEFAULT', 'PRIO', 'CORES', 'MEM', 'TIME', 'MAXRUN', 'MAXPEND', 'PENDING', 'RUNNING']);
    expect(rows.find((l) => l.includes('hpcq-normal'))!.split(/\s+/)).toEqual(['hpcq-test', 'hpcq-normal', 'normal', 'yes', '10', expect.any(String), '256M/4G', '10m/1h', '-', expect.any(String), '0', '0']);
    expect(rows.find((l) => l.includes('hpcq-debug'))!.split(/\s+/)).toEqual(['hpcq-test', 'hpcq-debug', 'debug', '20', '1/2', '128M/1G', '30s/1m', '1', '3', '1', '1']);
    expect(text.stdout).toMatch(/^node: enforcement (cgroup2|cgroup1|rlimit), cores 3\/4 free, memory 3\.9G\/4G free$/m);

    const json = JSON.parse((await run(['queues', '--json'])).stdout) as {
      queues: { hpcqueue_id: string; is_default: boolean; pending_count: number; running_count: number }[];
      node_cores: number;
      free_cores: number;
      enforcement: string;
    };
    expect(json.queues.map((q) => q.hpcqueue_id)).toEqual(['hpcq-normal', 'hpcq-debug']);
    expect(json.queues[1]).toMatchObject({ hpcqueue_id: 'hpcq-debug', is_default: false, pending_count: 1, running_count: 1 });
    expect(json).toMatchObject({ node_cores: 4, free_cores: 3 });

    const unknown = await run(['queues', '--cluster-id', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^hpcq: ResourceNotFound\.Cluster: /);
  });

  it('a validation error prints the reason and exits 2', async () => {
    const name = 'a'.repeat(65);
    const r = await run(['submit', '--name', name, ...USER_ARGS, '--', 'true']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^hpcq: InvalidParameter\.JobNameTooLong: name must be at most 64 characters/);

    const json = await run(['submit', '--json', '--name', name, ...USER_ARGS, '--', 'true']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toEqual({ code: 3, status: 'INVALID_ARGUMENT', reason: 'InvalidParameter.JobNameTooLong', field: 'name', message: expect.stringContaining('64') });

    const tooLong = await run(['submit', '--name', 'q', ...USER_ARGS, '--queue', 'debug', '--time-limit', '2h', '--', 'true']);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toMatch(/^hpcq: InvalidParameterValue\.TimeLimitTooLarge: /);

    // Mistakes caught before anything is sent.
    for (const args of [['submit', '--', 'true'], ['submit', '--name', 'x', '--time-limit', 'soon', '--', 'true'], ['submit', '--name', 'x', '--cmd-line', 'true', '--', 'false'], ['nosuchcommand']]) {
      const usage = await run(args);
      expect(usage.code, args.join(' ')).toBe(2);
      expect(usage.stderr).not.toBe('');
    }
    expect((await run(['list'])).stdout.trim().split('\n')).toHaveLength(1); // nothing was submitted
  });

  it('an unreachable daemon gives a clear message naming the address', async () => {
    const dir = makeStateDir();
    const address = `unix:${join(dir, 'no-such.sock')}`;
    const r = await hpcq(address, ['list']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`hpcq: DaemonUnreachable: cannot reach hpcqd at ${address}`);
    expect(r.stderr).toContain('HPCQ_ADDR');

    const json = await hpcq(address, ['status', '1', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stderr)).toMatchObject({ code: 14, status: 'UNAVAILABLE', reason: 'DaemonUnreachable' });

    // --addr wins over HPCQ_ADDR.
    const viaFlag = await hpcq(address, ['--addr', daemon.address, 'queues']);
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
    const badAddr = await hpcq(address, ['--addr', 'not an address', 'queues']);
    expect(badAddr.code).toBe(2);
    expect(badAddr.stderr).toMatch(/^hpcq: InvalidUsage: invalid address/);
  });

  it('hpcq daemon runs hpcqd with its flags, started as hpcqd starts itself, and Ctrl-C stops it gracefully', async () => {
    const dir = makeStateDir();
    writeFileSync(join(dir, 'hpcqd.yaml'), TEST_CONFIG);
    const address = `unix:${join(dir, 'cli-daemon.sock')}`;
    const child = spawn(process.execPath, [CLI_MAIN, 'daemon', '--config', join(dir, 'hpcqd.yaml'), '--state-dir', join(dir, 'state'), '--listen', address], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HPCQ_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own, like a shell job, so the test can signal it as a terminal does.
      detached: true,
    });
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    let daemonPid = 0;
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`hpcq daemon did not become ready:\n${out}`)), 20_000);
        const onData = (d: Buffer) => {
          out += d.toString();
          if (out.includes('"event":"ready"')) {
            clearTimeout(timer);
            resolve();
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        void exited.then((code) => reject(new Error(`hpcq daemon exited with ${code}:\n${out}`)));
      });
      // --listen, --config and --state-dir were all honoured.
      const r = await hpcq(address, ['queues', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { queues: { hpcqueue_id: string }[] }).queues.map((q) => q.hpcqueue_id)).toEqual(['hpcq-normal', 'hpcq-debug']);
      expect(existsSync(join(dir, 'state', 'db'))).toBe(true);
      // hpcqd is a process of its own with the settings of its first line, including its 16
      // thread-pool threads (inside hpcq's process the pool would have been fixed at 4: 11 threads).
      daemonPid = Number(/^pid=(\d+)$/m.exec(readFileSync(join(dir, 'state', 'hpcqd.pid'), 'utf8'))?.[1]);
      expect(daemonPid).not.toBe(child.pid);
      expect(readFileSync(`/proc/${daemonPid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining([...HPCQD_NODE_FLAGS]));
      expect(readFileSync(`/proc/${daemonPid}/environ`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['MALLOC_ARENA_MAX=2']));
      expect(readdirSync(`/proc/${daemonPid}/task`).length).toBeGreaterThan(16);
      // Ctrl-C: SIGINT to the whole foreground group. hpcqd must see it once: a second signal
      // would force its exit (status 1) instead of the graceful stop.
      process.kill(-child.pid!, 'SIGINT');
      expect(await exited).toBe(0);
      expect(out).toContain('hpcqd stopped');
      expect(out).not.toContain('second signal');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      // hpcqd has its own process group: a failed test must not leave it running.
      if (daemonPid > 0 && pidAlive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    }

    const check = await hpcq(address, ['daemon', '--config', join(dir, 'nope.yaml'), '--check']);
    expect(check.code).toBe(2);
    expect(check.stderr).toMatch(/^hpcqd: invalid configuration/);
  });
});

describe('installed entry points', () => {
  it('every bin in package.json runs as a program by itself (npx hpcq, hpcqd)', async () => {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(Object.keys(pkg.bin).sort()).toEqual(['hpcq', 'hpcqd']);
    for (const path of Object.values(pkg.bin)) {
      // Executed directly, not through `node`: needs the exec bit and the shebang.
      const help = await new Promise<string>((resolve, reject) =>
        execFile(join(PACKAGE_ROOT, path), ['--help'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
      );
      expect(help).toMatch(/^Usage: hpcqd? /m);
    }
  });

  it('hpcqd starts Node with the process settings that hpcq daemon, npm start and the tests use', () => {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
    const entry = readFileSync(join(PACKAGE_ROOT, pkg.bin.hpcqd!), 'utf8');
    const firstLine = entry.split('\n')[0];
    // It sizes the pool itself, also when run as `node main.cjs` (without its first line).
    expect(entry).toContain(`process.env.UV_THREADPOOL_SIZE ??= '${HPCQD_THREADPOOL_SIZE}';`);
    const env = Object.entries(HPCQD_ENV).map(([k, v]) => `${k}=${v}`);
    expect(firstLine).toBe(`#!/usr/bin/env -S ${[...env, 'node', ...HPCQD_NODE_FLAGS].join(' ')}`);
    // Kernels before 5.1 (RHEL 8's 4.18) read 127 bytes of it and would cut a flag in two.
    expect(Buffer.byteLength(`${firstLine}\n`)).toBeLessThanOrEqual(127);
    // npm start runs the file itself, so through that line.
    expect(pkg.scripts.start).toBe(pkg.bin.hpcqd!.replace(/^\.\//, ''));
  });
});
