/**
 * Produce (key 0), v3-v11.
 * v3 brought RecordBatch v2 (magic 2) and transactional ids; v0-v2 can only carry the
 * old message formats, which Brook does not store, so such requests close the
 * connection. ApiVersions still advertises v0 as the minimum, as Kafka 4 does
 * (KAFKA-18659): librdkafka up to 2.x decides whether it may compress gzip, snappy and
 * lz4 by looking for Produce v0 in that range, and silently sends uncompressed batches
 * otherwise. v5 adds log start offset; v8 record errors and an error message; v9 is
 * flexible; v10 the current-leader and node-endpoint tags (sent on NOT_LEADER).
 * acks=0 gets no response at all; acks=1 is answered once the batch is in the leader's
 * page cache; acks=-1 once the whole ISR has it (the high watermark passed it), and
 * needs at least min.insync.replicas in the ISR before (NOT_ENOUGH_REPLICAS) and after
 * (NOT_ENOUGH_REPLICAS_AFTER_APPEND); timeout_ms bounds the wait (REQUEST_TIMED_OUT).
 * Appends go through the replica manager (src/replication/), which knows whether this
 * node leads the partition now.
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  ProduceRequest,
  ProduceResponse,
  type ProduceResponsePartitionProduceResponse,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import type { AppendErrorKind } from "../storage/log-manager.ts";
import { StorageIoError } from "../storage/partition-log.ts";
import { logger } from "../util/log.ts";
import { defineHandler, NO_RESPONSE } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

const log = logger("produce");

type PartitionResponse = Encodable<ProduceResponsePartitionProduceResponse>;

export function appendErrorCode(kind: AppendErrorKind): number {
  switch (kind) {
    case "corrupt":
      return ErrorCode.CORRUPT_MESSAGE;
    case "unsupportedMagic":
      return ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT;
    case "tooLarge":
      return ErrorCode.MESSAGE_TOO_LARGE;
    case "invalidRecord":
      return ErrorCode.INVALID_RECORD;
  }
}

function failed(index: number, errorCode: number, errorMessage: string | null): PartitionResponse {
  return {
    index,
    errorCode,
    errorMessage,
    baseOffset: -1,
    logAppendTimeMs: -1,
    logStartOffset: -1,
  };
}

export function createProduceHandler(services: BrokerServices) {
  return defineHandler({
    request: ProduceRequest,
    response: ProduceResponse,
    versions: [3, 11],
    advertisedMinVersion: 0,
    handle(request) {
      const acks = request.acks;
      const validAcks = acks === 0 || acks === 1 || acks === -1;
      /** acks=all answers that wait for the ISR, by where they go in the response. */
      const commits: Array<{ index: number; response: PartitionResponse; wait: Promise<number> }> =
        [];
      const responses = request.topicData.map((topicData) => {
        const topic = services.image.topic(topicData.name);
        return {
          name: topicData.name,
          partitionResponses: topicData.partitionData.map((data): PartitionResponse => {
            if (!validAcks)
              return failed(
                data.index,
                ErrorCode.INVALID_REQUIRED_ACKS,
                `Acks must be 0, 1 or -1: ${acks}`,
              );
            const partition = topic?.partitions[data.index];
            if (topic === undefined || partition === undefined) {
              return failed(data.index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, null);
            }
            if (data.records === null || data.records.byteLength === 0) {
              return failed(data.index, ErrorCode.CORRUPT_MESSAGE, "No records");
            }
            let result;
            try {
              result = services.replicas.appendAsLeader(topic.name, data.index, data.records, acks);
            } catch (error) {
              if (!(error instanceof StorageIoError)) throw error;
              log.error("Append failed", {
                topic: topic.name,
                partition: data.index,
                error: error.message,
              });
              return failed(data.index, ErrorCode.KAFKA_STORAGE_ERROR, error.message);
            }
            if (!result.ok) {
              return "errorCode" in result
                ? failed(data.index, result.errorCode, result.message)
                : failed(data.index, appendErrorCode(result.kind), result.message);
            }
            const messages = result.lastOffset - result.baseOffset + 1;
            services.metrics.recordProduce(topic.name, data.records.byteLength, messages);
            const response: PartitionResponse = {
              index: data.index,
              errorCode: ErrorCode.NONE,
              baseOffset: result.baseOffset,
              logAppendTimeMs: result.logAppendTimeMs,
              logStartOffset: result.logStartOffset,
            };
            if (acks === -1) {
              const wait = services.replicas.waitForCommit(
                topic.name,
                data.index,
                result.lastOffset + 1,
                request.timeoutMs,
              );
              commits.push({ index: data.index, response, wait });
            }
            return response;
          }),
        };
      });
      if (acks === 0) return NO_RESPONSE;
      if (commits.length === 0) return { responses, throttleTimeMs: 0 };
      // acks=all: answered once every ISR member has each batch (or it failed). A batch
      // that did not commit keeps its offset out of the answer, as Kafka's do.
      return Promise.all(
        commits.map(async ({ index, response, wait }) => {
          const errorCode = await wait;
          if (errorCode === ErrorCode.NONE) return;
          Object.assign(response, failed(index, errorCode, null));
        }),
      ).then(() => ({ responses, throttleTimeMs: 0 }));
    },
  });
}
