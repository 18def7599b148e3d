/**
 * LevelJobStore faults and recovery on a real LevelDB: loading active jobs with a damaged record
 * (D12), purge, a second opener (D8), a damaged or foreign directory (D11b), a full disk (D9).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateJobHistory } from '../../src/bench/store-bench.js';
import { StoreUnavailableError } from '../../src/core/errors.js';
import { transition, type Job, type JobState } from '../../src/core/job.js';
import { META_LAYOUT_KEY, eventPrefix, jobKey, quarantineKey } from '../../src/store/keys.js';
import { LevelJobStore, type LevelJobStoreOptions } from '../../src/store/level-job-store.js';
import { StoreOpenError } from '../../src/store/store-errors.js';
import { isRoot, need } from '../support/privileged.js';
import { consistencyProblems, fillDisk, keysOfJob, testJobSpec, withRawDb } from '../support/store-fixtures.js';

// Not useTempStores (store-fixtures.ts): the disk-full tests move `location` onto a tmpfs, a close
// may fail, and child processes and mounts are cleaned up.
let dir: string;
let location: string;
const stores: LevelJobStore[] = [];
const children: ChildProcess[] = [];
const mounts: string[] = [];

/** Opens a store at `location`, tracked for clean-up once open (a failed open holds nothing). */
async function openStore(options: Partial<LevelJobStoreOptions> = {}): Promise<LevelJobStore> {
  const store = new LevelJobStore({ location, ...options });
  await store.open();
  stores.push(store);
  return store;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hpcq-store-rec-'));
  location = join(dir, 'db');
});

afterEach(async () => {
  const leaked = stores.filter((s) => s.health().mode !== 'closed').length;
  await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
  stores.length = 0;
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const mnt of mounts.splice(0)) execFileSync('umount', ['-l', mnt]);
  await rm(dir, { recursive: true, force: true });
  expect(leaked, 'test left a store open').toBe(0);
});

/** Concurrent creates finish in any order; tests that name jobs by position sort them by id. */
const byId = (a: Job, b: Job) => a.id - b.id;

async function advance(store: LevelJobStore, job: Job, path: JobState[], atMs: number): Promise<Job> {
  let current = job;
  for (const to of path) {
    const t = transition(current, to, to.toLowerCase(), atMs);
    await store.saveTransitions([{ job: t.job, previousState: current.state, event: t.event }]);
    current = t.job;
  }
  return current;
}

describe('loadActiveJobs', () => {
  it('returns PENDING and RUNNING jobs oldest first, and none that finished', async () => {
    const store = await openStore();
    const jobs = (await Promise.all([1, 2, 3, 4, 5].map(async () => (await store.createJob(testJobSpec(), 'fp', 1, '')).job))).sort(byId);
    const [a, b, c, d, e] = jobs as [Job, Job, Job, Job, Job];
    const bRunning = await advance(store, b, ['RUNNING'], 10);
    await advance(store, c, ['RUNNING', 'COMPLETED'], 20);
    await advance(store, d, ['CANCELLED'], 30);
    const loaded = await store.loadActiveJobs();
    expect(loaded.quarantined).toEqual([]);
    expect(loaded.jobs).toEqual([a, bRunning, e]);
    await store.close();
  });

  it('quarantines an undecodable record, loads the others, and never reads finished jobs', async () => {
    let store = await openStore();
    const jobs = (await Promise.all([1, 2, 3, 4].map(async () => (await store.createJob(testJobSpec(), 'fp', 1, '')).job))).sort(byId);
    const [good, bad, runningJob, done] = jobs as [Job, Job, Job, Job];
    const running = await advance(store, runningJob, ['RUNNING'], 5);
    await advance(store, done, ['RUNNING', 'FAILED'], 6);
    await store.close();
    await withRawDb(location, async (db) => {
      await db.put(jobKey(bad.id), '{"v":1,"id":2,"state":"PEND');
      await db.put(jobKey(done.id), 'also garbage, but finished');
    });

    store = await openStore();
    const loaded = await store.loadActiveJobs();
    expect(loaded.jobs).toEqual([good, running]);
    expect(loaded.quarantined).toHaveLength(1);
    expect(loaded.quarantined[0]?.key).toBe(jobKey(bad.id));
    expect(loaded.quarantined[0]?.error).toMatch(/not valid JSON/);
    expect((await store.listJobs({ states: ['PENDING'] }, 10)).jobs.map((j) => j.id)).toEqual([good.id]);
    expect(await store.getJobByUuid(bad.uuid)).toBeUndefined();
    // A second start finds nothing more to quarantine.
    expect(await store.loadActiveJobs()).toEqual({ jobs: [good, running], quarantined: [] });
    await store.close();

    const keys = await keysOfJob(location, bad.id, bad.uuid);
    expect(keys.filter((k) => !k.startsWith('quarantine/'))).toEqual([]);
    await withRawDb(location, async (db) => {
      expect(await db.get(quarantineKey(jobKey(bad.id)))).toBe('{"v":1,"id":2,"state":"PEND');
      expect(await db.keys({ gte: quarantineKey(eventPrefix(bad.id)), lt: quarantineKey(eventPrefix(bad.id)) + '~' }).all()).toHaveLength(1);
      expect(await db.get(jobKey(done.id))).toBe('also garbage, but finished'); // untouched
    });
  });

  it('drops index entries that point at a missing record', async () => {
    let store = await openStore();
    const { job } = await store.createJob(testJobSpec(), 'fp', 1, '');
    const { job: other } = await store.createJob(testJobSpec(), 'fp', 1, '');
    await store.close();
    await withRawDb(location, (db) => db.del(jobKey(job.id)));
    store = await openStore();
    const loaded = await store.loadActiveJobs();
    expect(loaded.jobs).toEqual([other]);
    expect(loaded.quarantined).toEqual([{ key: jobKey(job.id), error: expect.stringMatching(/has no record/) }]);
    await store.close();
    expect(await consistencyProblems(location)).toEqual([]);
  });
});

