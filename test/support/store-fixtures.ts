/**
 * Helpers of the job store tests: a JobSpec builder, a temp directory with tracked stores for each
 * test, checks of the raw database (a closed one) that bypass the store, and filling a disk.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, beforeEach, expect } from 'vitest';
import { isTerminal, type Job } from '../../src/core/job.js';
import { decodeJob } from '../../src/store/job-codec.js';
import { encodeNumber, endIndexKey, eventPrefix, idFromIndexKey, indexKeys, tokenKey, uuidKey } from '../../src/store/keys.js';
import { LevelJobStore, type LevelJobStoreOptions } from '../../src/store/level-job-store.js';

export { testJobSpec } from './job-spec.js';

/**
 * For the calling test file: a fresh temp directory (`<tmpdir>/<prefix>XXXXXX`) for each test, and
 * `openStore`, which opens a LevelJobStore at `<dir>/db` and tracks it. After each test every
 * tracked store is closed and the directory removed; a store the test left open fails the test.
 */
export function useTempStores(prefix: string): {
  openStore: (options?: Partial<LevelJobStoreOptions>) => Promise<LevelJobStore>;
  /** Where openStore puts this test's database. */
  location: () => string;
} {
  let dir: string;
  const stores: LevelJobStore[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });

  afterEach(async () => {
    const leaked = stores.filter((s) => s.health().mode !== 'closed').length;
    await Promise.all(stores.map((s) => s.close()));
    stores.length = 0;
    await rm(dir, { recursive: true, force: true });
    expect(leaked, 'test left a store open').toBe(0);
  });

  return {
    location: () => join(dir, 'db'),
    async openStore(options: Partial<LevelJobStoreOptions> = {}): Promise<LevelJobStore> {
      const store = new LevelJobStore({ location: join(dir, 'db'), ...options });
      stores.push(store);
      await store.open();
      return store;
    },
  };
}

// ---- the raw database ----------------------------------------------------------------------------

/**
 * Opens the existing database at `location` directly (no store), runs `fn`, closes it. With
 * `create`, a missing database is created (a plain LevelDB one, without the store's layout key).
 */
export async function withRawDb<T>(
  location: string,
  fn: (db: Level<string, string>) => Promise<T>,
  { create = false }: { create?: boolean } = {},
): Promise<T> {
  const db = new Level<string, string>(location, { createIfMissing: create });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Cross-checks records, indexes, events, uuids and tokens of a closed database; returns the problems. */
export async function consistencyProblems(location: string): Promise<string[]> {
  return withRawDb(location, async (db) => {
    const entries = new Map(await db.iterator().all());
    const problems: string[] = [];
    const jobs = new Map<number, Job>();
    for (const [key, value] of entries) {
      if (!key.startsWith('job/')) continue;
      const job = decodeJob(value);
      jobs.set(job.id, job);
      const needed = [...indexKeys(job), uuidKey(job.uuid)];
      if (isTerminal(job.state)) needed.push(endIndexKey(job.endTimeMs, job.id));
      if (job.clientToken !== '') needed.push(tokenKey(job.runUser, job.clientToken));
      for (const k of needed) if (!entries.has(k)) problems.push(`job ${job.id}: missing ${k}`);
      const events = [...entries.keys()].filter((k) => k.startsWith(eventPrefix(job.id))).length;
      if (events !== job.eventCount) problems.push(`job ${job.id}: ${events} events, eventCount ${job.eventCount}`);
    }
    for (const [key, value] of entries) {
      if (key.startsWith('ix/')) {
        const job = jobs.get(idFromIndexKey(key));
        if (job === undefined) problems.push(`${key}: no record`);
        else if (!key.startsWith('ix/e/') && !indexKeys(job).includes(key)) problems.push(`${key}: job is ${job.state}`);
      } else if (key.startsWith('uuid/') && !jobs.has(Number(value))) {
        problems.push(`${key}: no record`);
      } else if (key.startsWith('ev/') && !jobs.has(Number(key.split('/')[1]))) {
        problems.push(`${key}: no record`);
      }
    }
    return problems;
  });
}

/** Every key of the database that belongs to job `id` (record, uuid, indexes, events, token). */
export async function keysOfJob(location: string, id: number, uuid: string, token?: { runUser: string; clientToken: string }): Promise<string[]> {
  const suffix = `/${encodeNumber(id)}`;
  return withRawDb(location, async (db) =>
    (await db.keys().all()).filter(
      (k) =>
        k.endsWith(suffix) ||
        k.startsWith(eventPrefix(id)) ||
        k === uuidKey(uuid) ||
        (token !== undefined && k === tokenKey(token.runUser, token.clientToken)),
    ),
  );
}

// ---- a full disk ---------------------------------------------------------------------------------

/** Writes `path` until ENOSPC, in shrinking chunks, so that not even a small record fits afterwards. */
export function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 65536, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}
