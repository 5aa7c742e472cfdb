import { describe, expect, test } from "bun:test";
import { planAlterPartition } from "./alter-partition.ts";
import { planBrokerFenced, planBrokerUnfenced } from "./broker-lifecycle.ts";
import { MetadataImage, type MetadataRecord, type PartitionImage } from "./metadata-image.ts";
import { planRegisterBroker } from "./topics.ts";

const TOPIC_ID = "id-t";

/** Brokers 1-3, topic t with one partition on all three, led by 1, all in sync. */
function setup(minIsr: number): MetadataImage {
  const image = new MetadataImage();
  for (const nodeId of [1, 2, 3])
    image.apply({
      type: "registerBroker",
      nodeId,
      host: "127.0.0.1",
      port: 9000 + nodeId,
      rack: null,
      incarnation: `${nodeId}.0`,
    });
  image.apply({ type: "topic", name: "t", topicId: TOPIC_ID });
  image.apply({
    type: "config",
    topicId: TOPIC_ID,
    name: "min.insync.replicas",
    value: String(minIsr),
  });
  image.apply({
    type: "partition",
    topicId: TOPIC_ID,
    partition: 0,
    replicas: [1, 2, 3],
    leader: 1,
    leaderEpoch: 0,
    isr: [1, 2, 3],
    partitionEpoch: 0,
  });
  return image;
}

function apply(image: MetadataImage, records: MetadataRecord[]): void {
  for (const record of records) image.apply(record);
}

/** SWIM declares each of `ids` dead, in order. */
function fence(image: MetadataImage, ...ids: number[]): void {
  for (const id of ids) apply(image, planBrokerFenced(image, id));
}

function partition(image: MetadataImage): PartitionImage {
  return image.topic("t")!.partitions[0]!;
}

function restart(image: MetadataImage, nodeId: number, incarnation: string, lossy: boolean) {
  const command = {
    kind: "registerBroker" as const,
    nodeId,
    host: "127.0.0.1",
    port: 9000 + nodeId,
    rack: null,
    incarnation,
    lossy,
  };
  apply(image, planRegisterBroker(image, command));
}

describe("cluster: eligible leader replicas (KIP-966)", () => {
  test("a replica fenced out of an ISR below min.insync.replicas joins the ELR and may lead", () => {
    const image = setup(2);
    apply(image, planBrokerFenced(image, 3));
    // [1, 2] still meets the minimum: 3 is not known to hold what is committed next.
    expect(partition(image)).toMatchObject({ isr: [1, 2], elr: [] });
    apply(image, planBrokerFenced(image, 2));
    expect(partition(image)).toMatchObject({ leader: 1, isr: [1], elr: [2] });
    // The leader dies too: it stays the last ISR member, nobody live can lead.
    apply(image, planBrokerFenced(image, 1));
    expect(partition(image)).toMatchObject({ leader: -1, isr: [1], elr: [2] });
    // 2 returns: it holds every committed write, so it leads; 1 becomes eligible instead.
    apply(image, planBrokerUnfenced(image, 2));
    expect(partition(image)).toMatchObject({ leader: 2, leaderEpoch: 2, isr: [2], elr: [1] });
    // 3 never returns to the ELR: it left while the ISR met the minimum.
    apply(image, planBrokerUnfenced(image, 3));
    expect(partition(image)).toMatchObject({ leader: 2, isr: [2], elr: [1] });
  });

  test("the ELR empties once the ISR is back at the minimum", () => {
    const image = setup(2);
    fence(image, 3, 2);
    expect(partition(image).elr).toEqual([2]);
    apply(image, planBrokerUnfenced(image, 2));
    const p = partition(image);
    const { result, records } = planAlterPartition(image, {
      brokerId: 1,
      topicId: TOPIC_ID,
      partition: 0,
      leaderEpoch: p.leaderEpoch,
      partitionEpoch: p.partitionEpoch,
      newIsr: [1, 2],
    });
    expect(result.ok).toBe(true);
    apply(image, records);
    expect(partition(image)).toMatchObject({ isr: [1, 2], elr: [] });
  });

  test("a follower the leader drops for lag below the minimum joins the ELR", () => {
    const image = setup(3);
    const p = partition(image);
    const { records } = planAlterPartition(image, {
      brokerId: 1,
      topicId: TOPIC_ID,
      partition: 0,
      leaderEpoch: p.leaderEpoch,
      partitionEpoch: p.partitionEpoch,
      newIsr: [1, 2],
    });
    apply(image, records);
    expect(partition(image)).toMatchObject({ isr: [1, 2], elr: [3] });
  });

  test("with min.insync.replicas 1 nothing joins the ELR", () => {
    const image = setup(1);
    fence(image, 3, 2);
    expect(partition(image)).toMatchObject({ isr: [1], elr: [] });
  });

  test("a restart after a machine crash leaves the ELR and the ISR, so a replica that kept its data leads", () => {
    const image = setup(2);
    fence(image, 3, 2, 1);
    expect(partition(image)).toMatchObject({ leader: -1, isr: [1], elr: [2] });
    // 1 comes back after a machine crash: as the last ISR member it would lead again at
    // once, though it may have lost writes that 2 holds.
    restart(image, 1, "1.1", true);
    expect(partition(image)).toMatchObject({ leader: -1, isr: [], elr: [2] });
    restart(image, 2, "2.1", false);
    expect(partition(image)).toMatchObject({ leader: 2, isr: [2], elr: [] });
  });

  test("after a process crash (nothing lost) the last ISR member leads again", () => {
    const image = setup(2);
    fence(image, 3, 2, 1);
    restart(image, 1, "1.1", false);
    expect(partition(image)).toMatchObject({ leader: 1, isr: [1], elr: [2] });
  });

  test("a lossy restart leaves a shared ISR without joining the ELR", () => {
    const image = setup(2);
    apply(image, planBrokerFenced(image, 3));
    restart(image, 2, "2.1", true);
    // [1] is below the minimum, but 2 may have lost what it held: not eligible.
    expect(partition(image)).toMatchObject({ leader: 1, isr: [1], elr: [] });
  });

  test("the last eligible replica stays eligible after a lossy restart, as Kafka's last known leader", () => {
    const image = setup(2);
    fence(image, 3, 2, 1);
    restart(image, 1, "1.1", true);
    expect(partition(image)).toMatchObject({ leader: -1, isr: [], elr: [2] });
    // 2 lost its unsynced writes too: with no one better, it leads rather than nobody.
    restart(image, 2, "2.1", true);
    expect(partition(image)).toMatchObject({ leader: 2, isr: [2], elr: [] });
  });

  test("ELR survives a snapshot of the image", () => {
    const image = setup(2);
    fence(image, 3, 2);
    const copy = new MetadataImage();
    apply(copy, image.toRecords());
    expect(partition(copy)).toEqual(partition(image));
  });
});
