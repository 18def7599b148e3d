import { describe, it, expect } from 'vitest';
import {
  BACKFILL_TESTS_PER_PASS,
  BACKFILL_TESTS_PER_QUEUE,
  compareDispatchOrder,
  planDispatch,
  type DispatchInput,
  type DispatchPlan,
  type PendingJobView,
  type QueuePolicyView,
  type RunningJobView,
} from '../../src/core/scheduler.js';
import { PendingOrder } from '../../src/core/pending-order.js';

const NOW = 1_767_225_600_000;
const S = 1000;

function job(id: number, fields: Partial<Omit<PendingJobView, 'id'>> = {}): PendingJobView {
  return { id, hpcqueueId: 'q', priority: 0, cores: 1, memoryLimitMb: 100, timeLimitSeconds: 60, ...fields };
}

function run(fields: Partial<RunningJobView> = {}): RunningJobView {
  return { hpcqueueId: 'q', cores: 1, memoryLimitMb: 100, expectedEndMs: NOW + 60 * S, ...fields };
}

function queues(entries: Record<string, Partial<QueuePolicyView>>): Map<string, QueuePolicyView> {
  return new Map(Object.entries(entries).map(([id, q]) => [id, { priority: 0, maxRunning: 0, ...q }]));
}

/** The jobs grouped per queue in dispatch order, as the engine hands them to planDispatch. */
function byQueue(jobs: readonly PendingJobView[]): ReadonlyMap<string, Iterable<PendingJobView>> {
  const order = new PendingOrder<PendingJobView>();
  for (const j of jobs) order.set(j);
  return order.byQueue;
}

function plan(input: Partial<Omit<DispatchInput, 'pending'>> & { pending?: readonly PendingJobView[] }): DispatchPlan {
  return planDispatch({
    running: [],
    queues: queues({ q: {} }),
    nodeCores: 8,
    nodeMemMb: 16384,
    nowMs: NOW,
    ...input,
    pending: byQueue(input.pending ?? []),
  });
}

/** The waiting reasons as a plain object, for readable equality checks. */
const waiting = (p: DispatchPlan) => Object.fromEntries([...p.waiting].sort(([a], [b]) => a - b));

describe('dispatch order', () => {
  const qs = queues({ hi: { priority: 20 }, lo: { priority: 10 } });

  it('sorts by queue priority, then job priority (both high first), then job id', () => {
    const jobs = [
      job(1, { hpcqueueId: 'lo', priority: 5 }),
      job(2, { hpcqueueId: 'hi', priority: 0 }),
      job(3, { hpcqueueId: 'hi', priority: 5 }),
      job(4, { hpcqueueId: 'lo', priority: 5 }),
      job(5, { hpcqueueId: 'hi', priority: 5 }),
      job(6, { hpcqueueId: 'lo', priority: -3 }),
    ];
    expect([...jobs].sort(compareDispatchOrder(qs)).map((j) => j.id)).toEqual([3, 5, 2, 1, 4, 6]);
  });

  it('starts jobs in that order when everything fits', () => {
    const p = plan({
      queues: qs,
      pending: [job(4, { hpcqueueId: 'lo' }), job(1, { hpcqueueId: 'lo', priority: 1 }), job(9, { hpcqueueId: 'hi' }), job(2, { hpcqueueId: 'hi' })],
    });
    expect(p.start).toEqual([2, 9, 1, 4]);
    expect(p.waiting.size).toBe(0);
  });

  it('a job priority never lifts a job above a higher-priority queue', () => {
    const p = plan({ queues: qs, nodeCores: 1, pending: [job(1, { hpcqueueId: 'lo', priority: 10_000 }), job(2, { hpcqueueId: 'hi', priority: 0 })] });
    expect(p.start).toEqual([2]);
    expect(waiting(p)).toEqual({ 1: 'Resources' });
  });

  it('with equal priorities the older job (lower id) goes first', () => {
    const p = plan({ nodeCores: 1, pending: [job(12), job(11), job(13)] });
    expect(p.start).toEqual([11]);
    expect(p.waiting.get(12)).toBe('Resources');
  });

  it('merges queues of equal priority by job priority, then id', () => {
    const p = plan({
      queues: queues({ a: { priority: 5 }, b: { priority: 5 }, low: { priority: 1 } }),
      nodeCores: 64,
      pending: [
        job(1, { hpcqueueId: 'a' }),
        job(2, { hpcqueueId: 'b' }),
        job(3, { hpcqueueId: 'low', priority: 9 }),
        job(4, { hpcqueueId: 'a', priority: 1 }),
        job(5, { hpcqueueId: 'b', priority: 1 }),
        job(6, { hpcqueueId: 'a' }),
      ],
    });
    expect(p.start).toEqual([4, 5, 1, 2, 6, 3]);
  });

  it('treats a queue missing from the policy map as priority 0 without a running limit', () => {
    const mixed = queues({ up: { priority: 1 }, down: { priority: -1 } });
    const jobs = [job(1, { hpcqueueId: 'down' }), job(2, { hpcqueueId: 'ghost' }), job(3, { hpcqueueId: 'up' })];
    expect([...jobs].sort(compareDispatchOrder(mixed)).map((j) => j.id)).toEqual([3, 2, 1]);
    expect(plan({ queues: mixed, pending: [job(5, { hpcqueueId: 'ghost' }), job(6, { hpcqueueId: 'ghost' })] }).start).toEqual([5, 6]);
  });

  it('plans nothing for an empty pending list', () => {
    const p = plan({ running: [run()] });
    expect(p.start).toEqual([]);
    expect(p.waiting.size).toBe(0);
  });
});

