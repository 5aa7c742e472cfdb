/**
 * The group handlers called as the server calls them: each request is encoded and
 * decoded at the version under test, and so is each response, so every answer is
 * checked to be encodable at that version.
 */
import { describe, expect, test } from "bun:test";
import { clientHost } from "./group-join.ts";
import { GROUP_AUTHORIZED_OPERATIONS } from "./describe-groups.ts";
import { decode, encode } from "../protocol/codec.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { Reader } from "../protocol/reader.ts";
import type { Encodable } from "../protocol/schema.ts";
import { type ApiHandler, NO_RESPONSE, type RequestContext } from "../server/handler.ts";
import { createGroupHandlers } from "./group-handlers.ts";
import { bytes, type Harness, harness, subscription, text } from "../coordinator/test-helpers.ts";

const SELF = { nodeId: 7, host: "broker.local", port: 9092 };
const TOPICS: Record<string, number> = { orders: 3, payments: 1 };

function setup() {
  const h = harness();
  const handlers = createGroupHandlers({
    coordinator: h.coordinator,
    offsets: h.offsets,
    self: () => SELF,
    partitionExists: (topic, partition) => partition >= 0 && partition < (TOPICS[topic] ?? 0),
  });
  const byKey = new Map(handlers.map((handler) => [handler.request.apiKey, handler]));
  /** Calls api `key` at `version` through an encode/decode round trip both ways. */
  const call = <Req, Res>(key: number, version: number, request: Encodable<Req>): Promise<Res> =>
    callHandler(byKey.get(key) as ApiHandler<Req, Res>, version, request);
  /** Starts a call whose answer may wait for the coordinator (JoinGroup, SyncGroup). */
  const start = <Res>(key: number, version: number, request: object) => {
    const state: { value: Res | undefined } = { value: undefined };
    const promise = call<object, Res>(key, version, request).then((value) => {
      state.value = value;
      return value;
    });
    return { state, promise };
  };
  return { h, handlers, byKey, call, start };
}

async function callHandler<Req, Res>(
  handler: ApiHandler<Req, Res>,
  version: number,
  request: Encodable<Req>,
) {
  const requestBytes = encode(handler.request, version, request).toBuffer();
  const reader = new Reader(requestBytes);
  const decoded = decode(handler.request, version, reader);
  expect(reader.complete()).toBe(true);
  const context: RequestContext = {
    apiKey: handler.request.apiKey,
    apiVersion: version,
    correlationId: 1,
    clientId: "test-client",
    connectionId: 1,
    remote: "127.0.0.1:50000",
  };
  const result = await handler.handle(decoded, context);
  if (result === NO_RESPONSE) throw new Error("Group handlers always answer");
  const responseBytes = encode(handler.response, version, result).toBuffer();
  const responseReader = new Reader(responseBytes);
  const response = decode(handler.response, version, responseReader);
  expect(responseReader.complete()).toBe(true);
  return response;
}

