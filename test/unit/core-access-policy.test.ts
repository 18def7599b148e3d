// The access decisions as tables: who is an admin, who may run jobs as whom, which accounts may run
// jobs at all, which queues take which accounts, who sees which jobs and what a ListJobs returns.
import { describe, expect, it } from 'vitest';
import type { AccessConfig, PrincipalRule } from '../../src/config/daemon-config.js';
import { compileConfig } from '../../src/config/load-config.js';
import {
  assertMayRunAs,
  assertQueueAllows,
  assertRunnableAccount,
  isAdmin,
  listScope,
  mayActOnJob,
  mayRunAs,
  mayViewJob,
  queueAllows,
  type AccessContext,
  type Principal,
} from '../../src/core/access-policy.js';
import { HpcqError } from '../../src/core/errors.js';
import type { UserAccount } from '../../src/core/ports.js';
import { DEFAULT_ACCESS } from '../support/access-defaults.js';


function user(name: string, uid: number, groups: Array<[string, number]> = [[name, uid]], gid = groups[0]?.[1] ?? uid): UserAccount {
  return { name, uid, gid, home: `/home/${name}`, shell: '/bin/sh', groups: groups.map(([n, g]) => ({ name: n, gid: g })) };
}

const ROOT = user('root', 0, [['root', 0]]);
const ALICE = user('alice', 1001, [['alice', 1001], ['physics', 2000]]);
const BOB = user('bob', 1002, [['bob', 1002]]);
const CAROL = user('carol', 1003, [['carol', 1003], ['physics', 2000], ['hpcadm', 2001]]);
/** The user a personal daemon runs as in these tables. */
const PAT = user('pat', 1005, [['pat', 1005]]);
const DAEMON = user('daemon', 1, [['daemon', 1]]);
const NOBODY = user('nobody', 65534, [['nogroup', 65534]]);
/** A regular uid with group root among its supplementary groups. */
const DAVE = user('dave', 1006, [['dave', 1006], ['root', 0]]);
/** A regular uid whose primary group is root, without it in the groups list. */
const ERIN = user('erin', 1007, [['staff', 50]], 0);

const local = (account: UserAccount): Principal => ({ name: `uid:${account.uid}`, via: 'unix', peer: `uid:${account.uid}/pid:1`, account });
const viaToken = (account: UserAccount): Principal => ({ name: `uid:${account.uid}`, via: 'token', peer: '192.0.2.1:5000', account });
const cert = (name: string): Principal => ({ name, via: 'certificate', peer: '192.0.2.2:5000' });

const PORTAL = cert('spiffe://example.org/portal');
const OPS = cert('ops.example.org');
const STRANGER = cert('CN=stranger');

function ctx(access: Partial<AccessConfig> = {}, daemonUid = 0): AccessContext {
  return { access: { ...DEFAULT_ACCESS, ...access }, daemonUid };
}
const rules = (...principals: Array<Partial<PrincipalRule> & { name: string }>): Partial<AccessConfig> => ({
  principals: principals.map((p) => ({ runUsers: [], admin: false, ...p })),
});

