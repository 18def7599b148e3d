/**
 * CgroupV2Limiter against a FAKE cgroupfs: plain files in a temp dir, with a small fake "kernel"
 * (FakeCgroup2Fs) that does what the real one does on mkdir (creates the interface files), on
 * writes to cgroup.subtree_control (merges "+ctrl" words), on cgroup.kill (empties the cgroup) and
 * on rmdir (refuses a populated cgroup or one with children).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CgroupFs } from '../../src/exec/limits/cgroup-fs.js';
import { CgroupV2Limiter } from '../../src/exec/limits/cgroup-v2-limiter.js';
import { CgroupBusyError, type JobLimits, LimitSetupError, MIB } from '../../src/exec/limits/limiter.js';

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

const JOB_FILES: Record<string, string> = {
  'cgroup.procs': '',
  'cgroup.events': 'populated 0\nfrozen 0\n',
  'cgroup.kill': '',
  'cgroup.subtree_control': '',
  'memory.max': 'max\n',
  'memory.swap.max': 'max\n',
  'memory.oom.group': '0\n',
  'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
  'memory.peak': '0\n',
  'cpu.max': 'max 100000\n',
  'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n',
  'pids.max': 'max\n',
  'cpuset.cpus': '',
};

class FakeCgroup2Fs implements CgroupFs {
  readonly writes: Array<[path: string, value: string]> = [];
  /** mkdir calls refused because the parent directory did not exist. */
  mkdirsWithoutParent = 0;
  /** Interface files a new cgroup does NOT get (simulates an older kernel). */
  missingFiles = new Set<string>();
  /** When false, cgroup.kill leaves the processes alive (a process stuck in D state). */
  killWorks = true;
  /** Files whose writes fail with this errno. */
  failingWrites = new Map<string, string>();

  constructor(readonly root: string) {}

  async read(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  async write(path: string, value: string): Promise<void> {
    if (!existsSync(path)) throw errno('ENOENT', path);
    const failure = this.failingWrites.get(basename(path));
    if (failure) throw errno(failure, path);
    this.writes.push([path.slice(this.root.length), value]);
    const name = basename(path);
    if (name === 'cgroup.subtree_control') {
      const enabled = new Set((await readFile(path, 'utf8')).split(/\s+/).filter(Boolean));
      for (const word of value.split(/\s+/).filter(Boolean)) {
        if (word.startsWith('+')) enabled.add(word.slice(1));
        else if (word.startsWith('-')) enabled.delete(word.slice(1));
      }
      await writeFile(path, `${[...enabled].join(' ')}\n`);
    } else if (name === 'cgroup.kill') {
      if (value.trim() === '1' && this.killWorks) {
        await writeFile(join(dirname(path), 'cgroup.procs'), '');
        await writeFile(join(dirname(path), 'cgroup.events'), 'populated 0\nfrozen 0\n');
      }
    } else {
      await writeFile(path, value);
    }
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
    const parentSubtree = readFileSync(join(dirname(path), 'cgroup.subtree_control'), 'utf8');
    writeFileSync(join(path, 'cgroup.controllers'), parentSubtree);
    for (const [name, content] of Object.entries(JOB_FILES)) {
      if (!this.missingFiles.has(name)) writeFileSync(join(path, name), content);
    }
    return true;
  }

  async rmdir(path: string): Promise<boolean> {
    if (!existsSync(path)) return false;
    const entries = await readdir(path, { withFileTypes: true });
    if (entries.some((e) => e.isDirectory())) throw errno('EBUSY', path);
    if (((await this.read(join(path, 'cgroup.procs'))) ?? '').trim() !== '') throw errno('EBUSY', path);
    await rm(path, { recursive: true });
    return true;
  }

  async listDirs(path: string): Promise<string[]> {
    if (!existsSync(path) || !(await stat(path)).isDirectory()) return [];
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  }
}

const LIMITS: JobLimits = {
  cores: 2,
  memoryLimitBytes: 64 * MIB,
  timeLimitSeconds: 600,
  resourceLimits: { nofile: 1024, fsizeMb: 100, coreMb: 0 },
};

