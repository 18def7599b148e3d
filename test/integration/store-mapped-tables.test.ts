/**
 * LevelDB reads table files through mmap, so every table it holds open counts in the daemon's RSS
 * with the pages reads touched. The store bounds the open tables (open-level.ts); this checks the
 * bound in the process's own mappings after reads spread over a history of many tables.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateJobHistory } from '../../src/bench/store-bench.js';
import { useTempStores } from '../support/store-fixtures.js';

/** Table files of `location` currently mapped into this process. */
function mappedTables(location: string): Set<string> {
  const mapped = new Set<string>();
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const path = line.slice(line.indexOf('/'));
    if (line.includes('/') && path.startsWith(`${location}/`) && path.endsWith('.ldb')) mapped.add(path);
  }
  return mapped;
}

const JOBS = 250_000;
const { openStore, location } = useTempStores('hpcq-store-maps-');

describe('mapped table files', () => {
  it('keeps at most 64 tables mapped however many the reads touch', { timeout: 120_000 }, async () => {
    await generateJobHistory(location(), JOBS, 0, () => {}, 1024 * 1024);
    const tables = readdirSync(location()).filter((f) => f.endsWith('.ldb')).length;
    const store = await openStore();
    // Every kind of key: records, uuids, events and the state and user indexes, all along the history.
    let found = 0;
    for (let id = 1; id <= JOBS; id += 97) {
      const job = await store.getJob(id);
      if (job === undefined) continue;
      if ((await store.getJobByUuid(job.uuid))?.id === id) found++;
      if ((await store.getEvents(id)).length > 0) found++;
      if ((await store.listJobs({ states: [job.state] }, 1, id + 1)).jobs[0]?.id === id) found++;
      if ((await store.listJobs({ runUser: job.runUser }, 1, id + 1)).jobs[0]?.id === id) found++;
    }
    expect(found).toBe(4 * Math.ceil(JOBS / 97));
    const mapped = mappedTables(location());
    expect(tables).toBeGreaterThan(64);
    expect(mapped.size).toBeGreaterThan(0);
    expect(mapped.size).toBeLessThanOrEqual(64);
    await store.close();
  });
});