describe('client tokens', () => {
  it('reports a token whose job record is gone instead of creating a second job for it', async () => {
    let store = await openStore();
    const { job } = await store.createJob(testJobSpec({ clientToken: 'kept' }), 'fp', 1, '');
    await store.close();
    await withRawDb(location, (db) => db.del(jobKey(job.id)));
    store = await openStore();
    await expect(store.createJob(testJobSpec({ clientToken: 'kept' }), 'fp', 2, '')).rejects.toMatchObject({
      code: 'InternalError.DanglingClientToken',
      message: expect.stringContaining(`refers to job ${job.id}`),
    });
    expect((await store.listJobs({}, 10)).jobs).toEqual([]);
    await store.close();
  });
});

describe('purgeFinishedBefore', () => {
  it('deletes every key of old finished jobs and leaves the rest', async () => {
    const store = await openStore();
    const mk = async (token = '') => (await store.createJob(testJobSpec({ clientToken: token }), 'fp', 1, '')).job;
    const oldDone = await advance(store, await mk(), ['RUNNING', 'COMPLETED'], 1_000);
    const oldCancelled = await advance(store, await mk('tok-old'), ['CANCELLED'], 2_000);
    const recent = await advance(store, await mk(), ['RUNNING', 'FAILED'], 5_000);
    const running = await advance(store, await mk(), ['RUNNING'], 500);
    const pending = await mk('tok-pending');

    expect(await store.purgeFinishedBefore(3_000, 100)).toBe(2);
    expect(await store.purgeFinishedBefore(3_000, 100)).toBe(0);
    expect(await store.getJob(oldDone.id)).toBeUndefined();
    expect(await store.getEvents(oldCancelled.id)).toEqual([]);
    expect((await store.listJobs({}, 10)).jobs.map((j) => j.id)).toEqual([pending.id, running.id, recent.id]);
    // The purged job's token is free again; the others' are kept.
    expect((await store.createJob(testJobSpec({ clientToken: 'tok-old' }), 'other-fp', 9, '')).created).toBe(true);
    expect((await store.createJob(testJobSpec({ clientToken: 'tok-pending' }), 'fp', 9, '')).job.id).toBe(pending.id);
    await store.close();

    expect(await keysOfJob(location, oldDone.id, oldDone.uuid)).toEqual([]);
    expect(await keysOfJob(location, oldCancelled.id, oldCancelled.uuid)).toEqual([]);
    expect((await keysOfJob(location, recent.id, recent.uuid)).length).toBeGreaterThan(5);
    expect(await consistencyProblems(location)).toEqual([]);
  });

  it('respects the limit, oldest first', async () => {
    const store = await openStore();
    const ended: Job[] = [];
    for (const endMs of [300, 100, 200]) {
      ended.push(await advance(store, (await store.createJob(testJobSpec(), 'fp', 1, '')).job, ['CANCELLED'], endMs));
    }
    const [at300, at100, at200] = ended as [Job, Job, Job];
    expect(await store.purgeFinishedBefore(1_000, 1)).toBe(1);
    expect(await store.getJob(at100.id)).toBeUndefined();
    expect(await store.getJob(at200.id)).toEqual(at200);
    expect(await store.getJob(at300.id)).toEqual(at300);
    expect(await store.purgeFinishedBefore(1_000, 0)).toBe(0);
    expect(await store.purgeFinishedBefore(1_000, 10)).toBe(2);
    await store.close();
  });
});

