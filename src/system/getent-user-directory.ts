/**
 * UserDirectory backed by NSS (`getent passwd`), so LDAP/SSSD accounts work like local ones.
 * Answers are cached briefly: a submit storm for one user costs one lookup, and a new or removed
 * account is seen within the TTL. The supervisor resolves groups itself (initgroups) at launch.
 */
import { execFile } from 'node:child_process';
import type { UserAccount, UserDirectory } from '../core/ports.js';

const POSITIVE_TTL_MS = 60_000;
const NEGATIVE_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

export class GetentUserDirectory implements UserDirectory {
  private readonly cache = new Map<string, { account: UserAccount | undefined; expiresAt: number; pending?: Promise<UserAccount | undefined> }>();

  async lookup(name: string): Promise<UserAccount | undefined> {
    const now = Date.now();
    const hit = this.cache.get(name);
    if (hit && (hit.pending || hit.expiresAt > now)) return hit.pending ?? hit.account;
    const pending = getentPasswd(name);
    this.cache.set(name, { account: undefined, expiresAt: 0, pending });
    try {
      const account = await pending;
      if (this.cache.size >= MAX_ENTRIES) this.cache.clear();
      this.cache.set(name, { account, expiresAt: Date.now() + (account ? POSITIVE_TTL_MS : NEGATIVE_TTL_MS) });
      return account;
    } catch (err) {
      this.cache.delete(name);
      throw err;
    }
  }
}

function getentPasswd(name: string): Promise<UserAccount | undefined> {
  return new Promise((resolve, reject) => {
    execFile('getent', ['passwd', '--', name], { timeout: 5000, env: { PATH: '/usr/bin:/bin' } }, (err, stdout) => {
      // getent exits 2 when the key is not found.
      if (err && (err as { code?: unknown }).code === 2) return resolve(undefined);
      if (err) return reject(new Error(`getent passwd ${name} failed: ${err.message}`));
      resolve(parsePasswdLine(stdout.split('\n')[0] ?? '', name));
    });
  });
}

/** Parses one passwd(5) line; undefined if malformed or for another name. */
export function parsePasswdLine(line: string, expectedName: string): UserAccount | undefined {
  const f = line.split(':');
  if (f.length < 7 || f[0] !== expectedName) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name: f[0], uid, gid, home: f[5] || '/', shell: f[6] || '/bin/sh' };
}
