/**
 * CreateTopics (key 19), v0-v7.
 * v1 validate_only; v2 throttle time; v4 default partitions and replication factor
 * (-1); v5 flexible, and the created topic's partitions, replication factor and configs
 * in the answer; v7 topic id. Manual replica assignments are placed as given (the
 * first replica leads) when they name registered brokers, at least one of them live
 * per partition, and agree with each other; INVALID_REPLICA_ASSIGNMENT otherwise.
 */
import { TOPIC_CONFIGS, topicConfigValue } from "../cluster/topic-config.ts";
import { planCreateTopic, topicErrorCode } from "../cluster/topics.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { CreateTopicsRequest, CreateTopicsResponse } from "../protocol/generated/index.ts";
import { ZERO_UUID } from "../protocol/reader.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";
import { CONFIG_SOURCE } from "./describe-configs.ts";

export function createCreateTopicsHandler(services: BrokerServices) {
  return defineHandler({
    request: CreateTopicsRequest,
    response: CreateTopicsResponse,
    versions: [0, 7],
    async handle(request) {
      const names = request.topics.map((t) => t.name);
      const results = [];
      for (const wanted of request.topics) {
        const base = {
          name: wanted.name,
          topicId: ZERO_UUID,
          numPartitions: -1,
          replicationFactor: -1,
          configs: null,
        };
        if (names.indexOf(wanted.name) !== names.lastIndexOf(wanted.name)) {
          results.push({
            ...base,
            errorCode: ErrorCode.INVALID_REQUEST,
            errorMessage: "Topic named more than once in the request",
          });
          continue;
        }
        const manual = wanted.assignments.length > 0;
        if (manual) {
          if (wanted.numPartitions !== -1 || wanted.replicationFactor !== -1) {
            results.push({
              ...base,
              errorCode: ErrorCode.INVALID_REQUEST,
              errorMessage: "Both assignments and partition count or replication factor given",
            });
            continue;
          }
          if (wanted.assignments.some((a, i) => a.partitionIndex !== i)) {
            results.push({
              ...base,
              errorCode: ErrorCode.INVALID_REPLICA_ASSIGNMENT,
              errorMessage: "Assignments must name partitions 0..n-1 in order",
            });
            continue;
          }
        }
        // Manual assignments are placed as given (checked by planCreateTopic).
        const topicRequest = {
          name: wanted.name,
          numPartitions: wanted.numPartitions,
          replicationFactor: wanted.replicationFactor,
          configs: wanted.configs,
          ...(manual ? { assignments: wanted.assignments.map((a) => a.brokerIds) } : {}),
        };
        // Checked here for a quick answer (and validate_only); the controller plans again.
        const plan = planCreateTopic(services.image, topicRequest, services.topicDefaults);
        if (!plan.ok) {
          results.push({
            ...base,
            errorCode: topicErrorCode(plan.error),
            errorMessage: plan.error.message,
          });
          continue;
        }
        let topicId = ZERO_UUID;
        if (!request.validateOnly) {
          const done = await services.metadata.submit({
            kind: "createTopic",
            request: topicRequest,
          });
          if (!done.ok) {
            results.push({
              ...base,
              errorCode: topicErrorCode(done.error),
              errorMessage: done.error.message,
            });
            continue;
          }
          topicId = services.image.topic(wanted.name)?.topicId ?? ZERO_UUID;
        }
        const overrides = new Map(
          wanted.configs.filter((c) => c.value !== null).map((c) => [c.name, c.value!]),
        );
        results.push({
          name: wanted.name,
          topicId,
          errorCode: ErrorCode.NONE,
          errorMessage: null,
          numPartitions: plan.numPartitions,
          replicationFactor: plan.replicationFactor,
          configs: TOPIC_CONFIGS.map(({ name }) => ({
            name,
            value: topicConfigValue(overrides, name),
            readOnly: false,
            configSource: overrides.has(name)
              ? CONFIG_SOURCE.DYNAMIC_TOPIC_CONFIG
              : CONFIG_SOURCE.DEFAULT_CONFIG,
            isSensitive: false,
          })),
        });
      }
      return { throttleTimeMs: 0, topics: results };
    },
  });
}
