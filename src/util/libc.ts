/**
 * @module
 * libc functions through Bun's FFI, for the few system calls node:fs and node:net do not
 * offer (sendfile(2), preadv2(2) with RWF_NOWAIT). Null where that cannot work: not
 * Linux, not Bun (Deno has no `bun:ffi`), or libc not loadable. Callers keep a plain
 * node: path for those cases.
 */

export const EAGAIN = 11;
export const EINTR = 4;

declare const require: ((id: string) => unknown) | undefined;

interface Ffi {
  dlopen(
    path: string,
    symbols: Record<string, { args: unknown[]; returns: unknown }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown> };
  FFIType: Record<string, unknown>;
  ptr(view: ArrayBufferView, byteOffset?: number): number;
  read: { i32(pointer: unknown, offset: number): number };
}

export interface Libc {
  /** The functions asked for, by name. */
  readonly call: Record<string, (...args: unknown[]) => unknown>;
  /** The calling thread's errno, right after a call that failed. */
  errno(): number;
  /** The address of a view's bytes (from `byteOffset`), valid while the view lives. */
  pointer(view: ArrayBufferView, byteOffset?: number): number;
}

/**
 * Loads `functions` from libc: each gives its argument and return types by name of
 * bun:ffi's FFIType ("i32", "i64", "u64", "ptr"). Null where FFI is not available.
 */
export function loadLibc(
  functions: Record<string, { args: readonly string[]; returns: string }>,
): Libc | null {
  if (
    process.platform !== "linux" ||
    process.versions.bun === undefined ||
    typeof require !== "function"
  )
    return null;
  try {
    const ffi = require("bun:ffi") as Ffi;
    const type = (name: string) => {
      const value = ffi.FFIType[name];
      if (value === undefined) throw new Error(`Unknown FFI type ${name}`);
      return value;
    };
    const symbols: Record<string, { args: unknown[]; returns: unknown }> = {
      __errno_location: { args: [], returns: type("ptr") },
    };
    for (const [name, signature] of Object.entries(functions))
      symbols[name] = { args: signature.args.map(type), returns: type(signature.returns) };
    const libc = ffi.dlopen("libc.so.6", symbols);
    const errnoLocation = libc.symbols.__errno_location!;
    return {
      call: libc.symbols,
      errno: () => ffi.read.i32(errnoLocation(), 0),
      pointer: (view, byteOffset) => ffi.ptr(view, byteOffset),
    };
  } catch {
    return null;
  }
}
