/**
 * CgroupV1Limiter against a FAKE set of v1 hierarchies in a temp dir (the real ones are covered by
 * test/integration/limits-cgroup1.test.ts): co-mounted cpu,cpuacct, the memory/memsw write order,
 * accounting fallbacks of older kernels, and the freeze -> kill -> thaw sequence of release().
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CgroupFs } from '../../src/exec/limits/cgroup-fs.js';
import { CgroupV1Limiter, type CgroupV1Mounts } from '../../src/exec/limits/cgroup-v1-limiter.js';
import { applySetup, type JobLimits, LimitSetupError, MIB } from '../../src/exec/limits/limiter.js';

const UNLIMITED = '9223372036854771712\n';

/** Interface files a new cgroup gets, by the controllers of its hierarchy. */
const FILES: Record<string, Record<string, string>> = {
  memory: {
    'memory.limit_in_bytes': UNLIMITED,
    'memory.memsw.limit_in_bytes': UNLIMITED,
    'memory.swappiness': '60\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'memory.max_usage_in_bytes': '0\n',
    'memory.failcnt': '0\n',
    'memory.memsw.failcnt': '0\n',
  },
  cpu: { 'cpu.cfs_period_us': '100000\n', 'cpu.cfs_quota_us': '-1\n', 'cpu.stat': 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n' },
  cpuacct: { 'cpuacct.stat': 'user 0\nsystem 0\n', 'cpuacct.usage': '0\n', 'cpuacct.usage_user': '0\n', 'cpuacct.usage_sys': '0\n' },
  pids: { 'pids.max': 'max\n', 'pids.current': '0\n' },
  freezer: { 'freezer.state': 'THAWED\n' },
  cpuset: { 'cpuset.cpus': '\n', 'cpuset.mems': '\n' },
};

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

class FakeCgroup1Fs implements CgroupFs {
  readonly writes: Array<[path: string, value: string]> = [];
  /** mkdir calls refused because the parent directory did not exist. */
  mkdirsWithoutParent = 0;
  missingFiles = new Set<string>();
  /** mount dir -> its controllers */
  readonly hierarchies = new Map<string, string[]>();

  constructor(readonly root: string) {}

  private controllersOf(path: string): string[] {
    for (const [mount, controllers] of this.hierarchies) if (path === mount || path.startsWith(`${mount}/`)) return controllers;
    return [];
  }

  addHierarchy(name: string, controllers: string[]): string {
    const mount = join(this.root, name);
    mkdirSync(mount);
    this.hierarchies.set(mount, controllers);
    writeFileSync(join(mount, 'cgroup.procs'), '');
    if (controllers.includes('cpuset')) {
      writeFileSync(join(mount, 'cpuset.cpus'), '0-7\n');
      writeFileSync(join(mount, 'cpuset.mems'), '0-1\n');
    }
    return mount;
  }

  async read(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  async write(path: string, value: string): Promise<void> {
    if (!existsSync(path)) throw errno('ENOENT', path);
    const name = basename(path);
    const dir = dirname(path);
    // The kernel keeps memory.limit <= memsw.limit.
    if (name === 'memory.limit_in_bytes' && existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) {
      if (Number(value) > Number(readFileSync(join(dir, 'memory.memsw.limit_in_bytes'), 'utf8'))) throw errno('EINVAL', path);
    }
    // -1 is unlimited, always above the memory limit.
    if (name === 'memory.memsw.limit_in_bytes' && value !== '-1' && Number(value) < Number(readFileSync(join(dir, 'memory.limit_in_bytes'), 'utf8'))) {
      throw errno('EINVAL', path);
    }
    this.writes.push([path.slice(this.root.length), value]);
    if (name === 'freezer.state' && value === 'FROZEN') {
      await writeFile(path, 'FREEZING\n'); // the next read says FROZEN
      // Like the kernel, a THAWED written meanwhile cancels the freeze.
      setTimeout(() => {
        if (existsSync(path) && readFileSync(path, 'utf8').trim() === 'FREEZING') writeFileSync(path, 'FROZEN\n');
      }, 5);
      return;
    }
    // The kernel reads back -1 (unlimited) as its largest value.
    await writeFile(path, name.endsWith('limit_in_bytes') && value === '-1' ? UNLIMITED : `${value}\n`);
  }

  async exists(path: string): Promise<boolean> {
    return existsSync(path);
  }

  async mkdir(path: string): Promise<boolean> {
    if (existsSync(path)) return false;
    if (!existsSync(dirname(path))) {
      this.mkdirsWithoutParent++;
      throw errno('ENOENT', path);
    }
    mkdirSync(path);
    writeFileSync(join(path, 'cgroup.procs'), '');
    for (const c of this.controllersOf(path)) {
      for (const [name, content] of Object.entries(FILES[c] ?? {})) if (!this.missingFiles.has(name)) writeFileSync(join(path, name), content);
    }
    return true;
  }

  async rmdir(path: string): Promise<boolean> {
    if (!existsSync(path)) return false;
    if ((await readdir(path, { withFileTypes: true })).some((e) => e.isDirectory())) throw errno('EBUSY', path);
    if (readFileSync(join(path, 'cgroup.procs'), 'utf8').trim() !== '') throw errno('EBUSY', path);
    await rm(path, { recursive: true });
    return true;
  }

  async listDirs(path: string): Promise<string[]> {
    if (!existsSync(path)) return [];
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  }
}

const LIMITS: JobLimits = { cores: 1.5, memoryLimitBytes: 64 * MIB, timeLimitSeconds: 60, resourceLimits: { pids: 50 } };

let root: string;
let fake: FakeCgroup1Fs;
let mounts: CgroupV1Mounts;
let killed: number[];
let limiter: CgroupV1Limiter;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hpcq-fake-cg1-'));
  fake = new FakeCgroup1Fs(root);
  const comounted = fake.addHierarchy('cpu,cpuacct', ['cpu', 'cpuacct']);
  mounts = {
    memory: fake.addHierarchy('memory', ['memory']),
    cpu: comounted,
    cpuacct: comounted,
    pids: fake.addHierarchy('pids', ['pids']),
    freezer: fake.addHierarchy('freezer', ['freezer']),
    cpuset: fake.addHierarchy('cpuset', ['cpuset']),
  };
  killed = [];
  limiter = new CgroupV1Limiter({ mounts, fs: fake, releaseTimeoutMs: 500, killPid: (pid) => killed.push(pid) });
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function file(rel: string): string {
  return readFileSync(join(root, rel), 'utf8').trim();
}

describe('CgroupV1Limiter.prepare', () => {
  it('creates one dir per hierarchy (co-mounted cpu,cpuacct once) and writes the limits', async () => {
    const placement = await limiter.prepare(5, LIMITS);
    expect(placement).toEqual({
      cgroupProcsFiles: [
        join(root, 'freezer/hpcq/job_5/cgroup.procs'),
        join(root, 'memory/hpcq/job_5/cgroup.procs'),
        join(root, 'pids/hpcq/job_5/cgroup.procs'),
        join(root, 'cpu,cpuacct/hpcq/job_5/cgroup.procs'),
      ],
      kill: { kind: 'cgroup1', freezerDir: join(root, 'freezer/hpcq/job_5') },
      rlimits: {},
      rlimitsHard: {},
      accountingFiles: [
        join(root, 'memory/hpcq/job_5/memory.oom_control'),
        join(root, 'memory/hpcq/job_5/memory.max_usage_in_bytes'),
        join(root, 'memory/hpcq/job_5/memory.failcnt'),
        join(root, 'memory/hpcq/job_5/memory.memsw.failcnt'),
        join(root, 'cpu,cpuacct/hpcq/job_5/cpuacct.usage_user'),
        join(root, 'cpu,cpuacct/hpcq/job_5/cpuacct.usage_sys'),
        join(root, 'cpu,cpuacct/hpcq/job_5/cpuacct.stat'),
        join(root, 'cpu,cpuacct/hpcq/job_5/cpuacct.usage'),
        join(root, 'cpu,cpuacct/hpcq/job_5/cpu.stat'),
      ],
      cgroupDirs: [
        join(root, 'freezer/hpcq/job_5'),
        join(root, 'memory/hpcq/job_5'),
        join(root, 'pids/hpcq/job_5'),
        join(root, 'cpu,cpuacct/hpcq/job_5'),
      ],
    });
    expect(fake.writes).toEqual([
      ['/memory/hpcq/job_5/memory.memsw.limit_in_bytes', '-1'],
      ['/memory/hpcq/job_5/memory.limit_in_bytes', '67108864'],
      ['/memory/hpcq/job_5/memory.memsw.limit_in_bytes', '67108864'],
      ['/memory/hpcq/job_5/memory.swappiness', '0'],
      ['/cpu,cpuacct/hpcq/job_5/cpu.cfs_period_us', '100000'],
      ['/cpu,cpuacct/hpcq/job_5/cpu.cfs_quota_us', '150000'],
      ['/pids/hpcq/job_5/pids.max', '50'],
    ]);
    expect(existsSync(join(root, 'cpuset/hpcq'))).toBe(false); // no cpus asked: no cpuset
  });

  it('names the same cgroups when its mounts and parent are given with trailing slashes and dot segments', async () => {
    // Job paths are built by plain concatenation from the mounts and parent normalized once.
    const expected = await limiter.prepare(5, LIMITS, { deferSetup: true });
    const untidy = Object.fromEntries(Object.entries(mounts).map(([c, dir]) => [c, `${dir}/./`])) as unknown as CgroupV1Mounts;
    const other = new CgroupV1Limiter({ mounts: untidy, parentName: './hpcq/', fs: fake });
    const placement = await other.prepare(5, LIMITS, { deferSetup: true });
    expect(placement).toEqual(expected);
    expect(placement.cgroupDirs).toContain(join(root, 'memory/hpcq/job_5'));
  });

  it('opens memsw first, so a second prepare can grow or shrink the limit (the kernel keeps memory <= memsw)', async () => {
    await limiter.prepare(6, LIMITS);
    await limiter.prepare(6, { ...LIMITS, memoryLimitBytes: 128 * MIB });
    expect(file('memory/hpcq/job_6/memory.limit_in_bytes')).toBe(String(128 * MIB));
    expect(file('memory/hpcq/job_6/memory.memsw.limit_in_bytes')).toBe(String(128 * MIB));
    await limiter.prepare(6, { ...LIMITS, memoryLimitBytes: 32 * MIB });
    expect(file('memory/hpcq/job_6/memory.limit_in_bytes')).toBe(String(32 * MIB));
    expect(file('memory/hpcq/job_6/memory.memsw.limit_in_bytes')).toBe(String(32 * MIB));
  });

  it('with deferSetup: sets up the parents only and returns the job set-up, which makes the same cgroups', async () => {
    const deferred = await limiter.prepare(16, LIMITS, { deferSetup: true });
    expect(existsSync(join(root, 'memory/hpcq'))).toBe(true);
    expect(existsSync(join(root, 'memory/hpcq/job_16'))).toBe(false);
    expect(deferred.setup!.filter((s) => 'mkdir' in s)).toEqual(deferred.cgroupDirs!.map((d) => ({ mkdir: d })));
    await applySetup(fake, deferred.setup!, 'job 16');
    await limiter.prepare(17, LIMITS);
    for (const f of ['memory/hpcq/job_#/memory.limit_in_bytes', 'memory/hpcq/job_#/memory.memsw.limit_in_bytes', 'cpu,cpuacct/hpcq/job_#/cpu.cfs_quota_us', 'pids/hpcq/job_#/pids.max']) {
      expect(file(f.replace('#', '16'))).toBe(file(f.replace('#', '17')));
    }
    // A parent removed behind its back is made again before the next deferred set-up.
    await limiter.release(16);
    await limiter.release(17);
    rmSync(join(root, 'pids/hpcq'), { recursive: true });
    await limiter.prepare(18, LIMITS, { deferSetup: true });
    expect(existsSync(join(root, 'pids/hpcq'))).toBe(true);
  });

  it('works without swap accounting (no memsw files)', async () => {
    fake.missingFiles = new Set(['memory.memsw.limit_in_bytes']);
    await limiter.prepare(7, LIMITS);
    expect(file('memory/hpcq/job_7/memory.limit_in_bytes')).toBe('67108864');
  });

  it('with cpus: a cpuset parent with the root cpus/mems, and the job pinned', async () => {
    const placement = await limiter.prepare(8, { ...LIMITS, cpus: '2-3' });
    expect(placement.cgroupProcsFiles).toContain(join(root, 'cpuset/hpcq/job_8/cgroup.procs'));
    expect(file('cpuset/hpcq/cpuset.cpus')).toBe('0-7');
    expect(file('cpuset/hpcq/cpuset.mems')).toBe('0-1');
    expect(file('cpuset/hpcq/job_8/cpuset.cpus')).toBe('2-3');
    expect(file('cpuset/hpcq/job_8/cpuset.mems')).toBe('0-1');
  });

  it('fills an existing cpuset parent whose cpus/mems are empty', async () => {
    await fake.mkdir(join(root, 'cpuset/hpcq')); // e.g. left by an older version: empty cpus and mems
    await limiter.prepare(13, { ...LIMITS, cpus: '0' });
    expect(file('cpuset/hpcq/cpuset.cpus')).toBe('0-7');
    expect(file('cpuset/hpcq/job_13/cpuset.mems')).toBe('0-1');
  });

  it('sets the parents up again when they were removed behind its back', async () => {
    await limiter.prepare(14, LIMITS);
    await limiter.release(14);
    for (const d of ['freezer', 'memory', 'pids', 'cpu,cpuacct']) rmSync(join(root, d, 'hpcq'), { recursive: true });
    await limiter.prepare(15, LIMITS);
    expect(file('pids/hpcq/job_15/pids.max')).toBe('50');
  });

  it('removes what it created when a write fails', async () => {
    fake.missingFiles = new Set(['pids.max']);
    await expect(limiter.prepare(9, LIMITS)).rejects.toThrow(LimitSetupError);
    for (const d of ['freezer', 'memory', 'pids', 'cpu,cpuacct']) expect(existsSync(join(root, d, 'hpcq/job_9'))).toBe(false);
  });

  it('refuses a mount that is not a cgroup hierarchy, and cpus without a cpuset mount', async () => {
    const bad = new CgroupV1Limiter({ mounts: { ...mounts, pids: join(root, 'nope') }, fs: fake });
    await expect(bad.prepare(1, LIMITS)).rejects.toThrow(/is not a mounted cgroup v1 hierarchy/);
    const { cpuset: _omit, ...noCpuset } = mounts;
    const noCpusetLimiter = new CgroupV1Limiter({ mounts: noCpuset, fs: fake });
    await expect(noCpusetLimiter.prepare(1, { ...LIMITS, cpus: '0' })).rejects.toThrow(/no cpuset hierarchy/);
  });
});

describe('CgroupV1Limiter.collect', () => {
  it('reads oom_kill, the peak, and CPU in ns', async () => {
    await limiter.prepare(10, LIMITS);
    writeFileSync(join(root, 'memory/hpcq/job_10/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    writeFileSync(join(root, 'memory/hpcq/job_10/memory.max_usage_in_bytes'), '67108864\n');
    writeFileSync(join(root, 'memory/hpcq/job_10/memory.memsw.failcnt'), '9\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_10/cpuacct.usage'), '3000000123\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_10/cpuacct.usage_user'), '2500000000\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_10/cpuacct.usage_sys'), '500000123\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_10/cpu.stat'), 'nr_periods 30\nnr_throttled 17\nthrottled_time 1\n');
    expect(await limiter.collect(10)).toEqual({
      userCpuUsec: 2_500_000,
      systemCpuUsec: 500_000,
      peakMemoryBytes: 64 * MIB,
      oomKills: 2,
      oomKillsCounted: true,
      memoryLimitHits: 9,
      totalCpuUsec: 3_000_000,
      cpuThrottledPeriods: 17,
    });
  });

  it('reads what the supervisor recorded when given it: the same report after the cgroups are gone', async () => {
    const placement = await limiter.prepare(13, LIMITS);
    writeFileSync(join(root, 'memory/hpcq/job_13/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
    writeFileSync(join(root, 'memory/hpcq/job_13/memory.max_usage_in_bytes'), '1048576\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_13/cpuacct.usage_user'), '7000000\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_13/cpuacct.usage_sys'), '3000000\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_13/cpuacct.usage'), '10000000\n');
    const live = await limiter.collect(13);
    // What the supervisor records: each accounting file that exists, by path.
    const recorded = new Map<string, string>();
    for (const file of placement.accountingFiles ?? []) if (existsSync(file)) recorded.set(file, readFileSync(file, 'utf8'));
    expect(recorded.size).toBeGreaterThan(3);
    await limiter.release(13);
    expect(await limiter.collect(13)).toBeUndefined();
    expect(await limiter.collect(13, recorded)).toEqual(live);
    expect(live).toMatchObject({ oomKills: 1, peakMemoryBytes: MIB, userCpuUsec: 7000, systemCpuUsec: 3000, totalCpuUsec: 10000 });
  });

  it('before Linux 4.13: no oom_kill line (not counted), failcnt as evidence, cpuacct.stat ticks', async () => {
    fake.missingFiles = new Set(['cpuacct.usage_user', 'cpuacct.usage_sys']);
    await limiter.prepare(11, LIMITS);
    writeFileSync(join(root, 'memory/hpcq/job_11/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\n');
    writeFileSync(join(root, 'memory/hpcq/job_11/memory.failcnt'), '4\n');
    writeFileSync(join(root, 'cpu,cpuacct/hpcq/job_11/cpuacct.stat'), 'user 250\nsystem 3\n');
    const report = await limiter.collect(11);
    expect(report).toMatchObject({ oomKills: 0, oomKillsCounted: false, memoryLimitHits: 4, userCpuUsec: 2_500_000, systemCpuUsec: 30_000 });
  });

  it('undefined for a job without cgroups', async () => {
    expect(await limiter.collect(12)).toBeUndefined();
  });
});

