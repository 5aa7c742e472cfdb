/**
 * Topic lifecycle as metadata records: creation (with name, partition count,
 * replication factor and config validation), partition growth and deletion. Handlers of
 * CreateTopics, Metadata auto-creation, CreatePartitions, DeleteTopics and the admin API
 * all come here, so the rules live once. Results are values; Kafka codes come from the
 * caller's mapping of `TopicError`.
 */
import { randomUUID } from "node:crypto";
import { ErrorCode } from "../protocol/error-codes.ts";
import { assert } from "../util/assert.ts";
import { type Random, systemRandom } from "../util/random.ts";
import {
  type AlterPartitionRequest,
  type AlterPartitionResult,
  alterPartitionErrorCode,
  planAlterPartition,
} from "./alter-partition.ts";
import { planBrokerFenced, planBrokerUnfenced } from "./broker-lifecycle.ts";
import { MetadataImage, type MetadataRecord, type TopicImage } from "./metadata-image.ts";
import { logConfigProblem, validateTopicConfig } from "./topic-config.ts";

/** Kafka's limit: a topic name plus partition suffix must fit a file name. */
export const TOPIC_NAME_LENGTH_MAX = 249;
export const PARTITIONS_MAX = 10_000;

export type TopicError =
  | { kind: "invalidName"; message: string }
  | { kind: "exists"; message: string }
  | { kind: "unknown"; message: string }
  | { kind: "invalidPartitions"; message: string }
  | { kind: "invalidReplicationFactor"; message: string }
  | { kind: "invalidReplicaAssignment"; message: string }
  | { kind: "invalidConfig"; message: string }
  | { kind: "invalidRequest"; message: string }
  /** No controller could take the change now (election, unreachable); clients retry. */
  | { kind: "notController"; message: string }
  /** A partition leader's ISR change refused; `result` says why and what the controller holds. */
  | { kind: "alterPartition"; message: string; result: AlterPartitionResult & { ok: false } };

export function topicErrorCode(error: TopicError): number {
  switch (error.kind) {
    case "invalidName":
      return ErrorCode.INVALID_TOPIC_EXCEPTION;
    case "exists":
      return ErrorCode.TOPIC_ALREADY_EXISTS;
    case "unknown":
      return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
    case "invalidPartitions":
      return ErrorCode.INVALID_PARTITIONS;
    case "invalidReplicationFactor":
      return ErrorCode.INVALID_REPLICATION_FACTOR;
    case "invalidReplicaAssignment":
      return ErrorCode.INVALID_REPLICA_ASSIGNMENT;
    case "invalidConfig":
      return ErrorCode.INVALID_CONFIG;
    case "invalidRequest":
      return ErrorCode.INVALID_REQUEST;
    case "notController":
      return ErrorCode.NOT_CONTROLLER;
    case "alterPartition":
      return alterPartitionErrorCode(error.result.error);
  }
}

/** Null when Kafka would accept the name. */
export function topicNameProblem(name: string): string | null {
  if (name.length === 0) return "Topic name is empty";
  if (name === "." || name === "..") return `Topic name cannot be "." or "..": ${name}`;
  if (name.length > TOPIC_NAME_LENGTH_MAX)
    return `Topic name longer than ${TOPIC_NAME_LENGTH_MAX} characters`;
  if (!/^[a-zA-Z0-9._-]+$/.test(name))
    return `Topic name has characters other than [a-zA-Z0-9._-]: ${name}`;
  return null;
}

/**
 * A change of metadata, as the controller receives it. It is planned against the
 * controller's image at the moment it is written (`planCommand`), never against a
 * possibly stale image of the node that received the request: two nodes creating one
 * name at once must not both succeed.
 */
export type MetadataCommand =
  | { kind: "createTopic"; request: CreateTopicRequest; internal?: boolean }
  | { kind: "createPartitions"; name: string; count: number }
  | { kind: "deleteTopic"; topicId: string }
  /** `incarnation`: the broker's process says it started anew (see planRegisterBroker). */
  | {
      kind: "registerBroker";
      nodeId: number;
      host: string;
      port: number;
      rack: string | null;
      incarnation?: string;
      /**
       * This process started after a machine crash and may have lost writes it had not
       * synced (src/storage/shutdown-marker.ts): it leaves every ISR and ELR it can.
       */
      lossy?: boolean;
    }
  /** SWIM declared the broker dead: fence it and move its leaderships. */
  | { kind: "fenceBroker"; nodeId: number }
  /** The broker is alive again: unfence it and give back leaderless partitions. */
  | { kind: "unfenceBroker"; nodeId: number }
  /** A partition leader asks to change its ISR (alter-partition.ts). */
  | { kind: "alterPartition"; request: AlterPartitionRequest };

