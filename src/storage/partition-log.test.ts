import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { buildBatch, concatBatches } from "../protocol/record-batch-builder.ts";
import {
  batchCrcIsValid,
  readBaseOffset,
  readBatchSize,
  readLastOffset,
  readMaxTimestamp,
  readPartitionLeaderEpoch,
  readTimestampType,
} from "../protocol/record-batch.ts";
import { ManualClock } from "../util/clock.ts";
import { DEFAULT_LOG_CONFIG, type LogConfig, checkLogConfig } from "./log-config.ts";
import { PartitionLog, StorageIoError } from "./partition-log.ts";
import { SegmentCache } from "./segment-cache.ts";
import {
  fillLog,
  LogModel,
  T0,
  makeBatch,
  makeTempDir,
  seededRandom,
  splitBatches,
  tempLogs,
} from "./test-support.ts";

const { dirs, logs } = tempLogs();

function config(overrides: Partial<LogConfig> = {}): LogConfig {
  return { ...DEFAULT_LOG_CONFIG, segmentBytes: 16 * 1024, indexIntervalBytes: 1024, ...overrides };
}

function open(
  dir: string,
  overrides: Partial<LogConfig> = {},
  clock = new ManualClock(T0),
  cache?: SegmentCache,
): PartitionLog {
  const options = { dir, config: config(overrides), clock };
  const log = PartitionLog.open(cache === undefined ? options : { ...options, cache });
  logs.push(log);
  return log;
}

function freshDir(): string {
  const dir = makeTempDir("storage");
  dirs.push(dir);
  return join(dir, "topic-0");
}

function firstBatch(records: Uint8Array): { base: number; last: number; size: number } {
  return {
    base: readBaseOffset(records, 0),
    last: readLastOffset(records, 0),
    size: readBatchSize(records, 0),
  };
}

/** True when a one-byte read at `offset` returns exactly the model's batch holding it. */
function readsBatchOf(log: PartitionLog, model: LogModel, offset: number): boolean {
  const read = log.read(offset, 1, { minOneBatch: true });
  if (!read.ok) return false;
  const expected = model.batches[model.batchIndexFor(offset)]!.bytes;
  return Buffer.compare(Buffer.from(read.records.subarray(0, expected.byteLength)), expected) === 0;
}

/** The whole log as one read. */
function readAll(log: PartitionLog): Buffer {
  const read = log.read(log.logStartOffset, 1 << 30, { minOneBatch: true });
  if (!read.ok) throw new Error("Read of the whole log failed");
  return Buffer.from(read.records);
}

function segmentFiles(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .sort();
}

test("storage: partition log: read at every offset across 5 segments", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  fillLog(log, model, 5);
  expect(log.segmentCount()).toBeGreaterThanOrEqual(5);
  expect(segmentFiles(dir, ".log")).toHaveLength(log.segmentCount());
  expect(log.logEndOffset).toBe(model.endOffset);
  expect(log.highWatermark).toBe(log.logEndOffset);
  expect(log.sizeBytes()).toBe(model.bytes(0).byteLength);
  for (let offset = 0; offset < log.logEndOffset; offset++) {
    const read = log.read(offset, 1, { minOneBatch: true });
    expect(read.ok).toBe(true);
    if (!read.ok) continue;
    const i = model.batchIndexFor(offset);
    expect(Buffer.compare(Buffer.from(read.records), model.batches[i]!.bytes)).toBe(0);
    const first = firstBatch(read.records);
    expect(first.base).toBeLessThanOrEqual(offset);
    expect(first.last).toBeGreaterThanOrEqual(offset);
  }
});

test("storage: partition log: reads return whole batches and cross segments", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  fillLog(log, model, 4, 2);
  expect(readAll(log).equals(model.bytes(0))).toBe(true);
  const random = seededRandom(9);
  for (let run = 0; run < 300; run++) {
    const offset = random(log.logEndOffset);
    const maxBytes = random(40_000);
    const read = log.read(offset, maxBytes, { minOneBatch: false });
    expect(read.ok).toBe(true);
    if (!read.ok) continue;
    const from = model.batchIndexFor(offset);
    // The longest run of whole batches from `from` that fits in maxBytes.
    let to = from;
    let bytes = 0;
    while (to < model.batches.length && bytes + model.batches[to]!.bytes.byteLength <= maxBytes) {
      bytes += model.batches[to]!.bytes.byteLength;
      to++;
    }
    expect(Buffer.compare(Buffer.from(read.records), model.bytes(from, to))).toBe(0);
  }
});

