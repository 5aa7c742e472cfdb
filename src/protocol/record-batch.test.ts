import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { buildBatch, concatBatches } from "./record-batch-builder.ts";
import {
  BATCH_HEADER_BYTES,
  CRC_AT,
  Compression,
  MAGIC_AT,
  RECORD_COUNT_AT,
  batchCrcIsValid,
  computeBatchCrc,
  findRecordAtTimestamp,
  readAttributes,
  readBaseOffset,
  readBaseTimestamp,
  readBatchSize,
  readCompression,
  readLastOffset,
  readLastOffsetDelta,
  readMagic,
  readMaxTimestamp,
  readPartitionLeaderEpoch,
  readProducerEpoch,
  readProducerId,
  readRecordCount,
  readTimestampType,
  setLogAppendTime,
  stampBatch,
  validateRecords,
} from "./record-batch.ts";

const T0 = 1_700_000_000_000;
const MAX = 1024 * 1024;

interface Shape {
  baseTimestamp?: number;
  valueBytes?: number;
  gzip?: boolean;
}

function batchOf(count: number, options: Shape = {}): Buffer {
  return buildBatch({
    baseTimestamp: options.baseTimestamp ?? T0,
    compression: options.gzip === true ? "gzip" : "none",
    records: Array.from({ length: count }, (_, i) => ({
      key: `key-${i}`,
      value: "v".repeat(options.valueBytes ?? 10),
      headers: [{ key: "h", value: `${i}` }],
      timestampDelta: i * 10,
    })),
  });
}

/** Rewrites the CRC after a deliberate edit, so a test reaches the check after the CRC. */
function fixCrc(batch: Buffer): Buffer {
  batch.writeUInt32BE(computeBatchCrc(batch, 0, batch.byteLength), CRC_AT);
  return batch;
}

test("protocol: record batch: builder output reads back through the getters", () => {
  const batch = batchOf(3);
  expect(readMagic(batch, 0)).toBe(2);
  expect(readBatchSize(batch, 0)).toBe(batch.byteLength);
  expect(readRecordCount(batch, 0)).toBe(3);
  expect(readLastOffsetDelta(batch, 0)).toBe(2);
  expect(readBaseTimestamp(batch, 0)).toBe(T0);
  expect(readMaxTimestamp(batch, 0)).toBe(T0 + 20);
  expect(readProducerId(batch, 0)).toBe(-1);
  expect(readProducerEpoch(batch, 0)).toBe(-1);
  expect(readCompression(batch, 0)).toBe(Compression.none);
  expect(readTimestampType(batch, 0)).toBe("CreateTime");
  expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
});

test("protocol: record batch: validate a single good batch", () => {
  const batch = batchOf(5);
  const result = validateRecords(batch, MAX);
  expect(result.ok).toBe(true);
  if (!result.ok) return;
  expect(result.recordCount).toBe(5);
  expect(result.batches).toHaveLength(1);
  const info = result.batches[0]!;
  expect(info.at).toBe(0);
  expect(info.size).toBe(batch.byteLength);
  expect(info.recordCount).toBe(5);
  expect(info.lastOffsetDelta).toBe(4);
  expect(info.maxTimestamp).toBe(T0 + 40);
  expect(info.compression).toBe(0);
  expect(info.isControl).toBe(false);
  expect(info.isTransactional).toBe(false);
});

test("protocol: record batch: validate concatenated batches, compressed among them", () => {
  const batches = [batchOf(1), batchOf(7, { gzip: true }), batchOf(2)];
  const blob = concatBatches(batches);
  const result = validateRecords(blob, MAX);
  expect(result.ok).toBe(true);
  if (!result.ok) return;
  expect(result.recordCount).toBe(10);
  const [a, b] = [batches[0]!.byteLength, batches[1]!.byteLength];
  expect(result.batches.map((info) => info.at)).toEqual([0, a, a + b]);
  expect(result.batches[1]!.compression).toBe(Compression.gzip);
  expect(result.batches[1]!.maxTimestamp).toBe(T0 + 60);
});

