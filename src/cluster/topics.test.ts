import { describe, expect, test } from "bun:test";
import { SeededRandom } from "../util/random.ts";
import { planBrokerFenced, planBrokerUnfenced } from "./broker-lifecycle.ts";
import { MetadataImage, type MetadataRecord } from "./metadata-image.ts";
import { planCommand, type TopicDefaults } from "./topics.ts";

const DEFAULTS: TopicDefaults = { numPartitions: 1, replicationFactor: 1 };

function imageWith(brokerIds: number[]): MetadataImage {
  const image = new MetadataImage();
  for (const nodeId of brokerIds)
    image.apply({
      type: "registerBroker",
      nodeId,
      host: "127.0.0.1",
      port: 9000 + nodeId,
      rack: null,
    });
  return image;
}

function create(
  image: MetadataImage,
  name: string,
  numPartitions: number,
  replicationFactor: number,
  seed = 1,
) {
  const plan = planCommand(
    image,
    { kind: "createTopic", request: { name, numPartitions, replicationFactor, configs: [] } },
    DEFAULTS,
    new SeededRandom(seed),
  );
  if (plan.ok) for (const record of plan.records) image.apply(record);
  return plan;
}

function apply(image: MetadataImage, records: MetadataRecord[]): void {
  for (const record of records) image.apply(record);
}

describe("cluster: replica placement", () => {
  test("leaders spread evenly over the live brokers, replicas distinct", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const image = imageWith([1, 2, 3]);
      expect(create(image, "t", 6, 2, seed).ok).toBe(true);
      const partitions = image.topic("t")!.partitions;
      const leaders = partitions.map((p) => p.leader);
      for (const id of [1, 2, 3]) expect(leaders.filter((l) => l === id)).toHaveLength(2);
      for (const p of partitions) {
        expect(new Set(p.replicas).size).toBe(2);
        expect(p.leader).toBe(p.replicas[0]!);
        // Every replica is empty, so every one (on a live broker) starts in sync.
        expect(p.isr).toEqual(p.replicas);
        expect(p.partitionEpoch).toBe(0);
      }
    }
  });

  test("the start is random: topics do not all begin on the same broker", () => {
    const firstLeaders = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const image = imageWith([1, 2, 3]);
      create(image, "t", 1, 1, seed);
      firstLeaders.add(image.topic("t")!.partitions[0]!.leader);
    }
    expect([...firstLeaders].sort()).toEqual([1, 2, 3]);
  });

  test("fenced brokers get nothing; a replication factor above the live brokers is refused", () => {
    const image = imageWith([1, 2, 3]);
    image.apply({ type: "fenceBroker", nodeId: 2 });
    expect(create(image, "t", 8, 2).ok).toBe(true);
    for (const p of image.topic("t")!.partitions) expect(p.replicas).not.toContain(2);
    const plan = create(image, "u", 1, 3);
    expect(plan.ok ? null : plan.error.kind).toBe("invalidReplicationFactor");
    const grow = planCommand(
      image,
      { kind: "createPartitions", name: "t", count: 9 },
      DEFAULTS,
      new SeededRandom(3),
    );
    expect(grow.ok).toBe(true);
    image.apply({ type: "fenceBroker", nodeId: 3 });
    const refused = planCommand(
      image,
      { kind: "createPartitions", name: "t", count: 10 },
      DEFAULTS,
      new SeededRandom(3),
    );
    expect(refused.ok ? null : refused.error.kind).toBe("invalidReplicationFactor");
  });
});

