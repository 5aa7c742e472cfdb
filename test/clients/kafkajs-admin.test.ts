/**
 * Topic administration through kafkajs's admin client against a real broker:
 * CreateTopics (validate only, configs), CreatePartitions, DescribeConfigs, DeleteTopics,
 * and DescribeCluster through our own client (kafkajs describes the cluster from
 * Metadata).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";

let broker: TestBroker;
let admin: Admin;

beforeAll(async () => {
  broker = await startBroker({ args: ["--auto-create-topics", "false"] });
  admin = new Kafka({
    brokers: [broker.bootstrap],
    clientId: "admin-test",
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  if (broker) await stopAndClean(broker);
});

test("clients: kafkajs admin: validateOnly creates nothing, a real create does", async () => {
  // kafkajs would look the topic up afterwards unless told not to wait for leaders.
  await admin.createTopics({
    validateOnly: true,
    waitForLeaders: false,
    topics: [{ topic: "checked", numPartitions: 3 }],
  });
  expect(await admin.listTopics()).not.toContain("checked");
  const created = await admin.createTopics({
    topics: [
      {
        topic: "checked",
        numPartitions: 3,
        configEntries: [{ name: "retention.ms", value: "3600000" }],
      },
    ],
  });
  expect(created).toBe(true);
  expect(await admin.listTopics()).toContain("checked");
  // Creating it again is refused (kafkajs answers false for TOPIC_ALREADY_EXISTS).
  expect(await admin.createTopics({ topics: [{ topic: "checked", numPartitions: 3 }] })).toBe(
    false,
  );
});

test("clients: kafkajs admin: describeConfigs shows the override and the defaults", async () => {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2, name: "checked" }],
  });
  const entries = new Map(described.resources[0]!.configEntries.map((e) => [e.configName, e]));
  expect(entries.get("retention.ms")?.configValue).toBe("3600000");
  expect(entries.get("retention.ms")?.isDefault).toBe(false);
  expect(entries.get("segment.bytes")?.configValue).toBe("1073741824");
  expect(entries.get("segment.bytes")?.isDefault).toBe(true);
});

test("clients: kafkajs admin: createPartitions grows a topic, never shrinks it", async () => {
  await admin.createPartitions({ topicPartitions: [{ topic: "checked", count: 5 }] });
  const metadata = await admin.fetchTopicMetadata({ topics: ["checked"] });
  expect(metadata.topics[0]!.partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2, 3, 4]);
  await expect(
    admin.createPartitions({ topicPartitions: [{ topic: "checked", count: 2 }] }),
  ).rejects.toThrow();
});

test("clients: kafkajs admin: deleteTopics removes the topic and its data", async () => {
  await admin.deleteTopics({ topics: ["checked"] });
  expect(await admin.listTopics()).not.toContain("checked");
});

test("broker: DeleteTopics of an unknown topic gets UNKNOWN_TOPIC_OR_PARTITION", async () => {
  // kafkajs retries this error until its own deadline, so ask directly.
  const client = await RawClient.connect(broker.port);
  const answer = await client.request(20, 4, { topicNames: ["never-existed"], timeoutMs: 1000 });
  expect(answer.responses.map((r: any) => [r.name, r.errorCode])).toEqual([["never-existed", 3]]);
  client.close();
});

test("broker: DescribeCluster names this node as broker and controller", async () => {
  const client = await RawClient.connect(broker.port);
  for (const version of [0, 1]) {
    const answer = await client.request(60, version, {
      includeClusterAuthorizedOperations: false,
      endpointType: 1,
    });
    expect(answer.errorCode).toBe(0);
    expect(answer.controllerId).toBe(1);
    expect(answer.brokers).toEqual([
      { brokerId: 1, host: "127.0.0.1", port: broker.port, rack: null },
    ]);
    expect(answer.clusterId.length).toBeGreaterThan(0);
  }
  client.close();
});
