import { describe, expect, test } from "bun:test";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  type AlterPartitionError,
  type AlterPartitionRequest,
  alterPartitionErrorCode,
  planAlterPartition,
} from "./alter-partition.ts";
import { planBrokerFenced, planBrokerUnfenced } from "./broker-lifecycle.ts";
import { MetadataImage, type MetadataRecord, type PartitionImage } from "./metadata-image.ts";

const TOPIC_ID = "id-t";

/** `brokers` registered; topic t with partition 0 on replicas 1, 2, 3, led by 1 with `isr`. */
function setup(isr: number[] = [1], brokers = [1, 2, 3, 4]): MetadataImage {
  const image = new MetadataImage();
  for (const nodeId of brokers) {
    image.apply({
      type: "registerBroker",
      nodeId,
      host: "127.0.0.1",
      port: 9000 + nodeId,
      rack: null,
    });
  }
  image.apply({ type: "topic", name: "t", topicId: TOPIC_ID });
  const topicId = TOPIC_ID;
  image.apply({
    type: "partition",
    topicId,
    partition: 0,
    replicas: [1, 2, 3],
    leader: 1,
    leaderEpoch: 0,
    isr,
    partitionEpoch: 0,
  });
  return image;
}

function apply(image: MetadataImage, records: MetadataRecord[]): void {
  for (const record of records) image.apply(record);
}

function partition(image: MetadataImage): PartitionImage {
  return image.topicById(TOPIC_ID)!.partitions[0]!;
}

/** The request the partition's current leader would send with its up-to-date view. */
function fromLeader(image: MetadataImage, newIsr: number[]): AlterPartitionRequest {
  const p = partition(image);
  const { leader: brokerId, leaderEpoch, partitionEpoch } = p;
  return { brokerId, topicId: TOPIC_ID, partition: 0, leaderEpoch, partitionEpoch, newIsr };
}

/** Plans the request and applies its records, as the controller would once they are committed. */
function alter(image: MetadataImage, request: AlterPartitionRequest) {
  const { result, records } = planAlterPartition(image, request);
  for (const record of records) image.apply(record);
  return { result, records };
}

function expectRefused(
  image: MetadataImage,
  request: AlterPartitionRequest,
  error: AlterPartitionError,
  partitionEpoch: number,
): void {
  const before = image.appliedCount;
  const { result, records } = planAlterPartition(image, request);
  expect(result.ok ? null : result.error).toBe(error);
  expect(result.ok ? null : result.partitionEpoch).toBe(partitionEpoch);
  expect(records).toEqual([]);
  expect(image.appliedCount).toBe(before);
}

