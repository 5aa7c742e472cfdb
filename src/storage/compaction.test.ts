/**
 * Compaction (compaction.ts, batch-filter.ts, the swap in segment-builder.ts and
 * partition-log.ts) on real files in temp dirs, with a ManualClock: what survives a
 * pass, tombstones and delete.retention.ms, compressed batches, what a crash at each step
 * of a swap leaves, and reads running while a pass is under way.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { cpSync, existsSync, readdirSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MetadataImage, type MetadataRecord } from "../cluster/metadata-image.ts";
import { buildBatch } from "../protocol/record-batch-builder.ts";
import {
  Compression,
  RECORDS_AT,
  batchCrcIsValid,
  computeBatchCrc,
  readBaseOffset,
  readBaseSequence,
  readBaseTimestamp,
  readBatchSize,
  readCompression,
  readLastOffset,
  readLastOffsetDelta,
  readMaxTimestamp,
  readProducerEpoch,
  readProducerId,
  readRecordCount,
} from "../protocol/record-batch.ts";
import { ManualClock } from "../util/clock.ts";
import { RecordCursor, compress, filterBatch, forEachRecordOfBatch } from "./batch-filter.ts";
import {
  CLEANER_STATE_FILE,
  type CleanerState,
  clampToLog,
  formatCleanerState,
  parseCleanerState,
  prunePasses,
} from "./compaction.ts";
import { CLEANER_PASSES_REMEMBERED_MAX } from "./limits.ts";
import { DEFAULT_LOG_CONFIG, type LogConfig } from "./log-config.ts";
import { LogManager } from "./log-manager.ts";
import { PartitionLog } from "./partition-log.ts";
import { forEachStoredBatch } from "./replay.ts";
import { T0, makeTempDir, seededRandom, tempLogs } from "./test-support.ts";

const managers: LogManager[] = [];
// Managers close first (registered first), then the logs and dirs of tempLogs.
afterEach(() => {
  for (const manager of managers.splice(0)) manager.close();
});
const { dirs, logs } = tempLogs();

const COMPACT = Object.freeze({ delete: false, compact: true });

function config(overrides: Partial<LogConfig> = {}): LogConfig {
  return {
    ...DEFAULT_LOG_CONFIG,
    segmentBytes: 2048,
    indexIntervalBytes: 256,
    cleanupPolicy: COMPACT,
    ...overrides,
  };
}

function freshDir(): string {
  const dir = makeTempDir("compaction");
  dirs.push(dir);
  return join(dir, "topic-0");
}

function open(
  dir: string,
  clock: ManualClock,
  overrides: Partial<LogConfig> = {},
  cleaner: { dirtyBytesMin?: number; offsetMapBytesMax?: number } = { dirtyBytesMin: 0 },
  cleanShutdown = true,
): PartitionLog {
  const recovery = { recoveryPoint: 0, logStartOffset: 0, cleanShutdown };
  const log = PartitionLog.open({ dir, config: config(overrides), clock, cleaner, recovery });
  logs.push(log);
  return log;
}

function close(log: PartitionLog): void {
  log.close();
  logs.splice(logs.indexOf(log), 1);
}

type Rec = readonly [key: string | null, value: string | null];

interface BatchOptions {
  gzip?: boolean;
  baseTimestamp?: number;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
}

function keyed(records: readonly Rec[], options: BatchOptions = {}): Buffer {
  return buildBatch({
    baseTimestamp: options.baseTimestamp ?? T0,
    compression: options.gzip === true ? "gzip" : "none",
    records: records.map(([key, value], i) => ({ key, value, timestampDelta: i * 3 })),
    ...(options.producerId === undefined ? {} : { producerId: options.producerId }),
    ...(options.producerEpoch === undefined ? {} : { producerEpoch: options.producerEpoch }),
    ...(options.baseSequence === undefined ? {} : { baseSequence: options.baseSequence }),
  });
}

interface Stored {
  offset: number;
  key: string | null;
  value: string | null;
  timestamp: number;
}

const text = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString());

/** The records of one stored batch, checking its CRC. */
function recordsOf(batch: Uint8Array): Stored[] {
  expect(batchCrcIsValid(batch, 0, readBatchSize(batch, 0))).toBe(true);
  const out: Stored[] = [];
  const baseTimestamp = readBaseTimestamp(batch, 0);
  const readable = forEachRecordOfBatch(batch, 0, new RecordCursor(), (cursor) => {
    out.push({
      offset: cursor.offset,
      key: text(cursor.key()),
      value: text(cursor.value()),
      timestamp: baseTimestamp + cursor.timestampDelta,
    });
  });
  expect(readable).toBe(true);
  expect(out.length).toBe(readRecordCount(batch, 0));
  if (out.length > 0)
    expect(out[out.length - 1]!.offset).toBeLessThanOrEqual(readLastOffset(batch, 0));
  return out;
}

function batchesOf(log: PartitionLog): Buffer[] {
  const out: Buffer[] = [];
  forEachStoredBatch(log, (batch) => out.push(Buffer.from(batch)));
  return out;
}

function recordsOfLog(log: PartitionLog): Stored[] {
  return batchesOf(log).flatMap(recordsOf);
}

/** Appends batches and remembers every record with its offset and timestamp. */
class Model {
  readonly records: Stored[] = [];

  append(log: PartitionLog, records: readonly Rec[], options: BatchOptions = {}): number {
    const result = log.append(keyed(records, options), { leaderEpoch: 0 });
    if (!result.ok) throw new Error(result.message);
    records.forEach(([key, value], i) => {
      this.records.push({
        offset: result.baseOffset + i,
        key,
        value,
        timestamp: (options.baseTimestamp ?? T0) + i * 3,
      });
    });
    return result.baseOffset;
  }

