/**
 * @module
 * The log of one partition replica: an ordered list of segments in one directory
 * (`<data-dir>/<topic>-<partition>/`), the last one active. This is the interface the
 * Kafka handlers call: append (Produce), read (Fetch), offsetForTimestamp and
 * maxTimestamp (ListOffsets), deleteAll (DeleteTopics).
 *
 * Lifecycle: `open` loads the segments (recovering the last one after an unclean stop),
 * then appends and reads run synchronously until `close` or `deleteAll`.
 *
 * Invariants:
 * - logStartOffset <= highWatermark <= logEndOffset; on a single node the high watermark
 *   equals the log end offset (replication will move it separately).
 * - Segments are sorted by base offset; each base offset is the offset of its first batch
 *   (or, for an empty active segment, the log end offset).
 * - Appends are all-or-nothing per records blob: every batch is validated before any byte
 *   is written, and one blob never spans two segments.
 * - Reads return whole batches only and never go past the bytes of completed appends.
 * - Message bytes are never cached in process: reads go to the OS page cache.
 */
import { Buffer } from "node:buffer";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import {
  BATCH_HEADER_BYTES,
  LOG_OVERHEAD_BYTES,
  type RecordsErrorKind,
  readBaseOffset,
  readBatchSize,
  readMaxTimestamp,
  setLogAppendTime,
  setMaxTimestamp,
  stampBatch,
  validateRecords,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import { APPEND_BYTES_MAX, INDEX_ENTRIES_MAX, RELATIVE_OFFSET_MAX } from "./limits.ts";
import {
  DEFAULT_LOG_CONFIG,
  type LogConfig,
  assertLogConfig,
  batchBytesLimit,
  checkLogConfig,
} from "./log-config.ts";
import { REBUILD_SUFFIX, SEGMENT_FILE_PATTERN, Segment, StorageIoError } from "./segment.ts";
import { SegmentCache } from "./segment-cache.ts";

export { DEFAULT_LOG_CONFIG, type LogConfig, checkLogConfig, SegmentCache, StorageIoError };

const log = logger("storage");

export interface PartitionLogOptions {
  dir: string;
  config: LogConfig;
  clock: Clock;
  /** Shared bounded cache of sealed segments' indexes and files; one per broker. */
  cache?: SegmentCache;
}

export type AppendResult =
  | {
      ok: true;
      baseOffset: number;
      lastOffset: number;
      /** The broker time stamped into the batches, -1 under CreateTime. */
      logAppendTimeMs: number;
      logStartOffset: number;
    }
  | { ok: false; kind: RecordsErrorKind; message: string };

export type ReadResult =
  | { ok: true; records: Uint8Array }
  | { ok: false; kind: "offsetOutOfRange" };

export interface ReadOptions {
  /** KIP-74: return the first batch whole even when it is larger than maxBytes. */
  minOneBatch: boolean;
  /** Exclusive bound, e.g. the high watermark: batches whose base offset is >= it are left out. */
  maxOffset?: number;
}

export interface TimestampOffset {
  offset: number;
  timestamp: number;
}

const OUT_OF_RANGE: ReadResult = Object.freeze({ ok: false, kind: "offsetOutOfRange" });
const EMPTY_RECORDS = new Uint8Array(0);

export class PartitionLog {
  readonly dir: string;
  #config: LogConfig;
  readonly #clock: Clock;
  readonly #cache: SegmentCache;
  /** Sorted by base offset; the last one is the active segment. Never empty while open. */
  readonly #segments: Segment[];
  /** First offset a reader may ask for. */
  #logStartOffset: number;
  /** Next offset to assign. */
  #logEndOffset: number;
  /** Offsets below it are committed; consumers read up to it. Single node: the LEO. */
  #highWatermark: number;
  /** Bytes of all segments' batches. */
  #sizeBytes: number;
  #closed = false;

  private constructor(
    dir: string,
    config: LogConfig,
    clock: Clock,
    cache: SegmentCache,
    segments: Segment[],
  ) {
    assert(segments.length > 0, "A log has at least one segment");
    const active = segments[segments.length - 1]!;
    assert(active.isActive, "The last segment must be active");
    this.dir = dir;
    this.#config = config;
    this.#clock = clock;
    this.#cache = cache;
    this.#segments = segments;
    this.#logStartOffset = segments[0]!.baseOffset;
    this.#logEndOffset = active.nextOffset;
    this.#highWatermark = this.#logEndOffset;
    this.#sizeBytes = segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);
  }

  /**
   * Opens the log in `dir`, creating the directory and a first segment if needed. Stray
   * index files are removed, sealed segments are checked (indexes rebuilt if missing or
   * torn), and the last segment is verified and truncated at a torn tail. Throws if a
   * sealed segment's data is corrupt (not a crash fault: those are fsynced at roll).
   */
  static open(options: PartitionLogOptions): PartitionLog {
    const { dir, config, clock } = options;
    assertLogConfig(config);
    const cache = options.cache ?? new SegmentCache();
    mkdirSync(dir, { recursive: true });
    const bases = PartitionLog.#listSegments(dir);
    const segments: Segment[] = [];
    if (bases.length === 0) {
      segments.push(Segment.create(dir, 0, cache));
      syncDirectory(dir);
    } else {
      const interval = config.indexIntervalBytes;
      for (let i = 0; i < bases.length - 1; i++) {
        segments.push(Segment.openSealed(dir, bases[i]!, bases[i + 1]!, interval, cache));
      }
      const last = bases[bases.length - 1]!;
      segments.push(Segment.recover(dir, last, interval, cache, clock.nowMs()).segment);
    }
    const partitionLog = new PartitionLog(dir, { ...config }, clock, cache, segments);
    log.debug("Opened partition log", {
      dir,
      segments: segments.length,
      logStartOffset: partitionLog.logStartOffset,
      logEndOffset: partitionLog.logEndOffset,
    });
    return partitionLog;
  }

  /** Base offsets of the segments in `dir`, sorted; removes files that belong to none. */
  static #listSegments(dir: string): number[] {
    const names = readdirSync(dir);
    const logs = new Set<string>();
    for (const name of names) {
      const match = SEGMENT_FILE_PATTERN.exec(name);
      if (match !== null && match[2] === "log") logs.add(match[1]!);
    }
    for (const name of names) {
      const match = SEGMENT_FILE_PATTERN.exec(name);
      const stray = (match !== null && !logs.has(match[1]!)) || name.endsWith(REBUILD_SUFFIX);
      if (!stray) continue;
      log.info("Removing a file without its segment", { dir, file: name });
      unlinkSync(join(dir, name));
    }
    const bases = [...logs].sort().map((digits) => Number(digits));
    for (const base of bases) {
      assert(Number.isSafeInteger(base), `Segment base offset is too large: ${base}`);
    }
    return bases;
  }

  // -------------------------------------------------------------------------------------

  get logStartOffset(): number {
    return this.#logStartOffset;
  }

  get logEndOffset(): number {
    return this.#logEndOffset;
  }

  get highWatermark(): number {
    return this.#highWatermark;
  }

  get config(): Readonly<LogConfig> {
    return this.#config;
  }

  updateConfig(config: LogConfig): void {
    this.#assertOpen();
    assertLogConfig(config);
    this.#config = { ...config };
  }

  /**
   * Validates `records` (one or more v2 batches), assigns offsets from the log end by
   * rewriting the batches in place (baseOffset, partitionLeaderEpoch; with LogAppendTime
   * also the timestamp and CRC) and writes the bytes as they are. Nothing is written when
   * any batch is invalid. Throws StorageIoError when the write fails (disk full, EIO):
   * the log is unchanged then.
   */
  append(records: Uint8Array, options: { leaderEpoch: number }): AppendResult {
    this.#assertOpen();
    const config = this.#config;
    if (records.byteLength > APPEND_BYTES_MAX) {
      const message = `Records are larger than one append: ${records.byteLength} bytes`;
      return { ok: false, kind: "tooLarge", message };
    }
    const validated = validateRecords(records, batchBytesLimit(config));
    if (!validated.ok) return { ok: false, kind: validated.kind, message: validated.message };
    const { batches, recordCount } = validated;
    const nowMs = this.#clock.nowMs();
    const baseOffset = this.#logEndOffset;
    const lastOffset = baseOffset + recordCount - 1;
    assert(Number.isSafeInteger(lastOffset), "Offsets ran past 2^53");

    const logAppendTime = config.messageTimestampType === "LogAppendTime";
    let offset = baseOffset;
    for (const batch of batches) {
      const view = records.subarray(batch.at, batch.at + batch.size);
      stampBatch(view, offset, options.leaderEpoch);
      if (logAppendTime) {
        setLogAppendTime(view, nowMs);
      } else if (
        batch.timestampType !== "CreateTime" ||
        readMaxTimestamp(view, 0) !== batch.maxTimestamp
      ) {
        // Kafka's rule for CreateTime: the header carries the largest record timestamp.
        setMaxTimestamp(view, "CreateTime", batch.maxTimestamp);
      }
      offset += batch.lastOffsetDelta + 1;
    }
    assert(offset === lastOffset + 1, "Stamped offsets do not match the record count");

    this.#maybeRoll(records.byteLength, batches.length, lastOffset, nowMs);
    const active = this.#active();
    active.append(records, batches, baseOffset, config.indexIntervalBytes, nowMs);
    this.#logEndOffset = lastOffset + 1;
    this.#highWatermark = this.#logEndOffset;
    this.#sizeBytes += records.byteLength;
    assert(active.nextOffset === this.#logEndOffset, "Segment and log disagree on the log end");
    return {
      ok: true,
      baseOffset,
      lastOffset,
      logAppendTimeMs: logAppendTime ? nowMs : -1,
      logStartOffset: this.#logStartOffset,
    };
  }

  /**
   * Whole batches from the one holding `fetchOffset` on, at most `maxBytes` of them
   * (KIP-74: the first batch whole even if larger, when `minOneBatch`), crossing into
   * later segments while bytes remain. Batches with base offset >= `maxOffset` are left
   * out. At the log end the result is empty; outside [logStartOffset, logEndOffset] it
   * is offsetOutOfRange. A fetch offset inside a batch returns that batch: clients skip
   * the records before it.
   */
  read(fetchOffset: number, maxBytes: number, options: ReadOptions): ReadResult {
    this.#assertOpen();
    assert(Number.isInteger(fetchOffset), `Fetch offset is not an integer: ${fetchOffset}`);
    assert(Number.isInteger(maxBytes), `maxBytes is not an integer: ${maxBytes}`);
    assert(maxBytes >= 0, `maxBytes is negative: ${maxBytes}`);
    if (fetchOffset < this.#logStartOffset || fetchOffset > this.#logEndOffset) return OUT_OF_RANGE;
    const limit = Math.min(options.maxOffset ?? this.#logEndOffset, this.#logEndOffset);
    if (fetchOffset >= limit) return { ok: true, records: EMPTY_RECORDS };

    const chunkBytes = this.#config.indexIntervalBytes + BATCH_HEADER_BYTES;
    let first = this.#segmentIndexFor(fetchOffset);
    let location = this.#segments[first]!.locate(fetchOffset, chunkBytes);
    while (location === null && first + 1 < this.#segments.length) {
      first++;
      location = this.#segments[first]!.locate(fetchOffset, chunkBytes);
    }
    assert(location !== null, `No batch holds offset ${fetchOffset} below the log end`);
    if (location.baseOffset >= limit) return { ok: true, records: EMPTY_RECORDS };
    let budget = maxBytes;
    if (location.size > maxBytes) {
      if (!options.minOneBatch) return { ok: true, records: EMPTY_RECORDS };
      budget = location.size;
    }

    // Plan the byte ranges (first pass), then read them into one fresh buffer.
    let total = 0;
    for (let i = first; i < this.#segments.length && total < budget; i++) {
      const segment = this.#segments[i]!;
      if (i > first && segment.baseOffset >= limit) break;
      const from = i === first ? location.position : 0;
      total += Math.min(segment.sizeBytes - from, budget - total);
    }
    const buffer = Buffer.allocUnsafe(total);
    let filled = 0;
    for (let i = first; filled < total; i++) {
      const segment = this.#segments[i]!;
      const from = i === first ? location.position : 0;
      const length = Math.min(segment.sizeBytes - from, total - filled);
      segment.readInto(buffer, filled, from, length);
      filled += length;
    }

    // Keep whole batches below the limit.
    let end = 0;
    while (end + LOG_OVERHEAD_BYTES <= total) {
      const size = readBatchSize(buffer, end);
      assert(size >= BATCH_HEADER_BYTES, `Stored batch has an implausible size: ${size}`);
      if (end + size > total) break;
      if (readBaseOffset(buffer, end) >= limit) break;
      end += size;
    }
    assert(end >= location.size, "A read must return its first batch");
    return { ok: true, records: buffer.subarray(0, end) };
  }

  /**
   * ListOffsets by timestamp: the first record (in offset order) with timestamp >=
   * `timestampMs`, or null when there is none. Exact for CreateTime batches (compressed
   * ones are decompressed for the lookup); a LogAppendTime batch answers its base offset.
   */
  offsetForTimestamp(timestampMs: number): TimestampOffset | null {
    this.#assertOpen();
    assert(Number.isInteger(timestampMs), `Timestamp is not an integer: ${timestampMs}`);
    assert(timestampMs >= 0, `Timestamp is negative: ${timestampMs}`);
    for (const segment of this.#segments) {
      if (segment.isEmpty || segment.maxTimestamp < timestampMs) continue;
      const found = segment.findByTimestamp(timestampMs);
      if (found === null) continue;
      // Retention may later move the log start inside a segment.
      if (found.offset >= this.#logStartOffset) return found;
      return { offset: this.#logStartOffset, timestamp: found.timestamp };
    }
    return null;
  }

  /** ListOffsets MAX_TIMESTAMP (-3): the first record holding the largest timestamp. */
  maxTimestamp(): TimestampOffset | null {
    this.#assertOpen();
    let best: Segment | null = null;
    for (const segment of this.#segments) {
      if (segment.isEmpty) continue;
      if (best === null || segment.maxTimestamp > best.maxTimestamp) best = segment;
    }
    if (best === null) return null;
    return best.findByTimestamp(best.maxTimestamp);
  }

  sizeBytes(): number {
    return this.#sizeBytes;
  }

  segmentCount(): number {
    return this.#segments.length;
  }

  /** fsyncs the active segment: everything appended so far survives a machine crash. */
  flush(): void {
    this.#assertOpen();
    this.#active().flush();
  }

  /** Closes every segment (the active one is fsynced). Idempotent. */
  close(): void {
    if (this.#closed) return;
    for (const segment of this.#segments) segment.close();
    this.#closed = true;
  }

  /** Closes the log and removes its directory (DeleteTopics). */
  deleteAll(): void {
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
    log.info("Deleted partition log", { dir: this.dir });
  }

  // -------------------------------------------------------------------------------------

  #assertOpen(): void {
    assert(!this.#closed, `Partition log ${this.dir} is closed`);
  }

  #active(): Segment {
    return this.#segments[this.#segments.length - 1]!;
  }

  /** The last segment whose base offset is <= `offset`. */
  #segmentIndexFor(offset: number): number {
    let low = 0;
    let high = this.#segments.length - 1;
    let found = 0;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.#segments[mid]!.baseOffset <= offset) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }

  /**
   * Starts a new segment when the active one is not empty and the append would make it
   * larger than segment.bytes, it is older than segment.ms, its relative offsets would
   * overflow, or its index would be full.
   */
  #maybeRoll(appendBytes: number, batchCount: number, lastOffset: number, nowMs: number): void {
    const active = this.#active();
    if (active.isEmpty) return;
    const config = this.#config;
    let reason: string | null = null;
    if (active.sizeBytes + appendBytes > config.segmentBytes) reason = "segment.bytes";
    else if (nowMs - active.rollTimeMs! > config.segmentMs) reason = "segment.ms";
    else if (lastOffset - active.baseOffset > RELATIVE_OFFSET_MAX) reason = "relative offsets";
    else if (active.indexEntries + batchCount > INDEX_ENTRIES_MAX) reason = "index full";
    if (reason === null) return;
    // Seal (fsync) before the next segment exists: only the last segment may be torn.
    active.seal();
    let next: Segment;
    try {
      next = Segment.create(this.dir, this.#logEndOffset, this.#cache);
    } catch (error) {
      // Keep the log usable: the sealed segment becomes the active one again.
      const interval = config.indexIntervalBytes;
      const reopened = Segment.recover(this.dir, active.baseOffset, interval, this.#cache, nowMs);
      this.#segments[this.#segments.length - 1] = reopened.segment;
      throw new StorageIoError(`Cannot roll ${this.dir}: ${String(error)}`, { cause: error });
    }
    this.#segments.push(next);
    syncDirectory(this.dir);
    log.debug("Rolled segment", { dir: this.dir, baseOffset: next.baseOffset, reason });
  }
}

/**
 * fsyncs a directory so a new segment file's name survives a machine crash. Platforms
 * that cannot fsync a directory (Windows) say so with EISDIR, EPERM or EINVAL.
 */
function syncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EISDIR" || code === "EPERM" || code === "EACCES") return;
    throw error;
  }
  try {
    fsyncSync(fd);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL") throw error;
  } finally {
    closeSync(fd);
  }
}
