/**
 * Retention (Kafka's UnifiedLog.deleteOldSegments) and DeleteRecords on a partition log,
 * on a ManualClock: which segments go, the log start they leave, the `.deleted` files
 * and their removal after file.delete.delay.ms.
 */
import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { logConfigFromOverrides } from "../cluster/topic-config.ts";
import { ManualClock } from "../util/clock.ts";
import { DEFAULT_LOG_CONFIG, type LogConfig, checkLogConfig } from "./log-config.ts";
import { PartitionLog } from "./partition-log.ts";
import { LogModel, T0, makeBatch, makeTempDir, tempLogs } from "./test-support.ts";

const { dirs, logs } = tempLogs();

/** Three batches of one ~1.1 KB record fill a 4 KiB segment; the fourth rolls. */
function config(overrides: Partial<LogConfig> = {}): LogConfig {
  return { ...DEFAULT_LOG_CONFIG, segmentBytes: 4096, indexIntervalBytes: 1024, ...overrides };
}

function freshDir(): string {
  const dir = makeTempDir("retention");
  dirs.push(dir);
  return join(dir, "topic-0");
}

function open(dir: string, overrides: Partial<LogConfig>, clock: ManualClock): PartitionLog {
  const log = PartitionLog.open({ dir, config: config(overrides), clock });
  logs.push(log);
  return log;
}

/**
 * One full segment per entry of `segmentTimes` (its three batches stamped at that time),
 * the last one left active with its three batches.
 */
function build(log: PartitionLog, model: LogModel, segmentTimes: number[]): void {
  for (const time of segmentTimes) {
    for (let i = 0; i < 3; i++) {
      model.append(log, makeBatch({ count: 2, valueBytes: 500, baseTimestamp: time }));
    }
  }
  expect(log.segmentCount()).toBe(segmentTimes.length);
}

function files(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .sort();
}

function bases(log: PartitionLog): number[] {
  return log.segments().map((segment) => segment.baseOffset);
}

const OUT_OF_RANGE = { ok: false, kind: "offsetOutOfRange" } as const;

test("storage: retention: retention.ms deletes the expired prefix, then .deleted files after the delay", async () => {
  const clock = new ManualClock(T0 + 10_000);
  const dir = freshDir();
  const log = open(dir, { retentionMs: 5_000, fileDeleteDelayMs: 60_000 }, clock);
  const model = new LogModel();
  // Segments 0 and 1 are expired; 2 is not; 3 is expired but after 2, so it stays (a
  // prefix only, as Kafka); the active one is fresh.
  build(log, model, [T0, T0 + 1_000, T0 + 7_000, T0 + 2_000, T0 + 9_000]);
  const before = bases(log);
  const sizes = log.segments().map((segment) => segment.sizeBytes);
  const total = log.sizeBytes();

  const result = log.applyRetention();
  expect(result).toEqual({
    segmentsDeleted: 2,
    bytesDeleted: sizes[0]! + sizes[1]!,
    logStartOffset: before[2]!,
  });
  expect(bases(log)).toEqual(before.slice(2));
  expect(log.logStartOffset).toBe(before[2]!);
  expect(log.sizeBytes()).toBe(total - sizes[0]! - sizes[1]!);
  expect(log.read(before[2]! - 1, 100, { minOneBatch: true })).toEqual(OUT_OF_RANGE);
  expect(log.read(0, 100, { minOneBatch: true })).toEqual(OUT_OF_RANGE);
  expect(log.read(before[2]!, 1, { minOneBatch: true }).ok).toBe(true);
  const name = (base: number, suffix: string) => `${String(base).padStart(20, "0")}${suffix}`;
  expect(files(dir, ".deleted")).toEqual(
    [0, 1]
      .flatMap((i) => [".index", ".log", ".timeindex"].map((s) => name(before[i]!, `${s}.deleted`)))
      .sort(),
  );
  expect(files(dir, ".log")).toEqual(before.slice(2).map((base) => name(base, ".log")));
  expect(log.pendingDeleteCount()).toBe(2);
  // Nothing else is due: a second pass changes nothing.
  expect(log.applyRetention().segmentsDeleted).toBe(0);

  clock.advance(59_999);
  expect(log.deleteExpiredFiles()).toBe(0);
  expect(files(dir, ".deleted")).toHaveLength(6);
  clock.advance(1);
  expect(log.deleteExpiredFiles()).toBe(2);
  await log.removalsSettled(); // Removed off the event loop.
  expect(files(dir, ".deleted")).toEqual([]);
  expect(log.pendingDeleteCount()).toBe(0);
});

