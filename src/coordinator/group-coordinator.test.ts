import { describe, expect, test } from "bun:test";
import { subscriptionTopics } from "./consumer-protocol.ts";
import type { JoinGroupResult } from "./group-coordinator.ts";
import {
  bytes,
  type Harness,
  harness,
  heartbeat,
  join,
  joinNew,
  protocols,
  REBALANCE_TIMEOUT_MS,
  type Reply,
  SESSION_TIMEOUT_MS,
  subscription,
  sync,
  text,
} from "./test-helpers.ts";

const INITIAL_DELAY_MS = 3_000;

/**
 * Three dynamic members joined during the initial delay; every join arrived within the
 * first delay, so the group waits one more delay (Kafka's InitialDelayedJoin).
 */
function stableGroupOfThree(h: Harness) {
  const a = joinNew(h, { clientId: "a", protocols: protocols("range", "roundrobin") });
  const b = joinNew(h, { clientId: "b", protocols: protocols("roundrobin", "range") });
  const c = joinNew(h, { clientId: "c", protocols: protocols("roundrobin", "range") });
  return { a, b, c };
}

function state(h: Harness, groupId = "g") {
  return h.coordinator.describeGroup(groupId)?.state;
}

describe("coordinator: join", () => {
  test("three members form one generation; the leader alone gets every member's metadata", () => {
    const h = harness({ initialRebalanceDelayMs: INITIAL_DELAY_MS });
    const { a, b, c } = stableGroupOfThree(h);
    expect(state(h)).toBe("PreparingRebalance");
    h.advance(INITIAL_DELAY_MS);
    // b and c joined during the first delay: the group waits once more.
    expect(a.reply.answered).toBe(false);
    h.advance(INITIAL_DELAY_MS);
    const results = [a, b, c].map((m) => m.reply.value);
    for (const result of results) {
      expect(result.error).toBeNull();
      expect(result.generationId).toBe(1);
      expect(result.leader).toBe(a.memberId);
      // Votes: a prefers range, b and c roundrobin; both are supported by all.
      expect(result.protocolName).toBe("roundrobin");
      expect(result.protocolType).toBe("consumer");
    }
    const ids = results[0]!.members.map((m) => m.memberId);
    expect(ids).toEqual([a.memberId, b.memberId, c.memberId]);
    expect(results[0]!.members.map((m) => text(m.metadata))).toEqual([
      "meta-roundrobin",
      "meta-roundrobin",
      "meta-roundrobin",
    ]);
    expect(results[1]!.members).toEqual([]);
    expect(results[2]!.members).toEqual([]);
    expect(state(h)).toBe("CompletingRebalance");
  });

  test("member ids are the client id, a dash and a UUID", () => {
    const h = harness();
    const { memberId } = joinNew(h, { clientId: "my-client" });
    const uuid = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";
    expect(memberId).toMatch(new RegExp(`^my-client-${uuid}$`));
  });

  test("KIP-394: JoinGroup v4+ without a member id gets MEMBER_ID_REQUIRED and an id", () => {
    const h = harness();
    const first = join(h, { clientId: "x" });
    expect(first.value.error).toBe("memberIdRequired");
    expect(first.value.memberId.startsWith("x-")).toBe(true);
    expect(first.value.generationId).toBe(-1);
    // The group exists, Empty, with the id pending.
    expect(state(h)).toBe("Empty");
    const second = join(h, { clientId: "x", memberId: first.value.memberId });
    expect(second.answered).toBe(false);
    expect(state(h)).toBe("PreparingRebalance");
    h.advance(100); // Initial delay 0: the group forms at the next tick.
    expect(second.value.error).toBeNull();
    expect(second.value.leader).toBe(first.value.memberId);
    expect(second.value.generationId).toBe(1);
  });

  test("KIP-394: a handed-out member id never used expires after the session timeout", () => {
    const h = harness();
    const { memberId, reply } = joinNew(h, { clientId: "a" });
    h.advance(100);
    const generation = reply.value.generationId;
    sync(h, memberId, generation, { [memberId]: "x" });
    // A second client gets an id but never comes back with it.
    join(h, { clientId: "b" });
    // The leader rejoins: the rebalance waits for the pending id...
    const rejoin = join(h, { memberId });
    heartbeat(h, memberId, generation);
    h.advance(SESSION_TIMEOUT_MS - 200);
    expect(rejoin.answered).toBe(false);
    // ...until it expires.
    h.advance(300);
    expect(rejoin.value.error).toBeNull();
    expect(rejoin.value.generationId).toBe(generation + 1);
  });

  test("a rebalance left with no members still accepts a handed-out member id", () => {
    const h = harness();
    const { a } = formGroup(h);
    const pending = join(h, { clientId: "late" }).value.memberId;
    h.coordinator.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    const b = h.coordinator.describeGroup("g")!.members[0]!;
    h.coordinator.leaveGroup("g", [{ memberId: b.memberId, groupInstanceId: null }]);
    // The handed-out id keeps the rebalance open although no member is left.
    expect(state(h)).toBe("PreparingRebalance");
    const late = join(h, { clientId: "late", memberId: pending });
    expect(late.value.error).toBeNull();
    expect(late.value.leader).toBe(pending);
  });

  test("JoinGroup before v4 adds the member at once", () => {
    const h = harness();
    const reply = join(h, { requireKnownMemberId: false });
    expect(reply.answered).toBe(false);
    h.advance(100);
    expect(reply.value.error).toBeNull();
    expect(reply.value.memberId).not.toBe("");
  });

  test("the empty group id is INVALID_GROUP_ID", () => {
    const h = harness();
    expect(join(h, { groupId: "" }).value.error).toBe("invalidGroupId");
    expect(sync(h, "m", 1, {}, { groupId: "" }).value.error).toBe("invalidGroupId");
    const hb = { groupId: "", generationId: 1, memberId: "m", groupInstanceId: null };
    expect(h.coordinator.heartbeat(hb)).toBe("invalidGroupId");
    const leaving = [{ memberId: "m", groupInstanceId: null }];
    expect(h.coordinator.leaveGroup("", leaving).error).toBe("invalidGroupId");
  });

  test("session timeouts outside [6000, 1800000] are INVALID_SESSION_TIMEOUT", () => {
    const h = harness();
    expect(join(h, { sessionTimeoutMs: 5_999 }).value.error).toBe("invalidSessionTimeout");
    expect(join(h, { sessionTimeoutMs: 1_800_001 }).value.error).toBe("invalidSessionTimeout");
    expect(join(h, { sessionTimeoutMs: 6_000 }).value.error).toBe("memberIdRequired");
  });

  test("a member id for a group that does not exist is UNKNOWN_MEMBER_ID", () => {
    const h = harness();
    expect(join(h, { memberId: "stale" }).value.error).toBe("unknownMemberId");
    expect(h.coordinator.describeGroup("g")).toBeUndefined();
  });

  test("a protocol type or protocols the group lacks: INCONSISTENT_GROUP_PROTOCOL", () => {
    const h = harness();
    expect(join(h, { protocolType: "" }).value.error).toBe("inconsistentGroupProtocol");
    expect(join(h, { protocols: [] }).value.error).toBe("inconsistentGroupProtocol");
    joinNew(h, { protocols: protocols("range") });
    const sticky = join(h, { protocols: protocols("sticky") });
    expect(sticky.value.error).toBe("inconsistentGroupProtocol");
    expect(join(h, { protocolType: "connect" }).value.error).toBe("inconsistentGroupProtocol");
  });

  test("group.max.size: a member beyond the limit is GROUP_MAX_SIZE_REACHED", () => {
    const h = harness({ groupSizeMax: 2 });
    const a = joinNew(h, { clientId: "a" });
    const b = joinNew(h, { clientId: "b" });
    // Two members await the join already: the third gets no member id.
    const c = join(h, { clientId: "c" });
    expect(c.value.error).toBe("groupMaxSizeReached");
    expect(c.value.memberId).toBe("");
    h.advance(100);
    expect(a.reply.value.error).toBeNull();
    expect(b.reply.value.error).toBeNull();
    expect(h.coordinator.describeGroup("g")?.members.length).toBe(2);
  });

  test("a follower rejoining with unchanged metadata in Stable gets the current generation", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    const again = join(h, { memberId: b.memberId, clientId: "b" });
    expect(again.value.error).toBeNull();
    expect(again.value.generationId).toBe(a.generation);
    expect(again.value.members).toEqual([]);
    expect(state(h)).toBe("Stable");
  });

  test("the leader rejoining in Stable starts a rebalance", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    const again = join(h, { memberId: a.memberId, clientId: "a" });
    expect(again.answered).toBe(false);
    expect(state(h)).toBe("PreparingRebalance");
    expect(heartbeat(h, b.memberId, a.generation)).toBe("rebalanceInProgress");
    const followerRejoin = join(h, { memberId: b.memberId, clientId: "b" });
    // Everybody rejoined: the join phase ends at once (not the initial one).
    expect(again.value.generationId).toBe(a.generation + 1);
    expect(followerRejoin.value.generationId).toBe(a.generation + 1);
  });

  test("a newer JoinGroup of a parked member answers the older with REBALANCE_IN_PROGRESS", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    const first = join(h, { memberId: a.memberId, clientId: "a" });
    const second = join(h, { memberId: a.memberId, clientId: "a" });
    expect(first.value.error).toBe("rebalanceInProgress");
    expect(second.answered).toBe(false);
    join(h, { memberId: b.memberId, clientId: "b" });
    expect(second.value.error).toBeNull();
  });
});

