/**
 * An I/O error under the database (RELIABILITY D10), with a real hpcqd. The state directory is an
 * ext4 filesystem on a loop device whose backing file is a sparse image on a small tmpfs: once the
 * tmpfs is full, the loop device fails writes, and fsync under LevelDB returns EIO, as on a failing
 * or over-committed disk. The daemon must stop acknowledging writes, report NOT_SERVING, keep
 * serving reads, stay that way until it is restarted (it does not know what its log holds), and
 * after a restart on the repaired filesystem every acknowledged job is there.
 * Root only (mount, losetup).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { SubmitJobRequest } from '../../src/gen/hpcq/v1/job_service.js';
import { getJob, healthStatuses, makeStateDir, startDaemon, stopAll, submit, TEST_CONFIG, waitForEnd, type DaemonHandle } from '../support/daemon-harness.js';
import { daemonStateDir, killJobsOf } from '../support/durability.js';
import { isRoot, JOB_USER, need } from '../support/privileged.js';
import { fillDisk } from '../support/store-fixtures.js';

const daemons: DaemonHandle[] = [];
const harnessDirs: string[] = [];
/** Unmounted in reverse order. */
const mounts: string[] = [];
const loops: string[] = [];

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.kill9();
  for (const dir of harnessDirs.splice(0)) await killJobsOf(dir);
  for (const mnt of mounts.splice(0).reverse()) execFileSync('umount', ['-l', mnt]);
  for (const loop of loops.splice(0)) execFileSync('losetup', ['-d', loop]);
  await stopAll();
});

const HEALTH_NAMES = ['', 'hpcq.v1.JobService', 'hpcq.v1.QueueService'];
const request = (clientToken: string): Partial<SubmitJobRequest> => ({
  name: clientToken,
  runUser: JOB_USER,
  cmdLine: 'true',
  clientToken,
  stdoutRedirectPath: '/dev/null',
  stderrRedirectPath: '/dev/null',
});

/** Mounts an ext4 filesystem at `stateDir` on a loop device over a sparse image on a 16 MiB tmpfs. */
function failingFilesystem(harnessDir: string, stateDir: string): { image: string; filler: string; loop: string } {
  const backing = join(harnessDir, 'backing');
  mkdirSync(backing);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', backing]);
  mounts.push(backing);
  const image = join(backing, 'ext4.img');
  execFileSync('truncate', ['-s', '256M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', image]);
  const loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  loops.push(loop);
  execFileSync('mount', [loop, stateDir]);
  mounts.push(stateDir);
  chmodSync(stateDir, 0o700);
  return { image, filler: join(backing, 'filler'), loop };
}

describe('I/O error under the database (root: ext4 on a loop device over a tmpfs)', () => {
  it('D10: stops acknowledging writes, reports NOT_SERVING until restarted, serves reads, and loses nothing acknowledged', { timeout: 120_000 }, async () => {
    if (!need(isRoot, 'root, to mount filesystems and loop devices')) return;
    const harnessDir = makeStateDir();
    harnessDirs.push(harnessDir);
    const stateDir = daemonStateDir(harnessDir);
    mkdirSync(stateDir, { mode: 0o700 });
    const fs = failingFilesystem(harnessDir, stateDir);

    let d = await startDaemon({ stateDir: harnessDir, config: TEST_CONFIG });
    daemons.push(d);
    const acked = await Promise.all(Array.from({ length: 5 }, (_, i) => submit(d, request(`before-${i}`))));
    for (const a of acked) expect((await waitForEnd(d, a.jobId)).jobStatus).toBe('completed');
    expect(await healthStatuses(d, HEALTH_NAMES)).toEqual({ '': 'SERVING', 'hpcq.v1.JobService': 'SERVING', 'hpcq.v1.QueueService': 'SERVING' });

    fillDisk(fs.filler);
    // The first synced batch that needs a new block of the image fails; a submit that fits into
    // blocks the filesystem already holds may still be acknowledged, and counts as such.
    const refusedTokens: string[] = [];
    let refusal: ServiceError | undefined;
    for (let i = 0; i < 500 && refusal === undefined; i++) {
      try {
        acked.push(await submit(d, request(`during-${i}`)));
      } catch (err) {
        refusal = err as ServiceError;
        refusedTokens.push(`during-${i}`);
      }
    }
    expect(refusal, 'a submit refused after the I/O error').toBeInstanceOf(Error);
    expect(refusal!.code).toBe(status.UNAVAILABLE);
    expect(refusal!.details).toMatch(/^ResourceUnavailable\.Store: the job database failed to write.*Input\/output error.*may or may not have been stored.*restarted.*same client_token/);
    expect(await healthStatuses(d, HEALTH_NAMES)).toEqual({ '': 'NOT_SERVING', 'hpcq.v1.JobService': 'NOT_SERVING', 'hpcq.v1.QueueService': 'SERVING' });

    // Space comes back, but the daemon cannot know what its log holds: writes stay refused (at once,
    // with the same error) and health stays NOT_SERVING; reads are still served.
    rmSync(fs.filler);
    await new Promise((r) => setTimeout(r, 3_000));
    const again = await submit(d, request('after-space')).catch((e: ServiceError) => e);
    refusedTokens.push('after-space');
    expect(again).toMatchObject({ code: status.UNAVAILABLE });
    expect((again as ServiceError).details).toMatch(/Input\/output error/);
    expect((await healthStatuses(d, ['']))['']).toBe('NOT_SERVING');
    for (const a of acked.slice(0, 5)) expect((await getJob(d, a.jobId)).jobStatus).toBe('completed');

    // The operator restarts hpcqd on the repaired filesystem.
    await d.stop();
    execFileSync('umount', [stateDir]);
    mounts.splice(mounts.indexOf(stateDir), 1);
    const fsck = (() => {
      try {
        execFileSync('e2fsck', ['-f', '-y', fs.image], { stdio: 'ignore' });
        return 0;
      } catch (err) {
        return (err as { status: number }).status;
      }
    })();
    expect(fsck, 'e2fsck: 0 clean, 1 errors corrected').toBeLessThanOrEqual(1);
    execFileSync('mount', [fs.loop, stateDir]);
    mounts.push(stateDir);
    d = await startDaemon({ stateDir: harnessDir, config: TEST_CONFIG });
    daemons.push(d);
    expect(await healthStatuses(d, HEALTH_NAMES)).toEqual({ '': 'SERVING', 'hpcq.v1.JobService': 'SERVING', 'hpcq.v1.QueueService': 'SERVING' });
    // Every acknowledged job is there with its own id.
    for (const a of acked) expect((await getJob(d, a.jobId)).clientToken).toBe((await getJob(d, a.jobId)).name);
    for (const a of acked.slice(0, 5)) expect((await getJob(d, a.jobId)).jobStatus).toBe('completed');
    // A refused submit may or may not have reached the log before the error; retried with its
    // token, it yields exactly one job either way.
    for (const token of refusedTokens) {
      const first = await submit(d, request(token));
      const second = await submit(d, request(token));
      expect(second.jobId).toBe(first.jobId);
      expect((await waitForEnd(d, first.jobId)).jobStatus).toBe('completed');
    }
  });
});