test("storage: retention: an expired active segment is rolled, then deleted; an empty one stays", () => {
  const clock = new ManualClock(T0 + 100_000);
  const dir = freshDir();
  const log = open(dir, { retentionMs: 5_000, fileDeleteDelayMs: 0 }, clock);
  const model = new LogModel();
  build(log, model, [T0, T0 + 1_000, T0 + 2_000]);
  const end = log.logEndOffset;
  const result = log.applyRetention();
  expect(result.segmentsDeleted).toBe(3);
  expect(log.segmentCount()).toBe(1);
  expect(bases(log)).toEqual([end]);
  expect(log.logStartOffset).toBe(end);
  expect(log.logEndOffset).toBe(end);
  expect(log.segments()[0]!.isEmpty).toBe(true);
  expect(log.read(end - 1, 100, { minOneBatch: true })).toEqual(OUT_OF_RANGE);
  expect(log.read(end, 100, { minOneBatch: true })).toEqual({
    ok: true,
    records: new Uint8Array(0),
  });
  expect(log.applyRetention().segmentsDeleted).toBe(0); // The empty active segment stays.
  expect(log.deleteExpiredFiles()).toBe(3);
  expect(files(dir, ".log")).toEqual([`${String(end).padStart(20, "0")}.log`]);
  const fresh = makeBatch({ count: 1, baseTimestamp: clock.nowMs() });
  expect(log.append(fresh, { leaderEpoch: 0 })).toMatchObject({ ok: true, baseOffset: end });
  // A fresh active segment is not expired: it stays.
  expect(log.applyRetention().segmentsDeleted).toBe(0);
});

test("storage: retention: retention.bytes deletes the oldest sealed segments, never the active one", () => {
  const clock = new ManualClock(T0);
  const dir = freshDir();
  const log = open(dir, {}, clock);
  const model = new LogModel();
  build(log, model, [T0, T0, T0, T0, T0]);
  const sizes = log.segments().map((segment) => segment.sizeBytes);
  const total = log.sizeBytes();
  const before = bases(log);
  // Kafka's rule: a segment goes when the log stays at least retention.bytes without it.
  // With this bound, segments 0 and 1 can go, segment 2 cannot (one byte short).
  const retentionBytes = total - (sizes[0]! + sizes[1]! + sizes[2]! - 1);
  log.updateConfig(config({ retentionBytes }));
  expect(log.applyRetention()).toMatchObject({
    segmentsDeleted: 2,
    bytesDeleted: sizes[0]! + sizes[1]!,
  });
  expect(bases(log)).toEqual(before.slice(2));
  expect(log.sizeBytes()).toBeGreaterThanOrEqual(retentionBytes);
  expect(log.logStartOffset).toBe(before[2]!);

  // retention.bytes 0: every sealed segment goes, the active one stays.
  log.updateConfig(config({ retentionBytes: 0 }));
  expect(log.applyRetention().segmentsDeleted).toBe(2);
  expect(bases(log)).toEqual([before[4]!]);
  expect(log.sizeBytes()).toBe(sizes[4]!);
  expect(log.logStartOffset).toBe(before[4]!);
  expect(log.applyRetention().segmentsDeleted).toBe(0);
});

test("storage: retention: cleanup.policy compact keeps everything, compact,delete does not", () => {
  const clock = new ManualClock(T0 + 100_000);
  const compact = { delete: false, compact: true };
  const log = open(
    freshDir(),
    { retentionMs: 1, retentionBytes: 0, cleanupPolicy: compact },
    clock,
  );
  const model = new LogModel();
  build(log, model, [T0, T0, T0]);
  expect(log.applyRetention().segmentsDeleted).toBe(0);
  expect(log.segmentCount()).toBe(3);
  expect(log.deleteRecordsBefore(2)).toMatchObject({ ok: false, kind: "policyViolation" });
  expect(log.logStartOffset).toBe(0);
  log.updateConfig(config({ retentionMs: 1, cleanupPolicy: { delete: true, compact: true } }));
  expect(log.applyRetention().segmentsDeleted).toBe(3);
});

test("storage: retention: a reader holding a deleted segment keeps reading it until the delay ends", async () => {
  const clock = new ManualClock(T0 + 100_000);
  const dir = freshDir();
  const log = open(dir, { retentionMs: 5_000, fileDeleteDelayMs: 30_000 }, clock);
  const model = new LogModel();
  build(log, model, [T0, T0 + 99_000, T0 + 99_000]);
  // Brook's reads are synchronous today; a reader that keeps a segment across an await
  // (a sendfile-style fetch) would hold it as this test does.
  const held = log.segments()[0]!;
  const expected = model.bytes(0, 3);
  const readHeld = () => {
    const buffer = Buffer.alloc(held.sizeBytes);
    held.readInto(buffer, 0, 0, held.sizeBytes);
    return buffer;
  };
  expect(readHeld().equals(expected)).toBe(true);
  expect(log.applyRetention().segmentsDeleted).toBe(1);
  expect(held.isRenamedForDeletion).toBe(true);
  expect(held.logPath.endsWith(".log.deleted")).toBe(true);
  expect(existsSync(held.logPath)).toBe(true);
  // The log no longer serves it, the holder still can: same bytes, index lookups work.
  expect(log.read(0, 100, { minOneBatch: true })).toEqual(OUT_OF_RANGE);
  expect(readHeld().equals(expected)).toBe(true);
  expect(held.locate(3, 2048)).toMatchObject({ baseOffset: 2, lastOffset: 3 });
  clock.advance(30_000);
  expect(log.deleteExpiredFiles()).toBe(1);
  await log.removalsSettled();
  expect(existsSync(held.logPath)).toBe(false);
  expect(readHeld).toThrow(/closed/);
});

