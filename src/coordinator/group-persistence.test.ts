/**
 * Group metadata across coordinator restarts: what is stored when (Kafka's storeGroup
 * points), that members get the leader's assignment only once it is durable, and that
 * a coordinator started over the same `__consumer_offsets` puts groups back as they were.
 */
import { describe, expect, test } from "bun:test";
import { ManualClock } from "../util/clock.ts";
import type { GroupMetadataStore } from "./group-coordinator.ts";
import type { GroupSnapshot } from "./group-snapshot.ts";
import { LogOffsetStore } from "./log-offset-store.ts";
import { groupMetadataKey, groupMetadataValue, parseOffsetRecord } from "./offset-records.ts";
import {
  bytes,
  harness,
  type Harness,
  heartbeat,
  join,
  joinNew,
  SESSION_TIMEOUT_MS,
  subscription,
  sync,
  text,
  TopicTwin,
} from "./test-helpers.ts";

/** A store whose writes complete when the test says so. */
class HeldStore implements GroupMetadataStore {
  readonly stored: GroupSnapshot[] = [];
  readonly removed: string[] = [];
  readonly #pending: { resolve: () => void; reject: (error: Error) => void }[] = [];
  storeGroup(group: GroupSnapshot): Promise<void> {
    this.stored.push(group);
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }
  removeGroup(groupId: string): Promise<void> {
    this.removed.push(groupId);
    return Promise.resolve();
  }
  async release(error?: Error): Promise<void> {
    for (const each of this.#pending.splice(0)) {
      if (error === undefined) each.resolve();
      else each.reject(error);
    }
    await Promise.resolve();
    await Promise.resolve();
  }
}

/** Two members, joined and the leader's SyncGroup sent; returns their ids and replies. */
function formGroup(h: Harness) {
  const a = joinNew(h, {
    clientId: "a",
    protocols: [{ name: "range", metadata: subscription(["t"]) }],
  });
  const b = joinNew(h, {
    clientId: "b",
    protocols: [{ name: "range", metadata: subscription(["t"]) }],
  });
  h.advance(100);
  const generation = a.reply.value.generationId;
  const syncB = sync(h, b.memberId, generation);
  const syncA = sync(h, a.memberId, generation, { [a.memberId]: "A", [b.memberId]: "B" });
  return { a: a.memberId, b: b.memberId, generation, syncA, syncB };
}

describe("coordinator: group metadata is stored", () => {
  test("members get the leader's assignment only once it is stored", async () => {
    const store = new HeldStore();
    const h = harness({}, 1, { groupStore: store });
    const { a, b, generation, syncA, syncB } = formGroup(h);
    expect(syncA.answered).toBe(false);
    expect(syncB.answered).toBe(false);
    expect(h.coordinator.describeGroup("g")?.state).toBe("CompletingRebalance");
    expect(store.stored).toHaveLength(1);
    const snapshot = store.stored[0]!;
    expect(snapshot.generationId).toBe(generation);
    expect(snapshot.leaderId).toBe(a);
    expect(snapshot.members.map((m) => [m.memberId, text(m.assignment)])).toEqual([
      [a, "A"],
      [b, "B"],
    ]);
    await store.release();
    expect(text(syncA.value.assignment)).toBe("A");
    expect(text(syncB.value.assignment)).toBe("B");
    expect(h.coordinator.describeGroup("g")?.state).toBe("Stable");
  });

  test("a store that fails: COORDINATOR_NOT_AVAILABLE and a new generation", async () => {
    const store = new HeldStore();
    const h = harness({}, 1, { groupStore: store });
    const { syncA, syncB } = formGroup(h);
    await store.release(new Error("Disk on fire"));
    expect(syncA.value.error).toBe("coordinatorNotAvailable");
    expect(syncB.value.error).toBe("coordinatorNotAvailable");
    expect(h.coordinator.describeGroup("g")?.state).toBe("PreparingRebalance");
    h.coordinator.checkInvariants();
  });

  test("a rebalance while the assignment is stored wins; the late store changes nothing", async () => {
    const store = new HeldStore();
    const h = harness({}, 1, { groupStore: store });
    const { b, syncA, syncB } = formGroup(h);
    // b rejoins with new metadata: back to PreparingRebalance, parked syncs answered.
    join(h, {
      memberId: b,
      clientId: "b",
      protocols: [{ name: "range", metadata: subscription(["t", "u"]) }],
    });
    expect(syncA.value.error).toBe("rebalanceInProgress");
    expect(syncB.value.error).toBe("rebalanceInProgress");
    await store.release();
    expect(h.coordinator.describeGroup("g")?.state).toBe("PreparingRebalance");
    h.coordinator.checkInvariants();
  });

  test("a group that becomes Empty is stored without members; a removed one gets a tombstone", async () => {
    const store = new HeldStore();
    const h = harness({ emptyGroupRetentionMs: 1000 }, 1, { groupStore: store });
    const { a, b } = formGroup(h);
    await store.release();
    h.coordinator.leaveGroup("g", [
      { memberId: a, groupInstanceId: null },
      { memberId: b, groupInstanceId: null },
    ]);
    h.advance(100);
    const empty = store.stored.at(-1)!;
    expect(empty.members).toEqual([]);
    expect(empty.protocolName).toBeNull();
    expect(empty.generationId).toBe(2);
    h.advance(2000);
    expect(store.removed).toEqual(["g"]);
  });
});

