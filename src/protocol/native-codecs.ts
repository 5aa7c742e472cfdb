/**
 * @module
 * The native lz4 and snappy codecs (lz4-napi, snappy), loaded on first use. Loading
 * them maps two shared libraries: about 12 MiB of resident memory in the compiled
 * executable, measured with Bun 1.4, for codecs most brokers need rarely (batches are
 * stored as sent; only timestamp lookups and compaction decompress). So an idle broker
 * does not pay for them.
 *
 * `require` of a literal name is what `bun build --compile` bundles while still running
 * the module only when called; Deno has no `require` in modules, so it goes through
 * node:module's createRequire, which resolves the same npm packages.
 */
import { createRequire } from "node:module";

type Lz4 = typeof import("lz4-napi");
type Snappy = typeof import("snappy");

declare const require: ((id: string) => unknown) | undefined;

let lz4Module: Lz4 | null = null;
let snappyModule: Snappy | null = null;

export function lz4(): Lz4 {
  lz4Module ??= (typeof require === "function" ? require("lz4-napi") : createRequire(import.meta.url)("lz4-napi")) as Lz4;
  return lz4Module;
}

export function snappy(): Snappy {
  snappyModule ??= (typeof require === "function" ? require("snappy") : createRequire(import.meta.url)("snappy")) as Snappy;
  return snappyModule;
}
