/**
 * @module
 * Reading only what the page cache already holds: preadv2(2) with RWF_NOWAIT (Linux
 * 4.14+) through Bun's FFI. A read of cached pages costs what pread costs; where the
 * pages are not cached the kernel answers at once with what it has (a short read, or
 * EAGAIN for nothing) instead of waiting for the disk. Fetch uses it so that a consumer
 * far behind, whose batches must come from the disk, does not hold the event loop (and
 * every other client) while they do: such reads go to the thread pool
 * (`FileSlice.nextLater`).
 *
 * Where the runtime or the file system cannot tell (Deno, Node, another OS, a file
 * system without RWF_NOWAIT, BROOK_NOWAIT_READS=0), `cachedReads` is null and readers
 * read as before, synchronously.
 */
import { assert } from "../util/assert.ts";
import { EAGAIN, EINTR, loadLibc } from "../util/libc.ts";

/**
 * Reads up to `length` bytes at `position` into `target` at `targetAt`, only from the page
 * cache: returns the bytes read, 0 when the first page is not cached (or at end of file).
 */
export type CachedRead = (
  fd: number,
  target: Uint8Array,
  targetAt: number,
  length: number,
  position: number,
) => number;

const RWF_NOWAIT = 0x08;

/** The reader, or null where it cannot work; a kernel that refuses the flag turns it off. */
let reader: CachedRead | null = load();

function load(): CachedRead | null {
  if (process.env.BROOK_NOWAIT_READS === "0") return null;
  const libc = loadLibc({ preadv2: { args: ["i32", "ptr", "i32", "i64", "i32"], returns: "i64" } });
  if (libc === null) return null;
  const preadv2 = libc.call.preadv2!;
  // One struct iovec { void *base; size_t len; }, filled per call (one thread).
  const iovec = new BigUint64Array(2);
  const iovecPointer = libc.pointer(iovec);
  return (fd, target, targetAt, length, position) => {
    assert(targetAt >= 0 && targetAt + length <= target.byteLength, "Read past its target");
    if (length === 0) return 0;
    iovec[0] = BigInt(libc.pointer(target, targetAt));
    iovec[1] = BigInt(length);
    for (;;) {
      const n = Number(preadv2(fd, iovecPointer, 1, position, RWF_NOWAIT));
      if (n >= 0) return n;
      const errno = libc.errno();
      if (errno === EAGAIN) return 0;
      if (errno === EINTR) continue;
      // EOPNOTSUPP, ENOSYS, EINVAL: this kernel or file system cannot say. Read as before.
      reader = null;
      throw new NoWaitUnsupported(errno);
    }
  };
}

/** The kernel refused RWF_NOWAIT; cached reads are off from now on. */
export class NoWaitUnsupported extends Error {
  override name = "NoWaitUnsupported";
  constructor(errno: number) {
    super(`preadv2 with RWF_NOWAIT failed: errno ${errno}`);
  }
}

/** Reads of record batches sent to the thread pool because the page cache lacked them. */
let coldReads = 0;

export function countColdRead(): void {
  coldReads++;
}

/** How many reads went to the thread pool since the process started (`/metrics`). */
export function coldReadCount(): number {
  return coldReads;
}

/** The page-cache-only reader, or null where there is none (read synchronously then). */
export function cachedReads(): CachedRead | null {
  return reader;
}

/**
 * Whether the bytes [position, position + length) look cached: their first and last
 * byte are. Readahead fills files front to back, so this is nearly always the truth; a
 * hole in the middle costs one blocking read, as before. True where nothing can tell.
 */
export function looksCached(fd: number, position: number, length: number): boolean {
  const read = reader;
  if (read === null || length <= 0) return true;
  try {
    if (read(fd, probe, 0, 1, position) === 0) return false;
    return length === 1 || read(fd, probe, 0, 1, position + length - 1) === 1;
  } catch (error) {
    if (error instanceof NoWaitUnsupported) return true;
    throw error;
  }
}

const probe = new Uint8Array(1);
