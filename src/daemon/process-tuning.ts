/**
 * How the hpcqd process is started: settings that must be in place before Node itself starts, so
 * they cannot be made from inside (HPCQD_ENV, HPCQD_NODE_FLAGS), and the thread-pool size, which
 * main.cts sets first thing. The first line of main.cts (its `#!/usr/bin/env -S` line) sets the
 * same ones for `hpcqd` run directly; `hpcq daemon` starts hpcqd with these; a test keeps the two
 * in step, and that line within the 127 bytes kernels before 5.1 read of it.
 *
 * - MALLOC_ARENA_MAX=2: glibc gives each of the 16 pool threads that reads LevelDB a malloc arena
 *   of its own, each keeping 3-5 MiB; two arenas saved about 14 MiB of RSS at 1M stored jobs.
 * - UV_THREADPOOL_SIZE=16 (HPCQD_THREADPOOL_SIZE): LevelDB reads, synced batches and file
 *   operations run on libuv's pool, and with 4 threads fsyncs queue behind each other (+35-60%
 *   submits/s at 32-64 clients). main.cts sets it itself, before Node first uses the pool: an
 *   environment variable that needs no place on the first line.
 * - --max-semi-space-size=4 (MiB): V8's young generation otherwise grows to 2 x 16 MiB under RPC
 *   load. 8 saved 16-24 MiB of RSS with no measurable change in submit throughput or GetJob p99;
 *   4 saves 4-7 MiB more in a 1,000-job burst, jobs/s and submits/s unchanged (2 saved 1-3 MiB
 *   more but cost 5-10% of burst jobs/s).
 * - --heap-growing-percent=30: after each full collection V8 lets the old generation grow to up to
 *   4x what survived before collecting again; 1.3x keeps the peak of a 1,000-job burst 6-8 MiB
 *   lower and of 64 clients submitting 45-55 MiB lower, for 0-9% fewer submits/s at 64 clients
 *   (p99 19 -> 27 ms). 10 saved little more and cost 20-25% of submits/s.
 * - --no-parallel-scavenge: young-generation collections on the main thread alone. On a small
 *   node the other cores run jobs and supervisors, and helper threads cost more in hand-offs than
 *   they save: 4% less daemon CPU per job in a 1,000-job burst, submits/s unchanged or better.
 */
export const HPCQD_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
export const HPCQD_THREADPOOL_SIZE = '16';
export const HPCQD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=30', '--no-parallel-scavenge'];