/** Two dynamic members a (leader) and b in a Stable group with assignments. */
function formGroup(h: Harness) {
  const a = joinNew(h, { clientId: "a" });
  const b = joinNew(h, { clientId: "b" });
  h.advance(100);
  const generation = a.reply.value.generationId;
  expect(b.reply.value.generationId).toBe(generation);
  sync(h, b.memberId, generation);
  sync(h, a.memberId, generation, { [a.memberId]: "A", [b.memberId]: "B" });
  expect(h.coordinator.describeGroup("g")?.state).toBe("Stable");
  return {
    a: { memberId: a.memberId, generation },
    b: { memberId: b.memberId, generation },
  };
}

describe("coordinator: sync", () => {
  test("followers wait for the leader, whose assignment reaches every member", () => {
    const h = harness({ initialRebalanceDelayMs: INITIAL_DELAY_MS });
    const { a, b, c } = stableGroupOfThree(h);
    h.advance(2 * INITIAL_DELAY_MS);
    const generation = a.reply.value.generationId;
    const syncB = sync(h, b.memberId, generation);
    expect(syncB.answered).toBe(false);
    // The leader leaves c out: c gets an empty assignment, as in Kafka.
    const syncA = sync(h, a.memberId, generation, { [a.memberId]: "for-a", [b.memberId]: "for-b" });
    expect(text(syncA.value.assignment)).toBe("for-a");
    expect(text(syncB.value.assignment)).toBe("for-b");
    expect(syncB.value.protocolName).toBe("roundrobin");
    expect(state(h)).toBe("Stable");
    // A member syncing after the leader gets its assignment at once.
    const syncC = sync(h, c.memberId, generation);
    expect(syncC.value.error).toBeNull();
    expect(syncC.value.assignment.byteLength).toBe(0);
    const described = h.coordinator.describeGroup("g")!;
    expect(described.members.map((m) => text(m.assignment))).toEqual(["for-a", "for-b", ""]);
    expect(described.protocolName).toBe("roundrobin");
  });

  test("SyncGroup checks member, generation and protocol", () => {
    const h = harness();
    const { a } = formGroup(h);
    expect(sync(h, "nobody", a.generation).value.error).toBe("unknownMemberId");
    expect(sync(h, a.memberId, a.generation + 1).value.error).toBe("illegalGeneration");
    const otherGroup = sync(h, a.memberId, a.generation, {}, { groupId: "other" });
    expect(otherGroup.value.error).toBe("unknownMemberId");
    const wrongProtocol = new Array<string>();
    h.coordinator.syncGroup(
      {
        groupId: "g",
        generationId: a.generation,
        memberId: a.memberId,
        groupInstanceId: null,
        protocolType: "consumer",
        protocolName: "sticky",
        assignments: [],
      },
      (result) => wrongProtocol.push(String(result.error)),
    );
    expect(wrongProtocol).toEqual(["inconsistentGroupProtocol"]);
  });

  test("a SyncGroup during PreparingRebalance is REBALANCE_IN_PROGRESS", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    join(h, { memberId: a.memberId });
    expect(sync(h, b.memberId, b.generation).value.error).toBe("rebalanceInProgress");
  });

  test("a leader that never syncs is removed after the rebalance timeout", () => {
    const h = harness();
    const a = joinNew(h, { clientId: "a" });
    const b = joinNew(h, { clientId: "b" });
    h.advance(100);
    const generation = a.reply.value.generationId;
    const syncB = sync(h, b.memberId, generation);
    // The leader stays alive but never sends its SyncGroup.
    for (let elapsed = 0; elapsed < REBALANCE_TIMEOUT_MS; elapsed += 3_000) {
      expect(heartbeat(h, a.memberId, generation)).toBeNull();
      h.advance(3_000);
    }
    expect(syncB.value.error).toBe("rebalanceInProgress");
    expect(h.coordinator.describeGroup("g")?.members.map((m) => m.memberId)).toEqual([b.memberId]);
    const rejoin = join(h, { memberId: b.memberId });
    expect(rejoin.value.generationId).toBe(generation + 1);
    expect(rejoin.value.leader).toBe(b.memberId);
  });
});

