/**
 * Opens the LevelDB database of the job store without ever creating an empty database over
 * existing data: a new database is created only when the directory is missing or empty. A
 * directory with files but no valid CURRENT -> MANIFEST chain is refused with StoreOpenError.
 */
import { readFile, readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { StoreOpenError, corruptDatabase, openFailure } from './store-errors.js';

export type StringLevel = Level<string, string>;
export type Snapshot = ReturnType<StringLevel['snapshot']>;

export interface LevelTuning {
  /** LevelDB block cache in bytes. Default 8 MiB (LevelDB's default). */
  cacheSizeBytes?: number;
  /** Memtable size in bytes before it is written to a table. Default DEFAULT_WRITE_BUFFER_BYTES (2 MiB). */
  writeBufferSizeBytes?: number;
  /** Most files LevelDB keeps open, and so most table files it keeps mapped. Default 74. */
  maxOpenFiles?: number;
  /** Size at which LevelDB starts a new table file. Default 2 MiB; at least 1 MiB. */
  maxFileSizeBytes?: number;
}

/**
 * LevelDB maps every table file it holds open (up to 1000 of them) and reads records straight from
 * the mapping, so every page of the history a read touched stays in the daemon's RSS: about 330
 * MiB after 10,000 random GetJobs over 1,000,000 jobs with LevelDB's default of 1000 open files.
 * Its table cache holds `max_open_files - 10` tables and unmaps the ones it evicts; 74 is the least
 * LevelDB accepts, so at most 64 tables of 2 MiB are mapped (about 16 MiB of them touched at 1M
 * jobs). A GetJob that misses the cache reopens a table (open, footer, index and bloom filter:
 * about 0.1 ms), which the latency target leaves room for.
 */
const DEFAULT_MAX_OPEN_FILES = 74;

/**
 * The memtable: LevelDB's default is 4 MiB, and a burst fills one and keeps it while the next
 * fills. 2 MiB kept the daemon 1-2 MiB lower through a 1,000-job burst and 4 MiB lower under 64
 * submitting clients, at the same submits/s: flushing a table of 2 MiB takes milliseconds.
 */
export const DEFAULT_WRITE_BUFFER_BYTES = 2 * 1024 * 1024;

/** Whether a database may be created at `location`: only when it is missing or an empty directory. */
async function mayCreate(location: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(location);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTDIR') {
      throw new StoreOpenError('ResourceUnavailable.Store', `the state directory ${location} is not a directory`, {
        cause: err,
      });
    }
    throw openFailure(err, location);
  }
  if (entries.length === 0) return true;
  if (!entries.includes('CURRENT')) {
    throw corruptDatabase(location, 'the directory is not empty but has no CURRENT file, so it holds no LevelDB database');
  }
  const current = await readFile(join(location, 'CURRENT'), 'latin1');
  const manifest = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (manifest === undefined) {
    throw corruptDatabase(location, `CURRENT does not name a manifest file: ${JSON.stringify(current.slice(0, 64))}`);
  }
  if (!entries.includes(manifest)) {
    throw corruptDatabase(location, `CURRENT names ${manifest}, which does not exist`);
  }
  return false;
}

/** Opens (or creates, if allowed) the database; throws StoreOpenError. */
export async function openLevel(location: string, tuning: LevelTuning = {}): Promise<StringLevel> {
  const createIfMissing = await mayCreate(location);
  const db = new Level<string, string>(location, {
    createIfMissing,
    errorIfExists: false,
    keyEncoding: 'utf8',
    valueEncoding: 'utf8',
    maxOpenFiles: tuning.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES,
    ...(tuning.cacheSizeBytes === undefined ? {} : { cacheSize: tuning.cacheSizeBytes }),
    writeBufferSize: tuning.writeBufferSizeBytes ?? DEFAULT_WRITE_BUFFER_BYTES,
    ...(tuning.maxFileSizeBytes === undefined ? {} : { maxFileSize: tuning.maxFileSizeBytes }),
  });
  try {
    await db.open();
  } catch (err) {
    throw openFailure(err, location);
  }
  return db;
}

/**
 * Free space, beyond the size of the write-ahead logs, that recovery wants before an automatic
 * reopen: opening replays the logs into a new table file (about their size) and writes a new
 * manifest and log. 256 KiB covers the manifest and a first batch.
 */
const RECOVERY_HEADROOM_BYTES = 256 * 1024;

/**
 * Whether the filesystem has room for LevelDB to recover the database at `location` (replay its
 * logs into a table). Used to avoid closing a readable database only to fail to reopen it while
 * the disk is still full. True when it cannot tell.
 */
export async function hasRoomToRecover(location: string): Promise<boolean> {
  try {
    const [fsStats, names] = await Promise.all([statfs(location), readdir(location)]);
    let logBytes = 0;
    for (const name of names) if (name.endsWith('.log')) logBytes += (await stat(join(location, name))).size;
    // root may use the blocks a filesystem reserves for it (ext4: 5 %), and hpcqd runs as root.
    const freeBlocks = process.getuid?.() === 0 ? fsStats.bfree : fsStats.bavail;
    return freeBlocks * fsStats.bsize >= logBytes + RECOVERY_HEADROOM_BYTES;
  } catch {
    return true;
  }
}
