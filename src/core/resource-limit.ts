/**
 * `resource_limit`: a `key=value[,key=value]` list of per-job limits beyond cores/memory/time.
 * Keys: pids (processes+threads in the job), nofile (open files per process), fsize (largest file,
 * MiB), core (core dump size, MiB; 0 disables core files), nproc (processes of the user host-wide,
 * rlimit semantics). Values are non-negative integers; each key at most once.
 */
import { invalidParameter } from './errors.js';
import { quoteValue } from './quote.js';
import type { ResourceLimits } from './job.js';

type KeySpec = { field: keyof ResourceLimits; max: number };

/** The keys in canonical order. */
const KEYS = {
  pids: { field: 'pids', max: 4_194_304 },
  nofile: { field: 'nofile', max: 1_048_576 },
  fsize: { field: 'fsizeMb', max: 1 << 30 },
  core: { field: 'coreMb', max: 1 << 30 },
  nproc: { field: 'nproc', max: 4_194_304 },
} as const satisfies Record<string, KeySpec>;

export function parseResourceLimit(text: string): { limits: ResourceLimits; canonical: string } {
  const limits: ResourceLimits = {};
  const trimmed = text.trim();
  if (trimmed === '') return { limits, canonical: '' };
  for (const part of trimmed.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\S*)\s*$/.exec(part);
    if (!m) {
      throw invalidParameter('InvalidParameter.ResourceLimit', 'resource_limit', `resource_limit: expected key=value, got ${quoteValue(part)}`);
    }
    const key = m[1]!;
    const value = m[2]!;
    const spec: KeySpec | undefined = Object.hasOwn(KEYS, key) ? (KEYS as Record<string, KeySpec>)[key] : undefined;
    if (!spec) {
      throw invalidParameter('InvalidParameter.ResourceLimit', 'resource_limit', `resource_limit: unknown key ${quoteValue(key)} (known: ${Object.keys(KEYS).join(', ')})`);
    }
    if (limits[spec.field] !== undefined) throw invalidParameter('InvalidParameter.ResourceLimit', 'resource_limit', `resource_limit: key ${key} given twice`);
    if (!/^\d{1,10}$/.test(value) || Number(value) > spec.max) {
      throw invalidParameter('InvalidParameter.ResourceLimit', 'resource_limit', `resource_limit: ${key} must be an integer from 0 to ${spec.max}, got ${quoteValue(value)}`);
    }
    if (key === 'pids' && Number(value) === 0) {
      throw invalidParameter('InvalidParameter.ResourceLimit', 'resource_limit', 'resource_limit: pids must be at least 1');
    }
    limits[spec.field] = Number(value);
  }
  // Canonical key order, so that equal lists give equal specs (and client_token fingerprints).
  const ordered: ResourceLimits = {};
  const parts: string[] = [];
  for (const [key, { field }] of Object.entries(KEYS)) {
    const value = limits[field];
    if (value === undefined) continue;
    ordered[field] = value;
    parts.push(`${key}=${value}`);
  }
  return { limits: ordered, canonical: parts.join(',') };
}
