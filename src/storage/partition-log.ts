/**
 * @module
 * The log of one partition replica: an ordered list of segments in one directory
 * (`<data-dir>/<topic>-<partition>/`), the last one active. This is the interface the
 * Kafka handlers call: append (Produce), read (Fetch), offsetForTimestamp and
 * maxTimestamp (ListOffsets), deleteRecordsBefore (DeleteRecords), deleteAll
 * (DeleteTopics); what replication calls: appendReplicated (a follower), setHighWatermark,
 * truncateTo, epochStarts; and what the node's cleaner tick drives: maybeFlush (flush.ms),
 * applyRetention (retention.ms / retention.bytes / log start) and deleteExpiredFiles
 * (file.delete.delay.ms). The log reads its clock; it owns no timer.
 *
 * Lifecycle: `open` loads the segments: those wholly below the recovery point by their
 * index files only, the others verified batch by batch and cut at the first damage
 * (nothing is verified after a clean shutdown). Then appends and reads run
 * synchronously until `close` or `deleteAll`.
 *
 * Invariants:
 * - logStartOffset <= highWatermark <= logEndOffset. With highWatermarkFollowsAppends (the
 *   default: a single node) the high watermark is the log end offset; without it the
 *   owner (replication) moves it forward with `setHighWatermark`, and only `truncateTo`
 *   lowers it. Nothing here acts on offsets at or above it: retention, DeleteRecords and
 *   compaction stay below it (records above it are not committed and may be truncated).
 * - first segment's base <= recoveryPoint <= logEndOffset; offsets below the recovery
 *   point are fsynced (a roll's background fsync of the sealed segment, passed in roll
 *   order; a flush fsyncs whatever is pending and the active segment).
 * - Segments are sorted by base offset; each base offset is the offset of its first batch
 *   as written (or, for an empty active segment, the log end offset). Compaction may
 *   remove that batch, so a segment's batches start at or after its base offset, and a
 *   cleaned segment may be empty.
 * - Appends are all-or-nothing per records blob: every batch is validated before any byte
 *   is written, and one blob never spans two segments. `append` assigns offsets;
 *   `appendReplicated` (a follower) keeps the leader's bytes and requires them to go on
 *   from its end (gaps left by the leader's cleaner included, overlaps refused).
 * - Reads return whole batches only and never go past the bytes of completed appends.
 * - Message bytes are never cached in process: reads go to the OS page cache.
 * - Retention deletes whole segments, oldest first, never the active one (it is rolled
 *   first when it must go); a deleted segment's files are renamed `.deleted` and removed
 *   file.delete.delay.ms later.
 * - Compaction (compaction.ts, driven through `cleanStep`) replaces runs of sealed
 *   segments by cleaned ones with the same first base offset (`replaceSegments`): offsets
 *   of kept records never change, but batches and whole segments may leave gaps, which
 *   reads skip (a fetch inside a gap gets the next batch).
 */