test("storage: partition log: maxBytes smaller than the first batch (KIP-74)", () => {
  const log = open(freshDir());
  const model = new LogModel();
  model.append(log, makeBatch({ count: 3, valueBytes: 500 }));
  model.append(log, makeBatch({ count: 2, valueBytes: 10 }));
  const size = model.batches[0]!.bytes.byteLength;
  const whole = log.read(1, 10, { minOneBatch: true });
  expect(whole.ok && Buffer.compare(Buffer.from(whole.records), model.batches[0]!.bytes)).toBe(0);
  expect(log.read(1, 10, { minOneBatch: false })).toEqual({ ok: true, records: new Uint8Array(0) });
  expect(log.read(0, 0, { minOneBatch: false })).toEqual({ ok: true, records: new Uint8Array(0) });
  const zero = log.read(0, 0, { minOneBatch: true });
  expect(zero.ok && zero.records.byteLength).toBe(size);
  // Exactly the first batch fits: the second is not cut in.
  const exact = log.read(0, size + 10, { minOneBatch: false });
  expect(exact.ok && exact.records.byteLength).toBe(size);
});

test("storage: partition log: read at the end is empty, out of range past it or below", () => {
  const log = open(freshDir());
  expect(log.read(0, 100, { minOneBatch: true })).toEqual({ ok: true, records: new Uint8Array(0) });
  expect(log.read(1, 100, { minOneBatch: true })).toEqual({ ok: false, kind: "offsetOutOfRange" });
  const model = new LogModel();
  model.append(log, makeBatch({ count: 4 }));
  expect(log.logEndOffset).toBe(4);
  expect(log.read(4, 100, { minOneBatch: true })).toEqual({ ok: true, records: new Uint8Array(0) });
  expect(log.read(5, 100, { minOneBatch: true })).toEqual({ ok: false, kind: "offsetOutOfRange" });
  expect(log.read(-1, 100, { minOneBatch: true })).toEqual({ ok: false, kind: "offsetOutOfRange" });
});

test("storage: partition log: maxOffset leaves out batches at or above it", () => {
  const log = open(freshDir());
  const model = new LogModel();
  // Offsets 0-1, 2-3, ..., 8-9.
  for (let i = 0; i < 5; i++) model.append(log, makeBatch({ count: 2 }));
  const upTo = (fetchOffset: number, maxOffset: number) => {
    const read = log.read(fetchOffset, 1 << 20, { minOneBatch: true, maxOffset });
    return read.ok ? splitBatches(read.records).map((b) => readBaseOffset(b, 0)) : null;
  };
  expect(upTo(0, 10)).toEqual([0, 2, 4, 6, 8]);
  expect(upTo(0, 6)).toEqual([0, 2, 4]);
  expect(upTo(0, 5)).toEqual([0, 2, 4]); // A batch starting below the bound comes whole.
  expect(upTo(3, 4)).toEqual([2]);
  expect(upTo(4, 4)).toEqual([]);
  expect(upTo(7, 4)).toEqual([]);
});

test("storage: partition log: appends assign consecutive offsets, stamp the leader epoch", () => {
  const log = open(freshDir());
  const first = log.append(makeBatch({ count: 3 }), { leaderEpoch: 5 });
  const expected = { ok: true, logAppendTimeMs: -1, logStartOffset: 0 } as const;
  expect(first).toEqual({ ...expected, baseOffset: 0, lastOffset: 2 });
  const blob = concatBatches([makeBatch({ count: 1 }), makeBatch({ count: 4 })]);
  const second = log.append(blob, { leaderEpoch: 6 });
  expect(second).toEqual({ ...expected, baseOffset: 3, lastOffset: 7 });
  const read = log.read(0, 1 << 20, { minOneBatch: true });
  expect(read.ok).toBe(true);
  if (!read.ok) return;
  const batches = splitBatches(read.records);
  expect(batches.map((b) => readBaseOffset(b, 0))).toEqual([0, 3, 4]);
  expect(batches.map((b) => readPartitionLeaderEpoch(b, 0))).toEqual([5, 6, 6]);
  for (const batch of batches) expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
});