describe("coordinator: unload", () => {
  test("unloading a group answers parked joins and syncs NOT_COORDINATOR and forgets the group", () => {
    const h = harness({ initialRebalanceDelayMs: INITIAL_DELAY_MS });
    const { a, b } = stableGroupOfThree(h);
    h.advance(2 * INITIAL_DELAY_MS);
    const generation = a.reply.value.generationId;
    const syncB = sync(h, b.memberId, generation);
    expect(syncB.answered).toBe(false);
    const other = joinNew(h, { groupId: "other" });
    expect(other.reply.answered).toBe(false);
    h.coordinator.unloadGroups(["g", "other", "never-seen"]);
    expect(syncB.value.error).toBe("notCoordinator");
    expect(other.reply.value.error).toBe("notCoordinator");
    expect(h.coordinator.describeGroup("g")).toBeUndefined();
    expect(h.coordinator.listGroups()).toEqual([]);
    // Nothing of the old groups runs on: their sessions no longer expire anything here.
    h.advance(SESSION_TIMEOUT_MS * 2);
    expect(h.coordinator.listGroups()).toEqual([]);
  });
});

describe("coordinator: leave and expiry", () => {
  test("a member leaves: the group rebalances and the rest rejoin", () => {
    const h = harness({ initialRebalanceDelayMs: INITIAL_DELAY_MS });
    const { a, b, c } = stableGroupOfThree(h);
    h.advance(2 * INITIAL_DELAY_MS);
    const generation = a.reply.value.generationId;
    sync(h, a.memberId, generation, { [a.memberId]: "1", [b.memberId]: "2", [c.memberId]: "3" });
    sync(h, b.memberId, generation);
    sync(h, c.memberId, generation);
    const left = h.coordinator.leaveGroup("g", [{ memberId: c.memberId, groupInstanceId: null }]);
    const leftMember = { memberId: c.memberId, groupInstanceId: null, error: null };
    expect(left).toEqual({ error: null, members: [leftMember] });
    expect(state(h)).toBe("PreparingRebalance");
    expect(heartbeat(h, a.memberId, generation)).toBe("rebalanceInProgress");
    expect(heartbeat(h, c.memberId, generation)).toBe("unknownMemberId");
    const rejoinA = join(h, { memberId: a.memberId, protocols: protocols("range", "roundrobin") });
    expect(rejoinA.answered).toBe(false);
    const rejoinB = join(h, { memberId: b.memberId, protocols: protocols("roundrobin", "range") });
    for (const reply of [rejoinA, rejoinB]) {
      expect(reply.value.error).toBeNull();
      expect(reply.value.generationId).toBe(generation + 1);
    }
    expect(rejoinA.value.members.map((m) => m.memberId)).toEqual([a.memberId, b.memberId]);
    // One vote each: the tie goes to the first vote cast (a's range).
    expect(rejoinA.value.protocolName).toBe("range");
  });

  test("leaving members are answered one by one; unknown ones are UNKNOWN_MEMBER_ID", () => {
    const h = harness();
    const { a } = formGroup(h);
    const result = h.coordinator.leaveGroup("g", [
      { memberId: "nobody", groupInstanceId: null },
      { memberId: a.memberId, groupInstanceId: null },
    ]);
    expect(result.members.map((m) => m.error)).toEqual(["unknownMemberId", null]);
    const stranger = [{ memberId: "x", groupInstanceId: null }];
    const unknownGroup = h.coordinator.leaveGroup("other", stranger);
    expect(unknownGroup).toEqual({
      error: null,
      members: [{ memberId: "x", groupInstanceId: null, error: "unknownMemberId" }],
    });
  });

  test("the last member leaving empties the group and bumps the generation", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    h.coordinator.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    h.coordinator.leaveGroup("g", [{ memberId: b.memberId, groupInstanceId: null }]);
    const described = h.coordinator.describeGroup("g")!;
    expect(described.state).toBe("Empty");
    expect(described.generationId).toBe(a.generation + 1);
    expect(described.protocolType).toBe("consumer");
  });

  test("a member whose session expires is removed and the group rebalances", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    // a heartbeats, b stays silent.
    for (let elapsed = 0; elapsed < SESSION_TIMEOUT_MS; elapsed += 3_000) {
      expect(heartbeat(h, a.memberId, a.generation)).toBeNull();
      h.advance(3_000);
    }
    expect(state(h)).toBe("PreparingRebalance");
    expect(h.coordinator.describeGroup("g")?.members.map((m) => m.memberId)).toEqual([a.memberId]);
    expect(heartbeat(h, b.memberId, b.generation)).toBe("unknownMemberId");
    expect(heartbeat(h, a.memberId, a.generation)).toBe("rebalanceInProgress");
    const rejoin = join(h, { memberId: a.memberId });
    expect(rejoin.value.generationId).toBe(a.generation + 1);
  });

  test("a member that does not rejoin within the rebalance timeout is dropped", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    const rejoin = join(h, { memberId: a.memberId });
    // b keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    for (let elapsed = 0; elapsed < REBALANCE_TIMEOUT_MS; elapsed += 3_000) {
      heartbeat(h, b.memberId, b.generation);
      h.advance(3_000);
    }
    expect(rejoin.value.error).toBeNull();
    expect(rejoin.value.members.map((m) => m.memberId)).toEqual([a.memberId]);
    expect(heartbeat(h, b.memberId, b.generation)).toBe("unknownMemberId");
  });

  test("heartbeat: unknown group or member, and a wrong generation", () => {
    const h = harness();
    const { a } = formGroup(h);
    const hb = { groupId: "none", generationId: 1, memberId: a.memberId, groupInstanceId: null };
    expect(h.coordinator.heartbeat(hb)).toBe("unknownMemberId");
    expect(heartbeat(h, "nobody", a.generation)).toBe("unknownMemberId");
    expect(heartbeat(h, a.memberId, a.generation - 1)).toBe("illegalGeneration");
    expect(heartbeat(h, a.memberId, a.generation)).toBeNull();
  });

  test("an Empty group without offsets is dropped after the retention", async () => {
    const h = harness({ emptyGroupRetentionMs: 60_000 });
    const { a } = formGroup(h);
    h.coordinator.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    const b = h.coordinator.describeGroup("g")!.members[0]!;
    h.coordinator.leaveGroup("g", [{ memberId: b.memberId, groupInstanceId: null }]);
    expect(
      h.coordinator.validateOffsetCommit({
        groupId: "kept",
        generationId: -1,
        memberId: "",
        groupInstanceId: null,
        unknownGroupError: "illegalGeneration",
      }),
    ).toBeNull();
    await h.offsets.commit("kept", [
      {
        topic: "t",
        partition: 0,
        offset: 1,
        leaderEpoch: -1,
        metadata: "",
        commitTimestampMs: 0,
        expireTimestampMs: null,
      },
    ]);
    h.advance(59_900);
    expect(state(h)).toBe("Empty");
    h.advance(200);
    expect(state(h)).toBeUndefined();
    expect(state(h, "kept")).toBe("Empty");
  });
});

