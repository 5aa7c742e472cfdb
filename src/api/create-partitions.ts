/**
 * CreatePartitions (key 37), v0-v3.
 * v1 same as v0; v2 flexible; v3 same as v2. Manual assignments must name existing
 * brokers; placement otherwise follows topic creation.
 */
import { planCreatePartitions, topicErrorCode } from "../cluster/topics.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { CreatePartitionsRequest, CreatePartitionsResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import type { BrokerServices } from "./services.ts";

export function createCreatePartitionsHandler(services: BrokerServices) {
  return defineHandler({
    request: CreatePartitionsRequest,
    response: CreatePartitionsResponse,
    versions: [0, 3],
    async handle(request) {
      const names = request.topics.map((t) => t.name);
      const results = [];
      for (const wanted of request.topics) {
        if (names.indexOf(wanted.name) !== names.lastIndexOf(wanted.name)) {
          results.push({
            name: wanted.name,
            errorCode: ErrorCode.INVALID_REQUEST,
            errorMessage: "Topic named more than once in the request",
          });
          continue;
        }
        const unknownBroker = wanted.assignments
          ?.flatMap((a) => a.brokerIds)
          .find((id) => services.image.broker(id) === undefined);
        if (unknownBroker !== undefined) {
          results.push({
            name: wanted.name,
            errorCode: ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            errorMessage: `Unknown broker ${unknownBroker}`,
          });
          continue;
        }
        const plan = planCreatePartitions(services.image, wanted.name, wanted.count);
        if (!plan.ok) {
          results.push({
            name: wanted.name,
            errorCode: topicErrorCode(plan.error),
            errorMessage: plan.error.message,
          });
          continue;
        }
        if (!request.validateOnly) {
          const done = await services.metadata.submit({
            kind: "createPartitions",
            name: wanted.name,
            count: wanted.count,
          });
          if (!done.ok) {
            results.push({
              name: wanted.name,
              errorCode: topicErrorCode(done.error),
              errorMessage: done.error.message,
            });
            continue;
          }
        }
        results.push({ name: wanted.name, errorCode: ErrorCode.NONE, errorMessage: null });
      }
      return { throttleTimeMs: 0, results };
    },
  });
}