  /** The last offset of each key. */
  latest(): Map<string | null, number> {
    const last = new Map<string | null, number>();
    for (const record of this.records) last.set(record.key, record.offset);
    return last;
  }

  /**
   * What a pass leaves: records at or after `cleanTo`, keyless ones, and each key's last
   * record, except tombstones below `horizon`.
   */
  compacted(cleanTo: number, horizon = 0): Stored[] {
    const last = this.latest();
    return this.records.filter((r) => {
      if (r.offset >= cleanTo || r.key === null) return true;
      if (last.get(r.key) !== r.offset) return false;
      return !(r.value === null && r.offset < horizon);
    });
  }
}

/** A seeded workload: `count` records over `keys` keys in batches of 1-5, some tombstones. */
function workload(log: PartitionLog, model: Model, seed: number, count: number, keys = 40): void {
  const random = seededRandom(seed);
  let written = 0;
  while (written < count) {
    const size = Math.min(count - written, 1 + random(5));
    const records: Rec[] = [];
    for (let i = 0; i < size; i++) {
      const key = `key-${random(keys)}`;
      const tombstone = random(10) === 0;
      records.push([key, tombstone ? null : `value-${written + i}-${"x".repeat(random(60))}`]);
    }
    model.append(log, records, { gzip: random(3) === 0 });
    written += size;
  }
}

function activeBase(log: PartitionLog): number {
  return log.segments().at(-1)!.baseOffset;
}

function listFiles(dir: string): string[] {
  return readdirSync(dir).sort();
}

// ---------------------------------------------------------------------------------------

test("storage: compaction: keeps exactly the latest record of each key; offsets never change", () => {
  const clock = new ManualClock(T0);
  const dir = freshDir();
  const log = open(dir, clock);
  const model = new Model();
  workload(log, model, 1, 800);
  const segmentsBefore = log.segmentCount();
  const endBefore = log.logEndOffset;
  expect(segmentsBefore).toBeGreaterThan(10);

  const cleanTo = activeBase(log);
  const result = log.compact()!;
  expect(result).not.toBeNull();
  expect(recordsOfLog(log)).toEqual(model.compacted(cleanTo));
  expect(log.logEndOffset).toBe(endBefore);
  expect(log.logStartOffset).toBe(0);
  expect(log.segments()[0]!.baseOffset).toBe(0);
  // Small cleaned segments merge: 40 keys fit in a couple of segments.
  expect(log.segmentCount()).toBeLessThan(segmentsBefore / 2);
  expect(result.recordsDropped).toBe(800 - model.compacted(cleanTo).length);
  expect(log.sizeBytes()).toBe(log.segments().reduce((sum, s) => sum + s.sizeBytes, 0));

  // More writes and another pass; then the same after a clean and an unclean reopen.
  workload(log, model, 2, 400);
  const cleanTo2 = activeBase(log);
  expect(log.compact()).not.toBeNull();
  const expected = model.compacted(cleanTo2);
  expect(recordsOfLog(log)).toEqual(expected);
  close(log);
  const reopened = open(dir, clock);
  expect(recordsOfLog(reopened)).toEqual(expected);
  close(reopened);
  // Unclean: every segment verified batch by batch (cleaned batches have fewer records
  // than offsets, which recovery accepts).
  const verified = open(dir, clock, {}, { dirtyBytesMin: 0 }, false);
  expect(verified.openReport.truncatedBytes).toBe(0);
  expect(verified.openReport.segmentsScanned).toBe(verified.segmentCount());
  expect(recordsOfLog(verified)).toEqual(expected);
  expect(verified.logEndOffset).toBe(model.records.length);
});

test("storage: compaction: the active segment's keys count, its records are never rewritten", () => {
  const clock = new ManualClock(T0);
  const log = open(freshDir(), clock, { segmentBytes: 600 });
  const model = new Model();
  for (let i = 0; i < 30; i++) model.append(log, [[`k${i % 3}`, `v${i}`]]);
  // The active segment now holds the latest value of every key, and duplicates of them.
  const activeStart = activeBase(log);
  const activeBytes = log.segments().at(-1)!.sizeBytes;
  log.compact();
  const kept = recordsOfLog(log);
  expect(kept).toEqual(model.compacted(activeStart));
  expect(kept.every((r) => r.offset >= activeStart)).toBe(true);
  expect(log.segments().at(-1)!.sizeBytes).toBe(activeBytes);
  // The first segment stays, empty, so that the log start does not move.
  expect(log.segments()[0]!.baseOffset).toBe(0);
  expect(log.segments()[0]!.sizeBytes).toBe(0);
  expect(log.logStartOffset).toBe(0);
  // An empty sealed segment opens fine, verified or not.
  close(log);
  for (const cleanShutdown of [true, false]) {
    const reopened = open(
      log.dir,
      clock,
      { segmentBytes: 600 },
      { dirtyBytesMin: 0 },
      cleanShutdown,
    );
    expect(reopened.segments()[0]!.sizeBytes).toBe(0);
    expect(recordsOfLog(reopened)).toEqual(kept);
    close(reopened);
  }
});

