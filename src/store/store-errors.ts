/**
 * Errors of the LevelDB store and the translation of classic-level errors into them.
 *
 * classic-level reports failures as Error with a string `code` (`LEVEL_IO_ERROR`,
 * `LEVEL_CORRUPTION`, `LEVEL_LOCKED`, ...) and wraps open failures in `LEVEL_DATABASE_NOT_OPEN`
 * with the LevelDB error as `cause`. Disk-full shows only in the message ("No space left on
 * device"), so that is what we look for.
 */
import { HpcqError, StoreUnavailableError } from '../core/errors.js';

/** Stable codes of StoreOpenError. */
export type StoreOpenErrorCode =
  /** Another process (another hpcqd) holds the LevelDB LOCK; `cause.code` is `LEVEL_LOCKED`. */
  | 'ResourceUnavailable.StoreLocked'
  /** The directory holds a damaged database, or something that is not one. Never auto-repaired. */
  | 'InternalError.StoreCorrupt'
  /** The database was written by a newer hpcq (unknown layout version). */
  | 'InternalError.StoreLayoutUnsupported'
  /** The disk is full (LevelDB needs space to recover its log on open). */
  | 'ResourceInsufficient.DiskFull'
  /** Any other failure to open (permissions, I/O error). */
  | 'ResourceUnavailable.Store';

const OPEN_ERROR_KIND = {
  'ResourceUnavailable.StoreLocked': 'unavailable',
  'InternalError.StoreCorrupt': 'internal',
  'InternalError.StoreLayoutUnsupported': 'internal',
  'ResourceInsufficient.DiskFull': 'exhausted',
  'ResourceUnavailable.Store': 'unavailable',
} as const;

/**
 * Thrown by LevelJobStore.open() (and reopen()) when the database cannot be opened. The message
 * names the directory and says what the operator can do; `cause` is the LevelDB error (for a
 * lock conflict, `cause.code === 'LEVEL_LOCKED'`).
 */
export class StoreOpenError extends HpcqError {
  override readonly name = 'StoreOpenError';
  constructor(code: StoreOpenErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, OPEN_ERROR_KIND[code], message, undefined, options);
  }
}

interface CodedError {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** The chain err, err.cause, err.cause.cause, ... */
function errorChain(err: unknown): CodedError[] {
  const chain: CodedError[] = [];
  for (let e = err; typeof e === 'object' && e !== null && chain.length < 8; e = (e as CodedError).cause) {
    chain.push(e as CodedError);
  }
  return chain;
}

/** The first error in the chain with this `code`, if any. */
function findCode(err: unknown, code: string): CodedError | undefined {
  return errorChain(err).find((e) => e.code === code);
}

/** True when the error (or a cause) says the disk is full. */
function isDiskFull(err: unknown): boolean {
  return errorChain(err).some(
    (e) => e.code === 'ENOSPC' || (typeof e.message === 'string' && /No space left on device|ENOSPC/i.test(e.message)),
  );
}

/** The message of the innermost cause of `err` (the LevelDB or decoding error itself). */
export function innermostMessage(err: unknown): string {
  const chain = errorChain(err);
  const last = chain[chain.length - 1];
  return typeof last?.message === 'string' ? last.message : String(err);
}

/** Translates a failed write (batch) into the error every waiting writer gets. */
export function writeFailure(err: unknown, location: string): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const diskFull = isDiskFull(err);
  // A full disk fails the log append, and LevelDB drops a torn record when it reopens. After any
  // other error (EIO from fsync) the record may be complete in the log: only a retry with the same
  // client_token is safe, and only after a restart, which re-reads the log.
  const what = diskFull ? 'the disk holding the job database is full' : 'the job database failed to write';
  const consequence = diskFull
    ? 'nothing of the request was stored'
    : 'the request may or may not have been stored; writes are refused until hpcqd is restarted, then retry with the same client_token';
  return new StoreUnavailableError(`${what} (${location}): ${innermostMessage(err)}; ${consequence}`, {
    cause: err,
    diskFull,
  });
}

/** Translates a failed read. */
export function readFailure(err: unknown, location: string): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  return new StoreUnavailableError(`the job database could not be read (${location}): ${innermostMessage(err)}`, { cause: err });
}

/** Translates a failed LevelDB open into a StoreOpenError with an actionable message. */
export function openFailure(err: unknown, location: string): StoreOpenError {
  if (err instanceof StoreOpenError) return err;
  const locked = findCode(err, 'LEVEL_LOCKED');
  if (locked !== undefined) {
    return new StoreOpenError(
      'ResourceUnavailable.StoreLocked',
      `another hpcqd is using the state directory ${location} (its LevelDB lock is held: ${innermostMessage(err)}). ` +
        'Stop the other daemon, or give this one a different state directory.',
      { cause: locked },
    );
  }
  const corrupt = findCode(err, 'LEVEL_CORRUPTION');
  if (corrupt !== undefined) return corruptDatabase(location, innermostMessage(err), corrupt);
  if (isDiskFull(err)) {
    return new StoreOpenError(
      'ResourceInsufficient.DiskFull',
      `cannot open the job database in ${location}: the disk is full (${innermostMessage(err)}). ` +
        'LevelDB needs free space to recover its log; free space on that filesystem and start again.',
      { cause: err },
    );
  }
  return new StoreOpenError(
    'ResourceUnavailable.Store',
    `cannot open the job database in ${location}: ${innermostMessage(err)}. ` +
      'Check that the directory is readable and writable by hpcqd and that its files are intact.',
    { cause: err },
  );
}

export function corruptDatabase(location: string, detail: string, cause?: unknown): StoreOpenError {
  return new StoreOpenError(
    'InternalError.StoreCorrupt',
    `the job database in ${location} is damaged or is not an hpcq database (${detail}). ` +
      'hpcqd will not start over it with an empty queue. Restore the directory from a backup; as a ' +
      'last resort an operator can run a LevelDB repair on a copy of it (jobs may be lost).',
    cause === undefined ? undefined : { cause },
  );
}

/** A stored value at `key` that cannot be decoded (job-codec.ts), met where it must be read. */
export function corruptRecord(key: string, err: unknown): HpcqError {
  return new HpcqError('InternalError.CorruptRecord', 'internal', `stored record ${key} cannot be decoded: ${innermostMessage(err)}`, undefined, {
    cause: err,
  });
}
