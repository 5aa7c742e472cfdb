/**
 * The classic group membership protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup)
 * and the group-side checks of offset commits, as a state machine without sockets or
 * timers (docs/conventions.md, section 5). Time comes from the injected Clock; the
 * driver calls `tick()` periodically (every 100 ms is the intended period: deadlines
 * are honoured to within one period) and tick expires sessions, pending member ids and
 * pending syncs, and ends join phases whose time is up.
 *
 * JoinGroup and SyncGroup often cannot be answered at once: they are parked in the
 * group and their callbacks called when the rebalance moves on. Callbacks never run
 * inside coordinator code: each public method queues them and calls them, in order,
 * just before it returns, so a callback may safely call the coordinator again.
 *
 * Semantics follow Kafka's classic group coordinator (GroupCoordinator.scala, and
 * GroupMetadataManager.java for the classic groups since 3.7). Group states:
 *
 *   Empty ─join─▶ PreparingRebalance ─all joined / timeout─▶ CompletingRebalance
 *     ▲               ▲   │ (no member left)                     │ leader's SyncGroup
 *     └───────────────┼───┘                                      ▼
 *                     └─── member joins, leaves, fails, changes ─ Stable
 *
 * and Dead, the state of a deleted group on its way out of the map.
 *
 * Differences from Kafka, each for a reason given where it is implemented:
 * - group.initial.rebalance.delay.ms defaults to 0 (Kafka: 3000), configurable;
 * - a JoinGroup or SyncGroup that a newer one of the same member replaces is answered
 *   with REBALANCE_IN_PROGRESS instead of never, and a member that leaves or expires
 *   while its SyncGroup is parked gets UNKNOWN_MEMBER_ID: Brook answers a connection's
 *   requests in order, so an unanswered one would stall that connection;
 * - a pending member id handed out with MEMBER_ID_REQUIRED that comes back with a group
 *   instance id gets UNKNOWN_MEMBER_ID (Kafka throws: UNKNOWN_SERVER_ERROR);
 * - protocol vote ties go to the first vote cast (Kafka: hash order);
 *
 * Group metadata goes to the optional GroupMetadataStore (records of __consumer_offsets
 * in the node) where Kafka writes it: the leader's assignment before any member gets it,
 * a group that became Empty, a static member's new member id, and a tombstone when a
 * group goes. `restoreGroup` puts a stored group back at start.
 */
import type { Clock } from "../util/clock.ts";
import { assert } from "../util/assert.ts";
import { logger } from "../util/log.ts";
import type { Random } from "../util/random.ts";
import {
  CONSUMER_PROTOCOL_TYPE,
  EMPTY_BYTES,
  Group,
  type GroupProtocol,
  type GroupState,
  type JoinGroupCallback,
  type JoinGroupResult,
  Member,
  type SyncGroupCallback,
  type SyncGroupResult,
} from "./group.ts";
import type { GroupError } from "./group-errors.ts";
import { restoreGroup, type GroupSnapshot, snapshotGroup } from "./group-snapshot.ts";

export {
  CONSUMER_PROTOCOL_TYPE,
  type GroupProtocol,
  type GroupState,
  type JoinGroupCallback,
  type JoinGroupMember,
  type JoinGroupResult,
  type SyncGroupCallback,
  type SyncGroupResult,
} from "./group.ts";

const log = logger("group-coordinator");

/** group.min.session.timeout.ms */
export const SESSION_TIMEOUT_MS_MIN_DEFAULT = 6_000;
/** group.max.session.timeout.ms */
export const SESSION_TIMEOUT_MS_MAX_DEFAULT = 1_800_000;
/** group.max.size: Kafka's default is Integer.MAX_VALUE, a limit that never binds. */
export const GROUP_SIZE_MAX_DEFAULT = 2 ** 31 - 1;
/**
 * group.initial.rebalance.delay.ms. Kafka's default of 3000 lets consumers that start
 * together land in one first generation; Brook defaults to 0 (as Kafka's own test
 * setups do) so a new group forms at the next tick. Raise it in production configs.
 */
export const INITIAL_REBALANCE_DELAY_MS_DEFAULT = 0;
/** Kafka's NewMemberJoinTimeoutMs: a new member's parked JoinGroup expires after this. */
export const NEW_MEMBER_JOIN_TIMEOUT_MS_DEFAULT = 5 * 60 * 1000;
/**
 * An Empty group without committed offsets is dropped after this long (Kafka drops such
 * groups in its offset cleanup, every offsets.retention.check.interval.ms = 600000).
 */
export const EMPTY_GROUP_RETENTION_MS_DEFAULT = 10 * 60 * 1000;

export interface GroupCoordinatorConfig {
  readonly sessionTimeoutMsMin: number;
  readonly sessionTimeoutMsMax: number;
  readonly groupSizeMax: number;
  readonly initialRebalanceDelayMs: number;
  readonly newMemberJoinTimeoutMs: number;
  readonly emptyGroupRetentionMs: number;
}

export const GROUP_COORDINATOR_CONFIG_DEFAULT: GroupCoordinatorConfig = {
  sessionTimeoutMsMin: SESSION_TIMEOUT_MS_MIN_DEFAULT,
  sessionTimeoutMsMax: SESSION_TIMEOUT_MS_MAX_DEFAULT,
  groupSizeMax: GROUP_SIZE_MAX_DEFAULT,
  initialRebalanceDelayMs: INITIAL_REBALANCE_DELAY_MS_DEFAULT,
  newMemberJoinTimeoutMs: NEW_MEMBER_JOIN_TIMEOUT_MS_DEFAULT,
  emptyGroupRetentionMs: EMPTY_GROUP_RETENTION_MS_DEFAULT,
};

export interface GroupCoordinatorOptions {
  readonly clock: Clock;
  /** Member ids are `<client id or instance id>-<uuid>` with the uuid from here. */
  readonly random: Random;
  /**
   * Whether the offset store holds commits of the group. An Empty group with none is
   * dropped after `emptyGroupRetentionMs`; one with commits stays (ListGroups shows it).
   */
  readonly groupHasOffsets: (groupId: string) => boolean;
  /**
   * Whether this node coordinates the group: in a cluster, the node that leads the
   * group's partition of __consumer_offsets. Others answer NOT_COORDINATOR, and the
   * client asks FindCoordinator again. Every group when absent.
   */
  readonly ownsGroup?: (groupId: string) => boolean;
  /** Where group metadata is kept across restarts; none in unit tests. */
  readonly groupStore?: GroupMetadataStore;
  readonly config?: Partial<GroupCoordinatorConfig>;
}

