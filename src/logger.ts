/** The daemon's structured logger (pino, JSON lines on stderr). Components receive it; none create one. */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/**
 * Every line carries an ISO 8601 `time` (journald and admins read the lines as they are; epoch
 * milliseconds would need converting). The level is HPCQ_LOG_LEVEL, else info; it can change while
 * the daemon runs (SIGUSR2, `hpcq log-level`: see observability/log-level.ts).
 */
export function createLogger(level = process.env.HPCQ_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'hpcqd' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
