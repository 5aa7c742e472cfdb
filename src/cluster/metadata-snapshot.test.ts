import { expect, test } from "bun:test";
import { SeededRandom } from "../util/random.ts";
import { planAlterPartition } from "./alter-partition.ts";
import { MetadataImage, type TopicImage } from "./metadata-image.ts";
import { decodeSnapshot, encodeSnapshot, recordsToReach } from "./metadata-snapshot.ts";
import { planCommand } from "./topics.ts";

const DEFAULTS = { numPartitions: 2, replicationFactor: 1 };

/** A random history of metadata changes, applied to `image`. */
function evolve(image: MetadataImage, random: SeededRandom, steps: number): void {
  for (let i = 0; i < steps; i++) {
    const topics = image.topics();
    const pick = random.int(0, 6);
    if (pick === 6 && topics.length > 0) {
      changeIsr(image, random, topics[random.int(0, topics.length - 1)]!);
      continue;
    }
    const brokerId = random.int(1, 3);
    const command =
      pick === 0
        ? {
            kind: "registerBroker" as const,
            nodeId: brokerId,
            host: "127.0.0.1",
            port: 9000 + random.int(0, 2),
            rack: null,
          }
        : pick === 1
          ? { kind: "fenceBroker" as const, nodeId: brokerId }
          : pick === 2
            ? { kind: "unfenceBroker" as const, nodeId: brokerId }
            : pick === 3 && topics.length > 0
              ? {
                  kind: "deleteTopic" as const,
                  topicId: topics[random.int(0, topics.length - 1)]!.topicId,
                }
              : pick === 4 && topics.length > 0
                ? {
                    kind: "createPartitions" as const,
                    name: topics[0]!.name,
                    count: topics[0]!.partitions.length + 1,
                  }
                : {
                    kind: "createTopic" as const,
                    request: {
                      name: `t${random.int(0, 6)}`,
                      numPartitions: random.int(1, 3),
                      replicationFactor: random.int(1, 2),
                      configs:
                        random.int(0, 1) === 0
                          ? []
                          : [{ name: "retention.ms", value: String(random.int(1, 9) * 1000) }],
                    },
                  };
    const plan = planCommand(image, command, DEFAULTS, random);
    if (plan.ok) for (const record of plan.records) image.apply(record);
  }
}

/** A partition's leader sets its ISR to itself and a random part of the other replicas. */
function changeIsr(image: MetadataImage, random: SeededRandom, topic: TopicImage): void {
  const p = topic.partitions[random.int(0, topic.partitions.length - 1)]!;
  if (p.leader === -1) return;
  const newIsr = [
    p.leader,
    ...p.replicas.filter((id) => id !== p.leader && random.int(0, 1) === 1),
  ];
  const { leader: brokerId, leaderEpoch, partitionEpoch } = p;
  const request = {
    brokerId,
    topicId: topic.topicId,
    partition: p.partition,
    leaderEpoch,
    partitionEpoch,
    newIsr,
  };
  for (const record of planAlterPartition(image, request).records) image.apply(record);
}

function state(image: MetadataImage): unknown {
  return image
    .toRecords()
    .map((r) => JSON.stringify(r))
    .sort();
}

test("cluster: metadata snapshot: any image is rebuilt from its snapshot, from empty or from an older image", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = new SeededRandom(seed);
    const leader = new MetadataImage();
    evolve(leader, random, 10);
    // A follower that applied the first part of the history, then fell behind.
    const follower = new MetadataImage();
    for (const record of leader.toRecords()) follower.apply(record);
    evolve(leader, random, 20);
    const snapshot = decodeSnapshot(encodeSnapshot(leader));
    const fresh = new MetadataImage();
    for (const record of recordsToReach(fresh, snapshot)) fresh.apply(record);
    expect(state(fresh)).toEqual(state(leader));
    for (const record of recordsToReach(follower, snapshot)) follower.apply(record);
    expect(state(follower)).toEqual(state(leader));
  }
});

test("cluster: metadata snapshot: partition epochs survive a snapshot, and a record without one applies as 0", () => {
  const image = new MetadataImage();
  for (const nodeId of [1, 2]) {
    image.apply({
      type: "registerBroker",
      nodeId,
      host: "127.0.0.1",
      port: 9000 + nodeId,
      rack: null,
    });
  }
  const topicId = "id-t";
  image.apply({ type: "topic", name: "t", topicId });
  // As written before partition epochs existed.
  image.apply({
    type: "partition",
    topicId,
    partition: 0,
    replicas: [1, 2],
    leader: 1,
    leaderEpoch: 3,
    isr: [1],
  });
  expect(image.topic("t")!.partitions[0]!.partitionEpoch).toBe(0);
  const follower = new MetadataImage();
  for (const record of image.toRecords()) follower.apply(record);
  const request = {
    brokerId: 1,
    topicId,
    partition: 0,
    leaderEpoch: 3,
    partitionEpoch: 0,
    newIsr: [1, 2],
  };
  for (const record of planAlterPartition(image, request).records) image.apply(record);
  expect(image.topic("t")!.partitions[0]!).toMatchObject({ isr: [1, 2], partitionEpoch: 1 });
  const snapshot = decodeSnapshot(encodeSnapshot(image));
  expect(snapshot.find((r) => r.type === "partition")).toMatchObject({
    isr: [1, 2],
    partitionEpoch: 1,
  });
  for (const target of [new MetadataImage(), follower]) {
    for (const record of recordsToReach(target, snapshot)) target.apply(record);
    expect(target.topic("t")!.partitions[0]!).toEqual(image.topic("t")!.partitions[0]!);
  }
});
