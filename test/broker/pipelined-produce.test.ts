/**
 * Large Produce requests pipelined on one connection: the broker takes them a turn at a
 * time (TURN_BYTES_MAX in src/server/connection.ts), leaving the event loop to other
 * connections in between, and must still append them in order, each at the offsets it
 * answered. 24 requests of about 150 KiB each, every record distinct, sent without
 * waiting for answers; kcat then reads every record back at its acknowledged offset.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { readPartition } from "../helpers/kcat.ts";
import { RawClient } from "../helpers/raw-client.ts";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";

const PRODUCE = 0;
const TOPIC = "pipelined";
const REQUESTS = 24;
const RECORDS = 150;

let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker();
  const response = await fetch(`${broker.adminUrl}/v1/topics`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: TOPIC, partitions: 1 }),
  });
  expect(response.status).toBe(201);
});

afterAll(async () => {
  await stopAndClean(broker);
});

const value = (request: number, record: number) =>
  `${String(request).padStart(3, "0")}-${String(record).padStart(4, "0")}-${"xyz".repeat(330)}`;

test("pipelined large produce requests: every record is stored at its acknowledged offset", async () => {
  const client = await RawClient.connect(broker.port);
  try {
    const answers = Array.from({ length: REQUESTS }, (_, request) => {
      const records = buildBatch({
        baseTimestamp: Date.now(),
        records: Array.from({ length: RECORDS }, (_, record) => ({
          key: null,
          value: Buffer.from(value(request, record)),
        })),
      });
      expect(records.byteLength).toBeGreaterThan(128 * 1024);
      return client.request(PRODUCE, 9, {
        transactionalId: null,
        acks: 1,
        timeoutMs: 10_000,
        topicData: [{ name: TOPIC, partitionData: [{ index: 0, records }] }],
      });
    });
    const expected = new Map<number, string>();
    for (const [request, answer] of (await Promise.all(answers)).entries()) {
      const partition = answer.responses[0].partitionResponses[0];
      expect(partition.errorCode).toBe(0);
      for (let record = 0; record < RECORDS; record++)
        expected.set(Number(partition.baseOffset) + record, value(request, record));
    }
    expect(expected.size).toBe(REQUESTS * RECORDS);
    const stored = await readPartition(broker.bootstrap, TOPIC, 0, 60_000);
    expect(stored.size).toBe(expected.size);
    for (const [offset, text] of expected) expect(stored.get(offset)).toBe(text);
  } finally {
    client.close();
  }
});
