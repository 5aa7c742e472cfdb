/**
 * Wires one node together: data dir, metadata image and log, partition logs, Kafka
 * handlers, the Kafka listener and the admin API. Nothing here implements behaviour;
 * each part lives in its folder and this file only connects them (docs/conventions.md,
 * section 9: no god object).
 */
import { createAdminApp } from "./admin/app.ts";
import { BrokerMetrics } from "./admin/metrics.ts";
import { startAdminServer } from "./admin/server.ts";
import type { GroupHandlerDeps } from "./api/group-handlers.ts";
import { createRegistry } from "./api/index.ts";
import type { BrokerServices } from "./api/services.ts";
import { MetadataImage } from "./cluster/metadata-image.ts";
import { ClusterNode } from "./cluster/cluster-node.ts";
import { RAFT_TICK_MS } from "./cluster/raft/raft-node.ts";
import type { NodeConfig } from "./config/node-config.ts";
import { startKafkaListener } from "./server/listener.ts";
import { BootRecorder } from "./storage/boot-record.ts";
import { openDataDir } from "./storage/data-dir.ts";
import { LogManager } from "./storage/log-manager.ts";
import { systemClock } from "./util/clock.ts";
import { systemRandom } from "./util/random.ts";
import { systemTimers } from "./util/timers.ts";
import { GroupCoordinator } from "./coordinator/group-coordinator.ts";
import { LogOffsetStore } from "./coordinator/log-offset-store.ts";
import { OffsetRetention } from "./coordinator/offset-store.ts";
import { partitionForGroup } from "./coordinator/offset-records.ts";
import {
  logOffsetsTopic,
  OFFSETS_TOPIC,
  offsetsSettingsFromEnv,
} from "./coordinator/offsets-topic.ts";
import { logger } from "./util/log.ts";
import { randomUUID } from "node:crypto";
import type { MetadataWriter } from "./cluster/topics.ts";
import { FollowerFetcher } from "./replication/follower-fetcher.ts";
import { ReplicaManager } from "./replication/replica-manager.ts";

const log = logger("node");
const COORDINATOR_TICK_MS = 100;
/**
 * The storage cleaner's tick: flush.ms, compaction (a byte budget per tick), delayed file
 * deletion and checkpoints each tick; retention every RETENTION_CHECK_INTERVAL_MS_DEFAULT
 * (log.retention.check.interval.ms).
 */
const LOG_TICK_MS = 1000;
/** How often offsets retention notes which groups are Empty (it scans at its own interval). */
const OFFSETS_RETENTION_TICK_MS = 1000;
/** The replica manager's tick: ISR changes to propose (lag is judged in ms, not ticks). */
const REPLICA_TICK_MS = 100;
/** How long a registration that found no controller waits before it asks again. */
const REGISTER_RETRY_MS = 200;

export interface RunningNode {
  readonly nodeId: number;
  readonly kafkaPort: number;
  readonly adminPort: number;
  stop(): Promise<void>;
}

export interface StartNodeOptions {
  /** A condition found after start that the node cannot run with; default: exit 2. */
  onFatal?: (error: Error) => void;
}

