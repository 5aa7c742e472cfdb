/**
 * Bad input against a real broker process: each case asserts Kafka's error code (or a
 * closed connection for a broken frame) and that the broker still serves afterwards.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { ErrorCode } from "../../src/protocol/error-codes.ts";
import { SeededRandom } from "../../src/util/random.ts";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus.ts";
import { RawClient } from "../helpers/raw-client.ts";

const PRODUCE = 0,
  FETCH = 1,
  LIST_OFFSETS = 2,
  METADATA = 3,
  API_VERSIONS = 18,
  CREATE_TOPICS = 19;

let broker: TestBroker;
let client: RawClient;

beforeAll(async () => {
  broker = await startBroker({ args: ["--socket-request-max-bytes", "1048576"] });
  client = await RawClient.connect(broker.port);
  const created = await client.request(CREATE_TOPICS, 7, {
    topics: [
      { name: "bad", numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] },
      {
        name: "small",
        numPartitions: 1,
        replicationFactor: 1,
        assignments: [],
        configs: [{ name: "max.message.bytes", value: "1000" }],
      },
    ],
    timeoutMs: 5000,
  });
  expect(created.topics.map((t: any) => t.errorCode)).toEqual([0, 0]);
});

afterAll(async () => {
  client?.close();
  if (broker) await stopAndClean(broker);
});

function batch(values: string[]): Buffer {
  return buildBatch({
    baseTimestamp: Date.now(),
    records: values.map((value) => ({ key: null, value })),
  });
}

async function produce(topic: string, records: Uint8Array, on = client): Promise<any> {
  const answer = await on.request(PRODUCE, 9, {
    acks: 1,
    timeoutMs: 5000,
    topicData: [{ name: topic, partitionData: [{ index: 0, records }] }],
  });
  return answer.responses[0].partitionResponses[0];
}

async function latestOffset(topic: string): Promise<number> {
  const answer = await client.request(LIST_OFFSETS, 7, {
    replicaId: -1,
    topics: [
      { name: topic, partitions: [{ partitionIndex: 0, timestamp: -1, currentLeaderEpoch: -1 }] },
    ],
  });
  return answer.topics[0].partitions[0].offset;
}

async function stillServes(): Promise<void> {
  const fresh = await RawClient.connect(broker.port);
  const answer = await fresh.request(API_VERSIONS, 3, {
    clientSoftwareName: "t",
    clientSoftwareVersion: "1",
  });
  expect(answer.errorCode).toBe(0);
  fresh.close();
}

describe("broker: bad input", () => {
  test("a batch with a bad CRC gets CORRUPT_MESSAGE and nothing is appended", async () => {
    expect((await produce("bad", batch(["good"]))).errorCode).toBe(ErrorCode.NONE);
    const before = await latestOffset("bad");
    const corrupt = batch(["a", "b", "c"]);
    corrupt[corrupt.length - 1]! ^= 0xff;
    // A good batch followed by a corrupt one: the whole request is refused.
    const response = await produce("bad", Buffer.concat([batch(["x"]), corrupt]));
    expect(response.errorCode).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect(await latestOffset("bad")).toBe(before);
    await stillServes();
  });

  test("a batch of message format v1 gets UNSUPPORTED_FOR_MESSAGE_FORMAT", async () => {
    const old = batch(["old"]);
    old[16] = 1;
    expect((await produce("bad", old)).errorCode).toBe(ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT);
  });

  test("a batch over max.message.bytes gets MESSAGE_TOO_LARGE", async () => {
    const response = await produce("small", batch(["x".repeat(2000)]));
    expect(response.errorCode).toBe(ErrorCode.MESSAGE_TOO_LARGE);
    expect(await latestOffset("small")).toBe(0);
    expect((await produce("small", batch(["fits"]))).errorCode).toBe(ErrorCode.NONE);
  });

  test("topic names Kafka refuses get INVALID_TOPIC_EXCEPTION", async () => {
    for (const name of ["bad/name", "..", "a".repeat(250), "spa ce"]) {
      const metadata = await client.request(METADATA, 12, {
        topics: [{ name, topicId: "00000000-0000-0000-0000-000000000000" }],
        allowAutoTopicCreation: true,
      });
      expect(metadata.topics[0].errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
      const created = await client.request(CREATE_TOPICS, 7, {
        topics: [{ name, numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
        timeoutMs: 1000,
      });
      expect(created.topics[0].errorCode).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    }
  });

  test("unknown config names get INVALID_CONFIG and nothing is created", async () => {
    const created = await client.request(CREATE_TOPICS, 7, {
      topics: [
        {
          name: "cfg",
          numPartitions: 1,
          replicationFactor: 1,
          assignments: [],
          configs: [{ name: "no.such.config", value: "1" }],
        },
      ],
      timeoutMs: 1000,
    });
    expect(created.topics[0].errorCode).toBe(ErrorCode.INVALID_CONFIG);
    const metadata = await client.request(METADATA, 12, {
      topics: [{ name: "cfg", topicId: "00000000-0000-0000-0000-000000000000" }],
      allowAutoTopicCreation: false,
    });
    expect(metadata.topics[0].errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
  });

  test("an unknown ApiVersions version gets UNSUPPORTED_VERSION with the supported ranges (KIP-511)", async () => {
    // Hand-built v99 request with header v2 (flexible) and an empty body.
    const header = Buffer.from([0, 18, 0, 99, 0, 0, 0, 7, 0, 1, 0x78, 0]);
    const frame = Buffer.alloc(4);
    frame.writeInt32BE(header.length);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port: broker.port }, () =>
        socket.write(Buffer.concat([frame, header])),
      );
      let received = Buffer.alloc(0);
      socket.on("data", (data: Buffer) => {
        received = Buffer.concat([received, data]);
        if (received.length >= 4 && received.length >= 4 + received.readInt32BE(0)) {
          socket.destroy();
          resolve(received.subarray(4));
        }
      });
      socket.on("error", reject);
    });
    // Response header v0 (correlation id), then ApiVersionsResponse v0.
    expect(reply.readInt32BE(0)).toBe(7);
    expect(reply.readInt16BE(4)).toBe(ErrorCode.UNSUPPORTED_VERSION);
    const count = reply.readInt32BE(6);
    const keys = Array.from({ length: count }, (_, i) => reply.readInt16BE(10 + i * 6));
    expect(keys).toContain(API_VERSIONS);
    expect(keys).toContain(PRODUCE);
    expect(keys).toContain(FETCH);
  });

  test("an unknown api key closes that connection only", async () => {
    const victim = await RawClient.connect(broker.port);
    const header = Buffer.from([0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0]);
    const frame = Buffer.alloc(4);
    frame.writeInt32BE(header.length);
    victim.writeRaw(Buffer.concat([frame, header]));
    await victim.closed;
    await stillServes();
  });

  test("an oversized frame closes that connection only", async () => {
    const victim = await RawClient.connect(broker.port);
    const frame = Buffer.alloc(4);
    frame.writeInt32BE(2 * 1024 * 1024);
    victim.writeRaw(frame);
    await victim.closed;
    await stillServes();
  });

  test("a truncated frame leaves other connections served", async () => {
    const victim = await RawClient.connect(broker.port);
    const frame = Buffer.alloc(14);
    frame.writeInt32BE(100);
    victim.writeRaw(frame);
    await stillServes();
    victim.close();
    await stillServes();
  });

  test("seeded random bytes never crash the broker nor grow its memory without bound", async () => {
    const rssKb = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${broker.pid}/status`, "utf8"))![1]);
    const random = new SeededRandom(1234);
    const before = rssKb();
    for (let round = 0; round < 300; round++) {
      const victim = await RawClient.connect(broker.port);
      const size = random.int(1, 4096);
      const bytes = Buffer.alloc(size);
      for (let i = 0; i < size; i++) bytes[i] = random.int(0, 255);
      // Half the rounds get a plausible small frame length so the decoder sees garbage.
      if (round % 2 === 0 && size >= 4) bytes.writeInt32BE(size - 4, 0);
      victim.writeRaw(bytes);
      victim.close();
    }
    await stillServes();
    // Generous: the point is "bounded", not a number; 300 connections of garbage must not
    // leave 100 MB behind.
    expect(rssKb() - before).toBeLessThan(100 * 1024);
  });
});

describe("broker: fetch long poll and ordering", () => {
  test("a waiting fetch is woken by an append, and later requests answer after it", async () => {
    const offset = await latestOffset("bad");
    const started = Date.now();
    const fetch = client.request(FETCH, 12, {
      replicaId: -1,
      maxWaitMs: 10000,
      minBytes: 1,
      maxBytes: 1048576,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [
        {
          topic: "bad",
          partitions: [
            {
              partition: 0,
              currentLeaderEpoch: -1,
              fetchOffset: offset,
              logStartOffset: -1,
              partitionMaxBytes: 1048576,
            },
          ],
        },
      ],
      forgottenTopicsData: [],
      rackId: "",
    });
    const order: string[] = [];
    void fetch.then(() => order.push("fetch"));
    const metadata = client
      .request(METADATA, 12, { topics: null, allowAutoTopicCreation: false })
      .then(() => order.push("metadata"));
    // The broker holds the fetch (its long-poll gauge says so); the Metadata request
    // behind it on the same connection waits for its answer.
    await eventually(
      "the fetch held in its long poll",
      async () => {
        const families = parsePrometheusText(
          await (await globalThis.fetch(`${broker.adminUrl}/metrics`)).text(),
        );
        return sampleValue(families, "brook_fetch_requests_waiting") === 1;
      },
      10_000,
    );
    expect(order).toEqual([]);
    const producer = await RawClient.connect(broker.port);
    expect((await produce("bad", batch(["wake"]), producer)).errorCode).toBe(0);
    producer.close();
    const answer = await fetch;
    await metadata;
    expect(order).toEqual(["fetch", "metadata"]);
    // Woken by the append, long before max_wait_ms.
    expect(Date.now() - started).toBeLessThan(9000);
    const records = answer.responses[0].partitions[0].records as Uint8Array;
    expect(Buffer.from(records).includes(Buffer.from("wake"))).toBe(true);
  });

  test("a fetch below the log start or beyond the end gets OFFSET_OUT_OF_RANGE", async () => {
    const end = await latestOffset("bad");
    for (const fetchOffset of [end + 5, -3]) {
      const answer = await client.request(FETCH, 12, {
        replicaId: -1,
        maxWaitMs: 0,
        minBytes: 0,
        maxBytes: 1048576,
        isolationLevel: 0,
        sessionId: 0,
        sessionEpoch: -1,
        topics: [
          {
            topic: "bad",
            partitions: [
              {
                partition: 0,
                currentLeaderEpoch: -1,
                fetchOffset,
                logStartOffset: -1,
                partitionMaxBytes: 1048576,
              },
            ],
          },
        ],
        forgottenTopicsData: [],
        rackId: "",
      });
      expect(answer.responses[0].partitions[0].errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    }
  });
});

describe("broker: list offsets", () => {
  test("a partition named twice in one ListOffsets request gets INVALID_REQUEST", async () => {
    const answer = await client.request(LIST_OFFSETS, 7, {
      replicaId: -1,
      topics: [
        {
          name: "bad",
          partitions: [
            { partitionIndex: 0, timestamp: -1, currentLeaderEpoch: -1 },
            { partitionIndex: 0, timestamp: -2, currentLeaderEpoch: -1 },
          ],
        },
      ],
    });
    expect(answer.topics[0].partitions.map((p: any) => p.errorCode)).toEqual([
      ErrorCode.INVALID_REQUEST,
      ErrorCode.INVALID_REQUEST,
    ]);
  });
});
