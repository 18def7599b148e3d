/**
 * UserDirectory backed by NSS (`getent passwd` and `id`), so LDAP/SSSD accounts work like local
 * ones. Answers are cached briefly: a submit storm for one user costs one lookup, and a new,
 * removed or regrouped account is seen within the TTL. The groups are what initgroups gives, the
 * same the supervisor sets for the job.
 */
import { execFile } from 'node:child_process';
import type { UserAccount, UserDirectory } from '../core/ports.js';

const POSITIVE_TTL_MS = 60_000;
const NEGATIVE_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

interface CacheEntry {
  account: UserAccount | undefined;
  expiresAt: number;
  pending?: Promise<UserAccount | undefined>;
}

export class GetentUserDirectory implements UserDirectory {
  /** Keyed by `name` or `#uid`. */
  private readonly cache = new Map<string, CacheEntry>();

  lookup(name: string): Promise<UserAccount | undefined> {
    return this.cached(name, () => lookupAccount(name));
  }

  lookupUid(uid: number): Promise<UserAccount | undefined> {
    return this.cached(`#${uid}`, () => lookupAccount(String(uid)));
  }

  private async cached(key: string, load: () => Promise<UserAccount | undefined>): Promise<UserAccount | undefined> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && (hit.pending || hit.expiresAt > now)) return hit.pending ?? hit.account;
    const pending = load();
    this.cache.set(key, { account: undefined, expiresAt: 0, pending });
    try {
      const account = await pending;
      if (this.cache.size >= MAX_ENTRIES) this.cache.clear();
      this.cache.set(key, { account, expiresAt: Date.now() + (account ? POSITIVE_TTL_MS : NEGATIVE_TTL_MS) });
      return account;
    } catch (err) {
      this.cache.delete(key);
      throw err;
    }
  }
}

/** `key` is a user name or a decimal uid (getent passwd takes either). */
async function lookupAccount(key: string): Promise<UserAccount | undefined> {
  const line = await run('getent', ['passwd', '--', key]);
  if (line === undefined) return undefined;
  const account = parsePasswdLine(line.split('\n')[0] ?? '');
  if (!account || (account.name !== key && String(account.uid) !== key)) return undefined;
  const ids = await run('id', ['--', account.name]);
  return { ...account, groups: ids === undefined ? [{ name: account.name, gid: account.gid }] : parseIdGroups(ids) };
}

/** stdout of the command, or undefined when it says "not found" (exit 1 of id, 2 of getent). */
function run(command: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 5000, env: { PATH: '/usr/bin:/bin' } }, (err, stdout) => {
      const code = (err as { code?: unknown } | null)?.code;
      if (err && (code === 2 || code === 1)) return resolve(undefined);
      if (err) return reject(new Error(`${command} ${args.join(' ')} failed: ${err.message}`));
      resolve(stdout);
    });
  });
}

/** Parses one passwd(5) line (without groups); undefined if malformed or, given, for another name. */
export function parsePasswdLine(line: string, expectedName?: string): Omit<UserAccount, 'groups'> | undefined {
  const f = line.split(':');
  if (f.length < 7 || (expectedName !== undefined && f[0] !== expectedName) || !f[0]) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name: f[0], uid, gid, home: f[5] || '/', shell: f[6] || '/bin/sh' };
}

/** The groups of `id <user>`'s output: `uid=1001(a) gid=1001(a) groups=1001(a),27(sudo),4242`. */
export function parseIdGroups(output: string): { name: string; gid: number }[] {
  const list = /groups=(\S+)/.exec(output)?.[1] ?? '';
  return list
    .split(',')
    .map((entry) => /^(\d+)(?:\((.*)\))?$/.exec(entry))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ gid: Number(m[1]), name: m[2] ?? m[1]! }));
}
