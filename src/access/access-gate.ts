/**
 * Every RPC passes this gate before its handler runs: it establishes the caller (the principal) from
 * the connection - the kernel's uid on a unix socket, the verified certificate or a bearer token on
 * TLS - then applies the caller limits (request rate, concurrent calls), and afterwards writes the
 * audit line. Nothing a client sends can change who it is: on a unix socket the `authorization`
 * header and every other piece of metadata are ignored; over TLS only a token this daemon signed counts.
 */
import type { Metadata } from '@grpc/grpc-js';
import type { AccessConfig } from '../config/daemon-config.js';
import { isAdmin, type AccessContext, type Principal } from '../core/access-policy.js';
import { HpcqError, RequestLimitError } from '../core/errors.js';
import type { UserDirectory } from '../core/ports.js';
import type { AuditLog } from './audit-log.js';
import type { ConnectionRegistry } from './connections.js';
import { RateLimiter } from './rate-limiter.js';
import type { TokenAuthority } from './token-authority.js';

/** The parts of a grpc-js call the gate reads. */
export interface IncomingCall {
  getPeer(): string;
  metadata: Metadata;
}

export interface Admission {
  principal: Principal;
  /** Ends the call's hold on the principal's concurrent-call budget. Idempotent. */
  release(): void;
}

export interface AccessGateDeps {
  connections: ConnectionRegistry;
  tokens: TokenAuthority;
  users: UserDirectory;
  audit: AuditLog;
  /** The access policy in force (it changes on reload). */
  context: () => AccessContext;
  now?: () => number;
}