let root: string;
let fake: FakeCgroup2Fs;
let limiter: CgroupV2Limiter;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hpcq-fake-cg2-'));
  // The host: a cgroup2 root offering the usual controllers, and the parent pre-created.
  writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  writeFileSync(join(root, 'cgroup.subtree_control'), 'memory pids\n');
  mkdirSync(join(root, 'hpcq'));
  writeFileSync(join(root, 'hpcq', 'cgroup.controllers'), 'memory pids\n');
  writeFileSync(join(root, 'hpcq', 'cgroup.subtree_control'), '');
  writeFileSync(join(root, 'hpcq', 'cgroup.procs'), '');
  fake = new FakeCgroup2Fs(root);
  limiter = new CgroupV2Limiter({ root, fs: fake, releaseTimeoutMs: 200, killPid: () => undefined });
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function file(rel: string): string {
  return readFileSync(join(root, rel), 'utf8');
}

describe('CgroupV2Limiter.prepare', () => {
  it('enables the controllers down to the parent and writes the exact limits', async () => {
    const placement = await limiter.prepare(7, LIMITS);

    expect(fake.writes).toEqual([
      ['/cgroup.subtree_control', '+cpu'],
      ['/cgroup.subtree_control', '+cpuset'],
      ['/hpcq/cgroup.subtree_control', '+cpu +memory +pids'],
      ['/hpcq/cgroup.subtree_control', '+cpuset'],
      ['/hpcq/job_7/pids.max', '4096'],
      ['/hpcq/job_7/memory.max', '67108864'],
      ['/hpcq/job_7/memory.swap.max', '0'],
      ['/hpcq/job_7/memory.oom.group', '1'],
      ['/hpcq/job_7/cpu.max', '200000 100000'],
    ]);
    expect(file('cgroup.subtree_control')).toBe('memory pids cpu cpuset\n');
    expect(file('hpcq/cgroup.subtree_control')).toBe('cpu memory pids cpuset\n');
    expect(file('hpcq/job_7/memory.max')).toBe('67108864');
    expect(file('hpcq/job_7/memory.swap.max')).toBe('0');
    expect(file('hpcq/job_7/memory.oom.group')).toBe('1');
    expect(file('hpcq/job_7/cpu.max')).toBe('200000 100000');
    expect(file('hpcq/job_7/pids.max')).toBe('4096');

    expect(placement).toEqual({
      cgroupProcsFiles: [join(root, 'hpcq/job_7/cgroup.procs')],
      kill: { kind: 'cgroup2', dir: join(root, 'hpcq/job_7') },
      rlimits: { NOFILE: 1024, FSIZE: 100 * MIB, CORE: 0 },
      rlimitsHard: {},
      accountingFiles: ['memory.events', 'cpu.stat', 'memory.peak'].map((f) => join(root, 'hpcq/job_7', f)),
      cgroupDirs: [join(root, 'hpcq/job_7')],
    });
  });

  it('takes pids from resource_limit, fractional cores, nproc as an rlimit, and cpus', async () => {
    const placement = await limiter.prepare(8, {
      ...LIMITS,
      cores: 0.5,
      cpus: '0-1',
      resourceLimits: { pids: 20, nproc: 100 },
    });
    expect(file('hpcq/job_8/pids.max')).toBe('20');
    expect(file('hpcq/job_8/cpu.max')).toBe('50000 100000');
    expect(file('hpcq/job_8/cpuset.cpus')).toBe('0-1');
    expect(placement.rlimits).toEqual({ NPROC: 100 });
  });

  it('is idempotent: a second prepare rewrites the limits and returns the same placement', async () => {
    const first = await limiter.prepare(9, LIMITS);
    const second = await limiter.prepare(9, { ...LIMITS, memoryLimitBytes: 128 * MIB });
    expect(second).toEqual(first);
    expect(file('hpcq/job_9/memory.max')).toBe(String(128 * MIB));
    // The parent is set up once per limiter.
    expect(fake.writes.filter(([p]) => p === '/hpcq/cgroup.subtree_control')).toHaveLength(2);
  });

  it('skips memory.swap.max and memory.oom.group where the kernel has none', async () => {
    fake.missingFiles = new Set(['memory.swap.max', 'memory.oom.group']);
    await limiter.prepare(10, LIMITS);
    const written = fake.writes.map(([p]) => p);
    expect(written).not.toContain('/hpcq/job_10/memory.swap.max');
    expect(written).not.toContain('/hpcq/job_10/memory.oom.group');
    expect(file('hpcq/job_10/memory.max')).toBe('67108864');
  });

  it('names the same cgroup when its root and parent are given with trailing slashes and dot segments', async () => {
    // Job paths are built by plain concatenation from the root and parent normalized once.
    const expected = await limiter.prepare(5, LIMITS, { deferSetup: true });
    const other = new CgroupV2Limiter({ root: `${root}/./`, parentDir: `${root}//hpcq/`, fs: fake });
    const placement = await other.prepare(5, LIMITS, { deferSetup: true });
    expect(placement).toEqual(expected);
    expect(placement.cgroupDirs).toEqual([join(root, 'hpcq/job_5')]);
  });

  it('creates a missing parent (and its ancestors) under the root', async () => {
    const nested = new CgroupV2Limiter({ root, parentDir: join(root, 'hpcq.slice', 'jobs'), fs: fake });
    // The fake kernel gives new dirs interface files but no subtree_control content yet.
    await nested.prepare(1, LIMITS);
    expect(file('hpcq.slice/cgroup.subtree_control')).toBe('cpu memory pids cpuset\n');
    expect(file('hpcq.slice/jobs/cgroup.subtree_control')).toBe('cpu memory pids cpuset\n');
    expect(existsSync(join(root, 'hpcq.slice/jobs/job_1'))).toBe(true);
  });

  it('removes the job dir it created when configuring fails, and says which file', async () => {
    fake.failingWrites.set('cpu.max', 'EINVAL');
    await expect(limiter.prepare(11, LIMITS)).rejects.toThrow(LimitSetupError);
    await expect(limiter.prepare(11, LIMITS)).rejects.toThrow(/cannot write "200000 100000" to .*job_11\/cpu.max: EINVAL/);
    expect(existsSync(join(root, 'hpcq/job_11'))).toBe(false);
  });

  it('refuses a hybrid root whose cgroup2 has no memory/cpu/pids', async () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'hugetlb\n');
    await expect(limiter.prepare(12, LIMITS)).rejects.toThrow(/lacks the cpu, memory, pids controller\(s\) \(offers: hugetlb\)/);
    expect(existsSync(join(root, 'hpcq/job_12'))).toBe(false);
  });

  it('refuses cpus when cpuset cannot be enabled, and invalid limits', async () => {
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu io memory pids\n');
    await expect(limiter.prepare(13, { ...LIMITS, cpus: '0' })).rejects.toThrow(/cpuset controller is not available/);
    await expect(limiter.prepare(13, { ...LIMITS, cores: 0 })).rejects.toThrow(/cores must be a positive number/);
    await expect(limiter.prepare(13, { ...LIMITS, cpus: '0;rm' })).rejects.toThrow(/cpus must be a CPU list/);
    await expect(limiter.prepare(-1, LIMITS)).rejects.toThrow(/invalid job id/);
  });

  it('rejects a parent outside the root', () => {
    expect(() => new CgroupV2Limiter({ root, parentDir: '/tmp/elsewhere' })).toThrow(/must be a directory below/);
    expect(() => new CgroupV2Limiter({ root, parentDir: root })).toThrow(/must be a directory below/);
  });
});

