/**
 * Mints and verifies the daemon's bearer tokens. A remote program that cannot connect as the job's
 * Unix user (a web portal, a workflow engine) sends `authorization: Bearer <token>`, where the token
 * is a JWT this daemon minted for one user: the equivalent of Slurm's `scontrol token` (auth/jwt)
 * or HTCondor's IDTOKENS.
 *
 * The daemon is the only issuer and the only verifier, so it signs with its own Ed25519 key and
 * accepts EdDSA only: never `alg: none`, and never an HMAC algorithm that could be keyed with
 * public material.
 *
 * The signing key is a PKCS#8 PEM file in the daemon's state directory, generated on first start
 * (mode 0600, owned by the daemon's user). Tokens carry no key id and the daemon keeps no list of
 * them, so rotating the key (replace or delete the file, then reload) revokes every token minted
 * before: the way to withdraw a leaked token before it expires.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { JWTPayload } from 'jose';
import { HpcqError } from '../core/errors.js';
import type { Logger } from '../logger.js';

/** The longest lifespan a token may be minted with: 30 days. */
export const MAX_TOKEN_LIFESPAN_SECONDS = 30 * 24 * 3600;

const ISSUER = 'hpcq';
const AUDIENCE = 'hpcq';
const CLOCK_TOLERANCE_SECONDS = 30;
// Ours are a few hundred bytes; the cap keeps a hostile header from costing parse time and memory.
const MAX_TOKEN_LENGTH = 8 * 1024;
// A PEM Ed25519 key is 119 bytes: a file much larger is not a key, and is not read whole.
const MAX_KEY_FILE_BYTES = 64 * 1024;
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;

export interface MintedToken {
  token: string;
  expiresAtMs: number;
}

export interface VerifiedToken {
  user: string;
  uid: number;
  expiresAtMs: number;
  /** Who had the token minted (the `issued_by` claim). */
  issuedBy: string;
  /** The token's `jti`, for the audit log. */
  tokenId: string;
}

interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export class TokenAuthority {
  /** Reloads run one after another, so the key in use is always the one last read. */
  private reloading: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly keyPath: string,
    private key: SigningKey,
    private readonly log: Logger | undefined,
  ) {}

  /**
   * Loads the signing key from `keyPath`, generating it if the file does not exist. Throws if the
   * file is a symlink, not a regular file, not owned by this process's effective uid, accessible by
   * group or others, or not an Ed25519 private key.
   */
  static async open(keyPath: string, log?: Logger): Promise<TokenAuthority> {
    return new TokenAuthority(keyPath, await loadOrCreateKey(keyPath, log), log);
  }

  /**
   * Reads the key file again: after an admin replaced it, or deleted it to have a new key
   * generated. Either way every token signed with the old key stops verifying. If the file is
   * refused, this throws and the old key stays in use.
   */
  reload(): Promise<void> {
    const done = this.reloading.then(async () => {
      this.key = await loadOrCreateKey(this.keyPath, this.log);
    });
    this.reloading = done.catch(() => undefined);
    return done;
  }

  async mint(claims: { user: string; uid: number; lifespanSeconds: number; issuedBy: string }): Promise<MintedToken> {
    const { user, uid, lifespanSeconds, issuedBy } = claims;
    if (!Number.isInteger(lifespanSeconds) || lifespanSeconds < 1 || lifespanSeconds > MAX_TOKEN_LIFESPAN_SECONDS) {
      throw new HpcqError(
        'InvalidParameterValue.TokenLifespan',
        'invalid',
        `lifespan_seconds must be a whole number from 1 to ${MAX_TOKEN_LIFESPAN_SECONDS} (30 days), not ${lifespanSeconds}`,
        'lifespan_seconds',
      );
    }
    // verify() would refuse such a token; refuse to mint it rather than hand out one that never works.
    if (!USER_NAME.test(user)) throw new HpcqError('InvalidParameterValue.TokenUser', 'invalid', 'user must be a Unix user name', 'user');
    if (!Number.isSafeInteger(uid) || uid < 0) throw new HpcqError('InvalidParameterValue.TokenUid', 'invalid', 'uid must be a whole number >= 0', 'uid');
    const nowSeconds = Math.floor(Date.now() / 1000);
    const expiresAt = nowSeconds + lifespanSeconds;
    const { SignJWT } = await loadJose();
    const token = await new SignJWT({ uid, issued_by: issuedBy })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setSubject(user)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(nowSeconds)
      .setNotBefore(nowSeconds)
      .setExpirationTime(expiresAt)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return { token, expiresAtMs: expiresAt * 1000 };
  }

  /**
   * Checks a bearer token (signature, issuer, audience, validity period, claims) and returns whom
   * it stands for. Throws HpcqError `Unauthenticated.TokenExpired` or `Unauthenticated.TokenInvalid`;
   * the message never contains the token.
   */
  async verify(token: string, nowMs?: number): Promise<VerifiedToken> {
    if (token.length > MAX_TOKEN_LENGTH) throw tokenInvalid(`it is longer than ${MAX_TOKEN_LENGTH} characters`);
    const { errors: joseErrors, jwtVerify } = await loadJose();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key.publicKey, {
        algorithms: ['EdDSA'],
        typ: 'JWT',
        issuer: ISSUER,
        audience: AUDIENCE,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub', 'jti'],
        ...(nowMs === undefined ? {} : { currentDate: new Date(nowMs) }),
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) {
        const exp = err.payload.exp;
        const when = typeof exp === 'number' ? ` at ${new Date(exp * 1000).toISOString()}` : '';
        throw new HpcqError('Unauthenticated.TokenExpired', 'unauthenticated', `the bearer token expired${when}; get a new one`, undefined, {
          cause: err,
        });
      }
      throw tokenInvalid(reasonOf(joseErrors, err), err);
    }
    const { sub, uid, exp, jti, issued_by: issuedBy } = payload;
    if (typeof sub !== 'string' || !USER_NAME.test(sub)) throw tokenInvalid('its "sub" claim is not a user name');
    if (typeof uid !== 'number' || !Number.isSafeInteger(uid) || uid < 0) throw tokenInvalid('its "uid" claim is not a uid');
    if (typeof issuedBy !== 'string') throw tokenInvalid('its "issued_by" claim is missing');
    // jose has checked that exp is a number and jti a string (required claims).
    return { user: sub, uid, expiresAtMs: (exp as number) * 1000, issuedBy, tokenId: jti as string };
  }
}