test("storage: partition log: an invalid batch anywhere in a blob appends nothing", () => {
  const dir = freshDir();
  const log = open(dir);
  new LogModel().append(log, makeBatch({ count: 2 }));
  const bad = makeBatch({ count: 2 });
  bad[bad.byteLength - 1]! ^= 0x55;
  const result = log.append(concatBatches([makeBatch({ count: 1 }), bad]), { leaderEpoch: 0 });
  expect(result).toMatchObject({ ok: false, kind: "corrupt" });
  expect(log.logEndOffset).toBe(2);
  const size = statSync(join(dir, segmentFiles(dir, ".log")[0]!)).size;
  expect(size).toBe(log.sizeBytes());
  const big = makeBatch({ count: 1, valueBytes: 2000 });
  const small = open(freshDir(), { maxMessageBytes: 1000 });
  expect(small.append(big, { leaderEpoch: 0 })).toMatchObject({ ok: false, kind: "tooLarge" });
});

test("storage: partition log: reopen after close gives the same offsets and reads", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fillLog(log, model, 3, 3);
  const end = log.logEndOffset;
  const segments = log.segmentCount();
  log.close();
  // What close wrote (the active segment's index entries are batched until then).
  const indexBefore = segmentFiles(dir, ".index").map((name) => readFileSync(join(dir, name)));

  const again = open(dir);
  expect(again.logEndOffset).toBe(end);
  expect(again.logStartOffset).toBe(0);
  expect(again.segmentCount()).toBe(segments);
  expect(again.sizeBytes()).toBe(model.bytes(0).byteLength);
  const indexAfter = segmentFiles(dir, ".index").map((name) => readFileSync(join(dir, name)));
  expect(indexAfter).toEqual(indexBefore);
  for (let offset = 0; offset < end; offset += 3) {
    expect(readsBatchOf(again, model, offset)).toBe(true);
  }
  const next = model.append(again, makeBatch({ count: 2 }));
  expect(next.baseOffset).toBe(end);
  expect(readAll(again).equals(model.bytes(0))).toBe(true);
});

test("storage: recovery: garbage after the last batch is truncated and appends continue", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fillLog(log, model, 3, 4);
  const end = log.logEndOffset;
  log.close();
  const last = join(dir, segmentFiles(dir, ".log").at(-1)!);
  const goodSize = statSync(last).size;
  appendFileSync(last, Buffer.from("this is not a record batch, just garbage bytes"));

  const again = open(dir);
  expect(statSync(last).size).toBe(goodSize);
  expect(again.logEndOffset).toBe(end);
  expect(model.append(again, makeBatch({ count: 3 })).baseOffset).toBe(end);
  expect(readAll(again).equals(model.bytes(0))).toBe(true);
});

test("storage: recovery: half a batch at the end of the last of 3 segments is dropped", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fillLog(log, model, 3, 5);
  const lastBatch = makeBatch({ count: 5, valueBytes: 300 });
  model.append(log, lastBatch);
  const torn = model.batches.pop()!;
  log.close();
  const path = join(dir, segmentFiles(dir, ".log").at(-1)!);
  truncateSync(path, statSync(path).size - Math.floor(torn.bytes.byteLength / 2));

  const again = open(dir);
  expect(again.logEndOffset).toBe(torn.baseOffset);
  expect(again.sizeBytes()).toBe(model.bytes(0).byteLength);
  expect(model.append(again, makeBatch({ count: 2 })).baseOffset).toBe(torn.baseOffset);
  for (let offset = 0; offset < again.logEndOffset; offset++) {
    expect(readsBatchOf(again, model, offset)).toBe(true);
  }
});

test("storage: recovery: a bad CRC in the last segment truncates from that batch on", () => {
  // Opened without checkpoints, the recovery point is 0: every batch is verified.
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir, { segmentBytes: 1 << 20, indexIntervalBytes: 1 << 20 });
  for (let i = 0; i < 40; i++) model.append(log, makeBatch({ count: 2, valueBytes: 100 }));
  log.close();
  const path = join(dir, segmentFiles(dir, ".log")[0]!);
  const bytes = readFileSync(path);
  // Damage a value byte of batch 30; batches 30..39 go.
  const at = model.bytes(0, 30).byteLength + 100;
  bytes[at]! ^= 0xff;
  writeFileSync(path, bytes);
  const again = open(dir, { segmentBytes: 1 << 20, indexIntervalBytes: 1 << 20 });
  expect(again.logEndOffset).toBe(model.batches[30]!.baseOffset);
  expect(statSync(path).size).toBe(model.bytes(0, 30).byteLength);
  expect(readAll(again).equals(model.bytes(0, 30))).toBe(true);
});

