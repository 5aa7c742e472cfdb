/**
 * Partition replication between real processes on loopback (issue 13): three nodes, a
 * topic with replication factor 3 and min.insync.replicas 2. Followers copy the leader
 * byte for byte and join the ISR; confluent-kafka-python (librdkafka) and kafkajs write
 * with acks=all while the leader is killed with SIGKILL, and every acknowledged value is then
 * read back from the survivors at the offset it was acknowledged with (duplicates are
 * allowed without idempotence, losses are not); with only the leader left, acks=all gets
 * NOT_ENOUGH_REPLICAS while acks=1 succeeds. A consumer group (kafkajs) keeps its
 * committed offsets when the node of its coordinator dies: __consumer_offsets is
 * replicated too, and the new leader of the group's partition takes the group over.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { eventually, type TestBroker } from "../helpers/broker.ts";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { kcat } from "../helpers/kcat.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus.ts";
import { RawClient } from "../helpers/raw-client.ts";
import {
  checkAcked,
  firstAckAfter,
  kafkajsWriter,
  librdkafkaWriter,
  summary,
} from "./acked-writers.ts";
import {
  createTopic,
  fullIsr,
  partitionsOf,
  readBack,
  restart,
  startCluster,
  stopCluster,
  whole,
} from "./cluster-helpers.ts";
const PRODUCE = 0;
const NOT_ENOUGH_REPLICAS = 19;
const FIND_COORDINATOR = 10;

let nodes: TestBroker[] = [];

async function metricsOf(node: TestBroker) {
  return parsePrometheusText(await (await fetch(`${node.adminUrl}/metrics`)).text());
}

/** The node id FindCoordinator names for a group, asked of `node`. */
async function findCoordinator(node: TestBroker, group: string): Promise<number> {
  const client = await RawClient.connect(node.port);
  try {
    const found = await client.request(FIND_COORDINATOR, 3, { key: group, keyType: 0 });
    expect(found.errorCode).toBe(0);
    return found.nodeId as number;
  } finally {
    client.close();
  }
}

function kafkaThrough(through: TestBroker[], clientId: string): Kafka {
  return new Kafka({
    clientId,
    brokers: through.map((node) => node.bootstrap),
    logLevel: logLevel.NOTHING,
    retry: { retries: 20, initialRetryTime: 100 },
  });
}

beforeAll(async () => {
  nodes = await startCluster(3);
});

afterAll(async () => {
  await stopCluster(nodes);
});

