/**
 * @module
 * The log cleaner's output: `SegmentBuilder` writes a replacement sealed segment under
 * `.cleaned`, commits it as `.swap` and renames it into place, and `recoverCleanerSwaps`
 * finishes on open what a crash interrupted. Separate from segment.ts because only
 * compaction writes segments this way: a Segment never changes a sealed file, and the
 * builder hands over a finished one (`Segment.installed`).
 */
import { Buffer } from "node:buffer";
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import {
  readBaseOffset,
  readBatchSize,
  readLastOffset,
  readMaxTimestamp,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import { logger } from "../util/log.ts";
import { scanBatches } from "./batch-scan.ts";
import { RELATIVE_OFFSET_MAX, SCAN_CHUNK_BYTES } from "./limits.ts";
import { OffsetIndex } from "./offset-index.ts";
import { IndexBuilder, Segment } from "./segment.ts";
import type { SegmentCache } from "./segment-cache.ts";
import {
  CLEANED_SUFFIX,
  INDEX_SUFFIX,
  LOG_SUFFIX,
  SEGMENT_FILE_PATTERN,
  SWAP_SUFFIX,
  TIME_INDEX_SUFFIX,
  segmentFileName,
  syncDirectory,
  unlinkIfExists,
  writeFully,
} from "./segment-files.ts";
import { TimeIndex } from "./time-index.ts";

const log = logger("storage");

// ---------------------------------------------------------------------------------------
// Writing a replacement segment (the log cleaner), and finishing an interrupted swap.

/** Bytes buffered before one write of the .log file being built. */
const BUILDER_WRITE_BYTES = 1024 * 1024;

/**
 * Writes a new sealed segment for the log cleaner, crash-safely, in four steps:
 *
 * 1. `append` whole batches (increasing offsets) to `<base>.log.cleaned`; `finish` writes
 *    the indexes to `<base>.index.cleaned` and `.timeindex.cleaned` and fsyncs all three.
 * 2. `commit` renames the indexes, then the .log, from `.cleaned` to `.swap` and fsyncs
 *    the directory: once `<base>.log.swap` exists the replacement is decided.
 * 3. The caller renames the replaced segments `.deleted` (PartitionLog.replaceSegments).
 * 4. `install` renames the indexes, then the .log, from `.swap` to their final names, and
 *    fsyncs the directory.
 *
 * A crash before step 2 leaves `.cleaned` files, which the next open removes: the old
 * segments stand. A crash after it leaves `<base>.log.swap`, and the next open finishes
 * the swap (`recoverCleanerSwaps`): the new segments stand. Readers never see a file
 * being written: the names they read are only ever replaced by a rename.
 */
export class SegmentBuilder {
  readonly dir: string;
  readonly baseOffset: number;
  readonly #indexIntervalBytes: number;
  readonly #offsetIndex: OffsetIndex;
  readonly #timeIndex: TimeIndex;
  readonly #builder: IndexBuilder;
  #logFd: number | null;
  /** Batches not yet written to the .log file, [0, #pending) of #buffer. */
  #buffer: Buffer;
  #pending = 0;
  #sizeBytes = 0;
  /** Offset after the last appended batch (the base offset before any). */
  #nextOffset: number;
  #lastBatchBase = -1;
  #state: "writing" | "finished" | "committed" | "installed" | "aborted" = "writing";

  private constructor(dir: string, baseOffset: number, indexIntervalBytes: number, fd: number) {
    this.dir = dir;
    this.baseOffset = baseOffset;
    this.#indexIntervalBytes = indexIntervalBytes;
    this.#offsetIndex = new OffsetIndex(baseOffset);
    this.#timeIndex = new TimeIndex(baseOffset);
    this.#builder = new IndexBuilder(this.#offsetIndex, this.#timeIndex, indexIntervalBytes, 0, -1);
    this.#logFd = fd;
    this.#buffer = Buffer.allocUnsafe(BUILDER_WRITE_BYTES);
    this.#nextOffset = baseOffset;
  }

  /** Starts `<base>.log.cleaned` (replacing a leftover of an abandoned attempt). */
  static create(dir: string, baseOffset: number, indexIntervalBytes: number): SegmentBuilder {
    const fd = openSync(SegmentBuilder.#path(dir, baseOffset, LOG_SUFFIX, CLEANED_SUFFIX), "w");
    return new SegmentBuilder(dir, baseOffset, indexIntervalBytes, fd);
  }

  static #path(dir: string, baseOffset: number, suffix: string, stage: string): string {
    return join(dir, segmentFileName(baseOffset, suffix) + stage);
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  get isEmpty(): boolean {
    return this.#sizeBytes === 0;
  }

  /** Largest batch max timestamp appended, -1 when none. */
  get maxTimestamp(): number {
    return this.#builder.maxTimestamp;
  }

  /** Appends one whole, valid batch whose offsets follow the previous one's. */
  append(batch: Uint8Array): void {
    assert(this.#state === "writing", `Segment builder is ${this.#state}`);
    const size = readBatchSize(batch, 0);
    assert(size === batch.byteLength, "Builder appends exactly one whole batch");
    const base = readBaseOffset(batch, 0);
    const last = readLastOffset(batch, 0);
    assert(base >= this.#nextOffset, `Cleaned batch offsets go backwards: ${base}`);
    assert(last - this.baseOffset <= RELATIVE_OFFSET_MAX, "Cleaned segment spans too many offsets");
    if (this.#pending + size > this.#buffer.byteLength) this.#flushBuffer();
    if (size > this.#buffer.byteLength) {
      writeFully(this.#logFd!, batch, this.#sizeBytes);
    } else {
      this.#buffer.set(batch, this.#pending);
      this.#pending += size;
    }
    this.#builder.add(base, this.#sizeBytes, size, readMaxTimestamp(batch, 0));
    this.#sizeBytes += size;
    this.#nextOffset = last + 1;
    this.#lastBatchBase = base;
  }

  /** Writes the indexes and fsyncs the three `.cleaned` files. */
  finish(): void {
    assert(this.#state === "writing", `Segment builder is ${this.#state}`);
    this.#flushBuffer();
    const fd = this.#logFd!;
    fsyncSync(fd);
    closeSync(fd);
    this.#logFd = null;
    this.#builder.close(this.#lastBatchBase);
    const offsets = this.#offsetIndex.entryBytes(0, this.#offsetIndex.entryCount);
    const times = this.#timeIndex.entryBytes(0, this.#timeIndex.entryCount);
    for (const [suffix, bytes] of [
      [INDEX_SUFFIX, offsets],
      [TIME_INDEX_SUFFIX, times],
    ] as const) {
      const indexFd = openSync(this.#file(suffix, CLEANED_SUFFIX), "w");
      try {
        writeFully(indexFd, bytes, 0);
        fsyncSync(indexFd);
      } finally {
        closeSync(indexFd);
      }
    }
    this.#state = "finished";
  }

  /** The commit point: `.cleaned` → `.swap`, the .log last, then the directory fsynced. */
  commit(): void {
    assert(this.#state === "finished", `Segment builder is ${this.#state}`);
    for (const suffix of [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX]) {
      renameSync(this.#file(suffix, CLEANED_SUFFIX), this.#file(suffix, SWAP_SUFFIX));
    }
    syncDirectory(this.dir);
    this.#state = "committed";
  }

  /**
   * `.swap` → final names, the .log last, then the directory fsynced. The segment this
   * replaces must have been renamed away already (its .log would be overwritten).
   */
  install(cache: SegmentCache): Segment {
    assert(this.#state === "committed", `Segment builder is ${this.#state}`);
    for (const suffix of [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX]) {
      const target = join(this.dir, segmentFileName(this.baseOffset, suffix));
      cache.forget(target);
      renameSync(this.#file(suffix, SWAP_SUFFIX), target);
    }
    syncDirectory(this.dir);
    this.#state = "installed";
    return Segment.installed(this.dir, this.baseOffset, cache, this.#sizeBytes, this.maxTimestamp);
  }

  /**
   * Gives up before the commit: closes and removes the `.cleaned` files. Idempotent. A
   * committed swap is left alone: its files are the next open's to finish.
   */
  abort(): void {
    if (this.#state !== "writing" && this.#state !== "finished") return;
    if (this.#logFd !== null) {
      closeSync(this.#logFd);
      this.#logFd = null;
    }
    for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) {
      unlinkIfExists(this.#file(suffix, CLEANED_SUFFIX));
    }
    this.#state = "aborted";
  }

  #file(suffix: string, stage: string): string {
    return SegmentBuilder.#path(this.dir, this.baseOffset, suffix, stage);
  }

  #flushBuffer(): void {
    if (this.#pending === 0) return;
    const start = this.#sizeBytes - this.#pending;
    writeFully(this.#logFd!, this.#buffer.subarray(0, this.#pending), start);
    this.#pending = 0;
  }
}

/** What `recoverCleanerSwaps` did, for the open's log line and tests. */
export interface SwapRecovery {
  /** Base offsets of swaps finished (their `.swap` files renamed into place). */
  completed: number[];
  /** Files removed: uncommitted `.cleaned`/`.swap` files and segments a swap replaced. */
  removed: string[];
}

const CLEANER_FILE_PATTERN = /^(\d{20})\.(log|index|timeindex)(\.cleaned|\.swap)$/;

/**
 * Finishes what a crash interrupted in `dir` (run before the segments are listed):
 * `.cleaned` files were never committed and go; a `<base>.log.swap` was committed, so
 * its `.swap` files are renamed into place and the segments it replaced, those whose base
 * offset lies in (base, next offset of the swap file), are removed (Kafka's LogLoader
 * rule). Index `.swap` files without their `.log.swap` belong to an uncommitted swap and
 * go. Throws if a committed swap file is damaged: it was fsynced before its commit, so
 * that is not a crash fault.
 */
export function recoverCleanerSwaps(dir: string): SwapRecovery {
  const result: SwapRecovery = { completed: [], removed: [] };
  const names = readdirSync(dir);
  const committed: number[] = [];
  for (const name of names) {
    const match = CLEANER_FILE_PATTERN.exec(name);
    if (match === null) continue;
    if (match[2] === "log" && match[3] === SWAP_SUFFIX) committed.push(Number(match[1]));
  }
  const committedSet = new Set(committed);
  for (const name of names) {
    const match = CLEANER_FILE_PATTERN.exec(name);
    if (match === null) continue;
    const uncommitted = match[3] === CLEANED_SUFFIX || !committedSet.has(Number(match[1]));
    if (!uncommitted) continue;
    unlinkSync(join(dir, name));
    result.removed.push(name);
  }
  committed.sort((a, b) => a - b);
  const present = names
    .map((name) => SEGMENT_FILE_PATTERN.exec(name))
    .filter((match) => match !== null && match[2] === "log")
    .map((match) => Number(match![1]));
  for (const base of committed) {
    const swapLog = join(dir, segmentFileName(base, LOG_SUFFIX) + SWAP_SUFFIX);
    const next = nextOffsetOfFile(swapLog, base);
    for (const old of present) {
      if (old <= base || old >= next) continue;
      for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) {
        const name = segmentFileName(old, suffix);
        if (unlinkIfExists(join(dir, name))) result.removed.push(name);
      }
    }
    for (const suffix of [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX]) {
      const from = join(dir, segmentFileName(base, suffix) + SWAP_SUFFIX);
      // Index .swap files are renamed before the .log's: one may be in place already.
      if (suffix !== LOG_SUFFIX && !existsSync(from)) continue;
      renameSync(from, join(dir, segmentFileName(base, suffix)));
    }
    result.completed.push(base);
  }
  if (result.completed.length > 0 || result.removed.length > 0) {
    syncDirectory(dir);
    log.warn("Finished log cleaner swaps interrupted by a crash", {
      dir,
      completed: result.completed.join(","),
      removed: result.removed.join(","),
    });
  }
  return result;
}

/** The offset after the last batch of a complete segment file (`base` when it is empty). */
function nextOffsetOfFile(path: string, base: number): number {
  const fd = openSync(path, "r");
  let next = base;
  try {
    const size = fstatSync(fd).size;
    const outcome = scanBatches(fd, 0, size, "verify", SCAN_CHUNK_BYTES, (buf, at) => {
      next = readLastOffset(buf, at) + 1;
      return false;
    });
    if (outcome.stop !== "end") {
      const where = `${path} at ${outcome.position}`;
      throw new Error(`Cleaned segment is corrupt: ${where}: ${outcome.reason}`);
    }
  } finally {
    closeSync(fd);
  }
  return next;
}