describe("coordinator: static membership (KIP-345)", () => {
  function staticGroup(h: Harness, sessionTimeoutMs = SESSION_TIMEOUT_MS) {
    const a = join(h, { groupInstanceId: "ia", clientId: "a", sessionTimeoutMs });
    const b = join(h, { groupInstanceId: "ib", clientId: "b", sessionTimeoutMs });
    h.advance(100);
    const generation = a.value.generationId;
    const aId = a.value.memberId;
    const bId = b.value.memberId;
    expect(aId.startsWith("ia-")).toBe(true);
    sync(h, aId, generation, { [aId]: "A", [bId]: "B" }, { groupInstanceId: "ia" });
    sync(h, bId, generation, {}, { groupInstanceId: "ib" });
    return { aId, bId, generation };
  }

  test("a static member needs no MEMBER_ID_REQUIRED round", () => {
    const h = harness();
    const reply = join(h, { groupInstanceId: "i1" });
    expect(reply.answered).toBe(false);
    h.advance(100);
    expect(reply.value.error).toBeNull();
  });

  test("a restarted static member gets a new id and its old assignment, with no rebalance", () => {
    const h = harness();
    const { aId, bId, generation } = staticGroup(h);
    const rejoin = join(h, { groupInstanceId: "ib", clientId: "b" });
    const result = rejoin.value;
    expect(result.error).toBeNull();
    expect(result.memberId).not.toBe(bId);
    expect(result.generationId).toBe(generation);
    expect(result.leader).toBe(aId);
    expect(result.members).toEqual([]);
    expect(state(h)).toBe("Stable");
    const synced = sync(h, result.memberId, generation, {}, { groupInstanceId: "ib" });
    expect(text(synced.value.assignment)).toBe("B");
    expect(h.coordinator.describeGroup("g")?.generationId).toBe(generation);
  });

  test("a restarted static leader: the old leader id before v9, skipAssignment from v9", () => {
    const h = harness();
    const { aId, generation } = staticGroup(h);
    const old = join(h, { groupInstanceId: "ia" }).value;
    expect(old.leader).toBe(aId);
    expect(old.memberId).not.toBe(aId);
    expect(old.members).toEqual([]);
    const v9 = join(h, { groupInstanceId: "ia", supportSkippingAssignment: true }).value;
    expect(v9.leader).toBe(v9.memberId);
    expect(v9.skipAssignment).toBe(true);
    expect(v9.members.length).toBe(2);
    expect(v9.generationId).toBe(generation);
  });

  test("the replaced member id is fenced: FENCED_INSTANCE_ID", () => {
    const h = harness();
    const { bId, generation } = staticGroup(h);
    join(h, { groupInstanceId: "ib" });
    expect(heartbeat(h, bId, generation, "ib")).toBe("fencedInstanceId");
    const fencedSync = sync(h, bId, generation, {}, { groupInstanceId: "ib" });
    expect(fencedSync.value.error).toBe("fencedInstanceId");
    expect(join(h, { memberId: bId, groupInstanceId: "ib" }).value.error).toBe("fencedInstanceId");
    expect(
      h.coordinator.validateOffsetCommit({
        groupId: "g",
        generationId: generation,
        memberId: bId,
        groupInstanceId: "ib",
        unknownGroupError: "illegalGeneration",
      }),
    ).toBe("fencedInstanceId");
  });

  test("a parked JoinGroup of the replaced member id is answered FENCED_INSTANCE_ID", () => {
    const h = harness();
    const { aId, bId } = staticGroup(h);
    const parked = join(h, { memberId: aId, groupInstanceId: "ia" }); // leader: rebalance
    expect(parked.answered).toBe(false);
    join(h, { groupInstanceId: "ia" });
    expect(parked.value.error).toBe("fencedInstanceId");
    expect(parked.value.memberId).toBe(aId);
    expect(bId).toBeDefined();
  });

  test("a static member that does not rejoin keeps its place in the next generation", () => {
    const h = harness();
    // Static members are given session timeouts longer than a restart takes.
    const { aId, bId, generation } = staticGroup(h, 2 * REBALANCE_TIMEOUT_MS);
    const sessionTimeoutMs = 2 * REBALANCE_TIMEOUT_MS;
    const rejoin = join(h, { memberId: aId, groupInstanceId: "ia", sessionTimeoutMs });
    h.advance(REBALANCE_TIMEOUT_MS);
    expect(rejoin.value.generationId).toBe(generation + 1);
    expect(rejoin.value.members.map((m) => m.memberId)).toEqual([aId, bId]);
  });

  test("an admin removes a static member by instance id", () => {
    const h = harness();
    const { bId } = staticGroup(h);
    const result = h.coordinator.leaveGroup("g", [{ memberId: "", groupInstanceId: "ib" }]);
    expect(result.members[0]!.error).toBeNull();
    const memberIds = h.coordinator.describeGroup("g")?.members.map((m) => m.memberId);
    expect(memberIds?.includes(bId)).toBe(false);
    const again = h.coordinator.leaveGroup("g", [{ memberId: "", groupInstanceId: "ib" }]);
    expect(again.members[0]!.error).toBe("unknownMemberId");
  });
});

