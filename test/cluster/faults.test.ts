/**
 * Replication under faults, with real processes on loopback (issue 13): three nodes,
 * replication factor 3, min.insync.replicas 2, and real clients writing with acks=all
 * (confluent-kafka-python and kafkajs) while nodes are paused or killed.
 *
 * - Bad replication requests get Kafka's error codes and append nothing.
 * - A leader paused with SIGSTOP past failure detection loses its leadership; resumed,
 *   it steps down, truncates whatever it took meanwhile and copies the new leader again;
 *   nothing it was paused with is acknowledged and no acknowledged value is lost.
 * - A follower restarted from an empty data dir copies every partition again, also a
 *   compacted one whose log has gaps where the leader's cleaner removed batches.
 * - All three nodes killed at once and restarted on their data dirs: every acknowledged
 *   value is there, and writes go on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { eventually, portsOf, startBroker, type TestBroker } from "../helpers/broker.ts";
import { kcat } from "../helpers/kcat.ts";
import { RawClient } from "../helpers/raw-client.ts";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import {
  type Acked,
  checkAcked,
  firstAckAfter,
  kafkajsWriter,
  librdkafkaWriter,
  summary,
  type WriterReport,
} from "./acked-writers.ts";
import {
  createTopic,
  fullIsr,
  partitionsOf,
  type PartitionView,
  readBack,
  restart,
  startCluster,
  stopCluster,
  whole,
} from "./cluster-helpers.ts";

const PRODUCE = 0;
const FETCH = 1;
const NOT_LEADER_OR_FOLLOWER = 6;
const OFFSET_OUT_OF_RANGE = 1;

let nodes: TestBroker[] = [];

beforeAll(async () => {
  nodes = await startCluster(3);
});

afterAll(async () => {
  await stopCluster(nodes);
});

const byId = (id: number) => nodes.find((node) => node.nodeId === id)!;

/** Segment files of one partition on each node, as bytes. */
function segments(of: readonly TestBroker[], topic: string, partition: number): Buffer[] {
  return of.map((node) =>
    readFileSync(join(node.dataDir, `${topic}-${partition}`, "00000000000000000000.log")),
  );
}

/** Waits until every node holds the whole partition: three in the ISR, one high watermark. */
async function settled(topic: string, partition: number): Promise<PartitionView> {
  return await eventually(
    `${topic}-${partition} settled on three replicas`,
    async () => {
      const views = await Promise.all(
        nodes.map(async (node) => (await partitionsOf(node, topic))[partition]),
      );
      const leaderView = views.find((v) => v !== undefined && v.isr.length === 3);
      if (leaderView === undefined || leaderView.leader < 0) return null;
      return views.every((v) => v?.highWatermark === leaderView.highWatermark) ? leaderView : null;
    },
    30_000,
  );
}

/** Every partition read back through `node`: partition → offset → value. */
async function readAll(
  node: TestBroker,
  topic: string,
  partitions: number,
): Promise<Map<number, Map<number, string>>> {
  const stored = new Map<number, Map<number, string>>();
  for (let p = 0; p < partitions; p++) stored.set(p, await readBack(node, topic, p));
  return stored;
}

function fetchRequest(topic: string, replicaId: number, fetchOffset: number) {
  return {
    replicaId,
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes: 1 << 20,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    forgottenTopicsData: [],
    rackId: "",
    topics: [
      {
        topic,
        partitions: [
          {
            partition: 0,
            currentLeaderEpoch: -1,
            fetchOffset,
            lastFetchedEpoch: -1,
            logStartOffset: -1,
            partitionMaxBytes: 1 << 20,
          },
        ],
      },
    ],
  };
}