describe('capacity', () => {
  it('never starts more cores than the node has', () => {
    const p = plan({ nodeCores: 4, pending: [job(1, { cores: 2 }), job(2, { cores: 2 }), job(3, { cores: 2 })] });
    expect(p.start).toEqual([1, 2]);
    expect(waiting(p)).toEqual({ 3: 'Resources' });
  });

  it('never starts more memory than the node has', () => {
    const p = plan({ nodeMemMb: 4096, pending: [job(1, { memoryLimitMb: 2048 }), job(2, { memoryLimitMb: 2048 }), job(3, { memoryLimitMb: 2048 })] });
    expect(p.start).toEqual([1, 2]);
    expect(waiting(p)).toEqual({ 3: 'Resources' });
  });

  it('counts what running jobs hold', () => {
    const p = plan({
      nodeCores: 8,
      nodeMemMb: 8192,
      running: [run({ cores: 6, memoryLimitMb: 1024 })],
      pending: [job(1, { cores: 2 }), job(2, { cores: 1 })],
    });
    expect(p.start).toEqual([1]);
    expect(waiting(p)).toEqual({ 2: 'Resources' });
  });

  it('starts a job that uses exactly the free cores and memory', () => {
    const p = plan({ nodeCores: 4, nodeMemMb: 4096, running: [run({ cores: 1, memoryLimitMb: 1024 })], pending: [job(1, { cores: 3, memoryLimitMb: 3072 })] });
    expect(p.start).toEqual([1]);
  });

  it('needs both cores and memory: free cores alone are not enough', () => {
    const p = plan({ nodeCores: 8, nodeMemMb: 1024, pending: [job(1, { cores: 1, memoryLimitMb: 1025 })] });
    expect(p.start).toEqual([]);
    expect(waiting(p)).toEqual({ 1: 'Resources' });
  });
});

