/**
 * Start-up time of `hpcq` as an installed command: scripts/install-service.sh into a temporary
 * prefix, then the wall time of `hpcq --version` and of `hpcq list` (one RPC to a bench daemon)
 * from spawn to exit, as a user runs them. Node's own start is given for reference.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchDaemon, benchConfig } from './bench-daemon.js';
import { percentile } from './percentile.js';

/** dist/bench/ -> the package root. */
const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliStartup {
  runs: number;
  nodeP50Ms: number;
  versionP50Ms: number;
  versionP99Ms: number;
  listP50Ms: number;
  listP99Ms: number;
}

/** Undefined when not root (installing needs root). */
export async function cliStartup(runs: number): Promise<CliStartup | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'hpcq-bench-install-'));
  chmodSync(dir, 0o755);
  const prefix = join(dir, 'prefix');
  let daemon: BenchDaemon | undefined;
  try {
    const install = spawnSync(
      '/bin/sh',
      [join(PACKAGE_ROOT, 'scripts', 'install-service.sh'), '--prefix', prefix, '--unit-dir', join(dir, 'units'), '--state-dir', join(dir, 'state'), '--run-dir', join(dir, 'run'), '--node', process.execPath],
      { encoding: 'utf8' },
    );
    if (install.status !== 0) throw new Error(`install-service.sh failed: ${install.stderr}`);
    daemon = await BenchDaemon.start(benchConfig({ cores: 2 }));
    const hpcq = join(prefix, 'bin', 'hpcq');
    const env = { PATH: '/usr/bin:/bin', HOME: dir };
    const time = (file: string, args: readonly string[]) => {
      const ms: number[] = [];
      for (let i = 0; i < runs + 1; i++) {
        const t0 = performance.now();
        const r = spawnSync(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
        const elapsed = performance.now() - t0;
        if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
        if (i > 0) ms.push(elapsed); // the first run warms the page cache
      }
      return ms.sort((a, b) => a - b);
    };
    const node = time(process.execPath, ['-e', '0']);
    const version = time(hpcq, ['--version']);
    const list = time(hpcq, ['list', '--addr', daemon.address]);
    return {
      runs,
      nodeP50Ms: percentile(node, 50),
      versionP50Ms: percentile(version, 50),
      versionP99Ms: percentile(version, 99),
      listP50Ms: percentile(list, 50),
      listP99Ms: percentile(list, 99),
    };
  } finally {
    await daemon?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
