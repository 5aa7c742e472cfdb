/**
 * The JSON shapes of the admin API, built from the node's parts on each request: the
 * metadata image (topics, partitions, brokers), the partition logs (offsets, sizes), the
 * group coordinator and the offset store. Nothing here is cached: every view is the
 * state at the time of the request. `/metrics` reads the same consumer lag as
 * `GET /v1/groups/:id`, through `groupOffsets`.
 */
import type { BrokerServices } from "../api/services.ts";
import type { ClusterStatus, MemberStatus, QuorumStatus } from "../cluster/cluster-status.ts";
import type { TopicImage } from "../cluster/metadata-image.ts";
import type { GroupCoordinator } from "../coordinator/group-coordinator.ts";
import type { OffsetStore } from "../coordinator/offset-store.ts";
import { type AssignedTopic, decodeConsumerAssignment } from "./consumer-assignment.ts";

/** What the admin API reads and writes. Built by `src/node.ts`; tests build a real one. */
export interface AdminNode {
  readonly services: BrokerServices;
  readonly coordinator: GroupCoordinator;
  readonly offsets: OffsetStore;
  /** Open Kafka protocol connections. */
  readonly connectionCount: () => number;
  /** Those not reading until their client takes the answers queued for it. */
  readonly pausedConnectionCount: () => number;
  /** SWIM and Raft as this node sees them; absent on a node that runs alone. */
  readonly cluster?: ClusterStatus;
}

export interface TopicSummary {
  name: string;
  topicId: string;
  internal: boolean;
  partitionCount: number;
  replicationFactor: number;
}

export interface PartitionView {
  partition: number;
  leader: number;
  leaderEpoch: number;
  replicas: number[];
  isr: number[];
  /** Eligible leader replicas: out of the ISR, but known to hold everything committed. */
  elr: number[];
  /** The log's numbers; null when this node holds no replica of the partition. */
  logStartOffset: number | null;
  highWatermark: number | null;
  /** Equals the high watermark until transactions exist. */
  lastStableOffset: number | null;
  /** This node's log end; null when it holds no replica. */
  logEndOffset: number | null;
  sizeBytes: number | null;
  /**
   * Each replica's log end and lag behind the leader's, as the leader knows them (a
   * follower's from its last fetch; null before one). Null on a node that does not lead
   * the partition: ask the leader.
   */
  replicaStates: Array<{ nodeId: number; logEndOffset: number | null; lag: number | null }> | null;
}

export interface TopicView extends TopicSummary {
  /** Overrides only; everything else has Kafka's default. */
  configs: Record<string, string>;
  partitions: PartitionView[];
}

export function topicSummary(topic: TopicImage): TopicSummary {
  return {
    name: topic.name,
    topicId: topic.topicId,
    internal: topic.internal,
    partitionCount: topic.partitions.length,
    replicationFactor: topic.partitions[0]?.replicas.length ?? 0,
  };
}

export function topicView(services: BrokerServices, topic: TopicImage): TopicView {
  return {
    ...topicSummary(topic),
    configs: Object.fromEntries([...topic.configs].sort(([a], [b]) => (a < b ? -1 : 1))),
    partitions: topic.partitions.map((partition): PartitionView => {
      const log = services.logs.get(topic.name, partition.partition);
      return {
        partition: partition.partition,
        leader: partition.leader,
        leaderEpoch: partition.leaderEpoch,
        replicas: [...partition.replicas],
        isr: [...partition.isr],
        elr: [...partition.elr],
        logStartOffset: log?.logStartOffset ?? null,
        highWatermark: log?.highWatermark ?? null,
        lastStableOffset: log?.highWatermark ?? null,
        logEndOffset: log?.logEndOffset ?? null,
        sizeBytes: log?.sizeBytes() ?? null,
        replicaStates: services.replicas.replicaStates(topic.name, partition.partition),
      };
    }),
  };
}

/**
 * Partitions without a leader, cluster-wide as this node's image has them (the same on
 * every node that has caught up): their leader died and no other ISR member is live.
 */
export function offlinePartitions(services: BrokerServices): number {
  let count = 0;
  for (const topic of services.image.topics()) {
    for (const partition of topic.partitions) if (partition.leader < 0) count++;
  }
  return count;
}

