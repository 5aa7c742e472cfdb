/**
 * The controller's side of AlterPartition, as Kafka's KRaft controller plans it
 * (ReplicationControlManager): a partition leader asks to change the ISR, and the
 * controller decides. The ISR is what an election picks from and what acks=all waits
 * for, so a leader must not act on a smaller ISR (acknowledge writes that only the
 * smaller set holds) before the controller has committed it: otherwise the controller
 * could elect a removed replica that lacks those writes. Only the controller writes the
 * ISR, and it must refuse a change that was based on a state which no longer holds: a
 * fenced old leader (stale leader epoch), or a leader whose view of the ISR predates a
 * change the controller made meanwhile (fencing a broker shrank the ISR). The partition
 * epoch, bumped by every change of the partition, tells the second case apart: a request
 * carries the epoch its view was based on, and any other epoch is refused.
 *
 * Pure planning: the records are written by the caller, as for `planCommand`.
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import { assert } from "../util/assert.ts";
import { effectiveMinIsr, nextElr } from "./eligible-leaders.ts";
import type { MetadataImage, MetadataRecord, PartitionImage } from "./metadata-image.ts";

export interface AlterPartitionRequest {
  /** The leader asking. */
  readonly brokerId: number;
  readonly topicId: string;
  readonly partition: number;
  /** The leader's epoch. */
  readonly leaderEpoch: number;
  /** The partition epoch the leader's ISR view is based on. */
  readonly partitionEpoch: number;
  readonly newIsr: readonly number[];
}

export type AlterPartitionError =
  | "unknownTopicOrPartition"
  | "notLeader"
  | "fencedLeaderEpoch"
  | "unknownLeaderEpoch"
  | "invalidUpdateVersion"
  | "ineligibleReplica"
  | "invalidRequest";

export type AlterPartitionResult =
  | {
      readonly ok: true;
      readonly leader: number;
      readonly leaderEpoch: number;
      readonly partitionEpoch: number;
      readonly isr: readonly number[];
    }
  // partitionEpoch: the controller's current one (-1 when the partition is unknown), so the leader can tell
  // whether the state its request was based on is still current.
  | {
      readonly ok: false;
      readonly error: AlterPartitionError;
      readonly partitionEpoch: number;
      readonly message: string;
    };

/** The partition epoch answered for a partition the controller does not know. */
const UNKNOWN_PARTITION_EPOCH = -1;

