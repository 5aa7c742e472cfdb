import { expect, test } from "bun:test";
import { SeededRandom } from "../util/random.ts";
import { MetadataImage } from "./metadata-image.ts";
import { decodeSnapshot, encodeSnapshot, recordsToReach } from "./metadata-snapshot.ts";
import { planCommand } from "./topics.ts";

const DEFAULTS = { numPartitions: 2, replicationFactor: 1 };

/** A random history of metadata changes, applied to `image`. */
function evolve(image: MetadataImage, random: SeededRandom, steps: number): void {
  for (let i = 0; i < steps; i++) {
    const topics = image.topics();
    const pick = random.int(0, 5);
    const brokerId = random.int(1, 3);
    const command =
      pick === 0 ? { kind: "registerBroker" as const, nodeId: brokerId, host: "127.0.0.1", port: 9000 + random.int(0, 2), rack: null }
      : pick === 1 ? { kind: "fenceBroker" as const, nodeId: brokerId }
      : pick === 2 ? { kind: "unfenceBroker" as const, nodeId: brokerId }
      : pick === 3 && topics.length > 0 ? { kind: "deleteTopic" as const, topicId: topics[random.int(0, topics.length - 1)]!.topicId }
      : pick === 4 && topics.length > 0 ? { kind: "createPartitions" as const, name: topics[0]!.name, count: topics[0]!.partitions.length + 1 }
      : {
        kind: "createTopic" as const,
        request: { name: `t${random.int(0, 6)}`, numPartitions: random.int(1, 3), replicationFactor: 1, configs: random.int(0, 1) === 0 ? [] : [{ name: "retention.ms", value: String(random.int(1, 9) * 1000) }] },
      };
    const plan = planCommand(image, command, DEFAULTS, random);
    if (plan.ok) for (const record of plan.records) image.apply(record);
  }
}

function state(image: MetadataImage): unknown {
  return image.toRecords().map((r) => JSON.stringify(r)).sort();
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
