/** `hpcq daemon`: runs hpcqd with hpcqd's own flags, as hpcq's child, and exits as it exits. */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { HPCQD_ENV, HPCQD_NODE_FLAGS } from '../../daemon/process-tuning.js';

/** dist/cli/commands/ -> dist/daemon/main.cjs: the hpcqd entry, which sizes the thread pool. */
const HPCQD_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'daemon', 'main.cjs');
/** Signals hpcq passes on, and as what: hpcqd stops gracefully on SIGINT and SIGTERM only; SIGUSR2 switches its log level. */
const FORWARDED: ReadonlyArray<readonly [NodeJS.Signals, NodeJS.Signals]> = [
  ['SIGINT', 'SIGINT'],
  ['SIGTERM', 'SIGTERM'],
  // The terminal went away: stop gracefully rather than leave hpcqd writing to a dead terminal.
  ['SIGHUP', 'SIGTERM'],
  // Toggles hpcqd's log level between the configured one and debug.
  ['SIGUSR2', 'SIGUSR2'],
];

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .summary('run the hpcqd daemon')
    .description('Run hpcqd. Every argument after "daemon" is passed to hpcqd (try: hpcq daemon --help).')
    .argument('[hpcqd-args...]', 'hpcqd flags: --config, --state-dir, --listen, --check, --help')
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (args: string[]) => {
      process.exitCode = await runHpcqd(args);
    });
}

/**
 * hpcqd runs as a process of its own, not inside this one: it needs settings made before Node
 * starts (process-tuning.ts), and its entry must size libuv's thread pool before anything uses it,
 * which this CLI's modules already have. Signals sent to hpcq are passed on
 * (FORWARDED), so stopping `hpcq daemon` stops hpcqd gracefully, and a second signal forces it.
 */
function runHpcqd(args: readonly string[]): Promise<number> {
  // Its own process group: Ctrl-C signals the terminal's foreground group, and hpcqd must get that
  // SIGINT once (from us), because a second signal makes it force its exit.
  const child = spawn(process.execPath, [...HPCQD_NODE_FLAGS, HPCQD_MAIN, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
    env: { ...process.env, ...HPCQD_ENV },
  });
  const handlers = FORWARDED.map(([received, sent]) => [received, () => child.kill(sent)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const [s, handler] of handlers) process.off(s, handler);
      resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}