test("storage: compaction: fetch of a compacted-away offset returns the next batch", () => {
  const clock = new ManualClock(T0);
  const log = open(freshDir(), clock, { segmentBytes: 400 });
  const model = new Model();
  for (let i = 0; i < 20; i++)
    model.append(log, [
      [`k${i % 4}`, `v${i}`],
      [`unique-${i}`, "u"],
    ]);
  const cleanTo = activeBase(log);
  log.compact();
  const kept = model.compacted(cleanTo).map((r) => r.offset);
  for (let offset = 0; offset < log.logEndOffset; offset++) {
    const read = log.read(offset, 1 << 20, { minOneBatch: true });
    expect(read.ok).toBe(true);
    if (!read.ok) continue;
    const first = recordsOf(read.records.subarray(0, readBatchSize(read.records, 0)));
    // The batch holding the offset if it is kept, else the first batch after it: clients
    // skip records below their fetch offset and jump over gaps.
    const next = kept.find((o) => o >= offset)!;
    expect(readLastOffset(read.records, 0)).toBeGreaterThanOrEqual(offset);
    expect(first.map((r) => r.offset)).toContain(next);
  }
});

describe("storage: compaction: tombstones", () => {
  const RETENTION = 10_000;

  function setup(segmentBytes = 300) {
    const clock = new ManualClock(T0);
    const dir = freshDir();
    const log = open(dir, clock, { segmentBytes, deleteRetentionMs: RETENTION });
    return { clock, dir, log, model: new Model() };
  }

  function filler(log: PartitionLog, model: Model, from: number, count: number): void {
    for (let i = 0; i < count; i++) model.append(log, [[`fill-${from + i}`, "f".repeat(40)]]);
  }

  test("kept for delete.retention.ms after the first pass that cleaned them, then removed", () => {
    const { clock, log, model } = setup();
    model.append(log, [["k1", "v1"]]);
    model.append(log, [["k2", "v2"]]);
    model.append(log, [["k1", null]]);
    filler(log, model, 0, 12);
    const cleanTo = activeBase(log);
    const first = log.compact()!;
    expect(first.tombstonesKept).toBe(1);
    const after = recordsOfLog(log);
    expect(after).toEqual(model.compacted(cleanTo));
    expect(after.filter((r) => r.key === "k1")).toEqual([
      { offset: 2, key: "k1", value: null, timestamp: T0 },
    ]);

    clock.advance(RETENTION - 1);
    expect(log.cleanerStatus().due).toBe(false);
    expect(log.compact()).toBeNull();
    expect(recordsOfLog(log).some((r) => r.key === "k1")).toBe(true);

    clock.advance(1);
    expect(log.cleanerStatus().due).toBe(true);
    const second = log.compact()!;
    expect(second.tombstonesDropped).toBe(1);
    expect(recordsOfLog(log)).toEqual(model.compacted(cleanTo, cleanTo));
    expect(recordsOfLog(log).some((r) => r.key === "k1")).toBe(false);
    expect(recordsOfLog(log).some((r) => r.key === "k2")).toBe(true);
    // Nothing left to do.
    expect(log.cleanerStatus().due).toBe(false);
  });

  test("the clock starts with the pass that reaches them, and survives a reopen", () => {
    const { clock, dir, log, model } = setup();
    filler(log, model, 0, 12);
    expect(log.compact()).not.toBeNull(); // Pass 1 at T0: no tombstone yet.
    clock.advance(5_000);
    model.append(log, [["fill-3", null]]);
    filler(log, model, 100, 12);
    const cleanTo = activeBase(log);
    const second = log.compact()!; // Pass 2 at T0 + 5 s reaches the tombstone.
    expect(second.tombstonesKept).toBe(1);
    close(log);

    const reopened = open(dir, clock, { segmentBytes: 300, deleteRetentionMs: RETENTION });
    clock.advance(5_000); // Pass 1 is of age, but it did not reach the tombstone.
    reopened.compact();
    expect(
      recordsOfLog(reopened)
        .filter((r) => r.key === "fill-3")
        .map((r) => r.value),
    ).toEqual([null]);
    clock.advance(5_000); // Pass 2 is of age now.
    expect(reopened.cleanerStatus().due).toBe(true);
    expect(reopened.compact()!.tombstonesDropped).toBe(1);
    expect(recordsOfLog(reopened)).toEqual(model.compacted(cleanTo, cleanTo));
  });

  test("a key written again after its tombstone keeps its new value", () => {
    const { clock, log, model } = setup();
    model.append(log, [["k", "old"]]);
    model.append(log, [["k", null]]);
    model.append(log, [["k", "new"]]);
    filler(log, model, 0, 12);
    log.compact();
    clock.advance(RETENTION);
    log.compact();
    expect(
      recordsOfLog(log)
        .filter((r) => r.key === "k")
        .map((r) => r.value),
    ).toEqual(["new"]);
  });
});

// ---------------------------------------------------------------------------------------
// Batches: copied when whole, re-encoded as Kafka does when not.

/** The same batch, its records compressed with `codec` (snappy in xerial framing if asked). */
function withCodec(batch: Buffer, codec: number, xerial = false): Buffer {
  const plain = batch.subarray(RECORDS_AT);
  const like = xerial
    ? Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1])
    : Buffer.alloc(0);
  const payload = compress(codec, plain, like);
  const out = Buffer.alloc(RECORDS_AT + payload.byteLength);
  batch.copy(out, 0, 0, RECORDS_AT);
  out.set(payload, RECORDS_AT);
  out.writeInt32BE(out.byteLength - 12, 8);
  out.writeInt16BE((out.readInt16BE(21) & ~7) | codec, 21);
  out.writeUInt32BE(computeBatchCrc(out, 0, out.byteLength), 17);
  return out;
}

const CODECS = [
  ["gzip", Compression.gzip, false],
  ["snappy", Compression.snappy, false],
  ["snappy (xerial)", Compression.snappy, true],
  ["lz4", Compression.lz4, false],
  ["zstd", Compression.zstd, false],
] as const;

