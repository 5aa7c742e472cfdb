/**
 * @module
 * One log segment: `<base>.log` (RecordBatch v2 bytes as received, offsets stamped),
 * `<base>.index` (sparse offset → position) and `<base>.timeindex` (sparse
 * max-timestamp-so-far → offset), base being the 20-digit offset of its first batch.
 *
 * Lifecycle: a segment is created empty and *active* (it holds writable descriptors and
 * its indexes in memory), takes appends, and is *sealed* when the log rolls: a closing
 * time index entry is added, all three files are fsynced and closed. Sealed segments
 * never change; their indexes and read descriptors live in the shared SegmentCache.
 * Deleting one renames its files `.deleted` first (`renameForDeletion`); `delete`
 * removes them later, so whoever still holds the segment can read it until then. The log
 * cleaner replaces sealed segments by new files (`SegmentBuilder` in segment-builder.ts:
 * written under `.cleaned`, committed as `.swap`, renamed into place), never by changing
 * a file. File names and whole-range I/O are in segment-files.ts, the batch walker in
 * batch-scan.ts.
 *
 * Invariants:
 * - `sizeBytes` covers whole batches only; nothing is ever read past it.
 * - Batches are in increasing offset order; an index entry points at a batch start.
 * - A segment was fsynced when it was sealed, so only bytes after the log's recovery
 *   point can be torn or lost by a crash. Opening a log verifies those with `recover`
 *   (from the last index entry at or below the recovery point); segments wholly below
 *   it are opened with `openSealed`: sanity checks of their index files, rebuilt from
 *   the .log when missing, torn or implausibly short.
 *
 * All I/O is synchronous node:fs: page-cache reads and writes take microseconds, and
 * synchronous calls keep the order of appends, reads and rolls trivial.
 */
import { Buffer } from "node:buffer";
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import {
  BATCH_HEADER_BYTES,
  Compression,
  findRecordAtTimestamp,
  readBaseOffset,
  readBaseTimestamp,
  readCompression,
  readLastOffset,
  readMaxTimestamp,
  readTimestampType,
} from "../protocol/record-batch.ts";
import { DecompressionError, uncompressedTwin } from "../protocol/compression.ts";
import { assert } from "../util/assert.ts";
import { logger } from "../util/log.ts";
import { type BatchVisitor, type ScanMode, type ScanOutcome, scanBatches } from "./batch-scan.ts";
import {
  BATCH_BYTES_MAX,
  LOCATE_CHUNK_BYTES_MAX,
  OFFSET_INDEX_ENTRY_BYTES,
  RELATIVE_OFFSET_MAX,
  SCAN_CHUNK_BYTES,
  TIME_INDEX_ENTRY_BYTES,
} from "./limits.ts";
import { OffsetIndex } from "./offset-index.ts";
import { RecentBatches } from "./recent-batches.ts";
import type { SegmentCache } from "./segment-cache.ts";
import {
  DELETED_SUFFIX,
  INDEX_SUFFIX,
  LOG_SUFFIX,
  StorageIoError,
  TIME_INDEX_SUFFIX,
  readFully,
  removeInBackground,
  replaceFile,
  segmentFileName,
  writeFully,
} from "./segment-files.ts";
import { TimeIndex } from "./time-index.ts";

const log = logger("storage");

/**
 * Index entries an active segment keeps in memory before writing them to its index
 * files. Writing each entry as it is made cost a pwrite per index.interval.bytes per
 * file (about one system call for every two 1 KiB messages, a tenth of what a small
 * produce costs); batched, it is one per 32. Nothing depends on the files being
 * current: the active segment is read through its in-memory indexes, a flush, seal or
 * close writes the rest first, and recovery re-adds entries missing after a crash (it
 * verifies from the last entry on disk at or below the recovery point, so at most this
 * many entries' worth of batches more).
 */
export const INDEX_ENTRIES_PER_WRITE = 32;

// ---------------------------------------------------------------------------------------

/** Where a batch lies in a segment's .log file. */
export interface BatchLocation {
  position: number;
  size: number;
  baseOffset: number;
  lastOffset: number;
}

/** State of the active segment only: writable files and its indexes in memory. */
interface Writer {
  logFd: number;
  indexFd: number;
  timeIndexFd: number;
  offsetIndex: OffsetIndex;
  timeIndex: TimeIndex;
  /** Entries of each index already written to its file. */
  indexPersisted: number;
  timeIndexPersisted: number;
  /** Log bytes appended since the last index entry (index.interval.bytes rule). */
  bytesSinceIndexEntry: number;
  /** Offset after the last batch; baseOffset when empty. */
  nextOffset: number;
  /** Base offset of the last batch, -1 when empty. */
  lastBatchBaseOffset: number;
  /** Wall-clock ms of the first append (segment.ms), null when empty. */
  rollTimeMs: number | null;
}

/** How to open a segment that may have been written when the process died. */
export interface RecoverOptions {
  /**
   * The log's recovery point: batches from this offset on are verified (length, magic,
   * CRC, record count, offsets). Index entries at or below it are trusted (after cheap
   * consistency checks) and the scan starts at the last of them. The default,
   * +Infinity, trusts every consistent entry and verifies what follows the last one.
   */
  verifyFromOffset?: number;
  /** Base offset of the next segment when this one is not the last: batches end below it. */
  nextBaseOffset?: number;
  /**
   * After a clean shutdown: the tail after the last index entry is walked header by
   * header (no CRC), only to find the segment's end; if the headers do not add up the
   * tail is verified after all.
   */
  cleanShutdown?: boolean;
}