/** Durable group metadata; writes reach storage in call order. */
export interface GroupMetadataStore {
  /** Resolves once the snapshot is durable; rejects when it could not be written. */
  storeGroup(group: GroupSnapshot): Promise<void>;
  removeGroup(groupId: string): Promise<void>;
}

export interface JoinGroupInput {
  readonly groupId: string;
  /** "" for a member that has no id yet. */
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  /** KIP-394: JoinGroup v4+ of a dynamic member; an unknown member gets an id first. */
  readonly requireKnownMemberId: boolean;
  /** KIP-814: JoinGroup v9+. */
  readonly supportSkippingAssignment: boolean;
  readonly clientId: string;
  readonly clientHost: string;
  readonly rebalanceTimeoutMs: number;
  readonly sessionTimeoutMs: number;
  readonly protocolType: string;
  readonly protocols: readonly GroupProtocol[];
  readonly reason?: string | null;
}

export interface SyncGroupInput {
  readonly groupId: string;
  readonly generationId: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  /** Checked against the group's when not null (SyncGroup v5+). */
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  /** The leader's assignment; ignored from followers. */
  readonly assignments: readonly { readonly memberId: string; readonly assignment: Uint8Array }[];
}

export interface HeartbeatInput {
  readonly groupId: string;
  readonly generationId: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
}

export interface LeavingMember {
  /** "" to remove a static member by its group instance id (admin removal, KIP-345). */
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly reason?: string | null;
}

export interface LeaveGroupResult {
  readonly error: GroupError | null;
  readonly members: readonly {
    readonly memberId: string;
    readonly groupInstanceId: string | null;
    readonly error: GroupError | null;
  }[];
}

export interface OffsetCommitCheck {
  readonly groupId: string;
  /** -1 with an empty member id: a commit from outside group management. */
  readonly generationId: number;
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  /**
   * What a commit with a generation to a group that does not exist gets: Kafka answers
   * ILLEGAL_GENERATION before OffsetCommit v9 and GROUP_ID_NOT_FOUND from v9.
   */
  readonly unknownGroupError: "illegalGeneration" | "groupIdNotFound";
}

export type OffsetDeleteCheck =
  | { readonly error: GroupError }
  | { readonly error: null; readonly isSubscribed: (topic: string) => boolean };

export interface GroupOverview {
  readonly groupId: string;
  /** "" when the group never had a member (offsets committed from outside). */
  readonly protocolType: string;
  readonly state: GroupState;
}

export interface MemberDescription {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  readonly clientHost: string;
  /** Empty unless the group is Stable (as Kafka's DescribeGroups). */
  readonly metadata: Uint8Array;
  readonly assignment: Uint8Array;
}

export interface GroupDescription {
  readonly groupId: string;
  readonly state: GroupState;
  readonly protocolType: string;
  /** The selected protocol when Stable, else "". */
  readonly protocolName: string;
  readonly generationId: number;
  readonly leaderId: string | null;
  readonly members: readonly MemberDescription[];
}

export class GroupCoordinator {
  readonly config: GroupCoordinatorConfig;
  /** Also the handlers' source of wall-clock time (offset commit timestamps). */
  readonly clock: Clock;
  readonly #random: Random;
  readonly #groupHasOffsets: (groupId: string) => boolean;
  readonly #groupStore: GroupMetadataStore | null;
  readonly #ownsGroup: (groupId: string) => boolean;
  readonly #groups = new Map<string, Group>();
  /** Callbacks to call when the running public method returns, in order. */
  #outbox: (() => void)[] = [];
  #running = false;

  constructor(options: GroupCoordinatorOptions) {
    this.config = { ...GROUP_COORDINATOR_CONFIG_DEFAULT, ...options.config };
    this.clock = options.clock;
    this.#random = options.random;
    this.#groupHasOffsets = options.groupHasOffsets;
    this.#groupStore = options.groupStore ?? null;
    this.#ownsGroup = options.ownsGroup ?? (() => true);
    const config = this.config;
    assert(config.sessionTimeoutMsMin > 0, "Minimum session timeout is not positive");
    assert(config.sessionTimeoutMsMin <= config.sessionTimeoutMsMax, "Session bounds inverted");
    assert(config.groupSizeMax >= 1, "Group size limit below 1");
    assert(config.initialRebalanceDelayMs >= 0, "Initial rebalance delay is negative");
    assert(config.newMemberJoinTimeoutMs > 0, "New member join timeout is not positive");
    assert(config.emptyGroupRetentionMs >= 0, "Empty group retention is negative");
  }

  // -------------------------------------------------------------------------------------
  // JoinGroup

  /** Answers through `respond`, at once or when the join phase completes. */
  joinGroup(input: JoinGroupInput, respond: JoinGroupCallback): void {
    this.#run(() => this.#joinGroup(input, respond));
  }