for (const [name, codec, xerial] of CODECS) {
  test(`storage: compaction: a ${name} batch that loses records is recompressed with its codec`, () => {
    const clock = new ManualClock(T0);
    const log = open(freshDir(), clock, { segmentBytes: 500 });
    const producer = { producerId: 7, producerEpoch: 2, baseSequence: 10, baseTimestamp: T0 + 500 };
    const original = withCodec(
      keyed(
        [
          ["k1", "a"],
          ["k2", "b"],
          ["k3", "c"],
          ["k4", "d"],
        ],
        producer,
      ),
      codec,
      xerial,
    );
    expect(log.append(Buffer.from(original), { leaderEpoch: 3 }).ok).toBe(true);
    const whole = withCodec(
      keyed([
        ["k5", "e"],
        ["k6", "f"],
      ]),
      codec,
      xerial,
    );
    expect(log.append(Buffer.from(whole), { leaderEpoch: 3 }).ok).toBe(true);
    const storedWhole = batchesOf(log)[1]!;
    // Supersede k1 and k4: the first batch keeps k2 and k3 (offsets 1 and 2).
    for (let i = 0; i < 8; i++)
      log.append(keyed([[i % 2 === 0 ? "k1" : "k4", `x${i}`]]), { leaderEpoch: 3 });
    expect(log.segmentCount()).toBeGreaterThanOrEqual(2);
    log.compact();

    const [rewritten, copied] = batchesOf(log);
    expect(recordsOf(rewritten!)).toEqual([
      { offset: 1, key: "k2", value: "b", timestamp: T0 + 503 },
      { offset: 2, key: "k3", value: "c", timestamp: T0 + 506 },
    ]);
    expect(readCompression(rewritten!, 0)).toBe(codec);
    if (xerial)
      expect(rewritten!.subarray(RECORDS_AT, RECORDS_AT + 8)).toEqual(
        Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0]),
      );
    expect(readBaseOffset(rewritten!, 0)).toBe(0);
    expect(readLastOffsetDelta(rewritten!, 0)).toBe(3); // Kafka keeps the original last offset.
    expect(readRecordCount(rewritten!, 0)).toBe(2);
    expect(readBaseTimestamp(rewritten!, 0)).toBe(T0 + 500);
    expect(readMaxTimestamp(rewritten!, 0)).toBe(T0 + 506);
    expect(readProducerId(rewritten!, 0)).toBe(7);
    expect(readProducerEpoch(rewritten!, 0)).toBe(2);
    expect(readBaseSequence(rewritten!, 0)).toBe(10);
    expect(rewritten!.readInt32BE(12)).toBe(3); // Partition leader epoch.
    // A batch whose records all stay is the very same bytes.
    expect(copied).toEqual(storedWhole);
  });
}

test("storage: compaction: a batch whose records cannot be read is kept whole", () => {
  const batch = keyed([
    ["k", "v"],
    ["k", "w"],
  ]);
  // A record count that does not match the records (the CRC recomputed, so it is stored).
  batch.writeInt32BE(3, 57);
  batch.writeUInt32BE(computeBatchCrc(batch, 0, batch.byteLength), 17);
  expect(filterBatch(batch, 0, () => false)).toEqual({ kind: "unreadable" });
  const gzip = keyed([["k", "v"]], { gzip: true });
  gzip[RECORDS_AT + 3] = 0xff;
  gzip.writeUInt32BE(computeBatchCrc(gzip, 0, gzip.byteLength), 17);
  expect(filterBatch(gzip, 0, () => false)).toEqual({ kind: "unreadable" });
});

// ---------------------------------------------------------------------------------------
// When a pass is due.

test("storage: compaction: a pass is due above min.cleanable.dirty.ratio and the dirty minimum", () => {
  const clock = new ManualClock(T0);
  const log = open(freshDir(), clock, { segmentBytes: 1000 }, { dirtyBytesMin: 1500 });
  const model = new Model();
  let n = 0;
  const write = (count: number) => {
    for (let i = 0; i < count; i++, n++) model.append(log, [[`unique-${n}`, "v".repeat(80)]]);
  };
  write(10); // One sealed segment: below the 1000-byte minimum (capped at segment.bytes)?
  const status = log.cleanerStatus();
  expect(status.dirtyBytes).toBeGreaterThan(0);
  expect(status.cleanBytes).toBe(0);
  expect(status.due).toBe(status.dirtyBytes >= 1000);
  write(20);
  expect(log.cleanerStatus()).toMatchObject({ due: true, dirtyRatio: 1 });
  expect(log.compact()).not.toBeNull(); // Unique keys: nothing goes, but the log is clean now.
  expect(log.cleanerStatus()).toMatchObject({ due: false, dirtyRatio: 0 });
  // One more sealed segment: dirty, but a small share of the sealed bytes.
  while (log.cleanerStatus().dirtyBytes === 0) write(1);
  const some = log.cleanerStatus();
  expect(some.dirtyRatio).toBeLessThanOrEqual(0.5);
  expect(some.due).toBe(false);
  while (log.cleanerStatus().dirtyRatio <= 0.5) write(1);
  expect(log.cleanerStatus().due).toBe(true);
  // A delete-only log is never cleaned.
  log.updateConfig(config({ segmentBytes: 1000, cleanupPolicy: { delete: true, compact: false } }));
  expect(log.cleanerStatus().due).toBe(false);
  expect(log.compact()).toBeNull();
});