test("protocol: record batch: bad CRC is corrupt", () => {
  const batch = batchOf(3);
  batch[batch.byteLength - 1]! ^= 0xff;
  const result = validateRecords(batch, MAX);
  expect(result).toMatchObject({ ok: false, kind: "corrupt" });
});

test("protocol: record batch: a flipped CRC byte is corrupt in the second batch too", () => {
  const second = batchOf(2);
  second[CRC_AT]! ^= 0x01;
  const result = validateRecords(concatBatches([batchOf(1), second]), MAX);
  expect(result).toMatchObject({ ok: false, kind: "corrupt" });
});

test("protocol: record batch: magic 0 and 1 are unsupportedMagic, magic 3 is corrupt", () => {
  for (const magic of [0, 1]) {
    const batch = batchOf(1);
    batch[MAGIC_AT] = magic;
    expect(validateRecords(batch, MAX)).toMatchObject({ ok: false, kind: "unsupportedMagic" });
  }
  const batch = batchOf(1);
  batch[MAGIC_AT] = 3;
  expect(validateRecords(batch, MAX)).toMatchObject({ ok: false, kind: "corrupt" });
});

test("protocol: record batch: truncated blob is corrupt at every cut", () => {
  const blob = concatBatches([batchOf(2), batchOf(3)]);
  const first = readBatchSize(blob, 0);
  for (let cut = 1; cut < blob.byteLength; cut++) {
    if (cut === first) continue; // A whole first batch is a valid blob.
    const result = validateRecords(blob.subarray(0, cut), MAX);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.kind).toBe("corrupt");
  }
  expect(validateRecords(blob.subarray(0, first), MAX).ok).toBe(true);
});

test("protocol: record batch: empty records are invalid", () => {
  const result = validateRecords(new Uint8Array(0), MAX);
  expect(result).toMatchObject({ ok: false, kind: "invalidRecord" });
});

test("protocol: record batch: batch larger than max.message.bytes is tooLarge", () => {
  const batch = batchOf(10, { valueBytes: 1000 });
  expect(validateRecords(batch, batch.byteLength)).toMatchObject({ ok: true });
  const result = validateRecords(batch, batch.byteLength - 1);
  expect(result).toMatchObject({ ok: false, kind: "tooLarge" });
});

test("protocol: record batch: batch length below the header size is corrupt", () => {
  const batch = batchOf(1);
  batch.writeInt32BE(BATCH_HEADER_BYTES - 12 - 1, 8);
  expect(validateRecords(batch, MAX)).toMatchObject({ ok: false, kind: "corrupt" });
});

test("protocol: record batch: count disagreeing with lastOffsetDelta is invalidRecord", () => {
  const batch = batchOf(3);
  batch.writeInt32BE(4, RECORD_COUNT_AT);
  expect(validateRecords(fixCrc(batch), MAX)).toMatchObject({ ok: false, kind: "invalidRecord" });
  const zero = batchOf(1);
  zero.writeInt32BE(0, RECORD_COUNT_AT);
  zero.writeInt32BE(-1, 23);
  expect(validateRecords(fixCrc(zero), MAX)).toMatchObject({ ok: false, kind: "invalidRecord" });
});

test("protocol: record batch: records that do not fill an uncompressed batch are invalid", () => {
  // Claim 2 records where 3 are present; lastOffsetDelta agrees with the claim.
  const batch = batchOf(3);
  batch.writeInt32BE(2, RECORD_COUNT_AT);
  batch.writeInt32BE(1, 23);
  expect(validateRecords(fixCrc(batch), MAX)).toMatchObject({ ok: false, kind: "invalidRecord" });
});

test("protocol: record batch: compressed batches are not walked", () => {
  // The same lie in a gzip batch passes: the broker never decompresses.
  const batch = batchOf(3, { gzip: true });
  batch.writeInt32BE(2, RECORD_COUNT_AT);
  batch.writeInt32BE(1, 23);
  expect(validateRecords(fixCrc(batch), MAX)).toMatchObject({ ok: true });
});