export type CommandResult = { ok: true } | { ok: false; error: TopicError };

/**
 * Writes metadata: plans the command on the controller, appends its records to the
 * metadata log and resolves once this node's image has applied them.
 */
export interface MetadataWriter {
  submit(command: MetadataCommand): Promise<CommandResult>;
}

/** The records of a command against `image`, or why it cannot be done. */
export function planCommand(
  image: MetadataImage,
  command: MetadataCommand,
  defaults: TopicDefaults,
  random: Random = systemRandom,
): PlanResult {
  switch (command.kind) {
    case "createTopic":
      return planCreateTopic(image, command.request, defaults, command.internal === true, random);
    case "createPartitions":
      return planCreatePartitions(image, command.name, command.count, random);
    case "fenceBroker":
      return { ok: true, records: planBrokerFenced(image, command.nodeId) };
    case "unfenceBroker":
      return { ok: true, records: planBrokerUnfenced(image, command.nodeId) };
    case "alterPartition": {
      const { result, records } = planAlterPartition(image, command.request);
      return result.ok
        ? { ok: true, records }
        : { ok: false, error: { kind: "alterPartition", message: result.message, result } };
    }
    case "deleteTopic": {
      const topic = image.topicById(command.topicId);
      return planDeleteTopic(topic, command.topicId);
    }
    case "registerBroker":
      return { ok: true, records: planRegisterBroker(image, command) };
  }
}

/**
 * A broker says it runs and where it listens. A (re)registration unfences it and gives
 * back the partitions that waited for it. A new incarnation (the broker's process
 * restarted, perhaps faster than SWIM noticed) is handled as a death and a return in one
 * entry: fenced first (it leaves every ISR where others remain, its leaderships move or
 * pause), then registered and unfenced, so every partition it leads gets a leader epoch
 * its new process has never led in (src/replication/replica-manager.ts relies on that).
 * A broker whose incarnation is not known yet (registered by the controller's SWIM pass)
 * is treated the same way: nothing says this process did not lead before. A `lossy`
 * restart (after a machine crash) is fenced as broker-lifecycle.ts describes: it leaves
 * the ELR, and even the ISR as its last member when an ELR member can lead instead.
 */
export function planRegisterBroker(
  image: MetadataImage,
  command: MetadataCommand & { kind: "registerBroker" },
): MetadataRecord[] {
  const { nodeId, host, port, rack, incarnation, lossy } = command;
  const known = image.broker(nodeId);
  const restarted =
    incarnation !== undefined && known !== undefined && known.incarnation !== incarnation;
  const registration: MetadataRecord = {
    type: "registerBroker",
    nodeId,
    host,
    port,
    rack,
    ...(incarnation === undefined ? {} : { incarnation }),
  };
  if (restarted) {
    const scratch = new MetadataImage();
    for (const record of image.toRecords()) scratch.apply(record);
    const records = planBrokerFenced(scratch, nodeId, { lossy: lossy === true });
    for (const record of records) scratch.apply(record);
    records.push(
      registration,
      ...planBrokerUnfenced(scratch, nodeId).filter((r) => r.type !== "unfenceBroker"),
    );
    return records;
  }
  if (known !== undefined && known.host === host && known.port === port && known.rack === rack) {
    return known.fenced ? planBrokerUnfenced(image, nodeId) : [];
  }
  const records: MetadataRecord[] = [registration];
  if (known?.fenced === true)
    records.push(...planBrokerUnfenced(image, nodeId).filter((r) => r.type !== "unfenceBroker"));
  return records;
}

export interface CreateTopicRequest {
  name: string;
  /** -1: the broker default. */
  numPartitions: number;
  /** -1: the broker default. */
  replicationFactor: number;
  configs: ReadonlyArray<{ name: string; value: string | null }>;
  /**
   * Manual replica assignment (CreateTopics' assignments): each partition's replicas in
   * order, the first its preferred leader. Partition count and replication factor then
   * follow from it.
   */
  assignments?: ReadonlyArray<readonly number[]>;
}

