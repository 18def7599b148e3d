/**
 * Decides, once at daemon start, how job limits are enforced on this host, and builds the limiter.
 *
 * Why: cgroup layouts differ (pure v2; v1; hybrid = v1 controllers plus a cgroup2 mount that holds
 * none of them; containers without delegation), and running jobs unlimited because of a guess is
 * the failure this module exists to prevent (RELIABILITY L15).
 *
 * Rules (detectEnforcement is pure; detectEnforcementOnHost does the I/O):
 * - cgroup2 is usable when a cgroup2 mount offers the memory, cpu and pids controllers (its
 *   `cgroup.controllers`), the intended parent `<mount>/<parentName>` is writable (mkdir probe), the
 *   daemon does not itself run inside that parent, and no existing non-root directory on the way
 *   to the parent holds processes while lacking the controllers (Linux would refuse to enable them:
 *   "no internal processes").
 * - cgroup1 is usable when the memory, cpu, cpuacct, pids and freezer controllers are each mounted
 *   as a v1 hierarchy (co-mounts like `cpu,cpuacct` count), `<mount>/<parentName>` is writable in
 *   each, and the daemon does not run inside one of them. cpuset is used when mounted and writable.
 * - `auto` picks cgroup2, else cgroup1, else rlimit, and `reasons` says why each stronger mode was
 *   rejected. A HYBRID host therefore gets cgroup1: its cgroup2 mount has no memory/cpu/pids.
 * - An explicitly requested mode that is unusable gives `{ ok: false }` with the reasons — never a
 *   silent fallback. The daemon then refuses to start (or holds jobs under require_enforcement).
 *   Note: `auto` resolving to rlimit is `ok`; whether that is acceptable is the daemon's policy
 *   (require_enforcement refuses it unless the admin asked for rlimit).
 */
import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { EnforcementMode } from '../../core/job.js';
import type { EnforcementRequest } from '../../core/policy.js';
import { CgroupV1Limiter, type CgroupV1Mounts } from './cgroup-v1-limiter.js';
import { CGROUP2_REQUIRED_CONTROLLERS, CgroupV2Limiter } from './cgroup-v2-limiter.js';
import { type Limiter, LimitSetupError, parseWords } from './limiter.js';
import { RlimitLimiter } from './rlimit-limiter.js';

export interface DetectionInput {
  /** Contents of /proc/self/mountinfo. */
  mountinfo: string;
  /** Contents of /proc/self/cgroup (the daemon's own cgroups). */
  cgroupSelf: string;
  /** Whether the daemon can create cgroups in this directory (which need not exist yet). */
  canWrite: (path: string) => boolean | Promise<boolean>;
  /** Reads a cgroupfs file such as cgroup.controllers; undefined when it does not exist. */
  readFile: (path: string) => string | undefined | Promise<string | undefined>;
  requested: EnforcementRequest;
  /** The job parent below each cgroup mount. Default `hpcq`. */
  parentName?: string;
}

export type EnforcementDetection =
  | {
      ok: true;
      mode: 'cgroup2';
      /** Why stronger modes were rejected, and notes on the chosen one. */
      reasons: string[];
      /** Mount point of the cgroup2 hierarchy. */
      cgroupRoot: string;
      /** Directory that will hold the job cgroups. */
      cgroupParent: string;
      /** Controllers the hierarchy offers. */
      controllers: string[];
    }
  | { ok: true; mode: 'cgroup1'; reasons: string[]; v1Mounts: CgroupV1Mounts; parentName: string }
  | { ok: true; mode: 'rlimit'; reasons: string[] }
  | { ok: false; requested: EnforcementRequest; error: string; reasons: string[] };

