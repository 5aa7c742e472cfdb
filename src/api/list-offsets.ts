/**
 * ListOffsets (key 2), v0-v10.
 * v0 answers a list of old-style offsets; v1 one offset and timestamp; v2 isolation
 * level; v4 current leader epoch and the answer's leader epoch; v6 flexible; v7 max
 * timestamp (-3, KIP-734); v8 earliest local (-4, KIP-405: equals earliest without
 * tiered storage); v9 latest tiered (-5: none here, so -1); v10 a timeout (unused).
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  ListOffsetsRequest,
  ListOffsetsResponse,
  type ListOffsetsResponseListOffsetsPartitionResponse,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

export const LATEST_TIMESTAMP = -1;
export const EARLIEST_TIMESTAMP = -2;
export const MAX_TIMESTAMP = -3;
export const EARLIEST_LOCAL_TIMESTAMP = -4;
export const LATEST_TIERED_TIMESTAMP = -5;

type PartitionResponse = Encodable<ListOffsetsResponseListOffsetsPartitionResponse>;

export function createListOffsetsHandler(services: BrokerServices) {
  return defineHandler({
    request: ListOffsetsRequest,
    response: ListOffsetsResponse,
    versions: [0, 10],
    handle(request, context) {
      const answer = (
        partitionIndex: number,
        offset: number,
        timestamp: number,
        leaderEpoch: number,
      ): PartitionResponse => ({
        partitionIndex,
        errorCode: ErrorCode.NONE,
        oldStyleOffsets: context.apiVersion === 0 && offset >= 0 ? [offset] : [],
        offset,
        timestamp,
        leaderEpoch,
      });
      const failed = (partitionIndex: number, errorCode: number): PartitionResponse => ({
        partitionIndex,
        errorCode,
        offset: -1,
        timestamp: -1,
        leaderEpoch: -1,
      });
      // Kafka refuses a partition named twice in one request.
      const seen = new Map<string, number>();
      for (const wanted of request.topics) {
        for (const p of wanted.partitions) {
          const key = `${wanted.name}\u0000${p.partitionIndex}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
        }
      }
      return {
        throttleTimeMs: 0,
        topics: request.topics.map((wanted) => {
          const topic = services.image.topic(wanted.name);
          return {
            name: wanted.name,
            partitions: wanted.partitions.map((p): PartitionResponse => {
              if (seen.get(`${wanted.name}\u0000${p.partitionIndex}`)! > 1)
                return failed(p.partitionIndex, ErrorCode.INVALID_REQUEST);
              const image = topic?.partitions[p.partitionIndex];
              const log =
                topic === undefined ? undefined : services.logs.get(topic.name, p.partitionIndex);
              if (image === undefined)
                return failed(p.partitionIndex, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
              // Led elsewhere (or not at all): the client refreshes metadata and goes there.
              if (image.leader !== services.nodeId)
                return failed(p.partitionIndex, ErrorCode.NOT_LEADER_OR_FOLLOWER);
              if (log === undefined)
                return failed(p.partitionIndex, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
              if (p.currentLeaderEpoch >= 0 && p.currentLeaderEpoch !== image.leaderEpoch) {
                const code =
                  p.currentLeaderEpoch < image.leaderEpoch
                    ? ErrorCode.FENCED_LEADER_EPOCH
                    : ErrorCode.UNKNOWN_LEADER_EPOCH;
                return failed(p.partitionIndex, code);
              }
              const epoch = image.leaderEpoch;
              // Records above the high watermark are not committed: consumers never see them.
              const committed = <T extends { offset: number }>(found: T | null) =>
                found !== null && found.offset < log.highWatermark ? found : null;
              switch (p.timestamp) {
                case LATEST_TIMESTAMP:
                  return answer(p.partitionIndex, log.highWatermark, -1, epoch);
                case EARLIEST_TIMESTAMP:
                case EARLIEST_LOCAL_TIMESTAMP:
                  return answer(p.partitionIndex, log.logStartOffset, -1, epoch);
                case LATEST_TIERED_TIMESTAMP:
                  return answer(p.partitionIndex, -1, -1, -1);
                case MAX_TIMESTAMP: {
                  const found = committed(log.maxTimestamp());
                  return found === null
                    ? answer(p.partitionIndex, -1, -1, -1)
                    : answer(p.partitionIndex, found.offset, found.timestamp, epoch);
                }
                default: {
                  if (p.timestamp < 0) return failed(p.partitionIndex, ErrorCode.INVALID_REQUEST);
                  const found = committed(log.offsetForTimestamp(p.timestamp));
                  // No record at or after the timestamp: offset -1 (Kafka's "not found").
                  return found === null
                    ? answer(p.partitionIndex, -1, -1, -1)
                    : answer(p.partitionIndex, found.offset, found.timestamp, epoch);
                }
              }
            }),
          };
        }),
      };
    },
  });
}