test("storage: retention: .deleted files left by a stop are removed when the log opens", () => {
  const clock = new ManualClock(T0 + 100_000);
  const dir = freshDir();
  const log = open(dir, { retentionMs: 5_000 }, clock);
  build(log, new LogModel(), [T0, T0 + 99_000]);
  log.applyRetention();
  const start = log.logStartOffset;
  log.close();
  expect(files(dir, ".deleted")).toHaveLength(3);
  const again = open(dir, {}, clock);
  expect(files(dir, ".deleted")).toEqual([]);
  expect(again.logStartOffset).toBe(start);
});

test("storage: delete records: moves the log start, deletes whole segments below it (Kafka's rules)", () => {
  const clock = new ManualClock(T0);
  const dir = freshDir();
  const log = open(dir, { fileDeleteDelayMs: 0 }, clock);
  const model = new LogModel();
  build(log, model, [T0, T0, T0, T0]); // Segments of offsets 0-5, 6-11, 12-17, 18-23.
  expect(bases(log)).toEqual([0, 6, 12, 18]);
  const hw = log.highWatermark;
  expect(log.deleteRecordsBefore(hw + 1)).toMatchObject({ ok: false, kind: "offsetOutOfRange" });
  expect(log.deleteRecordsBefore(-2)).toMatchObject({ ok: false, kind: "offsetOutOfRange" });
  expect(log.deleteRecordsBefore(13)).toEqual({ ok: true, logStartOffset: 13 });
  expect(bases(log)).toEqual([12, 18]);
  expect(log.read(12, 100, { minOneBatch: true })).toEqual(OUT_OF_RANGE);
  // Offset 13 sits in the batch 12-13: that batch is returned whole (clients skip 12).
  const read = log.read(13, 1, { minOneBatch: true });
  expect(read.ok && Buffer.from(read.records).equals(model.batches[6]!.bytes)).toBe(true);
  // A lower offset changes nothing.
  expect(log.deleteRecordsBefore(5)).toEqual({ ok: true, logStartOffset: 13 });
  // Up to the high watermark: every sealed segment goes; the active one stays, empty of
  // readable offsets.
  expect(log.deleteRecordsBefore(hw)).toEqual({ ok: true, logStartOffset: hw });
  expect(bases(log)).toEqual([18]);
  expect(log.read(hw - 1, 100, { minOneBatch: true })).toEqual(OUT_OF_RANGE);
  expect(log.read(hw, 100, { minOneBatch: true })).toEqual({
    ok: true,
    records: new Uint8Array(0),
  });
  expect(log.deleteExpiredFiles()).toBe(3);
  // The active segment lies wholly below the log start but stays until it rolls; then
  // the log start rule of retention deletes it.
  log.updateConfig(config({ segmentMs: 1, fileDeleteDelayMs: 0 }));
  clock.advance(2);
  const next = log.append(makeBatch({ count: 1 }), { leaderEpoch: 0 });
  expect(next).toMatchObject({ ok: true, baseOffset: hw, logStartOffset: hw });
  expect(bases(log)).toEqual([18, hw]);
  expect(log.applyRetention().segmentsDeleted).toBe(1);
  expect(bases(log)).toEqual([hw]);
  expect(log.logStartOffset).toBe(hw);
});

test("storage: log config: cleanup.policy, flush and delete delay come from topic configs", () => {
  const of = (entries: Record<string, string>) =>
    logConfigFromOverrides(new Map(Object.entries(entries)));
  expect(of({})).toMatchObject({
    cleanupPolicy: { delete: true, compact: false },
    flushMessages: Number.MAX_SAFE_INTEGER,
    flushMs: Number.MAX_SAFE_INTEGER,
    fileDeleteDelayMs: 60_000,
  });
  expect(of({ "cleanup.policy": "compact" }).cleanupPolicy).toEqual({
    delete: false,
    compact: true,
  });
  expect(of({ "cleanup.policy": "compact, delete" }).cleanupPolicy).toEqual({
    delete: true,
    compact: true,
  });
  expect(of({ "flush.messages": "1", "flush.ms": "0", "file.delete.delay.ms": "0" })).toMatchObject(
    {
      flushMessages: 1,
      flushMs: 0,
      fileDeleteDelayMs: 0,
    },
  );
  expect(checkLogConfig({ ...DEFAULT_LOG_CONFIG, flushMessages: 0 })).toMatchObject({ ok: false });
  expect(checkLogConfig({ ...DEFAULT_LOG_CONFIG, fileDeleteDelayMs: -1 })).toMatchObject({
    ok: false,
  });
});
