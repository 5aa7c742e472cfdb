/**
 * OffsetForLeaderEpoch (key 23), v0-v4: where a leader epoch ends in the leader's log.
 * Followers ask it after a leader change to find where their log diverges (then cut
 * their tail); librdkafka and the Java client ask it to detect that a log was truncated
 * under them after a leader change (KIP-320). v1 adds the answer's leader epoch; v2 the
 * current leader epoch (fenced: FENCED_LEADER_EPOCH, ahead: UNKNOWN_LEADER_EPOCH); v3
 * the replica id; v4 is flexible. Only the leader answers (NOT_LEADER_OR_FOLLOWER
 * elsewhere), from its leader-epoch cache (src/replication/).
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  OffsetForLeaderEpochRequest,
  OffsetForLeaderEpochResponse,
} from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

export function createOffsetForLeaderEpochHandler(services: BrokerServices) {
  return defineHandler({
    request: OffsetForLeaderEpochRequest,
    response: OffsetForLeaderEpochResponse,
    versions: [0, 4],
    handle(request) {
      return {
        throttleTimeMs: 0,
        topics: request.topics.map((wanted) => ({
          topic: wanted.topic,
          partitions: wanted.partitions.map((p) => {
            if (services.image.topic(wanted.topic)?.partitions[p.partition] === undefined) {
              return {
                errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                partition: p.partition,
                leaderEpoch: -1,
                endOffset: -1,
              };
            }
            const answer = services.replicas.endOffsetForEpoch(
              wanted.topic,
              p.partition,
              p.currentLeaderEpoch,
              p.leaderEpoch,
            );
            return {
              errorCode: answer.errorCode,
              partition: p.partition,
              leaderEpoch: answer.epoch,
              endOffset: answer.endOffset,
            };
          }),
        })),
      };
    },
  });
}
