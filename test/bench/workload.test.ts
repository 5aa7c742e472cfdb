import { expect, test } from "bun:test";
import { decode } from "../../src/protocol/codec.ts";
import { uncompressedTwin } from "../../src/protocol/compression.ts";
import { ProduceRequest } from "../../src/protocol/generated/index.ts";
import { RequestHeader } from "../../src/protocol/generated/request-header.ts";
import { Reader } from "../../src/protocol/reader.ts";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import {
  batchCrcIsValid,
  readCompression,
  validateRecords,
} from "../../src/protocol/record-batch.ts";
import { decodeRecords } from "../../src/protocol/records.ts";
import {
  CORRELATION_ID_AT,
  encodeBatch,
  messageValues,
  PRODUCE_VERSION,
  produceFrame,
  recordsPerBatch,
  sealBatch,
  throughputBatch,
} from "./workload.ts";

test("bench: workload: an uncompressed batch is byte-identical to record-batch-builder's", () => {
  const values = messageValues(200, 100, 5);
  const ours = encodeBatch(values, 1_700_000_000_000, "none");
  const theirs = buildBatch({
    baseTimestamp: 1_700_000_000_000,
    records: values.map((value) => ({ value })),
  });
  expect(ours.batch.equals(theirs)).toBe(true);
  expect(ours.payloadBytes).toBe(200 * 100);
  for (const [i, at] of ours.valueAt!.entries()) {
    expect(ours.batch.subarray(at, at + 100).equals(values[i]!)).toBe(true);
  }
});

test("bench: workload: an lz4 batch has a valid CRC, codec 3 and the same records", () => {
  const values = messageValues(300, 1024, 9);
  const { batch } = encodeBatch(values, Date.now(), "lz4");
  expect(readCompression(batch, 0)).toBe(3);
  expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
  expect(batch.byteLength).toBeLessThan(300 * 1024 * 0.75); // Pseudo-text compresses, but not 100x.
  const records = decodeRecords(uncompressedTwin(batch))!;
  expect(records.map((record) => Buffer.from(record.value!).toString("latin1"))).toEqual(
    values.map((value) => value.toString("latin1")),
  );
});

test("bench: workload: a patched value stays valid once sealed", () => {
  const { batch, valueAt } = encodeBatch(messageValues(4, 64), 0, "none");
  for (const at of valueAt!) batch.writeDoubleLE(123.5, at);
  sealBatch(batch);
  expect(validateRecords(batch, 1024 * 1024).ok).toBe(true);
});

test("bench: workload: throughput batches stay within max.message.bytes and near the asked size", () => {
  for (const messageBytes of [100, 1024]) {
    const { batch, records } = throughputBatch({
      messageBytes,
      batchBytes: 64 * 1024,
      compression: "none",
    });
    expect(records).toBe(recordsPerBatch(messageBytes, 64 * 1024));
    expect(batch.byteLength).toBeLessThanOrEqual(64 * 1024);
    expect(batch.byteLength).toBeGreaterThan(60 * 1024);
  }
});

test("bench: workload: a produce frame decodes, and its correlation id is where it is patched", () => {
  const { batch } = throughputBatch({ messageBytes: 100, batchBytes: 4096, compression: "none" });
  const frame = produceFrame({ topic: "t", partitions: [0, 1], records: batch, acks: -1 });
  frame.writeInt32BE(77, CORRELATION_ID_AT);
  expect(frame.readInt32BE(0)).toBe(frame.byteLength - 4);
  const reader = new Reader(frame.subarray(4));
  const header = decode(RequestHeader, 2, reader);
  expect(header.correlationId).toBe(77);
  expect(header.requestApiVersion).toBe(PRODUCE_VERSION);
  const request = decode(ProduceRequest, PRODUCE_VERSION, reader);
  expect(reader.complete()).toBe(true);
  expect(request.acks).toBe(-1);
  expect(request.topicData[0]!.partitionData.map((p) => p.index)).toEqual([0, 1]);
  expect(Buffer.from(request.topicData[0]!.partitionData[1]!.records!).equals(batch)).toBe(true);
});
