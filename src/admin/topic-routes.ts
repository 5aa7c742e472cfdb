/**
 * `GET|POST /v1/topics`, `GET|DELETE /v1/topics/:name`.
 *
 * Topic rules (names, partition counts, replication factors, configs) live once, in
 * `src/cluster/topics.ts`: this module only turns JSON into a `CreateTopicRequest` and
 * submits it through the same metadata writer as the Kafka handlers; the controller
 * plans it against its own image, one command at a time, so two concurrent creations of
 * one name cannot both pass the existence check.
 *
 * POST body: `{"name": string, "partitions"?: int >= 1, "replicationFactor"?: int >= 1,
 * "configs"?: {name: string | number | boolean}}`; absent or null fields take the broker
 * defaults. Anything else is 400 with the reason and creates nothing.
 */
import type { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { type CreateTopicRequest, type TopicError, topicNameProblem } from "../cluster/topics.ts";
import type { TopicImage } from "../cluster/metadata-image.ts";
import { unreachable } from "../util/assert.ts";
import { AdminError } from "./errors.ts";
import { type AdminNode, topicSummary, topicView } from "./views.ts";

/** A topic creation is a few hundred bytes; configs included, far below this. */
export const CREATE_TOPIC_BODY_BYTES_MAX = 64 * 1024;

const CREATE_FIELDS = new Set(["name", "partitions", "replicationFactor", "configs"]);

/** The one mapping of topic rule failures to HTTP statuses and error codes. */
export function topicErrorStatus(error: TopicError): {
  status: ContentfulStatusCode;
  code: string;
} {
  switch (error.kind) {
    case "invalidName":
      return { status: 400, code: "invalid_topic_name" };
    case "exists":
      return { status: 409, code: "topic_exists" };
    case "unknown":
      return { status: 404, code: "not_found" };
    case "invalidPartitions":
      return { status: 400, code: "invalid_partitions" };
    case "invalidReplicationFactor":
      return { status: 400, code: "invalid_replication_factor" };
    case "invalidReplicaAssignment":
      return { status: 400, code: "invalid_replica_assignment" };
    case "invalidConfig":
      return { status: 400, code: "invalid_config" };
    case "invalidRequest":
      return { status: 400, code: "bad_request" };
    case "notController":
      return { status: 503, code: "no_controller" };
    // Only partition leaders send AlterPartition; no admin route leads here.
    case "alterPartition":
      return { status: 409, code: "conflict" };
    default:
      return unreachable(error);
  }
}

function topicFailure(error: TopicError): AdminError {
  const { status, code } = topicErrorStatus(error);
  return new AdminError(status, code, error.message);
}

function badRequest(message: string): AdminError {
  return new AdminError(400, "bad_request", message);
}

/** A positive integer, or -1 (the broker default) when absent or null. */
function positiveIntegerField(body: Record<string, unknown>, field: string): number {
  const value = body[field];
  if (value === undefined || value === null) return -1;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw badRequest(`Field ${field} must be a positive integer: ${JSON.stringify(value)}`);
  }
  return value;
}

/** The POST body as a creation request; throws a 400 AdminError with the reason. */
export function parseCreateTopicBody(text: string): CreateTopicRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw badRequest(`Body is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest("Body must be a JSON object");
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).find((field) => !CREATE_FIELDS.has(field));
  if (unknown !== undefined) throw badRequest(`Unknown field: ${unknown}`);
  if (fields.name === undefined) throw badRequest("Field name is required");
  if (typeof fields.name !== "string")
    throw badRequest(`Field name must be a string: ${JSON.stringify(fields.name)}`);
  const numPartitions = positiveIntegerField(fields, "partitions");
  const replicationFactor = positiveIntegerField(fields, "replicationFactor");
  const configs: Array<{ name: string; value: string }> = [];
  const given = fields.configs;
  if (given !== undefined && given !== null) {
    if (typeof given !== "object" || Array.isArray(given)) {
      throw badRequest("Field configs must be an object of config names to values");
    }
    for (const [name, value] of Object.entries(given)) {
      const ok =
        typeof value === "string" ||
        typeof value === "boolean" ||
        (typeof value === "number" && Number.isFinite(value));
      if (!ok)
        throw badRequest(
          `Config ${name} must be a string, number or boolean: ${JSON.stringify(value)}`,
        );
      configs.push({ name, value: String(value) });
    }
  }
  return { name: fields.name, numPartitions, replicationFactor, configs };
}

/** The topic named in the path; 400 when no topic could have that name, 404 when none has. */
function existingTopic(node: AdminNode, name: string): TopicImage {
  const problem = topicNameProblem(name);
  if (problem !== null) throw new AdminError(400, "invalid_topic_name", problem);
  const topic = node.services.image.topic(name);
  if (topic === undefined) throw new AdminError(404, "not_found", `Topic does not exist: ${name}`);
  return topic;
}

export function registerTopicRoutes(app: Hono, node: AdminNode): void {
  const { services } = node;

  app.get("/v1/topics", (c) => {
    const topics = services.image.topics().map(topicSummary);
    topics.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return c.json({ topics });
  });

  app.post(
    "/v1/topics",
    bodyLimit({
      maxSize: CREATE_TOPIC_BODY_BYTES_MAX,
      onError: () => {
        throw new AdminError(
          413,
          "payload_too_large",
          `Body is larger than ${CREATE_TOPIC_BODY_BYTES_MAX} bytes`,
        );
      },
    }),
    async (c) => {
      const request = parseCreateTopicBody(await c.req.text());
      const done = await services.metadata.submit({ kind: "createTopic", request });
      if (!done.ok) throw topicFailure(done.error);
      const topic = services.image.topic(request.name);
      if (topic === undefined)
        throw new Error(`Created topic is not in the image: ${request.name}`);
      c.header("Location", `/v1/topics/${encodeURIComponent(topic.name)}`);
      return c.json(topicView(services, topic), 201);
    },
  );

  app.get("/v1/topics/:name", (c) =>
    c.json(topicView(services, existingTopic(node, c.req.param("name")))),
  );

  app.delete("/v1/topics/:name", async (c) => {
    const topic = existingTopic(node, c.req.param("name"));
    const done = await services.metadata.submit({ kind: "deleteTopic", topicId: topic.topicId });
    if (!done.ok) throw topicFailure(done.error);
    return c.json({ name: topic.name, topicId: topic.topicId, deleted: true });
  });
}