  #joinGroup(input: JoinGroupInput, respond: JoinGroupCallback): void {
    const fail = (error: GroupError, memberId = input.memberId) =>
      this.#send(() => respond(joinError(memberId, error)));
    if (input.groupId === "") return fail("invalidGroupId");
    if (!this.#ownsGroup(input.groupId)) return fail("notCoordinator");
    const { sessionTimeoutMsMin, sessionTimeoutMsMax } = this.config;
    const sessionTimeoutMs = input.sessionTimeoutMs;
    if (sessionTimeoutMs < sessionTimeoutMsMin || sessionTimeoutMs > sessionTimeoutMsMax) {
      return fail("invalidSessionTimeout");
    }
    const isUnknownMember = input.memberId === "";
    let group = this.#groups.get(input.groupId);
    if (group === undefined) {
      // Only a member without an id creates a group; a member id for a group that does
      // not exist is stale (the group expired or the coordinator restarted).
      if (!isUnknownMember) return fail("unknownMemberId");
      group = new Group(input.groupId, this.#nowMs());
      this.#groups.set(input.groupId, group);
    }
    const protocols = dedupeProtocols(input.protocols);
    if (!this.#acceptJoiningMember(group, input.memberId)) {
      group.remove(input.memberId);
      fail("groupMaxSizeReached", "");
    } else if (isUnknownMember) {
      this.#joinNewMember(group, input, protocols, respond);
    } else {
      this.#joinCurrentMember(group, input, protocols, respond);
    }
    if (group.is("PreparingRebalance")) this.#maybeCompleteJoin(group);
  }

  /** Kafka's acceptJoiningMember: group.max.size counts joined members. */
  #acceptJoiningMember(group: Group, memberId: string): boolean {
    const max = this.config.groupSizeMax;
    switch (group.state) {
      case "Empty":
      case "Dead":
        return true;
      case "PreparingRebalance": {
        // Awaiting members, not all members: the group may already be over the limit
        // (lowered limit), and this way the last members to rejoin are the ones shed.
        const awaiting = group.members.get(memberId)?.joinCallback ?? null;
        return awaiting !== null || group.awaitingJoinCount < max;
      }
      case "CompletingRebalance":
      case "Stable":
        return group.members.has(memberId) || group.members.size < max;
    }
  }

