/**
 * Installing on a node (scripts/install-service.sh): into a temporary prefix, as root, from this
 * built checkout. The installed tree is root's and writable by nobody else; an ordinary user runs
 * the installed `hpcq` by name, with nothing but the prefix's bin on PATH and from a directory
 * that is not the checkout; the installed `hpcqd` starts with its process settings and serves that
 * user's CLI (peer credentials, a job through the supervisor); the unit passes
 * `systemd-analyze verify` where that exists; a reinstall upgrades in place; the uninstall removes
 * exactly what was installed and leaves the state directory. Nothing outside the temporary
 * directory is touched (the system's /run/hpcq and /var/lib/hpcq stay as they are).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HPCQD_ENV, HPCQD_NODE_FLAGS } from '../../src/daemon/process-tuning.js';
import { runAs } from '../support/as-user.js';
import { PACKAGE_ROOT, TEST_CONFIG } from '../support/daemon-harness.js';
import { ensureTestUsers, isRoot, JOB_USER, need } from '../support/privileged.js';

const INSTALL = join(PACKAGE_ROOT, 'scripts', 'install-service.sh');
const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const tmpDirs: string[] = [];
let daemon: ChildProcess | undefined;

afterAll(async () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

/** A temporary directory every user may traverse (the installed programs are run as JOB_USER). */
function makeTmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-install-'));
  chmodSync(dir, 0o755);
  tmpDirs.push(dir);
  return dir;
}

/** Runs a script as root with the test's PATH (npm, for the dependency list); never throws. */
function sh(script: string, args: readonly string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('/bin/sh', [script, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Every path below `root` (relative), with its type, and for files their content. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, path));
      if (st.isDirectory()) {
        out.set(path, 'dir');
        walk(path);
      } else {
        out.set(path, st.isFile() ? `file:${readFileSync(join(root, path), 'utf8')}` : 'other');
      }
    }
  };
  walk('');
  return out;
}

/** Paths below `root` that are not root's or are writable by group or others (links excepted). */
function notRootOnly(root: string): string[] {
  const bad: string[] = [];
  const check = (path: string) => {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return;
    if (st.uid !== 0 || st.gid !== 0 || (st.mode & 0o022) !== 0) bad.push(`${path} (uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`);
    if (st.isDirectory()) for (const name of readdirSync(path)) check(join(path, name));
  };
  check(root);
  return bad;
}

