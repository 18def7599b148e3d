/**
 * The audit log: who did what to the queue, and every request that was refused. The daemon runs
 * jobs as other users, so an operator must be able to answer "who submitted, cancelled or changed
 * this job, as which user, from where" and "who tried something they may not" after the fact.
 *
 * Format: one JSON object per line, appended, e.g.
 *   {"time":"2025-01-31T12:00:00.000Z","principal":"uid:1001","peer":"1001:4242","method":"SubmitJob","result":"ok","jobId":"17","runUser":"alice"}
 * `time` is ISO 8601 UTC with milliseconds; absent or empty optional fields are left out. Strings
 * longer than 256 characters are cut and end in "…", so a client cannot make one line huge.
 *
 * Refusals and errors are rate-limited per principal (per peer host when there is none): a client
 * hammering the daemon with refused requests must not fill the disk. Those over the limit are
 * counted, not written, and the next line written for that principal carries `"suppressed": n`.
 * Successful calls are never dropped.
 *
 * The file holds job names and user names, so it must be a regular file readable and writable by
 * the daemon's user only. Lines are written by sonic-boom without blocking the event loop, in
 * batches: a write per line cost each submit about 17 us of the daemon's CPU. A batch goes out when
 * it reaches BATCH_BYTES or after FLUSH_INTERVAL_MS, so a crash loses at most that last fraction
 * of a second (the lines are not fsynced either way); close() flushes them. The batch is gathered
 * here, not in sonic-boom (its minLength): sonic-boom appends each line to one string and measures
 * that string's UTF-8 length at every write, flattening it each time (~4.6 KB of garbage per line).
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { pino } from 'pino';
import type { Logger } from '../logger.js';
import { safeJson, truncateUtf16 } from '../core/quote.js';
import { RateLimiter } from './rate-limiter.js';

export interface AuditEntry {
  /** Who: the principal name, e.g. uid:1001 or spiffe://portal. Empty if unauthenticated. */
  principal: string;
  /** Where from: the connection's peer (uid:pid for unix, ip:port for TCP). */
  peer: string;
  /** The RPC, e.g. SubmitJob, or "connect" for refused connections. */
  method: string;
  /** 'ok' or 'refused' or 'error'. */
  result: 'ok' | 'refused' | 'error';
  jobId?: string;
  runUser?: string;
  /** The stable reason code of a refusal or error, e.g. OperationDenied.RunUserNotAllowed. */
  reason?: string;
  /** grpc status name, e.g. PERMISSION_DENIED. */
  status?: string;
}

export interface AuditLogOptions {
  /** Refusal lines written per second per principal once the burst is spent; default 5. */
  refusalsPerSecond?: number;
  /** Refusal lines a principal may have written at once; default 20. */
  refusalBurst?: number;
  /** Clock in epoch milliseconds (tests). */
  now?: () => number;
  /** Told when a write fails (disk full, I/O error); sonic-boom retries with the next write. */
  logger?: Logger;
}

const MAX_STRING = 256;
/** Principals tracked for the refusal limit and the suppressed counts; bounds memory. */
const MAX_TRACKED = 100_000;
const OPTIONAL_FIELDS = ['jobId', 'runUser', 'reason', 'status'] as const;

type SonicBoom = ReturnType<typeof pino.destination>;

export class AuditLog {
  private readonly refusals: RateLimiter;
  /** Refusals not written per key since its last written one, least recently counted first. */
  private readonly suppressed = new Map<string, number>();
  private readonly now: () => number;
  private closing: Promise<void> | undefined;