describe('max_running', () => {
  it('holds back only the full queue, with reason QueueMaxRunning on its first job; the rest of it is not examined', () => {
    const p = plan({
      queues: queues({ a: { priority: 20, maxRunning: 1 }, b: { priority: 10 } }),
      running: [run({ hpcqueueId: 'a' })],
      pending: [job(1, { hpcqueueId: 'a' }), job(2, { hpcqueueId: 'a' }), job(3, { hpcqueueId: 'b' })],
    });
    expect(p.start).toEqual([3]);
    expect(waiting(p)).toEqual({ 1: 'QueueMaxRunning' });
    expect(p.examined).toBe(2);
  });

  it('counts jobs started in the same plan', () => {
    const p = plan({ queues: queues({ q: { maxRunning: 2 } }), pending: [job(1), job(2), job(3)] });
    expect(p.start).toEqual([1, 2]);
    expect(waiting(p)).toEqual({ 3: 'QueueMaxRunning' });
  });

  it('a job held by its queue limit reserves nothing, so lower-priority long jobs still start', () => {
    const p = plan({
      queues: queues({ a: { priority: 20, maxRunning: 1 }, b: { priority: 10 } }),
      nodeCores: 8,
      running: [run({ hpcqueueId: 'a', cores: 1, expectedEndMs: NOW + 10 * S })],
      // Would need the whole node; if it reserved, job 2 (1e6 s) could not start.
      pending: [job(1, { hpcqueueId: 'a', cores: 8 }), job(2, { hpcqueueId: 'b', cores: 4, timeLimitSeconds: 1_000_000 })],
    });
    expect(p.start).toEqual([2]);
    expect(waiting(p)).toEqual({ 1: 'QueueMaxRunning' });
  });

  it('0 means unlimited', () => {
    const pending = Array.from({ length: 10 }, (_, i) => job(i + 1));
    expect(plan({ queues: queues({ q: { maxRunning: 0 } }), nodeCores: 64, pending }).start).toHaveLength(10);
  });

  it('a queue already above its limit (limit lowered while jobs run) starts nothing', () => {
    const p = plan({ queues: queues({ q: { maxRunning: 1 } }), running: [run(), run(), run()], pending: [job(1)] });
    expect(p.start).toEqual([]);
    expect(waiting(p)).toEqual({ 1: 'QueueMaxRunning' });
  });
});

