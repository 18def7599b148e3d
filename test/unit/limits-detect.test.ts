import { describe, expect, it } from 'vitest';
import { CgroupV1Limiter } from '../../src/exec/limits/cgroup-v1-limiter.js';
import { CgroupV2Limiter } from '../../src/exec/limits/cgroup-v2-limiter.js';
import {
  createLimiter,
  detectEnforcement,
  type DetectionInput,
  parseCgroupSelf,
  parseMountinfo,
} from '../../src/exec/limits/detect-enforcement.js';
import { RlimitLimiter } from '../../src/exec/limits/rlimit-limiter.js';

const BASE_MOUNTS = `\
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
23 27 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
24 27 0:6 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=12334432k,nr_inodes=3083608,mode=755
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
`;

/** Pure cgroup v2 (systemd unified), as on current distributions. */
const PURE_V2 = `${BASE_MOUNTS}\
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

/** This machine's hybrid layout: v1 controllers, each on its own hierarchy, plus an empty cgroup2. */
const HYBRID = `${BASE_MOUNTS}\
31 23 0:28 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:20 - cgroup2 cgroup2 rw,nsdelegate
`;

/** Debian/RHEL 7 style v1: cpu and cpuacct co-mounted (plus the usual cpu -> cpu,cpuacct symlinks). */
const COMOUNTED = `${BASE_MOUNTS}\
31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,pids
36 31 0:33 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,freezer
37 31 0:34 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
`;

const HYBRID_SELF = `\
9:name=systemd:/system.slice/hpcqd.service
8:pids:/system.slice/hpcqd.service
7:blkio:/system.slice
6:freezer:/
5:devices:/system.slice/hpcqd.service
4:memory:/system.slice/hpcqd.service
3:cpuset:/
2:cpuacct:/system.slice
1:cpu:/system.slice
0::/system.slice/hpcqd.service
`;

function input(overrides: Partial<DetectionInput> & { files?: Record<string, string>; writable?: string[] }): DetectionInput & { probed: string[] } {
  const files = overrides.files ?? {};
  const writable = overrides.writable ?? ['/sys/fs/cgroup'];
  const probed: string[] = [];
  return {
    mountinfo: '',
    cgroupSelf: '0::/\n',
    requested: 'auto',
    readFile: (path) => files[path],
    canWrite: (path) => {
      probed.push(path);
      return writable.some((w) => path === w || path.startsWith(`${w}/`));
    },
    probed,
    ...overrides,
  };
}

const V2_FILES = { '/sys/fs/cgroup/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n' };
const HYBRID_FILES = { '/sys/fs/cgroup/unified/cgroup.controllers': 'hugetlb\n' };

describe('parseMountinfo / parseCgroupSelf', () => {
  it('reads fields after the optional-field separator and undoes octal escapes', () => {
    const entries = parseMountinfo('50 31 0:40 / /mnt/my\\040cgroups rw,relatime shared:1 master:2 - cgroup cgroup rw,cpu,cpuacct\n');
    expect(entries).toEqual([{ root: '/', mountPoint: '/mnt/my cgroups', fsType: 'cgroup', superOptions: ['rw', 'cpu', 'cpuacct'] }]);
  });

  it('maps each v1 controller and the v2 hierarchy to the daemon path', () => {
    const self = parseCgroupSelf(HYBRID_SELF);
    expect(self.get('memory')).toBe('/system.slice/hpcqd.service');
    expect(self.get('cpuacct')).toBe('/system.slice');
    expect(self.get('')).toBe('/system.slice/hpcqd.service');
    expect(self.get('name=systemd')).toBe('/system.slice/hpcqd.service');
  });
});

describe('detectEnforcement', () => {
  it('pure v2 with memory, cpu and pids delegated: cgroup2', async () => {
    const inp = input({ mountinfo: PURE_V2, cgroupSelf: '0::/system.slice/hpcqd.service\n', files: V2_FILES });
    const d = await detectEnforcement(inp);
    expect(d).toEqual({
      ok: true,
      mode: 'cgroup2',
      reasons: [],
      cgroupRoot: '/sys/fs/cgroup',
      cgroupParent: '/sys/fs/cgroup/hpcq',
      controllers: ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'],
    });
    expect(inp.probed).toEqual(['/sys/fs/cgroup/hpcq']);
    expect(createLimiter(d)).toBeInstanceOf(CgroupV2Limiter);
  });

  it('hybrid host (this machine): the empty cgroup2 mount is rejected, cgroup1 chosen, with the reason', async () => {
    const d = await detectEnforcement(input({ mountinfo: HYBRID, cgroupSelf: HYBRID_SELF, files: HYBRID_FILES }));
    expect(d.ok && d.mode).toBe('cgroup1');
    if (!d.ok || d.mode !== 'cgroup1') throw new Error('unreachable');
    expect(d.v1Mounts).toEqual({
      memory: '/sys/fs/cgroup/memory',
      cpu: '/sys/fs/cgroup/cpu',
      cpuacct: '/sys/fs/cgroup/cpuacct',
      pids: '/sys/fs/cgroup/pids',
      freezer: '/sys/fs/cgroup/freezer',
      cpuset: '/sys/fs/cgroup/cpuset',
    });
    expect(d.parentName).toBe('hpcq');
    expect(d.reasons).toEqual([
      'cgroup2 at /sys/fs/cgroup/unified: lacks the cpu, memory, pids controller(s) (offers: hugetlb); they are bound to cgroup v1 hierarchies (hybrid layout)',
    ]);
    expect(createLimiter(d)).toBeInstanceOf(CgroupV1Limiter);
  });

  it('hybrid host with cgroup2 requested: an error result, not a fallback', async () => {
    const d = await detectEnforcement(input({ mountinfo: HYBRID, files: HYBRID_FILES, requested: 'cgroup2' }));
    expect(d.ok).toBe(false);
    if (d.ok) throw new Error('unreachable');
    expect(d.error).toMatch(/^enforcement cgroup2 was requested but cannot be used on this host: .*lacks the cpu, memory, pids/);
    expect(() => createLimiter(d)).toThrow(/cgroup2 was requested/);
  });

  it('hybrid host whose cgroup2 mount has no controllers file content at all', async () => {
    const d = await detectEnforcement(input({ mountinfo: HYBRID, files: { '/sys/fs/cgroup/unified/cgroup.controllers': '' } }));
    expect(d.ok && d.mode).toBe('cgroup1');
    expect(d.reasons[0]).toContain('(offers: none)');
  });

  it('co-mounted cpu,cpuacct: both controllers use the one hierarchy', async () => {
    const d = await detectEnforcement(input({ mountinfo: COMOUNTED, requested: 'cgroup1' }));
    if (!d.ok || d.mode !== 'cgroup1') throw new Error(`expected cgroup1, got ${JSON.stringify(d)}`);
    expect(d.v1Mounts.cpu).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(d.v1Mounts.cpuacct).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(d.v1Mounts.cpuset).toBeUndefined();
    expect(d.reasons).toEqual(['cgroup1: no cpuset hierarchy; jobs that name cpus will be refused']);
  });

  it('no cgroups mounted at all: rlimit, with a reason for each stronger mode', async () => {
    const d = await detectEnforcement(input({ mountinfo: BASE_MOUNTS }));
    expect(d).toEqual({
      ok: true,
      mode: 'rlimit',
      reasons: ['cgroup2: no cgroup2 filesystem is mounted', 'cgroup1: no cgroup v1 hierarchy is mounted'],
    });
    expect(createLimiter(d)).toBeInstanceOf(RlimitLimiter);
  });

  it('v1 missing the freezer: not usable (release could not kill the job reliably)', async () => {
    const noFreezer = HYBRID.split('\n').filter((l) => !l.includes('freezer')).join('\n');
    const d = await detectEnforcement(input({ mountinfo: noFreezer, files: HYBRID_FILES, requested: 'cgroup1' }));
    expect(d.ok).toBe(false);
    expect(d.reasons).toEqual(['cgroup1: the freezer controller(s) are not mounted as cgroup v1 hierarchies']);
  });

  it('unwritable hierarchies under auto: rlimit with the reasons', async () => {
    const d = await detectEnforcement(input({ mountinfo: HYBRID, files: HYBRID_FILES, writable: [] }));
    expect(d.ok && d.mode).toBe('rlimit');
    expect(d.reasons).toContain('cgroup1: cannot create cgroups in /sys/fs/cgroup/memory/hpcq (memory; not root, or read-only mount)');
    expect(d.reasons).toContain('cgroup1: cannot create cgroups in /sys/fs/cgroup/freezer/hpcq (freezer; not root, or read-only mount)');
  });

  it('unwritable hierarchies with cgroup1 requested: an error result', async () => {
    const d = await detectEnforcement(input({ mountinfo: HYBRID, files: HYBRID_FILES, writable: [], requested: 'cgroup1' }));
    expect(d.ok).toBe(false);
    if (d.ok) throw new Error('unreachable');
    expect(d.requested).toBe('cgroup1');
    expect(d.error).toContain('cannot create cgroups in /sys/fs/cgroup/memory/hpcq');
  });

  it('one unwritable v1 hierarchy is enough to reject cgroup1', async () => {
    const writable = ['/sys/fs/cgroup/memory', '/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpuacct', '/sys/fs/cgroup/freezer', '/sys/fs/cgroup/cpuset'];
    const d = await detectEnforcement(input({ mountinfo: HYBRID, files: HYBRID_FILES, writable }));
    expect(d.ok && d.mode).toBe('rlimit');
    expect(d.reasons.at(-1)).toBe('cgroup1: cannot create cgroups in /sys/fs/cgroup/pids/hpcq (pids; not root, or read-only mount)');
  });

  it('v2 not delegated (parent not writable) falls to the next mode', async () => {
    const d = await detectEnforcement(input({ mountinfo: PURE_V2, files: V2_FILES, writable: [] }));
    expect(d).toEqual({
      ok: true,
      mode: 'rlimit',
      reasons: [
        'cgroup2 at /sys/fs/cgroup: cannot create cgroups in /sys/fs/cgroup/hpcq (not root, or the subtree is not delegated)',
        'cgroup1: no cgroup v1 hierarchy is mounted',
      ],
    });
  });

  it('v2 where the daemon itself runs inside the job parent is refused', async () => {
    const d = await detectEnforcement(
      input({ mountinfo: PURE_V2, files: V2_FILES, cgroupSelf: '0::/hpcq/daemon\n', requested: 'cgroup2' }),
    );
    expect(d.ok).toBe(false);
    expect(d.reasons).toEqual(['cgroup2 at /sys/fs/cgroup: the daemon itself runs in /sys/fs/cgroup/hpcq/daemon, inside the job parent /sys/fs/cgroup/hpcq']);
  });

  it('v2 in a cgroup namespace whose root holds processes and lacks the controllers is refused', async () => {
    const files = {
      ...V2_FILES,
      '/sys/fs/cgroup/cgroup.type': 'domain\n', // not the real root: the no-internal-processes rule applies
      '/sys/fs/cgroup/cgroup.subtree_control': '\n',
      '/sys/fs/cgroup/cgroup.procs': '1\n57\n',
    };
    const d = await detectEnforcement(input({ mountinfo: PURE_V2, files }));
    expect(d.ok && d.mode).toBe('rlimit');
    expect(d.reasons[0]).toMatch(/\/sys\/fs\/cgroup has processes of its own, so Linux refuses to enable cpu, memory, pids below it/);
  });

  it('v2 with a custom parent name probes that parent', async () => {
    const inp = input({ mountinfo: PURE_V2, files: V2_FILES, parentName: 'hpcq.slice/jobs' });
    const d = await detectEnforcement(inp);
    expect(d.ok && d.mode === 'cgroup2' && d.cgroupParent).toBe('/sys/fs/cgroup/hpcq.slice/jobs');
    expect(inp.probed).toEqual(['/sys/fs/cgroup/hpcq.slice/jobs']);
  });

  it('rejects a parent name that leaves the hierarchy', async () => {
    const d = await detectEnforcement(input({ mountinfo: PURE_V2, files: V2_FILES, parentName: '../etc' }));
    expect(d.ok).toBe(false);
  });

  it('rlimit requested: rlimit, without probing anything', async () => {
    const inp = input({ mountinfo: HYBRID, files: HYBRID_FILES, requested: 'rlimit' });
    const d = await detectEnforcement(inp);
    expect(d).toEqual({ ok: true, mode: 'rlimit', reasons: ['rlimit requested by configuration'] });
    expect(inp.probed).toEqual([]);
  });

  it('accepts an async canWrite', async () => {
    const d = await detectEnforcement({
      ...input({ mountinfo: HYBRID, files: HYBRID_FILES }),
      canWrite: async () => true,
    });
    expect(d.ok && d.mode).toBe('cgroup1');
  });
});