describe("coordinator: offsets and deletion", () => {
  const commit = (h: Harness, generationId: number, memberId: string, groupId = "g") =>
    h.coordinator.validateOffsetCommit({
      groupId,
      generationId,
      memberId,
      groupInstanceId: null,
      unknownGroupError: "illegalGeneration",
    });

  test("a commit from the current generation passes; a stale one: ILLEGAL_GENERATION", () => {
    const h = harness();
    const { a } = formGroup(h);
    expect(commit(h, a.generation, a.memberId)).toBeNull();
    expect(commit(h, a.generation - 1, a.memberId)).toBe("illegalGeneration");
    expect(commit(h, a.generation, "nobody")).toBe("unknownMemberId");
    // Generation -1 from outside the group while it has members.
    expect(commit(h, -1, "")).toBe("unknownMemberId");
  });

  test("simple commits (generation -1) create the group and are allowed while Empty", () => {
    const h = harness();
    expect(commit(h, -1, "", "simple")).toBeNull();
    expect(h.coordinator.describeGroup("simple")?.state).toBe("Empty");
    const overview = { groupId: "simple", protocolType: "", state: "Empty" as const };
    expect(h.coordinator.listGroups()).toEqual([overview]);
    expect(commit(h, 3, "m", "missing")).toBe("illegalGeneration");
    expect(
      h.coordinator.validateOffsetCommit({
        groupId: "missing",
        generationId: 3,
        memberId: "m",
        groupInstanceId: null,
        unknownGroupError: "groupIdNotFound",
      }),
    ).toBe("groupIdNotFound");
    expect(h.coordinator.describeGroup("missing")).toBeUndefined();
  });

  test("a commit while the group awaits its assignment is REBALANCE_IN_PROGRESS", () => {
    const h = harness();
    const a = joinNew(h, { clientId: "a" });
    h.advance(100);
    expect(commit(h, a.reply.value.generationId, a.memberId)).toBe("rebalanceInProgress");
  });

  test("a commit keeps a member alive", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    for (let elapsed = 0; elapsed < 2 * SESSION_TIMEOUT_MS; elapsed += 3_000) {
      expect(commit(h, a.generation, a.memberId)).toBeNull();
      heartbeat(h, b.memberId, b.generation);
      h.advance(3_000);
    }
    expect(state(h)).toBe("Stable");
  });

  test("DeleteGroups: NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, or an Empty group goes", () => {
    const h = harness();
    const { a, b } = formGroup(h);
    expect(h.coordinator.deleteGroup("g")).toBe("nonEmptyGroup");
    expect(h.coordinator.deleteGroup("none")).toBe("groupIdNotFound");
    const leaving = [a, b].map((m) => ({ memberId: m.memberId, groupInstanceId: null }));
    h.coordinator.leaveGroup("g", leaving);
    expect(h.coordinator.deleteGroup("g")).toBeNull();
    expect(h.coordinator.describeGroup("g")).toBeUndefined();
    expect(h.coordinator.deleteGroup("g")).toBe("groupIdNotFound");
  });

  test("OffsetDelete: a consumer group keeps the offsets of topics it subscribes to", () => {
    const h = harness();
    const meta = subscription(["orders", "payments"]);
    const a = joinNew(h, { protocols: [{ name: "range", metadata: meta }] });
    h.advance(100);
    const check = h.coordinator.validateOffsetDelete("g");
    if (check.error !== null) throw new Error(check.error);
    expect(check.isSubscribed("orders")).toBe(true);
    expect(check.isSubscribed("other")).toBe(false);
    expect(h.coordinator.validateOffsetDelete("none").error).toBe("groupIdNotFound");
    expect(h.coordinator.validateOffsetDelete("").error).toBe("invalidGroupId");
    h.coordinator.leaveGroup("g", [{ memberId: a.memberId, groupInstanceId: null }]);
    const empty = h.coordinator.validateOffsetDelete("g");
    expect(empty.error === null && empty.isSubscribed("orders")).toBe(false);
  });

  test("OffsetDelete: a non-consumer group with members is NON_EMPTY_GROUP", () => {
    const h = harness();
    joinNew(h, { protocolType: "connect" });
    h.advance(100);
    expect(h.coordinator.validateOffsetDelete("g").error).toBe("nonEmptyGroup");
  });
});

