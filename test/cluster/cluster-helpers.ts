/**
 * What the multi-node tests share: starting a cluster of real processes on loopback,
 * waiting for it to be whole, restarting a node, and reading partitions through the
 * admin API and kcat.
 */
import { expect } from "bun:test";
import { rmSync } from "node:fs";
import { eventually, portsOf, startBroker, type TestBroker } from "../helpers/broker.ts";
import { readPartition } from "../helpers/kcat.ts";
import type { PartitionView } from "../../src/admin/views.ts";

/** A partition as `GET /v1/topics/:name` shows it. */
export type { PartitionView } from "../../src/admin/views.ts";

interface ClusterView {
  /** The Raft leader; null during an election. */
  controller: number | null;
  brokers: Array<{ nodeId: number; port: number; fenced: boolean }>;
  quorum: { voters: number[] } | null;
}

export async function clusterView(node: TestBroker): Promise<ClusterView> {
  return (await (await fetch(`${node.adminUrl}/v1/cluster`)).json()) as ClusterView;
}

/**
 * Waits until `observer` sees `brokers` registered brokers and `voters` Raft voters, and
 * each of `present` registered, unfenced, at the Kafka port its current process listens
 * on. A node restarted on new ports is only back once that holds: until the cluster has
 * declared its old process dead, the old registration (soon fenced) is what counts.
 */
export async function whole(
  observer: TestBroker,
  brokers: number,
  voters: number,
  present: TestBroker[] = [],
): Promise<void> {
  await eventually(
    `${brokers} registered brokers and ${voters} voters`,
    async () => {
      const view = await clusterView(observer);
      const live = view.brokers.filter((b) => !b.fenced);
      const registered = present.every((node) =>
        live.some((b) => b.nodeId === node.nodeId && b.port === node.port),
      );
      return live.length === brokers && view.quorum?.voters.length === voters && registered;
    },
    30_000,
  );
}

/**
 * Starts nodes 1..count (2.. join 1) and waits until all are registered brokers and
 * Raft voters, so that the quorum survives the death of any one.
 */
export async function startCluster(
  count: number,
  options: { command?: string[]; readyMs?: number; dataDirOf?: (nodeId: number) => string } = {},
): Promise<TestBroker[]> {
  const start = (id: number, args: string[]) =>
    startBroker({
      args: ["--node-id", String(id), ...args],
      ...(options.command === undefined ? {} : { command: options.command }),
      ...(options.readyMs === undefined ? {} : { readyMs: options.readyMs }),
      ...(options.dataDirOf === undefined ? {} : { dataDir: options.dataDirOf(id) }),
    });
  const first = await start(1, []);
  const nodes = [first];
  for (let id = 2; id <= count; id++) nodes.push(await start(id, ["--join", first.gossip]));
  await whole(first, count, count);
  return nodes;
}

export async function stopCluster(nodes: readonly TestBroker[]): Promise<void> {
  for (const node of nodes) {
    await node.kill();
    rmSync(node.dataDir, { recursive: true, force: true });
  }
}

/**
 * The same node id on the same data dir, joining through `seed`; on the ports it had
 * when `samePorts` (as a service with fixed ports comes back). On new ports, the other
 * members take the new process only once SWIM has declared the old one dead, which
 * takes seconds (tens in the tail), and it cannot register with the controller before.
 */
export async function restart(
  node: TestBroker,
  seed: TestBroker,
  options: { samePorts?: boolean } = {},
): Promise<TestBroker> {
  return await startBroker({
    dataDir: node.dataDir,
    args: ["--node-id", String(node.nodeId), "--join", seed.gossip],
    ...(options.samePorts === true ? { ports: portsOf(node) } : {}),
  });
}

export async function partitionsOf(node: TestBroker, topic: string): Promise<PartitionView[]> {
  const response = await fetch(`${node.adminUrl}/v1/topics/${topic}`);
  if (response.status !== 200) return [];
  return ((await response.json()) as { partitions: PartitionView[] }).partitions;
}

/**
 * Creates a topic through `node`'s admin API. A 503 (no controller known there yet: a
 * node that has just come back) is asked again, as a client would.
 */
export async function createTopic(
  node: TestBroker,
  name: string,
  partitions: number,
  configs: Record<string, string>,
  replicationFactor = 3,
): Promise<void> {
  const status = await eventually(
    `${name} created`,
    async () => {
      const response = await fetch(`${node.adminUrl}/v1/topics`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, partitions, replicationFactor, configs }),
      });
      return response.status === 503 ? null : `${response.status} ${await response.text()}`;
    },
    20_000,
  );
  expect(status).toStartWith("201 ");
}

/** Waits until every partition's ISR holds all its replicas, as `observer` sees it. */
export async function fullIsr(
  observer: TestBroker,
  topic: string,
  count: number,
): Promise<PartitionView[]> {
  return await eventually(
    `${topic}: every ISR holds every replica`,
    async () => {
      const partitions = await partitionsOf(observer, topic);
      return partitions.length === count &&
        partitions.every((p) => p.isr.length === p.replicas.length)
        ? partitions
        : null;
    },
    30_000,
  );
}

/** offset → value, from a whole-partition read through `node` (kcat). */
export async function readBack(
  node: TestBroker,
  topic: string,
  partition: number,
): Promise<Map<number, string>> {
  return await readPartition(node.bootstrap, topic, partition);
}

/** The last `lines` lines each node logged, for the message of a failed wait. */
export function brokerLogs(nodes: readonly TestBroker[], lines = 60): string {
  return nodes
    .map(
      (node) => `--- node ${node.nodeId}:\n${node.stderr().split("\n").slice(-lines).join("\n")}`,
    )
    .join("\n");
}
