/**
 * One classic consumer group's bookkeeping: members, static member ids, pending members,
 * protocol support counts, leader, generation and state. It knows nothing of time or
 * callbacks' delivery; `group-coordinator.ts` drives it through the protocol's flows
 * (Kafka's GroupMetadata.scala / ClassicGroup.java play this part there).
 *
 * Invariants, checked by `checkInvariants` in tests and at state changes:
 * - `awaitingJoinCount` is the number of members with a pending JoinGroup callback;
 * - `protocolVotes[p]` is the number of members that support protocol `p`;
 * - every static member id maps to a member with that group instance id;
 * - the leader, when set, is a member; a group with members has a leader;
 * - an Empty group has no members.
 */
import { assert, unreachable } from "../util/assert.ts";
import type { GroupError } from "./group-errors.ts";
import { subscriptionTopics } from "./consumer-protocol.ts";

export type GroupState = "Empty" | "PreparingRebalance" | "CompletingRebalance" | "Stable" | "Dead";

/** ConsumerProtocol's protocol type; only such groups have known subscriptions. */
export const CONSUMER_PROTOCOL_TYPE = "consumer";

export interface GroupProtocol {
  readonly name: string;
  readonly metadata: Uint8Array;
}

export interface JoinGroupMember {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly metadata: Uint8Array;
}

export interface JoinGroupResult {
  readonly error: GroupError | null;
  readonly memberId: string;
  /** -1 with an error. */
  readonly generationId: number;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly leader: string;
  /** KIP-814 (JoinGroup v9): the leader must not run the assignor. */
  readonly skipAssignment: boolean;
  /** Every member's metadata for the leader, empty for the others. */
  readonly members: readonly JoinGroupMember[];
}

export interface SyncGroupResult {
  readonly error: GroupError | null;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly assignment: Uint8Array;
}

