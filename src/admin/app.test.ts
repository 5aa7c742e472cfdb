import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { HTTPException } from "hono/http-exception";
import { parsePrometheusText, sampleValue } from "../../test/helpers/prometheus.ts";
import { createFetchHandler } from "../api/fetch.ts";
import { createProduceHandler } from "../api/produce.ts";
import type { Harness } from "../coordinator/test-helpers.ts";
import { joinNew, subscription } from "../coordinator/test-helpers.ts";
import type { FetchRequestData, ProduceRequestData } from "../protocol/generated/index.ts";
import { buildBatch } from "../protocol/record-batch-builder.ts";
import { Writer } from "../protocol/writer.ts";
import type { RequestContext } from "../server/handler.ts";
import { AdminError, errorCodeForStatus } from "./app.ts";
import { CREATE_TOPIC_BODY_BYTES_MAX } from "./topic-routes.ts";
import { createTestAdminNode, TEST_CLUSTER_ID, type TestAdminNode } from "./test-helpers.ts";

let node: TestAdminNode;
beforeEach(async () => {
  node = await createTestAdminNode();
});
afterEach(() => node.close());

const CONTEXT: RequestContext = {
  apiKey: 0,
  apiVersion: 9,
  correlationId: 1,
  clientId: "test",
  connectionId: 1,
  remote: "127.0.0.1:1",
};

function get(path: string): Promise<Response> {
  return Promise.resolve(node.app.request(path));
}

function send(method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  return Promise.resolve(node.app.request(path, init));
}

async function json<T = any>(response: Response | Promise<Response>): Promise<T> {
  return (await response).json() as Promise<T>;
}

async function expectError(
  response: Promise<Response>,
  status: number,
  error: string,
  message?: string | RegExp,
) {
  const answer = await response;
  expect(answer.status).toBe(status);
  expect(answer.headers.get("content-type")).toStartWith("application/json");
  const body = (await answer.json()) as { error: string; message: string };
  expect(Object.keys(body).sort()).toEqual(["error", "message"]);
  expect(body.error).toBe(error);
  if (typeof message === "string") expect(body.message).toBe(message);
  else if (message !== undefined) expect(body.message).toMatch(message);
  return body;
}

async function createTopic(name: string, extra: Record<string, unknown> = {}) {
  const response = await send("POST", "/v1/topics", { name, ...extra });
  expect(response.status).toBe(201);
  return response.json() as Promise<any>;
}

/** Appends `count` one-record batches through the real Produce handler. */
async function produce(topic: string, partition: number, values: string[]) {
  const handler = createProduceHandler(node.services);
  const records = Buffer.concat(
    values.map((value) => buildBatch({ baseTimestamp: 1_700_000_000_000, records: [{ value }] })),
  );
  const request: ProduceRequestData = {
    transactionalId: null,
    acks: -1,
    timeoutMs: 1000,
    topicData: [{ name: topic, partitionData: [{ index: partition, records }] }],
  };
  const response = (await handler.handle(request, CONTEXT)) as any;
  expect(response.responses[0].partitionResponses[0].errorCode).toBe(0);
  return records.byteLength;
}

async function fetchAll(topic: string, partition: number) {
  const handler = createFetchHandler(node.services);
  const request = {
    clusterId: null,
    replicaId: -1,
    replicaState: { replicaId: -1, replicaEpoch: -1 },
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes: 1 << 20,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [
      {
        topic,
        topicId: "",
        partitions: [
          {
            partition,
            currentLeaderEpoch: -1,
            fetchOffset: 0,
            lastFetchedEpoch: -1,
            logStartOffset: -1,
            partitionMaxBytes: 1 << 20,
            replicaDirectoryId: "",
          },
        ],
      },
    ],
    forgottenTopicsData: [],
    rackId: "",
  } as unknown as FetchRequestData;
  const response = (await handler.handle(request, {
    ...CONTEXT,
    apiKey: 1,
    apiVersion: 12,
  })) as any;
  return response.responses[0].partitions[0].records as Uint8Array;
}

/** ConsumerProtocol assignment v0 bytes. */
function assignmentBytes(topics: Record<string, number[]>): Uint8Array {
  const writer = new Writer();
  writer.int16(0);
  writer.int32(Object.keys(topics).length);
  for (const [topic, partitions] of Object.entries(topics)) {
    writer.int16(Buffer.byteLength(topic));
    writer.utf8(topic, Buffer.byteLength(topic));
    writer.int32(partitions.length);
    for (const partition of partitions) writer.int32(partition);
  }
  writer.int32(-1);
  return new Uint8Array(writer.toBuffer());
}

