/**
 * @module
 * Key-based log compaction (Kafka's log cleaner, simplified): for a log with
 * `cleanup.policy` compact, keep only the latest record of each key in its sealed
 * segments, and drop tombstones (null values) `delete.retention.ms` after they were first
 * cleaned. Used by `__consumer_offsets` and by user topics with cleanup.policy=compact
 * (or compact,delete, where retention deletes old segments as well).
 *
 * One `LogCleaner` per log, owned by its PartitionLog; the LogManager's tick drives the
 * dirtiest due log a budget of bytes at a time (`step`), so a long pass is spread over
 * ticks between appends and reads. A pass:
 *
 * 1. **Due** when the sealed, cleanable bytes written since the last pass (dirty) are at
 *    least min(CLEANER_DIRTY_BYTES_MIN, segment.bytes) and more than
 *    min.cleanable.dirty.ratio of all sealed, cleanable bytes; or when tombstones kept by
 *    the last pass have since passed delete.retention.ms. Cleanable: below the active
 *    segment, below the first segment holding records younger than
 *    min.compaction.lag.ms, and below the first segment reaching the high watermark
 *    (Kafka cleans below the last stable offset only). The active segment is never
 *    rewritten.
 * 2. **Map**: reads the log from the first dirty offset to the high watermark as it was
 *    when the pass started (on one node the log end: the active segment's records
 *    included), building key → last offset (bounded by OFFSET_MAP_BYTES_MAX: a full map
 *    ends the pass's range early). Records above the high watermark are not committed
 *    and may be truncated: a record must never go because of one of them.
 * 3. **Clean**: groups consecutive cleanable segments (at most segment.bytes together, as
 *    Kafka does, so small cleaned segments merge) and rewrites each group into one
 *    segment with the first one's base offset: a record goes when its key has a later
 *    record in the map, and a tombstone also when its offset is below the tombstone
 *    horizon. Batches that keep everything are copied as they are; see batch-filter.ts
 *    for the rest. A group whose records all go disappears, unless it starts the log
 *    (its base offset is the log start). A single segment that loses nothing is left
 *    alone. The swap is crash-safe (SegmentBuilder, PartitionLog.replaceSegments).
 * 4. **Remember** (the `cleaner-state` file in the log's directory, replaced atomically):
 *    the first dirty offset, and when each recent pass ended and how far it reached. A
 *    tombstone's clock starts with the first pass that reaches it: the tombstone horizon
 *    is the furthest reach of the passes that ended at least delete.retention.ms ago.
 *    A lost or damaged file only costs work: everything is dirty again, and tombstones
 *    wait for a new pass's clock (later, never earlier).
 *
 * Invariants: offsets of kept records never change (batches keep their base offsets and
 * records their offset deltas); a record is dropped only when a later record of its key
 * exists in the log (the map only names records it read), or it is a tombstone whose
 * horizon passed; every pass covers a prefix of the log (from its first segment), so
 * the earlier values of a tombstone's key are gone once the tombstone was cleaned.
 *
 * Not here (Kafka has them): keeping the last batch of each producer for idempotence,
 * transaction-aware cleaning (aborted records, markers are kept as they are),
 * max.compaction.lag.ms, throttling, keyless records are kept rather than dropped.
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  readBaseOffset,
  readBatchSize,
  readIsControl,
  readLastOffset,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import { RecordCursor, filterBatch, forEachRecordOfBatch } from "./batch-filter.ts";
import { writeFileAtomically } from "./checkpoint.ts";
import {
  CLEANER_BACKOFF_MS,
  CLEANER_DIRTY_BYTES_MIN,
  CLEANER_PASSES_REMEMBERED_MAX,
  CLEANER_READ_BYTES,
  INDEX_ENTRIES_MAX,
  OFFSET_MAP_BYTES_MAX,
  OFFSET_MAP_ENTRY_OVERHEAD_BYTES,
  RELATIVE_OFFSET_MAX,
} from "./limits.ts";
import { type LogConfig, compactionConfig } from "./log-config.ts";
import type { ReadOptions, ReadResult } from "./partition-log.ts";
import type { Segment } from "./segment.ts";
import { SegmentBuilder } from "./segment-builder.ts";
import { StorageIoError } from "./segment-files.ts";

const log = logger("cleaner");

/** The cleaner's memory of past passes, in the log's directory. */
export const CLEANER_STATE_FILE = "cleaner-state";
const CLEANER_STATE_VERSION = 0;

