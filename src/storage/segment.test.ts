import { afterEach, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { concatBatches } from "../protocol/record-batch-builder.ts";
import { readBaseOffset, stampBatch, validateRecords } from "../protocol/record-batch.ts";
import { AssertionError } from "../util/assert.ts";
import { ManualClock } from "../util/clock.ts";
import { DEFAULT_LOG_CONFIG } from "./log-config.ts";
import { PartitionLog } from "./partition-log.ts";
import { scanBatches } from "./batch-scan.ts";
import { Segment } from "./segment.ts";
import { INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, segmentFileName } from "./segment-files.ts";
import { SegmentCache } from "./segment-cache.ts";
import { LogModel, T0, makeBatch, makeTempDir, removeDir } from "./test-support.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) removeDir(dir);
});

function freshDir(): string {
  const dir = makeTempDir("segment");
  dirs.push(dir);
  return dir;
}

/** Appends `batches` straight to a segment, stamping offsets from its end. */
function appendTo(segment: Segment, batches: Buffer[], intervalBytes: number): void {
  const blob = concatBatches(batches);
  const validated = validateRecords(blob, 1 << 20);
  if (!validated.ok) throw new Error(validated.message);
  let offset = segment.nextOffset;
  for (const info of validated.batches) {
    stampBatch(blob.subarray(info.at, info.at + info.size), offset, 0);
    offset += info.lastOffsetDelta + 1;
  }
  segment.append(blob, validated.batches, segment.nextOffset, intervalBytes, T0);
}

test("storage: segment: name is the 20-digit base offset", () => {
  expect(segmentFileName(0, LOG_SUFFIX)).toBe("00000000000000000000.log");
  expect(segmentFileName(1234567, INDEX_SUFFIX)).toBe("00000000000001234567.index");
  expect(segmentFileName(2 ** 53 - 1, TIME_INDEX_SUFFIX)).toBe("00009007199254740991.timeindex");
  expect(() => segmentFileName(-1, LOG_SUFFIX)).toThrow(AssertionError);
});

test("storage: segment: scanBatches stops at partial and corrupt batches", () => {
  const dir = freshDir();
  const path = join(dir, "scan.log");
  const batches = [
    makeBatch({ count: 2 }),
    makeBatch({ count: 3, valueBytes: 3000 }),
    makeBatch({ count: 1 }),
  ];
  const bytes = concatBatches(batches);
  writeFileSync(path, bytes);
  const fd = openSync(path, "r");
  try {
    const sizes: number[] = [];
    // Chunk smaller than the middle batch: verify mode must grow it, headers mode skip it.
    for (const mode of ["verify", "headers"] as const) {
      sizes.length = 0;
      const outcome = scanBatches(fd, 0, bytes.byteLength, mode, 100, (_b, _a, _p, size) => {
        sizes.push(size);
        return false;
      });
      expect(outcome).toMatchObject({ stop: "end", position: bytes.byteLength, reason: "" });
      expect(sizes).toEqual(batches.map((b) => b.byteLength));
    }
    const cut = scanBatches(fd, 0, bytes.byteLength - 1, "verify", 1 << 16, () => false);
    expect(cut.stop).toBe("partial");
    expect(cut.position).toBe(batches[0]!.byteLength + batches[1]!.byteLength);
    const second = (_b: Uint8Array, _a: number, position: number) => position > 0;
    const found = scanBatches(fd, 0, bytes.byteLength, "headers", 1 << 16, second);
    expect(found).toMatchObject({ stop: "found", position: batches[0]!.byteLength, reason: "" });
  } finally {
    closeSync(fd);
  }
  bytes[batches[0]!.byteLength + 200]! ^= 1;
  writeFileSync(path, bytes);
  const fd2 = openSync(path, "r");
  try {
    const verify = scanBatches(fd2, 0, bytes.byteLength, "verify", 1 << 16, () => false);
    expect(verify).toMatchObject({ stop: "corrupt", position: batches[0]!.byteLength });
    // Headers mode trusts the data: it is used only on verified bytes.
    expect(scanBatches(fd2, 0, bytes.byteLength, "headers", 1 << 16, () => false).stop).toBe("end");
  } finally {
    closeSync(fd2);
  }
});

test("storage: segment: locate uses the index and a short scan", () => {
  const dir = freshDir();
  const cache = new SegmentCache();
  const segment = Segment.create(dir, 100, cache);
  for (let i = 0; i < 200; i++) {
    appendTo(segment, [makeBatch({ count: 1 + (i % 4), valueBytes: 200 })], 1024);
  }
  const entries = segment.indexEntries;
  // An entry once 1024 bytes have passed since the last: at most one per 1024 bytes and
  // at least one per 1024 bytes plus the largest batch (about 950 bytes here).
  expect(entries).toBeGreaterThan(segment.sizeBytes / (1024 + 1000) - 1);
  expect(entries).toBeLessThanOrEqual(segment.sizeBytes / 1024);
  for (let offset = 100; offset < segment.nextOffset; offset++) {
    const location = segment.locate(offset, 1024 + 61);
    expect(location).not.toBeNull();
    expect(location!.baseOffset).toBeLessThanOrEqual(offset);
    expect(location!.lastOffset).toBeGreaterThanOrEqual(offset);
  }
  expect(segment.locate(segment.nextOffset, 1085)).toBeNull();
  expect(segment.locate(0, 1085)!.baseOffset).toBe(100); // Below the base: the first batch.
  segment.close();
});