function harnessOf(n: TestAdminNode): Harness {
  return {
    clock: n.clock,
    offsets: n.offsets,
    coordinator: n.coordinator,
    advance(ms: number) {
      for (let left = ms; left > 0; left -= 100) {
        n.clock.advance(Math.min(100, left));
        n.coordinator.tick();
      }
    },
  };
}

/** A Stable consumer group of one member that got `assignment`. */
function stableGroup(groupId: string, assignment: Uint8Array) {
  const h = harnessOf(node);
  const { memberId, reply } = joinNew(h, {
    groupId,
    clientId: "orders-app",
    clientHost: "/10.0.0.7",
    protocols: [{ name: "range", metadata: subscription(["orders"]) }],
  });
  h.advance(100);
  const joined = reply.value;
  expect(joined.error).toBeNull();
  let synced = false;
  node.coordinator.syncGroup(
    {
      groupId,
      generationId: joined.generationId,
      memberId,
      groupInstanceId: null,
      protocolType: null,
      protocolName: null,
      assignments: [{ memberId, assignment }],
    },
    (result) => {
      expect(result.error).toBeNull();
      synced = true;
    },
  );
  expect(synced).toBe(true);
  return { memberId, generationId: joined.generationId };
}

/** Commits offsets as a consumer outside group management does (generation -1). */
function commitOutsideGroup(
  groupId: string,
  offsets: Array<[topic: string, partition: number, offset: number]>,
) {
  const error = node.coordinator.validateOffsetCommit({
    groupId,
    generationId: -1,
    memberId: "",
    groupInstanceId: null,
    unknownGroupError: "illegalGeneration",
  });
  expect(error).toBeNull();
  node.offsets.commit(
    groupId,
    offsets.map(([topic, partition, offset]) => ({
      topic,
      partition,
      offset,
      leaderEpoch: -1,
      metadata: "",
      commitTimestampMs: node.clock.nowMs(),
      expireTimestampMs: null,
    })),
  );
}