describe("cluster: AlterPartition", () => {
  test("a committed expand, shrink and expand again: one record each, a new partition epoch, newIsr's order", () => {
    const image = setup();
    const expand = alter(image, fromLeader(image, [1, 2, 3]));
    expect(expand.result).toEqual({
      ok: true,
      leader: 1,
      leaderEpoch: 0,
      partitionEpoch: 1,
      isr: [1, 2, 3],
    });
    expect(expand.records).toEqual([
      {
        type: "partition",
        topicId: TOPIC_ID,
        partition: 0,
        replicas: [1, 2, 3],
        leader: 1,
        leaderEpoch: 0,
        isr: [1, 2, 3],
        partitionEpoch: 1,
      },
    ]);
    const shrink = alter(image, fromLeader(image, [1, 3]));
    expect(shrink.result).toEqual({
      ok: true,
      leader: 1,
      leaderEpoch: 0,
      partitionEpoch: 2,
      isr: [1, 3],
    });
    expect(partition(image).isr).toEqual([1, 3]);
    const again = alter(image, fromLeader(image, [3, 1, 2]));
    expect(again.result).toEqual({
      ok: true,
      leader: 1,
      leaderEpoch: 0,
      partitionEpoch: 3,
      isr: [3, 1, 2],
    });
    const expected = {
      partition: 0,
      replicas: [1, 2, 3],
      leader: 1,
      leaderEpoch: 0,
      isr: [3, 1, 2],
      partitionEpoch: 3,
      elr: [],
    };
    expect(partition(image)).toEqual(expected);
  });

  test("unknown topic id or partition: refused with partition epoch -1", () => {
    const image = setup();
    expectRefused(
      image,
      { ...fromLeader(image, [1, 2]), topicId: "nope" },
      "unknownTopicOrPartition",
      -1,
    );
    expectRefused(
      image,
      { ...fromLeader(image, [1, 2]), partition: 1 },
      "unknownTopicOrPartition",
      -1,
    );
    expectRefused(
      image,
      { ...fromLeader(image, [1, 2]), partition: -1 },
      "unknownTopicOrPartition",
      -1,
    );
  });

  test("a leader epoch older than the controller's is fenced, a newer one unknown", () => {
    const image = setup([1, 2]);
    alter(image, fromLeader(image, [1, 2, 3]));
    apply(image, planBrokerFenced(image, 1)); // Leader 2, leader epoch 1.
    expectRefused(image, { ...fromLeader(image, [2]), leaderEpoch: 0 }, "fencedLeaderEpoch", 2);
    expectRefused(image, { ...fromLeader(image, [2]), leaderEpoch: 2 }, "unknownLeaderEpoch", 2);
  });

  test("a fenced old leader with a stale leader epoch is refused; the new leader's change goes through", () => {
    const image = setup();
    alter(image, fromLeader(image, [1, 2]));
    // The old leader's view before the controller fenced it.
    const stale = fromLeader(image, [1]);
    apply(image, planBrokerFenced(image, 1));
    expect(partition(image)).toMatchObject({
      leader: 2,
      leaderEpoch: 1,
      isr: [2],
      partitionEpoch: 2,
    });
    // It asks to shrink the ISR to itself: granting that would let it acknowledge writes alone.
    expectRefused(image, stale, "fencedLeaderEpoch", 2);
    expectRefused(image, { ...stale, newIsr: [1, 2] }, "fencedLeaderEpoch", 2);
    const grow = alter(image, fromLeader(image, [2, 3]));
    expect(grow.result).toEqual({
      ok: true,
      leader: 2,
      leaderEpoch: 1,
      partitionEpoch: 3,
      isr: [2, 3],
    });
  });

  test("only the leader may change the ISR; a leaderless partition answers notLeader", () => {
    const image = setup();
    expectRefused(image, { ...fromLeader(image, [1, 2]), brokerId: 2 }, "notLeader", 0);
    // notLeader comes before the idempotent retry: the ISR is not shown to a non-leader as agreed.
    expectRefused(image, { ...fromLeader(image, [1]), brokerId: 2 }, "notLeader", 0);
    apply(image, planBrokerFenced(image, 1)); // The ISR was 1 alone: no leader.
    expect(partition(image)).toMatchObject({
      leader: -1,
      leaderEpoch: 1,
      isr: [1],
      partitionEpoch: 1,
    });
    expectRefused(image, { ...fromLeader(image, [1]), brokerId: 1 }, "notLeader", 1);
    expectRefused(image, { ...fromLeader(image, [1, 2]), brokerId: 2 }, "notLeader", 1);
  });

  test("the leader epoch is checked before the leader", () => {
    const image = setup();
    expectRefused(
      image,
      { ...fromLeader(image, [1, 2]), brokerId: 2, leaderEpoch: -1 },
      "fencedLeaderEpoch",
      0,
    );
    expectRefused(
      image,
      { ...fromLeader(image, [1, 2]), brokerId: 2, leaderEpoch: 1 },
      "unknownLeaderEpoch",
      0,
    );
  });

  test("a retry of a committed change whose answer was lost gets the current state and writes nothing", () => {
    const image = setup();
    const request = fromLeader(image, [1, 2]);
    alter(image, request);
    const before = image.appliedCount;
    for (const newIsr of [
      [1, 2],
      [2, 1],
    ]) {
      const retry = planAlterPartition(image, { ...request, newIsr });
      expect(retry.result).toEqual({
        ok: true,
        leader: 1,
        leaderEpoch: 0,
        partitionEpoch: 1,
        isr: [1, 2],
      });
      expect(retry.records).toEqual([]);
    }
    // Asking for the ISR it already has, with the current epoch, is no change either.
    expect(planAlterPartition(image, fromLeader(image, [1, 2])).records).toEqual([]);
    expect(image.appliedCount).toBe(before);
  });

  test("a request based on a stale partition epoch is refused with the current one", () => {
    const image = setup();
    const first = fromLeader(image, [1, 2]);
    alter(image, first);
    // A second change computed from the state before the first was committed.
    expectRefused(image, { ...first, newIsr: [1, 2, 3] }, "invalidUpdateVersion", 1);
    expectRefused(image, { ...first, newIsr: [1] }, "invalidUpdateVersion", 1);
    // From the future too: only the current epoch is the state the controller knows.
    expectRefused(image, { ...first, partitionEpoch: 5, newIsr: [1] }, "invalidUpdateVersion", 1);
    // The stale epoch is reported before a malformed ISR.
    expectRefused(image, { ...first, newIsr: [] }, "invalidUpdateVersion", 1);
    // The leader fetches the new epoch and tries again.
    expect(alter(image, fromLeader(image, [1])).result).toMatchObject({
      ok: true,
      partitionEpoch: 2,
      isr: [1],
    });
  });

  test("the controller's own changes (fencing) make a leader's older view stale", () => {
    const image = setup([1, 2, 3]);
    const view = fromLeader(image, [1, 2]);
    apply(image, planBrokerFenced(image, 3)); // The controller drops 3 from the ISR itself.
    expect(partition(image)).toMatchObject({ leader: 1, isr: [1, 2], partitionEpoch: 1 });
    // The same ISR: committed already, answered as such.
    expect(planAlterPartition(image, view).result).toMatchObject({
      ok: true,
      partitionEpoch: 1,
      isr: [1, 2],
    });
    expectRefused(image, { ...view, newIsr: [1] }, "invalidUpdateVersion", 1);
  });

  test("an ISR that is empty, repeats a replica, lists a non-replica or lacks the leader is invalid", () => {
    const image = setup([1, 2]);
    expectRefused(image, fromLeader(image, []), "invalidRequest", 0);
    expectRefused(image, fromLeader(image, [1, 1, 2]), "invalidRequest", 0);
    expectRefused(image, fromLeader(image, [1, 2, 2]), "invalidRequest", 0);
    expectRefused(image, fromLeader(image, [1, 4]), "invalidRequest", 0); // Broker 4 is registered, not a replica.
    expectRefused(image, fromLeader(image, [1, 9]), "invalidRequest", 0); // Neither, and invalid before ineligible.
    expectRefused(image, fromLeader(image, [2, 3]), "invalidRequest", 0);
    expect(partition(image)).toMatchObject({ isr: [1, 2], partitionEpoch: 0 });
  });

  test("adding a fenced or unregistered replica is refused, removing a fenced one is allowed", () => {
    const image = setup([1, 2, 3]);
    // Straight into the image: a fenced broker still in the ISR, as before the leader shrinks it.
    image.apply({ type: "fenceBroker", nodeId: 3 });
    expect(alter(image, fromLeader(image, [1, 2])).result).toMatchObject({
      ok: true,
      partitionEpoch: 1,
      isr: [1, 2],
    });
    expectRefused(image, fromLeader(image, [1, 2, 3]), "ineligibleReplica", 1);
    // Once unfenced it may join again.
    apply(image, planBrokerUnfenced(image, 3));
    expect(alter(image, fromLeader(image, [1, 2, 3])).result).toMatchObject({
      ok: true,
      partitionEpoch: 2,
    });

    const unregistered = setup([1], [1, 2]); // Replica 3 never registered.
    expectRefused(unregistered, fromLeader(unregistered, [1, 3]), "ineligibleReplica", 0);
    expect(alter(unregistered, fromLeader(unregistered, [1, 2])).result).toMatchObject({
      ok: true,
      partitionEpoch: 1,
    });
  });

  test("error codes are Kafka's", () => {
    const codes: Record<AlterPartitionError, number> = {
      unknownTopicOrPartition: 3,
      notLeader: 6,
      fencedLeaderEpoch: 74,
      unknownLeaderEpoch: 75,
      invalidUpdateVersion: 95,
      ineligibleReplica: 107,
      invalidRequest: 42,
    };
    for (const [error, code] of Object.entries(codes)) {
      expect(alterPartitionErrorCode(error as AlterPartitionError)).toBe(code);
    }
    expect(alterPartitionErrorCode("invalidRequest")).toBe(ErrorCode.INVALID_REQUEST);
  });
});