  #joinNewMember(
    group: Group,
    input: JoinGroupInput,
    protocols: readonly GroupProtocol[],
    respond: JoinGroupCallback,
  ): void {
    const fail = (error: GroupError) => this.#send(() => respond(joinError("", error)));
    if (group.is("Dead")) return fail("coordinatorNotAvailable");
    if (!group.supportsProtocols(input.protocolType, protocols)) {
      return fail("inconsistentGroupProtocol");
    }
    const newMemberId = `${input.groupInstanceId ?? input.clientId}-${this.#uuid()}`;
    if (input.groupInstanceId !== null) {
      // KIP-345: a static member needs no MEMBER_ID_REQUIRED round; its instance id
      // already identifies it, and a known one takes over its previous member.
      const oldMemberId = group.staticMembers.get(input.groupInstanceId);
      if (oldMemberId !== undefined) {
        log.info("Static member rejoins with an unknown member id", {
          group: group.groupId,
          instance: input.groupInstanceId,
          old: oldMemberId,
          new: newMemberId,
        });
        const ids = { oldMemberId, newMemberId };
        return this.#replaceStaticMember(group, ids, input, protocols, respond);
      }
      return this.#addMemberAndRebalance(group, newMemberId, input, protocols, respond);
    }
    if (input.requireKnownMemberId) {
      // KIP-394: hand out the id and wait for the member to come back with it, so a
      // client that loses this response does not leave a phantom member behind.
      group.pendingMembers.set(newMemberId, this.#nowMs() + input.sessionTimeoutMs);
      return this.#send(() => respond(joinError(newMemberId, "memberIdRequired")));
    }
    this.#addMemberAndRebalance(group, newMemberId, input, protocols, respond);
  }

  #joinCurrentMember(
    group: Group,
    input: JoinGroupInput,
    protocols: readonly GroupProtocol[],
    respond: JoinGroupCallback,
  ): void {
    const memberId = input.memberId;
    const fail = (error: GroupError) => this.#send(() => respond(joinError(memberId, error)));
    if (group.is("Dead")) return fail("coordinatorNotAvailable");
    if (!group.supportsProtocols(input.protocolType, protocols)) {
      return fail("inconsistentGroupProtocol");
    }
    if (group.pendingMembers.has(memberId)) {
      // Ids handed out with MEMBER_ID_REQUIRED belong to dynamic members only; Kafka
      // throws here (UNKNOWN_SERVER_ERROR). Making the client start over is kinder.
      if (input.groupInstanceId !== null) return fail("unknownMemberId");
      return this.#addMemberAndRebalance(group, memberId, input, protocols, respond);
    }
    const memberError = this.#validateCurrentMember(group, memberId, input.groupInstanceId);
    if (memberError !== null) return fail(memberError);
    const member = group.members.get(memberId);
    assert(member !== undefined, "Validated member is missing");
    const resend = () => this.#send(() => respond(this.#joinSuccess(group, memberId)));
    switch (group.state) {
      case "PreparingRebalance":
        return this.#updateMemberAndRebalance(group, member, input, protocols, respond);
      case "CompletingRebalance":
        // Same metadata: the member lost its JoinGroup response; send it again.
        if (member.matches(protocols)) return resend();
        return this.#updateMemberAndRebalance(group, member, input, protocols, respond);
      case "Stable":
        // A leader's JoinGroup always rebalances: that is how it reacts to changes the
        // metadata does not show (new partitions of a subscribed topic).
        if (group.isLeader(memberId) || !member.matches(protocols)) {
          return this.#updateMemberAndRebalance(group, member, input, protocols, respond);
        }
        return resend();
      case "Empty":
      case "Dead":
        return fail("unknownMemberId");
    }
  }

  #addMemberAndRebalance(
    group: Group,
    memberId: string,
    input: JoinGroupInput,
    protocols: readonly GroupProtocol[],
    respond: JoinGroupCallback,
  ): void {
    const member = new Member({
      memberId,
      groupInstanceId: input.groupInstanceId,
      clientId: input.clientId,
      clientHost: input.clientHost,
      protocolType: input.protocolType,
      rebalanceTimeoutMs: input.rebalanceTimeoutMs,
      sessionTimeoutMs: input.sessionTimeoutMs,
      protocols,
    });
    member.isNew = true;
    // A member joining during the initial delay buys the group one more delay.
    if (group.is("PreparingRebalance") && group.initialJoin !== null) group.newMemberAdded = true;
    group.add(member, respond);
    // A new member cannot heartbeat until its JoinGroup is answered, and a client that
    // gave up and retried would leave it behind: its parked join has its own timeout.
    member.heartbeatDeadlineMs = this.#nowMs() + this.config.newMemberJoinTimeoutMs;
    log.debug("Member added", { group: group.groupId, member: memberId, state: group.state });
    this.#maybePrepareRebalance(group, `Adding new member ${memberId}`);
  }

  #updateMemberAndRebalance(
    group: Group,
    member: Member,
    input: JoinGroupInput,
    protocols: readonly GroupProtocol[],
    respond: JoinGroupCallback,
  ): void {
    this.#supersedeJoin(group, member);
    const { rebalanceTimeoutMs, sessionTimeoutMs } = input;
    group.updateMember(member, protocols, rebalanceTimeoutMs, sessionTimeoutMs, respond);
    this.#maybePrepareRebalance(group, `Member ${member.memberId} rejoins in ${group.state}`);
  }

  /** KIP-345: a known group instance id joined without a member id. */
  #replaceStaticMember(
    group: Group,
    { oldMemberId, newMemberId }: { oldMemberId: string; newMemberId: string },
    input: JoinGroupInput,
    protocols: readonly GroupProtocol[],
    respond: JoinGroupCallback,
  ): void {
    const instanceId = input.groupInstanceId;
    assert(instanceId !== null, "Replacing a member that is not static");
    const currentLeader = group.leaderId ?? "";
    const old = group.members.get(oldMemberId);
    assert(old !== undefined, "Static member id is not a member");
    // Whoever still uses the old member id is a duplicate instance: fence it now.
    this.#answerJoin(group, old, joinError(oldMemberId, "fencedInstanceId"));
    this.#answerSync(old, syncError("fencedInstanceId"));
    const member = group.replaceStaticMember(instanceId, oldMemberId, newMemberId);
    this.#touch(member);
    const { rebalanceTimeoutMs, sessionTimeoutMs } = input;
    group.updateMember(member, protocols, rebalanceTimeoutMs, sessionTimeoutMs, respond);
    switch (group.state) {
      case "Stable": {
        // No rebalance while the group's protocol stays the same: the member gets its
        // previous assignment back through SyncGroup.
        if (group.protocolName !== group.selectProtocol()) {
          const reason = `Static member ${instanceId} changes the protocol`;
          return this.#maybePrepareRebalance(group, reason);
        }
        // The new member id must survive a restart, or the member would be unknown.
        this.#storeGroup(group);
        let result: JoinGroupResult;
        if (input.supportSkippingAssignment) {
          // KIP-814: tell a returning leader it leads, but must not reassign.
          const isLeader = group.isLeader(newMemberId);
          result = {
            ...this.#joinSuccess(group, newMemberId),
            members: isLeader ? group.currentMembers() : [],
            skipAssignment: isLeader,
          };
        } else {
          // Before v9 the old leader id is returned, so that a returning leader does not
          // think it leads and compute an assignment the Stable group would ignore.
          result = { ...this.#joinSuccess(group, newMemberId), members: [], leader: currentLeader };
        }
        return this.#answerJoin(group, member, result);
      }
      case "CompletingRebalance":
        // The leader may be assigning to the old member id; start over.
        return this.#prepareRebalance(group, `Static member ${instanceId} rejoins during sync`);
      case "PreparingRebalance":
        return;
      case "Empty":
      case "Dead":
        assert(false, `Static member known to a group in state ${group.state}`);
    }
  }

  #joinSuccess(group: Group, memberId: string): JoinGroupResult {
    return {
      error: null,
      memberId,
      generationId: group.generationId,
      protocolType: group.protocolType,
      protocolName: group.protocolName,
      leader: group.leaderId ?? "",
      skipAssignment: false,
      members: group.isLeader(memberId) ? group.currentMembers() : [],
    };
  }

  // -------------------------------------------------------------------------------------
  // SyncGroup

  /** Answers through `respond`, at once or when the leader's assignment arrives. */
  syncGroup(input: SyncGroupInput, respond: SyncGroupCallback): void {
    this.#run(() => this.#syncGroup(input, respond));
  }

  #syncGroup(input: SyncGroupInput, respond: SyncGroupCallback): void {
    const fail = (error: GroupError) => this.#send(() => respond(syncError(error)));
    if (input.groupId === "") return fail("invalidGroupId");
    if (!this.#ownsGroup(input.groupId)) return fail("notCoordinator");
    const group = this.#groups.get(input.groupId);
    if (group === undefined) return fail("unknownMemberId");
    if (group.is("Dead")) return fail("coordinatorNotAvailable");
    const memberError = this.#validateCurrentMember(group, input.memberId, input.groupInstanceId);
    if (memberError !== null) return fail(memberError);
    if (input.generationId !== group.generationId) return fail("illegalGeneration");
    if (input.protocolType !== null && input.protocolType !== group.protocolType) {
      return fail("inconsistentGroupProtocol");
    }
    if (input.protocolName !== null && input.protocolName !== group.protocolName) {
      return fail("inconsistentGroupProtocol");
    }
    const member = group.members.get(input.memberId);
    assert(member !== undefined, "Validated member is missing");
    switch (group.state) {
      case "Empty":
        return fail("unknownMemberId");
      case "PreparingRebalance":
        return fail("rebalanceInProgress");
      case "CompletingRebalance": {
        this.#supersedeSync(member);
        member.syncCallback = respond;
        this.#removePendingSync(group, member.memberId);
        if (!group.isLeader(member.memberId)) return;
        if (group.assignmentStoring) return;
        const given = new Map(input.assignments.map((each) => [each.memberId, each.assignment]));
        const assignments = new Map<string, Uint8Array>();
        for (const memberId of group.members.keys()) {
          // A member the leader left out gets an empty assignment, as in Kafka.
          assignments.set(memberId, copyBytes(given.get(memberId) ?? EMPTY_BYTES));
        }
        log.info("Assignment received from the leader", {
          group: group.groupId,
          generation: group.generationId,
          members: group.members.size,
        });
        const store = this.#groupStore;
        if (store === null) return this.#applyAssignment(group, assignments);
        // Kafka's storeGroup: members get their assignment only once it is durable, so
        // a restarted coordinator knows the generation they run.
        group.assignmentStoring = true;
        const generation = group.generationId;
        const stored = store.storeGroup(snapshotGroup(group, this.clock.nowMs(), assignments));
        stored.then(
          () => this.#run(() => this.#assignmentStored(group, generation, assignments, null)),
          (error: unknown) => {
            log.error("Group metadata not stored", { group: group.groupId, error: String(error) });
            this.#run(() =>
              this.#assignmentStored(group, generation, assignments, "coordinatorNotAvailable"),
            );
          },
        );
        return;
      }
      case "Stable":
        this.#removePendingSync(group, member.memberId);
        this.#send(() =>
          respond({
            error: null,
            protocolType: group.protocolType,
            protocolName: group.protocolName,
            assignment: member.assignment,
          }),
        );
        this.#touch(member);
        return;
      case "Dead":
        assert(false, "Dead group reached SyncGroup");
    }
  }

  #applyAssignment(group: Group, assignments: ReadonlyMap<string, Uint8Array>): void {
    for (const member of group.members.values()) {
      member.assignment = assignments.get(member.memberId) ?? EMPTY_BYTES;
    }
    this.#propagateAssignment(group, null);
    group.transitionTo("Stable", this.#nowMs());
  }

  /**
   * The leader's assignment was stored (or not, with `error`). A rebalance that started
   * meanwhile already answered the parked SyncGroups; then there is nothing to do.
   */
  #assignmentStored(
    group: Group,
    generation: number,
    assignments: ReadonlyMap<string, Uint8Array>,
    error: GroupError | null,
  ): void {
    if (this.#groups.get(group.groupId) !== group || group.generationId !== generation) return;
    group.assignmentStoring = false;
    if (!group.is("CompletingRebalance")) return;
    if (error === null) return this.#applyAssignment(group, assignments);
    // Kafka's resetAndPropagateAssignmentError, then a new generation.
    for (const member of group.members.values()) member.assignment = EMPTY_BYTES;
    this.#propagateAssignment(group, error);
    this.#maybePrepareRebalance(group, "Group metadata could not be stored");
  }

  /** Stores the group as it stands now; a failure is logged (Kafka logs it too). */
  #storeGroup(group: Group): void {
    this.#groupStore
      ?.storeGroup(snapshotGroup(group, this.clock.nowMs()))
      .catch((error: unknown) => {
        log.error("Group metadata not stored", { group: group.groupId, error: String(error) });
      });
  }

  #removePendingSync(group: Group, memberId: string): void {
    group.pendingSyncMembers.delete(memberId);
    if (group.pendingSyncMembers.size === 0) group.syncDeadlineMs = null;
  }

  /** Answers every parked SyncGroup with its member's assignment, or with `error`. */
  #propagateAssignment(group: Group, error: GroupError | null): void {
    for (const member of group.members.values()) {
      const answered = this.#answerSync(member, {
        error,
        protocolType: error === null ? group.protocolType : null,
        protocolName: error === null ? group.protocolName : null,
        assignment: error === null ? member.assignment : EMPTY_BYTES,
      });
      // A member whose session ran out while it waited for the leader starts afresh.
      if (answered) this.#touch(member);
    }
  }

  // -------------------------------------------------------------------------------------
  // Heartbeat and LeaveGroup

  heartbeat(input: HeartbeatInput): GroupError | null {
    return this.#run(() => {
      if (input.groupId === "") return "invalidGroupId";
      if (!this.#ownsGroup(input.groupId)) return "notCoordinator";
      const group = this.#groups.get(input.groupId);
      if (group === undefined) return "unknownMemberId";
      if (group.is("Dead")) return "coordinatorNotAvailable";
      const memberError = this.#validateCurrentMember(group, input.memberId, input.groupInstanceId);
      if (memberError !== null) return memberError;
      if (input.generationId !== group.generationId) return "illegalGeneration";
      const member = group.members.get(input.memberId);
      assert(member !== undefined, "Validated member is missing");
      switch (group.state) {
        case "Empty":
        case "Dead":
          return "unknownMemberId";
        case "CompletingRebalance":
        case "Stable":
          // Consumers may heartbeat as soon as their JoinGroup is answered.
          this.#touch(member);
          return null;
        case "PreparingRebalance":
          this.#touch(member);
          return "rebalanceInProgress";
      }
    });
  }

  /** LeaveGroup; v0-v2 send one member, v3+ (KIP-345) a batch. */
  leaveGroup(groupId: string, leaving: readonly LeavingMember[]): LeaveGroupResult {
    return this.#run((): LeaveGroupResult => {
      if (groupId === "") return { error: "invalidGroupId", members: [] };
      if (!this.#ownsGroup(groupId)) return { error: "notCoordinator", members: [] };
      const group = this.#groups.get(groupId);
      const answer = (who: LeavingMember, error: GroupError | null) => ({
        memberId: who.memberId,
        groupInstanceId: who.groupInstanceId,
        error,
      });
      if (group === undefined) {
        return { error: null, members: leaving.map((who) => answer(who, "unknownMemberId")) };
      }
      if (group.is("Dead")) return { error: "coordinatorNotAvailable", members: [] };
      const members = leaving.map((who) => {
        const reason = `Member left: ${who.reason ?? "no reason given"}`;
        if (who.memberId === "") {
          // Admin removal of a static member by its instance id.
          const instanceId = who.groupInstanceId;
          const current = instanceId === null ? undefined : group.staticMembers.get(instanceId);
          const member = current === undefined ? undefined : group.members.get(current);
          if (member === undefined) return answer(who, "unknownMemberId");
          this.#removeMemberAndUpdateGroup(group, member, reason);
          return answer(who, null);
        }
        if (group.pendingMembers.delete(who.memberId)) {
          if (group.is("PreparingRebalance")) this.#maybeCompleteJoin(group);
          return answer(who, null);
        }
        const memberError = this.#validateCurrentMember(group, who.memberId, who.groupInstanceId);
        if (memberError !== null) return answer(who, memberError);
        const member = group.members.get(who.memberId);
        assert(member !== undefined, "Validated member is missing");
        this.#removeMemberAndUpdateGroup(group, member, reason);
        return answer(who, null);
      });
      return { error: null, members };
    });
  }

  // -------------------------------------------------------------------------------------
  // Offsets, deletion and listing

  /**
   * The group side of OffsetCommit (Kafka's validateOffsetCommit). A commit with
   * generation -1 and no member id to a group that does not exist creates an Empty
   * group, as Kafka does for consumers that assign partitions themselves.
   */
  validateOffsetCommit(check: OffsetCommitCheck): GroupError | null {
    return this.#run((): GroupError | null => {
      if (!this.#ownsGroup(check.groupId)) return "notCoordinator";
      let group = this.#groups.get(check.groupId);
      if (group === undefined) {
        if (check.generationId >= 0) return check.unknownGroupError;
        log.info("Group created by a commit outside group management", { group: check.groupId });
        group = new Group(check.groupId, this.#nowMs());
        this.#groups.set(check.groupId, group);
      }
      if (group.is("Dead")) return "coordinatorNotAvailable";
      // Generation -1 (admin client, manual assignment) may commit while nobody is in.
      if (check.generationId < 0 && group.is("Empty")) return null;
      if (check.generationId >= 0 || check.memberId !== "" || check.groupInstanceId !== null) {
        const { memberId, groupInstanceId } = check;
        const memberError = this.#validateCurrentMember(group, memberId, groupInstanceId);
        if (memberError !== null) return memberError;
        if (check.generationId !== group.generationId) return "illegalGeneration";
      } else if (!group.is("Empty")) {
        // Once the group has members, only they may commit.
        return "unknownMemberId";
      }
      switch (group.state) {
        case "Empty":
          return null;
        case "CompletingRebalance":
          // The member knows the new generation but has no assignment yet.
          return "rebalanceInProgress";
        case "PreparingRebalance":
        case "Stable": {
          // A commit counts as a sign of life; during PreparingRebalance the member
          // learns of the rebalance from its next heartbeat.
          const member = group.members.get(check.memberId);
          assert(member !== undefined, "Validated member is missing");
          this.#touch(member);
          return null;
        }
        case "Dead":
          return "coordinatorNotAvailable";
      }
    });
  }

  /** The group side of OffsetDelete: which topics' offsets may go. */
  validateOffsetDelete(groupId: string): OffsetDeleteCheck {
    return this.#run((): OffsetDeleteCheck => {
      if (groupId === "") return { error: "invalidGroupId" };
      if (!this.#ownsGroup(groupId)) return { error: "notCoordinator" };
      const group = this.#groups.get(groupId);
      if (group === undefined || group.is("Dead")) return { error: "groupIdNotFound" };
      if (group.is("Empty")) return { error: null, isSubscribed: () => false };
      // Only a consumer group's subscriptions are known; any other non-empty group
      // keeps all its offsets.
      if (group.protocolType !== CONSUMER_PROTOCOL_TYPE) return { error: "nonEmptyGroup" };
      return { error: null, isSubscribed: (topic) => group.isSubscribedToTopic(topic) };
    });
  }

  /**
   * DeleteGroups for one group: only an Empty group goes (its offsets are the caller's
   * to delete). The empty group id is allowed, as in Kafka.
   */
  deleteGroup(groupId: string): GroupError | null {
    return this.#run((): GroupError | null => {
      if (!this.#ownsGroup(groupId)) return "notCoordinator";
      const group = this.#groups.get(groupId);
      if (group === undefined || group.is("Dead")) return "groupIdNotFound";
      if (!group.is("Empty")) return "nonEmptyGroup";
      this.#removeGroup(group);
      log.info("Group deleted", { group: groupId });
      return null;
    });
  }

  /**
   * At start: a group known only from its replayed committed offsets exists again, Empty,
   * as Kafka reloads it from __consumer_offsets, so it can be listed, described, deleted.
   */
  restoreEmptyGroup(groupId: string): void {
    this.#run((): null => {
      if (!this.#groups.has(groupId)) this.#groups.set(groupId, new Group(groupId, this.#nowMs()));
      return null;
    });
  }

  /**
   * At start: a group from its stored metadata, Stable with its members (whose sessions
   * start now) or Empty. False when the snapshot cannot be run; the group is then
   * restored Empty by `restoreEmptyGroup` if it has offsets.
   */
  restoreGroup(snapshot: GroupSnapshot): boolean {
    return this.#run((): boolean => {
      // A group already running here (formed since start) is newer than any snapshot.
      if (this.#groups.has(snapshot.groupId)) return true;
      const group = restoreGroup(snapshot, this.#nowMs());
      if (group === null) {
        log.warn("Stored group metadata is inconsistent; ignored", { group: snapshot.groupId });
        return false;
      }
      this.#groups.set(group.groupId, group);
      return true;
    });
  }

  /**
   * This node stopped coordinating these groups (it no longer leads their partition of
   * __consumer_offsets): members waiting in a join or sync are told NOT_COORDINATOR and
   * the groups are forgotten here, without a tombstone (the new coordinator loads them
   * from the log). Kafka's unload on resignation.
   */
  unloadGroups(groupIds: readonly string[]): void {
    this.#run((): null => {
      for (const groupId of groupIds) {
        const group = this.#groups.get(groupId);
        if (group === undefined) continue;
        for (const member of group.members.values()) {
          this.#answerJoin(group, member, joinError(member.memberId, "notCoordinator"));
          this.#answerSync(member, syncError("notCoordinator"));
        }
        this.#groups.delete(groupId);
      }
      return null;
    });
  }

  /** Whether this node coordinates the group (see the `ownsGroup` option). */
  coordinates(groupId: string): boolean {
    return this.#ownsGroup(groupId);
  }

  listGroups(): GroupOverview[] {
    return [...this.#groups.values()].map((group) => ({
      groupId: group.groupId,
      protocolType: group.protocolType ?? "",
      state: group.state,
    }));
  }

  /** DescribeGroups for one group; undefined when it does not exist. */
  describeGroup(groupId: string): GroupDescription | undefined {
    const group = this.#groups.get(groupId);
    if (group === undefined) return undefined;
    const stable = group.is("Stable");
    const protocolName = stable ? group.protocolName : null;
    return {
      groupId,
      state: group.state,
      protocolType: group.protocolType ?? "",
      protocolName: protocolName ?? "",
      generationId: group.generationId,
      leaderId: group.leaderId,
      members: [...group.members.values()].map((member) => ({
        memberId: member.memberId,
        groupInstanceId: member.groupInstanceId,
        clientId: member.clientId,
        clientHost: member.clientHost,
        metadata: protocolName === null ? EMPTY_BYTES : member.metadata(protocolName),
        assignment: stable ? member.assignment : EMPTY_BYTES,
      })),
    };
  }

  /** Test aid: checks every group's invariants (group.ts). */
  checkInvariants(): void {
    for (const group of this.#groups.values()) group.checkInvariants();
  }

  // -------------------------------------------------------------------------------------
  // Time

  /** Expires what is due; call every 100 ms or so. */
  tick(): void {
    this.#run(() => {
      const now = this.#nowMs();
      for (const group of [...this.#groups.values()]) this.#tickGroup(group, now);
    });
  }

  #tickGroup(group: Group, now: number): void {
    let pendingExpired = false;
    for (const [memberId, deadline] of [...group.pendingMembers]) {
      if (deadline > now) continue;
      log.info("Handed-out member id unused in time", { group: group.groupId, member: memberId });
      group.pendingMembers.delete(memberId);
      pendingExpired = true;
    }
    if (pendingExpired && group.is("PreparingRebalance")) this.#maybeCompleteJoin(group);

    for (const member of [...group.members.values()]) {
      // A member removed by an earlier expiry's rebalance is no longer in the group.
      if (group.members.get(member.memberId) !== member) continue;
      if (member.heartbeatDeadlineMs > now) continue;
      // Members waiting on the rebalance cannot heartbeat; their clock restarts when
      // they are answered. New members time out on their join (newMemberJoinTimeoutMs).
      const awaiting = member.joinCallback !== null || member.syncCallback !== null;
      if (awaiting && !member.isNew) continue;
      log.info("Member session expired", { group: group.groupId, member: member.memberId });
      this.#removeMemberAndUpdateGroup(group, member, `Session of ${member.memberId} expired`);
    }

    const joinDeadlineMs = group.joinDeadlineMs;
    if (group.is("PreparingRebalance") && joinDeadlineMs !== null && joinDeadlineMs <= now) {
      this.#onJoinDeadline(group, now);
    }

    const syncing = group.is("CompletingRebalance") || group.is("Stable");
    if (syncing && group.syncDeadlineMs !== null && group.syncDeadlineMs <= now) {
      this.#expirePendingSync(group);
    }

    if (
      group.is("Empty") &&
      group.pendingMembers.size === 0 &&
      now - group.stateSinceMs >= this.config.emptyGroupRetentionMs &&
      !this.#groupHasOffsets(group.groupId)
    ) {
      log.info("Empty group without offsets removed", { group: group.groupId });
      this.#removeGroup(group);
    }
  }

  /** Kafka's InitialDelayedJoin and DelayedJoin expiring. */
  #onJoinDeadline(group: Group, now: number): void {
    const initial = group.initialJoin;
    const delayMs = Math.min(this.config.initialRebalanceDelayMs, initial?.remainingMs ?? 0);
    // With no delay, waiting again could not let anyone else in: complete now.
    if (initial !== null && group.newMemberAdded && initial.remainingMs > 0 && delayMs > 0) {
      group.newMemberAdded = false;
      group.initialJoin = { delayMs, remainingMs: Math.max(initial.remainingMs - delayMs, 0) };
      group.joinDeadlineMs = now + delayMs;
      return;
    }
    this.#completeJoinPhase(group);
  }

  /** Kafka's onExpirePendingSync: members that never sent SyncGroup are removed. */
  #expirePendingSync(group: Group): void {
    group.syncDeadlineMs = null;
    if (group.pendingSyncMembers.size === 0) return;
    const missing = [...group.pendingSyncMembers];
    log.info("No SyncGroup in time", { group: group.groupId, members: missing.join(",") });
    for (const memberId of missing) {
      const member = group.members.get(memberId);
      if (member !== undefined) this.#answerJoin(group, member, joinError("", "unknownMemberId"));
      group.remove(memberId);
    }
    this.#prepareRebalance(group, `Removing ${missing.join(",")} on pending sync expiry`);
  }

  // -------------------------------------------------------------------------------------
  // Rebalance machinery

  #maybePrepareRebalance(group: Group, reason: string): void {
    if (group.canRebalance()) this.#prepareRebalance(group, reason);
  }

  #prepareRebalance(group: Group, reason: string): void {
    // Members waiting for their assignment must rejoin instead.
    if (group.is("CompletingRebalance")) {
      for (const member of group.members.values()) member.assignment = EMPTY_BYTES;
      this.#propagateAssignment(group, "rebalanceInProgress");
    }
    group.pendingSyncMembers.clear();
    group.syncDeadlineMs = null;
    const now = this.#nowMs();
    const fromEmpty = group.is("Empty");
    group.transitionTo("PreparingRebalance", now);
    const generation = group.generationId;
    log.info("Preparing to rebalance", { group: group.groupId, generation, reason });
    group.newMemberAdded = false;
    if (fromEmpty) {
      // A new group waits group.initial.rebalance.delay.ms for more members (again for
      // each newcomer), never past the rebalance timeout, and never completes earlier.
      const delayMs = this.config.initialRebalanceDelayMs;
      const remainingMs = Math.max(group.rebalanceTimeoutMs() - delayMs, 0);
      group.initialJoin = { delayMs, remainingMs };
      group.joinDeadlineMs = now + delayMs;
      return;
    }
    group.initialJoin = null;
    group.joinDeadlineMs = now + group.rebalanceTimeoutMs();
    this.#maybeCompleteJoin(group);
  }

  /** Ends the join phase early once every member rejoined (not during the initial delay). */
  #maybeCompleteJoin(group: Group): void {
    assert(group.is("PreparingRebalance"), "Join completion outside PreparingRebalance");
    if (group.initialJoin !== null) return;
    if (group.hasAllMembersJoined()) this.#completeJoinPhase(group);
  }

  /** Kafka's onCompleteJoin. */
  #completeJoinPhase(group: Group): void {
    assert(group.is("PreparingRebalance"), "Join completion outside PreparingRebalance");
    const now = this.#nowMs();
    // Dynamic members that did not rejoin in time are gone; static ones keep their
    // place (KIP-345: a restarting static member must not cause a rebalance).
    for (const member of [...group.members.values()]) {
      if (member.joinCallback !== null || member.groupInstanceId !== null) continue;
      assert(member.syncCallback === null, "Member not rejoined awaits sync");
      log.info("Member did not rejoin in time", { group: group.groupId, member: member.memberId });
      group.remove(member.memberId);
    }
    if (!group.maybeElectNewJoinedLeader() && group.members.size > 0) {
      // Only static members that did not rejoin are left: wait another rebalance
      // timeout, until their sessions expire.
      log.warn("No member rejoined; extending the rebalance", { group: group.groupId });
      group.initialJoin = null;
      group.joinDeadlineMs = now + group.rebalanceTimeoutMs();
      return;
    }
    group.joinDeadlineMs = null;
    group.initialJoin = null;
    group.initNextGeneration(now);
    if (group.is("Empty")) {
      log.info("Group is empty", { group: group.groupId, generation: group.generationId });
      this.#storeGroup(group);
      return;
    }
    log.info("Group rebalanced", {
      group: group.groupId,
      generation: group.generationId,
      members: group.members.size,
      protocol: group.protocolName,
      leader: group.leaderId,
    });
    for (const member of group.members.values()) {
      this.#answerJoin(group, member, this.#joinSuccess(group, member.memberId));
      this.#touch(member);
      member.isNew = false;
      group.pendingSyncMembers.add(member.memberId);
    }
    group.syncDeadlineMs = now + group.rebalanceTimeoutMs();
  }

  #removeMemberAndUpdateGroup(group: Group, member: Member, reason: string): void {
    // A member may leave or expire with a parked JoinGroup or SyncGroup: answer them so
    // the client rejoins if it is still there.
    this.#answerJoin(group, member, joinError("", "unknownMemberId"));
    this.#answerSync(member, syncError("unknownMemberId"));
    group.remove(member.memberId);
    switch (group.state) {
      case "Empty":
      case "Dead":
        return;
      case "Stable":
      case "CompletingRebalance":
        return this.#maybePrepareRebalance(group, reason);
      case "PreparingRebalance":
        return this.#maybeCompleteJoin(group);
    }
  }

  #removeGroup(group: Group): void {
    assert(group.members.size === 0, "Removing a group with members");
    group.transitionTo("Dead", this.#nowMs());
    this.#groups.delete(group.groupId);
    this.#groupStore?.removeGroup(group.groupId).catch((error: unknown) => {
      log.error("Group metadata tombstone not stored", {
        group: group.groupId,
        error: String(error),
      });
    });
  }

  /**
   * Kafka's validateCurrentMember: a group instance id must map to this member id
   * (else the caller is a fenced duplicate), and the member id must be a member.
   */
  #validateCurrentMember(
    group: Group,
    memberId: string,
    instanceId: string | null,
  ): GroupError | null {
    if (instanceId !== null) {
      const current = group.staticMembers.get(instanceId);
      if (current === undefined) return "unknownMemberId";
      if (current !== memberId) return "fencedInstanceId";
      return null;
    }
    return group.members.has(memberId) ? null : "unknownMemberId";
  }

  // -------------------------------------------------------------------------------------
  // Callbacks and helpers

  #answerJoin(group: Group, member: Member, result: JoinGroupResult): void {
    const callback = member.joinCallback;
    if (callback === null) return;
    group.setJoinCallback(member, null);
    this.#send(() => callback(result));
  }

  /** True when the member had a parked SyncGroup. */
  #answerSync(member: Member, result: SyncGroupResult): boolean {
    const callback = member.syncCallback;
    if (callback === null) return false;
    member.syncCallback = null;
    this.#send(() => callback(result));
    return true;
  }

  /** A newer JoinGroup of the same member replaces a parked one; answer the old one. */
  #supersedeJoin(group: Group, member: Member): void {
    this.#answerJoin(group, member, joinError(member.memberId, "rebalanceInProgress"));
  }

  #supersedeSync(member: Member): void {
    this.#answerSync(member, syncError("rebalanceInProgress"));
  }

  /** The member showed it is alive: its session restarts. */
  #touch(member: Member): void {
    member.heartbeatDeadlineMs = this.#nowMs() + member.sessionTimeoutMs;
  }

  #nowMs(): number {
    return this.clock.monotonicMs();
  }

  /** A random UUID (version 4 layout) from the injected random source. */
  #uuid(): string {
    let hex = "";
    for (let i = 0; i < 8; i++) hex += this.#random.int(0, 0xffff).toString(16).padStart(4, "0");
    const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
    const time = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}`;
    return `${time}-${variant}${hex.slice(17, 20)}-${hex.slice(20)}`;
  }

  #send(deliver: () => void): void {
    this.#outbox.push(deliver);
  }

  /** Runs a public method's body, then delivers the callbacks it queued. */
  #run<T>(body: () => T): T {
    assert(!this.#running, "Group coordinator re-entered");
    this.#running = true;
    let result: T;
    try {
      result = body();
    } finally {
      this.#running = false;
    }
    const outbox = this.#outbox;
    this.#outbox = [];
    for (const deliver of outbox) deliver();
    return result;
  }
}

function joinError(memberId: string, error: GroupError): JoinGroupResult {
  return {
    error,
    memberId,
    generationId: -1,
    protocolType: null,
    protocolName: null,
    leader: "",
    skipAssignment: false,
    members: [],
  };
}

function syncError(error: GroupError): SyncGroupResult {
  return { error, protocolType: null, protocolName: null, assignment: EMPTY_BYTES };
}

/**
 * Keeps the first of protocols named twice (Kafka keys them by name) and copies the
 * metadata out of the request frame, which the coordinator outlives.
 */
function dedupeProtocols(protocols: readonly GroupProtocol[]): GroupProtocol[] {
  const seen = new Set<string>();
  const out: GroupProtocol[] = [];
  for (const protocol of protocols) {
    if (seen.has(protocol.name)) continue;
    seen.add(protocol.name);
    out.push({ name: protocol.name, metadata: copyBytes(protocol.metadata) });
  }
  return out;
}

function copyBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteLength === 0 ? EMPTY_BYTES : new Uint8Array(bytes);
}