test("protocol: record batch: uncompressed max timestamp comes from the records", () => {
  const batch = buildBatch({
    baseTimestamp: T0,
    maxTimestamp: T0 + 5, // Wrong: the records reach T0 + 90.
    records: [
      { value: "a", timestampDelta: 90 },
      { value: "b", timestampDelta: 3 },
    ],
  });
  const result = validateRecords(batch, MAX);
  expect(result.ok && result.batches[0]!.maxTimestamp).toBe(T0 + 90);
});

test("protocol: record batch: stamping keeps the CRC valid", () => {
  const batch = batchOf(4);
  const crc = batch.readUInt32BE(CRC_AT);
  stampBatch(batch, 123_456_789_012, 7);
  expect(readBaseOffset(batch, 0)).toBe(123_456_789_012);
  expect(readLastOffset(batch, 0)).toBe(123_456_789_015);
  expect(readPartitionLeaderEpoch(batch, 0)).toBe(7);
  expect(batch.readUInt32BE(CRC_AT)).toBe(crc);
  expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
  expect(validateRecords(batch, MAX).ok).toBe(true);
});

test("protocol: record batch: stamping a batch inside a blob touches only that batch", () => {
  const blob = concatBatches([batchOf(1), batchOf(2)]);
  const firstSize = readBatchSize(blob, 0);
  const before = Buffer.from(blob.subarray(0, firstSize));
  stampBatch(blob.subarray(firstSize), 42, 3);
  expect(Buffer.compare(blob.subarray(0, firstSize), before)).toBe(0);
  expect(readBaseOffset(blob, firstSize)).toBe(42);
});

test("protocol: record batch: setLogAppendTime sets type and max timestamp, recomputes CRC", () => {
  const batch = batchOf(2, { gzip: true });
  setLogAppendTime(batch, T0 + 999_999);
  expect(readTimestampType(batch, 0)).toBe("LogAppendTime");
  expect(readAttributes(batch, 0) & 0x07).toBe(Compression.gzip);
  expect(readMaxTimestamp(batch, 0)).toBe(T0 + 999_999);
  expect(readBaseTimestamp(batch, 0)).toBe(T0);
  expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
  const result = validateRecords(batch, MAX);
  expect(result.ok && result.batches[0]!.timestampType).toBe("LogAppendTime");
});

test("protocol: record batch: find the first record at or after a timestamp", () => {
  const batch = batchOf(5); // Timestamps T0, T0+10, ..., T0+40.
  expect(findRecordAtTimestamp(batch, 0, T0 - 1)).toEqual({ offsetDelta: 0, timestamp: T0 });
  expect(findRecordAtTimestamp(batch, 0, T0 + 11)).toEqual({ offsetDelta: 2, timestamp: T0 + 20 });
  expect(findRecordAtTimestamp(batch, 0, T0 + 40)).toEqual({ offsetDelta: 4, timestamp: T0 + 40 });
  expect(findRecordAtTimestamp(batch, 0, T0 + 41)).toBeNull();
});

test("protocol: record batch: seeded random bytes never crash validation", () => {
  let seed = 12345;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const good = concatBatches([batchOf(3), batchOf(2, { gzip: true })]);
  for (let run = 0; run < 2000; run++) {
    const bytes = Buffer.from(good);
    const flips = 1 + (random() % 4);
    for (let i = 0; i < flips; i++) bytes[random() % bytes.byteLength] = random() & 0xff;
    const cut = random() % 3 === 0 ? random() % bytes.byteLength : bytes.byteLength;
    const result = validateRecords(bytes.subarray(0, cut), MAX);
    const kinds = ["corrupt", "unsupportedMagic", "tooLarge", "invalidRecord"];
    if (!result.ok) expect(kinds).toContain(result.kind);
  }
});
