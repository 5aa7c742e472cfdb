/**
 * OffsetDelete (key 47), v0 (KIP-496).
 *
 * Deletes a group's committed offsets for some partitions. An Empty group loses any;
 * a consumer group with members keeps those of topics a member subscribes to
 * (GROUP_SUBSCRIBED_TO_TOPIC, read from the ConsumerProtocol subscriptions); any other
 * group with members is NON_EMPTY_GROUP. A partition that does not exist is
 * UNKNOWN_TOPIC_OR_PARTITION. A group-level error leaves the topic list empty.
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import type { TopicPartition } from "../coordinator/offset-store.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  OffsetDeleteRequest,
  OffsetDeleteResponse,
  type OffsetDeleteResponseOffsetDeleteResponsePartition,
} from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import { logger } from "../util/log.ts";

const log = logger("offset-delete");

export function createOffsetDeleteHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: OffsetDeleteRequest,
    response: OffsetDeleteResponse,
    versions: [0, 0],
    async handle(request) {
      const check = deps.coordinator.validateOffsetDelete(request.groupId);
      if (check.error !== null) {
        return { errorCode: groupErrorCode(check.error), throttleTimeMs: 0, topics: [] };
      }
      const eligible: TopicPartition[] = [];
      const deleted: OffsetDeleteResponseOffsetDeleteResponsePartition[] = [];
      const topics = request.topics.map((topic) => {
        const subscribed = check.isSubscribed(topic.name);
        return {
          name: topic.name,
          partitions: topic.partitions.map(({ partitionIndex }) => {
            const answer: OffsetDeleteResponseOffsetDeleteResponsePartition = {
              partitionIndex,
              errorCode: ErrorCode.NONE,
            };
            if (!deps.partitionExists(topic.name, partitionIndex)) {
              answer.errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
            } else if (subscribed) {
              answer.errorCode = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC;
            } else {
              eligible.push({ topic: topic.name, partition: partitionIndex });
              deleted.push(answer);
            }
            return answer;
          }),
        };
      });
      if (eligible.length > 0) {
        try {
          await deps.offsets.delete(request.groupId, eligible);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          log.error("Deleting offsets failed", { group: request.groupId, error: message });
          for (const answer of deleted) answer.errorCode = ErrorCode.COORDINATOR_NOT_AVAILABLE;
        }
      }
      return { errorCode: ErrorCode.NONE, throttleTimeMs: 0, topics };
    },
  });
}
