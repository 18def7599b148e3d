/**
 * listJobs against a model: every filter and combination, paged, must equal filtering the full
 * job list in memory, newest first, with no duplicates and no gaps.
 */
import { describe, expect, it } from 'vitest';
import { JOB_STATES, transition, type Job, type JobState } from '../../src/core/job.js';
import type { JobFilter, JobStore, JobTransition } from '../../src/core/ports.js';
import { testJobSpec, useTempStores } from '../support/store-fixtures.js';

const { openStore } = useTempStores('hpcq-store-list-');

/** Deterministic pseudo-random numbers (LCG), so failures reproduce. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

const CLUSTERS = ['c1', 'c2'];
const QUEUES = ['q1', 'q2', 'q3'];
const USERS = ['alice', 'bob', 'carol', 'dave'];
const ENDINGS: JobState[] = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'OUT_OF_MEMORY', 'NODE_FAIL'];

/** Creates `n` jobs with mixed dimensions and drives them to mixed states; returns the final jobs. */
async function populate(store: JobStore, n: number, seed = 1): Promise<Job[]> {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const created = await Promise.all(
    Array.from({ length: n }, () =>
      store.createJob(testJobSpec({ home: '/home/u', clusterId: pick(CLUSTERS), hpcqueueId: pick(QUEUES), runUser: pick(USERS) }), 'fp', 1, ''),
    ),
  );
  const finals: Job[] = [];
  const transitions: JobTransition[] = [];
  for (const { job } of created) {
    let current = job;
    const step = (to: JobState) => {
      const t = transition(current, to, to.toLowerCase(), 100 + current.id);
      transitions.push({ job: t.job, previousState: current.state, event: t.event });
      current = t.job;
    };
    const r = random();
    if (r < 0.25) {
      // stays PENDING
    } else if (r < 0.35) {
      step('CANCELLED');
    } else {
      step('RUNNING');
      if (r >= 0.55) step(pick(ENDINGS));
    }
    finals.push(current);
  }
  await store.saveTransitions(transitions);
  return finals;
}

async function listAll(store: JobStore, filter: JobFilter, pageSize: number): Promise<{ jobs: Job[]; pages: number[] }> {
  const jobs: Job[] = [];
  const pages: number[] = [];
  let beforeId: number | undefined;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.listJobs(filter, pageSize, beforeId);
    expect(page.jobs.length).toBeLessThanOrEqual(pageSize);
    jobs.push(...page.jobs);
    pages.push(page.jobs.length);
    if (page.nextBeforeId === undefined) return { jobs, pages };
    expect(page.nextBeforeId).toBeLessThan(beforeId ?? Infinity);
    beforeId = page.nextBeforeId;
  }
  throw new Error('listJobs did not terminate');
}

function expected(all: readonly Job[], filter: JobFilter): number[] {
  return all
    .filter(
      (j) =>
        (filter.clusterId === undefined || j.clusterId === filter.clusterId) &&
        (filter.hpcqueueId === undefined || j.hpcqueueId === filter.hpcqueueId) &&
        (filter.runUser === undefined || j.runUser === filter.runUser) &&
        (filter.states === undefined || filter.states.length === 0 || filter.states.includes(j.state)),
    )
    .map((j) => j.id)
    .sort((a, b) => b - a);
}

function filters(): JobFilter[] {
  const stateSets: Array<JobState[] | undefined> = [undefined, ['PENDING'], ['RUNNING', 'PENDING'], ['COMPLETED', 'FAILED', 'TIMEOUT']];
  const out: JobFilter[] = [];
  for (const clusterId of [undefined, 'c2'])
    for (const hpcqueueId of [undefined, 'q1'])
      for (const runUser of [undefined, 'bob'])
        for (const states of stateSets) {
          const f: JobFilter = {};
          if (clusterId !== undefined) f.clusterId = clusterId;
          if (hpcqueueId !== undefined) f.hpcqueueId = hpcqueueId;
          if (runUser !== undefined) f.runUser = runUser;
          if (states !== undefined) f.states = states;
          out.push(f);
        }
  return out;
}