/** Result of opening a segment after a possibly unclean stop. */
export interface RecoveredSegment {
  /** The segment, open and active (the caller seals it if it is not the last). */
  segment: Segment;
  /** Bytes cut from the end of the .log file (torn or corrupt tail). */
  truncatedBytes: number;
  /** Why the tail was cut; empty when nothing was. */
  reason: string;
  /** Bytes of the .log file read to open it. */
  bytesRead: number;
}

/** Counts bytes of .log files read while opening a log (recovery's cost, for reports). */
export interface ReadCounter {
  bytesRead: number;
}

interface SegmentPaths {
  logPath: string;
  indexPath: string;
  timeIndexPath: string;
}

function paths(dir: string, baseOffset: number): SegmentPaths {
  return {
    logPath: join(dir, segmentFileName(baseOffset, LOG_SUFFIX)),
    indexPath: join(dir, segmentFileName(baseOffset, INDEX_SUFFIX)),
    timeIndexPath: join(dir, segmentFileName(baseOffset, TIME_INDEX_SUFFIX)),
  };
}

function fileSize(path: string): number {
  return statSync(path).size;
}

function int32FromFile(fd: number, position: number): number {
  const bytes = Buffer.allocUnsafe(4);
  const n = readFully(fd, bytes, 0, 4, position);
  assert(n === 4, "Index file ended early");
  return bytes.readInt32BE(0);
}

function int64FromFile(fd: number, position: number): number {
  const bytes = Buffer.allocUnsafe(8);
  const n = readFully(fd, bytes, 0, 8, position);
  assert(n === 8, "Index file ended early");
  return bytes.readInt32BE(0) * 4294967296 + bytes.readUInt32BE(4);
}