test("storage: recovery: index entries past a cut log are dropped", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir, { segmentBytes: 1 << 20, indexIntervalBytes: 0 }); // An entry per batch.
  for (let i = 0; i < 50; i++) model.append(log, makeBatch({ count: 1 + (i % 3) }));
  log.close();
  const path = join(dir, segmentFiles(dir, ".log")[0]!);
  truncateSync(path, model.bytes(0, 20).byteLength + 7); // Into batch 20.
  const again = open(dir, { segmentBytes: 1 << 20, indexIntervalBytes: 0 });
  expect(again.logEndOffset).toBe(model.batches[20]!.baseOffset);
  const indexPath = join(dir, segmentFiles(dir, ".index")[0]!);
  expect(statSync(indexPath).size).toBe(20 * 8);
  model.batches.length = 20;
  for (let offset = 0; offset < again.logEndOffset; offset++) {
    expect(readsBatchOf(again, model, offset)).toBe(true);
  }
  model.append(again, makeBatch({ count: 2 }));
  expect(again.logEndOffset).toBe(model.endOffset);
});

test("storage: recovery: deleted .index files are rebuilt (sealed and active segments)", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fillLog(log, model, 4, 6);
  log.close();
  const indexes = segmentFiles(dir, ".index");
  const times = segmentFiles(dir, ".timeindex");
  const before = indexes.map((name) => readFileSync(join(dir, name)));
  const timesBefore = times.map((name) => readFileSync(join(dir, name)));
  unlinkSync(join(dir, indexes[1]!)); // A sealed segment.
  unlinkSync(join(dir, indexes.at(-1)!)); // The active segment.
  unlinkSync(join(dir, times[2]!));
  // A torn sealed index: half an entry at its end.
  const torn = join(dir, indexes[0]!);
  writeFileSync(torn, Buffer.concat([readFileSync(torn), Buffer.from([1, 2, 3])]));

  const again = open(dir);
  expect(segmentFiles(dir, ".index").map((name) => readFileSync(join(dir, name)))).toEqual(before);
  const timesAfter = segmentFiles(dir, ".timeindex").map((name) => readFileSync(join(dir, name)));
  expect(timesAfter).toEqual(timesBefore);
  expect(again.logEndOffset).toBe(model.endOffset);
  for (let offset = 0; offset < again.logEndOffset; offset++) {
    expect(readsBatchOf(again, model, offset)).toBe(true);
  }
});

test("storage: recovery: a corrupt sealed segment below the recovery point is refused", async () => {
  // Below the recovery point a segment was fsynced: damage there is not a crash fault.
  // (Segments after the recovery point are verified and cut: recovery.test.ts.)
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fillLog(log, model, 3, 7);
  await log.sealsSettled();
  const recovery = { recoveryPoint: log.recoveryPoint, logStartOffset: 0, cleanShutdown: false };
  log.close();
  const logs = segmentFiles(dir, ".log");
  const path = join(dir, logs[0]!);
  const bytes = readFileSync(path);
  bytes[bytes.byteLength - 5]! ^= 0xff;
  writeFileSync(path, bytes);
  unlinkSync(join(dir, segmentFiles(dir, ".index")[0]!)); // Forces a verifying rebuild.
  const reopen = () =>
    PartitionLog.open({ dir, config: config(), clock: new ManualClock(T0), recovery });
  expect(reopen).toThrow(/Segment is corrupt/);
});

test("storage: recovery: stray index files without a .log are removed", () => {
  const dir = freshDir();
  const log = open(dir);
  new LogModel().append(log, makeBatch({ count: 1 }));
  log.close();
  writeFileSync(join(dir, "00000000000000000777.index"), Buffer.alloc(8));
  writeFileSync(join(dir, "00000000000000000001.timeindex.rebuild"), Buffer.alloc(12));
  const again = open(dir);
  expect(again.logEndOffset).toBe(1);
  expect(existsSync(join(dir, "00000000000000000777.index"))).toBe(false);
  expect(existsSync(join(dir, "00000000000000000001.timeindex.rebuild"))).toBe(false);
});

test("storage: partition log: offsetForTimestamp across segments finds the exact record", () => {
  const log = open(freshDir());
  const model = new LogModel();
  fillLog(log, model, 5, 8); // Record n of the log has timestamp T0 + 2n.
  expect(log.offsetForTimestamp(0)).toEqual({ offset: 0, timestamp: T0 });
  for (let offset = 0; offset < log.logEndOffset; offset += 1) {
    const timestamp = T0 + 2 * offset;
    expect(log.offsetForTimestamp(timestamp)).toEqual({ offset, timestamp });
    expect(log.offsetForTimestamp(timestamp - 1)).toEqual({ offset, timestamp });
  }
  expect(log.offsetForTimestamp(T0 + 2 * log.logEndOffset)).toBeNull();
  const last = log.logEndOffset - 1;
  expect(log.maxTimestamp()).toEqual({ offset: last, timestamp: T0 + 2 * last });
});

