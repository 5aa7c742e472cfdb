/**
 * A real node's parts for in-process admin tests, without sockets: metadata image and
 * local metadata log, partition logs in a temporary data dir, group coordinator on a
 * manual clock, in-memory offset store, metrics. `src/node.ts` wires the same parts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrokerServices } from "../api/services.ts";
import { ReplicaManager } from "../replication/replica-manager.ts";
import { systemTimers } from "../util/timers.ts";
import { MetadataImage } from "../cluster/metadata-image.ts";
import { LocalMetadataLog } from "../cluster/metadata-log.ts";
import { GroupCoordinator } from "../coordinator/group-coordinator.ts";
import { MemoryOffsetStore } from "../coordinator/offset-store.ts";
import { LogManager } from "../storage/log-manager.ts";
import { ManualClock } from "../util/clock.ts";
import { SeededRandom } from "../util/random.ts";
import { createAdminApp } from "./app.ts";
import { BrokerMetrics } from "./metrics.ts";
import type { AdminNode } from "./views.ts";

export const TEST_NODE_ID = 1;
export const TEST_CLUSTER_ID = "test-cluster";

export interface TestAdminNode extends AdminNode {
  readonly clock: ManualClock;
  readonly offsets: MemoryOffsetStore;
  readonly app: ReturnType<typeof createAdminApp>;
  /** Open connections as the app reports them; tests set it. */
  connections: number;
  serving: boolean;
  close(): void;
}

export async function createTestAdminNode(): Promise<TestAdminNode> {
  const dataDir = mkdtempSync(join(tmpdir(), "brook-admin-test-"));
  const clock = new ManualClock();
  const image = new MetadataImage();
  const logs = new LogManager({ dataDir, nodeId: TEST_NODE_ID, clock, image, replicated: true });
  const topicDefaults = { numPartitions: 1, replicationFactor: 1 };
  const metadata = LocalMetadataLog.open({ dataDir, image, clock, topicDefaults });
  const replicas = new ReplicaManager({
    nodeId: TEST_NODE_ID,
    incarnation: "test",
    image,
    logs,
    clock,
    timers: systemTimers,
    submitAlterPartition: (request) => metadata.submit({ kind: "alterPartition", request }),
  });
  await metadata.submit({
    kind: "registerBroker",
    nodeId: TEST_NODE_ID,
    host: "127.0.0.1",
    port: 9092,
    rack: null,
    incarnation: "test",
  });
  const services: BrokerServices = {
    nodeId: TEST_NODE_ID,
    clusterId: TEST_CLUSTER_ID,
    image,
    metadata,
    logs,
    replicas,
    clock,
    autoCreateTopics: false,
    topicDefaults,
    metrics: new BrokerMetrics({ clock, image }),
  };
  const offsets = new MemoryOffsetStore();
  const coordinator = new GroupCoordinator({
    clock,
    random: new SeededRandom(7),
    groupHasOffsets: (groupId) => offsets.hasGroup(groupId),
  });
  const node = {
    services,
    coordinator,
    offsets,
    clock,
    connections: 0,
    serving: true,
    connectionCount: () => node.connections,
    pausedConnectionCount: () => 0,
    close() {
      logs.close();
      metadata.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  } as Omit<TestAdminNode, "app"> & { app?: TestAdminNode["app"] };
  node.app = createAdminApp({ isServing: () => node.serving, node });
  return node as TestAdminNode;
}
