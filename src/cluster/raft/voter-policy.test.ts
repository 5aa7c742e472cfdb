import { expect, test } from "bun:test";
import {
  applyChange,
  decodeMembership,
  encodeMembership,
  type MembershipChange,
} from "./membership.ts";
import type { Membership } from "./types.ts";
import { nextMembershipChange } from "./voter-policy.ts";

/** Applies the policy's changes until it has none (as the controller does, one commit each). */
function converge(
  start: Membership,
  live: number[],
  voterCount?: number,
): { end: Membership; changes: MembershipChange[] } {
  let membership = start;
  const changes: MembershipChange[] = [];
  for (let i = 0; i < 50; i++) {
    const change = nextMembershipChange(membership, new Set(live), { voterCount });
    if (change === null) return { end: membership, changes };
    changes.push(change);
    const applied = applyChange(membership, change);
    if (!applied.ok) throw new Error(applied.error.message);
    membership = applied.membership;
  }
  throw new Error("The policy does not converge");
}

const one: Membership = { members: [{ id: 4, voter: true }] };

test("raft: voter policy: the first three nodes to join vote, the rest observe", () => {
  const { end, changes } = converge(one, [4, 9, 2, 7, 5]);
  // Newcomers join lowest id first, as observers; then the earliest joined are promoted.
  expect(changes).toEqual([
    { kind: "addObserver", id: 2 },
    { kind: "addObserver", id: 5 },
    { kind: "addObserver", id: 7 },
    { kind: "addObserver", id: 9 },
    { kind: "addVoter", id: 2 },
    { kind: "addVoter", id: 5 },
  ]);
  expect(end.members).toEqual([
    { id: 4, voter: true },
    { id: 2, voter: true },
    { id: 5, voter: true },
    { id: 7, voter: false },
    { id: 9, voter: false },
  ]);
  // Five when configured.
  expect(converge(end, [4, 9, 2, 7, 5], 5).end.members.every((m) => m.voter)).toBe(true);
});

test("raft: voter policy: join order decides, not ids; dead nodes are not promoted or replaced", () => {
  const joined: Membership = {
    members: [
      { id: 8, voter: true },
      { id: 3, voter: false },
      { id: 1, voter: false },
      {
        id: 6,
        voter: false,
      },
    ],
  };
  // Node 3 is down: 1 and 6, the next to have joined, are promoted.
  expect(converge(joined, [8, 1, 6]).changes).toEqual([
    { kind: "addVoter", id: 1 },
    { kind: "addVoter", id: 6 },
  ]);
  // A dead voter keeps its seat until an operator removes it.
  const full: Membership = {
    members: [
      { id: 8, voter: true },
      { id: 3, voter: true },
      { id: 1, voter: true },
      {
        id: 6,
        voter: false,
      },
    ],
  };
  expect(nextMembershipChange(full, new Set([8, 1, 6]))).toBeNull();
  const removed = applyChange(full, { kind: "removeNode", id: 3 });
  expect(removed.ok && nextMembershipChange(removed.membership, new Set([8, 1, 6]))).toEqual({
    kind: "addVoter",
    id: 6,
  });
});

test("raft: voter policy: too many voters: the latest joined is demoted, never the leader", () => {
  const five: Membership = { members: [1, 2, 3, 4, 5].map((id) => ({ id, voter: true })) };
  expect(nextMembershipChange(five, new Set([1, 2, 3, 4, 5]))).toEqual({
    kind: "addObserver",
    id: 5,
  });
  expect(nextMembershipChange(five, new Set([1, 2, 3, 4, 5]), { self: 5 })).toEqual({
    kind: "addObserver",
    id: 4,
  });
  expect(() => nextMembershipChange(five, new Set(), { voterCount: 4 })).toThrow("even");
});

test("raft: membership: changes keep join order; the last voter stays; bytes round-trip", () => {
  expect(applyChange(one, { kind: "removeNode", id: 4 })).toMatchObject({
    ok: false,
    error: { kind: "lastVoter" },
  });
  expect(applyChange(one, { kind: "addObserver", id: 4 })).toMatchObject({
    ok: false,
    error: { kind: "lastVoter" },
  });
  expect(applyChange(one, { kind: "addVoter", id: 4 })).toMatchObject({
    ok: false,
    error: { kind: "noChange" },
  });
  const grown = applyChange(one, { kind: "addObserver", id: 2 });
  expect(grown.ok).toBe(true);
  if (!grown.ok) return;
  const promoted = applyChange(grown.membership, { kind: "addVoter", id: 2 });
  expect(promoted.ok && promoted.membership.members).toEqual([
    { id: 4, voter: true },
    {
      id: 2,
      voter: true,
    },
  ]);
  expect(decodeMembership(encodeMembership(grown.membership))).toEqual(grown.membership);
  expect(decodeMembership(new Uint8Array([1, 0, 1, 0, 0, 0, 2]))).toBeNull();
  expect(decodeMembership(new Uint8Array([2, 0, 0]))).toBeNull();
  expect(decodeMembership(new Uint8Array([1, 0, 2, 0, 0, 0, 2, 1, 0, 0, 0, 2, 1]))).toBeNull();
});