export async function startNode(
  config: NodeConfig,
  offsetsSettings = offsetsSettingsFromEnv(process.env),
  options: StartNodeOptions = {},
): Promise<RunningNode> {
  const clock = systemClock;
  const meta = openDataDir(config.dataDir, config.nodeId, { joining: config.join.length > 0 });
  const nodeId = meta.nodeId;
  const image = new MetadataImage();
  const logs = new LogManager({ dataDir: config.dataDir, nodeId, clock, image, replicated: true });
  // After a machine crash this node may have lost unsynced writes: its registration says
  // so, and the controller stops counting it as holding what it was acknowledged with.
  const boot = new BootRecorder(logs.checkpointsDir, logs.startedAfterCleanShutdown);
  if (boot.lossy) log.warn("Started after a machine crash: unsynced writes may be lost", {});
  // A new incarnation at every start: the controller then gives every partition this
  // node led a new leader epoch before it leads again (src/replication/README.md).
  const incarnation = randomUUID();
  const writer: { submit: MetadataWriter["submit"] | null } = { submit: null };
  const replicas = new ReplicaManager({
    nodeId,
    incarnation,
    image,
    logs,
    clock,
    timers: systemTimers,
    submitAlterPartition: (request) =>
      writer.submit === null
        ? Promise.reject(new Error("No metadata writer yet"))
        : writer.submit({ kind: "alterPartition", request }),
    onFollowersChanged: () => queueMicrotask(() => fetcher.refresh()),
  });
  const fetcher = new FollowerFetcher({ nodeId, image, replicas, timers: systemTimers });
  const topicDefaults = { numPartitions: config.numPartitions, replicationFactor: 1 };
  const onFatal =
    options.onFatal ??
    ((error: Error) => {
      process.stderr.write(`brook: ${error.message}\n`);
      process.exit(2);
    });
  // The metadata log is the Raft log, even on one node (a cluster of one voter).
  const cluster = await ClusterNode.open({
    nodeId,
    dataDir: config.dataDir,
    meta,
    gossipBind: config.gossip,
    gossipAdvertiseHost: gossipAdvertiseHost(config),
    join: config.join,
    image,
    topicDefaults,
    voterCount: config.voters,
    clock,
    random: systemRandom,
    timers: systemTimers,
    onFatal,
  });
  const metadata = cluster.writer;
  writer.submit = (command) => metadata.submit(command);
  const raftTimer = setInterval(() => cluster.tick(), RAFT_TICK_MS);
  const replicaTimer = setInterval(() => replicas.tick(), REPLICA_TICK_MS);
  // Every log of the image is open: from here on a crash is an unclean stop.
  logs.startupComplete();
  // The driver owns the only storage timer; logs and the log manager take the clock.
  const logTimer = setInterval(() => logs.tick(), LOG_TICK_MS);

  let serving = false;
  const services: BrokerServices = {
    nodeId,
    // A joining node learns its cluster id from the cluster.
    get clusterId() {
      return cluster.clusterId ?? "";
    },
    controllerId: () => cluster.controllerId,
    image,
    metadata,
    logs,
    replicas,
    clock,
    autoCreateTopics: config.autoCreateTopics,
    topicDefaults,
    metrics: new BrokerMetrics({ clock, image }),
  };
  // Commits are records of __consumer_offsets, replayed here after the metadata log.
  const offsetsTopic = logOffsetsTopic({
    image,
    metadata,
    logs,
    replicas,
    segmentBytes: offsetsSettings.segmentBytes,
    replicationFactor: offsetsSettings.replicationFactor,
  });
  // A partition's commits and groups are read when this node comes to lead it.
  const offsets = new LogOffsetStore(offsetsTopic, clock, { loadAtStart: false });
  // A group belongs to the leader of its __consumer_offsets partition (Kafka's rule).
  const groupLeader = (groupId: string): number | null => {
    const topic = image.topic(OFFSETS_TOPIC);
    if (topic === undefined) return null;
    return topic.partitions[partitionForGroup(groupId, topic.partitions.length)]?.leader ?? null;
  };
  const coordinator = new GroupCoordinator({
    clock,
    random: systemRandom,
    groupHasOffsets: (groupId) => offsets.hasGroup(groupId),
    groupStore: offsets,
    ownsGroup: (groupId) =>
      replicas.leaderState(
        OFFSETS_TOPIC,
        partitionForGroup(groupId, offsetsTopic.partitionCount),
      ) !== null,
  });
  // Kafka's coordinator handover: the node that comes to lead a partition of
  // __consumer_offsets loads its groups from the log (Stable with their members, or
  // Empty; a group known only by its offsets comes back Empty); the node that stops
  // leading it forgets them. Done after the metadata apply that decided it.
  replicas.onLeadershipChange((topic, partition, leading) => {
    if (topic !== OFFSETS_TOPIC) return;
    queueMicrotask(() => {
      const leadsNow = replicas.leaderState(OFFSETS_TOPIC, partition) !== null;
      if (leadsNow !== leading) return; // changed again meanwhile; that change's task acts
      // What was known here of the partition's groups may be stale: drop it first.
      coordinator.unloadGroups(offsets.unloadPartition(partition));
      if (!leading) return;
      const { groups, groupIds } = offsets.loadPartition(partition);
      const restored = new Set(
        groups.filter((group) => coordinator.restoreGroup(group)).map((group) => group.groupId),
      );
      for (const groupId of groupIds)
        if (!restored.has(groupId)) coordinator.restoreEmptyGroup(groupId);
    });
  });
  // The driver owns the only timer; the coordinator itself is a state machine.
  const coordinatorTimer = setInterval(() => coordinator.tick(), COORDINATOR_TICK_MS);
  // Offsets retention: groups without members lose their offsets after the retention.
  const retention = new OffsetRetention(offsetsSettings);
  const expireOffsets = () => {
    const states = new Map(coordinator.listGroups().map((group) => [group.groupId, group.state]));
    const hasMembers = (groupId: string) => {
      const state = states.get(groupId);
      return state !== undefined && state !== "Empty" && state !== "Dead";
    };
    for (const { groupId, entries } of retention.check(offsets, hasMembers, clock.nowMs())) {
      offsets.expire(groupId, entries).catch((error: unknown) => {
        log.error("Expiring committed offsets failed; will retry", {
          group: groupId,
          error: String(error),
        });
      });
    }
  };
  expireOffsets();
  const retentionTimer = setInterval(expireOffsets, OFFSETS_RETENTION_TICK_MS);
  let advertised = { host: config.advertise.host, port: config.advertise.port };
  const groups: GroupHandlerDeps = {
    coordinator,
    offsets,
    self: () => ({ nodeId, host: advertised.host, port: advertised.port }),
    async coordinatorFor(groupId) {
      try {
        await offsetsTopic.ensure();
      } catch (error) {
        log.warn("__consumer_offsets not available", { error: String(error) });
        return null;
      }
      const leader = groupLeader(groupId);
      const broker = leader === null ? undefined : image.broker(leader);
      if (broker === undefined || broker.fenced) return null;
      return { nodeId: broker.nodeId, host: broker.host, port: broker.port };
    },
    partitionExists: (topic, partition) => image.topic(topic)?.partitions[partition] !== undefined,
    topicIdToName: (topicId) => image.topicById(topicId)?.name,
  };
  const registry = createRegistry(services, {
    brokerSettings: () => ({
      "broker.id": String(nodeId),
      "auto.create.topics.enable": String(config.autoCreateTopics),
      "num.partitions": String(config.numPartitions),
      "socket.request.max.bytes": String(config.socketRequestMaxBytes),
      "log.dirs": config.dataDir,
    }),
    groups,
  });
  // A node that restarts or joins answers Kafka requests only once its metadata image
  // has caught up with the leader's (until then it would say a topic does not exist).
  let caughtUp = cluster.whenMetadataCaughtUp();
  void caughtUp?.then(() => (caughtUp = null));
  const listener = await startKafkaListener({
    host: config.kafka.host,
    port: config.kafka.port,
    frameBytesMax: config.socketRequestMaxBytes,
    registry,
    observer: services.metrics,
    ready: () => caughtUp,
  });
  // A port of 0 (tests) advertises the port actually bound.
  advertised = {
    host: config.advertise.host,
    port: config.advertise.port === 0 ? listener.port : config.advertise.port,
  };
  const adminNode = {
    services,
    coordinator,
    offsets,
    connectionCount: () => listener.connectionCount(),
    pausedConnectionCount: () => listener.pausedConnectionCount(),
    cluster: cluster.status(),
  };
  const admin = await startAdminServer(
    config,
    createAdminApp({ isServing: () => serving, node: adminNode }),
  );
  await cluster.startMembership({
    kafka: advertised,
    admin: { host: gossipAdvertiseHost(config), port: admin.port },
  });
  // Every start registers this process's incarnation with the controller: until that is
  // in the image, this node leads nothing. A founding (or sole) node does it before it
  // serves, so that its first Metadata answer lists it; a joining node as soon as it
  // reaches the controller.
  const registration = {
    kind: "registerBroker" as const,
    nodeId,
    host: advertised.host,
    port: advertised.port,
    rack: null,
    incarnation,
    ...(boot.lossy ? { lossy: true } : {}),
  };
  let registering = true;
  const register = async (): Promise<void> => {
    while (registering && !replicas.registered) {
      const result = await metadata
        .submit(registration)
        .catch((error: unknown) => ({ ok: false as const, error: { message: String(error) } }));
      if (result.ok || replicas.registered) {
        boot.reported();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, REGISTER_RETRY_MS));
    }
  };
  if (cluster.controllerId === nodeId) await register();
  else void register();
  serving = true;
  const gossip = cluster.gossip!;
  log.info("Node serving", {
    nodeId,
    clusterId: cluster.clusterId ?? "(joining)",
    kafka: `${config.kafka.host}:${listener.port}`,
    advertise: `${advertised.host}:${advertised.port}`,
    admin: `${admin.host}:${admin.port}`,
    gossip: `${gossip.host}:${gossip.port}`,
  });

  return {
    nodeId,
    kafkaPort: listener.port,
    adminPort: admin.port,
    async stop() {
      serving = false;
      registering = false;
      clearInterval(replicaTimer);
      await fetcher.close();
      // Hand the controller role over and say goodbye while the timer still ticks Raft.
      await cluster.stop();
      clearInterval(raftTimer);
      clearInterval(coordinatorTimer);
      clearInterval(retentionTimer);
      clearInterval(logTimer);
      await admin.stop();
      await listener.stop();
      logs.flushAll();
      logs.close();
      log.info("Node stopped", { nodeId });
    },
  };
}

/** The host other nodes reach this one's gossip port at: --gossip's, or --advertise's for a wildcard. */
function gossipAdvertiseHost(config: NodeConfig): string {
  const host = config.gossip.host;
  return host === "0.0.0.0" || host === "::" || host === "" ? config.advertise.host : host;
}