/** One line of /proc/self/mountinfo, the fields detection needs. */
export interface MountEntry {
  /** Path inside the filesystem that is mounted (for cgroups: the hierarchy's subtree). */
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

const V1_REQUIRED = ['memory', 'cpu', 'cpuacct', 'pids', 'freezer'] as const;

/** Undoes mountinfo's octal escapes (`\040` for space). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6 || fields.length < dash + 4) continue;
    entries.push({
      root: unescapeMountField(fields[3]!),
      mountPoint: unescapeMountField(fields[4]!),
      fsType: fields[dash + 1]!,
      superOptions: fields[dash + 3]!.split(','),
    });
  }
  return entries;
}

/** /proc/self/cgroup: hierarchy controllers ('' for v2) -> the daemon's path in it. */
export function parseCgroupSelf(text: string): Map<string, string> {
  const paths = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const controllers = m[1]!.split(',');
    for (const c of controllers) paths.set(c, m[2]!);
  }
  return paths;
}

/** Whether `inner` is `outer` or below it. */
function isWithin(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep));
}

/** The directory of the daemon's cgroup `selfPath` under a mount of hierarchy subtree `mountRoot`. */
function selfDir(mount: MountEntry, selfPath: string | undefined): string | undefined {
  if (selfPath === undefined || !isWithin(selfPath, mount.root)) return undefined;
  return join(mount.mountPoint, relative(mount.root, selfPath));
}

type Verdict<T> = { usable: true; value: T; notes: string[] } | { usable: false; reasons: string[] };

interface Cgroup2Choice {
  cgroupRoot: string;
  cgroupParent: string;
  controllers: string[];
}

async function checkCgroup2(
  input: DetectionInput,
  mounts: MountEntry[],
  parentName: string,
  self: Map<string, string>,
): Promise<Verdict<Cgroup2Choice>> {
  const v2Mounts = mounts.filter((m) => m.fsType === 'cgroup2');
  if (v2Mounts.length === 0) return { usable: false, reasons: ['cgroup2: no cgroup2 filesystem is mounted'] };
  const reasons: string[] = [];
  for (const mount of v2Mounts) {
    const at = `cgroup2 at ${mount.mountPoint}`;
    const controllers = parseWords(await input.readFile(join(mount.mountPoint, 'cgroup.controllers')));
    const missing = CGROUP2_REQUIRED_CONTROLLERS.filter((c) => !controllers.includes(c));
    if (missing.length > 0) {
      const hybrid = mounts.some((m) => m.fsType === 'cgroup' && missing.some((c) => m.superOptions.includes(c)));
      reasons.push(
        `${at}: lacks the ${missing.join(', ')} controller(s) (offers: ${controllers.join(' ') || 'none'})` +
          (hybrid ? '; they are bound to cgroup v1 hierarchies (hybrid layout)' : ''),
      );
      continue;
    }
    const parentDir = join(mount.mountPoint, parentName);
    const daemonDir = selfDir(mount, self.get(''));
    if (daemonDir !== undefined && isWithin(daemonDir, parentDir)) {
      reasons.push(`${at}: the daemon itself runs in ${daemonDir}, inside the job parent ${parentDir}`);
      continue;
    }
    // Directories whose subtree_control we will write: the mount root (if it is not the real root,
    // which has no cgroup.type) and every existing directory down to the parent.
    const chain = [mount.mountPoint];
    for (const part of parentName.split(sep)) chain.push(join(chain[chain.length - 1]!, part));
    let blocked: string | undefined;
    for (const [i, dir] of chain.entries()) {
      if (i === 0 && (await input.readFile(join(dir, 'cgroup.type'))) === undefined) continue;
      const subtree = await input.readFile(join(dir, 'cgroup.subtree_control'));
      if (subtree === undefined) break; // does not exist yet: we create it empty
      const lacking = CGROUP2_REQUIRED_CONTROLLERS.filter((c) => !parseWords(subtree).includes(c));
      if (lacking.length > 0 && parseWords(await input.readFile(join(dir, 'cgroup.procs'))).length > 0) {
        blocked = `${at}: ${dir} has processes of its own, so Linux refuses to enable ${lacking.join(', ')} below it (no internal processes)`;
        break;
      }
    }
    if (blocked !== undefined) {
      reasons.push(blocked);
      continue;
    }
    if (!(await input.canWrite(parentDir))) {
      reasons.push(`${at}: cannot create cgroups in ${parentDir} (not root, or the subtree is not delegated)`);
      continue;
    }
    return { usable: true, value: { cgroupRoot: mount.mountPoint, cgroupParent: parentDir, controllers }, notes: [] };
  }
  return { usable: false, reasons };
}