describe('CgroupV1Limiter.release', () => {
  it('freezes, kills every pid listed in any controller, thaws, and removes all dirs', async () => {
    await limiter.prepare(20, LIMITS);
    writeFileSync(join(root, 'freezer/hpcq/job_20/cgroup.procs'), '100\n101\n');
    // 102 was killed while joining: in memory but not yet in freezer.
    writeFileSync(join(root, 'memory/hpcq/job_20/cgroup.procs'), '100\n101\n102\n');
    const empty = () => {
      for (const d of ['freezer', 'memory', 'pids', 'cpu,cpuacct']) writeFileSync(join(root, d, 'hpcq/job_20/cgroup.procs'), '');
    };
    fake.writes.length = 0;
    const killer = new CgroupV1Limiter({
      mounts,
      fs: fake,
      killPid: (pid) => {
        expect(file('freezer/hpcq/job_20/freezer.state')).toBe('FROZEN');
        killed.push(pid);
        if (killed.length === 3) empty();
      },
    });
    await killer.release(20);
    expect(killed.sort()).toEqual([100, 101, 102]);
    expect(fake.writes.map(([p, v]) => `${p}=${v}`)).toEqual([
      '/freezer/hpcq/job_20/freezer.state=FROZEN',
      '/freezer/hpcq/job_20/freezer.state=THAWED',
    ]);
    for (const d of ['freezer', 'memory', 'pids', 'cpu,cpuacct']) expect(existsSync(join(root, d, 'hpcq/job_20'))).toBe(false);
    expect(await killer.listJobIds()).toEqual([]);
  });

  it('is idempotent, tolerates partly removed dirs, and includes a cpuset dir', async () => {
    await limiter.prepare(21, { ...LIMITS, cpus: '1' });
    rmSync(join(root, 'memory/hpcq/job_21'), { recursive: true });
    expect(await limiter.listJobIds()).toEqual([21]);
    await limiter.release(21);
    await limiter.release(21);
    expect(existsSync(join(root, 'cpuset/hpcq/job_21'))).toBe(false);
    expect(await limiter.listJobIds()).toEqual([]);
  });

  it('gives up with CgroupBusyError when processes do not die, leaving the job thawed', async () => {
    await limiter.prepare(22, LIMITS);
    writeFileSync(join(root, 'freezer/hpcq/job_22/cgroup.procs'), '300\n');
    await expect(limiter.release(22)).rejects.toThrow(/processes 300 of job 22 survive/);
    expect(killed.length).toBeGreaterThan(0);
    expect(file('freezer/hpcq/job_22/freezer.state')).toBe('THAWED');
  });
});

