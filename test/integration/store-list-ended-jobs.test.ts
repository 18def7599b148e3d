/**
 * listEndedJobs (history by end time, sacct -S/-E) against a model: every window and filter, paged,
 * must equal filtering the full job list in memory, the latest end first (ties: highest id first),
 * with no duplicates and no gaps, also when the scan budget cuts pages short.
 */
import { describe, expect, it } from 'vitest';
import { isTerminal, transition, type Job, type JobState } from '../../src/core/job.js';
import type { EndCursor, EndWindow, JobFilter, JobStore, JobTransition } from '../../src/core/ports.js';
import { testJobSpec, useTempStores } from '../support/store-fixtures.js';

const { openStore } = useTempStores('hpcq-store-ended-');

/** Deterministic pseudo-random numbers (LCG), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

const ENDINGS: JobState[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL'];

/**
 * `n` jobs over two users and queues; most end, at times drawn from a few hundred milliseconds so
 * that many share an end time and end order differs from id order. Returns the final jobs.
 */
async function populate(store: JobStore, n: number, seed = 1): Promise<Job[]> {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const created = await Promise.all(
    Array.from({ length: n }, () => store.createJob(testJobSpec({ home: '/home/u', hpcqueueId: pick(['q1', 'q2']), runUser: pick(['alice', 'bob']) }), 'fp', 1, '')),
  );
  const finals: Job[] = [];
  const transitions: JobTransition[] = [];
  for (const { job } of created) {
    let current = job;
    const step = (to: JobState, timeMs: number) => {
      const t = transition(current, to, to.toLowerCase(), timeMs);
      transitions.push({ job: t.job, previousState: current.state, event: t.event });
      current = t.job;
    };
    const r = random();
    const end = 1_000 + Math.floor(random() * 40) * 10;
    if (r < 0.15) {
      // stays PENDING
    } else if (r < 0.3) {
      step('CANCELLED', end); // cancelled while pending: ended too
    } else {
      step('RUNNING', 500);
      if (r >= 0.4) step(pick(ENDINGS), end);
    }
    finals.push(current);
  }
  await store.saveTransitions(transitions);
  return finals;
}

function expected(all: readonly Job[], filter: JobFilter, window: EndWindow): number[] {
  return all
    .filter(
      (j) =>
        isTerminal(j.state) &&
        (window.fromMs === undefined || j.endTimeMs >= window.fromMs) &&
        (window.toMs === undefined || j.endTimeMs < window.toMs) &&
        (filter.hpcqueueId === undefined || j.hpcqueueId === filter.hpcqueueId) &&
        (filter.runUser === undefined || j.runUser === filter.runUser) &&
        (filter.states === undefined || filter.states.length === 0 || filter.states.includes(j.state)),
    )
    .sort((a, b) => b.endTimeMs - a.endTimeMs || b.id - a.id)
    .map((j) => j.id);
}

async function listAll(store: JobStore, filter: JobFilter, window: EndWindow, pageSize: number): Promise<{ ids: number[]; pages: number[] }> {
  const ids: number[] = [];
  const pages: number[] = [];
  let after: EndCursor | undefined;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.listEndedJobs(filter, window, pageSize, after);
    expect(page.jobs.length).toBeLessThanOrEqual(pageSize);
    ids.push(...page.jobs.map((j) => j.id));
    pages.push(page.jobs.length);
    if (page.next === undefined) return { ids, pages };
    after = page.next;
  }
  throw new Error('listEndedJobs did not terminate');
}

const WINDOWS: EndWindow[] = [{}, { fromMs: 1_100 }, { toMs: 1_200 }, { fromMs: 1_100, toMs: 1_250 }, { fromMs: 1_150, toMs: 1_150 }, { fromMs: 5_000 }];
const FILTERS: JobFilter[] = [{}, { runUser: 'bob' }, { hpcqueueId: 'q2', runUser: 'alice' }, { states: ['COMPLETED', 'CANCELLED'] }, { states: ['PENDING', 'RUNNING'] }];

describe('listEndedJobs', () => {
  it('matches the model for every window and filter, paged, the latest end first', async () => {
    const store = await openStore();
    const all = await populate(store, 150);
    const byId = new Map(all.map((j) => [j.id, j]));
    for (const window of WINDOWS) {
      for (const filter of FILTERS) {
        const want = expected(all, filter, window);
        for (const pageSize of [1, 7, 1000]) {
          const { ids } = await listAll(store, filter, window, pageSize);
          expect(ids, `${JSON.stringify(window)} ${JSON.stringify(filter)} page ${pageSize}`).toEqual(want);
        }
      }
    }
    const page = await store.listEndedJobs({}, {}, 5);
    for (const job of page.jobs) expect(job).toEqual(byId.get(job.id));
    await store.close();
  });

  it('continues after the cursor even across jobs that ended in the same millisecond', async () => {
    const store = await openStore();
    const all = await populate(store, 60, 3);
    const want = expected(all, {}, {});
    const first = await store.listEndedJobs({}, {}, 2);
    const cursor = first.next!;
    const tied = all.filter((j) => j.endTimeMs === cursor.endTimeMs && isTerminal(j.state));
    expect(first.jobs.map((j) => j.id)).toEqual(want.slice(0, 2));
    const rest = await listAll(store, {}, {}, 3);
    expect(rest.ids).toEqual(want);
    expect(tied.length).toBeGreaterThan(0);
    await store.close();
  });

  it('returns short pages with a cursor when the scan budget runs out, and still finds everything', async () => {
    const store = await openStore({ listScanLimit: 1 }); // raised to pageSize + 1 entries per call
    const all = await populate(store, 150, 9);
    const filter: JobFilter = { hpcqueueId: 'q1', runUser: 'bob', states: ['FAILED', 'TIMEOUT'] };
    const want = expected(all, filter, {});
    expect(want.length).toBeGreaterThan(0);
    const { ids, pages } = await listAll(store, filter, {}, 3);
    expect(ids).toEqual(want);
    expect(pages.some((n, i) => n < 3 && i < pages.length - 1)).toBe(true);
    await store.close();
  });

  it('does not list jobs that end after the first page was read', async () => {
    const store = await openStore();
    const all = await populate(store, 30, 5);
    const window: EndWindow = { toMs: 2_000 };
    const first = await store.listEndedJobs({}, window, 4);
    // A job ending now (later than every end so far) sorts before the cursor: it is not on later pages.
    const late = await store.createJob(testJobSpec({ home: '/home/u', hpcqueueId: 'q1', runUser: 'alice' }), 'fp', 1, '');
    const cancelled = transition(late.job, 'CANCELLED', 'x', 1_900);
    await store.saveTransitions([{ job: cancelled.job, previousState: 'PENDING', event: cancelled.event }]);
    const ids = first.jobs.map((j) => j.id);
    for (let after = first.next; after !== undefined; ) {
      const page = await store.listEndedJobs({}, window, 4, after);
      ids.push(...page.jobs.map((j) => j.id));
      after = page.next;
    }
    expect(ids).toEqual(expected(all, {}, window));
    await store.close();
  });
});