describe("admin: app", () => {
  test("admin: GET /health is 200 once the node serves", async () => {
    const response = await get("/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("application/json");
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("admin: GET /health is 503 before the node serves, following isServing at request time", async () => {
    node.serving = false;
    await expectError(get("/health"), 503, "unavailable", "Node is not serving yet");
    node.serving = true;
    expect((await get("/health")).status).toBe(200);
  });

  test("admin: an unknown route is a JSON 404", async () => {
    await expectError(get("/v1/nothing"), 404, "not_found", "No such route: GET /v1/nothing");
  });

  test("admin: a known path with another method is a JSON 404", async () => {
    await expectError(send("DELETE", "/health"), 404, "not_found");
    await expectError(send("PUT", "/v1/topics"), 404, "not_found");
  });

  test("admin: onError renders AdminError with its status and code", async () => {
    node.app.get("/test/thing/:name", (c) => {
      throw new AdminError(404, "not_found", `Thing does not exist: ${c.req.param("name")}`);
    });
    await expectError(get("/test/thing/orders"), 404, "not_found", "Thing does not exist: orders");
  });

  test("admin: onError renders HTTPException with a code from its status", async () => {
    node.app.post("/test/exception", () => {
      throw new HTTPException(400, { message: "Body is not JSON" });
    });
    await expectError(send("POST", "/test/exception"), 400, "bad_request", "Body is not JSON");
  });

  test("admin: onError renders an unexpected error as a 500", async () => {
    node.app.get("/test/boom", () => {
      throw new Error("Boom");
    });
    await expectError(get("/test/boom"), 500, "internal", "Internal error: Boom");
  });

  test("admin: error codes by status", () => {
    expect(errorCodeForStatus(400)).toBe("bad_request");
    expect(errorCodeForStatus(404)).toBe("not_found");
    expect(errorCodeForStatus(503)).toBe("unavailable");
    expect(errorCodeForStatus(418)).toBe("bad_request");
    expect(errorCodeForStatus(502)).toBe("internal");
  });
});

describe("admin: cluster", () => {
  test("admin: GET /v1/cluster names this node as controller and alive member", async () => {
    expect(await json(get("/v1/cluster"))).toEqual({
      clusterId: TEST_CLUSTER_ID,
      nodeId: 1,
      controller: 1,
      brokers: [{ nodeId: 1, host: "127.0.0.1", port: 9092, rack: null, fenced: false }],
      members: [
        {
          nodeId: 1,
          state: "alive",
          incarnation: 0,
          gossip: "",
          kafka: "127.0.0.1:9092",
          admin: "",
          self: true,
        },
      ],
      quorum: null,
    });
  });
});

describe("admin: topics", () => {
  test("admin: topics: POST creates a topic (201, Location) that GET lists and describes", async () => {
    expect(await json(get("/v1/topics"))).toEqual({ topics: [] });
    const response = await send("POST", "/v1/topics", {
      name: "orders",
      partitions: 3,
      replicationFactor: 1,
      configs: { "retention.ms": 60000, "cleanup.policy": "delete" },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("location")).toBe("/v1/topics/orders");
    const created = (await response.json()) as any;
    expect(created).toMatchObject({
      name: "orders",
      internal: false,
      partitionCount: 3,
      replicationFactor: 1,
      configs: { "cleanup.policy": "delete", "retention.ms": "60000" },
    });
    expect(created.topicId).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.partitions).toEqual(
      [0, 1, 2].map((partition) => ({
        partition,
        leader: 1,
        leaderEpoch: 0,
        replicas: [1],
        isr: [1],
        elr: [],
        logStartOffset: 0,
        highWatermark: 0,
        lastStableOffset: 0,
        logEndOffset: 0,
        sizeBytes: 0,
        replicaStates: [{ nodeId: 1, logEndOffset: 0, lag: 0 }],
      })),
    );
    expect(node.services.image.topic("orders")?.partitions).toHaveLength(3);
    expect(await json(get("/v1/topics/orders"))).toEqual(created);
    expect(await json(get("/v1/topics"))).toEqual({
      topics: [
        {
          name: "orders",
          topicId: created.topicId,
          internal: false,
          partitionCount: 3,
          replicationFactor: 1,
        },
      ],
    });
  });

  test("admin: topics: partitions and replication factor default to the broker's", async () => {
    const created = await createTopic("defaults");
    expect(created.partitionCount).toBe(node.services.topicDefaults.numPartitions);
    expect(created.replicationFactor).toBe(1);
    expect(created.configs).toEqual({});
    const nulls = await createTopic("nulls", {
      partitions: null,
      replicationFactor: null,
      configs: null,
    });
    expect(nulls.partitionCount).toBe(1);
  });

  test("admin: topics: GET of a topic shows log start, high watermark, last stable offset and size", async () => {
    await createTopic("events", { partitions: 2 });
    const bytes = await produce("events", 1, ["a", "b", "c"]);
    const view = await json(get("/v1/topics/events"));
    expect(view.partitions[0]).toMatchObject({
      logStartOffset: 0,
      highWatermark: 0,
      lastStableOffset: 0,
      sizeBytes: 0,
    });
    expect(view.partitions[1]).toMatchObject({
      logStartOffset: 0,
      highWatermark: 3,
      lastStableOffset: 3,
      logEndOffset: 3,
      sizeBytes: bytes,
    });
  });

  test("admin: topics: creating an existing topic is 409 topic_exists and changes nothing", async () => {
    const first = await createTopic("orders", { partitions: 2 });
    const before = node.services.image.appliedCount;
    await expectError(
      send("POST", "/v1/topics", { name: "orders", partitions: 5 }),
      409,
      "topic_exists",
      "Topic 'orders' already exists.",
    );
    expect(node.services.image.appliedCount).toBe(before);
    expect(await json(get("/v1/topics/orders"))).toEqual(first);
  });

  const badBodies: Array<[what: string, body: unknown, error: string, message: string | RegExp]> = [
    ["malformed JSON", "{ name: orders", "bad_request", /^Body is not JSON: /],
    ["an empty body", "", "bad_request", /^Body is not JSON: /],
    ["a JSON array", "[]", "bad_request", "Body must be a JSON object"],
    ["a JSON string", '"orders"', "bad_request", "Body must be a JSON object"],
    ["null", "null", "bad_request", "Body must be a JSON object"],
    ["no name", { partitions: 1 }, "bad_request", "Field name is required"],
    ["a numeric name", { name: 7 }, "bad_request", "Field name must be a string: 7"],
    ["an unknown field", { name: "t", partition: 3 }, "bad_request", "Unknown field: partition"],
    [
      "zero partitions",
      { name: "t", partitions: 0 },
      "bad_request",
      "Field partitions must be a positive integer: 0",
    ],
    [
      "negative partitions",
      { name: "t", partitions: -1 },
      "bad_request",
      "Field partitions must be a positive integer: -1",
    ],
    [
      "fractional partitions",
      { name: "t", partitions: 1.5 },
      "bad_request",
      "Field partitions must be a positive integer: 1.5",
    ],
    [
      "partitions as a string",
      { name: "t", partitions: "3" },
      "bad_request",
      'Field partitions must be a positive integer: "3"',
    ],
    [
      "huge partitions",
      { name: "t", partitions: 1e300 },
      "bad_request",
      /^Field partitions must be a positive integer/,
    ],
    [
      "too many partitions",
      { name: "t", partitions: 10_001 },
      "invalid_partitions",
      /^Number of partitions must be in \[1, 10000\]/,
    ],
    [
      "zero replication factor",
      { name: "t", replicationFactor: 0 },
      "bad_request",
      "Field replicationFactor must be a positive integer: 0",
    ],
    [
      "replication factor above the brokers",
      { name: "t", replicationFactor: 3 },
      "invalid_replication_factor",
      /^Replication factor 3 must be in \[1, 1\]/,
    ],
    [
      "a name with a slash",
      { name: "a/b" },
      "invalid_topic_name",
      /^Topic name has characters other than/,
    ],
    [
      "a path traversal name",
      { name: "../etc" },
      "invalid_topic_name",
      /^Topic name has characters other than/,
    ],
    ["the name ..", { name: ".." }, "invalid_topic_name", 'Topic name cannot be "." or "..": ..'],
    ["an empty name", { name: "" }, "invalid_topic_name", "Topic name is empty"],
    [
      "a name with a space",
      { name: "my topic" },
      "invalid_topic_name",
      /^Topic name has characters other than/,
    ],
    [
      "a too long name",
      { name: "x".repeat(250) },
      "invalid_topic_name",
      /^Topic name longer than 249/,
    ],
    [
      "an unknown config",
      { name: "t", configs: { "retention.forever": "yes" } },
      "invalid_config",
      "Unknown topic config name: retention.forever",
    ],
    [
      "a bad config value",
      { name: "t", configs: { "retention.ms": "soon" } },
      "invalid_config",
      "Not an integer: soon",
    ],
    [
      "configs as an array",
      { name: "t", configs: [["retention.ms", "1"]] },
      "bad_request",
      "Field configs must be an object of config names to values",
    ],
    [
      "a config value that is an object",
      { name: "t", configs: { "retention.ms": { ms: 1 } } },
      "bad_request",
      /^Config retention.ms must be a string, number or boolean/,
    ],
    [
      "a config value that is null",
      { name: "t", configs: { "retention.ms": null } },
      "bad_request",
      /^Config retention.ms must be a string, number or boolean/,
    ],
  ];
  for (const [what, body, error, message] of badBodies) {
    test(`admin: topics: POST with ${what} is 400 ${error} and creates nothing`, async () => {
      const before = node.services.image.appliedCount;
      await expectError(send("POST", "/v1/topics", body), 400, error, message);
      expect(node.services.image.appliedCount).toBe(before);
      expect(node.services.image.topics()).toEqual([]);
    });
  }

  test("admin: topics: a body over the limit is 413 and creates nothing", async () => {
    const body = JSON.stringify({
      name: "t",
      configs: { "cleanup.policy": "x".repeat(CREATE_TOPIC_BODY_BYTES_MAX) },
    });
    await expectError(send("POST", "/v1/topics", body), 413, "payload_too_large");
    expect(node.services.image.topics()).toEqual([]);
  });

  test("admin: topics: GET or DELETE of an unknown topic is 404, of an impossible name 400", async () => {
    await expectError(get("/v1/topics/nothing"), 404, "not_found", "Topic does not exist: nothing");
    await expectError(
      send("DELETE", "/v1/topics/nothing"),
      404,
      "not_found",
      "Topic does not exist: nothing",
    );
    await expectError(
      get("/v1/topics/a%2Fb"),
      400,
      "invalid_topic_name",
      /^Topic name has characters other than/,
    );
    await expectError(get("/v1/topics/my%20topic"), 400, "invalid_topic_name");
    // URL parsing resolves ".." (also spelled %2E%2E) before routing: no topic route matches.
    await expectError(
      send("DELETE", "/v1/topics/.."),
      404,
      "not_found",
      "No such route: DELETE /v1/",
    );
    await expectError(
      send("DELETE", "/v1/topics/%2E%2E"),
      404,
      "not_found",
      "No such route: DELETE /v1/",
    );
  });

  test("admin: topics: DELETE removes the topic and its logs", async () => {
    const created = await createTopic("doomed", { partitions: 2 });
    await produce("doomed", 0, ["x"]);
    const dir = node.services.logs.get("doomed", 0)!.dir;
    expect(existsSync(dir)).toBe(true);
    const response = await send("DELETE", "/v1/topics/doomed");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      name: "doomed",
      topicId: created.topicId,
      deleted: true,
    });
    expect(node.services.image.topic("doomed")).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
    await expectError(get("/v1/topics/doomed"), 404, "not_found");
    expect(await json(get("/v1/topics"))).toEqual({ topics: [] });
    // The name is free again.
    expect((await createTopic("doomed")).topicId).not.toBe(created.topicId);
  });
});

describe("admin: groups", () => {
  test("admin: groups: none at first; an unknown group is 404 for GET and DELETE", async () => {
    expect(await json(get("/v1/groups"))).toEqual({ groups: [] });
    await expectError(get("/v1/groups/nobody"), 404, "not_found", "Group does not exist: nobody");
    await expectError(
      send("DELETE", "/v1/groups/nobody"),
      404,
      "not_found",
      "Group does not exist: nobody",
    );
  });

  test("admin: groups: committed offsets with lag = high watermark - committed", async () => {
    await createTopic("orders", { partitions: 2 });
    await produce("orders", 0, ["a", "b", "c", "d", "e"]);
    await produce("orders", 1, ["f", "g"]);
    commitOutsideGroup("billing", [
      ["orders", 0, 2],
      ["orders", 1, 2],
    ]);
    expect(await json(get("/v1/groups"))).toEqual({
      groups: [{ groupId: "billing", state: "Empty", protocolType: "", memberCount: 0 }],
    });
    expect(await json(get("/v1/groups/billing"))).toEqual({
      groupId: "billing",
      state: "Empty",
      protocolType: "",
      protocol: "",
      generationId: 0,
      leaderId: null,
      members: [],
      offsets: [
        {
          topic: "orders",
          partition: 0,
          committedOffset: 2,
          highWatermark: 5,
          lag: 3,
          metadata: "",
        },
        {
          topic: "orders",
          partition: 1,
          committedOffset: 2,
          highWatermark: 2,
          lag: 0,
          metadata: "",
        },
      ],
      totalLag: 3,
    });
  });

  test("admin: groups: a committed offset of a deleted topic has no lag", async () => {
    await createTopic("gone");
    commitOutsideGroup("g1", [["gone", 0, 0]]);
    expect((await send("DELETE", "/v1/topics/gone")).status).toBe(200);
    const view = await json(get("/v1/groups/g1"));
    expect(view.offsets).toEqual([
      {
        topic: "gone",
        partition: 0,
        committedOffset: 0,
        highWatermark: null,
        lag: null,
        metadata: "",
      },
    ]);
    expect(view.totalLag).toBe(0);
  });

  test("admin: groups: members show client id, host and their decoded assignment", async () => {
    await createTopic("orders", { partitions: 3 });
    const { memberId, generationId } = stableGroup(
      "shipping",
      assignmentBytes({ orders: [0, 2], audit: [1] }),
    );
    const view = await json(get("/v1/groups/shipping"));
    expect(view).toMatchObject({
      groupId: "shipping",
      state: "Stable",
      protocolType: "consumer",
      protocol: "range",
      generationId,
      leaderId: memberId,
    });
    expect(view.members).toEqual([
      {
        memberId,
        groupInstanceId: null,
        clientId: "orders-app",
        clientHost: "/10.0.0.7",
        assignment: [
          { topic: "orders", partitions: [0, 2] },
          { topic: "audit", partitions: [1] },
        ],
      },
    ]);
    expect(await json(get("/v1/groups"))).toEqual({
      groups: [{ groupId: "shipping", state: "Stable", protocolType: "consumer", memberCount: 1 }],
    });
  });

  test("admin: groups: an assignment that is not ConsumerProtocol is null", async () => {
    stableGroup("odd", new Uint8Array([0, 0, 0x7f, 0xff, 0xff, 0xff]));
    const view = await json(get("/v1/groups/odd"));
    expect(view.members[0].assignment).toBeNull();
  });

  test("admin: groups: DELETE of a group with members is 409 and deletes nothing", async () => {
    await createTopic("orders");
    stableGroup("busy", assignmentBytes({ orders: [0] }));
    commitOutsideGroupFails("busy");
    await expectError(
      send("DELETE", "/v1/groups/busy"),
      409,
      "group_not_empty",
      "Group has active members: busy",
    );
    expect((await json(get("/v1/groups/busy"))).state).toBe("Stable");
  });

  test("admin: groups: DELETE of an Empty group removes it and its offsets", async () => {
    await createTopic("orders");
    commitOutsideGroup("old", [["orders", 0, 0]]);
    const response = await send("DELETE", "/v1/groups/old");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ groupId: "old", deleted: true, offsetsDeleted: 1 });
    expect(node.offsets.hasGroup("old")).toBe(false);
    await expectError(get("/v1/groups/old"), 404, "not_found");
    await expectError(send("DELETE", "/v1/groups/old"), 404, "not_found");
  });

  test("admin: groups: ids are taken from the path percent-decoded", async () => {
    commitOutsideGroup("team a/b", []);
    expect((await json(get("/v1/groups/team%20a%2Fb"))).groupId).toBe("team a/b");
  });
});