describe('EASY backfill', () => {
  // Node 8 cores; 6 held until +100 s, so 2 are free now. Job 1 needs all 8: it is reserved at +100 s
  // with nothing left over (extra 0 cores).
  const blocked = {
    nodeCores: 8,
    running: [run({ cores: 6, expectedEndMs: NOW + 100 * S })],
  };

  it('the big blocked job waits with Resources; a short small job that ends before the shadow time starts', () => {
    const p = plan({ ...blocked, pending: [job(1, { cores: 8, priority: 10 }), job(2, { cores: 1, timeLimitSeconds: 50 })] });
    expect(p.start).toEqual([2]);
    expect(waiting(p)).toEqual({ 1: 'Resources' });
  });

  it('a job ending exactly at the shadow time starts', () => {
    const p = plan({ ...blocked, pending: [job(1, { cores: 8, priority: 10 }), job(2, { cores: 2, timeLimitSeconds: 100 })] });
    expect(p.start).toEqual([2]);
  });

  it('a long small job that would delay the reservation waits with Priority', () => {
    const p = plan({ ...blocked, pending: [job(1, { cores: 8, priority: 10 }), job(2, { cores: 1, timeLimitSeconds: 101 })] });
    expect(p.start).toEqual([]);
    expect(waiting(p)).toEqual({ 1: 'Resources', 2: 'Priority' });
  });

  it('a later job that does not fit now waits with Resources, not Priority', () => {
    const p = plan({
      ...blocked,
      pending: [job(1, { cores: 8, priority: 10 }), job(2, { cores: 1, timeLimitSeconds: 50 }), job(3, { cores: 2, timeLimitSeconds: 10 })],
    });
    expect(p.start).toEqual([2]);
    expect(waiting(p)).toEqual({ 1: 'Resources', 3: 'Resources' });
  });

  it('a long job starts if it fits in the cores left over at the shadow time, and uses them up', () => {
    // Node 8: 4 cores free at +100 s, 2 more at +500 s; 2 free now. Job 1 (5 cores) is reserved
    // at +100 s with 1 core to spare.
    const p = plan({
      nodeCores: 8,
      running: [run({ cores: 4, expectedEndMs: NOW + 100 * S }), run({ cores: 2, expectedEndMs: NOW + 500 * S })],
      pending: [job(1, { cores: 5, priority: 10 }), job(2, { cores: 1, timeLimitSeconds: 1000 }), job(3, { cores: 1, timeLimitSeconds: 1000 })],
    });
    expect(p.start).toEqual([2]);
    expect(waiting(p)).toEqual({ 1: 'Resources', 3: 'Priority' });
  });

  it('the memory left over at the shadow time bounds long jobs too', () => {
    // Node 8 cores / 8192 MiB; 6144 MiB held until +100 s. Job 1 needs 7000 MiB: reserved at +100 s
    // with 1192 MiB to spare.
    const p = plan({
      nodeCores: 8,
      nodeMemMb: 8192,
      running: [run({ cores: 1, memoryLimitMb: 6144, expectedEndMs: NOW + 100 * S })],
      pending: [
        job(1, { cores: 1, memoryLimitMb: 7000, priority: 10 }),
        job(2, { memoryLimitMb: 1024, timeLimitSeconds: 1000 }),
        job(3, { memoryLimitMb: 1000, timeLimitSeconds: 1000 }),
        job(4, { memoryLimitMb: 10, timeLimitSeconds: 10 }),
      ],
    });
    expect(p.start).toEqual([2, 4]);
    expect(waiting(p)).toEqual({ 1: 'Resources', 3: 'Priority' });
  });

  it('the reservation counts jobs started earlier in the same plan', () => {
    // Node 4, empty. Job 1 (2 cores, 100 s) starts; job 2 (4 cores) can start when job 1 ends.
    const p = plan({
      nodeCores: 4,
      pending: [
        job(1, { cores: 2, timeLimitSeconds: 100, priority: 3 }),
        job(2, { cores: 4, priority: 2 }),
        job(3, { cores: 1, timeLimitSeconds: 50, priority: 1 }),
        job(4, { cores: 1, timeLimitSeconds: 200, priority: 1 }),
      ],
    });
    expect(p.start).toEqual([1, 3]);
    expect(waiting(p)).toEqual({ 2: 'Resources', 4: 'Priority' });
  });

  it('only the first blocked job gets a reservation', () => {
    // Node 6, 2 free; 2 cores end at +100 s, 2 more at +1000 s. Job 1 (5 cores) is reserved at +1000 s.
    // Job 2 (4 cores) would fit at +100 s; had it reserved too, job 3 (ends +500 s) could not start.
    const p = plan({
      nodeCores: 6,
      running: [run({ cores: 2, expectedEndMs: NOW + 100 * S }), run({ cores: 2, expectedEndMs: NOW + 1000 * S })],
      pending: [job(1, { cores: 5, priority: 10 }), job(2, { cores: 4, priority: 5 }), job(3, { cores: 2, timeLimitSeconds: 500 })],
    });
    expect(p.start).toEqual([3]);
    expect(waiting(p)).toEqual({ 1: 'Resources', 2: 'Resources' });
  });

  it('a job larger than the whole node blocks every job behind it (documented policy)', () => {
    const p = plan({ nodeCores: 4, pending: [job(1, { cores: 8, priority: 1 }), job(2, { cores: 1, timeLimitSeconds: 1 })] });
    expect(p.start).toEqual([]);
    expect(waiting(p)).toEqual({ 1: 'Resources', 2: 'Priority' });
  });

  it('max_running is checked before backfill: a full queue reports QueueMaxRunning even behind a reservation', () => {
    const p = plan({
      ...blocked,
      queues: queues({ q: {}, small: { maxRunning: 1 } }),
      running: [...blocked.running, run({ hpcqueueId: 'small', cores: 0, memoryLimitMb: 0 })],
      pending: [job(1, { cores: 8, priority: 10 }), job(2, { hpcqueueId: 'small', timeLimitSeconds: 10 })],
    });
    expect(waiting(p)).toEqual({ 1: 'Resources', 2: 'QueueMaxRunning' });
  });
});

// ---------------------------------------------------------------------------------------------
// Randomized invariants, checked against an independent model of the policy.