describe("coordinator: group metadata after a restart", () => {
  /** Forms a Stable group over a log-backed store; returns what a restart needs. */
  async function stableGroupOnLog(groupInstanceId: string | null = null) {
    const topic = new TopicTwin();
    const clock = new ManualClock();
    const store = new LogOffsetStore(topic, clock);
    const h = harness({}, 1, { clock, groupStore: store });
    const meta = subscription(["t"]);
    const first =
      groupInstanceId === null
        ? joinNew(h, { clientId: "a", protocols: [{ name: "range", metadata: meta }] })
        : (() => {
            const reply = join(h, {
              clientId: "a",
              groupInstanceId,
              protocols: [{ name: "range", metadata: meta }],
            });
            return { reply, memberId: "" };
          })();
    h.advance(100);
    const a = first.reply.value.memberId;
    const generation = first.reply.value.generationId;
    const synced = sync(h, a, generation, { [a]: "A" }, { groupInstanceId });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(text(synced.value.assignment)).toBe("A");
    return { topic, clock, a, generation };
  }

  function restart(topic: TopicTwin, clock: ManualClock): Harness {
    const store = new LogOffsetStore(topic, clock);
    const h = harness({}, 2, { clock, groupStore: store });
    for (const group of store.loadedGroups()) expect(h.coordinator.restoreGroup(group)).toBe(true);
    h.coordinator.checkInvariants();
    return h;
  }

  test("a Stable group comes back Stable: same generation, members, leader and assignment", async () => {
    const { topic, clock, a, generation } = await stableGroupOnLog();
    const h = restart(topic, clock);
    const group = h.coordinator.describeGroup("g")!;
    expect(group.state).toBe("Stable");
    expect(group.generationId).toBe(generation);
    expect(group.leaderId).toBe(a);
    expect(group.protocolName).toBe("range");
    expect(group.members.map((m) => [m.memberId, m.clientId, text(m.assignment)])).toEqual([
      [a, "a", "A"],
    ]);
    // The member carries on: heartbeats and its SyncGroup are answered, no rebalance.
    expect(heartbeat(h, a, generation)).toBeNull();
    expect(text(sync(h, a, generation).value.assignment)).toBe("A");
    expect(
      h.coordinator.validateOffsetCommit({
        groupId: "g",
        generationId: generation,
        memberId: a,
        groupInstanceId: null,
        unknownGroupError: "groupIdNotFound",
      }),
    ).toBeNull();
  });

  test("a restored member that stays silent expires after its session", async () => {
    const { topic, clock, a, generation } = await stableGroupOnLog();
    const h = restart(topic, clock);
    h.advance(SESSION_TIMEOUT_MS - 200);
    expect(heartbeat(h, a, generation)).toBeNull();
    h.advance(SESSION_TIMEOUT_MS + 200);
    expect(h.coordinator.describeGroup("g")?.state).toBe("Empty");
  });

  test("a static member's new member id survives the restart", async () => {
    const { topic, clock, a, generation } = await stableGroupOnLog("instance-1");
    const h1 = restart(topic, clock);
    // The static member restarts (unknown member id): a new id, no rebalance, stored.
    const rejoin = join(h1, {
      memberId: "",
      groupInstanceId: "instance-1",
      clientId: "a",
      protocols: [{ name: "range", metadata: subscription(["t"]) }],
    });
    const newId = rejoin.value.memberId;
    expect(newId).not.toBe(a);
    expect(rejoin.value.generationId).toBe(generation);
    await new Promise((resolve) => setTimeout(resolve, 0));
    const h2 = restart(topic, clock);
    expect(heartbeat(h2, newId, generation, "instance-1")).toBeNull();
    expect(heartbeat(h2, a, generation, "instance-1")).toBe("fencedInstanceId");
  });

  test("a deleted group stays deleted", async () => {
    const { topic, clock, a } = await stableGroupOnLog();
    const h1 = restart(topic, clock);
    h1.coordinator.leaveGroup("g", [{ memberId: a, groupInstanceId: null }]);
    h1.advance(100);
    expect(h1.coordinator.deleteGroup("g")).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 0));
    const h2 = restart(topic, clock);
    expect(h2.coordinator.describeGroup("g")).toBeUndefined();
  });
});