/** A group with members refuses commits from outside group management. */
function commitOutsideGroupFails(groupId: string) {
  const error = node.coordinator.validateOffsetCommit({
    groupId,
    generationId: -1,
    memberId: "",
    groupInstanceId: null,
    unknownGroupError: "illegalGeneration",
  });
  expect(error).toBe("unknownMemberId");
}

describe("admin: metrics", () => {
  test("admin: metrics: every family is present, in the Prometheus text format, on a fresh node", async () => {
    const response = await get("/metrics");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheusText(await response.text());
    expect([...families.keys()].sort()).toEqual([
      "brook_connections_open",
      "brook_connections_paused",
      "brook_consumer_group_lag",
      "brook_fetch_requests_waiting",
      "brook_isr_expands_total",
      "brook_isr_shrinks_total",
      "brook_offline_partitions",
      "brook_request_duration_seconds",
      "brook_topic_bytes_in_total",
      "brook_topic_bytes_out_total",
      "brook_topic_messages_in_total",
      "brook_topic_messages_out_total",
      "brook_under_replicated_partitions",
    ]);
    expect(families.get("brook_request_duration_seconds")!.type).toBe("histogram");
    expect(families.get("brook_topic_bytes_in_total")!.type).toBe("counter");
    expect(sampleValue(families, "brook_connections_open")).toBe(0);
    expect(sampleValue(families, "brook_fetch_requests_waiting")).toBe(0);
    expect(sampleValue(families, "brook_under_replicated_partitions")).toBe(0);
  });

  test("admin: metrics: bytes and messages in and out per topic, from the real handlers", async () => {
    await createTopic("orders", { partitions: 2 });
    await createTopic("audit");
    const bytesIn =
      (await produce("orders", 0, ["a", "b", "c"])) + (await produce("orders", 1, ["d"]));
    const fetched = await fetchAll("orders", 0);
    const families = parsePrometheusText(await (await get("/metrics")).text());
    expect(sampleValue(families, "brook_topic_bytes_in_total", { topic: "orders" })).toBe(bytesIn);
    expect(sampleValue(families, "brook_topic_messages_in_total", { topic: "orders" })).toBe(4);
    expect(sampleValue(families, "brook_topic_bytes_out_total", { topic: "orders" })).toBe(
      fetched.byteLength,
    );
    expect(sampleValue(families, "brook_topic_messages_out_total", { topic: "orders" })).toBe(3);
    // No traffic, no series.
    expect(sampleValue(families, "brook_topic_bytes_in_total", { topic: "audit" })).toBeUndefined();
  });

  test("admin: metrics: a deleted topic's counters go", async () => {
    await createTopic("brief");
    await produce("brief", 0, ["x"]);
    await send("DELETE", "/v1/topics/brief");
    const families = parsePrometheusText(await (await get("/metrics")).text());
    expect(sampleValue(families, "brook_topic_bytes_in_total", { topic: "brief" })).toBeUndefined();
  });

  test("admin: metrics: request latency histograms per API, buckets in seconds", async () => {
    const started = node.services.metrics.now();
    node.clock.advance(3); // 3 ms: the 0.005 s bucket.
    node.services.metrics.requestDone("ProduceRequest", started);
    node.clock.advance(997);
    node.services.metrics.requestDone("FetchRequest", started); // 1 s: the le="1" bucket.
    node.services.metrics.requestDone("FetchRequest", node.services.metrics.now()); // 0 s.
    const families = parsePrometheusText(await (await get("/metrics")).text());
    const bucket = (api: string, le: string) =>
      sampleValue(families, "brook_request_duration_seconds_bucket", { api, le });
    expect(bucket("Produce", "0.0025")).toBe(0);
    expect(bucket("Produce", "0.005")).toBe(1);
    expect(bucket("Produce", "+Inf")).toBe(1);
    expect(
      sampleValue(families, "brook_request_duration_seconds_sum", { api: "Produce" }),
    ).toBeCloseTo(0.003, 9);
    expect(bucket("Fetch", "0.0005")).toBe(1);
    expect(bucket("Fetch", "0.5")).toBe(1);
    expect(bucket("Fetch", "1")).toBe(2);
    expect(sampleValue(families, "brook_request_duration_seconds_count", { api: "Fetch" })).toBe(2);
  });

  test("admin: metrics: open connections come from the listener at scrape time", async () => {
    node.connections = 5;
    const families = parsePrometheusText(await (await get("/metrics")).text());
    expect(sampleValue(families, "brook_connections_open")).toBe(5);
  });

  test("admin: metrics: under-replicated partitions count partitions whose ISR lacks a replica", async () => {
    await createTopic("solo", { partitions: 2 });
    const topic = node.services.image.topic("solo")!;
    // A replica on a broker that is not in the ISR (as after a follower fell behind).
    // Straight into the image: the metrics read only the image.
    node.services.image.apply({
      type: "registerBroker",
      nodeId: 2,
      host: "127.0.0.2",
      port: 9092,
      rack: null,
    });
    node.services.image.apply({
      type: "partition",
      topicId: topic.topicId,
      partition: 1,
      replicas: [1, 2],
      leader: 1,
      leaderEpoch: 1,
      isr: [1],
      partitionEpoch: 1,
    });
    const families = parsePrometheusText(await (await get("/metrics")).text());
    expect(sampleValue(families, "brook_under_replicated_partitions")).toBe(1);
  });

  test("admin: metrics: offline partitions count partitions whose leader is gone", async () => {
    await createTopic("fragile", { partitions: 3 });
    expect(
      sampleValue(
        parsePrometheusText(await (await get("/metrics")).text()),
        "brook_offline_partitions",
      ),
    ).toBe(0);
    // The only broker fenced: its partitions keep it as their last ISR member, with no leader.
    node.services.image.apply({ type: "fenceBroker", nodeId: 1 });
    const topic = node.services.image.topic("fragile")!;
    node.services.image.apply({
      type: "partition",
      topicId: topic.topicId,
      partition: 2,
      replicas: [1],
      leader: -1,
      leaderEpoch: 1,
      isr: [1],
      partitionEpoch: 1,
    });
    expect(
      sampleValue(
        parsePrometheusText(await (await get("/metrics")).text()),
        "brook_offline_partitions",
      ),
    ).toBe(1);
  });

  test("admin: metrics: consumer lag per group and partition, with label values escaped", async () => {
    await createTopic("orders", { partitions: 2 });
    await produce("orders", 0, ["a", "b", "c"]);
    const group = 'odd "group"\\with\nnewline';
    commitOutsideGroup(group, [
      ["orders", 0, 1],
      ["orders", 1, 0],
    ]);
    const text = await (await get("/metrics")).text();
    expect(text).toContain('group="odd \\"group\\"\\\\with\\nnewline"');
    const families = parsePrometheusText(text);
    expect(
      sampleValue(families, "brook_consumer_group_lag", { group, topic: "orders", partition: "0" }),
    ).toBe(2);
    expect(
      sampleValue(families, "brook_consumer_group_lag", { group, topic: "orders", partition: "1" }),
    ).toBe(0);
  });
});
