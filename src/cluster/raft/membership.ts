/**
 * @module
 * Cluster configurations: single-server changes (dissertation 4.1: one member added,
 * promoted, demoted or removed per configuration entry), majorities, and the compact
 * binary form a configuration takes in a log entry, a snapshot and on the wire.
 */
import { Buffer } from "node:buffer";
import { Reader } from "../../protocol/reader.ts";
import { assert } from "../../util/assert.ts";
import { MEMBER_BYTES, MEMBERS_MAX } from "./limits.ts";
import { isNodeId, type Member, type Membership, type NodeId } from "./types.ts";

export type MembershipChange =
  | { readonly kind: "addVoter"; readonly id: NodeId }
  | { readonly kind: "addObserver"; readonly id: NodeId }
  | { readonly kind: "removeNode"; readonly id: NodeId };

/** Why a change cannot be made; values, not exceptions (docs/conventions.md, section 6). */
export type MembershipError =
  | { readonly kind: "noChange"; readonly message: string }
  | { readonly kind: "lastVoter"; readonly message: string }
  | { readonly kind: "tooManyMembers"; readonly message: string };

export function memberOf(membership: Membership, id: NodeId): Member | undefined {
  return membership.members.find((member) => member.id === id);
}

export function isVoter(membership: Membership, id: NodeId): boolean {
  return memberOf(membership, id)?.voter === true;
}

export function votersOf(membership: Membership): NodeId[] {
  return membership.members.filter((member) => member.voter).map((member) => member.id);
}

/** Votes or acknowledgements needed among `voters` voters. */
export function majorityOf(voters: number): number {
  assert(voters > 0, "A majority of no voters");
  return Math.floor(voters / 2) + 1;
}

/**
 * The configuration after `change`. A new member goes to the end (join order); a
 * promotion or demotion keeps its place. Removing or demoting the last voter is refused:
 * a cluster without voters can never commit again.
 */
export function applyChange(
  membership: Membership,
  change: MembershipChange,
): { ok: true; membership: Membership } | { ok: false; error: MembershipError } {
  assert(isNodeId(change.id), `Member id is not a node id: ${change.id}`);
  const members = membership.members;
  const at = members.findIndex((member) => member.id === change.id);
  const current = at >= 0 ? members[at]! : undefined;
  const voters = members.filter((member) => member.voter).length;
  const refuse = (kind: MembershipError["kind"], message: string) =>
    ({ ok: false, error: { kind, message } }) as const;
  let next: Member[];
  switch (change.kind) {
    case "addVoter":
    case "addObserver": {
      const voter = change.kind === "addVoter";
      if (current?.voter === voter) {
        return refuse(
          "noChange",
          `Node ${change.id} is already ${voter ? "a voter" : "an observer"}`,
        );
      }
      if (current?.voter === true && voters === 1) {
        return refuse("lastVoter", `Node ${change.id} is the last voter`);
      }
      if (current === undefined && members.length >= MEMBERS_MAX) {
        return refuse("tooManyMembers", `Configuration is full: ${MEMBERS_MAX} members`);
      }
      const member: Member = { id: change.id, voter };
      next = current === undefined ? [...members, member] : members.with(at, member);
      break;
    }
    case "removeNode":
      if (current === undefined) return refuse("noChange", `Node ${change.id} is not a member`);
      if (current.voter && voters === 1) {
        return refuse("lastVoter", `Node ${change.id} is the last voter`);
      }
      next = members.filter((member) => member.id !== change.id);
      break;
  }
  return { ok: true, membership: { members: next } };
}

/** A configuration of `voters`, in the given order (bootstrap). */
export function membershipOfVoters(voters: readonly NodeId[]): Membership {
  assert(voters.length > 0, "A configuration needs a voter");
  assert(new Set(voters).size === voters.length, "Voters are not distinct");
  for (const id of voters) assert(isNodeId(id), `Voter id is not a node id: ${id}`);
  return { members: voters.map((id) => ({ id, voter: true })) };
}

export function sameMembership(a: Membership, b: Membership): boolean {
  if (a.members.length !== b.members.length) return false;
  return a.members.every((member, i) => {
    const other = b.members[i]!;
    return member.id === other.id && member.voter === other.voter;
  });
}

export function describeMembership(membership: Membership): string {
  return membership.members.map((m) => `${m.id}${m.voter ? "" : "(observer)"}`).join(",");
}

// ---------------------------------------------------------------------------------------
// Binary form: version int8 (1), count uint16, then per member id int32 and flags int8
// (bit 0: voter). The same bytes are a config entry's payload, part of a snapshot file
// and part of a Snapshot message.

const MEMBERSHIP_VERSION = 1;
const VOTER_FLAG = 1;

export function membershipBytes(membership: Membership): number {
  return 1 + 2 + membership.members.length * MEMBER_BYTES;
}

/** Writes `membership` into `target` at `at`; returns the offset after it. */
export function writeMembership(target: Buffer, at: number, membership: Membership): number {
  assert(membership.members.length <= MEMBERS_MAX, "Configuration has too many members");
  let offset = target.writeInt8(MEMBERSHIP_VERSION, at);
  offset = target.writeUInt16BE(membership.members.length, offset);
  for (const member of membership.members) {
    offset = target.writeInt32BE(member.id, offset);
    offset = target.writeInt8(member.voter ? VOTER_FLAG : 0, offset);
  }
  return offset;
}

export function encodeMembership(membership: Membership): Uint8Array {
  const bytes = Buffer.alloc(membershipBytes(membership));
  writeMembership(bytes, 0, membership);
  return bytes;
}

/**
 * Reads a configuration from `reader`; null (with the reader failed) when the bytes are
 * not one: unknown version, too many members, a bad or repeated id, unknown flags.
 */
export function readMembership(reader: Reader): Membership | null {
  const version = reader.int8();
  if (reader.failed) return null;
  if (version !== MEMBERSHIP_VERSION) {
    reader.fail(`Configuration version is unknown: ${version}`);
    return null;
  }
  const count = reader.uint16();
  if (count > MEMBERS_MAX) {
    reader.fail(`Configuration has too many members: ${count}`);
    return null;
  }
  const members: Member[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count && !reader.failed; i++) {
    const id = reader.int32();
    const flags = reader.int8();
    if (reader.failed) break;
    if (!isNodeId(id) || seen.has(id)) {
      reader.fail(`Configuration member id is bad or repeated: ${id}`);
      break;
    }
    if ((flags & ~VOTER_FLAG) !== 0) {
      reader.fail(`Configuration member flags are unknown: ${flags}`);
      break;
    }
    seen.add(id);
    members.push({ id, voter: (flags & VOTER_FLAG) !== 0 });
  }
  return reader.failed ? null : { members };
}

/** The configuration a config entry carries; null when its payload is not one. */
export function decodeMembership(data: Uint8Array): Membership | null {
  const reader = new Reader(data);
  const membership = readMembership(reader);
  return membership !== null && reader.complete() ? membership : null;
}