export interface TopicDefaults {
  numPartitions: number;
  replicationFactor: number;
}

export type CreatePlan =
  | {
      ok: true;
      records: MetadataRecord[];
      topicId: string;
      numPartitions: number;
      replicationFactor: number;
    }
  | { ok: false; error: TopicError };

/** Checks a creation and builds its records; nothing is written. */
export function planCreateTopic(
  image: MetadataImage,
  request: CreateTopicRequest,
  defaults: TopicDefaults,
  internal = false,
  random: Random = systemRandom,
): CreatePlan {
  const nameProblem = topicNameProblem(request.name);
  if (nameProblem !== null)
    return { ok: false, error: { kind: "invalidName", message: nameProblem } };
  if (image.topic(request.name) !== undefined) {
    return {
      ok: false,
      error: { kind: "exists", message: `Topic '${request.name}' already exists.` },
    };
  }
  const assignments = request.assignments ?? null;
  if (assignments !== null) {
    const problem = assignmentProblem(image, assignments);
    if (problem !== null)
      return { ok: false, error: { kind: "invalidReplicaAssignment", message: problem } };
  }
  const numPartitions =
    assignments !== null
      ? assignments.length
      : request.numPartitions === -1
        ? defaults.numPartitions
        : request.numPartitions;
  if (!Number.isInteger(numPartitions) || numPartitions < 1 || numPartitions > PARTITIONS_MAX) {
    return {
      ok: false,
      error: {
        kind: "invalidPartitions",
        message: `Number of partitions must be in [1, ${PARTITIONS_MAX}]: ${numPartitions}`,
      },
    };
  }
  const replicationFactor =
    assignments !== null
      ? assignments[0]!.length
      : request.replicationFactor === -1
        ? defaults.replicationFactor
        : request.replicationFactor;
  const brokers = image.liveBrokers();
  if (assignments === null && (replicationFactor < 1 || replicationFactor > brokers.length)) {
    return {
      ok: false,
      error: {
        kind: "invalidReplicationFactor",
        message: `Replication factor ${replicationFactor} must be in [1, ${brokers.length}] (live brokers)`,
      },
    };
  }
  const seen = new Set<string>();
  for (const config of request.configs) {
    if (seen.has(config.name)) {
      return {
        ok: false,
        error: { kind: "invalidRequest", message: `Config ${config.name} given twice` },
      };
    }
    seen.add(config.name);
    const problem = validateTopicConfig(config.name, config.value);
    if (problem !== null) return { ok: false, error: { kind: "invalidConfig", message: problem } };
  }
  const overrides = new Map(
    request.configs.filter((c) => c.value !== null).map((c) => [c.name, c.value!]),
  );
  const storageProblem = logConfigProblem(overrides);
  if (storageProblem !== null)
    return { ok: false, error: { kind: "invalidConfig", message: storageProblem } };
  const topicId = randomUUID();
  const records: MetadataRecord[] = [{ type: "topic", name: request.name, topicId, internal }];
  for (const config of request.configs) {
    if (config.value !== null)
      records.push({ type: "config", topicId, name: config.name, value: config.value });
  }
  if (assignments === null)
    records.push(...partitionRecords(image, topicId, 0, numPartitions, replicationFactor, random));
  else
    records.push(
      ...assignments.map((replicas, partition) =>
        newPartition(image, topicId, partition, replicas),
      ),
    );
  return { ok: true, records, topicId, numPartitions, replicationFactor };
}

/** Why a manual assignment cannot be taken (Kafka's INVALID_REPLICA_ASSIGNMENT), or null. */
function assignmentProblem(
  image: MetadataImage,
  assignments: ReadonlyArray<readonly number[]>,
): string | null {
  if (assignments.length < 1 || assignments.length > PARTITIONS_MAX)
    return `Assignments must name 1 to ${PARTITIONS_MAX} partitions`;
  const size = assignments[0]!.length;
  for (const replicas of assignments) {
    if (replicas.length !== size || size === 0)
      return "Every partition needs the same number of replicas";
    if (new Set(replicas).size !== size) return "A replica is named twice";
    const unknown = replicas.find((id) => image.broker(id) === undefined);
    if (unknown !== undefined) return `Unknown broker ${unknown}`;
    if (!replicas.some((id) => image.broker(id)?.fenced === false))
      return `No live broker among replicas [${replicas.join(", ")}]`;
  }
  return null;
}