async function checkCgroup1(
  input: DetectionInput,
  mounts: MountEntry[],
  parentName: string,
  self: Map<string, string>,
): Promise<Verdict<CgroupV1Mounts>> {
  const v1 = mounts.filter((m) => m.fsType === 'cgroup');
  if (v1.length === 0) return { usable: false, reasons: ['cgroup1: no cgroup v1 hierarchy is mounted'] };
  const find = (controller: string): MountEntry | undefined => {
    const candidates = v1.filter((m) => m.superOptions.includes(controller));
    return candidates.find((m) => m.root === '/') ?? candidates[0];
  };
  const missing = V1_REQUIRED.filter((c) => find(c) === undefined);
  if (missing.length > 0) {
    return { usable: false, reasons: [`cgroup1: the ${missing.join(', ')} controller(s) are not mounted as cgroup v1 hierarchies`] };
  }
  const checked = new Map<string, boolean>();
  /** Why the hierarchy of `controller` cannot hold job cgroups; undefined when it can. */
  const rejection = async (controller: string, entry: MountEntry): Promise<string | undefined> => {
    const parentDir = join(entry.mountPoint, parentName);
    const daemonDir = selfDir(entry, self.get(controller));
    if (daemonDir !== undefined && isWithin(daemonDir, parentDir)) {
      return `cgroup1: the daemon itself runs in ${daemonDir}, inside the job parent ${parentDir}`;
    }
    let writable = checked.get(parentDir);
    if (writable === undefined) {
      writable = await input.canWrite(parentDir);
      checked.set(parentDir, writable);
    }
    return writable ? undefined : `cgroup1: cannot create cgroups in ${parentDir} (${controller}; not root, or read-only mount)`;
  };
  const reasons: string[] = [];
  const found = {} as Record<(typeof V1_REQUIRED)[number], string>;
  for (const c of V1_REQUIRED) {
    const entry = find(c)!;
    found[c] = entry.mountPoint;
    const why = await rejection(c, entry);
    if (why !== undefined && !reasons.includes(why)) reasons.push(why);
  }
  if (reasons.length > 0) return { usable: false, reasons };
  const result: CgroupV1Mounts = { ...found };
  const notes: string[] = [];
  const cpusetEntry = find('cpuset');
  const cpusetRejection = cpusetEntry === undefined ? 'cgroup1: no cpuset hierarchy' : await rejection('cpuset', cpusetEntry);
  if (cpusetEntry !== undefined && cpusetRejection === undefined) result.cpuset = cpusetEntry.mountPoint;
  else notes.push(`${cpusetRejection}; jobs that name cpus will be refused`);
  return { usable: true, value: result, notes };
}

/** Pure: chooses the enforcement mode from the host's mount table and probes. */
export async function detectEnforcement(input: DetectionInput): Promise<EnforcementDetection> {
  const parentName = input.parentName ?? 'hpcq';
  if (parentName === '' || parentName.startsWith('/') || parentName.split('/').includes('..')) {
    return { ok: false, requested: input.requested, error: `invalid cgroup parent name ${JSON.stringify(parentName)}`, reasons: [] };
  }
  const { requested } = input;
  if (requested === 'rlimit') return { ok: true, mode: 'rlimit', reasons: ['rlimit requested by configuration'] };
  const mounts = parseMountinfo(input.mountinfo);
  const self = parseCgroupSelf(input.cgroupSelf);
  const reasons: string[] = [];
  const refuse = (mode: EnforcementMode): EnforcementDetection => ({
    ok: false,
    requested,
    error: `enforcement ${mode} was requested but cannot be used on this host: ${reasons.join('; ')}`,
    reasons,
  });

  if (requested === 'auto' || requested === 'cgroup2') {
    const v2 = await checkCgroup2(input, mounts, parentName, self);
    if (v2.usable) return { ok: true, mode: 'cgroup2', reasons: [...reasons, ...v2.notes], ...v2.value };
    reasons.push(...v2.reasons);
    if (requested === 'cgroup2') return refuse('cgroup2');
  }
  const v1 = await checkCgroup1(input, mounts, parentName, self);
  if (v1.usable) return { ok: true, mode: 'cgroup1', reasons: [...reasons, ...v1.notes], v1Mounts: v1.value, parentName };
  reasons.push(...v1.reasons);
  if (requested === 'cgroup1') return refuse('cgroup1');
  return { ok: true, mode: 'rlimit', reasons };
}