/** The answer to `request` against `image`, and the records that commit it (none unless it changes the ISR). */
export function planAlterPartition(
  image: MetadataImage,
  request: AlterPartitionRequest,
): { result: AlterPartitionResult; records: MetadataRecord[] } {
  const { brokerId, topicId, partition: index, newIsr } = request;
  const topic = image.topicById(topicId);
  const partition = topic?.partitions[index];
  if (topic === undefined || partition === undefined) {
    const message = `Unknown partition ${index} of topic id ${topicId}`;
    return refuse("unknownTopicOrPartition", UNKNOWN_PARTITION_EPOCH, message);
  }
  assert(partition.partition === index, "Partition image out of place");
  const fail = (error: AlterPartitionError, message: string) =>
    refuse(error, partition.partitionEpoch, message);
  // The leader epoch first: a fenced old leader is told it is fenced whatever it asks.
  if (request.leaderEpoch < partition.leaderEpoch) {
    return fail(
      "fencedLeaderEpoch",
      `Leader epoch ${request.leaderEpoch} is older than ${partition.leaderEpoch}`,
    );
  }
  if (request.leaderEpoch > partition.leaderEpoch) {
    return fail(
      "unknownLeaderEpoch",
      `Leader epoch ${request.leaderEpoch} is newer than ${partition.leaderEpoch}`,
    );
  }
  if (brokerId !== partition.leader) {
    return fail(
      "notLeader",
      `Broker ${brokerId} is not the leader of the partition (${partition.leader} is)`,
    );
  }
  // Before the partition epoch: a leader whose earlier request was committed but whose
  // answer was lost retries with its old partition epoch; it must learn the new one.
  if (sameMembers(newIsr, partition.isr)) return { result: current(partition), records: [] };
  if (request.partitionEpoch !== partition.partitionEpoch) {
    return fail(
      "invalidUpdateVersion",
      `Partition epoch ${request.partitionEpoch} is not the current ${partition.partitionEpoch}`,
    );
  }
  const problem = isrProblem(partition, newIsr);
  if (problem !== null) return fail("invalidRequest", problem);
  // Only additions must be live: the ISR may always shrink away from a fenced broker (a
  // leader dropping a dead follower), but one the controller believes dead must not join
  // it on a leader's stale word, or the controller could elect it when it returns.
  for (const id of newIsr) {
    if (partition.isr.includes(id)) continue;
    const broker = image.broker(id);
    if (broker === undefined || broker.fenced) {
      return fail(
        "ineligibleReplica",
        `Replica ${id} is ${broker === undefined ? "not registered" : "fenced"}`,
      );
    }
  }
  const { replicas, leader, leaderEpoch } = partition;
  const partitionEpoch = partition.partitionEpoch + 1;
  const isr = [...newIsr];
  // A follower dropped for lag while the ISR is below the minimum still holds every
  // committed write (the high watermark stopped moving), so it may lead (ELR).
  const elr = nextElr(partition, isr, effectiveMinIsr(topic, partition));
  const record: MetadataRecord = {
    type: "partition",
    topicId,
    partition: index,
    replicas: [...replicas],
    leader,
    leaderEpoch,
    isr,
    partitionEpoch,
    ...(elr.length === 0 ? {} : { elr }),
  };
  const result: AlterPartitionResult = {
    ok: true,
    leader,
    leaderEpoch,
    partitionEpoch,
    isr: [...isr],
  };
  return { result, records: [record] };
}

/** Kafka error code for each AlterPartitionError (src/protocol/error-codes.ts has ErrorCode). */
export function alterPartitionErrorCode(error: AlterPartitionError): number {
  switch (error) {
    case "unknownTopicOrPartition":
      return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
    case "notLeader":
      return ErrorCode.NOT_LEADER_OR_FOLLOWER;
    case "fencedLeaderEpoch":
      return ErrorCode.FENCED_LEADER_EPOCH;
    case "unknownLeaderEpoch":
      return ErrorCode.UNKNOWN_LEADER_EPOCH;
    case "invalidUpdateVersion":
      return ErrorCode.INVALID_UPDATE_VERSION;
    case "ineligibleReplica":
      return ErrorCode.INELIGIBLE_REPLICA;
    case "invalidRequest":
      return ErrorCode.INVALID_REQUEST;
  }
}

/** Null when `newIsr` is a possible ISR of the partition. */
function isrProblem(partition: PartitionImage, newIsr: readonly number[]): string | null {
  if (newIsr.length === 0) return "The ISR cannot be empty";
  if (new Set(newIsr).size !== newIsr.length)
    return `The ISR [${newIsr.join(", ")}] lists a replica twice`;
  const outsider = newIsr.find((id) => !partition.replicas.includes(id));
  if (outsider !== undefined) return `Broker ${outsider} is not a replica of the partition`;
  // The leader is the one replica known to hold every write it acknowledged.
  if (!newIsr.includes(partition.leader))
    return `The ISR must contain the leader ${partition.leader}`;
  return null;
}

function current(partition: PartitionImage): AlterPartitionResult {
  const { leader, leaderEpoch, partitionEpoch } = partition;
  return { ok: true, leader, leaderEpoch, partitionEpoch, isr: [...partition.isr] };
}

function refuse(
  error: AlterPartitionError,
  partitionEpoch: number,
  message: string,
): { result: AlterPartitionResult; records: MetadataRecord[] } {
  return { result: { ok: false, error, partitionEpoch, message }, records: [] };
}

function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  const members = new Set(a);
  return members.size === a.length && a.length === b.length && b.every((id) => members.has(id));
}