describe('opening', () => {
  it('refuses a second store on the same directory with a lock error, leaving the first working', async () => {
    const first = await openStore();
    const err = await openStore().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreOpenError);
    expect(err).toMatchObject({ code: 'ResourceUnavailable.StoreLocked', kind: 'unavailable', cause: { code: 'LEVEL_LOCKED' } });
    expect((err as Error).message).toMatch(/another hpcqd is using the state directory/);
    expect((await first.createJob(testJobSpec(), 'fp', 1, '')).created).toBe(true);
    await first.close();
  });

  it('refuses a directory locked by another process', async () => {
    await mkdir(location, { recursive: true });
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { Level } from 'level'; const db = new Level(${JSON.stringify(location)}); await db.open(); console.log('ready'); setInterval(() => {}, 1000);`,
      ],
      { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => (d.toString().includes('ready') ? resolve() : undefined));
      child.on('exit', (code) => reject(new Error(`lock holder exited ${code}`)));
    });
    await expect(openStore()).rejects.toMatchObject({ code: 'ResourceUnavailable.StoreLocked', cause: { code: 'LEVEL_LOCKED' } });
  });

  async function createSomething(): Promise<string[]> {
    const store = await openStore();
    await store.createJob(testJobSpec(), 'fp', 1, '');
    await store.close();
    return (await readdir(location)).sort();
  }

  for (const [label, content] of [
    ['garbage', 'garbage'],
    ['a missing manifest', 'MANIFEST-999999\n'],
    ['an empty file', ''],
  ] as const) {
    it(`refuses to open when CURRENT holds ${label}, and creates nothing`, async () => {
      const before = await createSomething();
      await writeFile(join(location, 'CURRENT'), content);
      const err = await openStore().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreOpenError);
      expect(err).toMatchObject({ code: 'InternalError.StoreCorrupt' });
      expect((err as Error).message).toMatch(/damaged/);
      expect((err as Error).message).toMatch(/backup/);
      expect((err as Error).message).toContain(location);
      expect((await readdir(location)).sort()).toEqual(before);
    });
  }

  it('refuses to open when the MANIFEST is garbled', async () => {
    const before = await createSomething();
    const manifest = before.find((f) => f.startsWith('MANIFEST-')) as string;
    await writeFile(join(location, manifest), 'not a manifest at all, not at all');
    await expect(openStore()).rejects.toMatchObject({ code: 'InternalError.StoreCorrupt', cause: { code: 'LEVEL_CORRUPTION' } });
  });

  it('refuses a non-empty directory that is not a LevelDB database', async () => {
    await mkdir(location);
    await writeFile(join(location, 'notes.txt'), 'hello');
    const err = await openStore().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'InternalError.StoreCorrupt' });
    expect((err as Error).message).toMatch(/no CURRENT file/);
    expect(await readdir(location)).toEqual(['notes.txt']);
  });

  it('refuses a LevelDB database that is not an hpcq one, or of a newer layout', async () => {
    await mkdir(location);
    await withRawDb(location, (db) => db.put('foo', 'bar'), { create: true });
    await expect(openStore()).rejects.toMatchObject({ code: 'InternalError.StoreCorrupt' });
    await withRawDb(location, (db) => db.put(META_LAYOUT_KEY, '99'));
    await expect(openStore()).rejects.toMatchObject({ code: 'InternalError.StoreLayoutUnsupported' });
  });

  it('opens a bulk-generated history consistently and continues after its highest id', async () => {
    await generateJobHistory(location, 30, 5);
    expect(await consistencyProblems(location)).toEqual([]);
    const store = await openStore();
    const active = await store.loadActiveJobs();
    expect(active.quarantined).toEqual([]);
    expect(active.jobs.map((j) => j.id)).toEqual([31, 32, 33, 34, 35]);
    expect((await store.createJob(testJobSpec(), 'fp', 1, '')).job.id).toBe(36);
    await store.close();
  });

  it('creates a database in an empty existing directory and reopens it on demand', async () => {
    await mkdir(location);
    const store = await openStore();
    const { job } = await store.createJob(testJobSpec(), 'fp', 1, '');
    await store.reopen();
    expect(store.stats().reopens).toBe(1);
    expect(await store.getJob(job.id)).toEqual(job);
    expect((await store.createJob(testJobSpec(), 'fp', 1, '')).job.id).toBe(job.id + 1);
    await store.close();
  });
});

describe('full disk (root: tmpfs)', () => {
  /** Mounts a 1 MiB tmpfs as the database's parent and returns the filler path. */
  async function smallFilesystem(): Promise<string> {
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    mounts.push(mnt);
    location = join(mnt, 'db');
    return join(mnt, 'filler');
  }

  async function ackSome(store: LevelJobStore): Promise<Job[]> {
    const acked: Job[] = [];
    for (let i = 0; i < 20; i++) acked.push((await store.createJob(testJobSpec({ clientToken: `t${i}` }), 'fp', i, '')).job);
    acked[0] = await advance(store, acked[0] as Job, ['RUNNING'], 50);
    acked[1] = await advance(store, acked[1] as Job, ['RUNNING', 'COMPLETED'], 60);
    return acked;
  }

  /**
   * Creates jobs until the full disk refuses one: a write may still fit into the slack of a page
   * the database already holds (how much depends on the records' sizes). Those accepted are acked.
   */
  async function untilRefused(store: LevelJobStore, acked: Job[]): Promise<unknown> {
    for (let i = 0; i < 200; i++) {
      try {
        acked.push((await store.createJob(testJobSpec(), 'fp', 1, '')).job);
      } catch (err) {
        return err;
      }
    }
    throw new Error('the full disk never refused a write');
  }

  async function expectIntact(store: LevelJobStore, acked: Job[]): Promise<void> {
    for (const job of acked) {
      expect(await store.getJob(job.id)).toEqual(job);
      expect(await store.getJobByUuid(job.uuid)).toEqual(job);
    }
  }

  it('rejects writes with a disk-full error, then recovers by itself once space is freed', async (ctx) => {
    if (!need(isRoot, 'root')) return ctx.skip();
    const filler = await smallFilesystem();
    const store = await openStore({ diskFullRetryIntervalMs: 0 });
    const acked = await ackSome(store);
    fillDisk(filler);

    const err = await untilRefused(store, acked);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(err).toMatchObject({ code: 'ResourceInsufficient.DiskFull', kind: 'exhausted' });
    expect(store.health().mode).toBe('disk-full');
    // Still full: rejected again, and reads keep working (no reopen attempted without room).
    await expect(store.createJob(testJobSpec(), 'fp', 1, '')).rejects.toMatchObject({ code: 'ResourceInsufficient.DiskFull' });
    await expectIntact(store, acked);

    await rm(filler);
    const after = await store.createJob(testJobSpec({ clientToken: 'after' }), 'fp', 2, '');
    expect(after.created).toBe(true);
    expect(store.health().mode).toBe('open');
    expect(store.stats().reopens).toBe(1);
    await expectIntact(store, acked);
    await store.close();

    expect(await consistencyProblems(location)).toEqual([]);
    const again = await openStore();
    await expectIntact(again, [...acked, after.job]);
    await again.close();
  });

  it('recoverIfDiskFull() reopens once there is room, with no write, and reports every mode change', async (ctx) => {
    if (!need(isRoot, 'root')) return ctx.skip();
    const filler = await smallFilesystem();
    const modes: string[] = [];
    const store = await openStore({ diskFullRetryIntervalMs: 0, onModeChange: (mode) => modes.push(mode) });
    expect(await store.recoverIfDiskFull()).toBe(true); // open: nothing to do
    const acked = await ackSome(store);
    fillDisk(filler);
    expect(await untilRefused(store, acked)).toMatchObject({ code: 'ResourceInsufficient.DiskFull' });
    // Still full: no reopen (reads keep working), still disk-full.
    expect(await store.recoverIfDiskFull()).toBe(false);
    expect(store.stats().reopens).toBe(0);
    await expectIntact(store, acked);

    await rm(filler);
    expect(await store.recoverIfDiskFull()).toBe(true);
    expect(store.health()).toEqual({ mode: 'open' });
    expect(store.stats().reopens).toBe(1);
    await expectIntact(store, acked);
    await store.close();
    expect(modes).toEqual(['open', 'disk-full', 'open', 'closed']);
  });

  it('stays unavailable during the retry interval and recovers with reopen()', async (ctx) => {
    if (!need(isRoot, 'root')) return ctx.skip();
    const filler = await smallFilesystem();
    const store = await openStore({ diskFullRetryIntervalMs: 3_600_000 });
    const acked = await ackSome(store);
    fillDisk(filler);
    const failures = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.createJob(testJobSpec(), 'fp', i, '')));
    expect(failures.every((f) => f.status === 'rejected')).toBe(true);
    for (const f of failures) expect((f as PromiseRejectedResult).reason).toMatchObject({ code: 'ResourceInsufficient.DiskFull' });
    await rm(filler);
    await expect(store.createJob(testJobSpec(), 'fp', 1, '')).rejects.toMatchObject({ code: 'ResourceInsufficient.DiskFull' });
    await store.reopen();
    expect(store.health()).toEqual({ mode: 'open' });
    const { job } = await store.createJob(testJobSpec(), 'fp', 3, '');
    expect(job.id).toBeGreaterThan(acked.length);
    await expectIntact(store, [...acked, job]);
    await store.close();
    expect(await consistencyProblems(location)).toEqual([]);
  });
});