type JoseErrors = typeof import('jose').errors;

let jose: Promise<typeof import('jose')> | undefined;
/**
 * jose is imported on the first token minted or checked: a daemon whose callers all come over the
 * unix socket never needs it, and loading it at start cost the idle daemon 2.4 MiB of RSS.
 */
function loadJose(): Promise<typeof import('jose')> {
  return (jose ??= import('jose'));
}

function tokenInvalid(reason: string, cause?: unknown): HpcqError {
  return new HpcqError('Unauthenticated.TokenInvalid', 'unauthenticated', `the bearer token is not valid: ${reason}`, undefined, { cause });
}

/**
 * Why jose refused a token, in words of our own: jose's messages are fixed strings today, but the
 * reason must never be able to echo the token, so only its error class and claim name are used.
 */
function reasonOf(joseErrors: JoseErrors, err: unknown): string {
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return err.reason === 'missing' ? `it has no "${err.claim}" claim` : `its "${err.claim}" claim is not acceptable`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not match this daemon\'s key (forged, or signed with a key since rotated)';
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) return 'it is not signed with EdDSA';
  return 'it is not a well-formed JWT';
}

async function loadOrCreateKey(keyPath: string, log: Logger | undefined): Promise<SigningKey> {
  const pem = await readKeyFile(keyPath);
  if (pem !== undefined) {
    const key = parseKey(keyPath, pem);
    log?.info({ keyPath, keyId: keyIdOf(key.publicKey) }, 'token signing key loaded');
    return key;
  }
  let key: SigningKey;
  try {
    key = await createKeyFile(keyPath);
  } catch (err) {
    throw new Error(`cannot create the token signing key ${keyPath}: ${(err as Error).message}`, { cause: err });
  }
  log?.info({ keyPath, keyId: keyIdOf(key.publicKey) }, 'token signing key generated (tokens signed with any earlier key no longer verify)');
  return key;
}

/** The key file's text, or undefined if there is no file. Throws if the file is not safe to trust. */
async function readKeyFile(keyPath: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    // O_NOFOLLOW: a symlink put in place of the key must not choose what is read.
    // O_NONBLOCK: a FIFO put there must not hang the daemon in open().
    handle = await open(keyPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') {
      throw new Error(
        `token signing key ${keyPath} is a symbolic link, which is refused; put the key file itself there, ` +
          'or delete the link to have a new key generated',
        { cause: err },
      );
    }
    throw new Error(`cannot open the token signing key ${keyPath}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new Error(`token signing key ${keyPath} is not a regular file; remove it to have a new key generated`);
    const euid = process.geteuid?.();
    if (euid !== undefined && st.uid !== euid) {
      throw new Error(`token signing key ${keyPath} is owned by uid ${st.uid}, not by the daemon's uid ${euid}; chown it to ${euid}`);
    }
    if ((st.mode & 0o077) !== 0) {
      throw new Error(
        `token signing key ${keyPath} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it, ` +
          'and since others may have read it, better delete it and reload to rotate the key',
      );
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw new Error(`token signing key ${keyPath} is ${st.size} bytes, too large to be a key`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

function parseKey(keyPath: string, pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`token signing key ${keyPath} is not a readable PEM private key; delete it to have a new key generated`, { cause: err });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`token signing key ${keyPath} holds an ${privateKey.asymmetricKeyType} key, not an Ed25519 one; delete it to have a new key generated`);
  }
  return { privateKey, publicKey: createPublicKey(privateKey) };
}

/**
 * Generates a key and writes it to `keyPath` all at once: into a fresh temporary file in the same
 * directory, made durable, then renamed over `keyPath`, so that a crash leaves either no key or a
 * whole one, never a truncated key that would refuse every start.
 */
async function createKeyFile(keyPath: string): Promise<SigningKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  const dir = dirname(keyPath);
  const temp = join(dir, `.${basename(keyPath)}.${randomBytes(8).toString('hex')}.tmp`);
  const handle = await open(temp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600);
  let renamed = false;
  try {
    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, keyPath);
    renamed = true;
  } finally {
    if (!renamed) await rm(temp, { force: true });
  }
  // The rename itself must survive a crash too, or a restart would generate yet another key.
  const dirHandle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
  return { privateKey, publicKey };
}

/** A short fingerprint of the public key, so logs show which key is in use without showing it. */
function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64url').slice(0, 16);
}