describe('CgroupV2Limiter.collect', () => {
  it('reads OOM kills from memory.events, the peak from memory.peak and CPU from cpu.stat', async () => {
    await limiter.prepare(20, LIMITS);
    writeFileSync(join(root, 'hpcq/job_20/memory.events'), 'low 0\nhigh 0\nmax 37\noom 2\noom_kill 1\noom_group_kill 0\n');
    writeFileSync(join(root, 'hpcq/job_20/memory.peak'), '67104768\n');
    writeFileSync(
      join(root, 'hpcq/job_20/cpu.stat'),
      'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 20\nnr_throttled 12\nthrottled_usec 900000\n',
    );
    expect(await limiter.collect(20)).toEqual({
      userCpuUsec: 2_000_000,
      systemCpuUsec: 500_000,
      peakMemoryBytes: 67_104_768,
      oomKills: 1,
      oomKillsCounted: true,
      memoryLimitHits: 37,
      totalCpuUsec: 2_500_000,
      cpuThrottledPeriods: 12,
    });
  });

  it('counts a group kill, and reports 0 peak where the kernel has no memory.peak', async () => {
    fake.missingFiles = new Set(['memory.peak']);
    await limiter.prepare(21, LIMITS);
    writeFileSync(join(root, 'hpcq/job_21/memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 3\noom_group_kill 1\n');
    const report = await limiter.collect(21);
    expect(report?.oomKills).toBe(3);
    expect(report?.peakMemoryBytes).toBe(0);
  });

  it('returns undefined for a job without a cgroup', async () => {
    expect(await limiter.collect(404)).toBeUndefined();
  });
});

describe('CgroupV2Limiter.release', () => {
  it('writes cgroup.kill when populated, waits for populated 0, and removes the dir', async () => {
    await limiter.prepare(30, LIMITS);
    writeFileSync(join(root, 'hpcq/job_30/cgroup.procs'), '4242\n4243\n');
    writeFileSync(join(root, 'hpcq/job_30/cgroup.events'), 'populated 1\nfrozen 0\n');
    expect(await limiter.listJobIds()).toEqual([30]);

    await limiter.release(30);

    expect(fake.writes.at(-1)).toEqual(['/hpcq/job_30/cgroup.kill', '1']);
    expect(existsSync(join(root, 'hpcq/job_30'))).toBe(false);
    expect(await limiter.listJobIds()).toEqual([]);
  });

  it('does not write cgroup.kill into an empty cgroup', async () => {
    await limiter.prepare(31, LIMITS);
    const before = fake.writes.length;
    await limiter.release(31);
    expect(fake.writes.length).toBe(before);
    expect(existsSync(join(root, 'hpcq/job_31'))).toBe(false);
  });

  it('is idempotent and tolerates a dir that is already gone', async () => {
    await limiter.prepare(32, LIMITS);
    await limiter.release(32);
    expect(existsSync(join(root, 'hpcq/job_32'))).toBe(false);
    const writes = fake.writes.length;
    await expect(limiter.release(32)).resolves.toBeUndefined();
    await expect(limiter.release(999)).resolves.toBeUndefined();
    expect(fake.writes.length).toBe(writes);
    expect(await limiter.listJobIds()).toEqual([]);
  });

  it('removes child cgroups first', async () => {
    await limiter.prepare(33, LIMITS);
    await fake.mkdir(join(root, 'hpcq/job_33/step_0'));
    await limiter.release(33);
    expect(existsSync(join(root, 'hpcq/job_33'))).toBe(false);
  });

  it('rejects with CgroupBusyError when processes survive the bounded wait, and keeps the dir', async () => {
    await limiter.prepare(34, LIMITS);
    fake.killWorks = false;
    writeFileSync(join(root, 'hpcq/job_34/cgroup.procs'), '4242\n');
    writeFileSync(join(root, 'hpcq/job_34/cgroup.events'), 'populated 1\nfrozen 0\n');
    const started = Date.now();
    await expect(limiter.release(34)).rejects.toThrow(CgroupBusyError);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(existsSync(join(root, 'hpcq/job_34'))).toBe(true);
    expect(fake.writes.filter(([p]) => p === '/hpcq/job_34/cgroup.kill').length).toBeGreaterThanOrEqual(1);
  });

  it('falls back to SIGKILL of every listed pid where cgroup.kill is missing (Linux < 5.14)', async () => {
    const killed: number[] = [];
    const old = new CgroupV2Limiter({
      root,
      fs: fake,
      killPid: (pid) => {
        killed.push(pid);
        writeFileSync(join(root, 'hpcq/job_35/cgroup.procs'), '');
        writeFileSync(join(root, 'hpcq/job_35/cgroup.events'), 'populated 0\nfrozen 0\n');
      },
    });
    fake.missingFiles = new Set(['cgroup.kill']);
    await old.prepare(35, LIMITS);
    writeFileSync(join(root, 'hpcq/job_35/cgroup.procs'), '5151\n');
    writeFileSync(join(root, 'hpcq/job_35/cgroup.events'), 'populated 1\nfrozen 0\n');
    await old.release(35);
    expect(killed).toEqual([5151]);
    expect(existsSync(join(root, 'hpcq/job_35'))).toBe(false);
  });
});

describe('CgroupV2Limiter.listJobIds', () => {
  it('lists job dirs only, in order', async () => {
    await limiter.prepare(3, LIMITS);
    await limiter.prepare(12, LIMITS);
    await limiter.prepare(1, LIMITS);
    mkdirSync(join(root, 'hpcq/not-a-job'));
    mkdirSync(join(root, 'hpcq/job_x'));
    expect(await limiter.listJobIds()).toEqual([1, 3, 12]);
  });

  it('is empty when the parent does not exist yet', async () => {
    const fresh = new CgroupV2Limiter({ root, parentDir: join(root, 'nothing-here'), fs: fake });
    expect(await fresh.listJobIds()).toEqual([]);
  });
});

describe('CgroupV2Limiter.removeParentIfUnused', () => {
  it('removes the parent once no job is left, never the root', async () => {
    await limiter.prepare(40, LIMITS);
    await limiter.release(40);
    expect(await limiter.removeParentIfUnused()).toBe(true);
    expect(existsSync(join(root, 'hpcq'))).toBe(false);
    expect(file('cgroup.controllers')).toBe('cpuset cpu io memory pids\n');
    expect(await limiter.removeParentIfUnused()).toBe(true); // nothing left to remove
  });

  it('keeps the parent, and leaves the job cgroup untouched, while a job cgroup exists', async () => {
    await limiter.prepare(41, LIMITS);
    writeFileSync(join(root, 'hpcq/job_41/cgroup.procs'), '4242\n');
    writeFileSync(join(root, 'hpcq/job_41/cgroup.events'), 'populated 1\nfrozen 0\n');
    fake.writes.length = 0;
    expect(await limiter.removeParentIfUnused()).toBe(false);
    expect(file('hpcq/job_41/cgroup.procs')).toBe('4242\n');
    expect(file('hpcq/job_41/memory.max')).toBe('67108864');
    expect(fake.writes).toEqual([]);
    expect(await limiter.listJobIds()).toEqual([41]);
  });

  it('a prepare() after the removal sets the parent up again', async () => {
    await limiter.prepare(42, LIMITS);
    await limiter.release(42);
    expect(await limiter.removeParentIfUnused()).toBe(true);
    await limiter.prepare(43, { ...LIMITS, cpus: '1' });
    // Set up as new, not through the recovery from a parent removed behind its back.
    expect(fake.mkdirsWithoutParent).toBe(0);
    expect(file('hpcq/cgroup.subtree_control')).toBe('cpu memory pids cpuset\n');
    expect(file('hpcq/job_43/memory.max')).toBe('67108864');
    expect(file('hpcq/job_43/cpuset.cpus')).toBe('1');
  });

  it('with a nested parent removes only its own components, deepest first', async () => {
    const nested = new CgroupV2Limiter({ root, parentDir: join(root, 'hpcq.slice', 'jobs'), fs: fake });
    await nested.prepare(44, LIMITS);
    await nested.release(44);
    await fake.mkdir(join(root, 'hpcq.slice/other')); // a sibling below the shared component
    expect(await nested.removeParentIfUnused()).toBe(false);
    expect(existsSync(join(root, 'hpcq.slice/jobs'))).toBe(false);
    expect(existsSync(join(root, 'hpcq.slice/other'))).toBe(true);
    expect(existsSync(join(root, 'hpcq'))).toBe(true); // another daemon's parent

    await fake.rmdir(join(root, 'hpcq.slice/other'));
    expect(await nested.removeParentIfUnused()).toBe(true);
    expect(existsSync(join(root, 'hpcq.slice'))).toBe(false);
    expect(existsSync(join(root, 'cgroup.controllers'))).toBe(true);
  });
});