/** mulberry32: small, fast, seeded PRNG, so every run checks the same scenarios. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Scenario extends Omit<DispatchInput, 'pending'> {
  pending: PendingJobView[];
  running: RunningJobView[];
  queues: Map<string, QueuePolicyView>;
}

function randomScenario(rand: () => number): Scenario {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const nodeCores = int(1, 32);
  const nodeMemMb = int(1, 64) * 256;
  const queueIds = ['q0', 'q1', 'q2'].slice(0, int(1, 3));
  const qs = new Map<string, QueuePolicyView>(queueIds.map((id) => [id, { priority: int(-2, 3), maxRunning: rand() < 0.5 ? 0 : int(1, 3) }]));
  const pickQueue = () => (rand() < 0.08 ? 'unlisted' : queueIds[int(0, queueIds.length - 1)]!);

  const running: RunningJobView[] = [];
  let usedCores = 0;
  let usedMem = 0;
  for (let i = int(0, 6); i > 0; i--) {
    const cores = int(1, nodeCores);
    const mem = int(1, Math.max(1, nodeMemMb / 256)) * 256;
    if (usedCores + cores > nodeCores || usedMem + mem > nodeMemMb) continue;
    usedCores += cores;
    usedMem += mem;
    // Coarse end times make ties between running ends and pending ends common; a few are overdue.
    running.push({ hpcqueueId: pickQueue(), cores, memoryLimitMb: mem, expectedEndMs: NOW + int(-1, 50) * 100 * S });
  }

  const count = int(0, 14);
  const ids = Array.from({ length: count * 3 }, (_, i) => i + 1)
    .sort(() => rand() - 0.5)
    .slice(0, count);
  const pending = ids.map((id) => {
    const oversized = rand() < 0.05;
    return {
      id,
      hpcqueueId: pickQueue(),
      priority: int(-2, 2),
      cores: oversized ? nodeCores + int(1, 4) : int(1, Math.max(1, Math.ceil(nodeCores * 0.75))),
      memoryLimitMb: int(1, Math.max(1, Math.ceil((nodeMemMb * 0.75) / 128))) * 128,
      timeLimitSeconds: int(1, 60) * 100,
    };
  });
  return { pending, running, queues: qs, nodeCores, nodeMemMb, nowMs: NOW };
}

/** Dispatch order, written independently of compareDispatchOrder. */
function modelOrder(s: Scenario): PendingJobView[] {
  const qp = (j: PendingJobView) => s.queues.get(j.hpcqueueId)?.priority ?? 0;
  return [...s.pending].sort((a, b) => (qp(a) !== qp(b) ? qp(b) - qp(a) : a.priority !== b.priority ? b.priority - a.priority : a.id - b.id));
}

interface Held {
  cores: number;
  memoryLimitMb: number;
  endMs: number;
}

/** Earliest time `job` fits as the held jobs end (a job ending at t has released its share at t). */
function modelShadow(job: PendingJobView, held: readonly Held[], s: Scenario): number {
  for (const t of [...new Set(held.map((h) => h.endMs))].sort((a, b) => a - b)) {
    const still = held.filter((h) => h.endMs > t);
    const cores = s.nodeCores - still.reduce((n, h) => n + h.cores, 0);
    const mem = s.nodeMemMb - still.reduce((n, h) => n + h.memoryLimitMb, 0);
    if (job.cores <= cores && job.memoryLimitMb <= mem) return t;
  }
  return -Infinity;
}

interface Coverage {
  /** Jobs the pass left unexamined: node full after the reservation, or their queue at max_running. */
  unexamined: number;
  backfilled: number;
  priorityReason: number;
  queueMaxRunning: number;
  neverFits: number;
  allStarted: number;
}

