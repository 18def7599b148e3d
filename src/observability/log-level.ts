/**
 * The daemon's log level while it runs: `hpcq log-level` (AccessService.SetLogLevel) sets it,
 * SIGUSR2 toggles between the level it started with (HPCQ_LOG_LEVEL, else info) and debug. A change
 * lasts until the next one or a restart.
 */
import type { Logger } from '../logger.js';

/** The levels an admin may choose, most severe first. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export class LogLevelControl {
  /** The level the daemon started with: what SIGUSR2 returns to from debug. */
  readonly configured: string;

  constructor(private readonly log: Logger) {
    this.configured = log.level;
  }

  get level(): string {
    return this.log.level;
  }

  /** Sets the level; returns it with the one before. */
  set(level: LogLevel): { level: string; previous: string } {
    const previous = this.log.level;
    this.log.level = level;
    // Said after the change, so that a change to a more verbose level is always seen; a change to
    // warn or quieter is not logged (the caller has the answer).
    // (`level` itself is pino's own key.)
    if (level !== previous) this.log.info({ logLevel: level, previous }, 'log level changed');
    return { level, previous };
  }

  /** SIGUSR2: debug, or back to the configured level from debug (to info when that is debug too). */
  toggleDebug(): { level: string; previous: string } {
    if (this.log.level !== 'debug') return this.set('debug');
    return this.set(this.configured === 'debug' || !isLogLevel(this.configured) ? 'info' : this.configured);
  }
}