describe("faults: three nodes, replication factor 3", () => {
  test("faults: bad replication requests get Kafka's error codes and append nothing", async () => {
    await createTopic(nodes[0]!, "strict", 1, { "min.insync.replicas": "2" });
    const [before] = await fullIsr(nodes[0]!, "strict", 1);
    const leader = byId(before!.leader);
    const [followerA, followerB] = nodes.filter((node) => node !== leader);
    const produce = async (node: TestBroker) => {
      const client = await RawClient.connect(node.port);
      try {
        const records = buildBatch({
          records: [{ value: new TextEncoder().encode("x") }],
          baseTimestamp: Date.now(),
        });
        const answer = await client.request(PRODUCE, 9, {
          transactionalId: null,
          acks: -1,
          timeoutMs: 5000,
          topicData: [{ name: "strict", partitionData: [{ index: 0, records }] }],
        });
        return answer.responses[0].partitionResponses[0].errorCode as number;
      } finally {
        client.close();
      }
    };
    const fetchAs = async (node: TestBroker, replicaId: number, fetchOffset: number) => {
      const client = await RawClient.connect(node.port);
      try {
        const answer = await client.request(
          FETCH,
          12,
          fetchRequest("strict", replicaId, fetchOffset),
        );
        return answer.responses[0].partitions[0].errorCode as number;
      } finally {
        client.close();
      }
    };
    for (let i = 0; i < 3; i++) expect(await produce(leader)).toBe(0);
    await settled("strict", 0);
    // A produce to a follower.
    expect(await produce(followerA!)).toBe(NOT_LEADER_OR_FOLLOWER);
    // A follower's fetch sent to another follower.
    expect(await fetchAs(followerB!, followerA!.nodeId, 0)).toBe(NOT_LEADER_OR_FOLLOWER);
    // A replica id that is no replica of the partition (no broker at all).
    expect(await fetchAs(leader, 99, 0)).toBe(NOT_LEADER_OR_FOLLOWER);
    // A follower fetching beyond the leader's log end.
    expect(await fetchAs(leader, followerA!.nodeId, 1000)).toBe(OFFSET_OUT_OF_RANGE);
    // Nothing was appended anywhere, and the leader still serves and replicates.
    const after = await settled("strict", 0);
    expect(after.highWatermark).toBe(3);
    expect(after.leader).toBe(leader.nodeId);
    expect(await produce(leader)).toBe(0);
    expect((await settled("strict", 0)).highWatermark).toBe(4);
  });

  test("faults: SIGSTOP of the leader past failure detection, then SIGCONT: it steps down and truncates; no acknowledged value is lost", async () => {
    await createTopic(nodes[0]!, "paused", 1, { "min.insync.replicas": "2" });
    const [before] = await fullIsr(nodes[0]!, "paused", 1);
    const leader = byId(before!.leader);
    const others = nodes.filter((node) => node !== leader);
    const bootstrap = [...others, leader].map((node) => node.bootstrap).join(",");
    const writing = Promise.all([
      librdkafkaWriter({
        bootstrap,
        topic: "paused",
        durationMs: 12_000,
        rate: 200,
        prefix: "py-",
      }),
      kafkajsWriter({ bootstrap, topic: "paused", durationMs: 12_000, rate: 100, prefix: "js-" }),
    ]);
    await Bun.sleep(2_000);
    const pausedAt = Date.now();
    process.kill(leader.pid, "SIGSTOP");
    let resumedAt = 0;
    try {
      const moved = await eventually(
        "a new leader while the old one is paused",
        async () => {
          const [p] = await partitionsOf(others[0]!, "paused");
          return p !== undefined && p.leader >= 0 && p.leader !== leader.nodeId ? p : null;
        },
        20_000,
      );
      expect(moved.isr).not.toContain(leader.nodeId);
      expect(moved.leaderEpoch).toBeGreaterThan(before!.leaderEpoch);
      // Paused a while longer with its clients' requests queued on its sockets.
      await Bun.sleep(1_000);
    } finally {
      process.kill(leader.pid, "SIGCONT");
      resumedAt = Date.now();
    }
    const reports = await writing;
    const settledView = await settled("paused", 0);
    expect(settledView.leader).not.toBe(leader.nodeId);
    const stored = await readAll(byId(settledView.leader), "paused", 1);
    const { lost, duplicates } = checkAcked(reports, stored);
    const failoverMs = firstAckAfter(reports, pausedAt);
    const truncated = leader.stderr().includes("Truncating a divergent tail");
    console.log(
      `faults: leader ${leader.nodeId} paused ${resumedAt - pausedAt} ms; ${reports.map(summary).join("; ")}; ` +
        `${lost.length} lost, ${duplicates} duplicated; first acknowledgement ${failoverMs} ms after the pause; ` +
        `old leader ${truncated ? "truncated a divergent tail" : "had nothing to truncate"}`,
    );
    expect(lost).toEqual([]);
    for (const report of reports) expect(report.acked.length).toBeGreaterThan(0);
    // Replicas never differ below the high watermark: the old leader's log is the new one's.
    const files = segments(nodes, "paused", 0);
    for (const file of files) expect(file.equals(files[0]!)).toBe(true);
  });

  test("faults: a follower restarted from an empty data dir copies every partition again and rejoins the ISR", async () => {
    await createTopic(nodes[0]!, "refilled", 2, { "min.insync.replicas": "2" });
    const [first] = await fullIsr(nodes[0]!, "refilled", 2);
    const follower = nodes.find((node) => node.nodeId !== first!.leader && node !== nodes[0])!;
    const seed = nodes.find((node) => node !== follower)!;
    const report = await kafkajsWriter({
      bootstrap: seed.bootstrap,
      topic: "refilled",
      durationMs: 2_000,
      rate: 200,
      prefix: "fill-",
    });
    expect(report.errors).toBe(0);
    await follower.kill();
    rmSync(follower.dataDir, { recursive: true, force: true });
    const back = await restart(follower, seed, { samePorts: true });
    nodes[nodes.indexOf(follower)] = back;
    for (const partition of [0, 1]) await settled("refilled", partition);
    for (const partition of [0, 1]) {
      const files = segments(nodes, "refilled", partition);
      for (const file of files) expect(file.equals(files[0]!)).toBe(true);
    }
    const stored = await readAll(back, "refilled", 2);
    expect(checkAcked([report], stored).lost).toEqual([]);
  });

  test("faults: a compacted topic: a follower from an empty data dir copies the leader's cleaned log, gaps included, and rejoins the ISR", async () => {
    const configs = {
      "cleanup.policy": "compact",
      "segment.bytes": "4096",
      "min.cleanable.dirty.ratio": "0.01",
      "min.insync.replicas": "2",
    };
    await createTopic(nodes[0]!, "cleaned", 1, configs);
    const [p] = await fullIsr(nodes[0]!, "cleaned", 1);
    const leader = byId(p!.leader);
    // 20 keys written 30 times each, in batches of 10 over segments of 4 KiB: the cleaner
    // keeps one record per key, so whole batches and segments go and the log has gaps.
    const lines = Array.from(
      { length: 600 },
      (_, i) => `key-${i % 20}:value-${i}-${"x".repeat(i % 40)}`,
    );
    const produced = await kcat(
      [
        "-P",
        "-b",
        leader.bootstrap,
        "-t",
        "cleaned",
        "-K:",
        "-X",
        "acks=all",
        "-X",
        "batch.num.messages=10",
      ],
      `${lines.join("\n")}\n`,
    );
    expect(produced.code).toBe(0);
    // The cleaner has removed records: the leader's log now has gaps to copy across.
    await eventually(
      "the leader cleaned its log",
      async () => (await readBack(leader, "cleaned", 0)).size < lines.length,
      30_000,
    );
    const follower = nodes.find((node) => node !== leader)!;
    const seed = nodes.find((node) => node !== follower)!;
    await follower.kill();
    rmSync(follower.dataDir, { recursive: true, force: true });
    const back = await restart(follower, seed, { samePorts: true });
    nodes[nodes.indexOf(follower)] = back;
    // It fetched across the gaps to the leader's log end (a follower that took a gap for
    // a misplaced answer would stall here, out of the ISR).
    const settledView = await settled("cleaned", 0);
    expect(settledView.leader).toBe(leader.nodeId);
    const [mine] = await partitionsOf(back, "cleaned");
    expect(mine!.logEndOffset).toBe(lines.length);
    expect(mine!.highWatermark).toBe(lines.length);
    // Every key's latest value reads back through the leader at its offset.
    const stored = await readBack(leader, "cleaned", 0);
    for (let key = 0; key < 20; key++) {
      const last = lines.length - 20 + key;
      expect(stored.get(last)).toBe(lines[last]!.slice(lines[last]!.indexOf(":") + 1));
    }
  });

  test("faults: all three nodes killed at once and restarted where they were: every acknowledged value is there and writes go on", async () => {
    await createTopic(nodes[0]!, "everyone", 2, { "min.insync.replicas": "2" });
    await fullIsr(nodes[0]!, "everyone", 2);
    const bootstrap = nodes.map((node) => node.bootstrap).join(",");
    const writing = Promise.all([
      librdkafkaWriter({
        bootstrap,
        topic: "everyone",
        durationMs: 10_000,
        rate: 200,
        prefix: "py-",
      }),
      kafkajsWriter({ bootstrap, topic: "everyone", durationMs: 10_000, rate: 100, prefix: "js-" }),
    ]);
    await Bun.sleep(3_000);
    const killedAt = Date.now();
    await Promise.all(nodes.map((node) => node.kill()));
    // The same data dirs and ports; node 1 founded the cluster and the others join it again.
    const first = await startBroker({
      dataDir: nodes[0]!.dataDir,
      ports: portsOf(nodes[0]!),
      args: ["--node-id", String(nodes[0]!.nodeId)],
    });
    const rest = await Promise.all(
      nodes.slice(1).map((node) =>
        startBroker({
          dataDir: node.dataDir,
          ports: portsOf(node),
          args: ["--node-id", String(node.nodeId), "--join", first.gossip],
        }),
      ),
    );
    nodes = [first, ...rest];
    await whole(first, 3, 3, nodes);
    const reports = await writing;
    for (const partition of [0, 1]) await settled("everyone", partition);
    const leaders = await partitionsOf(first, "everyone");
    const stored = new Map<number, Map<number, string>>();
    for (const p of leaders)
      stored.set(p.partition, await readBack(byId(p.leader), "everyone", p.partition));
    const { lost, duplicates } = checkAcked(reports, stored);
    const backMs = firstAckAfter(reports, killedAt);
    console.log(
      `faults: all nodes killed and restarted; ${reports.map(summary).join("; ")}; ${lost.length} lost, ${duplicates} duplicated; ` +
        `first acknowledgement ${backMs} ms after the kill`,
    );
    expect(lost).toEqual([] as Acked[]);
    // Writes went on after the restart.
    expect(backMs).not.toBeNull();
  });
});