function checkInvariants(s: Scenario, p: DispatchPlan, cov: Coverage): void {
  // An examined job either starts or has a reason, never both.
  expect(new Set(p.start).size).toBe(p.start.length);
  expect(p.start.filter((id) => p.waiting.has(id))).toEqual([]);
  expect(p.examined).toBe(p.start.length + p.waiting.size);
  for (const reason of p.waiting.values()) expect(['Priority', 'Resources', 'QueueMaxRunning']).toContain(reason);

  const byId = new Map(s.pending.map((j) => [j.id, j]));
  const started = p.start.map((id) => byId.get(id)!);
  // Started jobs fit the node together with the running ones.
  const sum = (xs: readonly { cores: number; memoryLimitMb: number }[], k: 'cores' | 'memoryLimitMb') => xs.reduce((n, x) => n + x[k], 0);
  expect(sum(s.running, 'cores') + sum(started, 'cores')).toBeLessThanOrEqual(s.nodeCores);
  expect(sum(s.running, 'memoryLimitMb') + sum(started, 'memoryLimitMb')).toBeLessThanOrEqual(s.nodeMemMb);
  // Queue limits hold.
  for (const [qid, q] of s.queues) {
    if (q.maxRunning === 0) continue;
    const runningHere = s.running.filter((r) => r.hpcqueueId === qid).length;
    expect(started.filter((j) => j.hpcqueueId === qid).length).toBeLessThanOrEqual(Math.max(0, q.maxRunning - runningHere));
  }

  const order = modelOrder(s);
  // Jobs start in dispatch order.
  const rank = new Map(order.map((j, i) => [j.id, i]));
  expect(p.start.map((id) => rank.get(id)!)).toEqual(p.start.map((id) => rank.get(id)!).sort((a, b) => a - b));

  // Walk the order with the model: free resources and queue counts at each job's turn.
  const startedSet = new Set(p.start);
  const held: Held[] = s.running.map((r) => ({ cores: r.cores, memoryLimitMb: r.memoryLimitMb, endMs: r.expectedEndMs }));
  const perQueue = new Map<string, number>();
  for (const r of s.running) perQueue.set(r.hpcqueueId, (perQueue.get(r.hpcqueueId) ?? 0) + 1);
  let reserved: { job: PendingJobView; shadowMs: number; heldThen: Held[] } | undefined;
  const backfilled: Held[] = [];
  /** Queues whose first job found them at max_running: the pass examines no more of them. */
  const leftQueues = new Set<string>();
  const examined: number[] = [];

  for (const j of order) {
    const reason = p.waiting.get(j.id);
    const maxRunning = s.queues.get(j.hpcqueueId)?.maxRunning ?? 0;
    const queueFull = maxRunning > 0 && (perQueue.get(j.hpcqueueId) ?? 0) >= maxRunning;
    const freeCores = s.nodeCores - sum(held, 'cores');
    const freeMem = s.nodeMemMb - sum(held, 'memoryLimitMb');
    const fitsNow = j.cores <= freeCores && j.memoryLimitMb <= freeMem;
    const endMs = NOW + j.timeLimitSeconds * S;
    const ctx = `job ${j.id} in ${JSON.stringify(s)}`;

    // Nothing can start once no core or no memory is free (every job asks for both): after the
    // job next in line has its reservation, the pass ends. A full queue stays full for the rest of
    // the pass. Such jobs are not examined and keep their reason.
    if ((reserved && (freeCores <= 0 || freeMem <= 0)) || leftQueues.has(j.hpcqueueId)) {
      expect(startedSet.has(j.id), ctx).toBe(false);
      expect(reason, ctx).toBeUndefined();
      cov.unexamined++;
      continue;
    }
    examined.push(j.id);
    if (queueFull) {
      expect(reason, ctx).toBe('QueueMaxRunning');
      leftQueues.add(j.hpcqueueId);
      cov.queueMaxRunning++;
      continue;
    }
    expect(reason, ctx).not.toBe('QueueMaxRunning');

    if (!reserved) {
      // Before any reservation, order is strict: a job that fits starts, one that does not is
      // the reserved job.
      if (fitsNow) expect(startedSet.has(j.id), ctx).toBe(true);
      else {
        expect(reason, ctx).toBe('Resources');
        reserved = { job: j, shadowMs: modelShadow(j, held, s), heldThen: [...held] };
        if (reserved.shadowMs === -Infinity) cov.neverFits++;
        continue;
      }
    } else if (startedSet.has(j.id)) {
      expect(fitsNow, ctx).toBe(true);
      expect(reserved.shadowMs, ctx).toBeGreaterThan(-Infinity);
      backfilled.push({ cores: j.cores, memoryLimitMb: j.memoryLimitMb, endMs });
      cov.backfilled++;
    } else if (reason === 'Resources') {
      expect(fitsNow, ctx).toBe(false);
      continue;
    } else {
      expect(reason, ctx).toBe('Priority');
      // Priority means "fits now but would delay the reserved job": it must not end by the shadow time.
      expect(fitsNow, ctx).toBe(true);
      expect(endMs, ctx).toBeGreaterThan(reserved.shadowMs);
      cov.priorityReason++;
      continue;
    }
    held.push({ cores: j.cores, memoryLimitMb: j.memoryLimitMb, endMs });
    perQueue.set(j.hpcqueueId, (perQueue.get(j.hpcqueueId) ?? 0) + 1);
  }
  // Below the backfill bounds (scenarios have at most 14 jobs), the pass examines exactly these.
  expect([...p.start, ...p.waiting.keys()].sort((a, b) => a - b)).toEqual(examined.sort((a, b) => a - b));

  if (!reserved) {
    // No reservation: nothing waits for Priority.
    expect([...p.waiting.values()]).not.toContain('Priority');
    if (p.waiting.size === 0) cov.allStarted++;
    return;
  }
  // EASY: backfilled jobs never delay the reserved job. At its shadow time, what still runs
  // (held before the reservation or backfilled, ending later) leaves room for it.
  if (reserved.shadowMs === -Infinity) {
    expect(backfilled).toEqual([]);
    return;
  }
  const t = reserved.shadowMs;
  const stillAtShadow = [...reserved.heldThen, ...backfilled].filter((h) => h.endMs > t);
  expect(sum(stillAtShadow, 'cores') + reserved.job.cores, JSON.stringify(s)).toBeLessThanOrEqual(s.nodeCores);
  expect(sum(stillAtShadow, 'memoryLimitMb') + reserved.job.memoryLimitMb, JSON.stringify(s)).toBeLessThanOrEqual(s.nodeMemMb);
}