/** Reads an index file, or returns null when it does not exist. */
function readIfExists(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** Builds index entries while batches are appended or scanned, by the interval rule. */
export class IndexBuilder {
  constructor(
    readonly offsetIndex: OffsetIndex,
    readonly timeIndex: TimeIndex,
    /** index.interval.bytes. */
    readonly intervalBytes: number,
    public bytesSinceEntry: number,
    /** Largest batch max timestamp so far in the segment, -1 if none. */
    public maxTimestamp: number,
  ) {}

  /** Accounts for the batch with base `offset` at `position`, adding entries when due. */
  add(offset: number, position: number, size: number, maxTimestamp: number): void {
    if (maxTimestamp > this.maxTimestamp) this.maxTimestamp = maxTimestamp;
    if (this.bytesSinceEntry >= this.intervalBytes && !this.offsetIndex.isFull) {
      this.offsetIndex.append(offset, position);
      this.timeIndex.append(this.maxTimestamp, offset);
      this.bytesSinceEntry = 0;
    }
    this.bytesSinceEntry += size;
  }

  /** The closing entry of a sealed segment: its largest timestamp at its last batch. */
  close(lastBatchBaseOffset: number): void {
    if (lastBatchBaseOffset < 0) return;
    const count = this.timeIndex.entryCount;
    if (count > 0 && this.timeIndex.offsetAt(count - 1) >= lastBatchBaseOffset) return;
    this.timeIndex.append(this.maxTimestamp, lastBatchBaseOffset);
  }
}

export class Segment {
  readonly baseOffset: number;
  /** Paths of the three files; they gain DELETED_SUFFIX when the segment is deleted. */
  #logPath: string;
  #indexPath: string;
  #timeIndexPath: string;
  readonly #cache: SegmentCache;
  /** Bytes of whole batches in the .log file. */
  #sizeBytes: number;
  /** Largest batch max timestamp in the segment, -1 when empty or untimed. */
  #maxTimestamp: number;
  /** Non-null while the segment is active. */
  #writer: Writer | null;
  /** Where the batches this process appended lie, while active (recent-batches.ts). */
  #recent: RecentBatches | null = null;
  #closed = false;

  private constructor(
    dir: string,
    baseOffset: number,
    cache: SegmentCache,
    sizeBytes: number,
    maxTimestamp: number,
    writer: Writer | null,
  ) {
    const files = paths(dir, baseOffset);
    this.baseOffset = baseOffset;
    this.#logPath = files.logPath;
    this.#indexPath = files.indexPath;
    this.#timeIndexPath = files.timeIndexPath;
    this.#cache = cache;
    this.#sizeBytes = sizeBytes;
    this.#maxTimestamp = maxTimestamp;
    this.#writer = writer;
  }

  /**
   * A new, empty, active segment. Its .log file must not exist yet. On failure (disk
   * full) the files it created are removed again and the error is thrown.
   */
  static create(dir: string, baseOffset: number, cache: SegmentCache): Segment {
    const files = paths(dir, baseOffset);
    const opened: number[] = [];
    let logFd: number;
    let indexFd: number;
    let timeIndexFd: number;
    try {
      opened.push((logFd = openSync(files.logPath, "wx+")));
      opened.push((indexFd = openSync(files.indexPath, "w+")));
      opened.push((timeIndexFd = openSync(files.timeIndexPath, "w+")));
    } catch (error) {
      for (const fd of opened) closeSync(fd);
      const created = [files.logPath, files.indexPath, files.timeIndexPath].slice(0, opened.length);
      for (const path of created) unlinkSync(path);
      throw error;
    }
    const writer: Writer = {
      logFd,
      indexFd,
      timeIndexFd,
      offsetIndex: new OffsetIndex(baseOffset),
      timeIndex: new TimeIndex(baseOffset),
      indexPersisted: 0,
      timeIndexPersisted: 0,
      bytesSinceIndexEntry: 0,
      nextOffset: baseOffset,
      lastBatchBaseOffset: -1,
      rollTimeMs: null,
    };
    return new Segment(dir, baseOffset, cache, 0, -1, writer);
  }

  /**
   * The sealed segment a SegmentBuilder just renamed into place (its files are complete
   * and fsynced; its size and largest timestamp are known). For `SegmentBuilder.install`.
   */
  static installed(
    dir: string,
    baseOffset: number,
    cache: SegmentCache,
    sizeBytes: number,
    maxTimestamp: number,
  ): Segment {
    return new Segment(dir, baseOffset, cache, sizeBytes, maxTimestamp, null);
  }

  /**
   * Opens a sealed segment: checks its indexes cheaply (sizes, last entries) and rebuilds
   * them from the .log when missing, torn or implausibly short. `nextBaseOffset` is the
   * base offset of the following segment. Throws when the .log itself is damaged: only
   * the last segment can be torn by a crash, so that is not a crash fault.
   */
  static openSealed(
    dir: string,
    baseOffset: number,
    nextBaseOffset: number,
    indexIntervalBytes: number,
    cache: SegmentCache,
    counter?: ReadCounter,
  ): Segment {
    assert(nextBaseOffset > baseOffset, "Segments must have increasing base offsets");
    const files = paths(dir, baseOffset);
    const logBytes = fileSize(files.logPath);
    const problem = Segment.#checkSealedIndexes(
      files,
      baseOffset,
      nextBaseOffset,
      logBytes,
      indexIntervalBytes,
    );
    let maxTimestamp: number;
    if (problem !== null) {
      log.warn("Rebuilding segment indexes", { path: files.logPath, reason: problem });
      maxTimestamp = Segment.#rebuildSealed(
        files,
        baseOffset,
        nextBaseOffset,
        logBytes,
        indexIntervalBytes,
        counter,
      );
    } else {
      const timeBytes = fileSize(files.timeIndexPath);
      if (timeBytes === 0) {
        maxTimestamp = -1;
      } else {
        const fd = openSync(files.timeIndexPath, "r");
        try {
          maxTimestamp = int64FromFile(fd, timeBytes - TIME_INDEX_ENTRY_BYTES);
        } finally {
          closeSync(fd);
        }
      }
    }
    return new Segment(dir, baseOffset, cache, logBytes, maxTimestamp, null);
  }

  /** Null when the indexes look complete, else why they need a rebuild. */
  static #checkSealedIndexes(
    files: SegmentPaths,
    baseOffset: number,
    nextBaseOffset: number,
    logBytes: number,
    indexIntervalBytes: number,
  ): string | null {
    if (!existsSync(files.indexPath)) return "Offset index is missing";
    if (!existsSync(files.timeIndexPath)) return "Time index is missing";
    const indexBytes = fileSize(files.indexPath);
    const timeBytes = fileSize(files.timeIndexPath);
    if (indexBytes % OFFSET_INDEX_ENTRY_BYTES !== 0) return `Offset index is torn: ${indexBytes}`;
    if (timeBytes % TIME_INDEX_ENTRY_BYTES !== 0) return `Time index is torn: ${timeBytes} bytes`;
    if (logBytes > 0 && timeBytes === 0) return "Time index has no closing entry";
    let lastPosition = 0;
    if (indexBytes > 0) {
      const fd = openSync(files.indexPath, "r");
      try {
        const lastRelative = int32FromFile(fd, indexBytes - OFFSET_INDEX_ENTRY_BYTES);
        lastPosition = int32FromFile(fd, indexBytes - 4);
        if (lastRelative < 0 || baseOffset + lastRelative >= nextBaseOffset) {
          return `Offset index ends at offset ${baseOffset + lastRelative}, past the segment`;
        }
      } finally {
        closeSync(fd);
      }
      if (lastPosition < 0 || lastPosition >= logBytes) {
        return `Offset index points past the log: ${lastPosition}`;
      }
    }
    // After the last entry come less than one interval of batches plus one batch; more
    // means entries are missing. The bound uses the largest possible batch, so a lowered
    // max.message.bytes never triggers a rebuild on every start.
    const tail = logBytes - lastPosition;
    if (tail > indexIntervalBytes + BATCH_BYTES_MAX) {
      return `Offset index is short: ${tail} bytes unindexed`;
    }
    return null;
  }

  /** Rebuilds both indexes of a sealed segment from its .log; returns its max timestamp. */
  static #rebuildSealed(
    files: SegmentPaths,
    baseOffset: number,
    nextBaseOffset: number,
    logBytes: number,
    indexIntervalBytes: number,
    counter: ReadCounter | undefined,
  ): number {
    const builder = new IndexBuilder(
      new OffsetIndex(baseOffset),
      new TimeIndex(baseOffset),
      indexIntervalBytes,
      0,
      -1,
    );
    const fd = openSync(files.logPath, "r");
    let expected = baseOffset;
    let lastBase = -1;
    let badOffsets = "";
    let outcome: ScanOutcome;
    try {
      const visit: BatchVisitor = (buf, at, position, size) => {
        const base = readBaseOffset(buf, at);
        const last = readLastOffset(buf, at);
        if (base < expected || last >= nextBaseOffset) {
          badOffsets = `Batch offsets ${base}..${last} are out of order`;
          return true;
        }
        builder.add(base, position, size, readMaxTimestamp(buf, at));
        expected = last + 1;
        lastBase = base;
        return false;
      };
      outcome = scanBatches(fd, 0, logBytes, "verify", SCAN_CHUNK_BYTES, visit);
    } finally {
      closeSync(fd);
    }
    if (counter !== undefined) counter.bytesRead += outcome.bytesRead;
    if (outcome.stop !== "end") {
      const reason = badOffsets !== "" ? badOffsets : outcome.reason;
      const where = `${files.logPath} at position ${outcome.position}`;
      throw new Error(`Segment is corrupt: ${where}: ${reason}`);
    }
    builder.close(lastBase);
    replaceFile(files.indexPath, builder.offsetIndex.entryBytes(0, builder.offsetIndex.entryCount));
    replaceFile(files.timeIndexPath, builder.timeIndex.entryBytes(0, builder.timeIndex.entryCount));
    return builder.maxTimestamp;
  }

  /**
   * Opens a segment that may have been written when the process died, as the active
   * segment. Index entries are kept while they are consistent and at or below
   * `verifyFromOffset`; from the last kept entry (or the start) every batch is verified
   * (length, magic, CRC, record count, increasing offsets below `nextBaseOffset`), and
   * the file is truncated at the first bad or partial batch. Missing index entries are
   * re-added; a cut is fsynced, nothing else is (the log's recovery point stays). With
   * `cleanShutdown` the tail is walked by headers only. `nowMs` stands in for the roll
   * time when the first batch has no usable timestamp.
   */
  static recover(
    dir: string,
    baseOffset: number,
    indexIntervalBytes: number,
    cache: SegmentCache,
    nowMs: number,
    options: RecoverOptions = {},
  ): RecoveredSegment {
    const verifyFrom = options.verifyFromOffset ?? Number.POSITIVE_INFINITY;
    const nextBase = options.nextBaseOffset ?? Number.POSITIVE_INFINITY;
    assert(nextBase > baseOffset, "Segments must have increasing base offsets");
    const files = paths(dir, baseOffset);
    const logFd = openSync(files.logPath, "r+");
    const fileBytes = fstatSync(logFd).size;
    const indexFile = readIfExists(files.indexPath);
    const timeFile = readIfExists(files.timeIndexPath);
    const offsetIndex = new OffsetIndex(baseOffset, indexFile ?? undefined);
    const timeIndex = new TimeIndex(baseOffset, timeFile ?? undefined);
    if (indexFile === null || timeFile === null) {
      // The time entries' maxima are only known together with the offset entries.
      offsetIndex.truncate(0);
      timeIndex.truncate(0);
    }
    // Keep the leading entries that are valid and paired (same batch in both indexes).
    let kept = Math.min(offsetIndex.validPrefix(fileBytes), timeIndex.validPrefix());
    for (let i = 0; i < kept; i++) {
      if (offsetIndex.relativeOffsetAt(i) !== timeIndex.relativeOffsetAt(i)) {
        kept = i;
        break;
      }
    }
    // Entries past the recovery point may describe bytes that never reached the disk.
    while (kept > 0 && offsetIndex.offsetAt(kept - 1) > verifyFrom) kept--;

    // Scan from the last kept entry; if the batch at that entry is itself bad, the entry
    // goes too and the scan starts one entry earlier.
    let mode: ScanMode = options.cleanShutdown === true ? "headers" : "verify";
    let bytesRead = 0;
    let builder: IndexBuilder;
    let outcome: ScanOutcome;
    let nextOffset: number;
    let lastBatchBase: number;
    let firstBatchMaxTimestamp: number | null;
    for (;;) {
      offsetIndex.truncate(kept);
      timeIndex.truncate(kept);
      const start = kept > 0 ? offsetIndex.positionAt(kept - 1) : 0;
      const startOffset = kept > 0 ? offsetIndex.offsetAt(kept - 1) : baseOffset;
      builder = new IndexBuilder(
        offsetIndex,
        timeIndex,
        indexIntervalBytes,
        0,
        kept > 0 ? timeIndex.timestampAt(kept - 1) : -1,
      );
      let expected = startOffset;
      let visited = 0;
      let badOffsets = false;
      nextOffset = baseOffset;
      lastBatchBase = -1;
      firstBatchMaxTimestamp = null;
      const visit: BatchVisitor = (buf, at, position, size) => {
        const base = readBaseOffset(buf, at);
        const last = readLastOffset(buf, at);
        const misplaced = visited === 0 && kept > 0 ? base !== startOffset : base < expected;
        if (misplaced || last - baseOffset > RELATIVE_OFFSET_MAX || last >= nextBase) {
          badOffsets = true;
          return true;
        }
        const maxTimestamp = readMaxTimestamp(buf, at);
        if (position === 0) firstBatchMaxTimestamp = maxTimestamp;
        if (visited === 0 && kept > 0) {
          // This batch already has its entries; count its bytes as the writer did.
          if (maxTimestamp > builder.maxTimestamp) builder.maxTimestamp = maxTimestamp;
          builder.bytesSinceEntry = size;
        } else {
          builder.add(base, position, size, maxTimestamp);
        }
        visited++;
        expected = last + 1;
        nextOffset = last + 1;
        lastBatchBase = base;
        return false;
      };
      outcome = scanBatches(logFd, start, fileBytes, mode, SCAN_CHUNK_BYTES, visit);
      bytesRead += outcome.bytesRead;
      if (badOffsets) {
        const reason = `Batch offsets out of order at offset ${expected}`;
        outcome = { ...outcome, stop: "corrupt", reason };
      }
      if (mode === "headers" && outcome.stop !== "end") {
        // Not expected after a clean shutdown: check the tail properly before cutting.
        const fields = { path: files.logPath, position: outcome.position, reason: outcome.reason };
        log.warn("Segment tail is damaged despite a clean shutdown; verifying it", fields);
        mode = "verify";
        continue;
      }
      if (kept > 0 && visited === 0) {
        kept--;
        continue;
      }
      break;
    }

    const validBytes = outcome.stop === "end" ? fileBytes : outcome.position;
    const truncatedBytes = fileBytes - validBytes;
    if (truncatedBytes > 0) {
      log.warn("Truncating a damaged segment", {
        path: files.logPath,
        position: validBytes,
        firstDroppedOffset: nextOffset,
        droppedBytes: truncatedBytes,
        reason: outcome.reason,
      });
      ftruncateSync(logFd, validBytes);
      fsyncSync(logFd);
    }

    if (validBytes > 0 && firstBatchMaxTimestamp === null) {
      const header = Buffer.allocUnsafe(BATCH_HEADER_BYTES);
      const n = readFully(logFd, header, 0, BATCH_HEADER_BYTES, 0);
      bytesRead += n;
      assert(n === BATCH_HEADER_BYTES, "Recovered segment lost its first batch header");
      firstBatchMaxTimestamp = readMaxTimestamp(header, 0);
    }
    // Kafka's rule for a reopened segment: its first batch's timestamp stands for when it
    // was started; a missing or future one counts as now.
    const rollTimeMs =
      validBytes === 0
        ? null
        : firstBatchMaxTimestamp !== null && firstBatchMaxTimestamp >= 0
          ? Math.min(firstBatchMaxTimestamp, nowMs)
          : nowMs;

    const indexFd = openSync(files.indexPath, indexFile === null ? "w+" : "r+");
    const timeIndexFd = openSync(files.timeIndexPath, timeFile === null ? "w+" : "r+");
    const writer: Writer = {
      logFd,
      indexFd,
      timeIndexFd,
      offsetIndex,
      timeIndex,
      indexPersisted: kept,
      timeIndexPersisted: kept,
      bytesSinceIndexEntry: builder.bytesSinceEntry,
      nextOffset,
      lastBatchBaseOffset: lastBatchBase,
      rollTimeMs,
    };
    ftruncateSync(indexFd, kept * OFFSET_INDEX_ENTRY_BYTES);
    ftruncateSync(timeIndexFd, kept * TIME_INDEX_ENTRY_BYTES);
    const segment = new Segment(dir, baseOffset, cache, validBytes, builder.maxTimestamp, writer);
    segment.#persistIndexes();
    // Nothing is fsynced here (Kafka neither): what was verified may sit in the page
    // cache only, so the log's recovery point stays where it was until the next flush.
    return { segment, truncatedBytes, reason: outcome.reason, bytesRead };
  }

  // -------------------------------------------------------------------------------------

  get logPath(): string {
    return this.#logPath;
  }

  get indexPath(): string {
    return this.#indexPath;
  }

  get timeIndexPath(): string {
    return this.#timeIndexPath;
  }

  /** True once the files carry DELETED_SUFFIX (see `renameForDeletion`). */
  get isRenamedForDeletion(): boolean {
    return this.#logPath.endsWith(DELETED_SUFFIX);
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  get isEmpty(): boolean {
    return this.#sizeBytes === 0;
  }

  get isActive(): boolean {
    return this.#writer !== null;
  }

  /** Largest batch max timestamp, -1 when empty. */
  get maxTimestamp(): number {
    return this.#maxTimestamp;
  }

  /**
   * The newest time in the segment for retention.ms (Kafka's largestTimestamp): the
   * largest batch timestamp, or the .log file's modification time when no batch has one.
   */
  largestTimestampMs(): number {
    this.#assertOpen();
    if (this.#maxTimestamp >= 0) return this.#maxTimestamp;
    return Math.floor(statSync(this.logPath).mtimeMs);
  }

  /** Offset after the last batch. Known for the active segment only. */
  get nextOffset(): number {
    return this.#activeWriter().nextOffset;
  }

  /** When the first batch was appended (segment.ms), null when empty. Active only. */
  get rollTimeMs(): number | null {
    return this.#activeWriter().rollTimeMs;
  }

  /** Offset index entries in use. Active only (bounds the index: a full one rolls). */
  get indexEntries(): number {
    return this.#activeWriter().offsetIndex.entryCount;
  }

  /**
   * Appends a validated, stamped records blob whose offsets start at `firstOffset`, the
   * segment's end. `batches` gives each batch's position and size in the blob. A leader's
   * batches follow each other; a follower's may leave gaps where the leader's cleaner
   * removed records (each batch starts at or after the previous one's end). Throws
   * StorageIoError if the .log write fails, leaving the segment as it was.
   */
  append(
    records: Uint8Array,
    batches: ReadonlyArray<{ at: number; size: number; lastOffsetDelta: number }>,
    firstOffset: number,
    indexIntervalBytes: number,
    nowMs: number,
  ): void {
    const writer = this.#activeWriter();
    assert(firstOffset === writer.nextOffset, `Append is not at the segment end: ${firstOffset}`);
    assert(batches.length > 0, "Append without batches");
    const start = this.#sizeBytes;
    try {
      writeFully(writer.logFd, records, start);
    } catch (error) {
      // Leave no partial batch behind for a later reader or recovery to trip over.
      try {
        ftruncateSync(writer.logFd, start);
      } catch (truncateError) {
        const fields = { path: this.logPath, error: String(truncateError) };
        log.error("Cannot cut a failed append", fields);
      }
      const message = `Append failed: ${this.logPath}: ${String(error)}`;
      throw new StorageIoError(message, { cause: error });
    }
    const builder = new IndexBuilder(
      writer.offsetIndex,
      writer.timeIndex,
      indexIntervalBytes,
      writer.bytesSinceIndexEntry,
      this.#maxTimestamp,
    );
    let offset = firstOffset;
    for (const batch of batches) {
      const base = readBaseOffset(records, batch.at);
      assert(base >= offset, "Batch offsets go backwards");
      builder.add(base, start + batch.at, batch.size, readMaxTimestamp(records, batch.at));
      writer.lastBatchBaseOffset = base;
      offset = base + batch.lastOffsetDelta + 1;
      this.#recent ??= new RecentBatches();
      this.#recent.add(base, offset - 1, start + batch.at, batch.size);
    }
    writer.bytesSinceIndexEntry = builder.bytesSinceEntry;
    writer.nextOffset = offset;
    writer.rollTimeMs ??= nowMs;
    this.#maxTimestamp = builder.maxTimestamp;
    this.#sizeBytes = start + records.byteLength;
    if (writer.offsetIndex.entryCount - writer.indexPersisted >= INDEX_ENTRIES_PER_WRITE) {
      this.#persistIndexes();
    }
  }

  /**
   * The batch holding `offset`, or else the first batch after it (offsets may have gaps),
   * or null when the segment ends before `offset`. One index lookup and a short scan.
   * `chunkBytes` is the first read's size: index.interval.bytes + 61 covers the scan.
   */
  locate(offset: number, chunkBytes: number): BatchLocation | null {
    this.#assertOpen();
    const recent = this.#recent?.locate(offset);
    if (recent !== undefined) return recent;
    const index = this.#offsetIndex();
    const entry = index.floor(offset);
    const from = entry >= 0 ? index.positionAt(entry) : 0;
    let found: BatchLocation | null = null;
    const outcome = scanBatches(
      this.#readFd(),
      from,
      this.#sizeBytes,
      "headers",
      Math.min(chunkBytes, LOCATE_CHUNK_BYTES_MAX),
      (buf, at, position, size) => {
        const last = readLastOffset(buf, at);
        if (last < offset) return false;
        found = { position, size, baseOffset: readBaseOffset(buf, at), lastOffset: last };
        return true;
      },
    );
    assert(outcome.stop !== "partial", `Segment is damaged: ${this.logPath}: ${outcome.reason}`);
    assert(outcome.stop !== "corrupt", `Segment is damaged: ${this.logPath}: ${outcome.reason}`);
    return found;
  }

  /**
   * The end of the last whole batch in [`from`, `cap`), where `from` is a batch start;
   * `from` when not even the first fits. Jumps to the nearest index entry below `cap`
   * and reads batch headers from there, so the cost does not grow with the distance; a
   * cap on an indexed batch start (every batch larger than index.interval.bytes has an
   * entry) is itself the answer, with no header read.
   */
  wholeBatchesEnd(from: number, cap: number, chunkBytes: number): number {
    this.#assertOpen();
    assert(from >= 0 && from <= this.#sizeBytes, `Batch start ${from} is outside the segment`);
    if (cap >= this.#sizeBytes) return this.#sizeBytes;
    if (cap <= from) return from;
    const index = this.#offsetIndex();
    const entry = index.floorPosition(cap);
    if (entry >= 0 && index.positionAt(entry) === cap) return cap;
    const start = Math.max(from, entry >= 0 ? index.positionAt(entry) : 0);
    let end = start;
    const outcome = scanBatches(
      this.#readFd(),
      start,
      this.#sizeBytes,
      "headers",
      Math.min(chunkBytes, LOCATE_CHUNK_BYTES_MAX),
      (_buf, _at, position, size) => {
        if (position + size > cap) return true;
        end = position + size;
        return false;
      },
    );
    assert(
      outcome.stop !== "partial" && outcome.stop !== "corrupt",
      `Segment is damaged: ${this.logPath}: ${outcome.reason}`,
    );
    return end;
  }

  /**
   * Visits every batch of the segment in order, header only: one positional read of the
   * 61 header bytes per batch, records never read (`buf` holds just the header). For
   * rare whole-log walks (rebuilding the leader epochs) that must not page a whole
   * segment through memory. The visitor returns true to stop.
   */
  scanHeaders(visit: BatchVisitor): void {
    this.#assertOpen();
    const outcome = scanBatches(
      this.#readFd(),
      0,
      this.#sizeBytes,
      "headers",
      BATCH_HEADER_BYTES,
      visit,
    );
    assert(
      outcome.stop !== "partial" && outcome.stop !== "corrupt",
      `Segment is damaged: ${this.logPath}: ${outcome.reason}`,
    );
  }

  /** Copies [position, position + length) of the .log into `target` at `targetAt`. */
  readInto(target: Uint8Array, targetAt: number, position: number, length: number): void {
    this.#assertOpen();
    assert(position >= 0, "Read starts before the segment");
    assert(position + length <= this.#sizeBytes, "Read goes past the segment's batches");
    const n = readFully(this.#readFd(), target, targetAt, length, position);
    assert(n === length, `Segment ${this.logPath} is shorter than its batches`);
  }

  /**
   * The first record with timestamp >= `timestampMs` (Kafka ListOffsets): exact for
   * CreateTime batches, compressed or not; a LogAppendTime batch (or one that cannot be
   * decompressed) answers its base offset. Null when every batch is older.
   */
  findByTimestamp(timestampMs: number): { offset: number; timestamp: number } | null {
    this.#assertOpen();
    if (this.isEmpty || this.#maxTimestamp < timestampMs) return null;
    const timeIndex = this.#timeIndex();
    const entry = timeIndex.lastBelow(timestampMs);
    let from = 0;
    if (entry >= 0) {
      const offsetIndex = this.#offsetIndex();
      const floor = offsetIndex.floor(timeIndex.offsetAt(entry));
      if (floor >= 0) from = offsetIndex.positionAt(floor);
    }
    let found: { position: number; size: number } | null = null;
    const fd = this.#readFd();
    const visit: BatchVisitor = (buf, at, position, size) => {
      if (readMaxTimestamp(buf, at) < timestampMs) return false;
      found = { position, size };
      return true;
    };
    const end = this.#sizeBytes;
    const outcome = scanBatches(fd, from, end, "headers", LOCATE_CHUNK_BYTES_MAX, visit);
    assert(outcome.stop !== "partial", `Segment is damaged: ${this.logPath}: ${outcome.reason}`);
    assert(outcome.stop !== "corrupt", `Segment is damaged: ${this.logPath}: ${outcome.reason}`);
    if (found === null) return null;
    const { position, size } = found;
    const batch = Buffer.allocUnsafe(size);
    this.readInto(batch, 0, position, size);
    const baseOffset = readBaseOffset(batch, 0);
    const maxTimestamp = readMaxTimestamp(batch, 0);
    if (readTimestampType(batch, 0) === "LogAppendTime") {
      return { offset: baseOffset, timestamp: maxTimestamp };
    }
    // Kafka answers with the exact record, so a compressed batch is decompressed here
    // (ListOffsets by timestamp is rare; produce and fetch never decompress).
    let readable: Uint8Array | null = batch;
    if (readCompression(batch, 0) !== Compression.none) {
      try {
        readable = uncompressedTwin(batch);
      } catch (error) {
        if (!(error instanceof DecompressionError)) throw error;
        log.warn("Cannot read a compressed batch for a timestamp lookup", {
          path: this.logPath,
          error: error.message,
        });
        readable = null;
      }
    }
    if (readable !== null) {
      const record = findRecordAtTimestamp(readable, 0, timestampMs);
      if (record !== null) {
        return { offset: baseOffset + record.offsetDelta, timestamp: record.timestamp };
      }
    }
    const baseTimestamp = readBaseTimestamp(batch, 0);
    const timestamp = baseTimestamp >= timestampMs ? baseTimestamp : maxTimestamp;
    return { offset: baseOffset, timestamp };
  }

  /**
   * Seals the active segment: closing time index entry, indexes written, all three files
   * fsynced (unless `sync` is false) and closed. Afterwards the segment is read through
   * the shared cache. Recovery reseals segments it verified: an intact one past the
   * recovery point may never have been fsynced (its roll's fsync runs off the event loop,
   * and the process may have died first), so recovery fsyncs it.
   */
  seal(sync = true): void {
    const files = this.sealUnsynced();
    try {
      if (sync) for (const fd of files) fsyncSync(fd);
    } finally {
      for (const fd of files) closeSync(fd);
    }
  }

  /**
   * Seals like `seal(false)` but leaves the three files open and hands them over (.log,
   * offset index, time index): the caller fsyncs them off the event loop and closes
   * them. A roll's fsync can take as long as the disk needs to write back up to
   * segment.bytes of dirty pages, and must not stop every connection meanwhile.
   */
  sealUnsynced(): number[] {
    const writer = this.#activeWriter();
    const { offsetIndex, timeIndex } = writer;
    const builder = new IndexBuilder(offsetIndex, timeIndex, 0, 0, this.#maxTimestamp);
    builder.close(writer.lastBatchBaseOffset);
    this.#persistIndexes();
    this.#detachWriter(writer);
    return [writer.logFd, writer.indexFd, writer.timeIndexFd];
  }

  /**
   * fsyncs the active segment's files: the .log, and the indexes so that recovery may
   * trust their entries up to the recovery point this flush establishes.
   */
  flush(): void {
    const writer = this.#activeWriter();
    this.#persistIndexes();
    fsyncSync(writer.logFd);
    fsyncSync(writer.indexFd);
    fsyncSync(writer.timeIndexFd);
  }

  /** Closes files (fsyncing an active segment first) and drops cached state. */
  /**
   * Closes the files; an active segment's .log is fsynced first unless `sync` is false
   * (its files are about to be removed: an fsync would only write back bytes nobody
   * will read, stalling the event loop for as long as the disk takes).
   */
  close(sync = true): void {
    if (this.#closed) return;
    const writer = this.#writer;
    if (writer !== null) {
      this.#persistIndexes();
      if (sync) fsyncSync(writer.logFd);
      this.#closeWriter(writer);
    }
    this.#forget();
    this.#closed = true;
  }

  /**
   * First step of deleting a sealed segment (Kafka's asynchronous delete): its files are
   * renamed to `<name>.deleted` and cached descriptors under the old names dropped. The
   * segment stays readable through this object (reads reopen the renamed files) until
   * `delete` removes them, so a reader that still holds it never sees a vanished file.
   */
  renameForDeletion(): void {
    this.#assertOpen();
    assert(this.#writer === null, `Only a sealed segment is deleted: ${this.logPath}`);
    assert(!this.isRenamedForDeletion, `Segment is already renamed: ${this.logPath}`);
    this.#forget();
    const renamed = (path: string): string => {
      const target = `${path}${DELETED_SUFFIX}`;
      try {
        renameSync(path, target);
      } catch (error) {
        // A missing index is rebuilt on open, so a sealed segment may lack one.
        if ((error as NodeJS.ErrnoException).code !== "ENOENT" || path === this.#logPath) {
          throw error;
        }
      }
      return target;
    };
    this.#logPath = renamed(this.#logPath);
    this.#indexPath = renamed(this.#indexPath);
    this.#timeIndexPath = renamed(this.#timeIndexPath);
  }

  /**
   * Closes the segment and removes its files, renamed for deletion, off the event loop
   * (`removeInBackground`); resolves once they are gone (or the removal failed: logged).
   */
  deleteInBackground(): Promise<void> {
    assert(this.isRenamedForDeletion, `Only a segment renamed for deletion: ${this.logPath}`);
    this.close();
    return removeInBackground([this.logPath, this.indexPath, this.timeIndexPath], (error) =>
      log.warn("Removing a deleted segment's file failed; the next start removes it", {
        error: String(error),
      }),
    );
  }

  /** Closes and removes the segment's files (under whichever names they have now). */
  delete(): void {
    this.close();
    for (const path of [this.logPath, this.indexPath, this.timeIndexPath]) {
      try {
        unlinkSync(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
  }

  // -------------------------------------------------------------------------------------

  #assertOpen(): void {
    assert(!this.#closed, `Segment ${this.logPath} is closed`);
  }

  #activeWriter(): Writer {
    this.#assertOpen();
    assert(this.#writer !== null, `Segment ${this.logPath} is sealed`);
    return this.#writer;
  }

  #offsetIndex(): OffsetIndex {
    return this.#writer?.offsetIndex ?? this.#cache.offsetIndex(this.indexPath, this.baseOffset);
  }

  #timeIndex(): TimeIndex {
    return this.#writer?.timeIndex ?? this.#cache.timeIndex(this.timeIndexPath, this.baseOffset);
  }

  #readFd(): number {
    return this.#writer?.logFd ?? this.#cache.readFd(this.logPath);
  }

  /**
   * Writes index entries not yet in their files. A failure is logged and retried on the
   * next append: the indexes are derived data that recovery completes anyway.
   */
  #persistIndexes(): void {
    const writer = this.#writer;
    assert(writer !== null, "Only an active segment writes indexes");
    try {
      const offsetCount = writer.offsetIndex.entryCount;
      if (writer.indexPersisted < offsetCount) {
        writeFully(
          writer.indexFd,
          writer.offsetIndex.entryBytes(writer.indexPersisted, offsetCount),
          writer.indexPersisted * OFFSET_INDEX_ENTRY_BYTES,
        );
        writer.indexPersisted = offsetCount;
      }
      const timeCount = writer.timeIndex.entryCount;
      if (writer.timeIndexPersisted < timeCount) {
        writeFully(
          writer.timeIndexFd,
          writer.timeIndex.entryBytes(writer.timeIndexPersisted, timeCount),
          writer.timeIndexPersisted * TIME_INDEX_ENTRY_BYTES,
        );
        writer.timeIndexPersisted = timeCount;
      }
    } catch (error) {
      const fields = { path: this.indexPath, error: String(error) };
      log.error("Writing index entries failed; will retry", fields);
    }
  }

  #closeWriter(writer: Writer): void {
    closeSync(writer.logFd);
    closeSync(writer.indexFd);
    closeSync(writer.timeIndexFd);
    this.#detachWriter(writer);
  }

  /** The segment stops being the active one; its files are the caller's to close. */
  #detachWriter(writer: Writer): void {
    assert(this.#writer === writer, "Detaching a writer this segment does not hold");
    this.#writer = null;
    // A sealed segment is read from its index: the ring's memory goes with the writer.
    this.#recent = null;
  }

  #forget(): void {
    this.#cache.forget(this.logPath);
    this.#cache.forget(this.indexPath);
    this.#cache.forget(this.timeIndexPath);
  }
}