describe("cluster: manual replica assignment", () => {
  const assigned = (image: ReturnType<typeof imageWith>, name: string, assignments: number[][]) =>
    planCommand(
      image,
      {
        kind: "createTopic",
        request: { name, numPartitions: -1, replicationFactor: -1, configs: [], assignments },
      },
      DEFAULTS,
      new SeededRandom(1),
    );

  test("replicas are placed as given; the first live one leads, the live ones form the ISR", () => {
    const image = imageWith([1, 2, 3]);
    image.apply({ type: "fenceBroker", nodeId: 3 });
    const plan = assigned(image, "t", [
      [2, 1, 3],
      [3, 2, 1],
    ]);
    expect(plan.ok).toBe(true);
    if (plan.ok) for (const record of plan.records) image.apply(record);
    expect(image.topic("t")!.partitions.map((p) => [p.replicas, p.leader, p.isr])).toEqual([
      [[2, 1, 3], 2, [2, 1]],
      [[3, 2, 1], 2, [2, 1]],
    ]);
  });

  test("an assignment that cannot be placed is invalidReplicaAssignment", () => {
    const image = imageWith([1, 2, 3]);
    image.apply({ type: "fenceBroker", nodeId: 3 });
    for (const bad of [[[1, 2], [1]], [[1, 1]], [[1, 9]], [[3]], []]) {
      const plan = assigned(image, "bad", bad);
      expect(plan.ok ? null : plan.error.kind).toBe("invalidReplicaAssignment");
    }
  });
});