test("storage: compaction: a full offset map cleans part of the log per pass, and passes converge", () => {
  const clock = new ManualClock(T0);
  const log = open(freshDir(), clock, {}, { dirtyBytesMin: 0, offsetMapBytesMax: 40 * 90 });
  const model = new Model();
  workload(log, model, 3, 600, 120);
  const cleanTo = activeBase(log);
  const first = log.compact()!;
  expect(first.firstDirtyOffset).toBeLessThan(cleanTo);
  expect(first.firstDirtyOffset).toBeGreaterThan(0);
  // Every record the partial pass dropped has a later record of its key.
  const latest = model.latest();
  const kept = new Set(recordsOfLog(log).map((r) => r.offset));
  for (const record of model.records)
    if (record.offset === latest.get(record.key)) expect(kept.has(record.offset)).toBe(true);
  // Later passes go on from where the last one stopped, while the log is dirty enough.
  let passes = 1;
  for (let previous = first.firstDirtyOffset; log.cleanerStatus().due && passes < 50; passes++) {
    const result = log.compact()!;
    expect(result.firstDirtyOffset).toBeGreaterThan(previous);
    previous = result.firstDirtyOffset;
  }
  expect(passes).toBeGreaterThan(2);
  // Whatever is left is written records, with every key's latest one.
  const left = recordsOfLog(log);
  for (const record of left)
    expect(model.records.find((r) => r.offset === record.offset)).toEqual(record);
  for (const [, offset] of latest) expect(left.some((r) => r.offset === offset)).toBe(true);
});

test("storage: compaction: min.compaction.lag.ms keeps young segments out of a pass", () => {
  const clock = new ManualClock(T0 + 60_000);
  const log = open(freshDir(), clock, { segmentBytes: 300, minCompactionLagMs: 30_000 });
  const model = new Model();
  for (let i = 0; i < 10; i++) model.append(log, [["k", `old-${i}`]], { baseTimestamp: T0 });
  const youngFrom = log.logEndOffset;
  for (let i = 0; i < 10; i++)
    model.append(log, [["k", `young-${i}`]], { baseTimestamp: T0 + 50_000 });
  // The first segment holding a young record, and everything after it, is too young.
  const young = log.segments().findLast((segment) => segment.baseOffset <= youngFrom)!.baseOffset;
  expect(young).toBeGreaterThan(0);
  log.compact();
  const left = recordsOfLog(log);
  // Old duplicates go (the young records supersede them); the young segments stay whole.
  expect(left.filter((r) => r.offset < young)).toEqual([]);
  expect(left.filter((r) => r.offset >= young)).toEqual(
    model.records.filter((r) => r.offset >= young),
  );
});

// ---------------------------------------------------------------------------------------
// Crashes: every step of a swap, simulated by leaving the files a crash would leave.

interface Files {
  dir: string;
  bases: number[];
}

function segmentBases(dir: string): number[] {
  return readdirSync(dir)
    .filter((name) => /^\d{20}\.log$/.test(name))
    .map((name) => Number(name.slice(0, 20)))
    .sort((a, b) => a - b);
}

function copySegment(from: string, to: string, base: number, stage = ""): void {
  for (const suffix of [".log", ".index", ".timeindex"]) {
    const name = `${String(base).padStart(20, "0")}${suffix}`;
    cpSync(join(from, name), join(to, name + stage));
  }
}

function removeSegment(dir: string, base: number, stage = ""): void {
  for (const suffix of [".log", ".index", ".timeindex"]) {
    const path = join(dir, `${String(base).padStart(20, "0")}${suffix}${stage}`);
    if (existsSync(path)) unlinkSync(path);
  }
}

