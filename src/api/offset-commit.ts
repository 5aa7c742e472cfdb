/**
 * OffsetCommit (key 8), v0-v9.
 * v1 the generation, the member id and a commit timestamp per partition; v2 a retention
 * time and no timestamp; v3-v4 same as v2; v5 no retention time (broker config only);
 * v6 the committed leader epoch (KIP-320); v7 the group instance id (KIP-345); v8
 * flexible; v9 usable by KIP-848 consumer groups, the request unchanged.
 *
 * v9 is served although Brook hosts no KIP-848 groups: for a classic group Kafka treats
 * v9 as v8 (the generation field holds the generation id), except that a commit with a
 * generation to a group that does not exist gets GROUP_ID_NOT_FOUND instead of
 * ILLEGAL_GENERATION. No member epochs are needed for that. Topic ids arrive with v10,
 * which the generated table does not have.
 *
 * Order of checks, as Kafka: a partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION
 * and is left out; if none is left the group is not consulted at all; else the group's
 * verdict (generation, member) applies to all; then metadata longer than
 * OFFSET_METADATA_LENGTH_MAX is OFFSET_METADATA_TOO_LARGE; the rest is stored as one.
 *
 * A commit the group accepted is in flight until the store has it (CommitsInFlight):
 * OffsetFetch waits for it, because the group may rebalance in the meantime.
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import { OFFSET_METADATA_LENGTH_MAX, type OffsetCommitEntry } from "../coordinator/offset-store.ts";
import { OffsetsStoreError } from "../coordinator/offsets-topic.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  OffsetCommitRequest,
  type OffsetCommitRequestOffsetCommitRequestPartition,
  OffsetCommitResponse,
  type OffsetCommitResponseOffsetCommitResponsePartition,
} from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import { logger } from "../util/log.ts";

const log = logger("offset-commit");

const TIMESTAMP_VERSION = 1;
const RETENTION_FROM_VERSION = 2;
const RETENTION_TO_VERSION = 4;
const GROUP_ID_NOT_FOUND_FROM_VERSION = 9;
/** Kafka's "use the broker's time / retention" value of the timestamp and retention fields. */
const DEFAULT_TIMESTAMP = -1;

/**
 * Commits the group accepted that the store has not finished, per group. In Kafka a
 * commit is stored before the group can form its next generation (the commit's append
 * and the join's completion are ordered by the coordinator), so a member that takes a
 * partition over reads the previous owner's last accepted commit. Here the store appends
 * asynchronously after the generation check, and the group can rebalance meanwhile; so
 * OffsetFetch waits for the commits to its groups in flight when it arrives (not for
 * later ones, so steady commits cannot hold a fetch back forever).
 */
export class CommitsInFlight {
  readonly #byGroup = new Map<string, Set<Promise<void>>>();

  /** Tracks a commit from its generation check until `storing` settles. */
  track(groupId: string, storing: Promise<void>): void {
    let commits = this.#byGroup.get(groupId);
    if (commits === undefined) {
      commits = new Set();
      this.#byGroup.set(groupId, commits);
    }
    commits.add(storing);
    const done = () => {
      commits.delete(storing);
      if (commits.size === 0 && this.#byGroup.get(groupId) === commits) {
        this.#byGroup.delete(groupId);
      }
    };
    storing.then(done, done);
  }