/** Partitions this node leads whose ISR lacks some replica. */
export function underReplicatedPartitions(services: BrokerServices): number {
  let count = 0;
  for (const topic of services.image.topics()) {
    for (const partition of topic.partitions) {
      if (partition.leader !== services.nodeId) continue;
      if (partition.replicas.some((replica) => !partition.isr.includes(replica))) count++;
    }
  }
  return count;
}

export interface ClusterView {
  clusterId: string;
  nodeId: number;
  /** The metadata controller (the Raft leader); null during an election. */
  controller: number | null;
  /** Registered brokers; fenced ones are those the controller saw die. */
  brokers: Array<{
    nodeId: number;
    host: string;
    port: number;
    rack: string | null;
    fenced: boolean;
  }>;
  /** Membership as SWIM reports it; a node alone lists itself, alive. */
  members: MemberStatus[];
  /** The metadata quorum from this node; null on a node that runs alone. */
  quorum: QuorumStatus | null;
}

export function clusterView(node: AdminNode): ClusterView {
  const { services, cluster } = node;
  const quorum = cluster?.quorum() ?? null;
  const self = services.image.broker(services.nodeId);
  const alone: MemberStatus = {
    nodeId: services.nodeId,
    state: "alive",
    incarnation: 0,
    gossip: "",
    kafka: self === undefined ? "" : `${self.host}:${self.port}`,
    admin: "",
    self: true,
  };
  return {
    clusterId: services.clusterId,
    nodeId: services.nodeId,
    controller: quorum === null ? services.nodeId : quorum.leader,
    brokers: services.image
      .brokers()
      .map(({ nodeId, host, port, rack, fenced }) => ({ nodeId, host, port, rack, fenced })),
    members: cluster?.members() ?? [alone],
    quorum,
  };
}

export interface GroupSummary {
  groupId: string;
  state: string;
  protocolType: string;
  memberCount: number;
}

export interface GroupOffsetView {
  topic: string;
  partition: number;
  committedOffset: number;
  /** Null when the partition no longer exists or has no log on this node. */
  highWatermark: number | null;
  /** High watermark minus committed offset; null when the high watermark is unknown. */
  lag: number | null;
  metadata: string;
}

export interface GroupMemberView {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  /** Decoded ConsumerProtocol assignment; [] before one is given; null if not decodable. */
  assignment: AssignedTopic[] | null;
}

export interface GroupView {
  groupId: string;
  state: string;
  protocolType: string;
  /** The selected protocol (assignor) while the group is Stable, else "". */
  protocol: string;
  generationId: number;
  leaderId: string | null;
  members: GroupMemberView[];
  offsets: GroupOffsetView[];
  /** Sum of the known lags. */
  totalLag: number;
}

export function groupSummaries(node: AdminNode): GroupSummary[] {
  return node.coordinator
    .listGroups()
    .map((overview) => ({
      groupId: overview.groupId,
      state: overview.state,
      protocolType: overview.protocolType,
      memberCount: node.coordinator.describeGroup(overview.groupId)?.members.length ?? 0,
    }))
    .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0));
}

/** Committed offsets of a group with lag = high watermark − committed offset. */
export function groupOffsets(node: AdminNode, groupId: string): GroupOffsetView[] {
  return node.offsets.list(groupId).map((entry) => {
    const log = node.services.logs.get(entry.topic, entry.partition);
    const highWatermark = log?.highWatermark ?? null;
    return {
      topic: entry.topic,
      partition: entry.partition,
      committedOffset: entry.offset,
      highWatermark,
      lag: highWatermark === null ? null : highWatermark - entry.offset,
      metadata: entry.metadata,
    };
  });
}

/** Undefined when the coordinator does not know the group. */
export function groupView(node: AdminNode, groupId: string): GroupView | undefined {
  const description = node.coordinator.describeGroup(groupId);
  if (description === undefined) return undefined;
  const consumer = description.protocolType === "consumer";
  const offsets = groupOffsets(node, groupId);
  return {
    groupId,
    state: description.state,
    protocolType: description.protocolType,
    protocol: description.protocolName,
    generationId: description.generationId,
    leaderId: description.leaderId,
    members: description.members.map((member) => ({
      memberId: member.memberId,
      groupInstanceId: member.groupInstanceId,
      clientId: member.clientId,
      clientHost: member.clientHost,
      assignment:
        consumer || member.assignment.byteLength === 0
          ? decodeConsumerAssignment(member.assignment)
          : null,
    })),
    offsets,
    totalLag: offsets.reduce((sum, offset) => sum + (offset.lag ?? 0), 0),
  };
}
