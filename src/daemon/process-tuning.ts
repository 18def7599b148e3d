/**
 * How the hpcqd process is started: settings that must be in place before Node itself starts, so
 * they cannot be made from inside. The first line of main.cts (its `#!/usr/bin/env -S` line) sets
 * the same ones for `hpcqd` run directly; `hpcq daemon` starts hpcqd with these; a test keeps the
 * two in step.
 *
 * - MALLOC_ARENA_MAX=2: glibc gives each of the 16 pool threads that reads LevelDB a malloc arena
 *   of its own, each keeping 3-5 MiB; two arenas saved about 14 MiB of RSS at 1M stored jobs.
 * - UV_THREADPOOL_SIZE=16: LevelDB reads, synced batches and file operations run on libuv's pool,
 *   and with 4 threads fsyncs queue behind each other (+35-60% submits/s at 32-64 clients).
 * - --max-semi-space-size=8 (MiB): V8's young generation otherwise grows to 2 x 16 MiB under RPC
 *   load; 8 saved 16-24 MiB of RSS with no measurable change in submit throughput or GetJob p99.
 */
export const HPCQD_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', UV_THREADPOOL_SIZE: '16' };
export const HPCQD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