describe("coordinator: group metadata records", () => {
  const snapshot: GroupSnapshot = {
    groupId: "orders",
    protocolType: "consumer",
    generationId: 7,
    protocolName: "cooperative-sticky",
    leaderId: "m-1",
    stateTimestampMs: 1_700_000_000_123,
    members: [
      {
        memberId: "m-1",
        groupInstanceId: "i-1",
        clientId: "c1",
        clientHost: "/127.0.0.1",
        rebalanceTimeoutMs: 300_000,
        sessionTimeoutMs: 45_000,
        subscription: bytes("sub"),
        assignment: bytes("asg"),
      },
      {
        memberId: "m-2",
        groupInstanceId: null,
        clientId: "c2",
        clientHost: "/127.0.0.2",
        rebalanceTimeoutMs: 60_000,
        sessionTimeoutMs: 10_000,
        subscription: bytes(""),
        assignment: bytes(""),
      },
    ],
  };

  test("key version 2 and value version 3 round-trip", () => {
    const key = groupMetadataKey("orders");
    expect([...key.subarray(0, 2)]).toEqual([0, 2]);
    expect(parseOffsetRecord(key, groupMetadataValue(snapshot))).toEqual({
      kind: "group",
      groupId: "orders",
      group: snapshot,
    });
    expect(parseOffsetRecord(key, null)).toEqual({ kind: "groupDeleted", groupId: "orders" });
    const empty = { ...snapshot, protocolName: null, leaderId: null, members: [] };
    expect(parseOffsetRecord(key, groupMetadataValue(empty))).toEqual({
      kind: "group",
      groupId: "orders",
      group: empty,
    });
  });

  test("every truncation of a value and a future version are not group records", () => {
    const key = groupMetadataKey("orders");
    const value = groupMetadataValue(snapshot);
    for (let size = 0; size < value.length; size++) {
      expect(parseOffsetRecord(key, value.subarray(0, size))).toBeNull();
    }
    const future = Buffer.from(value);
    future.writeInt16BE(4, 0);
    expect(parseOffsetRecord(key, future)).toBeNull();
  });
});

describe("coordinator: groups of other nodes", () => {
  test("a group this node does not coordinate gets NOT_COORDINATOR everywhere", () => {
    const h = harness({}, 1, { ownsGroup: (groupId) => groupId !== "g" });
    expect(join(h, {}).value.error).toBe("notCoordinator");
    expect(sync(h, "m", 1).value.error).toBe("notCoordinator");
    expect(heartbeat(h, "m", 1)).toBe("notCoordinator");
    expect(h.coordinator.leaveGroup("g", [{ memberId: "m", groupInstanceId: null }]).error).toBe(
      "notCoordinator",
    );
    expect(
      h.coordinator.validateOffsetCommit({
        groupId: "g",
        generationId: -1,
        memberId: "",
        groupInstanceId: null,
        unknownGroupError: "groupIdNotFound",
      }),
    ).toBe("notCoordinator");
    expect(h.coordinator.validateOffsetDelete("g").error).toBe("notCoordinator");
    expect(h.coordinator.deleteGroup("g")).toBe("notCoordinator");
    expect(h.coordinator.coordinates("g")).toBe(false);
    // Its own groups work as ever.
    expect(join(h, { groupId: "mine" }).value.error).toBe("memberIdRequired");
  });
});