describe("replication: three nodes, replication factor 3", () => {
  test("replication: followers copy the leader byte for byte and join the ISR; the high watermark reaches every replica", async () => {
    await createTopic(nodes[0]!, "copied", 3, { "min.insync.replicas": "2" });
    await fullIsr(nodes[0]!, "copied", 3);
    const lines = Array.from({ length: 300 }, (_, i) => `copied-${i}`);
    const produced = await kcat(
      ["-P", "-b", nodes[1]!.bootstrap, "-t", "copied", "-X", "acks=all", "-z", "lz4"],
      `${lines.join("\n")}\n`,
    );
    expect(produced.code).toBe(0);
    // Every node's own log of each partition reaches the same high watermark.
    const totals = await eventually(
      "every replica at the same high watermark",
      async () => {
        const views = await Promise.all(nodes.map((node) => partitionsOf(node, "copied")));
        const sums = views.map((partitions) =>
          partitions.reduce((sum, p) => sum + (p.highWatermark ?? -1), 0),
        );
        return sums.every((sum) => sum === lines.length) ? sums : null;
      },
      20_000,
    );
    expect(totals).toEqual([300, 300, 300]);
    // The bytes are the leader's: each node's segment file holds the same batches.
    for (let partition = 0; partition < 3; partition++) {
      const files = nodes.map((node) =>
        readFileSync(join(node.dataDir, `copied-${partition}`, "00000000000000000000.log")),
      );
      expect(files[1]!.equals(files[0]!)).toBe(true);
      expect(files[2]!.equals(files[0]!)).toBe(true);
    }
    expect(files3(nodes[0]!).reduce((sum, size) => sum + size, 0)).toBeGreaterThan(0);
    // Replication is not consumer traffic: no node counts the followers' fetches as bytes out.
    let bytesIn = 0;
    for (const node of nodes) {
      const metrics = await metricsOf(node);
      bytesIn += sampleValue(metrics, "brook_topic_bytes_in_total", { topic: "copied" }) ?? 0;
      expect(sampleValue(metrics, "brook_topic_bytes_out_total", { topic: "copied" }) ?? 0).toBe(0);
    }
    expect(bytesIn).toBeGreaterThan(0); // the leaders counted the produce
  });

  test("replication: a follower killed: the ISR shrinks, acks=all gets NOT_ENOUGH_REPLICAS and acks=1 succeeds; back, it catches up and rejoins", async () => {
    await createTopic(nodes[0]!, "lonely", 1, { "min.insync.replicas": "2" }, 2);
    const [p] = await eventually(
      "a leader with a two-member ISR",
      async () => {
        const partitions = await partitionsOf(nodes[0]!, "lonely");
        return partitions[0]?.isr.length === 2 ? partitions : null;
      },
      30_000,
    );
    const leader = nodes.find((node) => node.nodeId === p!.leader)!;
    const follower = nodes.find(
      (node) => node.nodeId !== leader.nodeId && p!.isr.includes(node.nodeId),
    )!;
    const seed = nodes.find((node) => node !== follower)!;
    await follower.kill();
    await eventually(
      "the ISR shrunk to the leader",
      async () => (await partitionsOf(leader, "lonely"))[0]?.isr.length === 1,
      30_000,
    );
    // The leader reports it: an under-replicated partition and an ISR shrink.
    const shrunk = await metricsOf(leader);
    expect(sampleValue(shrunk, "brook_under_replicated_partitions")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(shrunk, "brook_isr_shrinks_total")).toBeGreaterThanOrEqual(1);
    const expandsBefore = sampleValue(shrunk, "brook_isr_expands_total")!;
    const client = await RawClient.connect(leader.port);
    try {
      const produce = (acks: number) =>
        client.request(PRODUCE, 9, {
          transactionalId: null,
          acks,
          timeoutMs: 5000,
          topicData: [{ name: "lonely", partitionData: [{ index: 0, records: oneBatch() }] }],
        });
      const all = await produce(-1);
      expect(all.responses[0].partitionResponses[0].errorCode).toBe(NOT_ENOUGH_REPLICAS);
      for (let i = 0; i < 5; i++)
        expect((await produce(1)).responses[0].partitionResponses[0].errorCode).toBe(0);
    } finally {
      client.close();
    }
    // Back with its data dir: it truncates if it must, fetches what it missed, rejoins.
    const back = await restart(follower, seed, { samePorts: true });
    nodes[nodes.indexOf(follower)] = back;
    await eventually(
      "the follower back in the ISR",
      async () => (await partitionsOf(leader, "lonely"))[0]?.isr.length === 2,
      30_000,
    );
    await eventually(
      "the follower's log as long as the leader's",
      async () => (await partitionsOf(back, "lonely"))[0]?.highWatermark === 5,
      10_000,
    );
    // The leader shows each replica's log end and lag; the follower does not know them.
    const [onLeader] = await eventually(
      "both replicas at the leader's log end",
      async () => {
        const views = await partitionsOf(leader, "lonely");
        return views[0]?.replicaStates?.every((r) => r.lag === 0) ? views : null;
      },
      10_000,
    );
    expect(onLeader!.replicaStates!.map((r) => [r.nodeId, r.logEndOffset]).sort()).toEqual(
      [
        [leader.nodeId, 5],
        [back.nodeId, 5],
      ].sort(),
    );
    expect((await partitionsOf(back, "lonely"))[0]).toMatchObject({
      replicaStates: null,
      logEndOffset: 5,
    });
    expect(sampleValue(await metricsOf(leader), "brook_isr_expands_total")).toBeGreaterThan(
      expandsBefore,
    );
  });

  test("replication: a consumer group keeps its committed offsets when its coordinator's node is killed", async () => {
    await createTopic(nodes[0]!, "grouped", 2, { "min.insync.replicas": "2" });
    await fullIsr(nodes[0]!, "grouped", 2);
    const lines = Array.from({ length: 200 }, (_, i) => `grouped-${i}`);
    for (const partition of [0, 1]) {
      const half = lines.filter((_, i) => i % 2 === partition);
      const produced = await kcat(
        [
          "-P",
          "-b",
          nodes[0]!.bootstrap,
          "-t",
          "grouped",
          "-p",
          String(partition),
          "-X",
          "acks=all",
        ],
        `${half.join("\n")}\n`,
      );
      expect(produced.code).toBe(0);
    }
    const group = "survivor-group";
    // A member reads part of the topic and commits where it stopped (offset = next to read).
    const first = kafkaThrough(nodes, "first-member").consumer({
      groupId: group,
      maxWaitTimeInMs: 200,
    });
    await first.connect();
    await first.subscribe({ topic: "grouped", fromBeginning: true });
    // Up to 60 of each partition's 100; later messages are left for the next member.
    const next = new Map<number, number>();
    await first.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const offset = Number(message.offset);
        if (offset < 60) next.set(partition, Math.max(next.get(partition) ?? 0, offset + 1));
      },
    });
    await eventually(
      "60 messages of each partition read",
      () => next.get(0) === 60 && next.get(1) === 60,
      30_000,
    );
    const seen = 120;
    const committed = [...next].map(([partition, offset]) => ({
      topic: "grouped",
      partition,
      offset: String(offset),
    }));
    // A commit is only as safe as the ISR of its partition of __consumer_offsets (created
    // when the member first looked for its coordinator): with the leader alone in it, the
    // leader's death would leave the partition offline, as in Kafka without unclean election.
    await fullIsr(nodes[0]!, "__consumer_offsets", 50);
    await first.commitOffsets(committed);
    await first.disconnect();
    expect(committed.length).toBe(2);

    // The coordinator is the leader of the group's partition of __consumer_offsets, which
    // has three replicas: kill its node.
    const coordinatorId = await findCoordinator(nodes[0]!, group);
    const coordinator = nodes.find((node) => node.nodeId === coordinatorId)!;
    const offsetsTopic = await partitionsOf(nodes[0]!, "__consumer_offsets");
    expect(offsetsTopic).toHaveLength(50);
    // offsets.topic.replication.factor 3 with three live brokers.
    expect(offsetsTopic.every((p) => p.replicas.length === 3)).toBe(true);
    await coordinator.kill();
    const survivors = nodes.filter((node) => node !== coordinator);

    // Through the survivors the group's offsets are intact, and a new member resumes there.
    const admin = kafkaThrough(survivors, "offsets-admin").admin();
    await admin.connect();
    const fetched = await eventually(
      "the committed offsets through a new coordinator",
      async () => {
        try {
          return await admin.fetchOffsets({ groupId: group, topics: ["grouped"] });
        } catch {
          return null; // NOT_COORDINATOR and the like until the new leader loaded the group
        }
      },
      30_000,
    );
    await admin.disconnect();
    const byPartition = new Map(fetched[0]!.partitions.map((p) => [p.partition, Number(p.offset)]));
    for (const { partition, offset } of committed)
      expect(byPartition.get(partition)).toBe(Number(offset));
    expect(await findCoordinator(survivors[0]!, group)).not.toBe(coordinatorId);

    const second = kafkaThrough(survivors, "second-member").consumer({
      groupId: group,
      maxWaitTimeInMs: 200,
    });
    await second.connect();
    await second.subscribe({ topic: "grouped", fromBeginning: true });
    const firstOffsets = new Map<number, number>();
    let rest = 0;
    await second.run({
      eachMessage: async ({ partition, message }) => {
        if (!firstOffsets.has(partition)) firstOffsets.set(partition, Number(message.offset));
        rest++;
      },
    });
    await eventually("the rest of the topic read", () => rest >= lines.length - seen, 30_000);
    await second.disconnect();
    for (const { partition, offset } of committed)
      expect(firstOffsets.get(partition)).toBe(Number(offset));
    expect(rest).toBe(lines.length - seen);

    // The killed node comes back and the cluster has three brokers again.
    const back = await restart(coordinator, survivors[0]!, { samePorts: true });
    nodes[nodes.indexOf(coordinator)] = back;
    for (const node of nodes) await whole(node, 3, 3, [back]); // every node sees it, for the next test
  });

  test("replication: SIGKILL of the leader under acks=all from librdkafka and kafkajs: every acknowledged value survives at its offset", async () => {
    await createTopic(nodes[0]!, "failover", 1, { "min.insync.replicas": "2" });
    const [before] = await fullIsr(nodes[0]!, "failover", 1);
    const leader = nodes.find((node) => node.nodeId === before!.leader)!;
    const survivor = nodes.find((node) => node !== leader)!;
    const bootstrap =
      nodes
        .filter((node) => node !== leader)
        .map((node) => node.bootstrap)
        .join(",") + `,${leader.bootstrap}`;
    const writing = Promise.all([
      librdkafkaWriter({
        bootstrap,
        topic: "failover",
        durationMs: 7_000,
        rate: 400,
        prefix: "py-",
      }),
      kafkajsWriter({ bootstrap, topic: "failover", durationMs: 7_000, rate: 100, prefix: "js-" }),
    ]);
    await Bun.sleep(2_000);
    const killedAt = Date.now();
    await leader.kill();
    nodes.splice(nodes.indexOf(leader), 1);
    const reports = await writing;
    // Failover as a writer sees it: from the kill to the first acknowledgement of a value
    // handed to the client after the kill.
    const failoverMs = firstAckAfter(reports, killedAt);
    expect(failoverMs).not.toBeNull();
    const partition = await eventually(
      "a new leader",
      async () => {
        const [p] = await partitionsOf(survivor, "failover");
        return p !== undefined && p.leader !== leader.nodeId && p.leader >= 0 ? p : null;
      },
      10_000,
    );
    expect(partition.isr).not.toContain(leader.nodeId);
    const stored = await readBack(survivor, "failover", 0);
    const { lost, duplicates } = checkAcked(reports, new Map([[0, stored]]));
    console.log(
      `replication: leader ${leader.nodeId} killed; ${reports.map(summary).join("; ")}; ` +
        `${lost.length} lost, ${duplicates} duplicated; first acknowledgement ${failoverMs} ms after the kill; new leader ${partition.leader} epoch ${partition.leaderEpoch}`,
    );
    expect(lost).toEqual([]);
    for (const report of reports) expect(report.acked.length).toBeGreaterThan(0);
    // Both survivors hold the same committed log.
    const other = nodes.find((node) => node !== survivor)!;
    const otherStored = await eventually(
      "the other survivor caught up",
      async () => {
        const views = await partitionsOf(other, "failover");
        return views[0]?.highWatermark === stored.size ? true : null;
      },
      10_000,
    );
    expect(otherStored).toBe(true);
  });
});

/** Sizes of a node's three segment files of "copied". */
function files3(node: TestBroker): number[] {
  return [0, 1, 2].map(
    (partition) =>
      statSync(join(node.dataDir, `copied-${partition}`, "00000000000000000000.log")).size,
  );
}

/** One valid record batch. */
function oneBatch(): Uint8Array {
  return buildBatch({
    records: [{ value: new TextEncoder().encode("x") }],
    baseTimestamp: Date.now(),
  });
}
