/**
 * @module
 * The names and the low-level file handling of a partition directory: the suffixes of
 * segment files and of their transient stages (`.rebuild`, `.deleted`, `.cleaned`,
 * `.swap`), `segmentFileName`, `StorageIoError`, whole-range reads and writes, directory
 * fsync, atomic file replacement. Separate from segment.ts because the log, the
 * checkpoints, file slices and the raft log's storage use these without a Segment.
 *
 * All I/O is synchronous node:fs, as in segment.ts.
 */
import {
  closeSync,
  fsync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rm,
  unlinkSync,
  writeSync,
} from "node:fs";
import { assert } from "../util/assert.ts";

export const LOG_SUFFIX = ".log";
export const INDEX_SUFFIX = ".index";
export const TIME_INDEX_SUFFIX = ".timeindex";
/** Index files being rebuilt are written under this suffix, then renamed into place. */
export const REBUILD_SUFFIX = ".rebuild";
/**
 * A deleted segment's files are renamed with this suffix and removed after
 * file.delete.delay.ms (Kafka's `.deleted`); a log found with such files on open
 * removes them at once.
 */
export const DELETED_SUFFIX = ".deleted";
/**
 * The log cleaner writes a segment's replacement under this suffix (all three files),
 * fsyncs it, then renames each file to SWAP_SUFFIX: the rename of the .log file is the
 * commit point. An open removes `.cleaned` files (never committed).
 */
export const CLEANED_SUFFIX = ".cleaned";
/**
 * A committed replacement waiting to be renamed into place (Kafka's `.swap`). An open
 * finishes the swap: see `recoverCleanerSwaps`.
 */
export const SWAP_SUFFIX = ".swap";
/** `<20-digit base offset>.log`, `.index` or `.timeindex`. */
export const SEGMENT_FILE_PATTERN = /^(\d{20})\.(log|index|timeindex)$/;

export function segmentFileName(baseOffset: number, suffix: string): string {
  assert(Number.isSafeInteger(baseOffset), "Segment base offset is not a safe integer");
  assert(baseOffset >= 0, "Segment base offset is negative");
  return `${String(baseOffset).padStart(20, "0")}${suffix}`;
}

/** An I/O failure (disk full, EIO) while changing a log; the log itself stays consistent. */
export class StorageIoError extends Error {
  override name = "StorageIoError";
}

// ---------------------------------------------------------------------------------------
// Whole-range I/O.

/** Reads up to `length` bytes at `position`; fewer only at end of file. */
export function readFully(
  fd: number,
  target: Uint8Array,
  targetAt: number,
  length: number,
  position: number,
): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, target, targetAt + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

export function writeFully(fd: number, source: Uint8Array, position: number): void {
  let done = 0;
  while (done < source.byteLength) {
    done += writeSync(fd, source, done, source.byteLength - done, position + done);
  }
}

/**
 * fsyncs a directory so that names created, renamed or removed in it survive a machine
 * crash. Platforms that cannot fsync a directory (Windows) say so with EISDIR, EPERM or
 * EINVAL.
 */
export function syncDirectory(dir: string): void {
  const fd = openDirectory(dir);
  if (fd === null) return;
  try {
    fsyncSync(fd);
  } catch (error) {
    if (!cannotSyncDirectory(error)) throw error;
  } finally {
    closeSync(fd);
  }
}

/**
 * fsyncs `fds` one after another, then `dir` if given (as `syncDirectory`), off the event
 * loop: the runtime's file system thread pool waits for the disk, not the thread that
 * serves the sockets. The descriptors must stay open until this settles.
 */
export async function syncInBackground(fds: readonly number[], dir: string | null): Promise<void> {
  for (const fd of fds) await fsyncAsync(fd);
  if (dir === null) return;
  const dirFd = openDirectory(dir);
  if (dirFd === null) return;
  try {
    await fsyncAsync(dirFd);
  } catch (error) {
    if (!cannotSyncDirectory(error)) throw error;
  } finally {
    closeSync(dirFd);
  }
}

function fsyncAsync(fd: number): Promise<void> {
  return new Promise((done, fail) => fsync(fd, (error) => (error ? fail(error) : done())));
}

/**
 * A directory opened for fsync; null where directories cannot be opened so, or where it
 * no longer exists (a deleted log's: nothing in it is left to make durable).
 */
function openDirectory(dir: string): number | null {
  try {
    return openSync(dir, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EISDIR" || code === "EPERM" || code === "EACCES" || code === "ENOENT")
      return null;
    throw error;
  }
}

function cannotSyncDirectory(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "EISDIR" || code === "EPERM" || code === "EINVAL";
}

/** Suffix of a deleted log's directory, renamed so that it can be removed in the background. */
export const DELETED_DIR_SUFFIX = "-delete";

/**
 * Removes files or whole directories off the event loop: unlinking a 1 GiB segment took
 * 80-230 ms of ext4 work on this project's VM, which would stop every connection. Only
 * for names nothing will be created under again (`.deleted` files, `-delete`
 * directories); failures are logged by `onError`, and what is left is removed on the
 * next start.
 */
export function removeInBackground(
  paths: readonly string[],
  onError: (error: Error) => void,
): Promise<void> {
  return Promise.all(
    paths.map(
      (path) =>
        new Promise<void>((done) =>
          rm(path, { recursive: true, force: true }, (error) => {
            if (error) onError(error);
            done();
          }),
        ),
    ),
  ).then(() => undefined);
}

/**
 * Writes `bytes` to `path` atomically: a temporary file (`path` + `suffix`), fsynced,
 * renamed into place. The caller fsyncs the directory when the rename must be durable.
 */
export function replaceFile(path: string, bytes: Uint8Array, suffix = REBUILD_SUFFIX): void {
  const temporary = `${path}${suffix}`;
  const fd = openSync(temporary, "w");
  try {
    writeFully(fd, bytes, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
}

/** Removes `path`; false when it did not exist. */
export function unlinkIfExists(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
