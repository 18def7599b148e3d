/**
 * The store's memtable is 2 MiB (open-level.ts), not LevelDB's 4: about 3 MiB of job records
 * written through the store reach a table file, where with 4 MiB they would all still be held in
 * memory (and in the daemon's RSS).
 */
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { DEFAULT_WRITE_BUFFER_BYTES } from '../../src/store/open-level.js';
import { testJobSpec, useTempStores } from '../support/store-fixtures.js';

const { openStore, location } = useTempStores('hpcq-store-memtable-');

const tables = () => readdirSync(location()).filter((f) => f.endsWith('.ldb')).length;

/**
 * Writes `count` jobs with a 1 KiB command line: about 2.6 KiB of memtable each (measured: the
 * first table appears after ~820 of them with a 2 MiB memtable, ~1,620 with 4 MiB).
 */
async function writeJobs(count: number): Promise<void> {
  const store = await openStore();
  const cmdLine = `echo ${'x'.repeat(1024)}`;
  for (let i = 0; i < count; i++) await store.createJob(testJobSpec({ cmdLine }), `fp-${i}`, 1_000 + i, '');
  // The flush runs on LevelDB's background thread.
  for (let waited = 0; tables() === 0 && waited < 3000; waited += 50) await sleep(50);
  await store.close();
}

describe('the memtable', () => {
  it('is flushed to a table at 2 MiB of writes', async () => {
    expect(DEFAULT_WRITE_BUFFER_BYTES).toBe(2 * 1024 * 1024);
    await writeJobs(1200);
    expect(tables()).toBeGreaterThan(0);
  });
});
