/**
 * What the daemon does with every API call that ends: one log line (principal, method, job id,
 * result and reason; admins read these in the journal, the audit log file keeps mutating calls
 * apart) and, when metrics are on, the request counters and open watches.
 */
import type { AuditNote, RequestObserver } from '../api/handlers.js';
import type { Principal } from '../core/access-policy.js';
import type { Logger } from '../logger.js';
import { REQUEST_MESSAGES, requestLogFields, requestResult } from './log-lines.js';
import type { DaemonMetrics } from './metrics.js';

export class RequestLog implements RequestObserver {
  constructor(
    private readonly log: Logger,
    private readonly metrics: DaemonMetrics | undefined,
  ) {}

  ended(method: string, principal: Principal | undefined, err: unknown, details: AuditNote): void {
    const outcome = requestResult(err);
    this.metrics?.requestEnded(method, outcome);
    // An unexpected error is logged with its stack by the status mapping; this line says who met it.
    const level = outcome.result === 'error' ? 'warn' : 'info';
    if (this.log.isLevelEnabled(level)) this.log[level](requestLogFields(method, principal, outcome, details), REQUEST_MESSAGES[outcome.result]);
  }

  streamOpened(method: string): void {
    this.metrics?.watchOpened(method);
  }

  streamClosed(method: string): void {
    this.metrics?.watchClosed(method);
  }
}
