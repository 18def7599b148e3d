/**
 * Runs hpcqd: parses flags, loads the configuration, starts the daemon and owns the
 * signals: the first SIGTERM/SIGINT stops gracefully, a second one (or a stuck shutdown) forces;
 * SIGHUP rereads the configuration; SIGUSR2 toggles the log level between debug and the level
 * it started with.
 */
import { availableParallelism, totalmem } from 'node:os';
import { Command } from 'commander';
import { ConfigError } from '../config/config-error.js';
import { loadConfigOffThread } from '../config/load-config-off-thread.js';
import { selectEnforcement } from './enforcement.js';
import { createLogger } from '../logger.js';
import { LogLevelControl } from '../observability/log-level.js';
import { Daemon } from './daemon.js';

/** A graceful stop that takes longer than this is forced. */
const FORCE_STOP_AFTER_MS = 30_000;

export async function runDaemon(argv: readonly string[]): Promise<void> {
  const program = new Command('hpcqd')
    .description('HPC cluster queue daemon')
    .option('-c, --config <path>', 'configuration file (YAML or JSON); default: embedded, or $HPCQ_CONFIG')
    .option('--state-dir <dir>', 'state directory; default from config, or $HPCQ_STATE_DIR')
    .option('--listen <address>', 'gRPC address unix:/abs/path.sock or host:port; or $HPCQ_LISTEN')
    .option('--check', 'validate the configuration, print it as in effect (YAML), report how limits would be enforced, and exit')
    .parse(argv, { from: 'user' });
  const flags = program.opts<{ config?: string; stateDir?: string; listen?: string; check?: boolean }>();
  const uid = process.getuid?.() ?? 0;
  const log = createLogger();
  const logLevel = new LogLevelControl(log);
  // Its default action would end the process; it is safe to take at any time.
  process.on('SIGUSR2', () => logLevel.toggleDebug());

  // Until the daemon serves, a SIGHUP (whose default action would end the process) is only noted.
  let daemon: Daemon | undefined;
  process.on('SIGHUP', () => {
    if (!daemon) return log.warn('SIGHUP before the daemon started; ignored');
    log.info('SIGHUP: rereading the configuration');
    daemon.reconfigure().catch((err: unknown) => log.error({ err: (err as Error).message }, 'reload failed; the running configuration is unchanged'));
  });
  const load = () =>
    loadConfigOffThread(process.env, { configPath: flags.config, stateDir: flags.stateDir, listen: flags.listen }, {
      cores: availableParallelism(),
      memoryMb: Math.floor(totalmem() / 1024 / 1024),
      uid,
    });
  let config;
  try {
    config = await load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`hpcqd: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  if (flags.check) {
    const detection = await selectEnforcement(config.enforcement, config.requireEnforcement, uid, config.stateDir);
    const { printConfig } = await import('../config/config-file.js');
    // Two YAML documents: the effective configuration in the file's own keys (it loads back to the
    // same configuration), then the enforcement report as JSON.
    process.stdout.write(
      `# effective configuration: defaults, file, environment and flags applied\n${printConfig(config)}---\n` +
        `${JSON.stringify({ ok: detection.ok, enforcement: detection.mode, reasons: detection.reasons }, null, 2)}\n`,
    );
    process.exit(detection.ok ? 0 : 1);
  }

  const running = new Daemon(config, log, uid, load, logLevel);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: forcing exit; running jobs stay with their supervisors');
      process.exit(1);
    }
    log.info({ signal }, 'stopping');
    setTimeout(() => {
      log.error('graceful stop took too long; forcing exit');
      process.exit(1);
    }, FORCE_STOP_AFTER_MS).unref();
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await running.start();
    daemon = running;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.fatal({ err }, 'hpcqd could not start');
    process.stderr.write(`hpcqd: ${message}\n`);
    log.flush();
    process.exit(1);
  }
  // Let launchers and tests know the daemon is serving (one line, machine-readable).
  process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid, addresses: running.addresses, metrics: running.metricsAddress, enforcement: running.enforcement?.mode })}\n`);
}
