import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/core/job.js';
import {
  RecordDecodeError,
  decodeEvent,
  decodeIndexTag,
  decodeJob,
  decodeToken,
  encodeEvent,
  encodeIndexTag,
  encodeJob,
  encodeToken,
} from '../../src/store/job-codec.js';
import { JOB_UUID_PATTERN } from '../../src/core/job.js';
import { jobUuidFor, newUuidKey } from '../../src/store/job-uuid.js';
import {
  dimensionIndexPrefix,
  encodeNumber,
  endIndexBefore,
  endIndexKey,
  eventKey,
  idFromIndexKey,
  idFromJobKey,
  idRange,
  indexKeys,
  jobKey,
  sequenceFromEventKey,
  tokenKey,
} from '../../src/store/keys.js';
import { testJobSpec } from '../support/store-fixtures.js';

const job: Job = {
  ...testJobSpec({
    name: 'sim',
    clusterId: 'c/1',
    zone: 'z',
    cmdLine: 'echo "hi"',
    cores: 2,
    memoryLimitMb: 512,
    resourceLimit: 'nofile=64',
    resourceLimits: { nofile: 64 },
    stdoutPathTemplate: '/home/alice/%j.out',
    stderrPathTemplate: '/home/alice/%j.err',
    clientToken: 'tok',
  }),
  id: 42,
  uuid: 'hpcjob-abcd1234',
  state: 'RUNNING',
  reason: '',
  exitCode: 0,
  termSignal: 0,
  submitTimeMs: 1,
  startTimeMs: 2,
  endTimeMs: 0,
  stdoutPath: '/home/alice/42.out',
  stderrPath: '/home/alice/42.err',
  enforcement: 'cgroup2',
  limitHit: '',
  eventCount: 2,
  attempt: 1,
  previousAttempts: [],
  eligibleAtMs: 0,
  heldBy: '',
  backendJobId: '',
  backendSubmitting: false,
};

describe('store keys', () => {
  it('encodes ids fixed-width so that key order is numeric order', () => {
    const ids = [0, 1, 9, 10, 99, 100, 12345, Number.MAX_SAFE_INTEGER];
    const keys = ids.map(jobKey);
    expect([...keys].sort()).toEqual(keys);
    expect(keys.map(idFromJobKey)).toEqual(ids);
    expect(() => encodeNumber(-1)).toThrow(RangeError);
    expect(() => encodeNumber(1.5)).toThrow(RangeError);
  });

  it('rejects keys that are not job keys', () => {
    expect(idFromJobKey('job/12')).toBeUndefined();
    expect(idFromJobKey('uuid/0000000000000012')).toBeUndefined();
  });

  it('keeps free-text parts inside one key part', () => {
    expect(tokenKey('a/b', 'x/y')).toBe('tok/a%2Fb/x%2Fy');
    expect(dimensionIndexPrefix('c', 'c/1', 'PENDING')).toBe('ix/c/c%2F1/PENDING/');
    // lone surrogates are escaped, not thrown on, and stay distinct
    expect(tokenKey('u', 'a\ud800')).toBe('tok/u/a%uD800');
    expect(tokenKey('u', 'a\ud800')).not.toBe(tokenKey('u', 'a\udc00'));
    expect(tokenKey('u', 'é\ud800')).toBe('tok/u/%C3%A9%uD800');
    // alice and alice/x must not share a prefix
    expect(tokenKey('alice', 't').startsWith(tokenKey('alice%2F', ''))).toBe(false);
  });

  it('derives ids and sequences back from index and event keys', () => {
    for (const key of indexKeys(job)) expect(idFromIndexKey(key)).toBe(42);
    expect(idFromIndexKey(endIndexKey(5000, 42))).toBe(42);
    expect(sequenceFromEventKey(eventKey(42, 3))).toBe(3);
    expect(eventKey(42, 2) < eventKey(42, 10)).toBe(true);
  });

  it('bounds id ranges and end-time ranges', () => {
    const p = 'ix/s/PENDING/';
    const all = idRange(p);
    const below = idRange(p, 10);
    const k9 = p + encodeNumber(9);
    const k10 = p + encodeNumber(10);
    expect(k9 >= all.gte && k9 < all.lt && k10 < all.lt).toBe(true);
    expect(k9 < below.lt && !(k10 < below.lt)).toBe(true);
    expect(endIndexKey(2999, 7) < endIndexBefore(3000)).toBe(true);
    expect(endIndexKey(3000, 7) < endIndexBefore(3000)).toBe(false);
  });
});

