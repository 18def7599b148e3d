/**
 * The run directory: the files through which each job's supervisor reports to the daemon (it may
 * write them while no daemon runs), and the daemon's boot marker.
 * - `<jobId>.sup`, written by the supervisor before the job starts: who the supervisor is;
 * - `<jobId>.exit`, written once no process of the job is left: the outcome;
 *   both are `key=value` lines that appear atomically (written to `<name>.tmp`, then renamed) and
 *   are not synced (why: src/launcher/hpcq-supervisor.c, write_run_file);
 * - `daemon-boot`, written and synced by the executor (see supervised-executor.ts).
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { open, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** Contents of `<runDir>/<jobId>.sup`. */
export interface SupervisorRecord {
  supervisorPid: number;
  supervisorStartTicks: number;
  bootId: string;
}

/** Contents of `<runDir>/<jobId>.exit`. */
export interface SupervisorExitRecord {
  status: 'exited' | 'signaled' | 'launch_failed';
  /** Exit status of the main process when status is 'exited'. */
  exitCode: number;
  /** Terminating signal number when status is 'signaled', else 0. */
  signal: number;
  timedOut: boolean;
  cancelled: boolean;
  jobPid: number;
  /** Epoch ms at exec (0 if the launch failed) and when the main process ended. */
  startMs: number;
  endMs: number;
  /** CPU time and peak RSS of all reaped processes of the job (getrusage RUSAGE_CHILDREN). */
  utimeUs: number;
  stimeUs: number;
  maxrssKb: number;
  /** Why the launch failed (launch_failed only), e.g. `chdir /data: Permission denied`. */
  error?: string;
  /**
   * The job's cgroup accounting files as the supervisor read them once the job was gone (its
   * `--account` files; one that did not exist is absent), by path. Empty from a supervisor that
   * was given none, or from an older one.
   */
  accounting: ReadonlyMap<string, string>;
  /** The supervisor removed every cgroup directory of the job's set-up (its `--cgroup-mkdir` ones). */
  cgroupsRemoved: boolean;
}

export function supervisorFilePath(runDir: string, jobId: number): string {
  return join(runDir, `${jobId}.sup`);
}

export function exitFilePath(runDir: string, jobId: number): string {
  return join(runDir, `${jobId}.exit`);
}

/** A job's run file named `name`, or undefined for any other file (the boot marker among them). */
export function parseRunFileName(name: string): { jobId: number; kind: 'sup' | 'exit'; temporary: boolean } | undefined {
  const m = /^(\d+)\.(sup|exit)(\.tmp)?$/.exec(name);
  return m ? { jobId: Number(m[1]), kind: m[2] as 'sup' | 'exit', temporary: m[3] !== undefined } : undefined;
}

/** Jobs that have any run file (temporaries included). */
export async function jobIdsWithRunFiles(runDir: string): Promise<Set<number>> {
  const ids = new Set<number>();
  for (const name of await readdir(runDir)) {
    const file = parseRunFileName(name);
    if (file) ids.add(file.jobId);
  }
  return ids;
}

const ACCOUNT_PREFIX = 'account:';

/** `key=value` lines; the value is everything after the first '='. */
function parseRecordLines(text: string, what: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`malformed ${what}: line ${JSON.stringify(line.slice(0, 100))}`);
    map.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return map;
}

function intField(map: Map<string, string>, key: string, what: string): number {
  const raw = map.get(key);
  if (raw === undefined || !/^-?\d+$/.test(raw)) throw new Error(`malformed ${what}: ${key}=${raw ?? '(missing)'}`);
  const value = Number(raw);
  if (!Number.isSafeInteger(value)) throw new Error(`malformed ${what}: ${key}=${raw} out of range`);
  return value;
}

function boolField(map: Map<string, string>, key: string, what: string): boolean {
  const value = intField(map, key, what);
  if (value !== 0 && value !== 1) throw new Error(`malformed ${what}: ${key}=${value}`);
  return value === 1;
}