test("storage: partition log: offsetForTimestamp with out-of-order and compressed batches", () => {
  const dir = freshDir();
  const log = open(dir, { segmentBytes: 2048, indexIntervalBytes: 0 });
  const model = new LogModel();
  // Batch timestamps (one record each unless noted): 100, 300, 200, gzip[400, 410, 420], 350, 500.
  const t = (ms: number) => T0 + ms;
  model.append(log, makeBatch({ count: 1, baseTimestamp: t(100), valueBytes: 600 }));
  model.append(log, makeBatch({ count: 1, baseTimestamp: t(300), valueBytes: 600 }));
  model.append(log, makeBatch({ count: 1, baseTimestamp: t(200), valueBytes: 600 }));
  const gzip = { count: 3, baseTimestamp: t(400), stepMs: 10, gzip: true, valueBytes: 600 };
  model.append(log, makeBatch(gzip));
  model.append(log, makeBatch({ count: 1, baseTimestamp: t(350), valueBytes: 600 }));
  model.append(log, makeBatch({ count: 1, baseTimestamp: t(500), valueBytes: 600 }));
  expect(log.segmentCount()).toBeGreaterThan(1);
  const check = () => {
    expect(log.offsetForTimestamp(t(50))).toEqual({ offset: 0, timestamp: t(100) });
    expect(log.offsetForTimestamp(t(150))).toEqual({ offset: 1, timestamp: t(300) });
    expect(log.offsetForTimestamp(t(250))).toEqual({ offset: 1, timestamp: t(300) });
    expect(log.offsetForTimestamp(t(301))).toEqual({ offset: 3, timestamp: t(400) });
    // Inside the compressed batch: the exact record, as Kafka answers.
    expect(log.offsetForTimestamp(t(405))).toEqual({ offset: 4, timestamp: t(410) });
    expect(log.offsetForTimestamp(t(415))).toEqual({ offset: 5, timestamp: t(420) });
    expect(log.offsetForTimestamp(t(421))).toEqual({ offset: 7, timestamp: t(500) });
    expect(log.offsetForTimestamp(t(501))).toBeNull();
    expect(log.maxTimestamp()).toEqual({ offset: 7, timestamp: t(500) });
  };
  check();
  log.close();
  const reopened = open(dir, { segmentBytes: 2048, indexIntervalBytes: 0 });
  expect(reopened.offsetForTimestamp(t(415))).toEqual({ offset: 5, timestamp: t(420) });
  expect(reopened.maxTimestamp()).toEqual({ offset: 7, timestamp: t(500) });
  expect(reopened.offsetForTimestamp(t(150))).toEqual({ offset: 1, timestamp: t(300) });
});

test("storage: partition log: empty log has no timestamps", () => {
  const log = open(freshDir());
  expect(log.offsetForTimestamp(0)).toBeNull();
  expect(log.maxTimestamp()).toBeNull();
});

test("storage: partition log: segment.ms rolls by the first batch's append time", () => {
  const clock = new ManualClock(T0);
  const dir = freshDir();
  const log = open(dir, { segmentBytes: 1 << 20, segmentMs: 60_000 }, clock);
  const model = new LogModel();
  model.append(log, makeBatch({ count: 1 }));
  clock.advance(30_000);
  model.append(log, makeBatch({ count: 1 }));
  clock.advance(30_000);
  model.append(log, makeBatch({ count: 1 })); // Exactly segment.ms old: not yet.
  expect(log.segmentCount()).toBe(1);
  clock.advance(1);
  model.append(log, makeBatch({ count: 1 }));
  expect(log.segmentCount()).toBe(2);
  const names = ["00000000000000000000.log", "00000000000000000003.log"];
  expect(segmentFiles(dir, ".log")).toEqual(names);
  // The new segment's clock starts at its first append, not at the roll.
  clock.advance(60_000);
  model.append(log, makeBatch({ count: 1 }));
  expect(log.segmentCount()).toBe(2);
  clock.advance(1);
  model.append(log, makeBatch({ count: 1 }));
  expect(log.segmentCount()).toBe(3);
  expect(readAll(log).equals(model.bytes(0))).toBe(true);
});

