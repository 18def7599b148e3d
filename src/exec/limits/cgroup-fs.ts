/**
 * The few file operations the cgroup limiters make, behind an interface so unit tests can run the
 * limiters against a fake cgroupfs (plain files in a temp dir, with a fake "kernel" that creates a
 * new cgroup's interface files on mkdir). `nodeCgroupFs` is the real one.
 *
 * cgroupfs rules it follows: every value is written with one write(2) on a file opened O_WRONLY
 * without O_CREAT/O_TRUNC (write-only files like cgroup.kill refuse O_RDWR, and a missing interface
 * file must fail with ENOENT, not be created); a cgroup directory is removed with rmdir(2) alone —
 * its interface files are not real files and it never needs emptying first.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CgroupFs {
  /** The file's contents, or undefined when it does not exist. */
  read(path: string): Promise<string | undefined>;
  /** Writes `value` to an existing file in one write; rejects (ENOENT) when the file is absent. */
  write(path: string, value: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Creates one directory; resolves false when it already existed. */
  mkdir(path: string): Promise<boolean>;
  /** Removes one (cgroup) directory; resolves false when it was already gone. */
  rmdir(path: string): Promise<boolean>;
  /** Names of the subdirectories; [] when the directory does not exist. */
  listDirs(path: string): Promise<string[]>;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

export function isErrno(err: unknown, ...codes: string[]): boolean {
  const code = errnoCode(err);
  return code !== undefined && codes.includes(code);
}

/**
 * The real cgroupfs. Synchronous system calls on purpose: cgroupfs is an in-kernel pseudo file
 * system whose operations complete in microseconds and never wait for a disk, while each async
 * call costs a thread-pool round trip (an open + write + close was three); setting up and tearing
 * down a job's cgroups took ~4 ms per job that way, most of it queueing.
 */
export const nodeCgroupFs: CgroupFs = {
  async read(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  },
  async write(path, value) {
    const fd = openSync(path, constants.O_WRONLY);
    try {
      const bytesWritten = writeSync(fd, value);
      if (bytesWritten !== Buffer.byteLength(value)) {
        throw new Error(`short write to ${path}: ${bytesWritten} of ${Buffer.byteLength(value)} bytes`);
      }
    } finally {
      closeSync(fd);
    }
  },
  async exists(path) {
    return existsSync(path);
  },
  async mkdir(path) {
    try {
      mkdirSync(path);
      return true;
    } catch (err) {
      if (isErrno(err, 'EEXIST')) return false;
      throw err;
    }
  },
  async rmdir(path) {
    try {
      rmdirSync(path);
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  },
  async listDirs(path) {
    try {
      // A directory's link count is 2 + its subdirectories on cgroupfs (kernfs), as on ext4 and
      // tmpfs: one stat instead of listing the ~30 interface files of a cgroup that has none.
      if (statSync(path).nlink === 2) return [];
      return readdirSync(path, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return [];
      throw err;
    }
  },
};

/** Writes, naming the file and value in the error (cgroupfs errors like EINVAL say nothing else). */
export async function writeCgroupFile(fs: CgroupFs, path: string, value: string): Promise<void> {
  try {
    await fs.write(path, value);
  } catch (err) {
    const code = errnoCode(err) ?? (err instanceof Error ? err.message : String(err));
    throw Object.assign(new Error(`cannot write ${JSON.stringify(value)} to ${path}: ${code}`, { cause: err }), {
      code: errnoCode(err),
    });
  }
}

/** Pids listed in a cgroup.procs file (empty when the file is gone). */
export async function readPids(fs: CgroupFs, procsFile: string): Promise<number[]> {
  const text = await fs.read(procsFile);
  if (text === undefined) return [];
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

/** SIGKILL, ignoring a process that is already gone. */
export function sigkillIgnoringGone(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if (!isErrno(err, 'ESRCH')) throw err;
  }
}

/**
 * For polling the kernel (a cgroup emptying, a freeze completing): each call waits twice as long as
 * the one before, from 1 ms up to `maxMs`, so a quick change is seen at once and a slow one costs
 * few wake-ups.
 */
export function backoff(maxMs = 50): () => Promise<void> {
  let delayMs = 1;
  return () => {
    const wait = sleep(delayMs);
    delayMs = Math.min(delayMs * 2, maxMs);
    return wait;
  };
}

/**
 * rmdir of a cgroup and its descendants, deepest first (a job cannot create child cgroups — the
 * files are root's — but orphans from older versions or admins might exist). EBUSY, which the
 * kernel may return for a moment after the last process died, is retried until `deadline`.
 */
export async function removeCgroupTree(fs: CgroupFs, dir: string, deadline: number): Promise<void> {
  for (const child of await fs.listDirs(dir)) await removeCgroupTree(fs, `${dir}/${child}`, deadline);
  const pause = backoff();
  for (;;) {
    try {
      await fs.rmdir(dir);
      return;
    } catch (err) {
      if (!isErrno(err, 'EBUSY') || Date.now() > deadline) throw err;
    }
    await pause();
  }
}