/** The error code a call throws, or 'ok'. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(HpcqError);
    return (err as HpcqError).code;
  }
}

describe('the defaults these tables use', () => {
  it('equal the compiled default access config of a root daemon', () => {
    expect(compileConfig({}, 'test', {}, { cores: 1, memoryMb: 4096, uid: 0 }).access).toEqual(DEFAULT_ACCESS);
  });
});

describe('isAdmin', () => {
  it.each<[string, Principal, Partial<AccessConfig>, number, boolean]>([
    ['root (uid 0) over the socket', local(ROOT), {}, 0, true],
    ['root with a token', viaToken(ROOT), {}, 0, true],
    ['root of a personal daemon', local(ROOT), {}, 1005, true],
    ['a regular user', local(ALICE), {}, 0, false],
    ["the daemon's own uid (personal daemon, uid 1005)", local(PAT), {}, 1005, true],
    ["the daemon's own uid with a token", viaToken(PAT), {}, 1005, true],
    ['another user of a personal daemon', local(ALICE), {}, 1005, false],
    ['uid 1005 when the daemon runs as root', local(PAT), {}, 0, false],
    ['a member of an admin group (supplementary)', local(CAROL), { adminGroups: ['hpcadm'] }, 0, true],
    ['a member of one of several admin groups', local(ALICE), { adminGroups: ['wheel', 'physics'] }, 0, true],
    ['not a member of the admin groups', local(BOB), { adminGroups: ['hpcadm', 'physics'] }, 0, false],
    ['a certificate principal with admin: true', OPS, rules({ name: 'ops.example.org', admin: true }), 0, true],
    ['a certificate principal listed without admin', PORTAL, rules({ name: PORTAL.name, runUsers: ['alice'] }), 0, false],
    ['an unlisted certificate principal', STRANGER, rules({ name: 'ops.example.org', admin: true }), 0, false],
    ['a certificate principal and admin_groups (it has no groups)', STRANGER, { adminGroups: ['physics'] }, 0, false],
    ['a local account listed as user:<name> with admin: true', local(BOB), rules({ name: 'user:bob', admin: true }), 0, true],
    ['a bare name is a certificate subject, not the local user of that name', local(BOB), rules({ name: 'bob', admin: true }), 0, false],
    ['a certificate whose subject is a local user name gets no local rule', { name: 'alice', via: 'certificate', peer: 'x' }, rules({ name: 'user:alice', admin: true }), 0, false],
    ['a certificate subject spelled like a local rule matches nothing', { name: 'user:bob', via: 'certificate', peer: 'x' }, rules({ name: 'user:bob', admin: true }), 0, false],
    ['a local account listed by uid:<n> with admin: true', local(BOB), rules({ name: 'uid:1002', admin: true }), 0, true],
    ['a local account listed by user name without admin', local(BOB), rules({ name: 'user:bob', runUsers: ['alice'] }), 0, false],
  ])('%s -> %s', (_what, principal, access, daemonUid, expected) => {
    expect(isAdmin(principal, ctx(access, daemonUid))).toBe(expected);
  });
});

describe('mayRunAs / assertMayRunAs', () => {
  it.each<[string, Principal, UserAccount, Partial<AccessConfig>, number, boolean]>([
    ['a user as itself', local(ALICE), ALICE, {}, 0, true],
    ['a user with a token as itself', viaToken(ALICE), ALICE, {}, 0, true],
    ['a user as another', local(ALICE), BOB, {}, 0, false],
    ['the same uid under another name counts as itself', local(ALICE), { ...ALICE, name: 'alice2' }, {}, 0, true],
    ['an admin (root) as anyone', local(ROOT), BOB, {}, 0, true],
    ['an admin-group member as anyone', local(CAROL), BOB, { adminGroups: ['hpcadm'] }, 0, true],
    ["the personal daemon's user as another", local(PAT), ALICE, {}, 1005, true],
    ['a certificate principal with admin: true as anyone', OPS, BOB, rules({ name: OPS.name, admin: true }), 0, true],
    ['an unlisted certificate principal as anyone', STRANGER, ALICE, {}, 0, false],
    ['a listed certificate principal as a listed user', PORTAL, ALICE, rules({ name: PORTAL.name, runUsers: ['alice', 'carol'] }), 0, true],
    ['a listed certificate principal as an unlisted user', PORTAL, BOB, rules({ name: PORTAL.name, runUsers: ['alice', 'carol'] }), 0, false],
    ['a listed certificate principal as a member of an @group', PORTAL, CAROL, rules({ name: PORTAL.name, runUsers: ['@physics'] }), 0, true],
    ['a listed certificate principal as a non-member of the @group', PORTAL, BOB, rules({ name: PORTAL.name, runUsers: ['@physics'] }), 0, false],
    ['@group matches a group, not a user of that name', PORTAL, BOB, rules({ name: PORTAL.name, runUsers: ['@bob2'] }), 0, false],
    ['a user name entry does not match a group of that name', PORTAL, ALICE, rules({ name: PORTAL.name, runUsers: ['physics'] }), 0, false],
    ["another principal's rule does not apply", STRANGER, ALICE, rules({ name: PORTAL.name, runUsers: ['alice'] }), 0, false],
    ['a local account listed by user name, as its run_users', local(BOB), ALICE, rules({ name: 'user:bob', runUsers: ['@physics'] }), 0, true],
    ['a local account listed by user name, as others', local(BOB), DAEMON, rules({ name: 'user:bob', runUsers: ['@physics'] }), 0, false],
    ['a bare rule name never applies to the local account of that name', local(BOB), ALICE, rules({ name: 'bob', runUsers: ['@physics'] }), 0, false],
    ['a local account listed by uid:<n>, as its run_users', local(BOB), ALICE, rules({ name: 'uid:1002', runUsers: ['alice'] }), 0, true],
  ])('%s -> %s', (_what, principal, runAccount, access, daemonUid, expected) => {
    const c = ctx(access, daemonUid);
    expect(mayRunAs(principal, runAccount, c)).toBe(expected);
    expect(mayActOnJob(principal, runAccount, c)).toBe(expected);
    expect(codeOf(() => assertMayRunAs(principal, runAccount, c))).toBe(expected ? 'ok' : 'OperationDenied.RunUserNotAllowed');
  });

  it('names the principal and the account, with kind permission and field run_user', () => {
    let thrown: unknown;
    try {
      assertMayRunAs(local(ALICE), BOB, ctx());
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'OperationDenied.RunUserNotAllowed', kind: 'permission', field: 'run_user' });
    expect((thrown as Error).message).toBe('uid:1001 may not run jobs as bob');
  });
});

describe('assertRunnableAccount', () => {
  it.each<[string, UserAccount, Partial<AccessConfig>, number, string]>([
    ['a regular user', ALICE, {}, 0, 'ok'],
    ['uid 0', ROOT, {}, 0, 'OperationDenied.RunUserPrivileged'],
    ['uid 0 with allow_root_group and min_uid 1', ROOT, { allowRootGroup: true, minUid: 1 }, 0, 'OperationDenied.RunUserPrivileged'],
    ['uid 0 on a personal daemon', ROOT, {}, 1005, 'OperationDenied.RunUserPrivileged'],
    ['a system account below min_uid (daemon, uid 1)', DAEMON, {}, 0, 'OperationDenied.RunUserPrivileged'],
    ['uid 999 below the default min_uid', user('svc', 999), {}, 0, 'OperationDenied.RunUserPrivileged'],
    ['uid exactly min_uid', user('first', 1000), {}, 0, 'ok'],
    ['uid 1 with min_uid 1', DAEMON, { minUid: 1 }, 0, 'ok'],
    ['uid 1001 with min_uid 1002', ALICE, { minUid: 1002 }, 0, 'OperationDenied.RunUserPrivileged'],
    ['nobody (65534)', NOBODY, {}, 0, 'ok'],
    ['below min_uid on a personal daemon (min_uid does not apply)', user('lowpat', 500), {}, 500, 'ok'],
    ['group root among supplementary groups', DAVE, {}, 0, 'OperationDenied.RunUserPrivileged'],
    ['group root as the primary gid only', ERIN, {}, 0, 'OperationDenied.RunUserPrivileged'],
    ['group root with allow_root_group', DAVE, { allowRootGroup: true }, 0, 'ok'],
    ['primary gid 0 with allow_root_group', ERIN, { allowRootGroup: true }, 0, 'ok'],
    ['group root on a personal daemon', DAVE, {}, 1006, 'OperationDenied.RunUserPrivileged'],
  ])('%s -> %s', (_what, account, access, daemonUid, expected) => {
    expect(codeOf(() => assertRunnableAccount(account, ctx(access, daemonUid)))).toBe(expected);
  });

  it('is about the account, not the caller: kind permission, field run_user', () => {
    let thrown: unknown;
    try {
      assertRunnableAccount(DAEMON, ctx());
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ kind: 'permission', field: 'run_user' });
    expect((thrown as Error).message).toContain('min_uid 1000');
  });
});

describe('queueAllows / assertQueueAllows', () => {
  const queue = (allowedGroups: string[], allowedUsers: string[]) => ({ hpcqueueId: 'hpcq-q', allowedGroups, allowedUsers });
  it.each<[string, ReturnType<typeof queue>, UserAccount | undefined, boolean]>([
    ['an open queue, any account', queue([], []), BOB, true],
    ['an open queue, no account (certificate principal)', queue([], []), undefined, true],
    ['allowed_groups, a member', queue(['physics'], []), ALICE, true],
    ['allowed_groups, a member through a supplementary group', queue(['hpcadm'], []), CAROL, true],
    ['allowed_groups, a non-member', queue(['physics'], []), BOB, false],
    ['allowed_groups, no account', queue(['physics'], []), undefined, false],
    ['allowed_users, a listed user', queue([], ['bob']), BOB, true],
    ['allowed_users, an unlisted user', queue([], ['bob']), ALICE, false],
    ['both, a listed user outside the groups', queue(['physics'], ['bob']), BOB, true],
    ['both, a group member not listed', queue(['physics'], ['bob']), CAROL, true],
    ['both, neither', queue(['physics'], ['bob']), NOBODY, false],
    ['a group name in allowed_users does not admit its members', queue([], ['physics']), ALICE, false],
    ['a user name in allowed_groups does not admit that user', queue(['bob'], []), { ...BOB, groups: [] }, false],
  ])('%s -> %s', (_what, q, account, expected) => {
    expect(queueAllows(q, account)).toBe(expected);
    if (account) expect(codeOf(() => assertQueueAllows(q, account))).toBe(expected ? 'ok' : 'OperationDenied.QueueNotAllowed');
  });

  it('names the queue: kind permission, field hpcqueue_id', () => {
    let thrown: unknown;
    try {
      assertQueueAllows(queue(['physics'], []), BOB);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'OperationDenied.QueueNotAllowed', kind: 'permission', field: 'hpcqueue_id' });
    expect((thrown as Error).message).toBe('queue hpcq-q does not take jobs of bob');
  });
});

describe('mayViewJob', () => {
  it.each<[string, Principal, UserAccount, Partial<AccessConfig>, number, boolean]>([
    ['own: its own job', local(ALICE), ALICE, {}, 0, true],
    ["own: another user's job", local(ALICE), BOB, {}, 0, false],
    ["own: an admin, another user's job", local(ROOT), BOB, {}, 0, true],
    ["own: an admin-group member, another user's job", local(CAROL), BOB, { adminGroups: ['hpcadm'] }, 0, true],
    ["own: the personal daemon's user, another's job", local(PAT), ALICE, {}, 1005, true],
    ['own: a certificate principal, a job of its run_users', PORTAL, CAROL, rules({ name: PORTAL.name, runUsers: ['@physics'] }), 0, true],
    ['own: a certificate principal, a job of others', PORTAL, BOB, rules({ name: PORTAL.name, runUsers: ['@physics'] }), 0, false],
    ['own: an unlisted certificate principal', STRANGER, ALICE, {}, 0, false],
    ["all: another user's job", local(ALICE), BOB, { jobVisibility: 'all' }, 0, true],
    ['all: an unlisted certificate principal', STRANGER, ALICE, { jobVisibility: 'all' }, 0, true],
  ])('%s -> %s', (_what, principal, runAccount, access, daemonUid, expected) => {
    expect(mayViewJob(principal, runAccount, ctx(access, daemonUid))).toBe(expected);
  });

  it('job_visibility: all lets one see, not act', () => {
    const c = ctx({ jobVisibility: 'all' });
    expect(mayViewJob(local(ALICE), BOB, c)).toBe(true);
    expect(mayActOnJob(local(ALICE), BOB, c)).toBe(false);
  });
});

describe('listScope', () => {
  type Scope = ReturnType<typeof listScope> | { throws: string };
  const scopeOf = (principal: Principal, requestedName: string, requested: UserAccount | undefined, c: AccessContext): Scope => {
    try {
      return listScope(principal, requestedName, requested, c);
    } catch (err) {
      expect(err).toBeInstanceOf(HpcqError);
      return { throws: (err as HpcqError).code };
    }
  };

  it.each<[string, Principal, string, UserAccount | undefined, Partial<AccessConfig>, number, Scope]>([
    ['an admin, no filter: everything', local(ROOT), '', undefined, {}, 0, {}],
    ['an admin, a run_user filter: that user', local(ROOT), 'bob', BOB, {}, 0, { runUser: 'bob' }],
    ['an admin, an unknown run_user: passed through', local(ROOT), 'ghost', undefined, {}, 0, { runUser: 'ghost' }],
    ["the personal daemon's user, no filter: everything", local(PAT), '', undefined, {}, 1005, {}],
    ['an admin-group member, no filter: everything', local(CAROL), '', undefined, { adminGroups: ['hpcadm'] }, 0, {}],
    ['a certificate admin, no filter: everything', OPS, '', undefined, rules({ name: OPS.name, admin: true }), 0, {}],
    ['a user, no filter: its own jobs', local(ALICE), '', undefined, {}, 0, { runUser: 'alice' }],
    ['a user with a token, no filter: its own jobs', viaToken(ALICE), '', undefined, {}, 0, { runUser: 'alice' }],
    ['a user, itself: its own jobs', local(ALICE), 'alice', ALICE, {}, 0, { runUser: 'alice' }],
    ['a user, another user: nothing', local(ALICE), 'bob', BOB, {}, 0, 'nothing'],
    ['a user, an unknown user: nothing', local(ALICE), 'ghost', undefined, {}, 0, 'nothing'],
    ['a user listed with run_users, one of them', local(BOB), 'alice', ALICE, rules({ name: 'user:bob', runUsers: ['alice'] }), 0, { runUser: 'alice' }],
    ['a certificate principal, no filter: MissingParameter.RunUser', PORTAL, '', undefined, rules({ name: PORTAL.name, runUsers: ['alice'] }), 0, { throws: 'MissingParameter.RunUser' }],
    ['an unlisted certificate principal, no filter: MissingParameter.RunUser', STRANGER, '', undefined, {}, 0, { throws: 'MissingParameter.RunUser' }],
    ['a certificate principal, one of its run_users', PORTAL, 'alice', ALICE, rules({ name: PORTAL.name, runUsers: ['alice'] }), 0, { runUser: 'alice' }],
    ['a certificate principal, an @group member', PORTAL, 'carol', CAROL, rules({ name: PORTAL.name, runUsers: ['@physics'] }), 0, { runUser: 'carol' }],
    ['a certificate principal, another user: nothing', PORTAL, 'bob', BOB, rules({ name: PORTAL.name, runUsers: ['alice'] }), 0, 'nothing'],
    ['all: a user, no filter: everything', local(ALICE), '', undefined, { jobVisibility: 'all' }, 0, {}],
    ['all: a user, another user: that user', local(ALICE), 'bob', BOB, { jobVisibility: 'all' }, 0, { runUser: 'bob' }],
    ['all: a certificate principal, no filter: everything', STRANGER, '', undefined, { jobVisibility: 'all' }, 0, {}],
  ])('%s', (_what, principal, requestedName, requested, access, daemonUid, expected) => {
    expect(scopeOf(principal, requestedName, requested, ctx(access, daemonUid))).toEqual(expected);
  });

  it('MissingParameter.RunUser is an invalid-argument error on run_user', () => {
    let thrown: unknown;
    try {
      listScope(PORTAL, '', undefined, ctx());
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toMatchObject({ code: 'MissingParameter.RunUser', kind: 'invalid', field: 'run_user' });
  });
});
