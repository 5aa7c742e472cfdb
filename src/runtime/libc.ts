/**
 * @module
 * The few libc calls Node's API lacks, through Bun's FFI: sendfile(2) (server/sendfile.ts)
 * and preadv2(2) with RWF_NOWAIT (storage/page-cache.ts). Null where it cannot load: not
 * Linux, not Bun (Deno has no `bun:ffi`), or libc not found. Callers then do without.
 */

export interface Libc {
  /** sendfile(out_fd, in_fd, &offset, count): bytes sent, or -1 (see errno). */
  sendfile(socketFd: number, fileFd: number, position: number, count: number): number;
  /** preadv2 of one buffer with `flags`: bytes read, or -1 (see errno). */
  preadv2(fd: number, into: Uint8Array, position: number, flags: number): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
}

export const EAGAIN = 11;
export const EINTR = 4;
/** preadv2 flag: fail with EAGAIN rather than wait for the disk. */
export const RWF_NOWAIT = 0x8;

declare const require: ((id: string) => unknown) | undefined;

interface Ffi {
  dlopen(
    path: string,
    symbols: Record<string, { args: unknown[]; returns: unknown }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown> };
  FFIType: Record<string, unknown>;
  ptr(view: ArrayBufferView): number;
  read: { i32(pointer: unknown, offset: number): number };
}

function load(): Libc | null {
  if (
    process.platform !== "linux" ||
    process.versions.bun === undefined ||
    typeof require !== "function"
  )
    return null;
  try {
    const ffi = require("bun:ffi") as Ffi;
    const { FFIType } = ffi;
    const { symbols } = ffi.dlopen("libc.so.6", {
      sendfile: {
        args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u64],
        returns: FFIType.i64,
      },
      preadv2: {
        args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.i64, FFIType.i32],
        returns: FFIType.i64,
      },
      __errno_location: { args: [], returns: FFIType.ptr },
    });
    // Argument blocks reused by every call (one thread calls them).
    const offset = new BigInt64Array(1);
    const offsetPointer = ffi.ptr(offset);
    const iovec = new BigUint64Array(2);
    const iovecPointer = ffi.ptr(iovec);
    return {
      sendfile(socketFd, fileFd, position, count) {
        offset[0] = BigInt(position);
        return Number(symbols.sendfile!(socketFd, fileFd, offsetPointer, count));
      },
      preadv2(fd, into, position, flags) {
        iovec[0] = BigInt(ffi.ptr(into));
        iovec[1] = BigInt(into.byteLength);
        return Number(symbols.preadv2!(fd, iovecPointer, 1, position, flags));
      },
      errno: () => ffi.read.i32(symbols.__errno_location!(), 0),
    };
  } catch {
    return null;
  }
}

export const libc: Libc | null = load();
