/**
 * @module
 * Which membership change the controller should propose next, so that the voters are
 * the first `voterCount` nodes to join (3 by default, 5 when configured) and every other
 * live node is an observer. Pure: the controller calls it with the configuration in
 * force and the node ids SWIM reports alive, proposes the answer, waits for it to
 * commit, and asks again (Raft allows one uncommitted change at a time).
 *
 * Join order is the order of `Membership.members`, which the log records: a node joins
 * when the leader adds it as an observer, and nodes joining together are added lowest
 * id first. Newcomers join as observers and are promoted once they are members
 * (dissertation 4.2.1: a new server catches up before it counts towards a majority).
 *
 * Dead voters are not replaced automatically: a node SWIM calls dead may be on the
 * other side of a partition, and swapping voters on a guess can leave no majority
 * reachable. An operator's `removeNode` frees the seat; the policy then promotes the
 * earliest-joined live observer. Dead observers stay members too (they cost nothing
 * and come back without a change).
 */
import { assert } from "../../util/assert.ts";
import type { MembershipChange } from "./membership.ts";
import type { Membership, NodeId } from "./types.ts";

export const DEFAULT_VOTER_COUNT = 3;

export interface VoterPolicyOptions {
  /** How many voters the cluster should have: 3 (default) or 5; odd, at least 1. */
  voterCount?: number;
}

/**
 * The next change, or null when the configuration already follows the policy. Rules,
 * first match wins:
 * 1. A live node that is not a member joins as an observer (lowest id first).
 * 2. With fewer voters than wanted, the earliest-joined live observer is promoted.
 * 3. With more voters than wanted, the latest-joined voter is demoted (never the
 *    leader: `self`, when given, is kept; leadership should move first).
 */
export function nextMembershipChange(
  membership: Membership,
  live: ReadonlySet<NodeId>,
  options: VoterPolicyOptions & { self?: NodeId } = {},
): MembershipChange | null {
  const voterCount = options.voterCount ?? DEFAULT_VOTER_COUNT;
  assert(Number.isInteger(voterCount), `Voter count is not an integer: ${voterCount}`);
  assert(voterCount >= 1, `Voter count is below 1: ${voterCount}`);
  assert(voterCount % 2 === 1, `Voter count is even: ${voterCount}`);
  const members = membership.members;
  const known = new Set(members.map((member) => member.id));

  const newcomers = [...live].filter((id) => !known.has(id)).sort((a, b) => a - b);
  if (newcomers.length > 0) return { kind: "addObserver", id: newcomers[0]! };

  const voters = members.filter((member) => member.voter);
  if (voters.length < voterCount) {
    const observer = members.find((member) => !member.voter && live.has(member.id));
    if (observer !== undefined) return { kind: "addVoter", id: observer.id };
    return null;
  }
  if (voters.length > voterCount) {
    const demoted = [...voters].reverse().find((member) => member.id !== options.self);
    if (demoted !== undefined) return { kind: "addObserver", id: demoted.id };
  }
  return null;
}
