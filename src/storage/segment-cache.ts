/**
 * @module
 * Bounded caches for sealed (no longer written) segments: their sparse indexes, loaded
 * lazily from disk, and their read-only file descriptors. Message bytes are never cached
 * here: the OS page cache holds them (docs/architecture.md, principle 1).
 *
 * One cache should serve every partition log of a broker, so the bounds hold for the
 * whole process; a log opened without one gets a private cache with the default bounds.
 * Keys are file paths. Eviction closes file descriptors; callers use a descriptor only
 * within one synchronous call, so an evicted descriptor is never in use.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { LRUCache } from "lru-cache";
import { assert } from "../util/assert.ts";
import { logger } from "../util/log.ts";
import { INDEX_CACHE_BYTES_DEFAULT, OPEN_FILES_DEFAULT } from "./limits.ts";
import { OffsetIndex } from "./offset-index.ts";
import { TimeIndex } from "./time-index.ts";

const log = logger("storage");

export interface SegmentCacheOptions {
  /** Bound on the memory of cached indexes, in bytes. */
  indexBytesMax?: number;
  /** Bound on open read-only segment files. */
  openFilesMax?: number;
}

export class SegmentCache {
  /** Sealed segments' indexes by file path; sized by their memory. */
  readonly #indexes: LRUCache<string, OffsetIndex | TimeIndex>;
  /** Read-only descriptors of sealed segments' .log files by path. */
  readonly #files: LRUCache<string, number>;

  constructor(options: SegmentCacheOptions = {}) {
    const indexBytesMax = options.indexBytesMax ?? INDEX_CACHE_BYTES_DEFAULT;
    const openFilesMax = options.openFilesMax ?? OPEN_FILES_DEFAULT;
    assert(Number.isInteger(indexBytesMax), "Index cache bound must be an integer");
    assert(indexBytesMax > 0, "Index cache bound must be positive");
    assert(Number.isInteger(openFilesMax), "Open files bound must be an integer");
    assert(openFilesMax > 0, "Open files bound must be positive");
    this.#indexes = new LRUCache<string, OffsetIndex | TimeIndex>({
      maxSize: indexBytesMax,
      sizeCalculation: (index) => Math.max(1, index.memoryBytes),
    });
    this.#files = new LRUCache<string, number>({
      max: openFilesMax,
      dispose: (fd, path) => {
        try {
          closeSync(fd);
        } catch (error) {
          log.error("Closing a segment file failed", { path, error: String(error) });
        }
      },
    });
  }

  /** The offset index stored at `path`, loaded on first use. */
  offsetIndex(path: string, baseOffset: number): OffsetIndex {
    const cached = this.#indexes.get(path);
    if (cached instanceof OffsetIndex) return cached;
    const index = new OffsetIndex(baseOffset, readFileSync(path));
    this.#indexes.set(path, index);
    return index;
  }

  /** The time index stored at `path`, loaded on first use. */
  timeIndex(path: string, baseOffset: number): TimeIndex {
    const cached = this.#indexes.get(path);
    if (cached instanceof TimeIndex) return cached;
    const index = new TimeIndex(baseOffset, readFileSync(path));
    this.#indexes.set(path, index);
    return index;
  }

  /** A read-only descriptor of the file at `path`; valid until the next cache call. */
  readFd(path: string): number {
    const cached = this.#files.get(path);
    if (cached !== undefined) return cached;
    const fd = openSync(path, "r");
    this.#files.set(path, fd);
    return fd;
  }

  /** Drops whatever is cached for `path` (closing its descriptor). */
  forget(path: string): void {
    this.#indexes.delete(path);
    this.#files.delete(path);
  }

  /** Counts, for tests and metrics. */
  stats(): { indexes: number; indexBytes: number; openFiles: number } {
    return {
      indexes: this.#indexes.size,
      indexBytes: this.#indexes.calculatedSize,
      openFiles: this.#files.size,
    };
  }
}