  /**
   * Opens (creating it 0600 if needed) the audit log at `path` for appending. Throws if it is a
   * symlink, not a regular file, not owned by the daemon's user, or open to group or others.
   */
  static open(path: string, opts: AuditLogOptions = {}): AuditLog {
    // No O_CLOEXEC here: Node does not export it, and libuv adds it to every open() itself.
    const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
    let fd: number;
    try {
      fd = openSync(path, flags, 0o600);
    } catch (err) {
      const hint = (err as NodeJS.ErrnoException).code === 'ELOOP' ? ' (it is a symlink; give the real path)' : '';
      throw new Error(`cannot open the audit log ${path}${hint}: ${(err as Error).message}`, { cause: err });
    }
    try {
      checkAuditFile(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new AuditLog(pino.destination({ fd, sync: false }), opts);
  }

  private readonly logger: Logger | undefined;
  private readonly flushTimer: NodeJS.Timeout;
  /** Lines not yet handed to the destination, and their length in UTF-16 units (near enough bytes). */
  private batch: string[] = [];
  private batchLength = 0;

  private constructor(
    private readonly dest: SonicBoom,
    opts: AuditLogOptions,
  ) {
    this.refusals = new RateLimiter({
      ratePerSecond: opts.refusalsPerSecond ?? 5,
      burst: opts.refusalBurst ?? 20,
      maxKeys: MAX_TRACKED,
    });
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger;
    this.flushTimer = setInterval(() => this.writeBatch(), FLUSH_INTERVAL_MS);
    this.flushTimer.unref();
    // Without a listener an 'error' event would crash the daemon; a failed write stays buffered.
    dest.on('error', (err: Error) => opts.logger?.error({ err }, 'audit log write failed'));
  }

  /** Appends `entry` as one line, unless it is a refusal over its principal's limit. */
  record(entry: AuditEntry): void {
    // Calls still finishing while the daemon shuts down have nowhere to go once the file is closed.
    if (this.closing) return;
    const nowMs = this.now();
    let suppressed: number | undefined;
    if (entry.result !== 'ok') {
      const key = entry.principal || peerHost(entry.peer);
      if (!this.refusals.take(key, nowMs).ok) {
        this.countSuppressed(key);
        return;
      }
      suppressed = this.suppressed.get(key);
      this.suppressed.delete(key);
    }

    const line: Record<string, string | number> = {
      time: new Date(nowMs).toISOString(),
      principal: clip(entry.principal),
      peer: clip(entry.peer),
      method: clip(entry.method),
      result: entry.result,
    };
    for (const field of OPTIONAL_FIELDS) {
      const value = entry[field];
      if (value) line[field] = clip(value);
    }
    if (suppressed !== undefined) line.suppressed = suppressed;
    const text = `${safeJson(line)}\n`;
    this.batch.push(text);
    this.batchLength += text.length;
    if (this.batchLength >= BATCH_BYTES) this.writeBatch();
  }

  /** Hands the gathered lines to the destination as one write. */
  private writeBatch(): void {
    if (this.batch.length === 0) return;
    this.dest.write(this.batch.join(''));
    this.batch = [];
    this.batchLength = 0;
  }

  /**
   * Flushes what is buffered and closes the file; later calls return the same promise. A file that
   * cannot be written (a failed disk) never finishes its flush: after CLOSE_DEADLINE_MS the rest is
   * dropped, so that the daemon's shutdown never hangs on its audit log.
   */
  close(): Promise<void> {
    clearInterval(this.flushTimer);
    if (!this.closing) this.writeBatch();
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.logger?.error('audit log could not be flushed before the deadline; closing it with lines unwritten');
        this.dest.destroy();
        resolve();
      }, CLOSE_DEADLINE_MS);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.dest.once('close', done);
      this.dest.once('error', () => {
        this.dest.destroy();
        done();
      });
      this.dest.end();
    });
    return this.closing;
  }

  private countSuppressed(key: string): void {
    const count = (this.suppressed.get(key) ?? 0) + 1;
    this.suppressed.delete(key);
    // Bounded like the limiter: past the bound the stalest count is forgotten, not the memory grown.
    if (this.suppressed.size >= MAX_TRACKED) {
      const stalest = this.suppressed.keys().next().value;
      if (stalest !== undefined) this.suppressed.delete(stalest);
    }
    this.suppressed.set(key, count);
  }
}

/** Lines are written once this much is buffered... */
const BATCH_BYTES = 8 * 1024;
/** ...or after this long. */
const FLUSH_INTERVAL_MS = 200;

/** How long close() waits for buffered lines to reach the file. */
const CLOSE_DEADLINE_MS = 2000;

function checkAuditFile(path: string, fd: number): void {
  const st = fstatSync(fd);
  if (!st.isFile()) throw new Error(`audit log ${path} is not a regular file`);
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) throw new Error(`audit log ${path} is owned by uid ${st.uid}, not by the daemon's uid ${uid}`);
  if ((st.mode & 0o077) !== 0) {
    throw new Error(`audit log ${path} is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  }
}

/**
 * The peer without its port (ip:port) or pid (uid:pid): unauthenticated clients are limited per
 * host or user, since a new connection gets a new port and would otherwise get a new burst.
 */
function peerHost(peer: string): string {
  return peer.replace(/:\d+$/, '');
}

function clip(value: string): string {
  return value.length > MAX_STRING ? `${truncateUtf16(value, MAX_STRING)}…` : value;
}
