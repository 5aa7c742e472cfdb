/**
 * OffsetFetch (key 9), v0-v9.
 * v0 read offsets from ZooKeeper in old Kafka; here, as from v1, from the coordinator;
 * v2 a null topic list means every committed partition, and a top-level error code;
 * v3-v5 same as v2 (v5 adds the leader epoch to the response); v6 flexible; v7
 * requireStable (KIP-447); v8 several groups per request (KIP-709); v9 member id and
 * epoch per group, checked only for KIP-848 consumer groups.
 *
 * v9 is served: Brook hosts only classic groups, for which Kafka ignores the member id
 * and epoch too. requireStable has nothing to wait for while Brook has no transactional
 * offset commits. Topic ids arrive with v10, which the generated table does not have.
 *
 * As in Kafka, a group or partition without a commit is not an error: offset -1,
 * leader epoch -1, metadata "".
 *
 * The answer waits for the commits to the asked groups that were accepted but not yet
 * stored when the request arrived (CommitsInFlight in offset-commit.ts): a member taking
 * a partition over after a rebalance must see the previous owner's last commit.
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { CommitsInFlight } from "./offset-commit.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  OffsetFetchRequest,
  OffsetFetchResponse,
  type OffsetFetchResponseOffsetFetchResponsePartitions,
} from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";

const GROUPS_FROM_VERSION = 8;
const NO_OFFSET = -1;
const NO_LEADER_EPOCH = -1;

type PartitionAnswer = OffsetFetchResponseOffsetFetchResponsePartitions;

interface TopicAnswer {
  name: string;
  partitions: PartitionAnswer[];
}

export function createOffsetFetchHandler(
  deps: GroupHandlerDeps,
  inFlight: CommitsInFlight = new CommitsInFlight(),
) {
  const fetchGroup = (
    groupId: string,
    topics: readonly { name: string; partitionIndexes: number[] }[] | null,
  ): TopicAnswer[] => {
    if (topics === null) {
      const all: TopicAnswer[] = [];
      for (const committed of deps.offsets.list(groupId)) {
        let topic = all.at(-1);
        if (topic?.name !== committed.topic) {
          topic = { name: committed.topic, partitions: [] };
          all.push(topic);
        }
        topic.partitions.push({
          partitionIndex: committed.partition,
          committedOffset: committed.offset,
          committedLeaderEpoch: committed.leaderEpoch,
          metadata: committed.metadata,
          errorCode: ErrorCode.NONE,
        });
      }
      return all;
    }
    return topics.map((topic) => ({
      name: topic.name,
      partitions: topic.partitionIndexes.map((partitionIndex): PartitionAnswer => {
        const committed = deps.offsets.fetch(groupId, topic.name, partitionIndex);
        return {
          partitionIndex,
          committedOffset: committed?.offset ?? NO_OFFSET,
          committedLeaderEpoch: committed?.leaderEpoch ?? NO_LEADER_EPOCH,
          metadata: committed?.metadata ?? "",
          errorCode: ErrorCode.NONE,
        };
      }),
    }));
  };

  return defineHandler({
    request: OffsetFetchRequest,
    response: OffsetFetchResponse,
    versions: [0, 9],
    handle(request, context) {
      const grouped = context.apiVersion >= GROUPS_FROM_VERSION;
      const answer = () => {
        // Another node coordinates the group: NOT_COORDINATOR (v0-v1 have no top-level
        // error code; their partitions carry it, as Kafka answers them).
        const elsewhere = (groupId: string) => !deps.coordinator.coordinates(groupId);
        if (!grouped) {
          if (elsewhere(request.groupId)) {
            const topics = (request.topics ?? []).map((topic) => ({
              name: topic.name,
              partitions: topic.partitionIndexes.map((partitionIndex) => ({
                partitionIndex,
                committedOffset: NO_OFFSET,
                committedLeaderEpoch: NO_LEADER_EPOCH,
                metadata: "",
                errorCode: ErrorCode.NOT_COORDINATOR,
              })),
            }));
            return { throttleTimeMs: 0, topics, errorCode: ErrorCode.NOT_COORDINATOR };
          }
          return {
            throttleTimeMs: 0,
            topics: fetchGroup(request.groupId, request.topics),
            errorCode: ErrorCode.NONE,
          };
        }
        return {
          throttleTimeMs: 0,
          groups: request.groups.map((group) =>
            elsewhere(group.groupId)
              ? { groupId: group.groupId, topics: [], errorCode: ErrorCode.NOT_COORDINATOR }
              : {
                  groupId: group.groupId,
                  topics: fetchGroup(group.groupId, group.topics),
                  errorCode: ErrorCode.NONE,
                },
          ),
        };
      };
      const groupIds = grouped ? request.groups.map((group) => group.groupId) : [request.groupId];
      const stored = inFlight.settled(groupIds);
      return stored === null ? answer() : stored.then(answer);
    },
  });
}