/** What the cleaner needs of a log (PartitionLog provides it). */
export interface CleanableLog {
  readonly dir: string;
  readonly config: Readonly<LogConfig>;
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  /** Offsets at or above it may still be truncated: the cleaner never acts on them. */
  readonly highWatermark: number;
  /** The segments, oldest first; the last one is active. */
  segments(): readonly Segment[];
  read(fetchOffset: number, maxBytes: number, options: ReadOptions): ReadResult;
  /** True while `run` is a run of consecutive segments of the log, none active. */
  holdsSegments(run: readonly Segment[]): boolean;
  /**
   * Replaces `run` with the finished `replacement` (null: removes it). Throws
   * SwapInterruptedError when it fails after the commit point.
   */
  replaceSegments(run: readonly Segment[], replacement: SegmentBuilder | null): void;
}

/** A swap failed after its commit point: the next open finishes it on disk. */
export class SwapInterruptedError extends StorageIoError {
  override name = "SwapInterruptedError";
}

export interface CleanerOptions {
  /** Memory bound of the offset map (tests lower it). */
  offsetMapBytesMax?: number;
  /** Least dirty bytes for a pass, capped at segment.bytes. */
  dirtyBytesMin?: number;
}

/** A pass that ended at `timeMs` (wall clock) had cleaned every offset below `end`. */
export interface PassMark {
  readonly end: number;
  readonly timeMs: number;
}

/** What the cleaner remembers between passes (and restarts). */
export interface CleanerState {
  /** Offsets from here on were not yet cleaned (mapped) by any pass. */
  firstDirtyOffset: number;
  /** Tombstones the last pass kept. */
  tombstones: number;
  /** The tombstone horizon the last pass used. */
  horizon: number;
  /** Recent passes, oldest first, `end` increasing; bounded by CLEANER_PASSES_REMEMBERED_MAX. */
  passes: PassMark[];
}

export interface CleanerStatus {
  /** A pass runs, or should start now. */
  due: boolean;
  /** Share of dirty bytes among the cleanable sealed bytes, 0 when there are none. */
  dirtyRatio: number;
  dirtyBytes: number;
  cleanBytes: number;
}

/** What one pass did. */
export interface PassResult {
  /** Bytes of segment files (and of the log, while mapping) the pass read. */
  bytesRead: number;
  /** Cleanable segments before, and the segments that replaced them. */
  segmentsBefore: number;
  segmentsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsDropped: number;
  tombstonesDropped: number;
  tombstonesKept: number;
  /** Groups left alone because retention or DeleteRecords removed segments meanwhile. */
  groupsSkipped: number;
  /** The first dirty offset after the pass. */
  firstDirtyOffset: number;
  /** Tombstones below this offset were dropped. */
  horizon: number;
}

export type CleanerStep =
  | { kind: "idle" }
  | { kind: "running"; bytesRead: number }
  | { kind: "done"; bytesRead: number; result: PassResult }
  | { kind: "failed"; bytesRead: number; error: string };

interface Group {
  readonly segments: readonly Segment[];
  /** Segment being read, and the file position in it. */
  member: number;
  position: number;
  builder: SegmentBuilder | null;
  dropped: number;
}

interface Pass {
  /** Wall-clock ms when the pass started (min.compaction.lag.ms, the tombstone horizon). */
  readonly startedMs: number;
  /**
   * Mapping reads [mapFrom, mapTo): from the first dirty offset to the high watermark at
   * start (the log end on one node).
   */
  readonly mapFrom: number;
  readonly mapTo: number;
  /** Base offset of the first segment not cleaned (the active one, or a too-young one). */
  readonly cleanTo: number;
  /** Tombstones with offsets below it go. */
  readonly horizon: number;
  /** key (latin1 of its bytes) → last offset. */
  readonly map: Map<string, number>;
  mapBytes: number;
  /** Next offset to map; where mapping stopped once `groups` is set. */
  mapNext: number;
  mapFull: boolean;
  /** Batches whose records could not be read (kept whole, their keys unmapped). */
  unreadable: number;
  groups: Group[] | null;
  group: number;
  result: PassResult;
}