  /** Settles once every commit to these groups now in flight is stored or failed; null if none. */
  settled(groupIds: readonly string[]): Promise<void> | null {
    const waiting: Promise<void>[] = [];
    for (const groupId of new Set(groupIds)) waiting.push(...(this.#byGroup.get(groupId) ?? []));
    if (waiting.length === 0) return null;
    return Promise.allSettled(waiting).then(() => undefined);
  }
}

interface Pending {
  readonly topic: string;
  readonly request: OffsetCommitRequestOffsetCommitRequestPartition;
  readonly answer: OffsetCommitResponseOffsetCommitResponsePartition;
}

export function createOffsetCommitHandler(
  deps: GroupHandlerDeps,
  inFlight: CommitsInFlight = new CommitsInFlight(),
) {
  return defineHandler({
    request: OffsetCommitRequest,
    response: OffsetCommitResponse,
    versions: [0, 9],
    async handle(request, context) {
      const version = context.apiVersion;
      const pending: Pending[] = [];
      const topics = request.topics.map((topic) => ({
        name: topic.name,
        partitions: topic.partitions.map((partition) => {
          const answer: OffsetCommitResponseOffsetCommitResponsePartition = {
            partitionIndex: partition.partitionIndex,
            errorCode: ErrorCode.NONE,
          };
          if (!deps.partitionExists(topic.name, partition.partitionIndex)) {
            answer.errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
          } else if (!Number.isSafeInteger(partition.committedOffset)) {
            // Beyond 2^53 the wire's int64 does not survive as a number; no real
            // consumer gets there (285 years at a million messages a second).
            answer.errorCode = ErrorCode.INVALID_REQUEST;
          } else {
            pending.push({ topic: topic.name, request: partition, answer });
          }
          return answer;
        }),
      }));
      if (pending.length === 0) return { throttleTimeMs: 0, topics };

      const groupError = deps.coordinator.validateOffsetCommit({
        groupId: request.groupId,
        generationId: request.generationIdOrMemberEpoch,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId,
        unknownGroupError:
          version >= GROUP_ID_NOT_FOUND_FROM_VERSION ? "groupIdNotFound" : "illegalGeneration",
      });
      if (groupError !== null) {
        for (const each of pending) each.answer.errorCode = groupErrorCode(groupError);
        return { throttleTimeMs: 0, topics };
      }

      const nowMs = deps.coordinator.clock.nowMs();
      const retentionMs =
        version >= RETENTION_FROM_VERSION && version <= RETENTION_TO_VERSION
          ? request.retentionTimeMs
          : DEFAULT_TIMESTAMP;
      const entries: OffsetCommitEntry[] = [];
      const stored: Pending[] = [];
      for (const each of pending) {
        const metadata = each.request.committedMetadata ?? "";
        if (metadata.length > OFFSET_METADATA_LENGTH_MAX) {
          each.answer.errorCode = ErrorCode.OFFSET_METADATA_TOO_LARGE;
          continue;
        }
        const given =
          version === TIMESTAMP_VERSION ? each.request.commitTimestamp : DEFAULT_TIMESTAMP;
        const commitTimestampMs = given === DEFAULT_TIMESTAMP ? nowMs : given;
        const expires = retentionMs !== DEFAULT_TIMESTAMP;
        entries.push({
          topic: each.topic,
          partition: each.request.partitionIndex,
          offset: each.request.committedOffset,
          leaderEpoch: each.request.committedLeaderEpoch,
          metadata,
          commitTimestampMs,
          expireTimestampMs: expires ? commitTimestampMs + retentionMs : null,
        });
        stored.push(each);
      }
      if (entries.length > 0) {
        // Called at once (no await since the generation check), tracked until stored.
        const storing = (async () => deps.offsets.commit(request.groupId, entries))();
        inFlight.track(request.groupId, storing);
        try {
          await storing;
        } catch (error) {
          // Kafka answers a failed append to __consumer_offsets with a retriable error:
          // NOT_COORDINATOR when this node lost the partition, else COORDINATOR_NOT_AVAILABLE.
          const message = error instanceof Error ? error.message : String(error);
          log.error("Storing committed offsets failed", { group: request.groupId, error: message });
          const code =
            error instanceof OffsetsStoreError && error.notLeader
              ? ErrorCode.NOT_COORDINATOR
              : ErrorCode.COORDINATOR_NOT_AVAILABLE;
          for (const each of stored) each.answer.errorCode = code;
        }
      }
      return { throttleTimeMs: 0, topics };
    },
  });
}