describe('planDispatch: randomized invariants (seeded)', () => {
  it('holds every invariant over 500 random scenarios', () => {
    const rand = prng(0x5eed_2026);
    const cov: Coverage = { unexamined: 0, backfilled: 0, priorityReason: 0, queueMaxRunning: 0, neverFits: 0, allStarted: 0 };
    for (let i = 0; i < 500; i++) {
      const scenario = randomScenario(rand);
      const input = structuredClone(scenario);
      const p = planDispatch({ ...scenario, pending: byQueue(scenario.pending) });
      // planDispatch is pure: it does not touch its input.
      expect(scenario).toEqual(input);
      checkInvariants(scenario, p, cov);
    }
    // The scenarios really exercise each branch of the policy.
    expect(cov.unexamined).toBeGreaterThan(20);
    expect(cov.backfilled).toBeGreaterThan(20);
    expect(cov.priorityReason).toBeGreaterThan(20);
    expect(cov.queueMaxRunning).toBeGreaterThan(20);
    expect(cov.neverFits).toBeGreaterThan(2);
    expect(cov.allStarted).toBeGreaterThan(20);
  });

  it('is deterministic: the same input gives the same plan', () => {
    const rand = prng(7);
    for (let i = 0; i < 50; i++) {
      const s = randomScenario(rand);
      const a = planDispatch({ ...s, pending: byQueue(s.pending) });
      const b = planDispatch({ ...s, pending: byQueue([...s.pending].reverse()) });
      expect(b.start).toEqual(a.start);
      expect(waiting(b)).toEqual(waiting(a));
    }
  });
});