describe('scripts/install-service.sh', () => {
  it('installs hpcq and hpcqd for every user and a unit, upgrades in place, and uninstalls exactly that', { timeout: 120_000 }, async () => {
    if (!need(isRoot && ensureTestUsers(), 'root and the test accounts')) return;
    const tmp = makeTmp();
    const prefix = join(tmp, 'prefix');
    const units = join(tmp, 'units');
    const stateDir = join(tmp, 'state');
    const runDir = join(tmp, 'run');
    const args = ['--prefix', prefix, '--unit-dir', units, '--state-dir', stateDir, '--run-dir', runDir, '--node', process.execPath];
    // Unrelated files already there must survive the install and the uninstall.
    mkdirSync(join(prefix, 'bin'), { recursive: true });
    writeFileSync(join(prefix, 'bin', 'other-tool'), '#!/bin/sh\n');
    mkdirSync(join(prefix, 'share', 'other'), { recursive: true });
    writeFileSync(join(prefix, 'share', 'other', 'README'), 'not ours\n');
    mkdirSync(units);
    writeFileSync(join(units, 'other.service'), '[Service]\nExecStart=/bin/true\n');
    const before = snapshot(tmp);

    const install = sh(INSTALL, args);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain('systemctl enable --now hpcqd');

    // The layout, root's and nobody else's to write; the state directory private, the socket
    // directory open to all.
    const lib = join(prefix, 'lib', 'hpcq');
    for (const path of ['bin/hpcq', 'sbin/hpcqd', 'lib/hpcq/dist/cli/main.js', 'lib/hpcq/dist/daemon/main.cjs', 'lib/hpcq/dist/libexec/hpcq-supervisor',
      'lib/hpcq/dist/native/peer-credentials.node', 'lib/hpcq/proto/hpcq/v1/job_service.proto', 'lib/hpcq/node_modules/@grpc/grpc-js/package.json',
      'lib/hpcq/config/hpcqd.yaml', 'lib/hpcq/uninstall-service.sh', 'lib/hpcq/.install-manifest']) {
      expect(statSync(join(prefix, path)).isFile(), path).toBe(true);
    }
    // Production dependencies only; no benchmarks.
    for (const absent of ['node_modules/typescript', 'node_modules/vitest', 'node_modules/.bin', 'dist/bench']) {
      expect(() => statSync(join(lib, absent)), absent).toThrow();
    }
    expect([...notRootOnly(lib), ...notRootOnly(join(prefix, 'bin', 'hpcq')), ...notRootOnly(join(prefix, 'sbin', 'hpcqd')), ...notRootOnly(join(units, 'hpcqd.service'))]).toEqual([]);
    expect(statSync(stateDir).mode & 0o7777).toBe(0o700);
    expect(statSync(runDir).mode & 0o7777).toBe(0o755);
    // The wrappers name Node.js by its absolute path; the unit runs this installation's hpcqd.
    expect(readFileSync(join(prefix, 'bin', 'hpcq'), 'utf8')).toContain(`exec ${process.execPath} ${lib}/dist/cli/main.js "$@"`);
    const unit = readFileSync(join(units, 'hpcqd.service'), 'utf8');
    expect(unit).toContain(`\nExecStart=${prefix}/sbin/hpcqd --state-dir ${stateDir}\n`);
    for (const line of ['KillMode=process', 'Delegate=yes', 'Restart=on-failure', 'RuntimeDirectory=hpcq', 'ExecReload=/bin/kill -HUP $MAINPID']) {
      expect(unit).toContain(`\n${line}\n`);
    }

    // An ordinary user runs it by name: PATH holds only the prefix's bin (so Node.js is not
    // looked up there), the current directory is /, nothing is built on the first call.
    // (`env` sets that PATH for the lookup of hpcq; runAs needs setpriv on its own PATH.) A call
    // that does not end in time fails with the daemon's log.
    let out = '';
    const asUser = (args: readonly string[]) =>
      runAs(JOB_USER, ['env', `PATH=${join(prefix, 'bin')}`, 'hpcq', ...args], {}, 20_000).catch((err: Error) => {
        throw new Error(`${err.message}\nhpcqd's log:\n${out}`);
      });
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const version = await asUser(['--version']);
      times.push(performance.now() - t0);
      expect(version, version.stderr).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    }
    const p50 = times.sort((a, b) => a - b)[2]!;
    console.info(`installed hpcq --version as ${JOB_USER}: p50 ${p50.toFixed(0)} ms (setpriv included)`);
    expect(p50).toBeLessThan(1000);

    // The installed hpcqd, started as the unit starts it (its wrapper, no HPCQ_* but the config and
    // the socket a test needs), with hpcqd's process settings; it accepts the installed state
    // directory and serves the installed CLI of an ordinary user.
    const configPath = join(tmp, 'hpcqd.yaml');
    writeFileSync(configPath, TEST_CONFIG);
    const address = `unix:${join(runDir, 'hpcqd.sock')}`;
    daemon = spawn(join(prefix, 'sbin', 'hpcqd'), ['--state-dir', stateDir, '--config', configPath, '--listen', address], {
      env: { PATH: '/usr/bin:/bin', HPCQ_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    daemon.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out.includes('"event":"ready"') || daemon!.exitCode !== null, { timeout: 30_000, interval: 50 }).toBe(true);
    expect(out).toContain('"event":"ready"');
    const environ = readFileSync(`/proc/${daemon.pid}/environ`, 'utf8').split('\0');
    for (const [k, v] of Object.entries(HPCQD_ENV)) expect(environ).toContain(`${k}=${v}`);
    const cmdline = readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline.slice(0, 2 + HPCQD_NODE_FLAGS.length)).toEqual([process.execPath, ...HPCQD_NODE_FLAGS, `${lib}/dist/daemon/main.cjs`]);

    const queues = await asUser(['queues', '--addr', address]);
    expect(queues.code, queues.stderr).toBe(0);
    expect(queues.stdout).toContain('hpcq-normal');
    const whoami = await asUser(['whoami', '--json', '--addr', address]);
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.stdout).toContain(`"${JOB_USER}"`);
    const job = await asUser(['submit', '--wait', '--addr', address, '--name', 'installed', '--stdout', '/dev/null', '--stderr', '/dev/null', '--', 'true']);
    expect(job.code, job.stdout + job.stderr + out).toBe(0);
    const stopped = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await stopped;

    // The unit as systemd reads it (Debian's systemd package ships systemd-analyze).
    if (spawnSync('/bin/sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0) {
      const verify = spawnSync('systemd-analyze', ['verify', join(units, 'hpcqd.service')], { encoding: 'utf8' });
      expect(verify.status, verify.stderr).toBe(0);
      // It reports problems such as an unknown KillMode as warnings only.
      expect(verify.stderr.split('\n').filter((l) => l.includes('hpcqd'))).toEqual([]);
    } else {
      console.info('systemd-analyze is not installed here: the unit file was not verified');
    }

    // A reinstall upgrades in place and installs the same files.
    const manifest = readFileSync(join(lib, '.install-manifest'), 'utf8');
    const again = sh(INSTALL, args);
    expect(again.code, again.stderr).toBe(0);
    expect(readFileSync(join(lib, '.install-manifest'), 'utf8')).toBe(manifest);

    // The installed uninstaller removes exactly what was installed: what was there before is
    // there again, plus the state directory (with the daemon's state) and the socket directory.
    const uninstall = sh(join(lib, 'uninstall-service.sh'), []);
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect(uninstall.stdout).toContain(`kept: ${stateDir} ${runDir}`);
    const after = snapshot(tmp);
    const kept = (path: string) => path === 'hpcqd.yaml' || ['state', 'run'].some((d) => path === d || path.startsWith(`${d}/`));
    expect(new Map([...after].filter(([path]) => !kept(path)))).toEqual(before);
    expect(statSync(join(stateDir, 'db')).isDirectory()).toBe(true);
  });

  it('refuses to overwrite a file it did not install, and to install as an ordinary user', async () => {
    if (!need(isRoot && ensureTestUsers(), 'root and the test accounts')) return;
    const tmp = makeTmp();
    const prefix = join(tmp, 'prefix');
    mkdirSync(join(prefix, 'bin'), { recursive: true });
    writeFileSync(join(prefix, 'bin', 'hpcq'), 'someone else\'s hpcq\n');
    const before = snapshot(tmp);
    const args = ['--prefix', prefix, '--unit-dir', join(tmp, 'units'), '--state-dir', join(tmp, 'state'), '--run-dir', join(tmp, 'run')];
    const clash = sh(INSTALL, args);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain(`${prefix}/bin/hpcq exists and was not installed by this script`);
    expect(snapshot(tmp)).toEqual(before);

    const byUser = await runAs(JOB_USER, ['/bin/sh', INSTALL, ...args]);
    expect(byUser.code).toBe(1);
    expect(byUser.stderr).toContain('run as root');
    expect(snapshot(tmp)).toEqual(before);
  });
});
