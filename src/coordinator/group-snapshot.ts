/**
 * What of a group survives a broker restart: the group metadata record of
 * `__consumer_offsets` (offset-records.ts has the bytes). It is the group of the last
 * stored generation: its protocol, leader and members with the subscription each sent
 * for the chosen protocol and the assignment the leader gave it. Kafka stores the same
 * (GroupMetadataManager.storeGroup) and, on load, puts a group with members back in
 * Stable, so members that keep heartbeating through a coordinator restart see no
 * rebalance.
 */
import { assert } from "../util/assert.ts";
import { EMPTY_BYTES, Group, Member } from "./group.ts";

export interface MemberSnapshot {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  readonly clientHost: string;
  readonly rebalanceTimeoutMs: number;
  readonly sessionTimeoutMs: number;
  /** The member's metadata for the group's protocol. */
  readonly subscription: Uint8Array;
  readonly assignment: Uint8Array;
}

export interface GroupSnapshot {
  readonly groupId: string;
  readonly protocolType: string;
  readonly generationId: number;
  /** Null for an Empty group. */
  readonly protocolName: string | null;
  readonly leaderId: string | null;
  /** Wall-clock ms of the state the snapshot records; -1 when unknown (value v0-v1). */
  readonly stateTimestampMs: number;
  readonly members: readonly MemberSnapshot[];
}

/**
 * The group as it stands, or with `assignments` (member id → bytes) in place of the
 * members' current ones: the leader's assignment is stored before members get it.
 */
export function snapshotGroup(
  group: Group,
  stateTimestampMs: number,
  assignments?: ReadonlyMap<string, Uint8Array>,
): GroupSnapshot {
  const protocolName = group.members.size === 0 ? null : group.protocolName;
  return {
    groupId: group.groupId,
    protocolType: group.protocolType ?? "",
    generationId: group.generationId,
    protocolName,
    leaderId: group.members.size === 0 ? null : group.leaderId,
    stateTimestampMs,
    members: [...group.members.values()].map((member) => {
      assert(protocolName !== null, "Group with members has no protocol");
      return {
        memberId: member.memberId,
        groupInstanceId: member.groupInstanceId,
        clientId: member.clientId,
        clientHost: member.clientHost,
        rebalanceTimeoutMs: member.rebalanceTimeoutMs,
        sessionTimeoutMs: member.sessionTimeoutMs,
        subscription: member.metadata(protocolName),
        assignment:
          assignments === undefined
            ? member.assignment
            : (assignments.get(member.memberId) ?? EMPTY_BYTES),
      };
    }),
  };
}

/**
 * A group rebuilt from its snapshot: Empty without members, else Stable with every
 * member's session starting at `nowMs`, as Kafka schedules each loaded member's
 * heartbeat expiry. Null when the snapshot is not a group Brook could run (a member
 * list without a protocol or leader, a leader that is not a member, an instance id
 * twice): the caller then knows the group only by its offsets.
 */
export function restoreGroup(snapshot: GroupSnapshot, nowMs: number): Group | null {
  const group = new Group(snapshot.groupId, nowMs);
  group.generationId = snapshot.generationId;
  group.protocolType = snapshot.protocolType === "" ? null : snapshot.protocolType;
  if (snapshot.members.length === 0) return group;
  const protocolName = snapshot.protocolName;
  const leaderId = snapshot.leaderId;
  if (protocolName === null || leaderId === null) return null;
  const ids = new Set(snapshot.members.map((m) => m.memberId));
  const instances = snapshot.members.flatMap((m) =>
    m.groupInstanceId === null ? [] : [m.groupInstanceId],
  );
  if (ids.size !== snapshot.members.length || new Set(instances).size !== instances.length)
    return null;
  if (!ids.has(leaderId)) return null;
  for (const each of snapshot.members) {
    const member = new Member({
      memberId: each.memberId,
      groupInstanceId: each.groupInstanceId,
      clientId: each.clientId,
      clientHost: each.clientHost,
      protocolType: snapshot.protocolType,
      rebalanceTimeoutMs: each.rebalanceTimeoutMs,
      sessionTimeoutMs: each.sessionTimeoutMs,
      protocols: [{ name: protocolName, metadata: each.subscription }],
    });
    member.assignment = each.assignment;
    member.heartbeatDeadlineMs = nowMs + each.sessionTimeoutMs;
    group.add(member, null);
  }
  group.leaderId = leaderId;
  group.restoreStable(protocolName, nowMs);
  group.checkInvariants();
  return group;
}
