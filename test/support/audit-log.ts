/** Reading a test daemon's audit log (<state>/audit.log, JSON lines written asynchronously). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonHandle } from './daemon-harness.js';

export type AuditLine = Record<string, unknown>;

/** Every line of the daemon's audit log so far, parsed. */
export function auditLines(d: DaemonHandle): AuditLine[] {
  const path = join(d.stateDir, 'state', 'audit.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditLine);
}

/** Waits until the audit log has a line matching `pred`; fails with the whole log after `timeoutMs`. */
export async function auditLine(d: DaemonHandle, pred: (l: AuditLine) => boolean, timeoutMs = 5000): Promise<AuditLine> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = auditLines(d).find(pred);
    if (found) return found;
    if (Date.now() > until) throw new Error(`no such audit line in:\n${JSON.stringify(auditLines(d), null, 1)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
