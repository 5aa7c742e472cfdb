/**
 * DeleteRecords (key 21), v0-v2.
 * v1 is v0 again (throttling after the response, KIP-219); v2 is flexible. Each
 * partition's offset becomes its new log start offset (offset -1: the high watermark);
 * segments wholly below it are deleted. Kafka's rules (Partition.deleteRecordsOnLeader):
 * an unknown partition is UNKNOWN_TOPIC_OR_PARTITION, a partition this node does not
 * lead NOT_LEADER_OR_FOLLOWER, a topic whose cleanup.policy lacks delete
 * POLICY_VIOLATION, an offset below 0 or above the high watermark OFFSET_OUT_OF_RANGE;
 * a lower offset than the current log start changes nothing. The answer's low
 * watermark is the log start afterwards (-1 on error). One node: no replica to wait
 * for, so timeoutMs is not used.
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  DeleteRecordsRequest,
  DeleteRecordsResponse,
  type DeleteRecordsResponseDeleteRecordsPartitionResult,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import { StorageIoError } from "../storage/partition-log.ts";
import { defineHandler } from "../server/handler.ts";
import { unreachable } from "../util/assert.ts";
import { logger } from "../util/log.ts";
import type { BrokerServices } from "./services.ts";

const log = logger("delete-records");

/** DeleteRecordsRequest.HIGH_WATERMARK: delete everything below the high watermark. */
export const HIGH_WATERMARK_OFFSET = -1;
/** DeleteRecordsResponse.INVALID_LOW_WATERMARK. */
const INVALID_LOW_WATERMARK = -1;

type PartitionResult = Encodable<DeleteRecordsResponseDeleteRecordsPartitionResult>;

function failed(partitionIndex: number, errorCode: number): PartitionResult {
  return { partitionIndex, errorCode, lowWatermark: INVALID_LOW_WATERMARK };
}

export function createDeleteRecordsHandler(services: BrokerServices) {
  return defineHandler({
    request: DeleteRecordsRequest,
    response: DeleteRecordsResponse,
    versions: [0, 2],
    handle(request) {
      const topics = request.topics.map((wanted) => {
        const topic = services.image.topic(wanted.name);
        return {
          name: wanted.name,
          partitions: wanted.partitions.map((p): PartitionResult => {
            const image = topic?.partitions[p.partitionIndex];
            const partitionLog =
              topic === undefined ? undefined : services.logs.get(topic.name, p.partitionIndex);
            if (image === undefined)
              return failed(p.partitionIndex, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
            if (image.leader !== services.nodeId)
              return failed(p.partitionIndex, ErrorCode.NOT_LEADER_OR_FOLLOWER);
            if (partitionLog === undefined)
              return failed(p.partitionIndex, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
            const offset =
              p.offset === HIGH_WATERMARK_OFFSET ? partitionLog.highWatermark : p.offset;
            let result;
            try {
              result = services.logs.deleteRecords(wanted.name, p.partitionIndex, offset);
            } catch (error) {
              if (!(error instanceof StorageIoError)) throw error;
              log.error("DeleteRecords failed", {
                topic: wanted.name,
                partition: p.partitionIndex,
                error: error.message,
              });
              return failed(p.partitionIndex, ErrorCode.KAFKA_STORAGE_ERROR);
            }
            if (result.ok)
              return {
                partitionIndex: p.partitionIndex,
                errorCode: ErrorCode.NONE,
                lowWatermark: result.logStartOffset,
              };
            switch (result.kind) {
              case "offsetOutOfRange":
                return failed(p.partitionIndex, ErrorCode.OFFSET_OUT_OF_RANGE);
              case "policyViolation":
                return failed(p.partitionIndex, ErrorCode.POLICY_VIOLATION);
              default:
                return unreachable(result.kind);
            }
          }),
        };
      });
      return { throttleTimeMs: 0, topics };
    },
  });
}
