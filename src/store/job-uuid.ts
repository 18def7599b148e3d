/** Job uuids: `hpcjob-` + 8 lowercase base-36 characters from the crypto RNG. */
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const PREFIX = 'hpcjob-';
const LENGTH = 8;
/** Bytes at or above this are rejected so that `byte % 36` is uniform (252 = 7 * 36). */
const UNBIASED_LIMIT = 252;
/** Random bytes drawn per RNG call: one call per ~200 uuids instead of one per uuid. */
const POOL_BYTES = 2048;

export const JOB_UUID_PATTERN = /^hpcjob-[0-9a-z]{8}$/;

const pool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;

function randomByte(): number {
  if (poolOffset === POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  return pool[poolOffset++] as number;
}

export function newJobUuid(): string {
  let out = PREFIX;
  while (out.length < PREFIX.length + LENGTH) {
    const byte = randomByte();
    if (byte < UNBIASED_LIMIT) out += ALPHABET[byte % 36];
  }
  return out;
}