export interface HostDetectionOptions {
  requested: EnforcementRequest;
  /** Default `hpcq`. */
  parentName?: string;
  /** Default `/proc/self`: where mountinfo and cgroup are read. */
  procSelf?: string;
}

/**
 * Probes writability by creating a directory: a probe child of `dir` when it exists, else `dir`
 * itself (and missing ancestors). Removes everything it created.
 */
export async function probeCgroupWritable(dir: string): Promise<boolean> {
  const created: string[] = [];
  try {
    const first = await mkdir(dir, { recursive: true });
    if (first !== undefined) {
      for (let d = dir; isWithin(d, first); d = join(d, '..')) created.push(d);
    } else {
      const probe = join(dir, `hpcq_probe_${process.pid}`);
      await mkdir(probe);
      created.push(probe);
    }
    return true;
  } catch {
    return false;
  } finally {
    for (const d of created) await rmdir(d).catch(() => undefined);
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads /proc/self/mountinfo and /proc/self/cgroup, probes the parents, and detects. */
export async function detectEnforcementOnHost(options: HostDetectionOptions): Promise<EnforcementDetection> {
  const procSelf = options.procSelf ?? '/proc/self';
  return detectEnforcement({
    mountinfo: (await readIfExists(join(procSelf, 'mountinfo'))) ?? '',
    cgroupSelf: (await readIfExists(join(procSelf, 'cgroup'))) ?? '',
    canWrite: probeCgroupWritable,
    readFile: readIfExists,
    requested: options.requested,
    ...(options.parentName !== undefined ? { parentName: options.parentName } : {}),
  });
}

export interface LimiterOptions {
  /** pids.max (cgroups) / RLIMIT_NPROC (rlimit) of a job that sets none. Default 4096. */
  defaultPidsMax?: number;
  /** Bound on release()'s wait for a job's processes to die, ms. Default 10000. */
  releaseTimeoutMs?: number;
  /** rlimit mode: which rlimit carries the memory limit. Default 'AS'. */
  memoryRlimit?: 'AS' | 'DATA';
  /** rlimit mode: CPU seconds between SIGXCPU and SIGKILL. Default 30. */
  cpuKillGraceSeconds?: number;
}

/** Builds the limiter for a successful detection; throws LimitSetupError for a refused one. */
export function createLimiter(detection: EnforcementDetection, options: LimiterOptions = {}): Limiter {
  if (!detection.ok) throw new LimitSetupError(detection.error);
  const common = {
    ...(options.defaultPidsMax !== undefined ? { defaultPidsMax: options.defaultPidsMax } : {}),
    ...(options.releaseTimeoutMs !== undefined ? { releaseTimeoutMs: options.releaseTimeoutMs } : {}),
  };
  switch (detection.mode) {
    case 'cgroup2':
      return new CgroupV2Limiter({ root: detection.cgroupRoot, parentDir: detection.cgroupParent, ...common });
    case 'cgroup1':
      return new CgroupV1Limiter({ mounts: detection.v1Mounts, parentName: detection.parentName, ...common });
    case 'rlimit':
      return new RlimitLimiter({
        ...(options.defaultPidsMax !== undefined ? { defaultNproc: options.defaultPidsMax } : {}),
        ...(options.memoryRlimit !== undefined ? { memoryRlimit: options.memoryRlimit } : {}),
        ...(options.cpuKillGraceSeconds !== undefined ? { cpuKillGraceSeconds: options.cpuKillGraceSeconds } : {}),
      });
  }
}
