/** The daemon's structured logger (pino, JSON lines on stderr). Components receive it; none create one. */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(level = process.env.HPCQ_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'hpcqd' } }, pino.destination({ dest: 2, sync: false }));
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
