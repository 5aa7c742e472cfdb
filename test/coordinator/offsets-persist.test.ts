/**
 * Committed offsets are records of __consumer_offsets: they come back after a clean
 * restart and after kill -9 (every acknowledged commit), read by kafkajs's admin.
 */
import { afterAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";
import { startBroker, tempDir, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";

const OFFSET_COMMIT = 8,
  FIND_COORDINATOR = 10,
  CREATE_TOPICS = 19;
const dataDir = tempDir();
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function commit(broker: TestBroker, group: string, offsets: number[]): Promise<void> {
  const client = await RawClient.connect(broker.port);
  // As every client: FindCoordinator first (it creates __consumer_offsets); one node
  // coordinates every group.
  const found = await client.request(FIND_COORDINATOR, 3, { key: group, keyType: 0 });
  expect(found.errorCode).toBe(0);
  // A simple commit (no generation, no member id), as a group-less consumer makes.
  const answer = await client.request(OFFSET_COMMIT, 8, {
    groupId: group,
    generationIdOrMemberEpoch: -1,
    memberId: "",
    groupInstanceId: null,
    topics: [
      {
        name: "events",
        partitions: offsets.map((offset, partitionIndex) => ({
          partitionIndex,
          committedOffset: offset,
          committedLeaderEpoch: -1,
          committedMetadata: `at-${offset}`,
        })),
      },
    ],
  });
  expect(answer.topics[0].partitions.map((p: any) => p.errorCode)).toEqual(offsets.map(() => 0));
  client.close();
}

async function committed(
  broker: TestBroker,
  group: string,
): Promise<Array<{ partition: number; offset: string; metadata: string | null }>> {
  const admin = new Kafka({
    brokers: [broker.bootstrap],
    clientId: "offsets-test",
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const [topic] = await admin.fetchOffsets({ groupId: group, topics: ["events"] });
    return topic!.partitions
      .map(({ partition, offset, metadata }) => ({ partition, offset, metadata }))
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

test("coordinator: committed offsets survive a clean restart and kill -9", async () => {
  let broker = await startBroker({ dataDir });
  const client = await RawClient.connect(broker.port);
  const created = await client.request(CREATE_TOPICS, 7, {
    topics: [
      { name: "events", numPartitions: 3, replicationFactor: 1, assignments: [], configs: [] },
    ],
    timeoutMs: 5000,
  });
  expect(created.topics[0].errorCode).toBe(0);
  client.close();
  await commit(broker, "billing", [5, 6, 7]);
  await commit(broker, "billing", [15, 16, 17]);
  await commit(broker, "audit", [1, 2, 3]);

  expect(await broker.stop()).toBe(0);
  broker = await startBroker({ dataDir });
  expect(await committed(broker, "billing")).toEqual(
    [0, 1, 2].map((p) => ({ partition: p, offset: String(15 + p), metadata: `at-${15 + p}` })),
  );
  await commit(broker, "audit", [100, 200, 300]);

  await broker.kill();
  broker = await startBroker({ dataDir });
  expect(await committed(broker, "audit")).toEqual(
    [0, 1, 2].map((p) => ({
      partition: p,
      offset: String((p + 1) * 100),
      metadata: `at-${(p + 1) * 100}`,
    })),
  );
  expect((await committed(broker, "billing")).map((p) => p.offset)).toEqual(["15", "16", "17"]);
  // The groups themselves are back too, Empty, as Kafka reloads them.
  const { groups } = (await (await fetch(`${broker.adminUrl}/v1/groups`)).json()) as {
    groups: Array<{ groupId: string; state: string }>;
  };
  const listed = groups.map((g) => [g.groupId, g.state]).sort();
  expect(listed).toEqual([
    ["audit", "Empty"],
    ["billing", "Empty"],
  ]);
  expect(await broker.stop()).toBe(0);
});