describe("storage: compaction: crash recovery", () => {
  /**
   * An original log (several sealed segments, one group each: none fit together) and
   * its compacted twin, both closed. Returns their directories and records.
   */
  function build(): {
    original: Files;
    cleaned: Files;
    before: Stored[];
    after: Stored[];
    model: Model;
  } {
    const clock = new ManualClock(T0);
    const dir = freshDir();
    const log = open(dir, clock, { segmentBytes: 1200 });
    const model = new Model();
    workload(log, model, 9, 300, 25);
    const before = recordsOfLog(log);
    close(log);
    const copy = `${dir}-original`;
    cpSync(dir, copy, { recursive: true });
    const compacted = open(dir, clock, { segmentBytes: 1200 });
    // Sealed segments are nearly full: no two fit in one group, so each maps to itself.
    const sealed = compacted
      .segments()
      .slice(0, -1)
      .map((s) => s.sizeBytes);
    for (let i = 1; i < sealed.length; i++)
      expect(sealed[i - 1]! + sealed[i]!).toBeGreaterThan(1200);
    compacted.compact();
    const after = recordsOfLog(compacted);
    close(compacted);
    // Removed `.deleted` files as a completed run would, after its delay.
    for (const name of readdirSync(dir)) if (name.endsWith(".deleted")) unlinkSync(join(dir, name));
    return {
      original: { dir: copy, bases: segmentBases(copy) },
      cleaned: { dir, bases: segmentBases(dir) },
      before,
      after,
      model,
    };
  }

  /** A fresh copy of the original files to damage. */
  function scratch(original: Files): string {
    const dir = freshDir();
    cpSync(original.dir, dir, { recursive: true });
    return dir;
  }

  /** Records of the original log, with those in [from, to) as in the cleaned one. */
  function mixed(built: ReturnType<typeof build>, from: number, to: number): Stored[] {
    const inRange = (r: Stored) => r.offset >= from && r.offset < to;
    return [...built.before.filter((r) => !inRange(r)), ...built.after.filter(inRange)].sort(
      (a, b) => a.offset - b.offset,
    );
  }

  function reopen(dir: string): { log: PartitionLog; records: Stored[]; files: string[] } {
    const log = open(dir, new ManualClock(T0), { segmentBytes: 1200 }, { dirtyBytesMin: 0 }, false);
    return { log, records: recordsOfLog(log), files: listFiles(dir) };
  }

  function leftovers(files: string[]): string[] {
    return files.filter((name) => /\.(cleaned|swap|deleted)$/.test(name));
  }

  test("before the commit: .cleaned (or index .swap) files are removed, the old segments stand", () => {
    const built = build();
    const base = built.original.bases.findLast(
      (b) => built.cleaned.bases.includes(b) && b < built.cleaned.bases.at(-1)!,
    )!;
    expect(base).toBeDefined();
    for (const stage of ["cleaned", "index-swap"] as const) {
      const dir = scratch(built.original);
      copySegment(built.cleaned.dir, dir, base, ".cleaned");
      if (stage === "index-swap") {
        for (const suffix of [".index", ".timeindex"]) {
          const name = `${String(base).padStart(20, "0")}${suffix}`;
          renameSync(join(dir, `${name}.cleaned`), join(dir, `${name}.swap`));
        }
      }
      const { records, files } = reopen(dir);
      expect(records).toEqual(built.before);
      expect(leftovers(files)).toEqual([]);
    }
  });

  test("after the commit: the swap is finished, with or without the old segments renamed", () => {
    const built = build();
    const bases = built.original.bases;
    // Group i committed: groups before it installed, later ones untouched.
    for (let i = 0; i + 1 < bases.length; i++) {
      const base = bases[i]!;
      if (!built.cleaned.bases.includes(base)) continue; // Removed whole: no swap file.
      for (const renamed of [false, true]) {
        const dir = scratch(built.original);
        for (const earlier of bases.slice(0, i)) {
          removeSegment(dir, earlier);
          if (built.cleaned.bases.includes(earlier)) copySegment(built.cleaned.dir, dir, earlier);
        }
        copySegment(built.cleaned.dir, dir, base, ".swap");
        if (renamed) {
          for (const suffix of [".log", ".index", ".timeindex"]) {
            const name = `${String(base).padStart(20, "0")}${suffix}`;
            renameSync(join(dir, name), join(dir, `${name}.deleted`));
          }
        }
        const { log, records, files } = reopen(dir);
        expect(records).toEqual(mixed(built, 0, bases[i + 1]!));
        expect(leftovers(files)).toEqual([]);
        expect(log.logEndOffset).toBe(built.model.records.length);
        close(log);
      }
    }
  });

  test("after the install: leftover .deleted files go; a torn committed swap file refuses to open", () => {
    const built = build();
    const dir = scratch(built.cleaned);
    writeFileSync(join(dir, `${"0".repeat(20)}.log.deleted`), "old bytes");
    const { records, files } = reopen(dir);
    expect(records).toEqual(built.after);
    expect(leftovers(files)).toEqual([]);

    const torn = scratch(built.original);
    copySegment(built.cleaned.dir, torn, built.original.bases[0]!, ".swap");
    const swap = join(torn, `${"0".repeat(20)}.log.swap`);
    writeFileSync(swap, Buffer.alloc(70, 7)); // Not a batch: a committed swap cannot be torn.
    expect(() => open(torn, new ManualClock(T0))).toThrow("Cleaned segment is corrupt");
  });

  test("a log closed in the middle of a pass leaves no cleaner files and reopens whole", () => {
    const clock = new ManualClock(T0);
    const dir = freshDir();
    const log = open(dir, clock, { segmentBytes: 1200 });
    const model = new Model();
    workload(log, model, 4, 300, 25);
    const before = recordsOfLog(log);
    const cleaning = () => listFiles(dir).some((name) => name.endsWith(".cleaned"));
    for (let steps = 0; !cleaning() && steps < 1000; steps++)
      expect(log.cleanStep(400).kind).toBe("running");
    expect(cleaning()).toBe(true);
    close(log);
    expect(listFiles(dir).some((name) => name.endsWith(".cleaned"))).toBe(false);
    const reopened = open(dir, clock, { segmentBytes: 1200 });
    const records = recordsOfLog(reopened);
    // Groups swapped before the close are cleaned, the rest is as written: a subsequence
    // of the original records with every key's latest record.
    for (const record of records) expect(before).toContainEqual(record);
    for (const [, offset] of model.latest())
      expect(records.some((r) => r.offset === offset)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------
// Readers while a pass runs.

describe("storage: compaction: concurrent readers", () => {
  /** Every record a read returns is the one written at its offset; no kept record is skipped. */
  function checkRead(log: PartitionLog, model: Model, offset: number): void {
    const read = log.read(offset, 700, { minOneBatch: true });
    expect(read.ok).toBe(true);
    if (!read.ok || read.records.byteLength === 0) return;
    const returned: Stored[] = [];
    for (let at = 0; at < read.records.byteLength;) {
      const size = readBatchSize(read.records, at);
      returned.push(...recordsOf(read.records.subarray(at, at + size)));
      at += size;
    }
    const byOffset = new Map(model.records.map((r) => [r.offset, r]));
    for (const record of returned) expect(record).toEqual(byOffset.get(record.offset)!);
    const covered = returned.filter((r) => r.offset >= offset);
    if (covered.length === 0) return;
    const last = covered[covered.length - 1]!.offset;
    const latest = model.latest();
    for (const [, keep] of latest) {
      if (keep >= offset && keep <= last) expect(covered.some((r) => r.offset === keep)).toBe(true);
    }
  }

  test("reads and appends between the steps of a pass see whole, consistent batches", () => {
    const clock = new ManualClock(T0);
    const log = open(freshDir(), clock, { segmentBytes: 1200 });
    const model = new Model();
    workload(log, model, 5, 400, 30);
    const random = seededRandom(5);
    let steps = 0;
    let step = log.cleanStep(300);
    while (step.kind === "running") {
      steps++;
      for (let i = 0; i < 20; i++) checkRead(log, model, random(log.logEndOffset));
      // Appends keep landing in the active segment meanwhile.
      if (steps % 3 === 0) model.append(log, [[`key-${random(30)}`, `during-${steps}`]]);
      step = log.cleanStep(300);
    }
    expect(step.kind).toBe("done");
    expect(steps).toBeGreaterThan(5);
    for (let offset = 0; offset < log.logEndOffset; offset++) checkRead(log, model, offset);
  });

  test("a reader holding a replaced segment reads it until file.delete.delay.ms has passed", async () => {
    const clock = new ManualClock(T0);
    const dir = freshDir();
    const log = open(dir, clock, { segmentBytes: 600, fileDeleteDelayMs: 30_000 });
    const model = new Model();
    for (let i = 0; i < 30; i++) model.append(log, [[`k${i % 3}`, `v${i}`]]);
    const held = log.segments()[1]!;
    const bytes = Buffer.alloc(held.sizeBytes);
    held.readInto(bytes, 0, 0, bytes.byteLength);
    log.compact();
    expect(log.segments()).not.toContain(held);
    expect(held.isRenamedForDeletion).toBe(true);
    const again = Buffer.alloc(held.sizeBytes);
    held.readInto(again, 0, 0, again.byteLength);
    expect(again).toEqual(bytes);
    expect(log.pendingDeleteCount()).toBeGreaterThan(0);
    clock.advance(30_000);
    log.deleteExpiredFiles();
    expect(log.pendingDeleteCount()).toBe(0);
    await log.removalsSettled();
    expect(listFiles(dir).some((name) => name.endsWith(".deleted"))).toBe(false);
  });

  test("retention and DeleteRecords during a pass: the removed groups are skipped", () => {
    const clock = new ManualClock(T0);
    const log = open(freshDir(), clock, {
      segmentBytes: 1200,
      cleanupPolicy: { delete: true, compact: true },
      retentionMs: -1,
    });
    const model = new Model();
    workload(log, model, 6, 400, 30);
    // Step until the first group is being written, then cut the log below its fourth segment.
    const dir = log.dir;
    let step = log.cleanStep(1);
    while (!listFiles(dir).some((name) => name.endsWith(".cleaned"))) step = log.cleanStep(200);
    expect(step.kind).toBe("running");
    const cut = log.segments()[3]!.baseOffset;
    expect(log.deleteRecordsBefore(cut)).toEqual({ ok: true, logStartOffset: cut });
    while (step.kind === "running") step = log.cleanStep(1500);
    expect(step.kind).toBe("done");
    if (step.kind === "done") expect(step.result.groupsSkipped).toBeGreaterThan(0);
    expect(log.logStartOffset).toBe(cut);
    const left = recordsOfLog(log);
    expect(left.every((r) => r.offset >= cut)).toBe(true);
    for (const [, offset] of model.latest())
      if (offset >= cut) expect(left.some((r) => r.offset === offset)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------
// The log manager's tick, and the cleaner's memory.

test("storage: compaction: the log manager's tick cleans compacted topics, a budget per tick", () => {
  const dataDir = makeTempDir("compaction-manager");
  dirs.push(dataDir);
  const clock = new ManualClock(T0);
  const image = new MetadataImage();
  const manager = new LogManager({
    dataDir,
    nodeId: 1,
    clock,
    image,
    cleanerBytesPerTick: 2048,
    cleaner: { dirtyBytesMin: 0 },
  });
  managers.push(manager);
  const records: MetadataRecord[] = [];
  for (const [name, policy] of [
    ["kv", "compact"],
    ["events", "delete"],
  ] as const) {
    const topicId = `id-${name}`;
    records.push({ type: "topic", name, topicId });
    records.push({ type: "config", topicId, name: "cleanup.policy", value: policy });
    records.push({ type: "config", topicId, name: "segment.bytes", value: "1024" });
    records.push({
      type: "partition",
      topicId,
      partition: 0,
      replicas: [1],
      leader: 1,
      leaderEpoch: 0,
      isr: [1],
      partitionEpoch: 0,
    });
  }
  for (const record of records) image.apply(record);
  manager.startupComplete();
  for (let i = 0; i < 200; i++) {
    manager.append("kv", 0, keyed([[`k${i % 3}`, `value-${i}`]]), 0);
    manager.append("events", 0, keyed([[`k${i % 3}`, `value-${i}`]]), 0);
  }
  const kv = manager.get("kv", 0)!;
  const events = manager.get("events", 0)!;
  const eventsBytes = events.sizeBytes();
  const before = kv.sizeBytes();
  let ticks = 0;
  while (kv.cleanerStatus().due && ticks < 100) {
    manager.tick();
    ticks++;
  }
  expect(ticks).toBeGreaterThan(2); // 2 KiB per tick: the pass spans ticks.
  expect(kv.sizeBytes()).toBeLessThan(before / 5);
  expect(events.sizeBytes()).toBe(eventsBytes);
  const latest = recordsOfLog(kv).filter((r) => r.offset < kv.segments().at(-1)!.baseOffset);
  expect(new Set(latest.map((r) => r.key)).size).toBe(latest.length);
});

test("storage: compaction: cleaner state: format, parse, and bounded pass marks", () => {
  const state: CleanerState = {
    firstDirtyOffset: 120,
    tombstones: 3,
    horizon: 40,
    passes: [
      { end: 40, timeMs: T0 },
      { end: 120, timeMs: T0 + 5 },
    ],
  };
  expect(parseCleanerState(formatCleanerState(state))).toEqual(state);
  expect(parseCleanerState("version: 1\n")).toBeNull();
  expect(parseCleanerState(formatCleanerState(state).replace("pass: 120", "pass: 30"))).toBeNull();
  expect(parseCleanerState("garbage")).toBeNull();

  // Marks of age collapse into the latest of them; the young ones stay.
  const marks = [10, 20, 30, 40].map((end, i) => ({ end, timeMs: T0 + i * 1000 }));
  expect(prunePasses(marks, T0 + 2500, 1000)).toEqual([
    { end: 20, timeMs: T0 + 1000 },
    { end: 30, timeMs: T0 + 2000 },
    { end: 40, timeMs: T0 + 3000 },
  ]);
  // Too many young marks: the oldest merge, the later time winning.
  const many = Array.from({ length: CLEANER_PASSES_REMEMBERED_MAX + 3 }, (_, i) => ({
    end: i + 1,
    timeMs: T0 + i,
  }));
  const pruned = prunePasses(many, T0, 1_000_000);
  expect(pruned.length).toBe(CLEANER_PASSES_REMEMBERED_MAX);
  expect(pruned.at(-1)).toEqual(many.at(-1));
  expect(pruned[0]!.end).toBe(4);
  expect(pruned[0]!.timeMs).toBe(T0 + 3);

  // A log whose tail a crash cut: nothing past its end counts as cleaned.
  expect(clampToLog(state, 100)).toEqual({
    firstDirtyOffset: 100,
    tombstones: 3,
    horizon: 40,
    passes: [
      { end: 40, timeMs: T0 },
      { end: 100, timeMs: T0 + 5 },
    ],
  });
  expect(clampToLog(state, 30).passes).toEqual([{ end: 30, timeMs: T0 + 5 }]);

  // A damaged state file costs work only: the whole log is dirty again.
  const clock = new ManualClock(T0);
  const dir = freshDir();
  const log = open(dir, clock, { segmentBytes: 400 });
  for (let i = 0; i < 20; i++) log.append(keyed([[`k${i}`, `v${i}`]]), { leaderEpoch: 0 });
  log.compact();
  expect(log.cleanerState().firstDirtyOffset).toBeGreaterThan(0);
  close(log);
  writeFileSync(join(dir, CLEANER_STATE_FILE), "version: 0\nnonsense\n");
  const reopened = open(dir, clock, { segmentBytes: 400 });
  expect(reopened.cleanerState().firstDirtyOffset).toBe(0);
  expect(reopened.cleanerStatus().dirtyRatio).toBe(1);
});

test("storage: compaction: seeded runs of appends, cleaner steps, DeleteRecords and reopens", () => {
  for (let seed = 1; seed <= 15; seed++) {
    const random = seededRandom(seed);
    const clock = new ManualClock(T0);
    const dir = freshDir();
    const overrides: Partial<LogConfig> = {
      segmentBytes: 400 + random(1200),
      cleanupPolicy: { delete: random(2) === 0, compact: true },
      retentionMs: -1,
      deleteRetentionMs: 5_000,
    };
    let log = open(dir, clock, overrides);
    const model = new Model();
    const check = () => {
      const left = recordsOfLog(log);
      const byOffset = new Map(model.records.map((r) => [r.offset, r]));
      for (const record of left) expect(record).toEqual(byOffset.get(record.offset)!);
      // A key's latest record stays unless it is a tombstone (which may age out).
      for (const [key, offset] of model.latest()) {
        const latest = byOffset.get(offset)!;
        if (offset < log.logStartOffset || latest.value === null) continue;
        if (!left.some((r) => r.offset === offset))
          throw new Error(`seed ${seed}: lost ${key}@${offset}`);
      }
      // A tombstone gone means every older value of its key is gone too.
      for (const record of model.records) {
        if (record.value === null || left.some((r) => r.offset === record.offset)) continue;
        const stale = left.find((r) => r.key === record.key && r.offset < record.offset);
        if (stale !== undefined)
          throw new Error(`seed ${seed}: ${record.key}@${stale.offset} outlived a tombstone`);
      }
      expect(log.logEndOffset).toBe(model.records.length);
    };
    for (let op = 0; op < 120; op++) {
      const choice = random(20);
      if (choice < 10) {
        const count = 1 + random(4);
        const records: Rec[] = Array.from({ length: count }, () => [
          `key-${random(12)}`,
          random(8) === 0 ? null : `v${op}-${"y".repeat(random(40))}`,
        ]);
        model.append(log, records, { gzip: random(3) === 0 });
      } else if (choice < 16) {
        log.cleanStep(1 + random(3000));
      } else if (choice === 16) {
        clock.advance(random(4_000));
      } else if (choice === 17 && log.config.cleanupPolicy.delete) {
        const to =
          log.logStartOffset + random(Math.max(1, log.highWatermark - log.logStartOffset) + 1);
        expect(log.deleteRecordsBefore(Math.min(to, log.highWatermark)).ok).toBe(true);
      } else if (choice === 18) {
        close(log);
        log = open(dir, clock, overrides, { dirtyBytesMin: 0 }, random(2) === 0);
      } else {
        clock.advance(fileDelay(log));
        log.deleteExpiredFiles();
      }
      check();
    }
  }
});

function fileDelay(log: PartitionLog): number {
  return log.config.fileDeleteDelayMs;
}
