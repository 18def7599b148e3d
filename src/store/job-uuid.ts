/**
 * Job uuids: `hpcjob-` + 8 lowercase base-36 characters, derived from the job id by a keyed
 * permutation of [0, 36^8): a 6-round Feistel network over 42 bits, cycle-walked into range.
 * A permutation maps distinct ids to distinct uuids, so no uuid is ever checked against the
 * database on the submit path; the per-database random key (stored in `meta/uuid-key`) makes them
 * unpredictable, so a uuid does not reveal the job id or how many jobs exist.
 */
import { createHash, randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const PREFIX = 'hpcjob-';
const LENGTH = 8;
/** 36^8: the number of distinct uuids. */
const DOMAIN = 36 ** LENGTH;
const HALF_BITS = 21;
const HALF_MASK = (1 << HALF_BITS) - 1;
const HALF = 2 ** HALF_BITS;
const ROUNDS = 6;

/** A new random key for a new database. */
export function newUuidKey(): string {
  return randomBytes(16).toString('hex');
}

/** Per-round 32-bit keys derived once from the database's key (SHA-256). */
const roundKeysCache = new Map<string, Uint32Array>();
function roundKeys(key: string): Uint32Array {
  let keys = roundKeysCache.get(key);
  if (!keys) {
    const digest = createHash('sha256').update(key).digest();
    keys = new Uint32Array(ROUNDS);
    for (let r = 0; r < ROUNDS; r++) keys[r] = digest.readUInt32BE(r * 4);
    roundKeysCache.set(key, keys);
  }
  return keys;
}

/**
 * Round function: a keyed integer mixer (multiply-xorshift, as in murmur3's finalizer). Not a
 * cipher: uuids need to be unique and not guessable at a glance, and the API is access-controlled
 * anyway; this costs nanoseconds where a hash per round cost microseconds on the submit path.
 */
function round(roundKey: number, half: number): number {
  let x = (half ^ roundKey) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) & HALF_MASK;
}

function feistel(keys: Uint32Array, value: number): number {
  let left = Math.floor(value / HALF);
  let right = value % HALF;
  for (let r = 0; r < ROUNDS; r++) {
    const next = left ^ round(keys[r]!, right);
    left = right;
    right = next;
  }
  return left * HALF + right;
}

/** The uuid of job `id` (1 <= id < 36^8) under `key`. */
export function jobUuidFor(id: number, key: string): string {
  if (!Number.isSafeInteger(id) || id < 1 || id >= DOMAIN) throw new RangeError(`job id ${id} out of the uuid domain`);
  // Cycle walking: the permutation covers 2^42 values; re-apply until the result lies in the domain.
  const keys = roundKeys(key);
  let value = feistel(keys, id);
  while (value >= DOMAIN) value = feistel(keys, value);
  let text = '';
  for (let i = 0; i < LENGTH; i++) {
    text = ALPHABET[value % 36]! + text;
    value = Math.floor(value / 36);
  }
  return PREFIX + text;
}