export class LogCleaner {
  readonly #log: CleanableLog;
  readonly #clock: Clock;
  readonly #offsetMapBytesMax: number;
  readonly #dirtyBytesMin: number;
  #state: CleanerState;
  #pass: Pass | null = null;
  /** Monotonic ms before which no new pass starts (after a failure). */
  #backoffUntilMs = Number.NEGATIVE_INFINITY;
  /** A swap failed after its commit point: no more passes until the log is reopened. */
  #broken = false;
  /** One reusable read buffer during a pass (grown to the largest batch met). */
  #buffer: Buffer | null = null;
  readonly #cursor = new RecordCursor();

  constructor(log: CleanableLog, clock: Clock, options: CleanerOptions = {}) {
    this.#log = log;
    this.#clock = clock;
    this.#offsetMapBytesMax = options.offsetMapBytesMax ?? OFFSET_MAP_BYTES_MAX;
    this.#dirtyBytesMin = options.dirtyBytesMin ?? CLEANER_DIRTY_BYTES_MIN;
    assert(this.#offsetMapBytesMax > OFFSET_MAP_ENTRY_OVERHEAD_BYTES, "Offset map is too small");
    assert(this.#dirtyBytesMin >= 0, "Dirty bytes minimum is negative");
    this.#state = clampToLog(readCleanerState(log.dir), log.logEndOffset);
  }

  /** What the cleaner remembers (a copy). */
  get state(): CleanerState {
    return { ...this.#state, passes: this.#state.passes.slice() };
  }

  get inProgress(): boolean {
    return this.#pass !== null;
  }

  /** How dirty the log is, and whether a pass should run. */
  status(): CleanerStatus {
    const config = this.#log.config;
    const idle: CleanerStatus = { due: false, dirtyRatio: 0, dirtyBytes: 0, cleanBytes: 0 };
    if (!config.cleanupPolicy.compact || this.#broken) return idle;
    const segments = this.#log.segments();
    const cleanTo = this.#cleanTo(segments);
    const firstDirty = Math.max(this.#state.firstDirtyOffset, this.#log.logStartOffset);
    let dirtyBytes = 0;
    let cleanBytes = 0;
    for (let i = 0; i + 1 < segments.length && segments[i]!.baseOffset < cleanTo; i++) {
      const end = segments[i + 1]!.baseOffset;
      if (end > firstDirty) dirtyBytes += segments[i]!.sizeBytes;
      else cleanBytes += segments[i]!.sizeBytes;
    }
    const total = dirtyBytes + cleanBytes;
    const dirtyRatio = total === 0 ? 0 : dirtyBytes / total;
    const status = { due: true, dirtyRatio, dirtyBytes, cleanBytes };
    if (this.#pass !== null) return status;
    if (this.#clock.monotonicMs() < this.#backoffUntilMs) return { ...status, due: false };
    const { minCleanableDirtyRatio } = compactionConfig(config);
    const dirtyMin = Math.min(this.#dirtyBytesMin, config.segmentBytes);
    const enough = dirtyBytes > 0 && dirtyBytes >= dirtyMin;
    if (enough && dirtyRatio > minCleanableDirtyRatio) return status;
    // Tombstones kept by the last pass may have come of age since.
    const tombstonesDue =
      this.#state.tombstones > 0 &&
      total > 0 &&
      this.#horizon(this.#clock.nowMs()) > this.#state.horizon;
    return { ...status, due: tombstonesDue };
  }

  /**
   * Advances the cleaning of this log by about `budgetBytes` of reading: starts a pass
   * when one is due, maps, cleans groups, finishes. I/O errors end the pass (its
   * uncommitted files removed) and pause the log for CLEANER_BACKOFF_MS.
   */
  step(budgetBytes: number): CleanerStep {
    assert(budgetBytes > 0, "A cleaner step needs a budget");
    if (this.#pass === null) {
      if (!this.status().due) return { kind: "idle" };
      this.#pass = this.#startPass();
    }
    const pass = this.#pass;
    let spent = 0;
    try {
      while (spent < budgetBytes) {
        if (!this.#log.config.cleanupPolicy.compact) {
          this.abort();
          return { kind: "idle" };
        }
        if (pass.groups === null) {
          spent += this.#mapSome(pass, budgetBytes - spent);
          continue;
        }
        if (pass.group >= pass.groups.length) {
          pass.result.bytesRead += spent;
          const result = this.#finishPass(pass);
          return { kind: "done", bytesRead: spent, result };
        }
        spent += this.#cleanSome(pass, pass.groups[pass.group]!, budgetBytes - spent);
      }
    } catch (error) {
      if (!isIoError(error)) throw error;
      if (error instanceof SwapInterruptedError) this.#broken = true;
      this.abort();
      this.#backoffUntilMs = this.#clock.monotonicMs() + CLEANER_BACKOFF_MS;
      const message = String(error);
      log.error("Cleaning failed; the log is left as it was", {
        dir: this.#log.dir,
        error: message,
        retryInMs: this.#broken ? undefined : CLEANER_BACKOFF_MS,
      });
      return { kind: "failed", bytesRead: spent, error: message };
    }
    pass.result.bytesRead += spent;
    return { kind: "running", bytesRead: spent };
  }

  /** Runs a whole pass now if one is due (tests, tools); null when none was. */
  cleanNow(): PassResult | null {
    for (;;) {
      const step = this.step(Number.MAX_SAFE_INTEGER);
      switch (step.kind) {
        case "idle":
          return null;
        case "done":
          return step.result;
        case "failed":
          throw new Error(`Cleaning failed: ${step.error}`);
        case "running":
          continue;
      }
    }
  }

  /** Drops the pass in progress, removing its uncommitted files. Idempotent. */
  abort(): void {
    const pass = this.#pass;
    this.#pass = null;
    this.#buffer = null;
    if (pass === null || pass.groups === null) return;
    const group = pass.groups[pass.group];
    if (group?.builder !== null && group?.builder !== undefined) {
      try {
        group.builder.abort();
      } catch (error) {
        // The next open removes `.cleaned` files anyway.
        const fields = { dir: this.#log.dir, error: String(error) };
        log.error("Removing a cleaned segment failed", fields);
      }
      group.builder = null;
    }
  }

  // -------------------------------------------------------------------------------------

  /**
   * Base offset of the first segment a pass must not rewrite: the active one, or an
   * earlier one that reaches the high watermark or is younger than min.compaction.lag.ms.
   */
  #cleanTo(segments: readonly Segment[]): number {
    const active = segments[segments.length - 1]!;
    const { minCompactionLagMs } = compactionConfig(this.#log.config);
    const highWatermark = this.#log.highWatermark;
    const nowMs = this.#clock.nowMs();
    for (let i = 0; i + 1 < segments.length; i++) {
      const segment = segments[i]!;
      if (segments[i + 1]!.baseOffset > highWatermark) return segment.baseOffset;
      if (minCompactionLagMs <= 0) continue;
      if (!segment.isEmpty && nowMs - segment.largestTimestampMs() < minCompactionLagMs) {
        return segment.baseOffset;
      }
    }
    return active.baseOffset;
  }

  /** The furthest reach of the passes that ended delete.retention.ms ago or earlier. */
  #horizon(nowMs: number): number {
    const { deleteRetentionMs } = compactionConfig(this.#log.config);
    let horizon = 0;
    for (const mark of this.#state.passes) {
      if (mark.timeMs + deleteRetentionMs <= nowMs) horizon = Math.max(horizon, mark.end);
    }
    return horizon;
  }

  #startPass(): Pass {
    const segments = this.#log.segments();
    const nowMs = this.#clock.nowMs();
    const logStart = this.#log.logStartOffset;
    const mapFrom = Math.max(this.#state.firstDirtyOffset, logStart);
    const pass: Pass = {
      startedMs: nowMs,
      mapFrom,
      mapTo: Math.max(mapFrom, Math.min(this.#log.logEndOffset, this.#log.highWatermark)),
      cleanTo: this.#cleanTo(segments),
      horizon: this.#horizon(nowMs),
      map: new Map(),
      mapBytes: 0,
      mapNext: mapFrom,
      mapFull: false,
      unreadable: 0,
      groups: null,
      group: 0,
      result: {
        bytesRead: 0,
        segmentsBefore: 0,
        segmentsAfter: 0,
        bytesBefore: 0,
        bytesAfter: 0,
        recordsDropped: 0,
        tombstonesDropped: 0,
        tombstonesKept: 0,
        groupsSkipped: 0,
        firstDirtyOffset: mapFrom,
        horizon: 0,
      },
    };
    pass.result.horizon = pass.horizon;
    log.debug("Cleaning pass started", {
      dir: this.#log.dir,
      mapFrom,
      mapTo: pass.mapTo,
      cleanTo: pass.cleanTo,
      horizon: pass.horizon,
    });
    return pass;
  }

  /** Maps up to `budget` bytes of the log; plans the groups once mapping is over. */
  #mapSome(pass: Pass, budget: number): number {
    let spent = 0;
    while (!pass.mapFull && pass.mapNext < pass.mapTo && spent < budget) {
      // Retention may move the log start meanwhile (compact,delete).
      if (pass.mapNext < this.#log.logStartOffset) pass.mapNext = this.#log.logStartOffset;
      if (pass.mapNext >= pass.mapTo) break;
      const maxBytes = Math.max(1, Math.min(CLEANER_READ_BYTES, budget - spent));
      const read = this.#log.read(pass.mapNext, maxBytes, {
        minOneBatch: true,
        maxOffset: pass.mapTo,
      });
      if (!read.ok) {
        pass.mapNext = Math.max(pass.mapNext + 1, this.#log.logStartOffset);
        continue;
      }
      const bytes = read.records;
      if (bytes.byteLength === 0) {
        // Only compacted-away offsets are left before mapTo.
        pass.mapNext = pass.mapTo;
        break;
      }
      spent += bytes.byteLength;
      for (let at = 0; at < bytes.byteLength;) {
        const size = readBatchSize(bytes, at);
        if (pass.mapBytes >= this.#offsetMapBytesMax) {
          pass.mapFull = true;
          pass.mapNext = readBaseOffset(bytes, at);
          break;
        }
        if (!readIsControl(bytes, at)) this.#mapBatch(pass, bytes, at);
        pass.mapNext = readLastOffset(bytes, at) + 1;
        at += size;
      }
    }
    if (pass.mapFull || pass.mapNext >= pass.mapTo) {
      if (pass.mapFull) {
        log.warn("Offset map is full; this pass cleans part of the dirty range", {
          dir: this.#log.dir,
          mappedTo: pass.mapNext,
          mapBytes: pass.mapBytes,
        });
      }
      pass.groups = this.#planGroups(pass);
    }
    return spent;
  }

  #mapBatch(pass: Pass, bytes: Uint8Array, at: number): void {
    const readable = forEachRecordOfBatch(bytes, at, this.#cursor, (cursor) => {
      const key = cursor.key();
      if (key === null) return;
      const name = latin1(key);
      if (!pass.map.has(name)) pass.mapBytes += key.byteLength + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
      pass.map.set(name, cursor.offset);
    });
    if (!readable) {
      pass.unreadable++;
      // Its keys stay out of the map: nothing is dropped because of it, and it is kept.
      log.warn("Cannot read a batch's records; it is kept as it is", {
        dir: this.#log.dir,
        baseOffset: readBaseOffset(bytes, at),
      });
    }
  }

  /**
   * Groups of consecutive segments to rewrite, from the log's first segment to the
   * cleanable end: together at most segment.bytes (pre-cleaning sizes, as Kafka), with
   * offsets a segment's int32 relative offsets can hold and an index that cannot fill.
   */
  #planGroups(pass: Pass): Group[] {
    const segments = this.#log.segments();
    const end = Math.min(pass.cleanTo, pass.mapNext);
    const config = this.#log.config;
    const bytesPerEntry = Math.max(config.indexIntervalBytes, 61);
    const groups: Group[] = [];
    let run: Segment[] = [];
    let runBytes = 0;
    const close = () => {
      if (run.length === 0) return;
      groups.push({ segments: run, member: 0, position: 0, builder: null, dropped: 0 });
      run = [];
      runBytes = 0;
    };
    for (let i = 0; i + 1 < segments.length; i++) {
      const segment = segments[i]!;
      // A segment straddling the end of a full map is cleaned too: records past the map
      // are kept unless the map names a later offset for their key.
      if (segment.baseOffset >= end) break;
      const segmentEnd = segments[i + 1]!.baseOffset;
      if (run.length > 0) {
        const bytes = runBytes + segment.sizeBytes;
        const fits =
          bytes <= config.segmentBytes &&
          segmentEnd - 1 - run[0]!.baseOffset <= RELATIVE_OFFSET_MAX &&
          Math.floor(bytes / bytesPerEntry) + 1 <= INDEX_ENTRIES_MAX;
        if (!fits) close();
      }
      run.push(segment);
      runBytes += segment.sizeBytes;
      pass.result.segmentsBefore++;
      pass.result.bytesBefore += segment.sizeBytes;
    }
    close();
    return groups;
  }

  /** Cleans up to `budget` bytes of one group; swaps it in when it is done. */
  #cleanSome(pass: Pass, group: Group, budget: number): number {
    const cleanedLog = this.#log;
    if (!cleanedLog.holdsSegments(group.segments)) {
      // Retention or DeleteRecords removed some of them meanwhile: nothing to rewrite.
      group.builder?.abort();
      group.builder = null;
      pass.result.groupsSkipped++;
      pass.group++;
      return 0;
    }
    const first = group.segments[0]!;
    group.builder ??= SegmentBuilder.create(
      cleanedLog.dir,
      first.baseOffset,
      cleanedLog.config.indexIntervalBytes,
    );
    const builder = group.builder;
    let spent = 0;
    while (spent < budget && group.member < group.segments.length) {
      const segment = group.segments[group.member]!;
      if (group.position >= segment.sizeBytes) {
        group.member++;
        group.position = 0;
        continue;
      }
      spent += this.#cleanChunk(pass, group, segment, builder);
    }
    if (group.member < group.segments.length) return spent;

    // The group is read: swap it in (synchronously, so no reader sees a half-done swap).
    builder.finish();
    const isFirst = cleanedLog.segments()[0] === first;
    if (group.dropped === 0 && group.segments.length === 1) {
      builder.abort();
      pass.result.segmentsAfter++;
      pass.result.bytesAfter += first.sizeBytes;
    } else if (builder.isEmpty && !isFirst) {
      builder.abort();
      cleanedLog.replaceSegments(group.segments, null);
    } else {
      cleanedLog.replaceSegments(group.segments, builder);
      pass.result.segmentsAfter++;
      pass.result.bytesAfter += builder.sizeBytes;
    }
    group.builder = null;
    pass.group++;
    return spent;
  }

  /** Reads one chunk of whole batches of `segment` and passes them through the filter. */
  #cleanChunk(pass: Pass, group: Group, segment: Segment, builder: SegmentBuilder): number {
    const left = segment.sizeBytes - group.position;
    let buffer = (this.#buffer ??= Buffer.allocUnsafe(CLEANER_READ_BYTES));
    let length = Math.min(buffer.byteLength, left);
    segment.readInto(buffer, 0, group.position, length);
    const firstSize = readBatchSize(buffer, 0);
    assert(firstSize <= left, `Batch runs past its segment: ${segment.logPath}`);
    if (firstSize > length) {
      // One batch larger than the buffer: grow it to hold the batch whole.
      buffer = this.#buffer = Buffer.allocUnsafe(firstSize);
      length = firstSize;
      segment.readInto(buffer, 0, group.position, length);
    }
    let at = 0;
    while (at + 12 <= length) {
      const size = readBatchSize(buffer, at);
      if (at + size > length) break;
      this.#cleanBatch(pass, group, buffer, at, size, builder);
      at += size;
    }
    assert(at > 0, "A cleaner read must hold a whole batch");
    group.position += at;
    return at;
  }

  #cleanBatch(
    pass: Pass,
    group: Group,
    buffer: Buffer,
    at: number,
    size: number,
    builder: SegmentBuilder,
  ): void {
    const batch = buffer.subarray(at, at + size);
    // Transaction markers are kept as they are (transaction-aware cleaning is not here).
    if (readIsControl(buffer, at)) {
      builder.append(batch);
      return;
    }
    const result = pass.result;
    const outcome = filterBatch(buffer, at, (cursor) => {
      const key = cursor.key();
      if (key === null) return true;
      const last = pass.map.get(latin1(key));
      const superseded = last !== undefined && cursor.offset < last;
      const expired = cursor.isTombstone && cursor.offset < pass.horizon;
      if (superseded || expired) {
        result.recordsDropped++;
        if (cursor.isTombstone) result.tombstonesDropped++;
        return false;
      }
      if (cursor.isTombstone) result.tombstonesKept++;
      return true;
    });
    switch (outcome.kind) {
      case "all":
        builder.append(batch);
        return;
      case "none":
        group.dropped += outcome.records;
        return;
      case "some":
        group.dropped += outcome.dropped;
        builder.append(outcome.batch);
        return;
      case "unreadable":
        pass.unreadable++;
        log.warn("Cannot read a batch's records; it is kept as it is", {
          path: group.segments[group.member]!.logPath,
          baseOffset: readBaseOffset(buffer, at),
        });
        builder.append(batch);
        return;
    }
  }

  #finishPass(pass: Pass): PassResult {
    this.#pass = null;
    // The read buffer may have grown to a very large batch: not kept between passes.
    this.#buffer = null;
    const nowMs = this.#clock.nowMs();
    const reached = Math.min(pass.mapNext, pass.cleanTo);
    const { deleteRetentionMs } = compactionConfig(this.#log.config);
    const state = this.#state;
    const passes = state.passes.slice();
    const lastEnd = passes.length === 0 ? 0 : passes[passes.length - 1]!.end;
    // A batch that could not be read may hold an older value of a tombstone's key, which
    // must not outlive the tombstone: such a pass starts no tombstone clock.
    if (reached > lastEnd && pass.unreadable === 0) passes.push({ end: reached, timeMs: nowMs });
    this.#state = {
      firstDirtyOffset: Math.max(state.firstDirtyOffset, reached),
      tombstones: pass.result.tombstonesKept,
      horizon: pass.horizon,
      passes: prunePasses(passes, nowMs, deleteRetentionMs),
    };
    pass.result.firstDirtyOffset = this.#state.firstDirtyOffset;
    try {
      writeCleanerState(this.#log.dir, this.#state);
    } catch (error) {
      if (!isIoError(error)) throw error;
      // Only costs work: the next start thinks more is dirty, and tombstones wait longer.
      log.error("Writing the cleaner state failed", { dir: this.#log.dir, error: String(error) });
    }
    const result = pass.result;
    log.info("Cleaned log", {
      dir: this.#log.dir,
      segmentsBefore: result.segmentsBefore,
      segmentsAfter: result.segmentsAfter,
      bytesBefore: result.bytesBefore,
      bytesAfter: result.bytesAfter,
      recordsDropped: result.recordsDropped,
      tombstonesDropped: result.tombstonesDropped,
      tombstonesKept: result.tombstonesKept,
      groupsSkipped: result.groupsSkipped,
      firstDirtyOffset: this.#state.firstDirtyOffset,
    });
    return result;
  }
}

/**
 * Keeps the pass marks bounded: marks whose tombstones are all of age collapse into one
 * (the latest), and beyond CLEANER_PASSES_REMEMBERED_MAX the two oldest merge into the
 * later one. Both only make tombstones wait longer, never less.
 */
export function prunePasses(
  passes: readonly PassMark[],
  nowMs: number,
  deleteRetentionMs: number,
): PassMark[] {
  let ripe = -1;
  for (let i = 0; i < passes.length; i++) {
    if (passes[i]!.timeMs + deleteRetentionMs <= nowMs) ripe = i;
  }
  const out = ripe <= 0 ? passes.slice() : passes.slice(ripe);
  if (ripe > 0) {
    const timeMs = Math.max(...passes.slice(0, ripe + 1).map((mark) => mark.timeMs));
    out[0] = { end: passes[ripe]!.end, timeMs };
  }
  while (out.length > CLEANER_PASSES_REMEMBERED_MAX) {
    const [oldest, next] = out.splice(0, 2);
    out.unshift({ end: next!.end, timeMs: Math.max(oldest!.timeMs, next!.timeMs) });
  }
  return out;
}

/**
 * The state of a log that may have lost its tail since (recovery cut it after a crash):
 * nothing at or past the log end was cleaned, so offsets written again there are dirty,
 * and pass marks stop at the log end (the later time winning where ends merge).
 */
export function clampToLog(state: CleanerState, logEndOffset: number): CleanerState {
  const passes: PassMark[] = [];
  for (const mark of state.passes) {
    const end = Math.min(mark.end, logEndOffset);
    const last = passes[passes.length - 1];
    if (last !== undefined && last.end === end) {
      passes[passes.length - 1] = { end, timeMs: Math.max(last.timeMs, mark.timeMs) };
    } else if (end > 0) {
      passes.push({ end, timeMs: mark.timeMs });
    }
  }
  return {
    firstDirtyOffset: Math.min(state.firstDirtyOffset, logEndOffset),
    tombstones: state.tombstones,
    horizon: Math.min(state.horizon, logEndOffset),
    passes,
  };
}

const EMPTY_STATE: Readonly<CleanerState> = Object.freeze({
  firstDirtyOffset: 0,
  tombstones: 0,
  horizon: 0,
  passes: [],
});

/** Reads `cleaner-state`; missing or malformed means "nothing known" (logged). */
export function readCleanerState(dir: string): CleanerState {
  let text: string;
  try {
    text = readFileSync(join(dir, CLEANER_STATE_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { ...EMPTY_STATE, passes: [] };
    throw error;
  }
  const parsed = parseCleanerState(text);
  if (parsed === null) {
    log.warn("Ignoring a malformed cleaner state; the whole log counts as dirty", { dir });
    return { ...EMPTY_STATE, passes: [] };
  }
  return parsed;
}

export function formatCleanerState(state: CleanerState): string {
  let text = `version: ${CLEANER_STATE_VERSION}\n`;
  text += `first-dirty-offset: ${state.firstDirtyOffset}\n`;
  text += `tombstones: ${state.tombstones}\n`;
  text += `horizon: ${state.horizon}\n`;
  for (const mark of state.passes) text += `pass: ${mark.end} ${mark.timeMs}\n`;
  return text;
}

export function parseCleanerState(text: string): CleanerState | null {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const field = (line: string | undefined, name: string): number | null => {
    const match = line === undefined ? null : /^([a-z-]+): (\d+)$/.exec(line);
    if (match === null || match[1] !== name) return null;
    const value = Number(match[2]);
    return Number.isSafeInteger(value) ? value : null;
  };
  if (field(lines[0], "version") !== CLEANER_STATE_VERSION) return null;
  const firstDirtyOffset = field(lines[1], "first-dirty-offset");
  const tombstones = field(lines[2], "tombstones");
  const horizon = field(lines[3], "horizon");
  if (firstDirtyOffset === null || tombstones === null || horizon === null) return null;
  const passes: PassMark[] = [];
  for (const line of lines.slice(4)) {
    const match = /^pass: (\d+) (\d+)$/.exec(line);
    if (match === null) return null;
    const end = Number(match[1]);
    const timeMs = Number(match[2]);
    if (!Number.isSafeInteger(end) || !Number.isSafeInteger(timeMs)) return null;
    if (passes.length > 0 && end <= passes[passes.length - 1]!.end) return null;
    passes.push({ end, timeMs });
  }
  if (passes.length > CLEANER_PASSES_REMEMBERED_MAX) return null;
  return { firstDirtyOffset, tombstones, horizon, passes };
}

export function writeCleanerState(dir: string, state: CleanerState): void {
  writeFileAtomically(join(dir, CLEANER_STATE_FILE), dir, formatCleanerState(state));
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

/** A failed file operation (StorageIoError, or a node:fs error with an errno code). */
function isIoError(error: unknown): boolean {
  if (error instanceof StorageIoError) return true;
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === "string";
}