describe('bounded passes', () => {
  const MANY = 50_000;
  /** `count` jobs of `hpcqueueId`, ids from `firstId`, with varied job priorities. */
  const many = (count: number, firstId: number, fields: Partial<Omit<PendingJobView, 'id'>>) =>
    Array.from({ length: count }, (_, i) => job(firstId + i, { priority: i % 3, ...fields }));

  it('leaves a queue at max_running after its first job, so a lower-priority queue still starts', () => {
    const p = plan({
      queues: queues({ capped: { priority: 20, maxRunning: 1 }, q: { priority: 10 } }),
      running: [run({ hpcqueueId: 'capped' })],
      pending: [...many(MANY, 1, { hpcqueueId: 'capped' }), job(MANY + 1)],
    });
    expect(p.start).toEqual([MANY + 1]);
    expect([...p.waiting.values()]).toEqual(['QueueMaxRunning']);
    expect(p.examined).toBeLessThan(100);
  });

  it('examines a bounded number of jobs that cannot start, and gives only those a reason', () => {
    // 2 cores and 1 GiB free; every job asks for 2 GiB.
    const p = plan({
      nodeMemMb: 16384,
      running: [run({ cores: 6, memoryLimitMb: 15360 })],
      pending: many(MANY, 1, { memoryLimitMb: 2048 }),
    });
    expect(p.start).toEqual([]);
    // The reserved job, then the queue's allowance of jobs that cannot start.
    expect(p.examined).toBe(1 + BACKFILL_TESTS_PER_QUEUE);
    expect(p.waiting.size).toBe(p.examined);
    expect(new Set(p.waiting.values())).toEqual(new Set(['Resources']));
  });

  it('a backfill candidate just within the queue allowance starts; one just beyond it is not examined', () => {
    // Job 1 needs the whole node (free at +100 s); the long jobs fit now but would delay it.
    const scenario = (longJobs: number) =>
      plan({
        nodeCores: 8,
        running: [run({ cores: 6, expectedEndMs: NOW + 100 * S })],
        pending: [job(1, { cores: 8, priority: 10 }), ...many(longJobs, 2, { priority: 5, timeLimitSeconds: 1000 }), job(longJobs + 2, { timeLimitSeconds: 50 })],
      });
    const within = scenario(BACKFILL_TESTS_PER_QUEUE - 1);
    expect(within.start).toEqual([BACKFILL_TESTS_PER_QUEUE + 1]);
    const beyond = scenario(BACKFILL_TESTS_PER_QUEUE);
    expect(beyond.start).toEqual([]);
    expect(beyond.waiting.has(BACKFILL_TESTS_PER_QUEUE + 2)).toBe(false);
    expect(beyond.examined).toBe(1 + BACKFILL_TESTS_PER_QUEUE);
  });

  it('a deep queue of jobs that cannot start does not keep a lower-priority queue from backfilling', () => {
    // 2 GiB free until +100 s; the high queue's jobs need 4 GiB, the low queue's short job fits now.
    const p = plan({
      queues: queues({ hi: { priority: 20 }, lo: { priority: 10 } }),
      nodeMemMb: 16384,
      running: [run({ cores: 1, memoryLimitMb: 14336, expectedEndMs: NOW + 100 * S })],
      pending: [...many(MANY, 1, { hpcqueueId: 'hi', memoryLimitMb: 4096 }), job(MANY + 1, { hpcqueueId: 'lo', timeLimitSeconds: 50 })],
    });
    expect(p.start).toEqual([MANY + 1]);
    expect(p.examined).toBe(1 + BACKFILL_TESTS_PER_QUEUE + 1);
  });

  it('with many deep queues, the pass ends after its own allowance', () => {
    const queueCount = Math.ceil(BACKFILL_TESTS_PER_PASS / BACKFILL_TESTS_PER_QUEUE) + 2;
    const ids = Array.from({ length: queueCount }, (_, i) => `q${i}`);
    const pending = ids.flatMap((q, i) => many(BACKFILL_TESTS_PER_QUEUE + 500, 1 + i * 10_000, { hpcqueueId: q, memoryLimitMb: 4096 }));
    const p = plan({
      queues: queues(Object.fromEntries(ids.map((q, i) => [q, { priority: -i }]))),
      nodeMemMb: 16384,
      running: [run({ cores: 1, memoryLimitMb: 14336 })],
      pending,
    });
    expect(p.start).toEqual([]);
    expect(p.examined).toBe(1 + BACKFILL_TESTS_PER_PASS);
  });

  it('on a full node examines only the job next in line (Resources), past full queues', () => {
    const qs = queues({ capped: { priority: 20, maxRunning: 1 }, q: { priority: 10 } });
    const pending = [...many(MANY, 1, { hpcqueueId: 'capped', priority: 0 }), ...many(MANY, MANY + 1, { priority: 0 })];
    const noCores = plan({ queues: qs, nodeCores: 8, running: [run({ hpcqueueId: 'capped', cores: 8 })], pending });
    expect(noCores).toEqual({ start: [], waiting: new Map([[1, 'QueueMaxRunning'], [MANY + 1, 'Resources']]), examined: 2 });
    const noMemory = plan({ queues: qs, nodeMemMb: 4096, running: [run({ hpcqueueId: 'capped', cores: 1, memoryLimitMb: 4096 })], pending });
    expect(noMemory).toEqual({ start: [], waiting: new Map([[1, 'QueueMaxRunning'], [MANY + 1, 'Resources']]), examined: 2 });
  });

  it('ends the pass once the started jobs fill the node and the next job is reserved', () => {
    const p = plan({ nodeCores: 4, pending: many(MANY, 1, { cores: 2 }) });
    expect(p.start).toHaveLength(2);
    expect(p.examined).toBe(3);
    expect([...p.waiting.values()]).toEqual(['Resources']);
  });
});