describe('store codec', () => {
  it('round-trips a job, an event, a token entry and an index tag', () => {
    expect(decodeJob(encodeJob(job), 42)).toEqual(job);
    const event = { jobId: 42, sequence: 2, state: 'RUNNING' as const, reason: 'started', timeMs: 5 };
    expect(decodeEvent(encodeEvent(event), 42, 2)).toEqual(event);
    expect(decodeToken(encodeToken({ id: 42, fingerprint: 'fp' }))).toEqual({ id: 42, fingerprint: 'fp' });
    const tag = { clusterId: 'c', hpcqueueId: 'q', runUser: 'u', uuid: 'hpcjob-00000000', clientToken: '' };
    expect(decodeIndexTag(encodeIndexTag(tag))).toEqual(tag);
  });

  it('decodes a record written before attempts, argv, env, dependencies existed, with their defaults', () => {
    const { attempt: _a, previousAttempts: _p, eligibleAtMs: _e, argv: _v, env: _n, workingDir: _w, description: _d, dependsOn: _o, ...older } = job;
    const decoded = decodeJob(JSON.stringify({ v: 1, ...older }), 42);
    expect(decoded).toMatchObject({ attempt: 1, previousAttempts: [], eligibleAtMs: 0, argv: [], env: {}, workingDir: job.home, description: '', dependsOn: [] });
  });

  it('decodes to exactly the Job fields, in one order whatever the stored order', () => {
    const { id, name, ...rest } = job;
    const reordered = JSON.stringify({ note: 'from a newer writer', ...rest, v: 1, name, id });
    const decoded = decodeJob(reordered, 42);
    expect(decoded).toEqual(job);
    expect(Object.keys(decoded)).toEqual(Object.keys(decodeJob(encodeJob(job), 42)));
    expect(decoded).not.toHaveProperty('v');
    expect(decoded).not.toHaveProperty('note');
    expect(encodeJob(job).startsWith('{"v":1,"name":')).toBe(true);
  });

  it('refuses damaged or foreign records with RecordDecodeError', () => {
    const bad = [
      '{not json',
      '[]',
      JSON.stringify({ ...job, v: 2 }),
      JSON.stringify({ ...job, v: 1, state: 'QUEUED' }),
      JSON.stringify({ ...job, v: 1, uuid: 7 }),
    ];
    for (const raw of bad) expect(() => decodeJob(raw, 42)).toThrow(RecordDecodeError);
    expect(() => decodeJob(encodeJob(job), 43)).toThrow(/expected 43/);
    expect(() => decodeIndexTag('["a"]')).toThrow(RecordDecodeError);
    expect(() => decodeToken('{"v":1}')).toThrow(RecordDecodeError);
  });
});

describe('job uuids', () => {
  it('are hpcjob- plus 8 lowercase base-36 characters and never repeat for distinct ids', () => {
    const key = newUuidKey();
    const uuids = Array.from({ length: 100_000 }, (_, i) => jobUuidFor(i + 1, key));
    expect(uuids.filter((uuid) => !JOB_UUID_PATTERN.test(uuid))).toEqual([]);
    expect(new Set(uuids).size).toBe(100_000);
    // Stable for a key, different under another key, and not the id in disguise.
    expect(jobUuidFor(42, key)).toBe(jobUuidFor(42, key));
    expect(jobUuidFor(42, newUuidKey())).not.toBe(jobUuidFor(42, key));
    expect(jobUuidFor(1, key)).not.toBe('hpcjob-00000001');
  });
});
