/**
 * Timestamps on a real broker: LogAppendTime rewrites a batch's timestamp on append
 * (with a valid CRC), CreateTime keeps the producer's, and ListOffsets by timestamp is
 * answered through the time indexes across segment rolls.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import {
  batchCrcIsValid,
  readBatchSize,
  readMaxTimestamp,
  readTimestampType,
} from "../../src/protocol/record-batch.ts";
import { startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { fetchPartition, producePartition, RawClient } from "../helpers/raw-client.ts";

const LIST_OFFSETS = 2,
  CREATE_TOPICS = 19;
const OLD = 1_600_000_000_000;

let broker: TestBroker;
let client: RawClient;

beforeAll(async () => {
  broker = await startBroker();
  client = await RawClient.connect(broker.port);
  const topic = (name: string, configs: Array<{ name: string; value: string }>) => ({
    name,
    numPartitions: 1,
    replicationFactor: 1,
    assignments: [],
    configs,
  });
  const created = await client.request(CREATE_TOPICS, 7, {
    topics: [
      topic("append-time", [{ name: "message.timestamp.type", value: "LogAppendTime" }]),
      topic("create-time", [{ name: "segment.bytes", value: "4096" }]),
    ],
    timeoutMs: 5000,
  });
  expect(created.topics.map((t: any) => t.errorCode)).toEqual([0, 0]);
});

afterAll(async () => {
  client?.close();
  if (broker) await stopAndClean(broker);
});

async function produce(
  topic: string,
  baseTimestamp: number,
  count: number,
  stepMs = 0,
): Promise<any> {
  const records = buildBatch({
    baseTimestamp,
    records: Array.from({ length: count }, (_, i) => ({
      value: `${topic}-${i}-${"x".repeat(200)}`,
      timestampDelta: i * stepMs,
    })),
  });
  return producePartition(client, topic, 0, records);
}

async function fetchFirstBatch(topic: string): Promise<Uint8Array> {
  const records = (await fetchPartition(client, topic, 0, 0, 1 << 20)).records as Uint8Array;
  return records.subarray(0, readBatchSize(records, 0));
}

async function offsetForTime(
  topic: string,
  timestamp: number,
): Promise<{ offset: number; timestamp: number }> {
  const answer = await client.request(LIST_OFFSETS, 7, {
    replicaId: -1,
    topics: [
      { name: topic, partitions: [{ partitionIndex: 0, timestamp, currentLeaderEpoch: -1 }] },
    ],
  });
  const partition = answer.topics[0].partitions[0];
  expect(partition.errorCode).toBe(0);
  return { offset: partition.offset, timestamp: partition.timestamp };
}

test("broker: timestamps: LogAppendTime rewrites the batch with the broker's time and a valid CRC", async () => {
  const before = Date.now();
  const response = await produce("append-time", OLD, 3);
  const after = Date.now();
  expect(response.errorCode).toBe(0);
  expect(response.logAppendTimeMs).toBeGreaterThanOrEqual(before);
  expect(response.logAppendTimeMs).toBeLessThanOrEqual(after);
  const batch = await fetchFirstBatch("append-time");
  expect(readTimestampType(batch, 0)).toBe("LogAppendTime");
  expect(readMaxTimestamp(batch, 0)).toBe(response.logAppendTimeMs);
  expect(batchCrcIsValid(batch, 0, batch.byteLength)).toBe(true);
});

test("broker: timestamps: CreateTime keeps the producer's timestamps", async () => {
  const response = await produce("create-time", OLD, 3, 10);
  expect(response.logAppendTimeMs).toBe(-1);
  const batch = await fetchFirstBatch("create-time");
  expect(readTimestampType(batch, 0)).toBe("CreateTime");
  expect(readMaxTimestamp(batch, 0)).toBe(OLD + 20);
});

test("broker: timestamps: ListOffsets by timestamp across rolled segments", async () => {
  // 3 records already at OLD..OLD+20; then 30 batches of 3 records, 4 KiB segments roll.
  for (let i = 1; i <= 30; i++)
    expect((await produce("create-time", OLD + i * 1000, 3, 10)).errorCode).toBe(0);
  expect(await offsetForTime("create-time", OLD + 5)).toEqual({ offset: 1, timestamp: OLD + 10 });
  expect(await offsetForTime("create-time", OLD + 17_015)).toEqual({
    offset: 17 * 3 + 2,
    timestamp: OLD + 17_020,
  });
  expect(await offsetForTime("create-time", OLD + 29_500)).toEqual({
    offset: 30 * 3,
    timestamp: OLD + 30_000,
  });
  expect(await offsetForTime("create-time", OLD + 99_000)).toEqual({ offset: -1, timestamp: -1 });
  expect(await offsetForTime("create-time", -3)).toEqual({
    offset: 30 * 3 + 2,
    timestamp: OLD + 30_020,
  });
});