describe("coordinator: consumer protocol", () => {
  test("subscription topics are read from any version's v0 prefix", () => {
    expect(subscriptionTopics(subscription(["a", "bé"]))).toEqual(["a", "bé"]);
    expect(subscriptionTopics(subscription(["x"], 3))).toEqual(["x"]);
    expect(subscriptionTopics(bytes("junk"))).toBeNull();
    expect(subscriptionTopics(new Uint8Array([0, 0, 0x7f, 0xff, 0xff, 0xff]))).toBeNull();
    expect(subscriptionTopics(new Uint8Array(0))).toBeNull();
  });
});

describe("coordinator: callbacks", () => {
  test("a callback may call the coordinator again", () => {
    const h = harness();
    const seen: (string | null)[] = [];
    h.coordinator.joinGroup(
      {
        groupId: "g",
        memberId: "",
        groupInstanceId: null,
        requireKnownMemberId: true,
        supportSkippingAssignment: false,
        clientId: "c",
        clientHost: "/h",
        rebalanceTimeoutMs: 1000,
        sessionTimeoutMs: SESSION_TIMEOUT_MS,
        protocolType: "consumer",
        protocols: protocols("range"),
      },
      (result: JoinGroupResult) => {
        seen.push(result.error);
        const { memberId } = result;
        const hb = { groupId: "g", generationId: 0, memberId, groupInstanceId: null };
        seen.push(h.coordinator.heartbeat(hb));
      },
    );
    expect(seen).toEqual(["memberIdRequired", "unknownMemberId"]);
  });
});