/**
 * A new partition, as Kafka's controller makes one: every replica is empty, so each one
 * on a live (unfenced) broker is in sync from the start and the ISR is those replicas; the
 * first of them leads. Nothing is committed until all of them hold it (the leader counts a
 * follower it has not heard from at offset 0), so an election among them loses nothing,
 * and a replica whose broker dies is dropped from the ISR as any lagging follower is.
 */
function newPartition(
  image: MetadataImage,
  topicId: string,
  partition: number,
  replicas: readonly number[],
): MetadataRecord {
  const isr = replicas.filter((id) => image.broker(id)?.fenced === false);
  assert(isr.length > 0, "A new partition needs a live replica");
  return {
    type: "partition",
    topicId,
    partition,
    replicas: [...replicas],
    leader: isr[0]!,
    leaderEpoch: 0,
    isr,
    partitionEpoch: 0,
  };
}

/**
 * Replica placement as Kafka does without racks (AdminUtils.assignReplicasToBrokers):
 * partition p's first replica, its leader, is live broker (start + p) mod n from a
 * random start, so leaders spread evenly over the live brokers and different topics
 * do not all begin on the same one; the other replicas follow it with a shift that also
 * starts at random and grows every n partitions, so followers spread too.
 */
function partitionRecords(
  image: MetadataImage,
  topicId: string,
  from: number,
  to: number,
  replicationFactor: number,
  random: Random,
): MetadataRecord[] {
  const brokerIds = image.liveBrokers().map((broker) => broker.nodeId);
  const n = brokerIds.length;
  assert(n >= replicationFactor, "Placement needs as many live brokers as replicas");
  const start = random.int(0, n - 1);
  let shift = random.int(0, n - 1);
  const records: MetadataRecord[] = [];
  for (let partition = from; partition < to; partition++) {
    if (partition > from && (partition - from) % n === 0) shift += 1;
    const first = (start + partition) % n;
    const replicas = [brokerIds[first]!];
    for (let r = 1; r < replicationFactor; r++) {
      // Kafka's replicaIndex: skip the leader's own slot, wrap over the other n - 1.
      const step = 1 + ((shift + r - 1) % (n - 1));
      replicas.push(brokerIds[(first + step) % n]!);
    }
    records.push(newPartition(image, topicId, partition, replicas));
  }
  return records;
}

export type PlanResult = { ok: true; records: MetadataRecord[] } | { ok: false; error: TopicError };

export function planCreatePartitions(
  image: MetadataImage,
  name: string,
  count: number,
  random: Random = systemRandom,
): PlanResult {
  const topic = image.topic(name);
  if (topic === undefined)
    return { ok: false, error: { kind: "unknown", message: `Topic '${name}' does not exist` } };
  const current = topic.partitions.length;
  if (!Number.isInteger(count) || count <= current) {
    return {
      ok: false,
      error: {
        kind: "invalidPartitions",
        message: `Topic currently has ${current} partitions, ${count} would not be an increase.`,
      },
    };
  }
  if (count > PARTITIONS_MAX) {
    return {
      ok: false,
      error: {
        kind: "invalidPartitions",
        message: `Number of partitions must be at most ${PARTITIONS_MAX}`,
      },
    };
  }
  const replicationFactor = topic.partitions[0]?.replicas.length ?? 1;
  if (replicationFactor > image.liveBrokers().length) {
    return {
      ok: false,
      error: {
        kind: "invalidReplicationFactor",
        message: `Replication factor ${replicationFactor} is larger than the ${image.liveBrokers().length} live brokers`,
      },
    };
  }
  return {
    ok: true,
    records: partitionRecords(image, topic.topicId, current, count, replicationFactor, random),
  };
}

export function planDeleteTopic(topic: TopicImage | undefined, name: string): PlanResult {
  if (topic === undefined)
    return { ok: false, error: { kind: "unknown", message: `Topic '${name}' does not exist` } };
  return { ok: true, records: [{ type: "removeTopic", topicId: topic.topicId }] };
}
