/**
 * The log start offset on a real broker process: DeleteRecords (key 21) and time
 * retention move it; a consumer fetching below it gets OFFSET_OUT_OF_RANGE, ListOffsets
 * earliest answers it, and it survives kill -9 (checkpointed when it moves).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode } from "../../src/protocol/error-codes.ts";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { readBaseOffset, readLastOffset } from "../../src/protocol/record-batch.ts";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { fetchPartition, producePartition, RawClient } from "../helpers/raw-client.ts";

const LIST_OFFSETS = 2,
  CREATE_TOPICS = 19,
  DELETE_RECORDS = 21;
const HOUR_MS = 60 * 60 * 1000;

let broker: TestBroker;
let client: RawClient;

beforeAll(async () => {
  broker = await startBroker();
  client = await RawClient.connect(broker.port);
  const topic = (name: string, configs: Record<string, string>) => ({
    name,
    numPartitions: 1,
    replicationFactor: 1,
    assignments: [],
    configs: Object.entries(configs).map(([key, value]) => ({ name: key, value })),
  });
  const created = await client.request(CREATE_TOPICS, 7, {
    topics: [
      // Created first: the cleaner's first retention pass comes one tick after start.
      topic("expiring", { "segment.bytes": "4096", "retention.ms": "60000" }),
      topic("trimmed", { "segment.bytes": "4096" }),
      topic("compacted", { "cleanup.policy": "compact" }),
    ],
    timeoutMs: 5000,
  });
  expect(created.topics.map((t: any) => t.errorCode)).toEqual([0, 0, 0]);
  // An hour-old batch per request: all of "expiring" is past retention.ms at once.
  for (let i = 0; i < 12; i++)
    expect((await produce("expiring", Date.now() - HOUR_MS)).errorCode).toBe(0);
  for (let i = 0; i < 30; i++) expect((await produce("trimmed", Date.now())).errorCode).toBe(0);
  expect((await produce("compacted", Date.now())).errorCode).toBe(0);
});

afterAll(async () => {
  client?.close();
  if (broker) await stopAndClean(broker);
});

/** Two ~550-byte records: three batches fill a 4 KiB segment. */
async function produce(topic: string, timestamp: number): Promise<any> {
  const records = buildBatch({
    baseTimestamp: timestamp,
    records: [{ value: "a".repeat(500) }, { value: "b".repeat(500) }],
  });
  return producePartition(client, topic, 0, records);
}

const fetchAt = (topic: string, fetchOffset: number) =>
  fetchPartition(client, topic, 0, fetchOffset, 1 << 20);

async function listOffset(topic: string, timestamp: number): Promise<number> {
  const answer = await client.request(LIST_OFFSETS, 7, {
    replicaId: -1,
    isolationLevel: 0,
    topics: [
      { name: topic, partitions: [{ partitionIndex: 0, timestamp, currentLeaderEpoch: -1 }] },
    ],
  });
  const partition = answer.topics[0].partitions[0];
  expect(partition.errorCode).toBe(0);
  return Number(partition.offset);
}

async function deleteRecords(
  topic: string,
  offset: number,
  version = 2,
): Promise<{ errorCode: number; lowWatermark: number }> {
  const answer = await client.request(DELETE_RECORDS, version, {
    topics: [{ name: topic, partitions: [{ partitionIndex: 0, offset }] }],
    timeoutMs: 5000,
  });
  const partition = answer.topics[0].partitions[0];
  return { errorCode: partition.errorCode, lowWatermark: Number(partition.lowWatermark) };
}