describe('listJobs', () => {
  it('matches the model for every filter and combination, paged newest first', async () => {
    const store = await openStore();
    const all = await populate(store, 120);
    for (const filter of filters()) {
      const want = expected(all, filter);
      const { jobs } = await listAll(store, filter, 4);
      expect(jobs.map((j) => j.id), JSON.stringify(filter)).toEqual(want);
      const byId = new Map(all.map((j) => [j.id, j]));
      for (const job of jobs) expect(job).toEqual(byId.get(job.id));
    }
    await store.close();
  });

  it('pages over more than 3 pages without duplicates or gaps', async () => {
    const store = await openStore();
    const all = await populate(store, 50, 7);
    for (const filter of [{}, { states: ['RUNNING', 'PENDING', 'CANCELLED'] as JobState[] }, { clusterId: 'c1' }]) {
      const { jobs, pages } = await listAll(store, filter, 3);
      const ids = jobs.map((j) => j.id);
      expect(pages.length).toBeGreaterThan(3);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(expected(all, filter));
      expect(pages.slice(0, -1).every((n) => n === 3)).toBe(true); // only the last page may be short
    }
    await store.close();
  });

  it('says there is no next page when the last page is exactly full', async () => {
    const store = await openStore();
    const all = await populate(store, 6);
    const first = await store.listJobs({}, 3);
    expect(first.nextBeforeId).toBe(first.jobs[2]?.id);
    const second = await store.listJobs({}, 3, first.nextBeforeId);
    expect(second.jobs).toHaveLength(3);
    expect(second.nextBeforeId).toBeUndefined();
    expect((await store.listJobs({}, 10, 1)).jobs).toEqual([]);
    expect((await store.listJobs({}, 10, 2.5)).jobs.map((j) => j.id)).toEqual([2, 1]);
    const someStates: JobFilter = { states: ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'] };
    expect((await store.listJobs(someStates, 10, 2.5)).jobs.map((j) => j.id)).toEqual(expected(all, someStates).filter((id) => id <= 2));
    expect((await store.listJobs({}, 2, Number.POSITIVE_INFINITY)).jobs).toHaveLength(2);
    await store.close();
  });

  it('treats an empty states list and empty dimension values as no filter', async () => {
    const store = await openStore();
    const all = await populate(store, 10);
    const ids = (await store.listJobs({ states: [], clusterId: '', runUser: '' }, 100)).jobs.map((j) => j.id);
    expect(ids).toEqual(expected(all, {}));
    expect((await store.listJobs({ runUser: 'nobody' }, 10)).jobs).toEqual([]);
    await store.close();
  });

  it('does not show jobs created after the first page on later pages', async () => {
    const store = await openStore();
    const filter: JobFilter = { states: ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'] };
    const all = await populate(store, 12);
    const first = await store.listJobs(filter, 2);
    await populate(store, 5, 3); // newer ids: above the cursor
    const ids = first.jobs.map((j) => j.id);
    for (let beforeId = first.nextBeforeId; beforeId !== undefined; ) {
      const page = await store.listJobs(filter, 2, beforeId);
      ids.push(...page.jobs.map((j) => j.id));
      beforeId = page.nextBeforeId;
    }
    expect(ids).toEqual(expected(all, filter));
    await store.close();
  });

  it('returns short pages with a cursor when the scan budget runs out, and still finds everything', async () => {
    const store = await openStore({ listScanLimit: 1 }); // raised to pageSize + 1 = 6 entries per call
    const all = await populate(store, 120, 11);
    const filter: JobFilter = { clusterId: 'c2', hpcqueueId: 'q3', runUser: 'dave' };
    const want = expected(all, filter);
    expect(want.length).toBeGreaterThan(0);
    const { jobs, pages } = await listAll(store, filter, 5);
    expect(jobs.map((j) => j.id)).toEqual(want);
    expect(pages.some((n, i) => n < 5 && i < pages.length - 1)).toBe(true);
    await store.close();
  });

  it('lists every state through the state index', async () => {
    const store = await openStore();
    const all = await populate(store, 80, 5);
    for (const state of JOB_STATES) {
      expect((await listAll(store, { states: [state] }, 7)).jobs.map((j) => j.id)).toEqual(expected(all, { states: [state] }));
    }
    await store.close();
  });
});