describe('CgroupV1Limiter.removeParentIfUnused', () => {
  const HIERARCHIES = ['freezer', 'memory', 'pids', 'cpu,cpuacct', 'cpuset'];

  it('removes the parent in every hierarchy, cpuset included, once no job is left; never a mount', async () => {
    await limiter.prepare(30, { ...LIMITS, cpus: '1' });
    await limiter.release(30);
    expect(await limiter.removeParentIfUnused()).toBe(true);
    for (const d of HIERARCHIES) {
      expect(existsSync(join(root, d, 'hpcq'))).toBe(false);
      expect(existsSync(join(root, d, 'cgroup.procs'))).toBe(true);
    }
    expect(await limiter.removeParentIfUnused()).toBe(true); // nothing left to remove
  });

  it('keeps the parent, and leaves the job cgroup untouched, where a job cgroup exists', async () => {
    await limiter.prepare(31, LIMITS);
    writeFileSync(join(root, 'freezer/hpcq/job_31/cgroup.procs'), '100\n');
    // Another job's cpuset parent, empty again: removed although the others are kept.
    await limiter.prepare(32, { ...LIMITS, cpus: '1' });
    await limiter.release(32);
    fake.writes.length = 0;
    expect(await limiter.removeParentIfUnused()).toBe(false);
    for (const d of ['freezer', 'memory', 'pids', 'cpu,cpuacct']) expect(existsSync(join(root, d, 'hpcq/job_31'))).toBe(true);
    expect(existsSync(join(root, 'cpuset/hpcq'))).toBe(false);
    expect(file('freezer/hpcq/job_31/cgroup.procs')).toBe('100');
    expect(file('memory/hpcq/job_31/memory.limit_in_bytes')).toBe('67108864');
    expect(file('pids/hpcq/job_31/pids.max')).toBe('50');
    expect(fake.writes).toEqual([]);
    expect(killed).toEqual([]);
    expect(await limiter.listJobIds()).toEqual([31]);
  });

  it('a prepare() after the removal sets the parents up again', async () => {
    await limiter.prepare(33, LIMITS);
    await limiter.release(33);
    expect(await limiter.removeParentIfUnused()).toBe(true);
    const placement = await limiter.prepare(34, { ...LIMITS, cpus: '2' });
    // Set up as new, not through the recovery from parents removed behind its back.
    expect(fake.mkdirsWithoutParent).toBe(0);
    expect(placement.cgroupProcsFiles).toContain(join(root, 'cpuset/hpcq/job_34/cgroup.procs'));
    expect(file('pids/hpcq/job_34/pids.max')).toBe('50');
    expect(file('cpuset/hpcq/cpuset.cpus')).toBe('0-7');
    expect(file('cpuset/hpcq/job_34/cpuset.mems')).toBe('0-1');
  });

  it('with a multi-component parent name removes only its own components, deepest first', async () => {
    const nested = new CgroupV1Limiter({ mounts, fs: fake, parentName: 'batch/hpcq-a', killPid: (pid) => killed.push(pid) });
    await nested.prepare(35, { ...LIMITS, cpus: '0' });
    await nested.release(35);
    // A sibling below the shared first component, in one hierarchy only.
    await fake.mkdir(join(root, 'memory/batch/other'));
    expect(await nested.removeParentIfUnused()).toBe(false);
    for (const d of HIERARCHIES) {
      expect(existsSync(join(root, d, 'batch/hpcq-a'))).toBe(false);
      expect(existsSync(join(root, d, 'cgroup.procs'))).toBe(true);
      if (d !== 'memory') expect(existsSync(join(root, d, 'batch'))).toBe(false);
    }
    expect(existsSync(join(root, 'memory/batch/other'))).toBe(true);
  });
});
