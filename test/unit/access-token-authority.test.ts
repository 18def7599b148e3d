/**
 * TokenAuthority with real key files in a temp directory: the key file's creation, reuse and
 * refusals, rotation by deleting the key, and the tokens verify() must refuse (expired, foreign,
 * unsigned, HMAC, tampered, oversized), each without echoing the token in the error.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_TOKEN_LIFESPAN_SECONDS, TokenAuthority } from '../../src/access/token-authority.js';
import { HpcqError } from '../../src/core/errors.js';
import { isRoot, need } from '../support/privileged.js';

const CLAIMS = { user: 'alice', uid: 1234, lifespanSeconds: 3600, issuedBy: 'root' };

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Valid claims for a token made by hand, as mint() would set them. */
function handMadeClaims(): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { sub: 'alice', uid: 1234, iss: 'hpcq', aud: 'hpcq', iat: now, nbf: now, exp: now + 3600, jti: 'x', issued_by: 'root' };
}

/** Expects `promise` to reject with HpcqError `code` whose message does not contain `token`. */
async function expectRefused(promise: Promise<unknown>, code: string, token: string): Promise<HpcqError> {
  const err = await promise.then(
    () => expect.fail(`expected ${code}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HpcqError);
  const hpcqError = err as HpcqError;
  expect(hpcqError.code).toBe(code);
  expect(hpcqError.kind).toBe('unauthenticated');
  expect(hpcqError.message).not.toContain(token);
  // Not even the payload or the signature alone.
  for (const part of token.split('.')) if (part.length >= 8) expect(hpcqError.message).not.toContain(part);
  return hpcqError;
}

describe('TokenAuthority', () => {
  let dir: string;
  let keyPath: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hpcq-token-'));
    keyPath = join(dir, 'token-signing.key');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the key file with mode 0600 and reuses it on reopen', async () => {
    const first = await TokenAuthority.open(keyPath);
    const st = statSync(keyPath);
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.geteuid?.());
    const pem = readFileSync(keyPath, 'utf8');
    expect(pem).toContain('BEGIN PRIVATE KEY');
    const { token } = await first.mint(CLAIMS);

    const second = await TokenAuthority.open(keyPath);
    expect(readFileSync(keyPath, 'utf8')).toBe(pem);
    await expect(second.verify(token)).resolves.toMatchObject({ user: 'alice', uid: 1234 });
  });

  it('verifies a minted token with its user, uid, issuer and expiry', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const before = Date.now();
    const { token, expiresAtMs } = await authority.mint(CLAIMS);
    expect(expiresAtMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3600_000);
    expect(expiresAtMs).toBeLessThanOrEqual(before + 3600_000 + 1000);

    const verified = await authority.verify(token);
    expect(verified).toEqual({ user: 'alice', uid: 1234, expiresAtMs, issuedBy: 'root', tokenId: expect.any(String) });
    const [header] = token.split('.');
    expect(JSON.parse(Buffer.from(header ?? '', 'base64url').toString())).toEqual({ alg: 'EdDSA', typ: 'JWT' });
    // Every token gets its own id.
    expect((await authority.verify((await authority.mint(CLAIMS)).token)).tokenId).not.toBe(verified.tokenId);
  });

  it('refuses an expired token as expired', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const { token } = await authority.mint({ ...CLAIMS, lifespanSeconds: 1 });
    const err = await expectRefused(authority.verify(token, Date.now() + 60_000), 'Unauthenticated.TokenExpired', token);
    expect(err.message).toMatch(/expired/);
    // Within the clock tolerance it is still good.
    await expect(authority.verify(token, Date.now() + 20_000)).resolves.toMatchObject({ user: 'alice' });
  });

  it('refuses a token signed by another authority', async () => {
    const otherDir = join(dir, 'other');
    mkdirSync(otherDir, { mode: 0o700 });
    const other = await TokenAuthority.open(join(otherDir, 'token-signing.key'));
    const authority = await TokenAuthority.open(keyPath);
    const { token } = await other.mint(CLAIMS);
    await expectRefused(authority.verify(token), 'Unauthenticated.TokenInvalid', token);
  });

  it('refuses an unsigned (alg: none) token', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const token = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(handMadeClaims())}.`;
    await expectRefused(authority.verify(token), 'Unauthenticated.TokenInvalid', token);
  });

  it('refuses an HS256 token', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const token = await new SignJWT(handMadeClaims()).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(randomBytes(32));
    await expectRefused(authority.verify(token), 'Unauthenticated.TokenInvalid', token);
  });

  it('refuses a token whose payload was changed', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const { token } = await authority.mint(CLAIMS);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `${header}.${base64url({ ...claims, sub: 'root' })}.${signature}`;
    await expectRefused(authority.verify(tampered), 'Unauthenticated.TokenInvalid', tampered);
  });

  it('refuses garbage and oversized tokens without parsing them', async () => {
    const authority = await TokenAuthority.open(keyPath);
    await expectRefused(authority.verify('not-a-jwt-at-all'), 'Unauthenticated.TokenInvalid', 'not-a-jwt-at-all');
    const { token } = await authority.mint(CLAIMS);
    const oversized = `${token}${'A'.repeat(8 * 1024)}`;
    const err = await expectRefused(authority.verify(oversized), 'Unauthenticated.TokenInvalid', oversized);
    expect(err.message).toMatch(/longer than/);
  });

  it('rotates the key when the key file is deleted and reloaded: old tokens stop verifying', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const { token: old } = await authority.mint(CLAIMS);
    const oldPem = readFileSync(keyPath, 'utf8');

    unlinkSync(keyPath);
    await authority.reload();
    expect(readFileSync(keyPath, 'utf8')).not.toBe(oldPem);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);

    await expectRefused(authority.verify(old), 'Unauthenticated.TokenInvalid', old);
    const { token: fresh } = await authority.mint(CLAIMS);
    await expect(authority.verify(fresh)).resolves.toMatchObject({ user: 'alice', uid: 1234 });
  });

  it('keeps the old key when a reload finds the key file unsafe', async () => {
    const authority = await TokenAuthority.open(keyPath);
    const { token } = await authority.mint(CLAIMS);
    chmodSync(keyPath, 0o644);
    await expect(authority.reload()).rejects.toThrow(/group or others/);
    await expect(authority.verify(token)).resolves.toMatchObject({ user: 'alice' });
  });

  it('refuses a key file readable by others, telling what to do', async () => {
    await TokenAuthority.open(keyPath);
    chmodSync(keyPath, 0o644);
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/accessible by group or others \(mode 644\); chmod 600/);
  });

  it('refuses a key file that is a symlink, even to a good key', async () => {
    const realKey = join(dir, 'real.key');
    await TokenAuthority.open(realKey);
    symlinkSync(realKey, keyPath);
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/symbolic link/);
    // A dangling link is not taken for a missing key either.
    unlinkSync(realKey);
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/symbolic link/);
  });

  it('refuses a key path that is not a regular file', async () => {
    mkdirSync(keyPath, { mode: 0o700 });
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/not a regular file/);
  });

  it('refuses a key file that is not an Ed25519 private key', async () => {
    writeFileSync(keyPath, 'not a key\n', { mode: 0o600 });
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/not a readable PEM private key/);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/holds an ec key, not an Ed25519 one/);
  });

  it('refuses a key file owned by another user', async (ctx) => {
    if (!need(isRoot, 'root')) return ctx.skip();
    await TokenAuthority.open(keyPath);
    chownSync(keyPath, 65534, 65534);
    await expect(TokenAuthority.open(keyPath)).rejects.toThrow(/owned by uid 65534, not by the daemon's uid 0; chown/);
  });

  it('refuses lifespans outside 1 s .. 30 days', async () => {
    const authority = await TokenAuthority.open(keyPath);
    for (const lifespanSeconds of [0, -5, 1.5, MAX_TOKEN_LIFESPAN_SECONDS + 1]) {
      const err = await authority.mint({ ...CLAIMS, lifespanSeconds }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HpcqError);
      expect(err).toMatchObject({ code: 'InvalidParameterValue.TokenLifespan', kind: 'invalid', field: 'lifespan_seconds' });
    }
    expect(MAX_TOKEN_LIFESPAN_SECONDS).toBe(30 * 24 * 3600);
    const { token } = await authority.mint({ ...CLAIMS, lifespanSeconds: MAX_TOKEN_LIFESPAN_SECONDS });
    await expect(authority.verify(token)).resolves.toMatchObject({ user: 'alice' });
  });

  it('refuses to mint a token for a name verify() would not accept', async () => {
    const authority = await TokenAuthority.open(keyPath);
    await expect(authority.mint({ ...CLAIMS, user: 'alice; rm -rf /' })).rejects.toMatchObject({ code: 'InvalidParameterValue.TokenUser' });
    await expect(authority.mint({ ...CLAIMS, uid: -1 })).rejects.toMatchObject({ code: 'InvalidParameterValue.TokenUid' });
  });
});
