import { describe, it, expect } from 'vitest';
import { HpcqError } from '../../src/core/errors.js';
import { parseResourceLimit } from '../../src/core/resource-limit.js';

/** Runs fn, expects it to throw an HpcqError for resource_limit, and returns the error. */
function resourceLimitError(text: string): HpcqError {
  let caught: unknown;
  try {
    parseResourceLimit(text);
  } catch (err) {
    caught = err;
  }
  expect(caught, `parseResourceLimit(${JSON.stringify(text)}) should throw`).toBeInstanceOf(HpcqError);
  const err = caught as HpcqError;
  expect(err.code).toBe('InvalidParameter.ResourceLimit');
  expect(err.kind).toBe('invalid');
  expect(err.field).toBe('resource_limit');
  expect(err.message).toMatch(/^resource_limit: /);
  return err;
}

const MAX = { pids: 4_194_304, nofile: 1_048_576, fsize: 1_073_741_824, core: 1_073_741_824, nproc: 4_194_304 } as const;

describe('parseResourceLimit: valid lists', () => {
  it.each(['', '   ', '\t'])('empty text %j means no limits', (text) => {
    expect(parseResourceLimit(text)).toEqual({ limits: {}, canonical: '' });
  });

  it.each([
    ['pids=100', { pids: 100 }],
    ['nofile=1024', { nofile: 1024 }],
    ['fsize=512', { fsizeMb: 512 }],
    ['core=0', { coreMb: 0 }],
    ['nproc=200', { nproc: 200 }],
  ])('%s parses to %o', (text, limits) => {
    expect(parseResourceLimit(text)).toEqual({ limits, canonical: text });
  });

  it('parses every key at once, in any order, with whitespace around keys and values', () => {
    const { limits, canonical } = parseResourceLimit(' nproc = 50 ,core=0,  fsize=10,nofile =256, pids= 64 ');
    expect(limits).toEqual({ pids: 64, nofile: 256, fsizeMb: 10, coreMb: 0, nproc: 50 });
    expect(canonical).toBe('pids=64,nofile=256,fsize=10,core=0,nproc=50');
  });

  it('canonical form orders keys pids, nofile, fsize, core, nproc regardless of input order', () => {
    const orders = ['core=1,pids=2', 'pids=2,core=1', ' core=1 , pids=2 '];
    for (const text of orders) expect(parseResourceLimit(text).canonical, text).toBe('pids=2,core=1');
    expect(parseResourceLimit('nproc=3,nofile=4').canonical).toBe('nofile=4,nproc=3');
    expect(parseResourceLimit('fsize=5,core=6,nofile=7').canonical).toBe('nofile=7,fsize=5,core=6');
  });

  it('canonical form drops leading zeros, and parsing it again is a fixed point', () => {
    const first = parseResourceLimit('pids=007,nofile=0100');
    expect(first.canonical).toBe('pids=7,nofile=100');
    expect(parseResourceLimit(first.canonical)).toEqual(first);
  });

  it.each(Object.entries(MAX))('%s accepts its maximum %d', (key, max) => {
    expect(parseResourceLimit(`${key}=${max}`).canonical).toBe(`${key}=${max}`);
  });

  it.each(['nofile', 'fsize', 'core', 'nproc'])('%s accepts 0', (key) => {
    expect(parseResourceLimit(`${key}=0`).canonical).toBe(`${key}=0`);
  });

  it('pids accepts 1', () => {
    expect(parseResourceLimit('pids=1').limits).toEqual({ pids: 1 });
  });
});

describe('parseResourceLimit: errors all carry code InvalidParameter.ResourceLimit, field resource_limit', () => {
  it.each(['memory=5', 'cpu=1', 'pids=1,gpus=2', 'rss=0'])('unknown key in %s is named in the message', (text) => {
    const key = /(memory|cpu|gpus|rss)/.exec(text)![1]!;
    const err = resourceLimitError(text);
    expect(err.message).toContain(`unknown key "${key}"`);
    // The message tells the user what is allowed.
    expect(err.message).toContain('pids, nofile, fsize, core, nproc');
  });

  it('an inherited Object property name ("constructor") is an unknown key, not a limit', () => {
    // Regression (src/core/resource-limit.ts:30): KEYS is indexed as a plain object, so "constructor"
    // resolves to Object.prototype.constructor and is accepted as limits["undefined"] = 5.
    const err = resourceLimitError('constructor=5');
    expect(err.message).toContain('unknown key "constructor"');
  });

  it.each(['pids=1,pids=2', 'core=0,nofile=3,core=0', ' nproc=1 , nproc = 1 '])('duplicate key: %s', (text) => {
    expect(resourceLimitError(text).message).toMatch(/key (pids|core|nproc) given twice/);
  });

  it.each(['pids=1.5', 'pids=-1', 'nofile=abc', 'fsize=', 'core=1e3', 'nproc=0x10', 'pids=+5', 'nofile=1_000'])(
    'non-integer value: %s',
    (text) => {
      expect(resourceLimitError(text).message).toMatch(/must be an integer from 0 to \d+/);
    },
  );

  it.each(Object.entries(MAX))('%s above its maximum %d is rejected', (key, max) => {
    const err = resourceLimitError(`${key}=${max + 1}`);
    expect(err.message).toContain(`${key} must be an integer from 0 to ${max}`);
  });

  it.each(['pids=99999999999', 'nofile=12345678901234567890'])('more than 10 digits is rejected: %s', (text) => {
    resourceLimitError(text);
  });

  it.each(['pids=0', 'pids=000'])('%s: a job needs at least one process', (text) => {
    expect(resourceLimitError(text).message).toContain('pids must be at least 1');
  });

  it.each(['pids', 'pids=1,', ',pids=1', 'pids=1,,nofile=2', 'PIDS=1', 'pids:1', 'pids=1 nofile=2', 'pids==1'])(
    'malformed list %j',
    (text) => {
      resourceLimitError(text);
    },
  );

  it('a valid key after an invalid one does not rescue the list', () => {
    resourceLimitError('pids=0,nofile=10');
    resourceLimitError('bogus=1,nofile=10');
  });
});