test("storage: partition log: segment.bytes rolls before an append that would not fit", () => {
  const dir = freshDir();
  const log = open(dir, { segmentBytes: 4096 });
  const model = new LogModel();
  const size = makeBatch({ count: 1, valueBytes: 1000 }).byteLength;
  const perSegment = Math.floor(4096 / size);
  for (let i = 0; i < perSegment * 3; i++) {
    model.append(log, makeBatch({ count: 1, valueBytes: 1000 }));
  }
  expect(log.segmentCount()).toBe(3);
  for (const name of segmentFiles(dir, ".log")) {
    expect(statSync(join(dir, name)).size).toBe(perSegment * size);
  }
  // A single append larger than segment.bytes still goes in, alone in its segment.
  model.append(log, makeBatch({ count: 10, valueBytes: 1000 }));
  model.append(log, makeBatch({ count: 1 }));
  expect(log.segmentCount()).toBe(5);
});

test("storage: partition log: LogAppendTime stamps the broker's clock into every batch", () => {
  const clock = new ManualClock(T0 + 5_000_000);
  const log = open(freshDir(), { messageTimestampType: "LogAppendTime" }, clock);
  const blob = concatBatches([
    makeBatch({ count: 2, baseTimestamp: T0 }),
    makeBatch({ count: 1, gzip: true }),
  ]);
  const result = log.append(blob, { leaderEpoch: 1 });
  const appendTime = T0 + 5_000_000;
  expect(result).toMatchObject({ ok: true, baseOffset: 0, logAppendTimeMs: appendTime });
  const read = log.read(0, 1 << 20, { minOneBatch: true });
  expect(read.ok).toBe(true);
  if (!read.ok) return;
  for (const batch of splitBatches(read.records)) {
    expect(readTimestampType(batch, 0)).toBe("LogAppendTime");
    expect(readMaxTimestamp(batch, 0)).toBe(T0 + 5_000_000);
    expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
  }
  expect(log.offsetForTimestamp(T0)).toEqual({ offset: 0, timestamp: T0 + 5_000_000 });
  expect(log.maxTimestamp()).toEqual({ offset: 0, timestamp: T0 + 5_000_000 });
  // Switching back to CreateTime: the producer's timestamps again, the type bit cleared.
  log.updateConfig(config({ messageTimestampType: "CreateTime" }));
  const back = makeBatch({ count: 1, baseTimestamp: T0 + 7 });
  expect(log.append(back, { leaderEpoch: 1 })).toMatchObject({ ok: true, logAppendTimeMs: -1 });
  expect(readTimestampType(back, 0)).toBe("CreateTime");
  expect(readMaxTimestamp(back, 0)).toBe(T0 + 7);
});

test("storage: partition log: CreateTime fixes a wrong max timestamp (uncompressed batch)", () => {
  const log = open(freshDir());
  // The producer claims max T0 + 1 but a record has T0 + 100 (Kafka recomputes it).
  const lying = buildBatch({
    baseTimestamp: T0,
    maxTimestamp: T0 + 1,
    records: [{ value: "a" }, { value: "b", timestampDelta: 100 }],
  });
  expect(log.append(lying, { leaderEpoch: 0 }).ok).toBe(true);
  expect(readMaxTimestamp(lying, 0)).toBe(T0 + 100);
  expect(batchCrcIsValid(lying, 0, lying.byteLength)).toBe(true);
  expect(log.maxTimestamp()).toEqual({ offset: 1, timestamp: T0 + 100 });
});

test("storage: partition log: a small shared cache serves many sealed segments", () => {
  const cache = new SegmentCache({ indexBytesMax: 1024, openFilesMax: 2 });
  const dir = freshDir();
  const log = open(dir, {}, new ManualClock(T0), cache);
  const model = new LogModel();
  fillLog(log, model, 8, 10);
  log.close();
  const again = open(dir, {}, new ManualClock(T0), cache);
  const random = seededRandom(3);
  for (let run = 0; run < 500; run++) {
    const offset = random(again.logEndOffset);
    expect(readsBatchOf(again, model, offset)).toBe(true);
  }
  expect(cache.stats().openFiles).toBeLessThanOrEqual(2);
  expect(cache.stats().indexBytes).toBeLessThanOrEqual(1024);
  again.close();
  expect(cache.stats().openFiles).toBe(0);
});