/** Parses the text of an exit file. Throws on a malformed record; unknown keys are ignored. */
export function parseExitRecord(text: string): SupervisorExitRecord {
  const what = 'supervisor exit file';
  const map = parseRecordLines(text, what);
  const status = map.get('status');
  if (status !== 'exited' && status !== 'signaled' && status !== 'launch_failed') {
    throw new Error(`malformed ${what}: status=${status ?? '(missing)'}`);
  }
  const record: SupervisorExitRecord = {
    status,
    exitCode: intField(map, 'exit_code', what),
    signal: intField(map, 'signal', what),
    timedOut: boolField(map, 'timed_out', what),
    cancelled: boolField(map, 'cancelled', what),
    jobPid: intField(map, 'job_pid', what),
    startMs: intField(map, 'start_ms', what),
    endMs: intField(map, 'end_ms', what),
    utimeUs: intField(map, 'utime_us', what),
    stimeUs: intField(map, 'stime_us', what),
    maxrssKb: intField(map, 'maxrss_kb', what),
    accounting: accountingLines(map, what),
    // Absent from an older supervisor's record: nothing was removed.
    cgroupsRemoved: map.has('cgroups_removed') && boolField(map, 'cgroups_removed', what),
  };
  const error = map.get('error');
  if (error !== undefined) record.error = error;
  return record;
}

/** `account:<path>=<contents>` lines, both sides %XX-escaped by the supervisor. */
function accountingLines(map: ReadonlyMap<string, string>, what: string): Map<string, string> {
  const accounting = new Map<string, string>();
  for (const [key, value] of map) {
    if (!key.startsWith(ACCOUNT_PREFIX)) continue;
    try {
      accounting.set(decodeURIComponent(key.slice(ACCOUNT_PREFIX.length)), decodeURIComponent(value));
    } catch {
      throw new Error(`malformed ${what}: ${key.slice(0, 100)}`);
    }
  }
  return accounting;
}

/** Parses the text of a .sup file. Throws on a malformed record. */
export function parseSupervisorRecord(text: string): SupervisorRecord {
  const what = 'supervisor file';
  const map = parseRecordLines(text, what);
  const bootId = map.get('boot_id');
  if (!bootId) throw new Error(`malformed ${what}: boot_id missing`);
  return {
    supervisorPid: intField(map, 'supervisor_pid', what),
    supervisorStartTicks: intField(map, 'supervisor_start_ticks', what),
    bootId,
  };
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/**
 * Synchronous: a run record is a few hundred bytes in the daemon's own state directory, one read
 * per job; the async read cost four thread-pool round trips (open, fstat, read, close) and more
 * daemon CPU than the read itself.
 */
async function readOptional(path: string): Promise<string | undefined> {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The job's outcome, or undefined while it has none yet (the file appears atomically). Throws if malformed. */
export async function readExitFile(runDir: string, jobId: number): Promise<SupervisorExitRecord | undefined> {
  const text = await readOptional(exitFilePath(runDir, jobId));
  return text === undefined ? undefined : parseExitRecord(text);
}

/** Who the job's supervisor is, or undefined if it never got that far. Throws if malformed. */
export async function readSupervisorFile(runDir: string, jobId: number): Promise<SupervisorRecord | undefined> {
  const text = await readOptional(supervisorFilePath(runDir, jobId));
  return text === undefined ? undefined : parseSupervisorRecord(text);
}

/**
 * Deletes a job's run files (.sup, .exit). Missing files are fine. Their temporaries exist only if
 * a supervisor died while writing one: they are removed with `temporaries` (the sweep at start-up),
 * not after every job, where each try cost a failed unlink and its error object. A leftover one is
 * harmless meanwhile: the next write of that record truncates it.
 */
export async function removeRunFiles(runDir: string, jobId: number, opts: { temporaries?: boolean } = {}): Promise<void> {
  const base = join(runDir, String(jobId));
  const paths = [`${base}.sup`, `${base}.exit`];
  if (opts.temporaries) paths.push(`${base}.sup.tmp`, `${base}.exit.tmp`);
  // Synchronous, like the reads: a thread-pool round trip per file cost the daemon more CPU than the unlink.
  for (const path of paths) {
    try {
      unlinkSync(path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

const BOOT_MARKER = 'daemon-boot';

/** The boot id in the boot marker; '' if there is none. */
export function readBootMarker(runDir: string): string {
  try {
    return readFileSync(join(runDir, BOOT_MARKER), 'utf8').trim();
  } catch {
    return '';
  }
}

/** Replaces the boot marker atomically and durably (file and directory synced). */
export async function writeBootMarker(runDir: string, bootId: string): Promise<void> {
  const path = join(runDir, BOOT_MARKER);
  const file = await open(`${path}.tmp`, 'w', 0o600);
  try {
    await file.writeFile(`${bootId}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(`${path}.tmp`, path);
  const dir = await open(runDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
