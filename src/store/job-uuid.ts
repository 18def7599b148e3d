/** Job uuids: `hpcjob-` + 8 lowercase base-36 characters from the crypto RNG. */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const PREFIX = 'hpcjob-';
const LENGTH = 8;
/** Bytes at or above this are rejected so that `byte % 36` is uniform (252 = 7 * 36). */
const UNBIASED_LIMIT = 252;

export const JOB_UUID_PATTERN = /^hpcjob-[0-9a-z]{8}$/;

export function newJobUuid(): string {
  let out = PREFIX;
  while (out.length < PREFIX.length + LENGTH) {
    for (const byte of randomBytes(LENGTH * 2)) {
      if (byte < UNBIASED_LIMIT && out.length < PREFIX.length + LENGTH) out += ALPHABET[byte % 36];
    }
  }
  return out;
}