export class AccessGate {
  private rateLimiter: RateLimiter;
  /** The settings rateLimiter was made with (config objects are frozen and replaced on reload). */
  private rateSettings: AccessConfig['rateLimit'];
  private readonly activeCalls = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly deps: AccessGateDeps) {
    this.now = deps.now ?? Date.now;
    const { rateLimit } = deps.context().access;
    this.rateLimiter = new RateLimiter({ ratePerSecond: rateLimit.perSecond, burst: rateLimit.burst });
    this.rateSettings = rateLimit;
  }

  /** Authenticates and admits a call, or throws the refusal (already audited). */
  async admit(call: IncomingCall, method: string): Promise<Admission> {
    const peer = call.getPeer();
    let principal: Principal;
    try {
      checkMetadataSize(call.metadata);
      principal = await this.authenticate(peer, call.metadata);
    } catch (err) {
      this.auditRefusal(undefined, this.deps.connections.identityOf(peer)?.peer ?? peer, method, err);
      throw err;
    }
    const ctx = this.deps.context();
    try {
      if (!(ctx.access.rateLimit.adminsExempt && isAdmin(principal, ctx))) this.takeRate(principal);
      return this.holdCall(principal, ctx.access.maxStreamsPerPrincipal);
    } catch (err) {
      this.auditRefusal(principal, principal.peer, method, err);
      throw err;
    }
  }

  /** Writes the audit line of a finished call: every mutating call, and every refusal of any call. */
  recordResult(principal: Principal, method: string, mutating: boolean, err: unknown, details: { jobId?: string; runUser?: string } = {}): void {
    if (err === undefined) {
      if (mutating) this.deps.audit.record({ principal: principal.name, peer: principal.peer, method, result: 'ok', ...details });
      return;
    }
    if (mutating || isRefusal(err)) this.auditRefusal(principal, principal.peer, method, err, details);
  }

  private auditRefusal(principal: Principal | undefined, peer: string, method: string, err: unknown, details: { jobId?: string; runUser?: string } = {}): void {
    const known = err instanceof HpcqError;
    this.deps.audit.record({
      principal: principal?.name ?? '',
      peer,
      method,
      result: known ? 'refused' : 'error',
      reason: known ? err.code : 'InternalError',
      ...details,
    });
  }

  private async authenticate(peer: string, metadata: Metadata): Promise<Principal> {
    const identity = this.deps.connections.identityOf(peer);
    if (!identity) throw new HpcqError('Unauthenticated.UnknownConnection', 'unauthenticated', 'the connection has no identity');
    if (identity.kind === 'unix') {
      const nowMs = this.now();
      const cached = this.deps.connections.cachedPrincipal(peer, nowMs);
      if (cached) return cached;
      const account = await this.deps.users.lookupUid(identity.uid);
      const principal: Principal = { name: `uid:${identity.uid}`, via: 'unix', peer: identity.peer, ...(account ? { account } : {}) };
      this.deps.connections.rememberPrincipal(peer, principal, nowMs + PRINCIPAL_TTL_MS);
      return principal;
    }
    const bearer = bearerToken(metadata);
    if (bearer !== undefined) {
      const claims = await this.deps.tokens.verify(bearer, this.now());
      const account = await this.deps.users.lookupUid(claims.uid);
      // The account must still be the one the token was made for (not a new user given the uid).
      if (!account || account.name !== claims.user) {
        throw new HpcqError('Unauthenticated.TokenInvalid', 'unauthenticated', 'the token names an account that no longer exists as it was');
      }
      return { name: `uid:${account.uid}`, via: 'token', peer: identity.peer, account };
    }
    if (identity.certificateName !== undefined) return { name: identity.certificateName, via: 'certificate', peer: identity.peer };
    throw new HpcqError('Unauthenticated.CredentialRequired', 'unauthenticated', 'a client certificate or an authorization: Bearer token is required over TCP');
  }

  private takeRate(principal: Principal): void {
    const { rateLimit } = this.deps.context().access;
    if (rateLimit !== this.rateSettings && JSON.stringify(rateLimit) !== JSON.stringify(this.rateSettings)) {
      this.rateLimiter = new RateLimiter({ ratePerSecond: rateLimit.perSecond, burst: rateLimit.burst });
    }
    this.rateSettings = rateLimit;
    const taken = this.rateLimiter.take(principal.name, this.now());
    if (!taken.ok) {
      throw new RequestLimitError(`${principal.name} exceeds ${rateLimit.perSecond} requests per second (burst ${rateLimit.burst}); retry in ${taken.retryAfterMs} ms`, taken.retryAfterMs);
    }
  }

  private holdCall(principal: Principal, max: number): Admission {
    const key = principal.name;
    const active = this.activeCalls.get(key) ?? 0;
    if (active >= max) {
      throw new HpcqError('LimitExceeded.ConcurrentCalls', 'exhausted', `${principal.name} already has ${active} calls and watches open (at most ${max})`);
    }
    this.activeCalls.set(key, active + 1);
    let released = false;
    return {
      principal,
      release: () => {
        if (released) return;
        released = true;
        const n = (this.activeCalls.get(key) ?? 1) - 1;
        if (n <= 0) this.activeCalls.delete(key);
        else this.activeCalls.set(key, n);
      },
    };
  }
}

/**
 * How long a connection's principal (its account and groups) is reused before it is looked up
 * again: the account is looked up once per connection, and a long-lived connection still sees a
 * changed group membership within a minute, like a new one (the user directory caches as long).
 */
const PRINCIPAL_TTL_MS = 60_000;

/** Largest metadata a call may carry (keys and values); hpcq's own clients send a few hundred bytes. */
const MAX_METADATA_BYTES = 16 * 1024;

function checkMetadataSize(metadata: Metadata): void {
  let bytes = 0;
  for (const [key, value] of Object.entries(metadata.getMap())) bytes += key.length + (typeof value === 'string' ? value.length : value.length);
  if (bytes > MAX_METADATA_BYTES) {
    throw new HpcqError('LimitExceeded.MetadataSize', 'exhausted', `the call's metadata is ${bytes} bytes; at most ${MAX_METADATA_BYTES} are accepted`);
  }
}

/** Refusals worth an audit line even for reads: who was turned away, and why. */
function isRefusal(err: unknown): boolean {
  return err instanceof HpcqError && (err.kind === 'unauthenticated' || err.kind === 'permission' || err.kind === 'exhausted');
}

function bearerToken(metadata: Metadata): string | undefined {
  const value = metadata.get('authorization')[0];
  if (typeof value !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(value.trim());
  if (!m) throw new HpcqError('Unauthenticated.TokenInvalid', 'unauthenticated', 'authorization must be "Bearer <token>"');
  return m[1];
}