export type JoinGroupCallback = (result: JoinGroupResult) => void;
export type SyncGroupCallback = (result: SyncGroupResult) => void;

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Valid previous states per state (Kafka's GroupState.validPreviousStates). */
const PREVIOUS_STATES: Record<GroupState, readonly GroupState[]> = {
  Empty: ["PreparingRebalance"],
  PreparingRebalance: ["Stable", "CompletingRebalance", "Empty"],
  CompletingRebalance: ["PreparingRebalance"],
  Stable: ["CompletingRebalance"],
  Dead: ["Stable", "PreparingRebalance", "CompletingRebalance", "Empty", "Dead"],
};

export class Member {
  /** Changes only when a static member rejoins with an unknown member id (KIP-345). */
  memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  /** As Kafka reports it: "/" and the client's address. */
  readonly clientHost: string;
  readonly protocolType: string;
  /** How long the group waits for this member to rejoin during a rebalance. */
  rebalanceTimeoutMs: number;
  /** How long the member may stay silent (no heartbeat, commit, join or sync). */
  sessionTimeoutMs: number;
  /** In the member's order of preference; names unique. */
  protocols: readonly GroupProtocol[];
  /** What the leader assigned to this member in the current generation. */
  assignment: Uint8Array = EMPTY_BYTES;
  /** The member's parked JoinGroup, answered when the join phase completes. */
  joinCallback: JoinGroupCallback | null = null;
  /** The member's parked SyncGroup, answered when the leader's assignment arrives. */
  syncCallback: SyncGroupCallback | null = null;
  /** Joined in the current join phase for the first time; expires on the new-member timeout. */
  isNew = false;
  /** Monotonic ms after which the member is removed unless it is awaiting a rebalance. */
  heartbeatDeadlineMs = 0;

  constructor(init: {
    memberId: string;
    groupInstanceId: string | null;
    clientId: string;
    clientHost: string;
    protocolType: string;
    rebalanceTimeoutMs: number;
    sessionTimeoutMs: number;
    protocols: readonly GroupProtocol[];
  }) {
    this.memberId = init.memberId;
    this.groupInstanceId = init.groupInstanceId;
    this.clientId = init.clientId;
    this.clientHost = init.clientHost;
    this.protocolType = init.protocolType;
    this.rebalanceTimeoutMs = init.rebalanceTimeoutMs;
    this.sessionTimeoutMs = init.sessionTimeoutMs;
    this.protocols = init.protocols;
  }

  /** The metadata the member sent for `protocolName`. */
  metadata(protocolName: string): Uint8Array {
    const protocol = this.protocols.find((p) => p.name === protocolName);
    assert(protocol !== undefined, `Member does not support protocol: ${protocolName}`);
    return protocol.metadata;
  }

  /** Same protocols, in the same order, with byte-equal metadata. */
  matches(protocols: readonly GroupProtocol[]): boolean {
    if (protocols.length !== this.protocols.length) return false;
    for (let i = 0; i < protocols.length; i++) {
      const mine = this.protocols[i]!;
      const theirs = protocols[i]!;
      if (mine.name !== theirs.name) return false;
      if (!bytesEqual(mine.metadata, theirs.metadata)) return false;
    }
    return true;
  }

  /** The first protocol of the member's preference that every member supports. */
  vote(candidates: ReadonlySet<string>): string {
    const choice = this.protocols.find((p) => candidates.has(p.name));
    assert(choice !== undefined, "Member supports none of the candidate protocols");
    return choice.name;
  }
}

export class Group {
  readonly groupId: string;
  state: GroupState = "Empty";
  /** Monotonic ms of the last state change. */
  stateSinceMs: number;
  generationId = 0;
  /** Set by the first member ever added; kept while the group is Empty. */
  protocolType: string | null = null;
  /** The protocol chosen for the current generation; null while Empty. */
  protocolName: string | null = null;
  leaderId: string | null = null;
  /** In join order: the first member becomes leader. */
  readonly members = new Map<string, Member>();
  /** group.instance.id → current member id (KIP-345). */
  readonly staticMembers = new Map<string, string>();
  /** Member ids handed out with MEMBER_ID_REQUIRED (KIP-394) → monotonic expiry ms. */
  readonly pendingMembers = new Map<string, number>();
  /** Members of the current generation that have not sent SyncGroup yet. */
  readonly pendingSyncMembers = new Set<string>();
  /** Protocol name → number of members supporting it. */
  readonly protocolVotes = new Map<string, number>();
  awaitingJoinCount = 0;
  /** A new member joined during the initial rebalance delay: wait once more. */
  newMemberAdded = false;
  /** Monotonic ms at which the join phase ends even if members are missing. */
  joinDeadlineMs: number | null = null;
  /** Set while the join phase started from Empty (group.initial.rebalance.delay.ms). */
  initialJoin: { delayMs: number; remainingMs: number } | null = null;
  /** Monotonic ms by which every member must have sent SyncGroup. */
  syncDeadlineMs: number | null = null;
  /** The leader's assignment of this generation is being stored; members wait. */
  assignmentStoring = false;
  /** Topics the members subscribe to (consumer groups); null when not known. */
  subscribedTopics: ReadonlySet<string> | null = null;

  constructor(groupId: string, nowMs: number) {
    this.groupId = groupId;
    this.stateSinceMs = nowMs;
  }

  is(state: GroupState): boolean {
    return this.state === state;
  }

  transitionTo(state: GroupState, nowMs: number): void {
    assert(
      PREVIOUS_STATES[state].includes(this.state),
      `Group state change not allowed: ${this.state} -> ${state}`,
    );
    this.state = state;
    this.stateSinceMs = nowMs;
  }

  /** Kafka's canRebalance: PreparingRebalance may follow the current state. */
  canRebalance(): boolean {
    return PREVIOUS_STATES.PreparingRebalance.includes(this.state);
  }

  isLeader(memberId: string): boolean {
    return this.leaderId === memberId;
  }

  add(member: Member, callback: JoinGroupCallback | null): void {
    const instanceId = member.groupInstanceId;
    if (instanceId !== null) {
      assert(!this.staticMembers.has(instanceId), "Static member added twice");
      this.staticMembers.set(instanceId, member.memberId);
    }
    if (this.members.size === 0) this.protocolType = member.protocolType;
    assert(this.protocolType === member.protocolType, "Member's protocol type differs");
    assert(!this.members.has(member.memberId), "Member added twice");
    if (this.leaderId === null) this.leaderId = member.memberId;
    this.members.set(member.memberId, member);
    this.#countProtocols(member, +1);
    this.setJoinCallback(member, callback);
    this.pendingMembers.delete(member.memberId);
  }

  remove(memberId: string): void {
    const member = this.members.get(memberId);
    if (member !== undefined) {
      this.setJoinCallback(member, null);
      this.#countProtocols(member, -1);
      this.members.delete(memberId);
      const instanceId = member.groupInstanceId;
      if (instanceId !== null && this.staticMembers.get(instanceId) === memberId) {
        this.staticMembers.delete(instanceId);
      }
    }
    if (this.leaderId === memberId) {
      const next = this.members.keys().next();
      this.leaderId = next.done === true ? null : next.value;
    }
    this.pendingMembers.delete(memberId);
    this.pendingSyncMembers.delete(memberId);
  }

  updateMember(
    member: Member,
    protocols: readonly GroupProtocol[],
    rebalanceTimeoutMs: number,
    sessionTimeoutMs: number,
    callback: JoinGroupCallback | null,
  ): void {
    this.#countProtocols(member, -1);
    member.protocols = protocols;
    this.#countProtocols(member, +1);
    member.rebalanceTimeoutMs = rebalanceTimeoutMs;
    member.sessionTimeoutMs = sessionTimeoutMs;
    this.setJoinCallback(member, callback);
  }

  /** Parks or clears a JoinGroup; the caller answers any callback it replaces. */
  setJoinCallback(member: Member, callback: JoinGroupCallback | null): void {
    if (callback !== null && member.joinCallback === null) this.awaitingJoinCount += 1;
    if (callback === null && member.joinCallback !== null) this.awaitingJoinCount -= 1;
    member.joinCallback = callback;
    assert(this.awaitingJoinCount >= 0, "Negative count of members awaiting join");
  }

  /**
   * KIP-345: gives a static member its new member id and keeps everything else. The
   * caller fences the old id's parked requests first.
   */
  replaceStaticMember(instanceId: string, oldMemberId: string, newMemberId: string): Member {
    const member = this.members.get(oldMemberId);
    assert(member !== undefined, "Static member to replace is missing");
    assert(member.joinCallback === null, "Replaced member still awaits join");
    assert(member.syncCallback === null, "Replaced member still awaits sync");
    this.members.delete(oldMemberId);
    member.memberId = newMemberId;
    this.members.set(newMemberId, member);
    if (this.leaderId === oldMemberId) this.leaderId = newMemberId;
    this.staticMembers.set(instanceId, newMemberId);
    // Kafka keeps the old id among the pending syncs, so the new id's SyncGroup never
    // clears it and the sync timeout forces a needless rebalance; carry it over instead.
    if (this.pendingSyncMembers.delete(oldMemberId)) this.pendingSyncMembers.add(newMemberId);
    return member;
  }

  /** Every member has a parked JoinGroup and no MEMBER_ID_REQUIRED id is outstanding. */
  hasAllMembersJoined(): boolean {
    return this.members.size === this.awaitingJoinCount && this.pendingMembers.size === 0;
  }

  /** The largest rebalance timeout among the members: how long a join phase may last. */
  rebalanceTimeoutMs(): number {
    let timeout = 0;
    for (const member of this.members.values()) {
      timeout = Math.max(timeout, member.rebalanceTimeoutMs);
    }
    return timeout;
  }

  /**
   * Kafka's supportsProtocols: an Empty group accepts any non-empty protocol type and
   * list; otherwise the type must match and one protocol must be supported by all.
   */
  supportsProtocols(protocolType: string, protocols: readonly GroupProtocol[]): boolean {
    if (this.is("Empty")) return protocolType !== "" && protocols.length > 0;
    if (this.protocolType !== protocolType) return false;
    // With no members left (a rebalance waiting on handed-out ids) any protocol fits.
    return protocols.some((p) => (this.protocolVotes.get(p.name) ?? 0) === this.members.size);
  }

  /**
   * The protocol of the next generation: among those every member supports, each member
   * votes for its most preferred; the most votes wins. Kafka breaks ties by hash order;
   * Brook by first vote, so a run replays the same way.
   */
  selectProtocol(): string {
    assert(this.members.size > 0, "Cannot select a protocol for an empty group");
    const candidates = new Set<string>();
    for (const [name, count] of this.protocolVotes) {
      if (count === this.members.size) candidates.add(name);
    }
    const votes = new Map<string, number>();
    for (const member of this.members.values()) {
      const choice = member.vote(candidates);
      votes.set(choice, (votes.get(choice) ?? 0) + 1);
    }
    let best: string | null = null;
    let bestVotes = 0;
    for (const [name, count] of votes) {
      if (count > bestVotes) {
        best = name;
        bestVotes = count;
      }
    }
    assert(best !== null, "No protocol selected");
    return best;
  }

  /**
   * Kafka's maybeElectNewJoinedLeader: keep the leader if it rejoined, else promote the
   * first member that did. False when the group has no leader or nobody rejoined.
   */
  maybeElectNewJoinedLeader(): boolean {
    if (this.leaderId === null) return false;
    const leader = this.members.get(this.leaderId);
    assert(leader !== undefined, "Leader is not a member");
    if (leader.joinCallback !== null) return true;
    for (const member of this.members.values()) {
      if (member.joinCallback !== null) {
        this.leaderId = member.memberId;
        return true;
      }
    }
    return false;
  }

  /** Starts the next generation: CompletingRebalance with members, Empty without. */
  initNextGeneration(nowMs: number): void {
    assert(this.is("PreparingRebalance"), "New generation outside PreparingRebalance");
    this.generationId += 1;
    if (this.members.size > 0) {
      this.protocolName = this.selectProtocol();
      this.transitionTo("CompletingRebalance", nowMs);
    } else {
      this.protocolName = null;
      this.transitionTo("Empty", nowMs);
    }
    this.subscribedTopics = this.#computeSubscribedTopics();
    this.pendingSyncMembers.clear();
    this.assignmentStoring = false;
  }

  /**
   * A group loaded from its stored metadata (group-snapshot.ts) resumes in Stable with
   * the stored generation's protocol; no state change leads there from Empty otherwise.
   */
  restoreStable(protocolName: string, nowMs: number): void {
    assert(this.is("Empty") && this.members.size > 0, "Only a new group with members is restored");
    this.protocolName = protocolName;
    this.state = "Stable";
    this.stateSinceMs = nowMs;
    this.subscribedTopics = this.#computeSubscribedTopics();
  }

  /** What the leader receives in its JoinGroup response. */
  currentMembers(): JoinGroupMember[] {
    const protocolName = this.protocolName;
    assert(protocolName !== null, "Member metadata asked without a protocol");
    return [...this.members.values()].map((member) => ({
      memberId: member.memberId,
      groupInstanceId: member.groupInstanceId,
      metadata: member.metadata(protocolName),
    }));
  }

  /**
   * Kafka's isSubscribedToTopic: when the subscriptions are not known (not a consumer
   * group, or metadata that does not parse), every topic counts as subscribed.
   */
  isSubscribedToTopic(topic: string): boolean {
    return this.subscribedTopics === null || this.subscribedTopics.has(topic);
  }

  #computeSubscribedTopics(): ReadonlySet<string> | null {
    if (this.protocolType !== CONSUMER_PROTOCOL_TYPE) return null;
    if (this.members.size === 0) return new Set();
    if (this.protocolName === null) return null;
    const topics = new Set<string>();
    for (const member of this.members.values()) {
      const subscribed = subscriptionTopics(member.metadata(this.protocolName));
      if (subscribed === null) return null;
      for (const topic of subscribed) topics.add(topic);
    }
    return topics;
  }

  #countProtocols(member: Member, delta: 1 | -1): void {
    for (const protocol of member.protocols) {
      const count = (this.protocolVotes.get(protocol.name) ?? 0) + delta;
      assert(count >= 0, "Negative protocol support count");
      if (count === 0) this.protocolVotes.delete(protocol.name);
      else this.protocolVotes.set(protocol.name, count);
    }
  }

  /** Checks the invariants listed in the module comment; for tests and assertions. */
  checkInvariants(): void {
    let awaiting = 0;
    const votes = new Map<string, number>();
    for (const [memberId, member] of this.members) {
      assert(member.memberId === memberId, "Member keyed under another id");
      if (member.joinCallback !== null) awaiting += 1;
      for (const p of member.protocols) votes.set(p.name, (votes.get(p.name) ?? 0) + 1);
    }
    assert(awaiting === this.awaitingJoinCount, "Awaiting join count is off");
    assert(votes.size === this.protocolVotes.size, "Protocol votes hold stale names");
    for (const [name, count] of votes) {
      assert(this.protocolVotes.get(name) === count, `Protocol vote count is off: ${name}`);
    }
    for (const [instanceId, memberId] of this.staticMembers) {
      const member = this.members.get(memberId);
      assert(member !== undefined, "Static member id is not a member");
      assert(member.groupInstanceId === instanceId, "Static member has another instance id");
    }
    if (this.leaderId !== null) assert(this.members.has(this.leaderId), "Leader not a member");
    if (this.members.size > 0) assert(this.leaderId !== null, "Group without a leader");
    switch (this.state) {
      case "Empty":
      case "Dead":
        assert(this.members.size === 0, `${this.state} group has members`);
        break;
      case "PreparingRebalance":
        assert(this.joinDeadlineMs !== null, "Join phase without a deadline");
        break;
      case "CompletingRebalance":
      case "Stable":
        assert(this.protocolName !== null, `${this.state} group without a protocol`);
        break;
      default:
        unreachable(this.state);
    }
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
