/**
 * @module
 * The native modules (lz4-napi, snappy, @node-rs/crc32), loaded on first use. Loading
 * lz4 and snappy maps two shared libraries: about 12 MiB of resident memory in the
 * compiled executable, measured with Bun 1.4, for codecs most brokers need rarely
 * (batches are stored as sent; only timestamp lookups and compaction decompress). The
 * CRC-32C addon adds 3 MiB to an idle broker (6.8 to a compiled hello-world) and is
 * needed only for inputs of 512 bytes or more (see crc32c.ts). So an idle broker pays
 * for none of them.
 *
 * `require` of a literal name is what `bun build --compile` bundles while still running
 * the module only when called; Deno has no `require` in modules, so it goes through
 * node:module's createRequire, which resolves the same npm packages.
 */
import { createRequire } from "node:module";

type Lz4 = typeof import("lz4-napi");
type Snappy = typeof import("snappy");
type Crc32 = typeof import("@node-rs/crc32");

declare const require: ((id: string) => unknown) | undefined;

let lz4Module: Lz4 | null = null;
let snappyModule: Snappy | null = null;
let crc32Module: Crc32 | null = null;

export function lz4(): Lz4 {
  lz4Module ??= (
    typeof require === "function" ? require("lz4-napi") : createRequire(import.meta.url)("lz4-napi")
  ) as Lz4;
  return lz4Module;
}

export function snappy(): Snappy {
  snappyModule ??= (
    typeof require === "function" ? require("snappy") : createRequire(import.meta.url)("snappy")
  ) as Snappy;
  return snappyModule;
}

export function nativeCrc32(): Crc32 {
  crc32Module ??= (
    typeof require === "function"
      ? require("@node-rs/crc32")
      : createRequire(import.meta.url)("@node-rs/crc32")
  ) as Crc32;
  return crc32Module;
}