import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { join } from "node:path";
import {
  BATCH_HEADER_BYTES,
  COMPRESSION_CODE_MAX,
  COMPRESSION_MASK,
  type RecordsErrorKind,
  checkBatchFrame,
  readAttributes,
  readBaseOffset,
  readLastOffset,
  readLastOffsetDelta,
  readMaxTimestamp,
  readPartitionLeaderEpoch,
  readRecordCount,
  setLogAppendTime,
  setMaxTimestamp,
  stampBatch,
  validateRecords,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import {
  APPEND_BYTES_MAX,
  BATCH_BYTES_MAX,
  INDEX_ENTRIES_MAX,
  RELATIVE_OFFSET_MAX,
} from "./limits.ts";
import {
  DEFAULT_LOG_CONFIG,
  type LogConfig,
  assertLogConfig,
  batchBytesLimit,
  checkLogConfig,
} from "./log-config.ts";
import { type ReadCounter, Segment } from "./segment.ts";
import { type SegmentBuilder, recoverCleanerSwaps } from "./segment-builder.ts";
import {
  DELETED_SUFFIX,
  INDEX_SUFFIX,
  LOG_SUFFIX,
  REBUILD_SUFFIX,
  SEGMENT_FILE_PATTERN,
  StorageIoError,
  TIME_INDEX_SUFFIX,
  DELETED_DIR_SUFFIX,
  removeInBackground,
  segmentFileName,
  syncDirectory,
  syncInBackground,
  unlinkIfExists,
} from "./segment-files.ts";
import { FileSlice, type SliceRange } from "./file-slice.ts";
import { SegmentCache } from "./segment-cache.ts";
import {
  type CleanerOptions,
  type CleanerState,
  type CleanerStatus,
  type CleanerStep,
  LogCleaner,
  type PassResult,
  SwapInterruptedError,
} from "./compaction.ts";

export { DEFAULT_LOG_CONFIG, type LogConfig, checkLogConfig, SegmentCache, StorageIoError };

const log = logger("storage");

export interface PartitionLogOptions {
  dir: string;
  config: LogConfig;
  clock: Clock;
  /** Shared bounded cache of sealed segments' indexes and files; one per broker. */
  cache?: SegmentCache;
  /**
   * What the checkpoints say about this log. Without it (no checkpoint entry, a log of
   * its own such as the metadata log) the recovery point is 0: every segment is verified.
   */
  recovery?: RecoveryState;
  /** Bounds of the log cleaner (tests lower them); Kafka-like defaults otherwise. */
  cleaner?: CleanerOptions;
  /**
   * True (the default, a single node): every append moves the high watermark to the log
   * end. False (a replicated partition): appends leave it, and the owner moves it with
   * `setHighWatermark` once the records are committed.
   */
  highWatermarkFollowsAppends?: boolean;
  /**
   * With highWatermarkFollowsAppends false only: the high watermark at open (the
   * high-watermark checkpoint), clamped to [log start, log end]. Absent: the log end.
   */
  initialHighWatermark?: number;
  /**
   * fsyncs a rolled segment's files and then the directory, off the event loop
   * (segment-files.ts `syncInBackground`; tests replace it to choose when each finishes).
   */
  syncRolled?: (fds: readonly number[], dir: string) => Promise<void>;
}

/** A log's entries in the data dir's checkpoints, and how the node last stopped. */
export interface RecoveryState {
  /** Offsets below it were fsynced: segments wholly below it are not read on open. */
  recoveryPoint: number;
  /** The log start offset (DeleteRecords may have moved it inside a segment). */
  logStartOffset: number;
  /** The node stopped cleanly (logs closed, checkpoints written): nothing is verified. */
  cleanShutdown: boolean;
}

/** What `open` did, for the startup log line, tests and the startup benchmark. */
export interface OpenReport {
  cleanShutdown: boolean;
  /** Segments opened from their index files and file size only (below the recovery point). */
  segmentsTrusted: number;
  /** Segments walked batch by batch (at or after the recovery point; the last one always). */
  segmentsScanned: number;
  /** Bytes of .log files read while opening. */
  bytesRead: number;
  /** Bytes cut from the end of a damaged segment. */
  truncatedBytes: number;
  /** Whole segments removed because an earlier segment was damaged. */
  segmentsDropped: number;
  bytesDropped: number;
}

export type DeleteRecordsResult =
  | { ok: true; logStartOffset: number }
  | { ok: false; kind: "offsetOutOfRange" | "policyViolation"; message: string };

/** What one retention pass deleted. */
export interface RetentionResult {
  segmentsDeleted: number;
  bytesDeleted: number;
  logStartOffset: number;
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

/** `appendReplicated`'s refusals: those of `append`, or batches that do not continue the log. */
export type ReplicatedAppendErrorKind = RecordsErrorKind | "offsetMismatch";

export type ReplicatedAppendResult =
  | {
      ok: true;
      /** Base offset of the first batch; the log end offset when nothing was appended. */
      baseOffset: number;
      /** Last offset of the last batch; baseOffset - 1 when nothing was appended. */
      lastOffset: number;
      logEndOffset: number;
    }
  | { ok: false; kind: ReplicatedAppendErrorKind; message: string };

/** Where a leader epoch's batches begin in the log (Kafka's leader-epoch-checkpoint entry). */
export interface EpochStart {
  epoch: number;
  startOffset: number;
}

export type ReadResult =
  { ok: true; records: Uint8Array } | { ok: false; kind: "offsetOutOfRange" };

/** `readDeferred`: large reads stay in the segment files until sent. */
export type DeferredReadResult =
  { ok: true; records: Uint8Array | FileSlice } | { ok: false; kind: "offsetOutOfRange" };

/** A planned read range and the segment it is in. */
interface PlannedRange extends SliceRange {
  readonly segment: Segment;
}

type ReadPlan = { ok: true; ranges: PlannedRange[] } | { ok: false; kind: "offsetOutOfRange" };

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

const OUT_OF_RANGE: ReadResult & ReadPlan = Object.freeze({ ok: false, kind: "offsetOutOfRange" });
/** A log without checkpoint entries: every segment is verified, the log start is its first. */
const NO_CHECKPOINTS: RecoveryState = Object.freeze({
  recoveryPoint: 0,
  logStartOffset: 0,
  cleanShutdown: false,
});
const EMPTY_RECORDS = new Uint8Array(0);
const NOTHING_TO_READ: ReadPlan = Object.freeze({ ok: true, ranges: [] }) as ReadPlan;

/** A segment renamed for deletion, removed from disk once `dueMs` (monotonic) passes. */
interface PendingDelete {
  segment: Segment;
  dueMs: number;
}

/** A rolled segment whose files are fsynced off the event loop (see #roll). */
interface PendingSeal {
  readonly segment: Segment;
  /** The offset after its last batch: the recovery point once it is durable. */
  readonly end: number;
  /** Its .log and index descriptors, open until the background fsync has settled. */
  readonly files: readonly number[];
  /** Its files, and the directory naming them and the next segment, are fsynced. */
  durable: boolean;
  /** The background fsync has settled (its descriptors are closed). */
  settled: boolean;
}

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
  /**
   * Offsets below it are committed; consumers read up to it. Single node: the LEO.
   * Replicated: moved forward by the owner (`setHighWatermark`), down only by truncateTo.
   */
  #highWatermark: number;
  /** Appends move the high watermark to the log end (see PartitionLogOptions). */
  readonly #highWatermarkFollowsAppends: boolean;
  /** Offsets below it are fsynced; recovery verifies from here on (Kafka's recovery point). */
  #recoveryPoint: number;
  /** Monotonic ms of the last flush (or roll, or open), for flush.ms. */
  #lastFlushMs: number;
  /** Bytes of all segments' batches. */
  #sizeBytes: number;
  /**
   * Deleted segments waiting out file.delete.delay.ms, oldest first. Bounded by the
   * segments retention and DeleteRecords delete within that delay.
   */
  readonly #pendingDeletes: PendingDelete[] = [];
  /** Background removals of expired segments' files, until they settle. */
  readonly #removals = new Set<Promise<void>>();
  /**
   * Rolled segments not yet known durable, oldest first: the recovery point passes each
   * only once it and every older one are (a later fsync may finish first).
   */
  readonly #pendingSeals: PendingSeal[] = [];
  /** A background fsync failed: what was rolled may not be on disk (flush throws it). */
  #sealFailure: StorageIoError | null = null;
  readonly #sealWaiters: Array<() => void> = [];
  readonly #syncRolled: (fds: readonly number[], dir: string) => Promise<void>;
  readonly #openReport: Readonly<OpenReport>;
  /**
   * Compaction of this log (idle unless cleanup.policy has compact). Replaced by a fresh
   * one after `truncateTo`, whose construction clamps the cleaner's memory to the log end.
   */
  #cleaner: LogCleaner;
  readonly #cleanerOptions: CleanerOptions;
  #closed = false;

  private constructor(
    dir: string,
    config: LogConfig,
    clock: Clock,
    cache: SegmentCache,
    segments: Segment[],
    logStartOffset: number,
    recoveryPoint: number,
    highWatermark: number,
    highWatermarkFollowsAppends: boolean,
    report: OpenReport,
    cleanerOptions: CleanerOptions,
    syncRolled: (fds: readonly number[], dir: string) => Promise<void>,
  ) {
    assert(segments.length > 0, "A log has at least one segment");
    const active = segments[segments.length - 1]!;
    assert(active.isActive, "The last segment must be active");
    assert(logStartOffset >= segments[0]!.baseOffset, "Log start is below the first segment");
    assert(logStartOffset <= active.nextOffset, "Log start is past the log end");
    this.dir = dir;
    this.#config = config;
    this.#clock = clock;
    this.#cache = cache;
    this.#segments = segments;
    this.#logStartOffset = logStartOffset;
    this.#logEndOffset = active.nextOffset;
    assert(highWatermark >= logStartOffset, "High watermark is below the log start");
    assert(highWatermark <= this.#logEndOffset, "High watermark is past the log end");
    assert(
      highWatermarkFollowsAppends ? highWatermark === this.#logEndOffset : true,
      "A high watermark that follows appends is the log end",
    );
    this.#highWatermark = highWatermark;
    this.#highWatermarkFollowsAppends = highWatermarkFollowsAppends;
    assert(recoveryPoint >= segments[0]!.baseOffset, "Recovery point is below the first segment");
    assert(recoveryPoint <= this.#logEndOffset, "Recovery point is past the log end");
    this.#recoveryPoint = recoveryPoint;
    this.#lastFlushMs = clock.monotonicMs();
    this.#sizeBytes = segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);
    this.#openReport = Object.freeze(report);
    this.#cleanerOptions = cleanerOptions;
    this.#cleaner = new LogCleaner(this, clock, cleanerOptions);
    this.#syncRolled = syncRolled;
  }

  /**
   * Opens the log in `dir`, creating the directory and a first segment if needed.
   * Stray index files and `.deleted` leftovers are removed. Segments wholly below the
   * recovery point are checked cheaply (index sizes and last entries; indexes rebuilt if
   * missing or torn). The segment holding the recovery point and every later one are
   * verified batch by batch: the first damaged one is truncated at its first bad or
   * partial batch and the segments after it are deleted (Kafka does the same), each loss
   * logged. After a clean shutdown only the active segment's tail headers are walked, to
   * find its end. Throws if a segment below the recovery point proves corrupt: that is
   * not a crash fault.
   */
  static open(options: PartitionLogOptions): PartitionLog {
    const { dir, config, clock } = options;
    assertLogConfig(config);
    const cache = options.cache ?? new SegmentCache();
    const recovery = options.recovery ?? NO_CHECKPOINTS;
    assert(Number.isSafeInteger(recovery.recoveryPoint), "Recovery point is not an integer");
    assert(recovery.recoveryPoint >= 0, "Recovery point is negative");
    assert(Number.isSafeInteger(recovery.logStartOffset), "Log start is not an integer");
    assert(recovery.logStartOffset >= 0, "Log start is negative");
    const followsAppends = options.highWatermarkFollowsAppends ?? true;
    const initialHighWatermark = options.initialHighWatermark;
    assert(
      initialHighWatermark === undefined || !followsAppends,
      "An initial high watermark is for logs whose owner moves it",
    );
    assert(
      initialHighWatermark === undefined || Number.isSafeInteger(initialHighWatermark),
      `Initial high watermark is not an integer: ${initialHighWatermark}`,
    );
    mkdirSync(dir, { recursive: true });
    const bases = PartitionLog.#listSegments(dir);
    const report: OpenReport = {
      cleanShutdown: recovery.cleanShutdown,
      segmentsTrusted: 0,
      segmentsScanned: 0,
      bytesRead: 0,
      truncatedBytes: 0,
      segmentsDropped: 0,
      bytesDropped: 0,
    };
    const segments: Segment[] = [];
    if (bases.length === 0) {
      segments.push(Segment.create(dir, recovery.logStartOffset, cache));
      syncDirectory(dir);
    } else {
      PartitionLog.#loadSegments(dir, bases, config, clock, cache, recovery, report, segments);
    }

    let logStartOffset = Math.max(recovery.logStartOffset, segments[0]!.baseOffset);
    const logEndOffset = segments[segments.length - 1]!.nextOffset;
    if (logStartOffset > logEndOffset) {
      // Kafka's rule: data below the checkpointed log start is gone (lost files, or a
      // tail cut by recovery). Offsets below it are never handed out again.
      log.warn("Log ends below its log start offset; starting it empty at the log start", {
        dir,
        logStartOffset,
        logEndOffset,
        segmentsDeleted: segments.length,
      });
      for (const segment of segments.splice(0)) segment.delete();
      segments.push(Segment.create(dir, logStartOffset, cache));
      syncDirectory(dir);
    }
    logStartOffset = Math.max(logStartOffset, segments[0]!.baseOffset);
    // Kafka's rule: after a clean shutdown everything was flushed; after a crash the
    // recovery point stays (verified bytes may be in the page cache only) until a flush.
    const firstBase = segments[0]!.baseOffset;
    const endOffset = segments[segments.length - 1]!.nextOffset;
    const recoveryPoint = recovery.cleanShutdown
      ? endOffset
      : Math.max(firstBase, Math.min(recovery.recoveryPoint, endOffset));
    // Kafka's rule (UnifiedLog.updateHighWatermark): a checkpointed high watermark is
    // clamped into the log; it may be past the end after recovery cut the tail, or below
    // the start after retention moved it. A stale one only hides committed records from
    // consumers until the owner moves it again.
    const highWatermark = followsAppends
      ? endOffset
      : Math.max(logStartOffset, Math.min(initialHighWatermark ?? endOffset, endOffset));
    const partitionLog = new PartitionLog(
      dir,
      { ...config },
      clock,
      cache,
      segments,
      logStartOffset,
      recoveryPoint,
      highWatermark,
      followsAppends,
      report,
      options.cleaner ?? {},
      options.syncRolled ?? syncInBackground,
    );
    log.debug("Opened partition log", {
      dir,
      segments: segments.length,
      logStartOffset: partitionLog.logStartOffset,
      logEndOffset: partitionLog.logEndOffset,
      scanned: report.segmentsScanned,
      bytesRead: report.bytesRead,
    });
    return partitionLog;
  }

  /** Opens existing segments into `segments` (see `open`), recording what it did. */
  static #loadSegments(
    dir: string,
    bases: readonly number[],
    config: LogConfig,
    clock: Clock,
    cache: SegmentCache,
    recovery: RecoveryState,
    report: OpenReport,
    segments: Segment[],
  ): void {
    const interval = config.indexIntervalBytes;
    const recoveryPoint = recovery.cleanShutdown
      ? Number.POSITIVE_INFINITY
      : recovery.recoveryPoint;
    const counter: ReadCounter = { bytesRead: 0 };
    let i = 0;
    // Wholly below the recovery point: fsynced when sealed, so only the indexes are checked.
    for (; i < bases.length - 1 && bases[i + 1]! <= recoveryPoint; i++) {
      segments.push(Segment.openSealed(dir, bases[i]!, bases[i + 1]!, interval, cache, counter));
      report.segmentsTrusted++;
    }
    // The segment holding the recovery point and all later ones: verified.
    const nowMs = clock.nowMs();
    for (; i < bases.length; i++) {
      const last = i === bases.length - 1;
      const recovered = Segment.recover(dir, bases[i]!, interval, cache, nowMs, {
        verifyFromOffset: recoveryPoint,
        ...(last ? {} : { nextBaseOffset: bases[i + 1]! }),
        cleanShutdown: recovery.cleanShutdown,
      });
      report.segmentsScanned++;
      report.bytesRead += recovered.bytesRead;
      report.truncatedBytes += recovered.truncatedBytes;
      segments.push(recovered.segment);
      if (last) break;
      if (recovered.truncatedBytes === 0) {
        // Intact, but past the recovery point: its roll's background fsync may not have
        // run before the process died (the page cache kept its bytes). fsynced now, so
        // that the recovery point may pass it.
        recovered.segment.seal(true);
        continue;
      }
      // A damaged segment that is not the last: what follows it cannot be appended after
      // the cut, so it goes (Kafka deletes it too). The cut segment becomes the active one.
      const dropped = bases.slice(i + 1);
      let bytes = 0;
      for (const base of dropped) bytes += PartitionLog.#removeSegmentFiles(dir, base);
      report.segmentsDropped += dropped.length;
      report.bytesDropped += bytes;
      log.warn("Deleted the segments after a damaged one", {
        dir,
        damagedSegment: bases[i]!,
        firstDroppedOffset: recovered.segment.nextOffset,
        droppedSegments: dropped.join(","),
        droppedBytes: bytes,
      });
      syncDirectory(dir);
      break;
    }
    report.bytesRead += counter.bytesRead;
  }

  /** Removes a segment's three files; returns the .log file's size. */
  static #removeSegmentFiles(dir: string, baseOffset: number): number {
    const logPath = join(dir, segmentFileName(baseOffset, LOG_SUFFIX));
    const size = statSync(logPath).size;
    for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) {
      try {
        unlinkSync(join(dir, segmentFileName(baseOffset, suffix)));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    return size;
  }

  /**
   * Base offsets of the segments in `dir`, sorted; removes files that belong to none and
   * the `.deleted` files of segments deleted before the last stop.
   */
  static #listSegments(dir: string): number[] {
    // A cleaner swap a crash interrupted is finished (or undone) first.
    recoverCleanerSwaps(dir);
    const names = readdirSync(dir);
    const logs = new Set<string>();
    for (const name of names) {
      const match = SEGMENT_FILE_PATTERN.exec(name);
      if (match !== null && match[2] === "log") logs.add(match[1]!);
    }
    for (const name of names) {
      const match = SEGMENT_FILE_PATTERN.exec(name);
      const stray = (match !== null && !logs.has(match[1]!)) || name.endsWith(REBUILD_SUFFIX);
      const deleted = name.endsWith(DELETED_SUFFIX);
      if (!stray && !deleted) continue;
      if (stray) log.info("Removing a file without its segment", { dir, file: name });
      // A `.deleted` file may be going already: the previous open's background removal.
      unlinkIfExists(join(dir, name));
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

  /** Offsets below it are fsynced (what the recovery-point checkpoint records). */
  get recoveryPoint(): number {
    return this.#recoveryPoint;
  }

  /** What `open` found and did. */
  get openReport(): Readonly<OpenReport> {
    return this.#openReport;
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

    this.#write(records, batches, baseOffset, lastOffset, nowMs);
    return {
      ok: true,
      baseOffset,
      lastOffset,
      logAppendTimeMs: logAppendTime ? nowMs : -1,
      logStartOffset: this.#logStartOffset,
    };
  }

  /**
   * A follower's append (Kafka's appendAsFollower): `records` are one or more v2 batches
   * exactly as the leader stored them, written byte for byte (offsets, leader epochs,
   * timestamps untouched). Checked as `append` checks a produce (framing, magic, size,
   * CRC, record count; the same error kinds), except that batches the leader's cleaner
   * compacted are accepted (fewer records than offsets, as recovery accepts them) and
   * max.message.bytes does not apply (the leader took the batch under its config, which
   * may have changed since; refusing it would stall the replica for good: Kafka's
   * followers ignore it too). The first batch must start at or after the log end and
   * each next one after the previous one's last offset (a gap is where the leader's
   * cleaner removed records: the log end then moves past it); an overlap is
   * offsetMismatch, so a resent or misplaced fetch never appends silently. All or
   * nothing; empty `records` append nothing and succeed. Index entries, rolling,
   * flush.messages and the high watermark (when it follows appends) as for `append`.
   * Throws StorageIoError when the write fails: the log is unchanged then.
   */
  appendReplicated(records: Uint8Array): ReplicatedAppendResult {
    this.#assertOpen();
    const logEndOffset = this.#logEndOffset;
    if (records.byteLength === 0) {
      return { ok: true, baseOffset: logEndOffset, lastOffset: logEndOffset - 1, logEndOffset };
    }
    if (records.byteLength > APPEND_BYTES_MAX) {
      const message = `Records are larger than one append: ${records.byteLength} bytes`;
      return { ok: false, kind: "tooLarge", message };
    }
    const checked = checkReplicatedBatches(records, logEndOffset);
    if (!checked.ok) return checked;
    const { batches, lastOffset } = checked;
    // Compacted batches carry more offsets than bytes, so unlike `append` a blob's offsets
    // are not bounded by its size: they must fit one segment's relative offsets.
    if (lastOffset - logEndOffset > RELATIVE_OFFSET_MAX) {
      const message = `Batches span more offsets than one segment holds: ${logEndOffset}..${lastOffset}`;
      return { ok: false, kind: "tooLarge", message };
    }
    this.#write(records, batches, logEndOffset, lastOffset, this.#clock.nowMs());
    return { ok: true, baseOffset: logEndOffset, lastOffset, logEndOffset: this.#logEndOffset };
  }

  /**
   * Writes a checked blob whose batches hold offsets [baseOffset, lastOffset] at the log
   * end: rolls first if needed, appends to the active segment, moves the log end (and the
   * high watermark when it follows appends), then applies flush.messages / flush.ms.
   */
  #write(
    records: Uint8Array,
    batches: ReadonlyArray<{ at: number; size: number; lastOffsetDelta: number }>,
    baseOffset: number,
    lastOffset: number,
    nowMs: number,
  ): void {
    assert(baseOffset === this.#logEndOffset, "A write starts at the log end");
    assert(lastOffset >= baseOffset, "A write holds at least one offset");
    assert(Number.isSafeInteger(lastOffset), "Offsets ran past 2^53");
    // A rolled segment could not be made durable: this log's disk is failing, and what
    // is written now might not survive either (Kafka takes such a log dir offline).
    if (this.#sealFailure !== null) throw this.#sealFailure;
    this.#maybeRoll(records.byteLength, batches.length, lastOffset, nowMs);
    const active = this.#active();
    active.append(records, batches, baseOffset, this.#config.indexIntervalBytes, nowMs);
    this.#logEndOffset = lastOffset + 1;
    if (this.#highWatermarkFollowsAppends) this.#highWatermark = this.#logEndOffset;
    this.#sizeBytes += records.byteLength;
    assert(active.nextOffset === this.#logEndOffset, "Segment and log disagree on the log end");
    // flush.messages / flush.ms: the append is answered only after the fsync they ask for.
    this.maybeFlush();
  }

  /**
   * Moves the high watermark forward to `offset` (clamped to the log end) and answers
   * it. Only for a log whose owner moves it (highWatermarkFollowsAppends false). An
   * offset at or below the current high watermark changes nothing: it only moves down
   * through `truncateTo`.
   *
   * Clamped, not asserted: a follower passes the leader's high watermark from a Fetch
   * answer, which is past its own log end while it catches up, and may be below its own
   * after an election (the new leader has not yet learned the last one). Neither is a
   * bug, and a value off the network must not crash the broker; consumers still never
   * see the high watermark go back or past what this log holds.
   */
  setHighWatermark(offset: number): number {
    this.#assertOpen();
    assert(!this.#highWatermarkFollowsAppends, "This log's high watermark follows its appends");
    // Any integer: one past 2^53 off the network is clamped like any other.
    assert(Number.isInteger(offset), `High watermark is not an integer: ${offset}`);
    const next = Math.min(offset, this.#logEndOffset);
    if (next > this.#highWatermark) this.#highWatermark = next;
    assert(this.#highWatermark >= this.#logStartOffset, "High watermark is below the log start");
    return this.#highWatermark;
  }

  /**
   * Where each leader epoch begins in the log, from the batch headers alone (to rebuild
   * a lost leader-epoch checkpoint; once per log at most). Kafka's cache rules: an epoch
   * counts when it is above every epoch seen before (a batch with a lower or equal epoch
   * is skipped), and batches without one (partitionLeaderEpoch -1) are skipped. As
   * Kafka's truncateFromStart leaves it, epochs wholly below the log start are left out
   * and the one holding the log start starts there. One 61-byte positional read per
   * batch, segment by segment: records are never read.
   */
  epochStarts(): EpochStart[] {
    this.#assertOpen();
    const logStart = this.#logStartOffset;
    const starts: EpochStart[] = [];
    let latest = -1;
    for (const segment of this.#segments) {
      segment.scanHeaders((header, at) => {
        const epoch = readPartitionLeaderEpoch(header, at);
        if (epoch <= latest) return false;
        latest = epoch;
        const startOffset = readBaseOffset(header, at);
        // The epoch holding the log start replaces every entry at or below it.
        if (startOffset <= logStart) starts.length = 0;
        starts.push({ epoch, startOffset: Math.max(startOffset, logStart) });
        return false;
      });
    }
    for (let i = 1; i < starts.length; i++) {
      assert(starts[i]!.epoch > starts[i - 1]!.epoch, "Epoch starts must increase in epoch");
      assert(
        starts[i]!.startOffset > starts[i - 1]!.startOffset,
        "Epoch starts must increase in offset",
      );
    }
    return starts;
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
    const plan = this.#planRead(fetchOffset, maxBytes, options);
    if (!plan.ok) return plan;
    return { ok: true, records: this.#readRanges(plan.ranges) };
  }

  /**
   * The same batches as `read`, but when they come to at least `deferFromBytes` they
   * stay in the segment files: a FileSlice the connection reads as it sends (Fetch).
   * `countRecords` false (a follower's fetch): the slice counts no records and is sent
   * with sendfile whatever its batch sizes.
   */
  readDeferred(
    fetchOffset: number,
    maxBytes: number,
    options: ReadOptions & { deferFromBytes: number; countRecords?: boolean },
  ): DeferredReadResult {
    const plan = this.#planRead(fetchOffset, maxBytes, options);
    if (!plan.ok) return plan;
    const total = plan.ranges.reduce((sum, range) => sum + range.length, 0);
    if (total === 0 || total < options.deferFromBytes)
      return { ok: true, records: this.#readRanges(plan.ranges) };
    return {
      ok: true,
      records: new FileSlice(plan.ranges, { countRecords: options.countRecords ?? true }),
    };
  }

  /** Where the batches `read` returns lie: whole batches, per segment, in offset order. */
  #planRead(fetchOffset: number, maxBytes: number, options: ReadOptions): ReadPlan {
    this.#assertOpen();
    assert(Number.isInteger(fetchOffset), `Fetch offset is not an integer: ${fetchOffset}`);
    assert(Number.isInteger(maxBytes), `maxBytes is not an integer: ${maxBytes}`);
    assert(maxBytes >= 0, `maxBytes is negative: ${maxBytes}`);
    if (fetchOffset < this.#logStartOffset || fetchOffset > this.#logEndOffset) return OUT_OF_RANGE;
    const limit = Math.min(options.maxOffset ?? this.#logEndOffset, this.#logEndOffset);
    if (fetchOffset >= limit) return NOTHING_TO_READ;

    const chunkBytes = this.#config.indexIntervalBytes + BATCH_HEADER_BYTES;
    let first = this.#segmentIndexFor(fetchOffset);
    let location = this.#segments[first]!.locate(fetchOffset, chunkBytes);
    while (location === null && first + 1 < this.#segments.length) {
      first++;
      location = this.#segments[first]!.locate(fetchOffset, chunkBytes);
    }
    // Compaction may have emptied the tail before the log end: nothing to return yet.
    if (location === null) return NOTHING_TO_READ;
    if (location.baseOffset >= limit) return NOTHING_TO_READ;
    let budget = maxBytes;
    if (location.size > maxBytes) {
      if (!options.minOneBatch) return NOTHING_TO_READ;
      budget = location.size;
    }

    // Per segment: the whole batches that fit what is left of the budget and start below
    // the limit. A segment that cannot give all it has ends the read (batches are
    // returned contiguously).
    const ranges: PlannedRange[] = [];
    let total = 0;
    for (let i = first; i < this.#segments.length && total < budget; i++) {
      const segment = this.#segments[i]!;
      if (i > first && segment.baseOffset >= limit) break;
      const from = i === first ? location.position : 0;
      let cap = from + (budget - total);
      if (limit < (this.#segments[i + 1]?.baseOffset ?? Infinity)) {
        const atLimit = segment.locate(limit, chunkBytes);
        if (atLimit !== null)
          cap = Math.min(
            cap,
            atLimit.baseOffset >= limit ? atLimit.position : atLimit.position + atLimit.size,
          );
      }
      const end = segment.wholeBatchesEnd(from, cap, chunkBytes);
      if (end > from)
        ranges.push({ segment, path: segment.logPath, position: from, length: end - from });
      total += end - from;
      if (end < segment.sizeBytes) break;
    }
    assert(total >= location.size, "A read must return its first batch");
    return { ok: true, ranges };
  }

  /** Reads planned ranges into one fresh buffer (one read per segment). */
  #readRanges(ranges: readonly PlannedRange[]): Uint8Array {
    if (ranges.length === 0) return EMPTY_RECORDS;
    const total = ranges.reduce((sum, range) => sum + range.length, 0);
    const buffer = Buffer.allocUnsafe(total);
    let filled = 0;
    for (const range of ranges) {
      range.segment.readInto(buffer, filled, range.position, range.length);
      filled += range.length;
    }
    return buffer;
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

  /** The segments, oldest first (a copy: retention may change the log's own list). */
  segments(): readonly Segment[] {
    this.#assertOpen();
    return this.#segments.slice();
  }

  /**
   * fsyncs the active segment: everything appended so far survives a machine crash, and
   * the recovery point moves to the log end. Throws StorageIoError if the fsync fails
   * (the recovery point stays; the data may or may not be on disk).
   */
  flush(): void {
    this.#assertOpen();
    if (this.#sealFailure !== null) throw this.#sealFailure;
    if (this.#recoveryPoint === this.#logEndOffset) {
      this.#lastFlushMs = this.#clock.monotonicMs();
      return;
    }
    try {
      this.#syncPendingSeals();
      this.#active().flush();
    } catch (error) {
      throw new StorageIoError(`Flush failed: ${this.dir}: ${String(error)}`, { cause: error });
    }
    this.#recoveryPoint = this.#logEndOffset;
    this.#lastFlushMs = this.#clock.monotonicMs();
  }

  /**
   * Flushes when flush.messages messages are unflushed, or the last flush is flush.ms
   * old and something is unflushed (Kafka's rules; checked on append and by the
   * cleaner tick). True when it flushed.
   */
  maybeFlush(): boolean {
    this.#assertOpen();
    const unflushed = this.#logEndOffset - this.#recoveryPoint;
    if (unflushed <= 0) return false;
    const config = this.#config;
    const sinceFlushMs = this.#clock.monotonicMs() - this.#lastFlushMs;
    if (unflushed < config.flushMessages && sinceFlushMs < config.flushMs) return false;
    this.flush();
    return true;
  }

  /**
   * One pass of Kafka's retention (UnifiedLog.deleteOldSegments), oldest segments first
   * and only a prefix of the log: segments wholly below the log start; then, when
   * cleanup.policy includes delete, sealed segments while the log is larger than
   * retention.bytes, and segments whose newest timestamp is more than retention.ms old.
   * An expired, non-empty active segment is rolled first so it can go too. The log start
   * moves to the first remaining segment. Throws StorageIoError when a rename fails.
   */
  applyRetention(): RetentionResult {
    this.#assertOpen();
    const result = { segmentsDeleted: 0, bytesDeleted: 0, logStartOffset: this.#logStartOffset };
    const add = (deleted: { segments: number; bytes: number }) => {
      result.segmentsDeleted += deleted.segments;
      result.bytesDeleted += deleted.bytes;
    };
    add(this.#deleteBelowLogStart());
    const config = this.#config;
    if (config.cleanupPolicy.delete) {
      if (config.retentionBytes >= 0 && this.#sizeBytes >= config.retentionBytes) {
        let excess = this.#sizeBytes - config.retentionBytes;
        const count = this.#deletablePrefix(false, (segment) => {
          if (excess - segment.sizeBytes < 0) return false;
          excess -= segment.sizeBytes;
          return true;
        });
        add(this.#deleteSegments(count, "retention.bytes"));
      }
      if (config.retentionMs >= 0) {
        const nowMs = this.#clock.nowMs();
        const expired = (segment: Segment) =>
          nowMs - segment.largestTimestampMs() > config.retentionMs;
        add(this.#deleteSegments(this.#deletablePrefix(true, expired), "retention.ms"));
      }
    }
    result.logStartOffset = this.#logStartOffset;
    return result;
  }

  /**
   * DeleteRecords: moves the log start offset up to `offset` (never down) and deletes
   * the segments wholly below it. Kafka's rules: only with cleanup.policy delete
   * (policyViolation otherwise), and `offset` within [0, highWatermark]
   * (offsetOutOfRange otherwise). Answers the log start afterwards (the low watermark).
   */
  deleteRecordsBefore(offset: number): DeleteRecordsResult {
    this.#assertOpen();
    assert(Number.isSafeInteger(offset), `DeleteRecords offset is not an integer: ${offset}`);
    if (!this.#config.cleanupPolicy.delete) {
      const message = "Records of a topic without cleanup.policy delete cannot be deleted";
      return { ok: false, kind: "policyViolation", message };
    }
    if (offset < 0 || offset > this.#highWatermark) {
      const message = `Offset ${offset} is outside [0, ${this.#highWatermark}] (high watermark)`;
      return { ok: false, kind: "offsetOutOfRange", message };
    }
    if (offset > this.#logStartOffset) {
      log.info("Log start moved by DeleteRecords", {
        dir: this.dir,
        from: this.#logStartOffset,
        to: offset,
      });
      this.#logStartOffset = offset;
      this.#deleteBelowLogStart();
    }
    return { ok: true, logStartOffset: this.#logStartOffset };
  }

  /**
   * Drops every batch whose last offset is >= `offset`, across segments, and answers the
   * new log end (<= `offset`: a batch holding `offset` goes whole, as in Kafka's
   * LogSegment.truncateTo). Replication and the Raft log need it to cut a divergent
   * suffix. `offset` must be at or above the log start; at or past the log end nothing
   * happens. Crash-safe: later segments are deleted newest first, then the segment
   * holding `offset` is cut and fsynced, so the files always hold a prefix of the log;
   * its indexes are rebuilt from the cut file. The high watermark and recovery point
   * move down to the new log end. When the cut falls inside a batch that straddles the
   * log start, the log restarts empty at the log start (Kafka's truncateFullyAndStartAt).
   * Throws StorageIoError when a file operation fails.
   */
  truncateTo(offset: number): number {
    this.#assertOpen();
    assert(Number.isSafeInteger(offset), `Truncation offset is not an integer: ${offset}`);
    assert(offset >= this.#logStartOffset, `Truncation below the log start: ${offset}`);
    if (offset >= this.#logEndOffset) return this.#logEndOffset;
    // A pass in progress refers to segments about to change.
    this.#cleaner.abort();
    const from = this.#logEndOffset;
    const keep = this.#segmentIndexFor(offset);
    try {
      for (let i = this.#segments.length - 1; i > keep; i--) {
        this.#segments[i]!.delete();
        this.#segments.pop();
      }
      assert(this.#segments.length === keep + 1, "Truncation left segments after the cut");
      syncDirectory(this.dir);
      this.#segments[keep] = this.#cutSegment(this.#segments[keep]!, offset);
    } catch (error) {
      if (error instanceof StorageIoError) throw error;
      throw new StorageIoError(`Cannot truncate ${this.dir}: ${String(error)}`, { cause: error });
    }
    let end = this.#active().nextOffset;
    if (end < this.#logStartOffset) {
      for (const segment of this.#segments.splice(0)) segment.delete();
      this.#segments.push(Segment.create(this.dir, this.#logStartOffset, this.#cache));
      syncDirectory(this.dir);
      end = this.#logStartOffset;
    }
    this.#logEndOffset = end;
    this.#highWatermark = Math.min(this.#highWatermark, end);
    const firstBase = this.#segments[0]!.baseOffset;
    this.#recoveryPoint = Math.max(firstBase, Math.min(this.#recoveryPoint, end));
    this.#sizeBytes = this.#segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);
    this.#cleaner = new LogCleaner(this, this.#clock, this.#cleanerOptions);
    log.info("Truncated log", { dir: this.dir, from, to: end, segments: this.#segments.length });
    return end;
  }

  /**
   * Cuts `segment` before the batch holding `offset` (or the first one after it) and
   * reopens it as the active segment with indexes rebuilt past the cut. The cut is
   * fsynced before the segment is reopened.
   */
  #cutSegment(segment: Segment, offset: number): Segment {
    const chunkBytes = this.#config.indexIntervalBytes + BATCH_HEADER_BYTES;
    const location = segment.isEmpty ? null : segment.locate(offset, chunkBytes);
    const position = location === null ? segment.sizeBytes : location.position;
    segment.close();
    const fd = openSync(segment.logPath, "r+");
    try {
      ftruncateSync(fd, position);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const interval = this.#config.indexIntervalBytes;
    const nowMs = this.#clock.nowMs();
    const reopened = Segment.recover(this.dir, segment.baseOffset, interval, this.#cache, nowMs);
    assert(reopened.truncatedBytes === 0, `Truncated segment is damaged: ${reopened.reason}`);
    return reopened.segment;
  }

  /** How dirty the log is for the cleaner, and whether a cleaning pass is due. */
  cleanerStatus(): CleanerStatus {
    this.#assertOpen();
    return this.#cleaner.status();
  }

  /**
   * Advances compaction by about `budgetBytes` of reading (the LogManager's tick calls
   * this for the dirtiest due log); idle unless cleanup.policy has compact.
   */
  cleanStep(budgetBytes: number): CleanerStep {
    this.#assertOpen();
    return this.#cleaner.step(budgetBytes);
  }

  /** Runs a whole cleaning pass now when one is due; null when none is. */
  compact(): PassResult | null {
    this.#assertOpen();
    return this.#cleaner.cleanNow();
  }

  /** What the cleaner remembers (first dirty offset, recent passes). */
  cleanerState(): CleanerState {
    return this.#cleaner.state;
  }

  /** True while `run` is a run of consecutive sealed segments of this log. */
  holdsSegments(run: readonly Segment[]): boolean {
    this.#assertOpen();
    return this.#runIndex(run) >= 0;
  }

  /**
   * For the cleaner: replaces the sealed segments `run` by `replacement`, a finished
   * SegmentBuilder with the base offset of the first of them, or removes them (null;
   * never the first segment, whose base offset holds the log start). Crash-safe: the
   * replacement is committed (`.swap`), the old segments renamed `.deleted` (removed
   * file.delete.delay.ms later, so readers still holding them can finish), then the
   * replacement renamed into place. Throws StorageIoError when the commit fails (nothing
   * changed) and SwapInterruptedError when a later step does: the log goes on reading
   * the old segments, and the next open finishes the swap from the files.
   */
  replaceSegments(run: readonly Segment[], replacement: SegmentBuilder | null): void {
    this.#assertOpen();
    const start = this.#runIndex(run);
    assert(start >= 0, "Replaced segments are not a run of this log's sealed segments");
    if (replacement === null) {
      assert(start > 0, "The first segment is replaced, never removed");
    } else {
      const base = run[0]!.baseOffset;
      assert(replacement.baseOffset === base, "Replacement must keep the base offset");
      try {
        replacement.commit();
      } catch (error) {
        const message = `Cannot commit a cleaned segment of ${this.dir}: ${String(error)}`;
        throw new StorageIoError(message, { cause: error });
      }
    }
    let installed: Segment | null = null;
    try {
      for (const segment of run) this.#retire(segment);
      if (replacement !== null) installed = replacement.install(this.#cache);
    } catch (error) {
      const message = `Swapping cleaned segments of ${this.dir} failed: ${String(error)}`;
      throw new SwapInterruptedError(message, { cause: error });
    }
    const dueMs = this.#clock.monotonicMs() + this.#config.fileDeleteDelayMs;
    let removedBytes = 0;
    for (const segment of run) {
      removedBytes += segment.sizeBytes;
      this.#pendingDeletes.push({ segment, dueMs });
    }
    if (installed === null) this.#segments.splice(start, run.length);
    else this.#segments.splice(start, run.length, installed);
    this.#sizeBytes += (installed?.sizeBytes ?? 0) - removedBytes;
    log.debug("Replaced segments with cleaned ones", {
      dir: this.dir,
      replaced: run.map((segment) => segment.baseOffset).join(","),
      bytesBefore: removedBytes,
      bytesAfter: installed?.sizeBytes ?? 0,
    });
  }

  /** Removes the files of deleted segments whose file.delete.delay.ms has passed. */
  deleteExpiredFiles(): number {
    this.#assertOpen();
    const nowMs = this.#clock.monotonicMs();
    let removed = 0;
    while (this.#pendingDeletes.length > 0 && this.#pendingDeletes[0]!.dueMs <= nowMs) {
      const pending = this.#pendingDeletes.shift()!;
      this.#track(pending.segment.deleteInBackground());
      removed++;
    }
    return removed;
  }

  /** Deleted segments whose files are still on disk (renamed `.deleted`). */
  pendingDeleteCount(): number {
    return this.#pendingDeletes.length;
  }

  /**
   * Closes every segment (the active one is fsynced, so the recovery point becomes the
   * log end). Files of deleted segments stay renamed; the next open removes them.
   * Idempotent.
   */
  close(): void {
    this.#close(true);
  }

  /**
   * Closes the log and removes its directory (DeleteTopics). Nothing is fsynced first:
   * the bytes are going, and a topic that was just written to may have a GiB of dirty
   * pages per partition that an fsync would write back with the event loop stopped.
   */
  deleteAll(): void {
    this.#close(false);
    // Renamed at once (nothing is created under the new name), removed in the background
    // (Kafka does the same): removing GiBs of segments takes the file system a while.
    const renamed = `${this.dir}.${randomBytes(6).toString("hex")}${DELETED_DIR_SUFFIX}`;
    try {
      renameSync(this.dir, renamed);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    this.#track(
      removeInBackground([renamed], (error) =>
        log.warn("Removing a deleted log's directory failed; the next start removes it", {
          dir: renamed,
          error: String(error),
        }),
      ),
    );
    log.info("Deleted partition log", { dir: this.dir });
  }

  /** Resolves once the files this log removes in the background are gone (tests). */
  async removalsSettled(): Promise<void> {
    await Promise.all([...this.#removals]);
  }

  #track(removal: Promise<void>): void {
    this.#removals.add(removal);
    void removal.then(() => this.#removals.delete(removal));
  }

  // -------------------------------------------------------------------------------------

  #close(sync: boolean): void {
    if (this.#closed) return;
    this.#cleaner.abort();
    if (sync) this.#syncPendingSeals();
    for (const segment of this.#segments) segment.close(sync);
    for (const pending of this.#pendingDeletes.splice(0)) pending.segment.close(sync);
    this.#recoveryPoint = this.#logEndOffset;
    this.#closed = true;
  }

  #assertOpen(): void {
    assert(!this.#closed, `Partition log ${this.dir} is closed`);
  }

  #active(): Segment {
    return this.#segments[this.#segments.length - 1]!;
  }

  /** Index of `run` in the segments when it is a run of sealed ones, else -1. */
  #runIndex(run: readonly Segment[]): number {
    if (run.length === 0) return -1;
    const start = this.#segments.indexOf(run[0]!);
    if (start < 0 || start + run.length >= this.#segments.length) return -1;
    for (let i = 1; i < run.length; i++) {
      if (this.#segments[start + i] !== run[i]) return -1;
    }
    return start;
  }

  /**
   * Renames a segment's files `.deleted` (unless a failed swap did already). A segment of
   * the same base offset deleted earlier (the cleaner rewrites the same base again) is
   * removed now: its `.deleted` name is about to be taken.
   */
  #retire(segment: Segment): void {
    if (segment.isRenamedForDeletion) return;
    const earlier = this.#pendingDeletes.findIndex(
      (pending) => pending.segment.baseOffset === segment.baseOffset,
    );
    if (earlier >= 0) {
      this.#pendingDeletes[earlier]!.segment.delete();
      this.#pendingDeletes.splice(earlier, 1);
    }
    segment.renameForDeletion();
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
   * How many leading segments `expired` allows to delete (Kafka's deletableSegments):
   * a prefix, stopping at the first segment it keeps, never past the high watermark,
   * never an empty active segment, and the active one only when `includeActive`.
   */
  #deletablePrefix(includeActive: boolean, expired: (segment: Segment) => boolean): number {
    let count = 0;
    for (let i = 0; i < this.#segments.length; i++) {
      const segment = this.#segments[i]!;
      const next = this.#segments[i + 1];
      if (next === undefined && (!includeActive || segment.isEmpty)) break;
      if (this.#highWatermark < (next?.baseOffset ?? this.#logEndOffset)) break;
      if (!expired(segment)) break;
      count++;
    }
    return count;
  }

  /** Deletes the segments wholly below the log start (after DeleteRecords moved it). */
  #deleteBelowLogStart(): { segments: number; bytes: number } {
    let count = 0;
    while (
      count + 1 < this.#segments.length &&
      this.#segments[count + 1]!.baseOffset <= this.#logStartOffset
    ) {
      count++;
    }
    return this.#deleteSegments(count, "log start");
  }

  /**
   * Deletes the first `count` segments: renamed `.deleted` now, removed after
   * file.delete.delay.ms. When that is every segment, the active one is rolled first so
   * the log keeps one. The log start moves to the first remaining segment.
   */
  #deleteSegments(count: number, reason: string): { segments: number; bytes: number } {
    if (count === 0) return { segments: 0, bytes: 0 };
    assert(count <= this.#segments.length, "Deleting more segments than the log has");
    if (count === this.#segments.length) {
      assert(!this.#active().isEmpty, "An empty active segment is never deleted");
      this.#roll(reason);
    }
    const deleted = this.#segments.slice(0, count);
    const dueMs = this.#clock.monotonicMs() + this.#config.fileDeleteDelayMs;
    let bytes = 0;
    let renamed = 0;
    try {
      for (const segment of deleted) {
        this.#retire(segment);
        renamed++;
        bytes += segment.sizeBytes;
        this.#pendingDeletes.push({ segment, dueMs });
      }
    } catch (error) {
      throw new StorageIoError(`Cannot delete a segment of ${this.dir}: ${String(error)}`, {
        cause: error,
      });
    } finally {
      // Whatever was renamed is out of the log, even if a later rename failed.
      this.#segments.splice(0, renamed);
      this.#sizeBytes -= bytes;
      const firstBase = this.#segments[0]!.baseOffset;
      this.#logStartOffset = Math.max(this.#logStartOffset, firstBase);
      // Nothing below the first segment is left to recover.
      this.#recoveryPoint = Math.max(this.#recoveryPoint, firstBase);
    }
    log.info("Deleted segments", {
      dir: this.dir,
      reason,
      baseOffsets: deleted.map((segment) => segment.baseOffset).join(","),
      bytes,
      logStartOffset: this.#logStartOffset,
      fileDeleteDelayMs: this.#config.fileDeleteDelayMs,
    });
    return { segments: renamed, bytes };
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
    this.#roll(reason);
  }

  /**
   * Seals the active (non-empty) segment and starts a new one at the log end. The sealed
   * segment's fsync runs in the background: on a busy log it waits for the disk to write
   * back up to segment.bytes of dirty pages, and would stop every connection meanwhile
   * (Kafka flushes a rolled segment on a background thread too). The recovery point
   * moves past the sealed segment once that fsync is done; until then a crash has
   * recovery verify it, and cut the log there if it was torn.
   */
  #roll(reason: string): void {
    const active = this.#active();
    assert(!active.isEmpty, "An empty segment is never rolled");
    const nowMs = this.#clock.nowMs();
    const config = this.#config;
    const end = this.#logEndOffset;
    const files = active.sealUnsynced();
    this.#lastFlushMs = this.#clock.monotonicMs();
    let next: Segment;
    try {
      next = Segment.create(this.dir, end, this.#cache);
    } catch (error) {
      for (const fd of files) closeSync(fd);
      // Keep the log usable: the sealed segment becomes the active one again.
      const interval = config.indexIntervalBytes;
      const reopened = Segment.recover(this.dir, active.baseOffset, interval, this.#cache, nowMs);
      this.#segments[this.#segments.length - 1] = reopened.segment;
      throw new StorageIoError(`Cannot roll ${this.dir}: ${String(error)}`, { cause: error });
    }
    this.#segments.push(next);
    const pending: PendingSeal = { segment: active, end, files, durable: false, settled: false };
    this.#pendingSeals.push(pending);
    void this.#sealInBackground(pending);
    log.debug("Rolled segment", { dir: this.dir, baseOffset: next.baseOffset, reason });
  }

  async #sealInBackground(pending: PendingSeal): Promise<void> {
    try {
      await this.#syncRolled(pending.files, this.dir);
      pending.durable = true;
    } catch (error) {
      this.#sealFailure ??= new StorageIoError(
        `fsync of a rolled segment failed: ${this.dir}: ${String(error)}`,
        { cause: error },
      );
      log.error("fsync of a rolled segment failed; the recovery point stays before it", {
        dir: this.dir,
        baseOffset: pending.segment.baseOffset,
        error: String(error),
      });
    } finally {
      for (const fd of pending.files) closeSync(fd);
      pending.settled = true;
      this.#passDurableSeals();
    }
  }

  /**
   * Moves the recovery point past the oldest rolled segments that are durable, in order;
   * one that failed holds it (recovery verifies from there). A segment gone from the log
   * meanwhile (retention, truncation, compaction) moves nothing.
   */
  #passDurableSeals(): void {
    const queue = this.#pendingSeals;
    while (queue.length > 0 && queue[0]!.settled && queue[0]!.durable) {
      const done = queue.shift()!;
      if (!this.#closed && this.#segments.includes(done.segment))
        this.#recoveryPoint = Math.max(this.#recoveryPoint, done.end);
    }
    if (queue.every((pending) => pending.settled))
      for (const wake of this.#sealWaiters.splice(0)) wake();
  }

  /** fsyncs, here and now, rolled segments whose background fsync has not finished. */
  #syncPendingSeals(): void {
    const open = this.#pendingSeals.filter((pending) => !pending.settled && !pending.durable);
    if (open.length === 0) return;
    for (const pending of open) {
      for (const fd of pending.files) fsyncSync(fd);
      pending.durable = true;
    }
    syncDirectory(this.dir);
  }

  /** Resolves once every rolled segment's background fsync has settled (tests, shutdown). */
  sealsSettled(): Promise<void> {
    if (this.#pendingSeals.every((pending) => pending.settled)) return Promise.resolve();
    return new Promise((resolve) => this.#sealWaiters.push(resolve));
  }
}

/** A follower's records blob, checked: its batches in order and the last offset they hold. */
type ReplicatedBatches =
  | { ok: true; batches: ReplicatedBatch[]; lastOffset: number }
  | { ok: false; kind: ReplicatedAppendErrorKind; message: string };

interface ReplicatedBatch {
  at: number;
  size: number;
  lastOffsetDelta: number;
}

/**
 * Checks a follower's records (see `appendReplicated`): the framing, magic, size and CRC
 * checks of `validateRecords` with its error kinds, the record count as recovery checks
 * it (compaction leaves fewer records than offsets, so records are not walked: the CRC
 * already proves the bytes are the leader's), and that the batches go on from
 * `logEndOffset` without an overlap (offsetMismatch); gaps are the leader's cleaner's.
 * Nothing is modified.
 */
function checkReplicatedBatches(records: Uint8Array, logEndOffset: number): ReplicatedBatches {
  const total = records.byteLength;
  assert(total > 0, "Replicated records are empty");
  const refuse = (kind: ReplicatedAppendErrorKind, message: string): ReplicatedBatches => ({
    ok: false,
    kind,
    message,
  });
  const batches: ReplicatedBatch[] = [];
  let expected = logEndOffset;
  let at = 0;
  while (at < total) {
    const frame = checkBatchFrame(records, at, BATCH_BYTES_MAX);
    if (!frame.ok) return frame;
    const size = frame.size;
    const count = readRecordCount(records, at);
    const lastOffsetDelta = readLastOffsetDelta(records, at);
    if (count < 1 || lastOffsetDelta < count - 1) {
      return refuse(
        "invalidRecord",
        `Batch record count does not fit its offsets: ${count} records, lastOffsetDelta ${lastOffsetDelta}, at ${at}`,
      );
    }
    const compression = readAttributes(records, at) & COMPRESSION_MASK;
    if (compression > COMPRESSION_CODE_MAX) {
      return refuse("corrupt", `Batch compression code is unknown: ${compression}, at ${at}`);
    }
    const baseOffset = readBaseOffset(records, at);
    // A gap is the leader's cleaner at work (Kafka's followers take it too); an overlap
    // is a misplaced or resent answer.
    if (baseOffset < expected) {
      const what = batches.length === 0 ? "the log end" : "the previous batch's end";
      return refuse(
        "offsetMismatch",
        `Batch at ${at} starts at offset ${baseOffset}, before ${expected} (${what})`,
      );
    }
    expected = readLastOffset(records, at) + 1;
    assert(Number.isSafeInteger(expected), "Offsets ran past 2^53");
    batches.push({ at, size, lastOffsetDelta });
    at += size;
  }
  assert(at === total, "Checking walked past the records");
  return { ok: true, batches, lastOffset: expected - 1 };
}
