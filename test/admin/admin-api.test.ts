/**
 * The HTTP admin API of a real Brook process, driven by real clients: topics created
 * over HTTP are what Kafka Metadata shows; a kafkajs consumer group appears with its
 * member, the assignment kafkajs's assignor wrote (decoded from ConsumerProtocol bytes),
 * its committed offsets and lag; `/metrics`, parsed by a strict Prometheus text parser,
 * counts the traffic those clients made.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Consumer, Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus.ts";
import { RawClient } from "../helpers/raw-client.ts";

let broker: TestBroker;
let kafka: Kafka;
let producer: Producer;

beforeAll(async () => {
  broker = await startBroker();
  kafka = new Kafka({
    clientId: "brook-admin-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.WARN,
  });
  producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  if (broker) await stopAndClean(broker);
});

async function api<T = any>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${broker.adminUrl}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : {
          body: typeof body === "string" ? body : JSON.stringify(body),
          headers: { "content-type": "application/json" },
        }),
  });
  return { status: response.status, body: (await response.json()) as T };
}

async function metrics() {
  const response = await fetch(`${broker.adminUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheusText(await response.text());
}

async function kafkaTopics(): Promise<string[]> {
  const client = await RawClient.connect(broker.port);
  try {
    const metadata = await client.request(3, 9, { topics: null, allowAutoTopicCreation: false });
    return metadata.topics.map((t: { name: string }) => t.name).sort();
  } finally {
    client.close();
  }
}

describe("admin api: a real broker", () => {
  test("admin api: health and cluster", async () => {
    expect(await api("GET", "/health")).toEqual({ status: 200, body: { status: "ok" } });
    const { status, body } = await api("GET", "/v1/cluster");
    expect(status).toBe(200);
    expect(body.controller).toBe(body.nodeId);
    expect(body.brokers).toEqual([
      { nodeId: body.nodeId, host: broker.host, port: broker.port, rack: null, fenced: false },
    ]);
    expect(body.members).toEqual([
      expect.objectContaining({
        nodeId: body.nodeId,
        state: "alive",
        kafka: broker.bootstrap,
        self: true,
      }),
    ]);
    expect(body.clusterId).toMatch(/^\S+$/);
  });

  test("admin api: topics created and deleted over HTTP are what Kafka Metadata shows", async () => {
    const created = await api("POST", "/v1/topics", {
      name: "http-made",
      partitions: 4,
      configs: { "cleanup.policy": "delete" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "http-made",
      partitionCount: 4,
      replicationFactor: 1,
      configs: { "cleanup.policy": "delete" },
    });
    expect(await kafkaTopics()).toContain("http-made");

    expect(await api("POST", "/v1/topics", { name: "http-made" })).toEqual({
      status: 409,
      body: { error: "topic_exists", message: "Topic 'http-made' already exists." },
    });
    for (const bad of [
      "{",
      { name: "x", partitions: 0 },
      { name: "a/b" },
      { name: "x", configs: { "no.such": "1" } },
    ]) {
      expect((await api("POST", "/v1/topics", bad)).status).toBe(400);
    }
    expect((await kafkaTopics()).filter((name) => name === "x" || name === "a/b")).toEqual([]);

    expect(await api("DELETE", "/v1/topics/http-made")).toMatchObject({
      status: 200,
      body: { name: "http-made", deleted: true },
    });
    expect(await kafkaTopics()).not.toContain("http-made");
    expect(await api("GET", "/v1/topics/http-made")).toEqual({
      status: 404,
      body: { error: "not_found", message: "Topic does not exist: http-made" },
    });
  });

  test("admin api: a kafkajs group: member, decoded assignment, committed offsets, lag, and metrics", async () => {
    const topic = "orders";
    expect((await api("POST", "/v1/topics", { name: topic, partitions: 3 })).status).toBe(201);
    await producer.send({
      topic,
      messages: Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
    });

    const groupId = "admin-api-group";
    const consumer: Consumer = kafka.consumer({
      groupId,
      maxWaitTimeInMs: 200,
      heartbeatInterval: 100,
    });
    await consumer.connect();
    let consumed = 0;
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({ eachMessage: async () => void consumed++ });
      // kafkajs commits after each batch: wait until every partition is committed at its end.
      const group = await eventually(
        "the group's commits reach the high watermarks",
        async () => {
          const { body } = await api("GET", `/v1/groups/${groupId}`);
          const done = body.state === "Stable" && body.offsets?.length === 3 && body.totalLag === 0;
          return done ? body : null;
        },
        20_000,
      );
      expect(consumed).toBe(30);
      expect(group).toMatchObject({
        groupId,
        state: "Stable",
        protocolType: "consumer",
        protocol: "RoundRobinAssigner",
      });
      expect(group.members).toHaveLength(1);
      expect(group.members[0]).toMatchObject({
        clientId: "brook-admin-test",
        groupInstanceId: null,
      });
      expect(group.members[0].clientHost).toContain("127.0.0.1");
      expect(group.members[0].assignment).toEqual([{ topic, partitions: [0, 1, 2] }]);
      expect(group.leaderId).toBe(group.members[0].memberId);
      const topicView = (await api("GET", `/v1/topics/${topic}`)).body;
      for (const offset of group.offsets) {
        expect(offset.committedOffset).toBe(topicView.partitions[offset.partition].highWatermark);
        expect(offset.lag).toBe(0);
      }

      const listed = (await api("GET", "/v1/groups")).body.groups;
      expect(listed).toContainEqual({
        groupId,
        state: "Stable",
        protocolType: "consumer",
        memberCount: 1,
      });
      expect(await api("DELETE", `/v1/groups/${groupId}`)).toEqual({
        status: 409,
        body: { error: "group_not_empty", message: `Group has active members: ${groupId}` },
      });

      // Traffic counters against what the topic stores and what was consumed.
      const families = await metrics();
      const stored = topicView.partitions.reduce(
        (sum: number, p: { sizeBytes: number }) => sum + p.sizeBytes,
        0,
      );
      expect(sampleValue(families, "brook_topic_bytes_in_total", { topic })).toBe(stored);
      expect(sampleValue(families, "brook_topic_messages_in_total", { topic })).toBe(30);
      expect(
        sampleValue(families, "brook_topic_messages_out_total", { topic }),
      ).toBeGreaterThanOrEqual(30);
      expect(
        sampleValue(families, "brook_topic_bytes_out_total", { topic }),
      ).toBeGreaterThanOrEqual(stored);
      for (const api of [
        "Produce",
        "Fetch",
        "JoinGroup",
        "SyncGroup",
        "OffsetCommit",
        "Metadata",
      ]) {
        expect(
          sampleValue(families, "brook_request_duration_seconds_count", { api }),
        ).toBeGreaterThan(0);
      }
      // kafkajs holds at least its producer's and consumer's connections.
      expect(sampleValue(families, "brook_connections_open")).toBeGreaterThanOrEqual(2);
      expect(sampleValue(families, "brook_under_replicated_partitions")).toBe(0);
    } finally {
      await consumer.disconnect();
    }

    // Seven more records, nobody consuming: the lag shows in the API and the metrics.
    await producer.send({
      topic,
      messages: Array.from({ length: 7 }, (_, i) => ({ value: `late${i}`, partition: i % 3 })),
    });
    const after = (await api("GET", `/v1/groups/${groupId}`)).body;
    expect(after.state).toBe("Empty");
    expect(after.members).toEqual([]);
    expect(after.offsets.map((o: { lag: number }) => o.lag)).toEqual([3, 2, 2]);
    expect(after.totalLag).toBe(7);
    const families = await metrics();
    expect(
      [0, 1, 2].map((p) =>
        sampleValue(families, "brook_consumer_group_lag", {
          group: groupId,
          topic,
          partition: String(p),
        }),
      ),
    ).toEqual([3, 2, 2]);

    expect(await api("DELETE", `/v1/groups/${groupId}`)).toEqual({
      status: 200,
      body: { groupId, deleted: true, offsetsDeleted: 3 },
    });
    expect((await api("GET", `/v1/groups/${groupId}`)).status).toBe(404);
    const gone = await metrics();
    expect(
      sampleValue(gone, "brook_consumer_group_lag", { group: groupId, topic, partition: "0" }),
    ).toBeUndefined();
  });

  test("admin api: open connections follow clients connecting and leaving", async () => {
    const open = async () => sampleValue(await metrics(), "brook_connections_open")!;
    const before = await open();
    const clients = await Promise.all([1, 2, 3].map(() => RawClient.connect(broker.port)));
    await eventually("three more connections", async () => (await open()) === before + 3);
    for (const client of clients) client.close();
    await eventually("the three connections closed", async () => (await open()) === before);
  });
});