test("storage: log start: DeleteRecords moves it; fetch below is OFFSET_OUT_OF_RANGE, ListOffsets earliest follows", async () => {
  expect(await listOffset("trimmed", -1)).toBe(60);
  expect(await deleteRecords("trimmed", 25, 0)).toEqual({
    errorCode: ErrorCode.NONE,
    lowWatermark: 25,
  });
  const below = await fetchAt("trimmed", 10);
  expect(below.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  expect(Number(below.logStartOffset)).toBe(25);
  expect((await fetchAt("trimmed", 24)).errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  const at = await fetchAt("trimmed", 25);
  expect(at.errorCode).toBe(ErrorCode.NONE);
  expect(Number(at.logStartOffset)).toBe(25);
  // The batch holding offset 25 (24-25) comes whole, as from Kafka.
  expect(readBaseOffset(at.records, 0)).toBe(24);
  expect(readLastOffset(at.records, 0)).toBe(25);
  expect(await listOffset("trimmed", -2)).toBe(25);
  expect(await listOffset("trimmed", -4)).toBe(25); // Earliest local (KIP-405).
  // Whole segments below 25 were deleted: renamed .deleted, removed after the delay.
  const files = readdirSync(join(broker.dataDir, "trimmed-0"));
  expect(files.filter((name) => name.endsWith(".log.deleted")).length).toBe(4);
  expect(files.filter((name) => name.endsWith(".log"))[0]).toBe("00000000000000000024.log");
});

test("storage: log start: DeleteRecords follows Kafka's rules per partition", async () => {
  // Beyond the high watermark, or negative other than -1.
  expect(await deleteRecords("trimmed", 61)).toEqual({
    errorCode: ErrorCode.OFFSET_OUT_OF_RANGE,
    lowWatermark: -1,
  });
  expect(await deleteRecords("trimmed", -2, 1)).toEqual({
    errorCode: ErrorCode.OFFSET_OUT_OF_RANGE,
    lowWatermark: -1,
  });
  // Below the current log start: no change.
  expect(await deleteRecords("trimmed", 3)).toEqual({
    errorCode: ErrorCode.NONE,
    lowWatermark: 25,
  });
  expect(await deleteRecords("compacted", 1)).toEqual({
    errorCode: ErrorCode.POLICY_VIOLATION,
    lowWatermark: -1,
  });
  expect(await deleteRecords("missing", 1)).toEqual({
    errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    lowWatermark: -1,
  });
});

test("storage: log start: time retention deletes every expired segment, rolling the active one", async () => {
  // The cleaner ticks every second and checks retention every 5 s.
  await eventually(
    "the expired log to be emptied by retention",
    async () => (await listOffset("expiring", -2)) === 24,
    12_000,
  );
  expect(await listOffset("expiring", -1)).toBe(24);
  const below = await fetchAt("expiring", 0);
  expect(below.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  expect(Number(below.logStartOffset)).toBe(24);
  const atEnd = await fetchAt("expiring", 24);
  expect(atEnd.errorCode).toBe(ErrorCode.NONE);
  expect(atEnd.records.byteLength).toBe(0);
  expect(
    readdirSync(join(broker.dataDir, "expiring-0")).filter((name) => name.endsWith(".log")),
  ).toEqual(["00000000000000000024.log"]);
  expect((await produce("expiring", Date.now())).baseOffset).toBe(24);
});

test("storage: log start: DeleteRecords up to the high watermark (-1) survives kill -9", async () => {
  expect(await deleteRecords("trimmed", -1)).toEqual({
    errorCode: ErrorCode.NONE,
    lowWatermark: 60,
  });
  client.close();
  await broker.kill();
  broker = await startBroker({ dataDir: broker.dataDir });
  client = await RawClient.connect(broker.port);
  expect(await listOffset("trimmed", -2)).toBe(60);
  expect(await listOffset("trimmed", -1)).toBe(60);
  expect((await fetchAt("trimmed", 59)).errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  // The .deleted files of the first run were removed when the log opened.
  expect(
    readdirSync(join(broker.dataDir, "trimmed-0")).filter((name) => name.endsWith(".deleted")),
  ).toEqual([]);
  expect((await produce("trimmed", Date.now())).baseOffset).toBe(60);
});
