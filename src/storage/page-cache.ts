/**
 * @module
 * Whether reading a file range would wait for the disk. A consumer far behind reads
 * segments that left the page cache long ago; a synchronous read (or sendfile) of them
 * on the request thread stops every connection for as long as the disk takes, and under
 * a heavy writer that is tens of milliseconds per piece. A range found cold is read on
 * the runtime's file-system threads instead (FileSlice.whenReadable).
 *
 * The probe is preadv2(2) of one byte at the range's first and last page with
 * RWF_NOWAIT, which fails with EAGAIN instead of waiting (and a miss starts the kernel's
 * readahead). Two pages stand for the range: readahead brings in runs of pages, so a
 * range cached at both ends is cached in between but for rare holes, which then only
 * cost what they cost before. Null where libc cannot be reached (runtime/libc.ts): the
 * caller reads as it did before.
 */
import { Buffer } from "node:buffer";
import { EAGAIN, libc, RWF_NOWAIT } from "../runtime/libc.ts";

const PAGE_BYTES = 4096;
const probe = Buffer.alloc(1);

function pageCached(fd: number, position: number): boolean | null {
  const read = libc!.preadv2(fd, probe, position, RWF_NOWAIT);
  if (read >= 0) return true; // 0: past the end, nothing to wait for
  return libc!.errno() === EAGAIN ? false : null;
}

/** True when `length` bytes of `fd` from `position` are in the page cache; null when unknown. */
export function rangeCached(fd: number, position: number, length: number): boolean | null {
  if (libc === null || length <= 0) return null;
  const first = pageCached(fd, position);
  if (first !== true) return first;
  const last = position + length - 1;
  if (Math.floor(last / PAGE_BYTES) === Math.floor(position / PAGE_BYTES)) return true;
  return pageCached(fd, last);
}
