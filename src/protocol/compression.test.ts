import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { compressFrameSync } from "lz4-napi";
import { compressSync } from "snappy";
import { DecompressionError, decompress, uncompressedTwin } from "./compression.ts";
import { buildBatch } from "./record-batch-builder.ts";
import { Compression, readCompression, readRecordCount } from "./record-batch.ts";
import { findRecordAtTimestamp } from "./record-batch.ts";

const text = Buffer.from("records ".repeat(500));

function xerial(blocks: Buffer[]): Buffer {
  const header = Buffer.alloc(16);
  Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]).copy(header);
  header.writeInt32BE(1, 8);
  header.writeInt32BE(1, 12);
  const parts = blocks.flatMap((block) => {
    const compressed = compressSync(block);
    const size = Buffer.alloc(4);
    size.writeInt32BE(compressed.length);
    return [size, compressed];
  });
  return Buffer.concat([header, ...parts]);
}

test("protocol: compression: every Kafka codec decompresses", () => {
  expect(decompress(Compression.gzip, zlib.gzipSync(text))).toEqual(text);
  expect(decompress(Compression.snappy, compressSync(text))).toEqual(text);
  expect(
    decompress(Compression.snappy, xerial([text.subarray(0, 1000), text.subarray(1000)])),
  ).toEqual(text);
  expect(decompress(Compression.lz4, compressFrameSync(text))).toEqual(text);
  expect(decompress(Compression.zstd, zlib.zstdCompressSync(text))).toEqual(text);
});

test("protocol: compression: garbage is a DecompressionError, never a crash", () => {
  for (const codec of [
    Compression.gzip,
    Compression.snappy,
    Compression.lz4,
    Compression.zstd,
    7,
  ]) {
    expect(() => decompress(codec, Buffer.from("not compressed at all"))).toThrow(
      DecompressionError,
    );
  }
});

test("protocol: compression: an uncompressed twin of a gzip batch walks its records", () => {
  const batch = buildBatch({
    baseTimestamp: 1000,
    compression: "gzip",
    records: [0, 10, 20, 30].map((delta) => ({ value: `v${delta}`, timestampDelta: delta })),
  });
  expect(readCompression(batch, 0)).toBe(Compression.gzip);
  const twin = uncompressedTwin(batch);
  expect(readCompression(twin, 0)).toBe(Compression.none);
  expect(readRecordCount(twin, 0)).toBe(4);
  expect(findRecordAtTimestamp(twin, 0, 1015)).toEqual({ offsetDelta: 2, timestamp: 1020 });
});
