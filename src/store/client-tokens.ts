/**
 * Idempotent creates by client token. A token names at most one job of its run user: the entry
 * `tok/<runUser>/<token>` holds the job id and the fingerprint of the request that created it, and
 * is written in the job's own batch (job-ops.ts), so a token never names a job that was not stored.
 *
 * Concurrent calls with one token are joined in memory: the first claims the token before reading
 * it, the others wait for the outcome of that claim. A claim that stored nothing (admission refused,
 * write failed) rejects its own caller only; the waiters try again and one of them claims next.
 */
import { HpcqError } from '../core/errors.js';
import type { Job, JobSpec } from '../core/job.js';
import { decodeToken, type TokenEntry } from './job-codec.js';
import { tokenKey } from './keys.js';
import { corruptRecord } from './store-errors.js';

/** What the token logic reads through (the store's reads). */
export interface TokenReads {
  /** The raw value at `key`, undefined if none. */
  get(key: string): Promise<string | undefined>;
  getJob(id: number): Promise<Job | undefined>;
}

/** The job a token names, the fingerprint of the request that created it, and whether this call did. */
interface TokenOwner {
  job: Job;
  fingerprint: string;
  created: boolean;
}

export class ClientTokens {
  /** Claims in progress by token key; each settles with the token's owner. */
  private readonly claims = new Map<string, Promise<TokenOwner>>();

  constructor(private readonly reads: TokenReads) {}

  /**
   * The job `spec.clientToken` names (created=false) or, if it names none yet, the job `insert`
   * stores (created=true). Throws IdempotentParameterMismatch when the token's job was created by a
   * request with another fingerprint.
   */
  async createOnce(spec: JobSpec, fingerprint: string, insert: () => Promise<Job>): Promise<{ job: Job; created: boolean }> {
    const key = tokenKey(spec.runUser, spec.clientToken);
    let owner: TokenOwner;
    for (;;) {
      const claim = this.claims.get(key);
      if (claim === undefined) {
        owner = await this.claim(key, spec.clientToken, fingerprint, insert);
        break;
      }
      try {
        owner = { ...(await claim), created: false };
        break;
      } catch {
        // That attempt stored nothing: try again.
      }
    }
    if (owner.fingerprint !== fingerprint) {
      throw new HpcqError(
        'IdempotentParameterMismatch',
        'already_exists',
        `client_token ${JSON.stringify(spec.clientToken)} was used with a different request`,
        'client_token',
      );
    }
    return { job: owner.job, created: owner.created };
  }

  /**
   * Claims the token in the same synchronous step as the caller's check for a claim (so a concurrent
   * caller either sees this claim or reads the token after our write), then reads or creates it.
   */
  private async claim(key: string, clientToken: string, fingerprint: string, insert: () => Promise<Job>): Promise<TokenOwner> {
    const claim = this.findOrInsert(key, clientToken, fingerprint, insert);
    this.claims.set(key, claim);
    try {
      return await claim;
    } finally {
      if (this.claims.get(key) === claim) this.claims.delete(key);
    }
  }

  private async findOrInsert(key: string, clientToken: string, fingerprint: string, insert: () => Promise<Job>): Promise<TokenOwner> {
    const raw = await this.reads.get(key);
    if (raw === undefined) return { job: await insert(), fingerprint, created: true };
    let stored: TokenEntry;
    try {
      stored = decodeToken(raw);
    } catch (err) {
      throw corruptRecord(key, err);
    }
    const job = await this.reads.getJob(stored.id);
    if (job === undefined) {
      throw new HpcqError(
        'InternalError.DanglingClientToken',
        'internal',
        `client_token ${JSON.stringify(clientToken)} refers to job ${stored.id}, whose record is not readable`,
        'client_token',
      );
    }
    return { job, fingerprint: stored.fingerprint, created: false };
  }
}