test("storage: partition log: deleteAll drops the log's unwritten pages instead of fsyncing them", async () => {
  // /proc/self/io counts bytes whose dirty pages were dropped before writeback
  // (cancelled_write_bytes): a log fsynced before removal would drop none.
  const cancelled = () =>
    Number(/cancelled_write_bytes: (\d+)/.exec(readFileSync("/proc/self/io", "utf8"))![1]);
  const log = open(freshDir(), { segmentBytes: DEFAULT_LOG_CONFIG.segmentBytes });
  const blob = makeBatch({ count: 100, valueBytes: 8000 });
  for (let i = 0; i < 12; i++) expect(log.append(blob, { leaderEpoch: 0 }).ok).toBe(true);
  const before = cancelled();
  log.deleteAll();
  await log.removalsSettled();
  expect(cancelled() - before).toBeGreaterThanOrEqual(8 * 1024 * 1024);
});

test("storage: partition log: deleteAll renames the directory at once and removes it in the background", async () => {
  const dir = freshDir();
  const log = open(dir);
  fillLog(log, new LogModel(), 2, 11);
  log.deleteAll();
  expect(existsSync(dir)).toBe(false);
  expect(() => log.read(0, 1, { minOneBatch: true })).toThrow(/closed/);
  await log.removalsSettled();
  expect(readdirSync(join(dir, "..")).filter((name) => name.endsWith("-delete"))).toEqual([]);
});

test("storage: partition log: flush, then a reopened log has everything", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  model.append(log, makeBatch({ count: 7 }));
  log.flush();
  log.close();
  const again = open(dir);
  expect(again.logEndOffset).toBe(7);
});

test("storage: log config: defaults are Kafka's and pass the check", () => {
  expect(DEFAULT_LOG_CONFIG).toMatchObject({
    segmentBytes: 1073741824,
    segmentMs: 604800000,
    indexIntervalBytes: 4096,
    maxMessageBytes: 1048588,
    messageTimestampType: "CreateTime",
  });
  expect(checkLogConfig(DEFAULT_LOG_CONFIG)).toEqual({ ok: true });
  expect(checkLogConfig({ ...DEFAULT_LOG_CONFIG, segmentBytes: 10 })).toMatchObject({ ok: false });
  expect(checkLogConfig({ ...DEFAULT_LOG_CONFIG, segmentMs: 0 })).toMatchObject({ ok: false });
  const forever = { ...DEFAULT_LOG_CONFIG, retentionMs: 9223372036854775807 };
  expect(checkLogConfig(forever)).toEqual({ ok: true });
});

test("storage: partition log: a failed roll throws StorageIoError and keeps the log usable", () => {
  const dir = freshDir();
  const log = open(dir, { segmentBytes: 2048 });
  const model = new LogModel();
  model.append(log, makeBatch({ count: 1, valueBytes: 1500 }));
  // Something occupies the next segment's name, so creating it fails.
  const blocker = join(dir, "00000000000000000001.log");
  writeFileSync(blocker, "");
  expect(() => log.append(makeBatch({ count: 1, valueBytes: 1500 }), { leaderEpoch: 0 })).toThrow(
    StorageIoError,
  );
  expect(log.logEndOffset).toBe(1);
  expect(log.segmentCount()).toBe(1);
  unlinkSync(blocker);
  model.append(log, makeBatch({ count: 1, valueBytes: 1500 }));
  expect(log.segmentCount()).toBe(2);
  expect(readAll(log).equals(model.bytes(0))).toBe(true);
});

// truncateTo: what replication and the Raft log need to cut a divergent suffix.

/** The model cut as `truncateTo(offset)` cuts the log: batches whose last offset >= offset go. */
function truncateModel(model: LogModel, offset: number): void {
  while (
    model.batches.length > 0 &&
    model.batches[model.batches.length - 1]!.lastOffset >= offset
  ) {
    model.batches.pop();
  }
}

test("storage: truncateTo: cuts inside a middle segment, deletes later ones, appends go on", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  fillLog(log, model, 5, 7);
  const segmentsBefore = log.segmentCount();
  const middle = log.segments()[2]!;
  // An offset inside the third segment, inside some batch of it.
  const target = model.batches[model.batchIndexFor(middle.baseOffset) + 2]!.baseOffset + 1;
  truncateModel(model, target);
  const end = log.truncateTo(target);
  expect(end).toBe(model.endOffset);
  expect(end).toBeLessThanOrEqual(target);
  expect(log.logEndOffset).toBe(end);
  expect(log.highWatermark).toBe(end);
  expect(log.recoveryPoint).toBeLessThanOrEqual(end);
  expect(log.segmentCount()).toBe(3);
  expect(segmentsBefore).toBeGreaterThan(3);
  expect(segmentFiles(dir, ".log")).toHaveLength(3);
  expect(log.sizeBytes()).toBe(model.bytes(0).byteLength);
  expect(readAll(log).equals(model.bytes(0))).toBe(true);
  for (let offset = 0; offset < end; offset++) expect(readsBatchOf(log, model, offset)).toBe(true);
  expect(log.read(end + 1, 100, { minOneBatch: true })).toEqual({
    ok: false,
    kind: "offsetOutOfRange",
  });

  // Appends continue at the new end, with the new leader epoch, and survive a reopen.
  model.append(log, makeBatch({ count: 3 }), 9);
  expect(log.logEndOffset).toBe(end + 3);
  log.close();
  const again = open(dir);
  expect(again.logEndOffset).toBe(end + 3);
  expect(readAll(again).equals(model.bytes(0))).toBe(true);
  const last = again.read(end, 1, { minOneBatch: true });
  expect(last.ok && readPartitionLeaderEpoch(last.records, 0)).toBe(9);
});

