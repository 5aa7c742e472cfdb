/**
 * DeleteTopics (key 20), v0-v6.
 * v1 throttle time; v4 flexible; v5 error messages; v6 topics by name or id.
 */
import { planDeleteTopic, topicErrorCode } from "../cluster/topics.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { DeleteTopicsRequest, DeleteTopicsResponse } from "../protocol/generated/index.ts";
import { ZERO_UUID } from "../protocol/reader.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

export function createDeleteTopicsHandler(services: BrokerServices) {
  return defineHandler({
    request: DeleteTopicsRequest,
    response: DeleteTopicsResponse,
    versions: [0, 6],
    async handle(request, context) {
      const wanted =
        context.apiVersion >= 6
          ? request.topics
          : request.topicNames.map((name) => ({ name, topicId: ZERO_UUID }));
      const responses = [];
      for (const { name, topicId } of wanted) {
        const topic =
          name !== null ? services.image.topic(name) : services.image.topicById(topicId);
        if (name === null && topic === undefined) {
          responses.push({
            name: null,
            topicId,
            errorCode: ErrorCode.UNKNOWN_TOPIC_ID,
            errorMessage: `Topic id ${topicId} does not exist`,
          });
          continue;
        }
        const plan = planDeleteTopic(topic, name ?? topicId);
        if (!plan.ok) {
          responses.push({
            name,
            topicId,
            errorCode: topicErrorCode(plan.error),
            errorMessage: plan.error.message,
          });
          continue;
        }
        const done = await services.metadata.submit({
          kind: "deleteTopic",
          topicId: topic!.topicId,
        });
        if (!done.ok) {
          responses.push({
            name,
            topicId,
            errorCode: topicErrorCode(done.error),
            errorMessage: done.error.message,
          });
          continue;
        }
        responses.push({
          name: topic!.name,
          topicId: topic!.topicId,
          errorCode: ErrorCode.NONE,
          errorMessage: null,
        });
      }
      return { throttleTimeMs: 0, responses };
    },
  });
}