/** Lets promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

const FIND_COORDINATOR = 10;
const JOIN_GROUP = 11;
const HEARTBEAT = 12;
const LEAVE_GROUP = 13;
const SYNC_GROUP = 14;
const DESCRIBE_GROUPS = 15;
const LIST_GROUPS = 16;
const OFFSET_COMMIT = 8;
const OFFSET_FETCH = 9;
const DELETE_GROUPS = 42;
const OFFSET_DELETE = 47;

type Any = Record<string, any>;

describe("api: group handlers", () => {
  test("every table version is served, and an empty request of each is answered", async () => {
    const { handlers, call } = setup();
    expect(handlers.map((handler) => [handler.request.apiKey, ...handler.versions])).toEqual([
      [10, 0, 6],
      [11, 0, 9],
      [14, 0, 5],
      [12, 0, 4],
      [13, 0, 5],
      [8, 0, 9],
      [9, 0, 9],
      [16, 0, 5],
      [15, 0, 5],
      [42, 0, 2],
      [47, 0, 0],
    ]);
    for (const handler of handlers) {
      expect(handler.versions).toEqual(handler.request.validVersions);
      for (let version = handler.versions[0]; version <= handler.versions[1]; version++) {
        // Defaults everywhere: the empty group id fails fast instead of parking.
        await call(handler.request.apiKey, version, {});
      }
    }
  });

  test("FindCoordinator: this node for groups, per key in v4+; none for transactions", async () => {
    const { call } = setup();
    const v0 = await call<Any, Any>(FIND_COORDINATOR, 0, { key: "g" });
    expect(v0).toMatchObject({ errorCode: 0, nodeId: 7, host: "broker.local", port: 9092 });
    const v3 = await call<Any, Any>(FIND_COORDINATOR, 3, { key: "tx", keyType: 1 });
    expect(v3).toMatchObject({ errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE, nodeId: -1 });
    const v4 = await call<Any, Any>(FIND_COORDINATOR, 4, { coordinatorKeys: ["a", "b"] });
    expect(v4.coordinators).toEqual([
      { key: "a", nodeId: 7, host: "broker.local", port: 9092, errorCode: 0, errorMessage: null },
      { key: "b", nodeId: 7, host: "broker.local", port: 9092, errorCode: 0, errorMessage: null },
    ]);
    const v6 = await call<Any, Any>(FIND_COORDINATOR, 6, { keyType: 2, coordinatorKeys: ["s"] });
    expect(v6.coordinators[0].errorCode).toBe(ErrorCode.INVALID_REQUEST);
  });

  test("a consumer's life: join, sync, heartbeat, commit, fetch, describe, leave", async () => {
    const { h, call, start } = setup();
    const metadata = subscription(["orders"]);
    const joinRequest = {
      groupId: "g",
      sessionTimeoutMs: 10_000,
      rebalanceTimeoutMs: 30_000,
      memberId: "",
      protocolType: "consumer",
      protocols: [{ name: "range", metadata }],
    };
    // KIP-394 round first.
    const first = await call<Any, Any>(JOIN_GROUP, 5, joinRequest);
    expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
    const memberId: string = first.memberId;
    expect(memberId.startsWith("test-client-")).toBe(true);
    const joining = start<Any>(JOIN_GROUP, 5, { ...joinRequest, memberId });
    await settle();
    expect(joining.state.value).toBeUndefined(); // Parked until the next tick.
    h.advance(100);
    const joined = await joining.promise;
    expect(joined).toMatchObject({
      errorCode: 0,
      generationId: 1,
      protocolName: "range",
      leader: memberId,
      memberId,
    });
    expect(joined.members).toHaveLength(1);
    expect(Buffer.from(joined.members[0].metadata)).toEqual(Buffer.from(metadata));

    const synced = await call<Any, Any>(SYNC_GROUP, 5, {
      groupId: "g",
      generationId: 1,
      memberId,
      protocolType: "consumer",
      protocolName: "range",
      assignments: [{ memberId, assignment: bytes("all of orders") }],
    });
    expect(synced).toMatchObject({ errorCode: 0, protocolType: "consumer", protocolName: "range" });
    expect(text(synced.assignment)).toBe("all of orders");

    const beat = (version: number, generationId: number) =>
      call<Any, Any>(HEARTBEAT, version, { groupId: "g", generationId, memberId });
    expect((await beat(4, 1)).errorCode).toBe(0);
    expect((await beat(0, 0)).errorCode).toBe(ErrorCode.ILLEGAL_GENERATION);

    const committed = await call<Any, Any>(OFFSET_COMMIT, 8, {
      groupId: "g",
      generationIdOrMemberEpoch: 1,
      memberId,
      topics: [
        {
          name: "orders",
          partitions: [
            {
              partitionIndex: 0,
              committedOffset: 42,
              committedLeaderEpoch: 5,
              committedMetadata: "note",
            },
            { partitionIndex: 1, committedOffset: 7, committedMetadata: "x".repeat(4097) },
            { partitionIndex: 9, committedOffset: 1 },
          ],
        },
        { name: "missing", partitions: [{ partitionIndex: 0, committedOffset: 1 }] },
      ],
    });
    expect(committed.topics.map((t: Any) => t.partitions.map((p: Any) => p.errorCode))).toEqual([
      [0, ErrorCode.OFFSET_METADATA_TOO_LARGE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
      [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
    ]);

    const fetched = await call<Any, Any>(OFFSET_FETCH, 7, {
      groupId: "g",
      topics: [{ name: "orders", partitionIndexes: [0, 1] }],
    });
    expect(fetched.errorCode).toBe(0);
    expect(fetched.topics[0].partitions).toEqual([
      {
        partitionIndex: 0,
        committedOffset: 42,
        committedLeaderEpoch: 5,
        metadata: "note",
        errorCode: 0,
      },
      {
        partitionIndex: 1,
        committedOffset: -1,
        committedLeaderEpoch: -1,
        metadata: "",
        errorCode: 0,
      },
    ]);
    const fetchedAll = await call<Any, Any>(OFFSET_FETCH, 8, {
      groups: [
        { groupId: "g", topics: null },
        { groupId: "unknown", topics: null },
      ],
    });
    expect(fetchedAll.groups.map((g: Any) => [g.groupId, g.errorCode, g.topics.length])).toEqual([
      ["g", 0, 1],
      ["unknown", 0, 0],
    ]);
    const allPartitions = fetchedAll.groups[0].topics[0].partitions;
    expect(allPartitions.map((p: Any) => p.committedOffset)).toEqual([42]);

    const described = await call<Any, Any>(DESCRIBE_GROUPS, 5, {
      groups: ["g", "nope"],
      includeAuthorizedOperations: true,
    });
    expect(described.groups[0]).toMatchObject({
      errorCode: 0,
      groupId: "g",
      groupState: "Stable",
      protocolType: "consumer",
      protocolData: "range",
      authorizedOperations: GROUP_AUTHORIZED_OPERATIONS,
    });
    expect(described.groups[0].members[0]).toMatchObject({
      memberId,
      clientId: "test-client",
      clientHost: "/127.0.0.1",
      groupInstanceId: null,
    });
    expect(text(described.groups[0].members[0].memberAssignment)).toBe("all of orders");
    expect(described.groups[1]).toMatchObject({ errorCode: 0, groupState: "Dead", members: [] });

    const listed = await call<Any, Any>(LIST_GROUPS, 5, {
      statesFilter: ["stable"],
      typesFilter: ["Classic"],
    });
    expect(listed.groups).toEqual([
      { groupId: "g", protocolType: "consumer", groupState: "Stable", groupType: "classic" },
    ]);
    expect((await call<Any, Any>(LIST_GROUPS, 4, { statesFilter: ["Empty"] })).groups).toEqual([]);
    const consumerType = await call<Any, Any>(LIST_GROUPS, 5, { typesFilter: ["consumer"] });
    expect(consumerType.groups).toEqual([]);
    expect((await call<Any, Any>(LIST_GROUPS, 0, {})).groups).toEqual([
      { groupId: "g", protocolType: "consumer", groupState: "", groupType: "" },
    ]);

    // The group subscribes to orders: its offsets stay; payments' may go.
    const offsetDelete = await call<Any, Any>(OFFSET_DELETE, 0, {
      groupId: "g",
      topics: [
        { name: "orders", partitions: [{ partitionIndex: 0 }] },
        { name: "payments", partitions: [{ partitionIndex: 0 }] },
      ],
    });
    expect(offsetDelete.errorCode).toBe(0);
    expect(offsetDelete.topics.map((t: Any) => t.partitions[0].errorCode)).toEqual([
      ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
      0,
    ]);

    const notEmpty = await call<Any, Any>(DELETE_GROUPS, 2, { groupsNames: ["g", "nope"] });
    expect(notEmpty.results).toEqual([
      { groupId: "g", errorCode: ErrorCode.NON_EMPTY_GROUP },
      { groupId: "nope", errorCode: ErrorCode.GROUP_ID_NOT_FOUND },
    ]);

    const left = await call<Any, Any>(LEAVE_GROUP, 3, {
      groupId: "g",
      members: [{ memberId, groupInstanceId: null }],
    });
    expect(left).toMatchObject({ errorCode: 0, members: [{ memberId, errorCode: 0 }] });
    expect((await call<Any, Any>(LEAVE_GROUP, 0, { groupId: "g", memberId })).errorCode).toBe(
      ErrorCode.UNKNOWN_MEMBER_ID,
    );

    const deleted = await call<Any, Any>(DELETE_GROUPS, 0, { groupsNames: ["g", "g"] });
    expect(deleted.results).toEqual([{ groupId: "g", errorCode: 0 }]);
    expect(h.offsets.hasGroup("g")).toBe(false);
    expect(h.coordinator.describeGroup("g")).toBeUndefined();
  });

  test("JoinGroup: v0's rebalance timeout; errors encode in every version", async () => {
    const { h, call, start } = setup();
    const joining = start<Any>(JOIN_GROUP, 0, {
      groupId: "g",
      sessionTimeoutMs: 10_000,
      memberId: "",
      protocolType: "consumer",
      protocols: [{ name: "range", metadata: bytes("m") }],
    });
    h.advance(100);
    const joined = await joining.promise;
    expect(joined.errorCode).toBe(0);
    expect(joined.protocolName).toBe("range");
    for (let version = 0; version <= 9; version++) {
      const failed = await call<Any, Any>(JOIN_GROUP, version, {
        groupId: "g",
        sessionTimeoutMs: 10_000,
        rebalanceTimeoutMs: 1000,
        memberId: "stranger",
        protocolType: "consumer",
        protocols: [{ name: "range", metadata: bytes("m") }],
      });
      expect(failed.errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
      expect(failed.protocolName).toBe(version >= 7 ? null : "");
    }
  });

  test("OffsetCommit: generations, simple commits and the v9 unknown group error", async () => {
    const { call } = setup();
    const commit = (version: number, groupId: string, generation: number, memberId = "") =>
      call<Any, Any>(OFFSET_COMMIT, version, {
        groupId,
        generationIdOrMemberEpoch: generation,
        memberId,
        retentionTimeMs: 60_000,
        topics: [
          {
            name: "orders",
            partitions: [{ partitionIndex: 0, committedOffset: 5, commitTimestamp: 1234 }],
          },
        ],
      }).then((response) => response.topics[0].partitions[0].errorCode);
    expect(await commit(8, "ghost", 3, "m")).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect(await commit(9, "ghost", 3, "m")).toBe(ErrorCode.GROUP_ID_NOT_FOUND);
    // A simple commit (no generation) creates the group, v0 included.
    expect(await commit(0, "simple", -1)).toBe(0);
    expect(await commit(1, "simple", -1)).toBe(0);
    expect(await commit(2, "simple", -1)).toBe(0);
    expect(await commit(3, "", -1)).toBe(0); // The empty group id is allowed, as in Kafka.
    const fetched = await call<Any, Any>(OFFSET_FETCH, 1, {
      groupId: "simple",
      topics: [{ name: "orders", partitionIndexes: [0] }],
    });
    expect(fetched.topics[0].partitions[0].committedOffset).toBe(5);
  });

  test("OffsetCommit: a failing store answers COORDINATOR_NOT_AVAILABLE", async () => {
    const h: Harness = harness();
    const [commitHandler] = createGroupHandlers({
      coordinator: h.coordinator,
      offsets: {
        ...h.offsets,
        fetch: () => undefined,
        list: () => [],
        hasGroup: () => false,
        groupIds: () => [],
        delete: () => 0,
        deleteGroup: () => 0,
        commit: () => Promise.reject(new Error("Disk full")),
      },
      self: () => SELF,
      partitionExists: () => true,
    }).filter((handler) => handler.request.apiKey === OFFSET_COMMIT);
    const response = await callHandler<Any, Any>(commitHandler!, 8, {
      groupId: "g",
      generationIdOrMemberEpoch: -1,
      memberId: "",
      topics: [{ name: "t", partitions: [{ partitionIndex: 0, committedOffset: 1 }] }],
    });
    expect(response.topics[0].partitions[0].errorCode).toBe(ErrorCode.COORDINATOR_NOT_AVAILABLE);
  });

  test("OffsetFetch: waits for commits the group accepted before it rebalanced", async () => {
    // Found by test/groups/platformatic.test.ts: a member's commit passed the generation
    // check, the group rebalanced while the store was still appending it, and the
    // partition's new owner fetched the offset from before it (then processed a message
    // twice). In Kafka the commit is stored before the next generation can form; here
    // an OffsetFetch waits for the commits to its group in flight when it arrives.
    const h: Harness = harness();
    const gates: Array<() => void> = [];
    const handlers = createGroupHandlers({
      coordinator: h.coordinator,
      offsets: {
        fetch: (g, t, p) => h.offsets.fetch(g, t, p),
        list: (g) => h.offsets.list(g),
        hasGroup: (g) => h.offsets.hasGroup(g),
        groupIds: () => h.offsets.groupIds(),
        delete: (g, partitions) => h.offsets.delete(g, partitions),
        deleteGroup: (g) => h.offsets.deleteGroup(g),
        commit: (groupId, entries) =>
          new Promise<void>((resolve, reject) => {
            gates.push(() => {
              if (entries[0]!.metadata === "fail") return reject(new Error("Disk full"));
              h.offsets.commit(groupId, entries);
              resolve();
            });
          }),
      },
      self: () => SELF,
      partitionExists: () => true,
    });
    const byKey = new Map(handlers.map((handler) => [handler.request.apiKey, handler]));
    const call = <Res>(key: number, version: number, request: object) => {
      const state: { value: Res | undefined } = { value: undefined };
      const promise = callHandler<object, Res>(
        byKey.get(key) as ApiHandler<object, Res>,
        version,
        request,
      ).then((value) => (state.value = value));
      return { state, promise };
    };
    const join = (memberId: string) =>
      call<Any>(JOIN_GROUP, 4, {
        groupId: "g",
        sessionTimeoutMs: 10_000,
        rebalanceTimeoutMs: 30_000,
        memberId,
        protocolType: "consumer",
        protocols: [{ name: "range", metadata: bytes("m") }],
      });
    const sync = (memberId: string, generationId: number) =>
      call<Any>(SYNC_GROUP, 3, {
        groupId: "g",
        generationId,
        memberId,
        assignments: [{ memberId, assignment: bytes("all") }],
      });
    const commit = (memberId: string, generation: number, offset: number, metadata = "") =>
      call<Any>(OFFSET_COMMIT, 8, {
        groupId: "g",
        generationIdOrMemberEpoch: generation,
        memberId,
        topics: [
          {
            name: "orders",
            partitions: [
              { partitionIndex: 0, committedOffset: offset, committedMetadata: metadata },
            ],
          },
        ],
      });
    const fetchOffset = () =>
      call<Any>(OFFSET_FETCH, 7, {
        groupId: "g",
        topics: [{ name: "orders", partitionIndexes: [0] }],
      });

    // B alone in generation 1 (version 4 joins: the member id comes first).
    const idB: string = (await join("").promise).memberId;
    const joinB = join(idB);
    h.advance(100);
    expect((await joinB.promise).generationId).toBe(1);
    await sync(idB, 1).promise;
    // B processed offset 22 and commits 23; the store is slow.
    const committing = commit(idB, 1, 23);
    await settle();
    expect(committing.state.value).toBeUndefined();
    // Meanwhile B leaves (generation 2, Empty) and A forms generation 3 on its own, then
    // asks where to start.
    await call<Any>(LEAVE_GROUP, 3, { groupId: "g", members: [{ memberId: idB }] }).promise;
    const idA: string = (await join("").promise).memberId;
    const joinA = join(idA);
    h.advance(100);
    expect((await joinA.promise).generationId).toBe(3);
    await sync(idA, 3).promise;
    const fetching = fetchOffset();
    await settle();
    expect(fetching.state.value).toBeUndefined();
    gates.shift()!();
    expect((await committing.promise).topics[0].partitions[0].errorCode).toBe(0);
    expect((await fetching.promise).topics[0].partitions[0].committedOffset).toBe(23);

    // A commit that fails to store releases the fetch too, which answers what is stored;
    // a fetch arriving after a commit was answered waits for nothing.
    const failing = commit(idA, 3, 40, "fail");
    const afterFailing = fetchOffset();
    await settle();
    expect(afterFailing.state.value).toBeUndefined();
    gates.shift()!();
    expect((await failing.promise).topics[0].partitions[0].errorCode).toBe(
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
    );
    expect((await afterFailing.promise).topics[0].partitions[0].committedOffset).toBe(23);
    expect((await fetchOffset().promise).topics[0].partitions[0].committedOffset).toBe(23);
    // Commits to another group do not hold this group's fetches.
    const elsewhere = call<Any>(OFFSET_COMMIT, 8, {
      groupId: "other",
      generationIdOrMemberEpoch: -1,
      memberId: "",
      topics: [{ name: "orders", partitions: [{ partitionIndex: 0, committedOffset: 1 }] }],
    });
    expect((await fetchOffset().promise).topics[0].partitions[0].committedOffset).toBe(23);
    gates.shift()!();
    await elsewhere.promise;
  });

  test("SyncGroup: a follower's answer waits for the leader's", async () => {
    const { h, call, start } = setup();
    const request = (memberId: string) => ({
      groupId: "g",
      sessionTimeoutMs: 10_000,
      rebalanceTimeoutMs: 30_000,
      memberId,
      protocolType: "consumer",
      protocols: [{ name: "range", metadata: bytes("m") }],
    });
    const idA = (await call<Any, Any>(JOIN_GROUP, 9, request(""))).memberId;
    const idB = (await call<Any, Any>(JOIN_GROUP, 9, request(""))).memberId;
    const joinA = start<Any>(JOIN_GROUP, 9, request(idA));
    const joinB = start<Any>(JOIN_GROUP, 9, request(idB));
    h.advance(100);
    const [a, b] = await Promise.all([joinA.promise, joinB.promise]);
    expect(a.leader).toBe(idA);
    expect(b.members).toEqual([]);
    const syncB = start<Any>(SYNC_GROUP, 3, {
      groupId: "g",
      generationId: b.generationId,
      memberId: idB,
    });
    await settle();
    expect(syncB.state.value).toBeUndefined();
    await call<Any, Any>(SYNC_GROUP, 3, {
      groupId: "g",
      generationId: a.generationId,
      memberId: idA,
      assignments: [
        { memberId: idA, assignment: bytes("A") },
        { memberId: idB, assignment: bytes("B") },
      ],
    });
    expect(text((await syncB.promise).assignment)).toBe("B");
  });

  test("clientHost is reported as Kafka does: a slash and the address", () => {
    expect(clientHost("127.0.0.1:5000")).toBe("/127.0.0.1");
    expect(clientHost("::1:5000")).toBe("/::1");
    expect(clientHost("::ffff:10.0.0.1:5000")).toBe("/10.0.0.1");
  });
});