describe("coordinator: simulation", () => {
  /**
   * Seeded random clients join, sync, heartbeat, leave, crash and rejoin while time
   * passes; invariants are checked after every step. Then every client stops: within
   * bounded time every parked request is answered and the group is Empty.
   */
  test("random clients: invariants hold and every parked request is answered", () => {
    const seeds = process.env.BROOK_SEED === undefined ? 200 : 1;
    for (let run = 0; run < seeds; run++) {
      const seed = process.env.BROOK_SEED === undefined ? run + 1 : Number(process.env.BROOK_SEED);
      try {
        simulate(seed);
      } catch (error) {
        throw new Error(`Simulation failed with BROOK_SEED=${seed}: ${String(error)}`);
      }
    }
  });
});

interface SimClient {
  memberId: string;
  instanceId: string | null;
  generation: number;
  join: Reply<JoinGroupResult> | null;
  syncs: number;
}

function simulate(seed: number): void {
  const h = harness({ initialRebalanceDelayMs: seed % 2 === 0 ? 0 : 500 }, seed);
  let state = seed >>> 0;
  const rand = (n: number) => {
    state = (Math.imul(state ^ (state >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    return state % n;
  };
  const clients: SimClient[] = [];
  const replies: { answered: boolean }[] = [];
  for (let i = 0; i < 5; i++) {
    const instanceId = i < 2 ? `i${i}` : null;
    clients.push({ memberId: "", instanceId, generation: -1, join: null, syncs: 0 });
  }
  for (let step = 0; step < 300; step++) {
    const client = clients[rand(clients.length)]!;
    const joinResult = client.join?.values.at(-1);
    if (joinResult !== undefined) {
      if (joinResult.error === null) {
        client.memberId = joinResult.memberId;
        client.generation = joinResult.generationId;
      } else if (joinResult.error === "memberIdRequired") {
        client.memberId = joinResult.memberId;
      } else if (joinResult.error !== "rebalanceInProgress") {
        client.memberId = "";
      }
      client.join = null;
    }
    switch (rand(7)) {
      case 0:
      case 1: {
        const reply = join(h, {
          memberId: client.memberId,
          groupInstanceId: client.instanceId,
          protocols: protocols(...(rand(2) === 0 ? ["range", "sticky"] : ["sticky", "range"])),
          rebalanceTimeoutMs: 2_000 + rand(3) * 1_000,
        });
        client.join = reply;
        replies.push(reply);
        break;
      }
      case 2: {
        const leader = h.coordinator.describeGroup("g")?.leaderId === client.memberId;
        const assignments: Record<string, string> = {};
        if (leader) {
          for (const m of h.coordinator.describeGroup("g")!.members) {
            assignments[m.memberId] = m.memberId;
          }
        }
        const options = { groupInstanceId: client.instanceId };
        replies.push(sync(h, client.memberId, client.generation, assignments, options));
        break;
      }
      case 3:
        heartbeat(h, client.memberId, client.generation, client.instanceId);
        break;
      case 4:
        if (rand(4) === 0) {
          const who = { memberId: client.memberId, groupInstanceId: client.instanceId };
          h.coordinator.leaveGroup("g", [who]);
          h.coordinator.checkInvariants();
          client.memberId = "";
        }
        break;
      case 5:
        // Crash: the client forgets its member id (a static one keeps its instance id).
        if (rand(4) === 0) client.memberId = "";
        break;
      default:
        h.advance(100 * (1 + rand(20)));
    }
    const group = h.coordinator.describeGroup("g");
    if (group !== undefined && group.state === "Stable") {
      expect(group.members.length).toBeGreaterThan(0);
    }
  }
  // Everybody stops: sessions expire and every parked request is answered.
  h.advance(SESSION_TIMEOUT_MS + 5 * 60 * 1000 + 10_000);
  for (const reply of replies) expect(reply.answered).toBe(true);
  const group = h.coordinator.describeGroup("g");
  expect(group === undefined || group.state === "Empty").toBe(true);
}