describe("cluster: fencing and unfencing brokers", () => {
  test("a live replica outside the ISR is never elected: the partition goes offline instead", () => {
    const image = imageWith([1, 2, 3]);
    create(image, "t", 3, 3);
    const topicId = image.topic("t")!.topicId;
    // As after the leader shrank the ISR to itself (its followers fell behind).
    for (const p of image.topic("t")!.partitions) {
      const { partition, replicas, leader, leaderEpoch } = p;
      image.apply({
        type: "partition",
        topicId,
        partition,
        replicas: [...replicas],
        leader,
        leaderEpoch,
        isr: [leader],
        partitionEpoch: p.partitionEpoch + 1,
      });
    }
    const before = [...image.topic("t")!.partitions]; // A copy: the image replaces entries in place.
    apply(image, planBrokerFenced(image, 1));
    for (const [i, p] of image.topic("t")!.partitions.entries()) {
      const old = before[i]!;
      // Replicas 2 and 3 are live but out of the ISR: electing one could lose data.
      expect(p.leader).toBe(old.leader === 1 ? -1 : old.leader);
      expect(p.isr).toEqual(old.isr);
      // Losing its leader is a change of the partition: a new partition epoch.
      expect(p.partitionEpoch).toBe(old.leader === 1 ? old.partitionEpoch + 1 : old.partitionEpoch);
    }
    apply(image, planBrokerUnfenced(image, 1));
    for (const [i, p] of image.topic("t")!.partitions.entries()) {
      expect(p.leader).toBe(before[i]!.leader);
      expect(p.partitionEpoch).toBe(
        before[i]!.leader === 1 ? before[i]!.partitionEpoch + 2 : before[i]!.partitionEpoch,
      );
    }
  });

  test("a fenced leader's partitions move to a live ISR member with a new epoch", () => {
    const image = imageWith([1, 2, 3]);
    create(image, "t", 3, 2);
    const before = [...image.topic("t")!.partitions]; // A copy: the image replaces entries in place.
    apply(image, planBrokerFenced(image, 1));
    expect(image.broker(1)!.fenced).toBe(true);
    expect(image.liveBrokers().map((b) => b.nodeId)).toEqual([2, 3]);
    for (const [i, p] of image.topic("t")!.partitions.entries()) {
      const old = before[i]!;
      expect(p.isr).not.toContain(1);
      expect(p.leader).not.toBe(1);
      expect(p.leaderEpoch).toBe(old.leader === 1 ? old.leaderEpoch + 1 : old.leaderEpoch);
      // A change of leader or ISR is a new partition epoch; a partition without 1 is untouched.
      expect(p.partitionEpoch).toBe(
        old.isr.includes(1) ? old.partitionEpoch + 1 : old.partitionEpoch,
      );
    }
  });

  test("replication factor 1: no leader while fenced, the same broker leads again when back", () => {
    const image = imageWith([1, 2]);
    create(image, "t", 4, 1);
    const led = image
      .topic("t")!
      .partitions.filter((p) => p.leader === 2)
      .map((p) => p.partition);
    expect(led.length).toBe(2);
    apply(image, planBrokerFenced(image, 2));
    for (const p of image.topic("t")!.partitions) {
      if (led.includes(p.partition)) {
        expect(p.leader).toBe(-1);
        expect(p.isr).toEqual([2]);
        expect(p.leaderEpoch).toBe(1);
        expect(p.partitionEpoch).toBe(1);
      } else {
        // Not led by 2 nor with 2 in its ISR: untouched.
        expect(p.partitionEpoch).toBe(0);
      }
    }
    apply(image, planBrokerUnfenced(image, 2));
    for (const p of image.topic("t")!.partitions) {
      if (led.includes(p.partition)) {
        expect(p.leader).toBe(2);
        expect(p.leaderEpoch).toBe(2);
        expect(p.partitionEpoch).toBe(2);
      }
    }
    expect(planBrokerUnfenced(image, 2)).toEqual([]);
  });

  test("registering a fenced broker again unfences it", () => {
    const image = imageWith([1, 2]);
    create(image, "t", 2, 1);
    apply(image, planBrokerFenced(image, 1));
    const plan = planCommand(
      image,
      { kind: "registerBroker", nodeId: 1, host: "127.0.0.1", port: 9001, rack: null },
      DEFAULTS,
    );
    expect(plan.ok).toBe(true);
    if (plan.ok) apply(image, plan.records);
    expect(image.broker(1)!.fenced).toBe(false);
    expect(image.topic("t")!.partitions.every((p) => p.leader !== -1)).toBe(true);
  });

  test("a new incarnation is a death and a return: every epoch it led is bumped, it leaves shared ISRs", () => {
    const image = imageWith([1, 2]);
    create(image, "solo", 2, 1);
    create(image, "shared", 1, 2);
    const shared = image.topic("shared")!;
    // Both replicas in the ISR, led by 1.
    image.apply({
      type: "partition",
      topicId: shared.topicId,
      partition: 0,
      replicas: [1, 2],
      leader: 1,
      leaderEpoch: 0,
      isr: [1, 2],
      partitionEpoch: 1,
    });
    const register = (incarnation: string | undefined) => {
      const command = {
        kind: "registerBroker" as const,
        nodeId: 1,
        host: "127.0.0.1",
        port: 9001,
        rack: null,
        ...(incarnation === undefined ? {} : { incarnation }),
      };
      const plan = planCommand(image, command, DEFAULTS);
      return plan.ok ? plan.records : [];
    };
    // The first incarnation of a broker registered without one: nothing says it did not
    // lead before, so it is handled as a restart too.
    const first = register("a");
    expect(first.map((r) => r.type)).toContain("fenceBroker");
    apply(image, first);
    image.apply({
      type: "partition",
      topicId: shared.topicId,
      partition: 0,
      replicas: [1, 2],
      leader: 1,
      leaderEpoch: 5,
      isr: [1, 2],
      partitionEpoch: 9,
    });
    expect(image.broker(1)!.incarnation).toBe("a");
    expect(register("a")).toEqual([]);
    // A registration without an incarnation (the controller's SWIM pass) keeps it.
    image.apply({ type: "registerBroker", nodeId: 1, host: "127.0.0.1", port: 9001, rack: null });
    expect(image.broker(1)!.incarnation).toBe("a");
    const soloBefore = image.topic("solo")!.partitions.map((q) => ({ ...q }));
    const records = register("b");
    apply(image, records);
    expect(records[0]).toEqual({ type: "fenceBroker", nodeId: 1 });
    expect(records.filter((r) => r.type === "registerBroker")).toEqual([
      {
        type: "registerBroker",
        nodeId: 1,
        host: "127.0.0.1",
        port: 9001,
        rack: null,
        incarnation: "b",
      },
    ]);
    expect(image.broker(1)).toMatchObject({ fenced: false, incarnation: "b" });
    for (const [i, q] of image.topic("solo")!.partitions.entries()) {
      const before = soloBefore[i]!;
      // Led by 1 alone: paused and given back, two epochs later; led by 2: untouched.
      expect(q.leader).toBe(before.leader);
      expect(q.leaderEpoch).toBe(before.leader === 1 ? before.leaderEpoch + 2 : before.leaderEpoch);
    }
    // Shared with 2: led by 2 now, and 1 must catch up to rejoin the ISR.
    expect(image.topic("shared")!.partitions[0]).toMatchObject({
      leader: 2,
      leaderEpoch: 6,
      isr: [2],
      partitionEpoch: 10,
    });
  });
});
