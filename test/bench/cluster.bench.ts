/**
 * @module
 * The harness's "cluster" group (`run.ts`): three nodes of the built executable on
 * loopback, every partition with three replicas, min.insync.replicas 2.
 *
 * - produce: acks=all to a topic whose 6 partitions all lead on node 1 (manual
 *   assignment, so one load generator reaches every leader), against acks=1 to an RF 1
 *   topic on the harness's single node, run by run alternately. On one machine the three
 *   replicas write three times the bytes to the same disk: about 0.33 is the ceiling.
 *   When nats-server, Go and nats.go are installed, each run also publishes to an R3
 *   stream on a three-server JetStream cluster on loopback (the peers group's Go driver,
 *   4 publishers), and Brook's RF 3 rate is set beside it.
 * - latency: the latency load generator at 10 MB/s with acks=all (produce → long-poll
 *   consumer, both on the leader).
 * - re-replication: a partition filled with `rereplicateBytes`; a follower is killed,
 *   its data dir emptied, and it is started again: the time from its start until it
 *   holds the leader's whole log, as MB/s of the partition's size. Its limit besides the
 *   drain: in each run, just before the follower starts, the harness itself writes the
 *   same number of bytes into a new file beside the data dirs (1 MiB pwrites, no fsync)
 *   and removes it. A copy cannot outrun that, and on a virtual machine that hands idle
 *   memory back to its host, filling fresh page cache is far slower than reading it.
 * - failover: `failoverKills` times, SIGKILL of a partition's leader (every other time
 *   the controller's node) while a prober sends acks=all produce requests to the
 *   survivors every 10 ms; the time from the kill to the first acknowledgement. The
 *   killed node is restarted on its ports and data dir before the next kill. A topic
 *   with a leader on each node is there throughout, so that, as in most clusters, the
 *   surviving follower already long-polls the new leader when the leadership moves.
 */
import { closeSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { writeFully } from "../../src/storage/segment-files.ts";
import { eventually, portsOf, startBroker, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";
import {
  clusterView,
  partitionsOf,
  startCluster,
  stopCluster,
  whole,
} from "../cluster/cluster-helpers.ts";
import type { LatencyResult, ProduceResult, ProduceSpec } from "./loadgen.ts";
import {
  buildJetStreamDriver,
  JETSTREAM_WINDOW,
  jetStreamPublish,
  missingPeer,
  type PeerRun,
  startNatsCluster,
} from "./peers/peers.ts";
import {
  createTopic,
  cpuSeconds,
  deleteTopic,
  EXECUTABLE,
  runLoadgen,
  type Server,
} from "./processes.ts";
import type { GroupHarness } from "./report.ts";
import { summarize } from "./stats.ts";

const CREATE_TOPICS = 19,
  PRODUCE = 0;
const MB = 1e6;
const READY_MS = 300_000;

export interface ClusterSizes {
  produceMs: number;
  batchBytes: number;
  window: number;
  latencyMs: number;
  failoverKills: number;
  rereplicateBytes: number;
  /** Messages per JetStream R3 publish run (the peers group's 1 KiB count). */
  peerMessages1KiB: number;
}

export interface ClusterBenchOptions {
  work: string;
  sizes: ClusterSizes;
  /** The harness's single node, for the RF 1 acks=1 row. */
  single: { pid: number; port: number };
  log: (message: string) => void;
}

export async function clusterBench(
  harness: GroupHarness,
  options: ClusterBenchOptions,
): Promise<void> {
  const { work, sizes, single, log } = options;
  let nodes: TestBroker[] = [];
  try {
    nodes = await startCluster(3, {
      command: [EXECUTABLE],
      readyMs: READY_MS,
      dataDirOf: (id) => join(work, `cluster-${id}`),
    });
    log(`cluster: three nodes up (pids ${nodes.map((n) => n.pid).join(", ")})`);
    await produceRows(harness, nodes, single, work, sizes, log);
    await latencyRows(harness, nodes, sizes, log);
    nodes = await rereplicationRow(harness, nodes, sizes, log);
    nodes = await failoverRow(harness, nodes, sizes, log);
  } finally {
    await stopCluster(nodes);
  }
}

async function produceRows(
  harness: GroupHarness,
  nodes: TestBroker[],
  single: { pid: number; port: number },
  work: string,
  sizes: ClusterSizes,
  log: (m: string) => void,
): Promise<void> {
  const partitions = 6;
  const producers = 4;
  const leader = nodes[0]!;
  const spec = (port: number, topic: string, acks: number): ProduceSpec => ({
    mode: "produce",
    host: "127.0.0.1",
    port,
    topic,
    partitions,
    connections: producers,
    messageBytes: 1024,
    batchBytes: sizes.batchBytes,
    compression: "none",
    acks,
    window: sizes.window,
    durationMs: sizes.produceMs,
  });
  const replicated: Array<ProduceResult & { cores: number }> = [];
  const alone: Array<ProduceResult & { cores: number }> = [];
  const jetstream: PeerRun[] = [];
  const measure = async (pid: number, s: ProduceSpec) => {
    const before = cpuSeconds(pid);
    const result = await runLoadgen<ProduceResult>(s);
    return { ...result, cores: (cpuSeconds(pid) - before) / result.seconds };
  };
  const nats = await startJetStreamCluster(work, log);
  try {
    await harness.repeat(async (run) => {
      const name = `rf-${run + 1}`;
      await createTopic(single.port, `${name}-single`, partitions);
      await createPlaced(
        leader,
        name,
        Array.from({ length: partitions }, () => [1, 2, 3]),
      );
      await fullIsr(nodes, name, partitions);
      const one = await measure(single.pid, spec(single.port, `${name}-single`, 1));
      const three = await measure(leader.pid, spec(leader.port, name, -1));
      const r3 =
        nats.servers.length === 0
          ? null
          : await jetStreamPublish(nats.driver, nats.servers[0]!.port, {
              stream: "R3",
              messages: sizes.peerMessages1KiB,
              messageBytes: 1024,
              publishers: producers,
              window: JETSTREAM_WINDOW,
              replicas: 3,
            });
      log(
        `cluster produce run ${run < 0 ? "warm-up" : run + 1}: RF 3 acks=all ${three.payloadMBPerSec.toFixed(0)} MB/s, RF 1 acks=1 ${one.payloadMBPerSec.toFixed(0)} MB/s` +
          (r3 === null ? "" : `, JetStream R3 ${r3.payloadMBPerSec.toFixed(0)} MB/s`),
      );
      await deleteTopic(single.port, `${name}-single`);
      await deleteTopic(leader.port, name);
      if (run < 0) return;
      replicated.push(three);
      alone.push(one);
      if (r3 !== null) jetstream.push(r3);
    });
  } finally {
    for (const server of nats.servers) await server.stop();
  }
  const label = (what: string) =>
    `${what}: 1 KiB msgs, ${producers} producers, ${partitions} parts, none, ${sizes.produceMs / 1000} s`;
  const rf3Row = {
    section: "cluster",
    label: label("RF 3, acks=all, min.insync 2, 3 nodes on one machine"),
    unit: "MB/s",
    better: "higher" as const,
    brokerCores: summarize(replicated.map((r) => r.cores)).median,
  };
  harness.figure(
    {
      ...rf3Row,
      id: "cluster.produce.rf3.MBps",
      limitId: "cluster.produce.rf1.MBps",
      limitName: "RF 1",
      detail: replicated,
    },
    replicated.map((r) => r.payloadMBPerSec),
  );
  harness.figure(
    {
      id: "cluster.produce.rf1.MBps",
      section: "cluster",
      label: label("RF 1, acks=1, one node"),
      unit: "MB/s",
      better: "higher",
      brokerCores: summarize(alone.map((r) => r.cores)).median,
      detail: alone,
    },
    alone.map((r) => r.payloadMBPerSec),
  );
  const r3Row = {
    id: "cluster.produce.jetstream-r3.MBps",
    section: "cluster",
    unit: "MB/s",
    better: "higher" as const,
    label: `NATS JetStream R3 publish: 1 KiB msgs, ${producers} publishers (Go, async, ${JETSTREAM_WINDOW} acks in flight each), file storage, 3 servers on one machine, ${sizes.peerMessages1KiB} msgs`,
  };
  if (nats.missing !== null) {
    harness.missing(r3Row, nats.missing);
    return;
  }
  harness.figure(
    { ...r3Row, detail: jetstream },
    jetstream.map((r) => r.payloadMBPerSec),
  );
  harness.figure(
    {
      ...rf3Row,
      id: "cluster.produce.rf3.vs-jetstream-r3.MBps",
      label: `${rf3Row.label} ÷ JetStream R3 (same runs)`,
      limitId: r3Row.id,
      limitName: "JetStream R3",
    },
    replicated.map((r) => r.payloadMBPerSec),
  );
}

/**
 * Three nats-servers in one JetStream cluster, and the Go driver built, when they are
 * installed; otherwise no servers and why (for the row).
 */
async function startJetStreamCluster(
  work: string,
  log: (m: string) => void,
): Promise<{ servers: Server[]; driver: string; missing: string | null }> {
  const driver = join(work, "jsbench-cluster");
  const missing = missingPeer("jetstream");
  if (missing !== null) return { servers: [], driver, missing };
  const seconds = await buildJetStreamDriver(driver, work);
  const servers = await startNatsCluster([1, 2, 3].map((i) => join(work, `nats-cluster-${i}`)));
  log(
    `cluster: JetStream driver built in ${seconds.toFixed(1)} s; nats-servers ${servers.map((s) => `pid ${s.pid} on ${s.port}`).join(", ")}`,
  );
  return { servers, driver, missing: null };
}

async function latencyRows(
  harness: GroupHarness,
  nodes: TestBroker[],
  sizes: ClusterSizes,
  log: (m: string) => void,
): Promise<void> {
  const rate = 10 * MB;
  const leader = nodes[0]!;
  const runs: LatencyResult[] = [];
  await harness.repeat(async (run) => {
    const topic = `latency-rf3-${run + 1}`;
    await createPlaced(leader, topic, [[1, 2, 3]]);
    await fullIsr(nodes, topic, 1);
    const result = await runLoadgen<LatencyResult>({
      mode: "latency",
      host: "127.0.0.1",
      port: leader.port,
      topic,
      messageBytes: 1024,
      rateBytesPerSec: rate,
      durationMs: sizes.latencyMs,
      acks: -1,
    });
    await deleteTopic(leader.port, topic);
    log(
      `cluster latency run ${run < 0 ? "warm-up" : run + 1}: p50 ${result.p50Ms.toFixed(2)} p99 ${result.p99Ms.toFixed(2)} p99.9 ${result.p999Ms.toFixed(2)} ms`,
    );
    if (run >= 0) runs.push(result);
  });
  for (const [p, key] of [
    ["p50", "p50Ms"],
    ["p99", "p99Ms"],
    ["p99.9", "p999Ms"],
  ] as const) {
    harness.figure(
      {
        id: `cluster.latency.rf3.10MBps.${p}`,
        section: "cluster",
        unit: "ms",
        better: "lower",
        label: `produce → long-poll consumer ${p}, 10 MB/s of 1 KiB msgs, RF 3, acks=all`,
        detail: p === "p50" ? runs : undefined,
      },
      runs.map((r) => r[key]),
    );
  }
}

async function rereplicationRow(
  harness: GroupHarness,
  nodes: TestBroker[],
  sizes: ClusterSizes,
  log: (m: string) => void,
): Promise<TestBroker[]> {
  const leader = nodes[0]!;
  const topic = "refill";
  await createPlaced(leader, topic, [[1, 2, 3]]);
  await fullIsr(nodes, topic, 1);
  await runLoadgen<ProduceResult>({
    mode: "produce",
    host: "127.0.0.1",
    port: leader.port,
    topic,
    partitions: 1,
    connections: 1,
    messageBytes: 1024,
    batchBytes: sizes.batchBytes,
    compression: "none",
    acks: -1,
    window: sizes.window,
    payloadBytesTarget: sizes.rereplicateBytes,
  });
  const filled = await caughtUp(leader, topic, [2, 3]);
  const bytes = filled.sizeBytes ?? 0;
  const seconds: number[] = [];
  const writeSeconds: number[] = [];
  await harness.repeat(async (run) => {
    const index = nodes.findIndex((n) => n.nodeId === 3);
    const follower = nodes[index]!;
    await follower.kill();
    rmSync(follower.dataDir, { recursive: true, force: true });
    // The leader must have let it go first: until then its ISR still shows it caught up.
    await eventually(
      "the killed follower out of the ISR",
      async () => !(await partitionsOf(leader, topic))[0]?.isr.includes(3),
      60_000,
    );
    // The bare write frees its pages just before the copy, as the emptied data dir
    // freed the follower's just before the bare write: both start from the same state.
    writeSeconds.push(bareWrite(join(follower.dataDir, "..", `bare-write-${run + 1}`), bytes));
    const started = performance.now();
    const back = await startBroker({
      command: [EXECUTABLE],
      readyMs: READY_MS,
      dataDir: follower.dataDir,
      ports: portsOf(follower),
      args: ["--node-id", "3", "--join", leader.gossip],
    });
    nodes[index] = back;
    await caughtUp(leader, topic, [3]);
    const took = (performance.now() - started) / 1000;
    log(
      `cluster re-replication run ${run < 0 ? "warm-up" : run + 1}: ${(bytes / MB).toFixed(0)} MB in ${took.toFixed(1)} s`,
    );
    if (run >= 0) seconds.push(took);
    else writeSeconds.pop();
    await whole(leader, 3, 3, [back]);
  });
  await deleteTopic(leader.port, topic);
  harness.figure(
    {
      id: "cluster.barewrite.MBps",
      section: "cluster",
      unit: "MB/s",
      better: "higher",
      label: `the harness writing the same ${(bytes / MB).toFixed(0)} MB into a new file (1 MiB pwrites), just before each copy`,
    },
    writeSeconds.map((s) => bytes / MB / s),
  );
  harness.figure(
    {
      id: "cluster.rereplicate.MBps",
      section: "cluster",
      unit: "MB/s",
      better: "higher",
      limitId: "consume.hot.MBps",
      limitName: "drain",
      label: `a follower from an empty data dir copies ${(bytes / MB).toFixed(0)} MB (from its start to the leader's log end)`,
      detail: seconds.map((s) => ({ seconds: s, bytes })),
    },
    seconds.map((s) => bytes / MB / s),
  );
  harness.figure(
    {
      id: "cluster.rereplicate.bare.MBps",
      section: "cluster",
      unit: "MB/s",
      better: "higher",
      limitId: "cluster.barewrite.MBps",
      limitName: "bare write",
      label: "the same copy, set beside the bare write of its bytes",
    },
    seconds.map((s) => bytes / MB / s),
  );
  return nodes;
}

/** Seconds to write `bytes` into a new file at `path` in 1 MiB pwrites; the file is removed. */
function bareWrite(path: string, bytes: number): number {
  const chunk = new Uint8Array(1024 * 1024).fill(0x5a);
  const fd = openSync(path, "w");
  const started = performance.now();
  try {
    for (let at = 0; at < bytes; at += chunk.byteLength)
      writeFully(fd, chunk.subarray(0, Math.min(chunk.byteLength, bytes - at)), at);
    return (performance.now() - started) / 1000;
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
}

async function failoverRow(
  harness: GroupHarness,
  nodes: TestBroker[],
  sizes: ClusterSizes,
  log: (m: string) => void,
): Promise<TestBroker[]> {
  // Leaders on every node, as a cluster usually has them: each follower then already
  // long-polls each other node when a leadership moves there.
  await createPlaced(nodes[0]!, "failover-spread", [
    [1, 2, 3],
    [2, 3, 1],
    [3, 1, 2],
  ]);
  await fullIsr(nodes, "failover-spread", 3);
  const kills: Array<{ ms: number; controller: boolean }> = [];
  for (let kill = 0; kill < sizes.failoverKills; kill++) {
    // Every other kill takes the controller with the partition leader.
    const controllerId = (await clusterView(nodes[0]!)).controller;
    const hitController = kill % 2 === 0 && controllerId !== null;
    const victim = hitController
      ? nodes.find((n) => n.nodeId === controllerId)!
      : nodes.find((n) => n.nodeId !== controllerId)!;
    const index = nodes.indexOf(victim);
    const survivors = nodes.filter((n) => n !== victim);
    const topic = `failover-${kill + 1}`;
    await createPlaced(survivors[0]!, topic, [[victim.nodeId, ...survivors.map((n) => n.nodeId)]]);
    await fullIsr(nodes, topic, 1);
    const clients = await Promise.all(survivors.map((n) => RawClient.connect(n.port)));
    const killedAt = performance.now();
    await victim.kill();
    const ms = await firstAck(clients, topic, killedAt);
    for (const client of clients) client.close();
    kills.push({ ms, controller: hitController });
    log(
      `cluster failover ${kill + 1}/${sizes.failoverKills}: leader ${victim.nodeId}${hitController ? " (the controller)" : ""} killed, writable again after ${ms.toFixed(0)} ms`,
    );
    nodes[index] = await startBroker({
      command: [EXECUTABLE],
      readyMs: READY_MS,
      dataDir: victim.dataDir,
      ports: portsOf(victim),
      args: ["--node-id", String(victim.nodeId), "--join", survivors[0]!.gossip],
    });
    await whole(survivors[0]!, 3, 3, [nodes[index]!]);
    await fullIsr(nodes, topic, 1);
    await deleteTopic(survivors[0]!.port, topic);
  }
  const times = kills.map((k) => k.ms);
  const base = { section: "cluster", unit: "ms", better: "lower" as const };
  harness.figure(
    {
      ...base,
      id: "cluster.failover.ms",
      detail: kills,
      label: `leader SIGKILL → first acks=all acknowledgement from the new leader, ${times.length} kills, every other one of the controller too (median, min–max)`,
    },
    times,
  );
  harness.figure(
    {
      ...base,
      id: "cluster.failover.max.ms",
      label: `the slowest of those ${times.length} failovers`,
      hidden: true,
    },
    [Math.max(...times)],
  );
  return nodes;
}

/** Produces one record with acks=all to the survivors every 10 ms until one acknowledges; ms since `since`. */
async function firstAck(clients: RawClient[], topic: string, since: number): Promise<number> {
  const deadline = since + 60_000;
  while (performance.now() < deadline) {
    for (const client of clients) {
      try {
        const records = buildBatch({
          records: [{ value: new TextEncoder().encode("probe") }],
          baseTimestamp: Date.now(),
        });
        const answer = await client.request(PRODUCE, 9, {
          transactionalId: null,
          acks: -1,
          timeoutMs: 2000,
          topicData: [{ name: topic, partitionData: [{ index: 0, records }] }],
        });
        if (answer.responses[0].partitionResponses[0].errorCode === 0)
          return performance.now() - since;
      } catch {
        // A survivor that is not serving yet; ask again.
      }
    }
    await Bun.sleep(10);
  }
  throw new Error(`${topic}: no acknowledgement within 60 s of the leader's death`);
}

/** CreateTopics with manual assignments (the first replica leads) and min.insync.replicas 2. */
async function createPlaced(
  node: TestBroker,
  name: string,
  assignments: number[][],
): Promise<void> {
  const client = await RawClient.connect(node.port);
  try {
    const answer = await client.request(CREATE_TOPICS, 7, {
      topics: [
        {
          name,
          numPartitions: -1,
          replicationFactor: -1,
          assignments: assignments.map((brokerIds, partitionIndex) => ({
            partitionIndex,
            brokerIds,
          })),
          configs: [{ name: "min.insync.replicas", value: "2" }],
        },
      ],
      timeoutMs: 30_000,
    });
    const topic = answer.topics[0];
    if (topic.errorCode !== 0)
      throw new Error(
        `CreateTopics ${name} failed: error ${topic.errorCode} ${topic.errorMessage ?? ""}`,
      );
  } finally {
    client.close();
  }
}

/**
 * Waits until every partition's ISR is full and its leader (one of `nodes`) has heard
 * from each follower. A new partition's ISR is full from the start, before the followers
 * have even opened their logs, and a measurement begun then would time their start-up.
 */
async function fullIsr(nodes: TestBroker[], topic: string, count: number): Promise<void> {
  await eventually(
    `${topic}: every ISR full, every follower fetching`,
    async () => {
      const partitions = await partitionsOf(nodes[0]!, topic);
      if (partitions.length !== count || partitions.some((p) => p.isr.length !== p.replicas.length))
        return false;
      for (const p of partitions) {
        const leader = nodes.find((node) => node.nodeId === p.leader);
        if (leader === undefined) return false;
        const states = (await partitionsOf(leader, topic))[p.partition]?.replicaStates;
        if (states == null || states.some((r) => r.logEndOffset === null)) return false;
      }
      return true;
    },
    60_000,
  );
}

/** Waits until the leader (`node`) sees these replicas at its log end and in the ISR. */
async function caughtUp(node: TestBroker, topic: string, replicas: number[]) {
  return await eventually(
    `${topic}: replicas ${replicas} at the leader's log end`,
    async () => {
      const [p] = await partitionsOf(node, topic);
      if (p === undefined || p.replicaStates === null) return null;
      const done = replicas.every(
        (id) => p.isr.includes(id) && p.replicaStates!.find((r) => r.nodeId === id)?.lag === 0,
      );
      return done ? p : null;
    },
    600_000,
  );
}
