/**
 * Metadata's auto-creation answers, on a real metadata image and log manager: a topic
 * the controller says exists while this node's image has not applied it yet is
 * LEADER_NOT_AVAILABLE (retriable), never TOPIC_ALREADY_EXISTS, which clients such as
 * librdkafka take as final for the topic and fail its messages with.
 */
import { afterEach, expect, test } from "bun:test";
import { createTestAdminNode, type TestAdminNode } from "../admin/test-helpers.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import type { RequestContext } from "../server/handler.ts";
import { createMetadataHandler } from "./metadata.ts";
import type { BrokerServices } from "./services.ts";

const ZERO_UUID = "AAAAAAAAAAAAAAAAAAAAAA";
const context: RequestContext = {
  apiKey: 3,
  apiVersion: 12,
  correlationId: 1,
  clientId: "test",
  connectionId: 1,
  remote: "127.0.0.1:1",
};

let node: TestAdminNode | undefined;
afterEach(() => node?.close());

async function askFor(topic: string, refusal: { kind: string; message: string }) {
  node = await createTestAdminNode();
  const services: BrokerServices = {
    ...node.services,
    autoCreateTopics: true,
    metadata: {
      ...node.services.metadata,
      submit: async () => ({ ok: false, error: refusal }),
    } as BrokerServices["metadata"],
  };
  const request = {
    topics: [{ topicId: ZERO_UUID, name: topic }],
    allowAutoTopicCreation: true,
    includeTopicAuthorizedOperations: false,
  };
  const answer = (await createMetadataHandler(services).handle(request as never, context)) as {
    topics: Array<{ name: string; errorCode: number }>;
  };
  return answer.topics[0]!;
}

test("api: metadata: a topic that exists by now but not yet here is LEADER_NOT_AVAILABLE, not TOPIC_ALREADY_EXISTS", async () => {
  const entry = await askFor("raced", { kind: "exists", message: "Topic 'raced' already exists." });
  expect(entry).toMatchObject({ name: "raced", errorCode: ErrorCode.LEADER_NOT_AVAILABLE });
});

test("api: metadata: a node that is not the controller answers LEADER_NOT_AVAILABLE; a real refusal keeps its code", async () => {
  expect((await askFor("elsewhere", { kind: "notController", message: "" })).errorCode).toBe(
    ErrorCode.LEADER_NOT_AVAILABLE,
  );
  node?.close();
  const refused = await askFor("too-many", {
    kind: "invalidReplicationFactor",
    message: "Replication factor 3 must be in [1, 1]",
  });
  expect(refused.errorCode).toBe(ErrorCode.INVALID_REPLICATION_FACTOR);
});