test("storage: truncateTo: at a segment's base offset, at the end, and to empty", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  fillLog(log, model, 4, 3);
  const end = log.logEndOffset;
  expect(log.truncateTo(end)).toBe(end);
  expect(log.truncateTo(end + 10)).toBe(end);
  const third = log.segments()[2]!.baseOffset;
  truncateModel(model, third);
  expect(log.truncateTo(third)).toBe(third);
  // The third segment is kept, empty and active.
  expect(log.segmentCount()).toBe(3);
  expect(readAll(log).equals(model.bytes(0))).toBe(true);
  expect(log.truncateTo(0)).toBe(0);
  expect(log.segmentCount()).toBe(1);
  expect(log.sizeBytes()).toBe(0);
  expect(log.read(0, 100, { minOneBatch: true })).toEqual({ ok: true, records: new Uint8Array(0) });
  const fresh = new LogModel();
  fresh.append(log, makeBatch({ count: 2 }));
  log.close();
  const again = open(dir);
  expect(again.logEndOffset).toBe(2);
  expect(readAll(again).equals(fresh.bytes(0))).toBe(true);
});

test("storage: truncateTo: indexes are rebuilt, so reads at every kept offset work after reopen", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  fillLog(log, model, 3, 11);
  const target = Math.floor(log.logEndOffset * 0.6);
  truncateModel(model, target);
  log.truncateTo(target);
  // No clean close: the next open verifies what the truncation left.
  const reopened = PartitionLog.open({ dir, config: config(), clock: new ManualClock(T0) });
  logs.push(reopened);
  expect(reopened.logEndOffset).toBe(model.endOffset);
  expect(reopened.openReport.truncatedBytes).toBe(0);
  for (let offset = 0; offset < reopened.logEndOffset; offset++) {
    expect(readsBatchOf(reopened, model, offset)).toBe(true);
  }
});

test("storage: truncateTo: above a moved log start, and refused below it", () => {
  const dir = freshDir();
  const log = open(dir);
  const model = new LogModel();
  fillLog(log, model, 4, 5);
  const second = log.segments()[1]!.baseOffset;
  const start = second + 2;
  expect(log.deleteRecordsBefore(start)).toEqual({ ok: true, logStartOffset: start });
  expect(() => log.truncateTo(start - 1)).toThrow("Truncation below the log start");
  // A cut inside the batch that straddles the log start leaves nothing readable: the log
  // restarts empty at its start.
  const straddling = model.batches[model.batchIndexFor(start)]!;
  const cutAt = Math.max(start, straddling.baseOffset);
  const end = log.truncateTo(cutAt);
  if (straddling.baseOffset < start) {
    expect(end).toBe(start);
    expect(log.logStartOffset).toBe(start);
    expect(log.sizeBytes()).toBe(0);
  } else {
    expect(end).toBe(straddling.baseOffset);
  }
  expect(log.logEndOffset).toBe(end);
  model.batches.length = 0;
  const next = new LogModel();
  next.append(log, makeBatch({ count: 4 }));
  expect(log.logEndOffset).toBe(end + 4);
});

test("storage: truncateTo: a compacted log's cleaner forgets what was cut", () => {
  const dir = freshDir();
  const log = open(dir, { cleanupPolicy: { delete: false, compact: true } });
  const model = new LogModel();
  fillLog(log, model, 4, 13);
  log.compact();
  const target = log.segments()[1]!.baseOffset;
  log.truncateTo(target);
  expect(log.cleanerState().firstDirtyOffset).toBeLessThanOrEqual(log.logEndOffset);
  // The cleaner still runs over the remaining and newly appended data.
  const more = new LogModel();
  fillLog(log, more, 3, 17);
  expect(() => log.compact()).not.toThrow();
});
