import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type JobLimits, MIB } from '../../src/exec/limits/limiter.js';
import { RlimitLimiter } from '../../src/exec/limits/rlimit-limiter.js';
import { need } from '../support/privileged.js';

const LIMITS: JobLimits = { cores: 2, memoryLimitBytes: 512 * MIB, timeLimitSeconds: 3600, resourceLimits: {} };

describe('RlimitLimiter', () => {
  it('computes AS, CPU (+1 s soft, grace to the hard limit), the default NPROC, and kills by process tree', async () => {
    const limiter = new RlimitLimiter();
    expect(limiter.mode).toBe('rlimit');
    expect(await limiter.prepare(1, LIMITS)).toEqual({
      cgroupProcsFiles: [],
      kill: { kind: 'process-tree' },
      rlimits: { AS: 512 * MIB, CPU: 7201, NPROC: 4096 },
      rlimitsHard: { CPU: 7231 },
    });
  });

  it('uses DATA instead of AS when configured, and converts resource_limit sizes from MiB', () => {
    const limiter = new RlimitLimiter({ memoryRlimit: 'DATA', cpuKillGraceSeconds: 5 });
    const placement = limiter.placementFor({
      ...LIMITS,
      cores: 0.5,
      timeLimitSeconds: 11,
      resourceLimits: { nofile: 256, fsizeMb: 10, coreMb: 0, pids: 64 },
    });
    expect(placement.rlimits).toEqual({ DATA: 512 * MIB, CPU: 7, NPROC: 64, NOFILE: 256, FSIZE: 10 * MIB, CORE: 0 });
    expect(placement.rlimits.AS).toBeUndefined();
    expect(placement.rlimitsHard).toEqual({ CPU: 12 });
  });

  it('prefers an explicit nproc over pids for RLIMIT_NPROC', () => {
    const placement = new RlimitLimiter().placementFor({ ...LIMITS, resourceLimits: { pids: 64, nproc: 300 } });
    expect(placement.rlimits.NPROC).toBe(300);
  });

  it('has nothing to collect, release, list or remove', async () => {
    const limiter = new RlimitLimiter();
    expect(await limiter.collect(1)).toBeUndefined();
    await limiter.release(1);
    expect(await limiter.listJobIds()).toEqual([]);
    expect(await limiter.removeParentIfUnused()).toBe(true);
  });

  it('rejects nonsense limits', () => {
    expect(() => new RlimitLimiter().placementFor({ ...LIMITS, memoryLimitBytes: 0 })).toThrow(/memoryLimitBytes/);
    expect(() => new RlimitLimiter().placementFor({ ...LIMITS, timeLimitSeconds: 1.5 })).toThrow(/timeLimitSeconds/);
  });

  const hasPrlimit = existsSync('/usr/bin/prlimit');
  const python = ['/usr/bin/python3', '/bin/python3'].find((p) => existsSync(p));

  it('the values mean what the kernel means (ulimit -v shows AS in KiB, ulimit -t CPU s)', (ctx) => {
    if (!need(hasPrlimit, 'prlimit (util-linux)')) return ctx.skip();
    const { rlimits } = new RlimitLimiter().placementFor({ ...LIMITS, memoryLimitBytes: 64 * MIB, timeLimitSeconds: 10, cores: 1 });
    const r = spawnSync('prlimit', [`--as=${rlimits.AS}`, `--cpu=${rlimits.CPU}`, '--', '/bin/sh', '-c', 'ulimit -v; ulimit -t'], { encoding: 'utf8' });
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['65536', '11']);
  });

  it(
    'RLIMIT_AS false positive (L14): reserving 1 GiB without touching it fails under a 256 MiB AS limit',
    (ctx) => {
      if (!need(hasPrlimit && python !== undefined, 'prlimit (util-linux) and python3')) return ctx.skip();
      const { rlimits } = new RlimitLimiter().placementFor({ ...LIMITS, memoryLimitBytes: 256 * MIB });
      // A private anonymous mapping that is never touched: ~0 RSS, 1 GiB of address space.
      const reserve = 'import mmap; m = mmap.mmap(-1, 1 << 30); print("reserved")';
      const limited = spawnSync('prlimit', [`--as=${rlimits.AS}`, '--', python!, '-c', reserve], { encoding: 'utf8' });
      expect(limited.status).not.toBe(0);
      expect(limited.stderr).toMatch(/Cannot allocate memory|MemoryError/);
      const unlimited = spawnSync(python!, ['-c', reserve], { encoding: 'utf8' });
      expect(unlimited.stdout.trim()).toBe('reserved');
    },
  );
});