test("storage: segment: locate answers the same from the recent-batch ring as from the index, gaps included", () => {
  const dir = freshDir();
  const segment = Segment.create(dir, 0, new SegmentCache());
  // Past the ring's 256 batches, with gaps as a follower of a cleaned log appends them.
  const batches: Array<{ base: number; last: number }> = [];
  let next = 0;
  for (let i = 0; i < 700; i++) {
    const count = 1 + (i % 3);
    const batch = makeBatch({ count, valueBytes: 100 });
    const base = next + (i % 5 === 0 ? 2 : 0);
    stampBatch(batch, base, 0);
    const validated = validateRecords(batch, 1 << 20);
    if (!validated.ok) throw new Error(validated.message);
    segment.append(batch, validated.batches, next, 1024, T0);
    batches.push({ base, last: base + count - 1 });
    next = base + count;
  }
  const expected = (offset: number) => batches.find((b) => b.last >= offset) ?? null;
  const check = (reader: Segment) => {
    for (let offset = 0; offset <= next; offset++) {
      const want = expected(offset);
      const got = reader.locate(offset, 1024 + 61);
      expect(got === null ? null : { base: got.baseOffset, last: got.lastOffset }).toEqual(
        want === null ? null : { base: want.base, last: want.last },
      );
    }
  };
  check(segment);
  const positions = [0, 300, next - 1].map((offset) => segment.locate(offset, 1085));
  segment.close();
  // The same file opened anew has no ring: every answer comes from the index.
  const reopened = Segment.recover(dir, 0, 1024, new SegmentCache(), T0).segment;
  check(reopened);
  expect([0, 300, next - 1].map((offset) => reopened.locate(offset, 1085))).toEqual(positions);
  reopened.close();
});

test("storage: recovery: a corrupt batch at the last index entry drops the entry too", () => {
  const dir = freshDir();
  const cache = new SegmentCache();
  const segment = Segment.create(dir, 0, cache);
  for (let i = 0; i < 30; i++) appendTo(segment, [makeBatch({ count: 2, valueBytes: 300 })], 0);
  expect(segment.indexEntries).toBe(30);
  const size = segment.sizeBytes;
  segment.close();
  const batchBytes = size / 30;
  // Damage batch 29 (the last entry's batch) and batch 25: the scan starts at the entry of 29,
  // finds it bad, retreats one entry at a time, and truncates at 29 (25 is not rechecked:
  // recovery verifies what follows the last good entry).
  const path = join(dir, segmentFileName(0, LOG_SUFFIX));
  const bytes = readFileSync(path);
  bytes[29 * batchBytes + 100]! ^= 0xff;
  writeFileSync(path, bytes);
  const recovered = Segment.recover(dir, 0, 0, cache, T0);
  expect(recovered.truncatedBytes).toBe(batchBytes);
  expect(recovered.segment.nextOffset).toBe(58);
  expect(recovered.segment.indexEntries).toBe(29);
  expect(statSync(join(dir, segmentFileName(0, INDEX_SUFFIX))).size).toBe(29 * 8);
  expect(statSync(join(dir, segmentFileName(0, TIME_INDEX_SUFFIX))).size).toBe(29 * 12);
  recovered.segment.close();
});

test("storage: recovery: a sealed segment left last (crash before the next) reopens", () => {
  const dir = freshDir();
  const cache = new SegmentCache();
  const segment = Segment.create(dir, 0, cache);
  for (let i = 0; i < 10; i++) {
    appendTo(segment, [makeBatch({ count: 3, baseTimestamp: T0 + i * 100 })], 500);
  }
  segment.seal(); // Adds the closing time index entry.
  segment.close();
  const recovered = Segment.recover(dir, 0, 500, cache, T0 + 10_000);
  const active = recovered.segment;
  expect(recovered.truncatedBytes).toBe(0);
  expect(active.nextOffset).toBe(30);
  expect(active.maxTimestamp).toBe(T0 + 902);
  expect(active.rollTimeMs).toBe(T0 + 2); // The first batch's max timestamp.
  appendTo(active, [makeBatch({ count: 1, baseTimestamp: T0 + 5000 })], 500);
  expect(active.findByTimestamp(T0 + 901)).toEqual({ offset: 28, timestamp: T0 + 901 });
  expect(active.findByTimestamp(T0 + 902)).toEqual({ offset: 29, timestamp: T0 + 902 });
  expect(active.findByTimestamp(T0 + 903)).toEqual({ offset: 30, timestamp: T0 + 5000 });
  active.close();
});

test("storage: recovery: garbage index files are rebuilt for the last segment", () => {
  const dir = freshDir();
  const clock = new ManualClock(T0);
  const config = { ...DEFAULT_LOG_CONFIG, indexIntervalBytes: 256 };
  const log = PartitionLog.open({ dir, config, clock });
  const model = new LogModel();
  for (let i = 0; i < 50; i++) {
    model.append(log, makeBatch({ count: 2, valueBytes: 150, baseTimestamp: T0 + i * 10 }));
  }
  log.close();
  const indexPath = join(dir, segmentFileName(0, INDEX_SUFFIX));
  const timePath = join(dir, segmentFileName(0, TIME_INDEX_SUFFIX));
  const goodIndex = readFileSync(indexPath);
  const goodTime = readFileSync(timePath);
  const garbage = Buffer.alloc(goodIndex.byteLength, 0xab);
  writeFileSync(indexPath, garbage);
  const again = PartitionLog.open({ dir, config, clock });
  expect(again.logEndOffset).toBe(100);
  expect(readFileSync(indexPath)).toEqual(goodIndex);
  expect(readFileSync(timePath)).toEqual(goodTime);
  for (let offset = 0; offset < 100; offset++) {
    const read = again.read(offset, 1, { minOneBatch: true });
    expect(read.ok && readBaseOffset(read.records, 0)).toBe(offset - (offset % 2));
  }
  expect(again.offsetForTimestamp(T0 + 245)).toEqual({ offset: 50, timestamp: T0 + 250 });
  again.close();
});
