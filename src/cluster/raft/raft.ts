/**
 * @module
 * Raft (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm", and
 * Ongaro's dissertation) as a pure state machine, after etcd-io/raft: no sockets,
 * timers, files or clock. Inputs are `tick()`, `step(message)` and the proposals;
 * outputs come out of `ready()` as data for a driver (RaftNode, or the simulator), which
 * persists, sends and applies them, then calls `advance()`.
 *
 * Included: leader election with pre-vote (dissertation 9.6) and check-quorum (6.2),
 * log replication with pipelining and flow control (progress.ts), commitment (paper
 * 5.3-5.4), snapshots and compaction with a single-message InstallSnapshot (paper 7),
 * single-server membership changes with observers (dissertation 4.1-4.2), and
 * leadership transfer (3.10). Time is in ticks; election jitter comes from the injected
 * Random.
 *
 * Lifecycle: construct from the stored state (`RaftStorage.load()`), `bootstrap` only
 * the first node of a new cluster, then loop: inputs, `ready()`, persist / send /
 * apply, `advance()`. No input may arrive between `ready()` and `advance()`.
 *
 * Invariants kept here (the simulator checks them across nodes): term and vote only
 * grow within a term; one vote per term; a leader never overwrites its log; committed
 * entries are never truncated; the configuration in force is the latest one in the log
 * (committed or not), or the snapshot's.
 */
import { assert } from "../../util/assert.ts";
import type { Random } from "../../util/random.ts";
import { ENTRY_BYTES_MAX, SNAPSHOT_BYTES_MAX, UNCOMMITTED_ENTRIES_MAX } from "./limits.ts";
import {
  applyChange,
  decodeMembership,
  encodeMembership,
  isVoter,
  majorityOf,
  memberOf,
  type MembershipChange,
  type MembershipError,
  membershipOfVoters,
  votersOf,
} from "./membership.ts";
import { Progress } from "./progress.ts";
import { RaftLog } from "./raft-log.ts";
import {
  type AppendMessage,
  type AppendResponseMessage,
  EMPTY_DATA,
  EMPTY_STORED_STATE,
  type Entry,
  type HardState,
  isNodeId,
  type Membership,
  type Message,
  type NodeId,
  type PreVoteMessage,
  type Ready,
  type Role,
  type Snapshot,
  type SnapshotMessage,
  type SoftState,
  type StoredState,
  type VoteMessage,
  type VoteResponseMessage,
} from "./types.ts";
import { validateMessage } from "./validate.ts";

export const DEFAULT_ELECTION_TICKS = 10;
export const DEFAULT_HEARTBEAT_TICKS = 1;

export interface RaftOptions {
  id: NodeId;
  /** Election jitter; never Math.random (docs/conventions.md, section 5). */
  random: Random;
  /**
   * Ticks a follower waits for a leader before campaigning; each wait is drawn from
   * [electionTicks, 2 * electionTicks). A leader that heard from no quorum for this
   * long steps down (check-quorum).
   */
  electionTicks?: number;
  /** Ticks between a leader's heartbeats; well below electionTicks. */
  heartbeatTicks?: number;
  /** Dissertation 9.6: a partitioned node rejoining does not disrupt the leader. Default on. */
  preVote?: boolean;
  /** Dissertation 6.2: a leader without a quorum steps down; votes respect a lease. Default on. */
  checkQuorum?: boolean;
  /** What storage holds; empty for a new node. */
  stored?: StoredState;
}

/** Why a proposal was not appended; values, not exceptions (docs/conventions.md, section 6). */
export type ProposalError =
  | { readonly kind: "notLeader"; readonly leader: NodeId | null }
  | { readonly kind: "transferring"; readonly message: string }
  | { readonly kind: "tooLarge"; readonly message: string }
  | { readonly kind: "busy"; readonly message: string }
  | { readonly kind: "configChangeInProgress"; readonly message: string }
  | MembershipError;

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly error: ProposalError };

export type CompactResult =
  | { readonly ok: true; readonly snapshot: Snapshot }
  | { readonly ok: false; readonly kind: "stale" | "tooLarge"; readonly message: string };

/** A read-only view for callers, tests and the simulator's invariant checks. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
  readonly membership: Membership;
  readonly membershipIndex: number;
  /**
   * The highest commit index a leader has told this node in this process (its own commit
   * index while it leads); null until it has heard from one. With `applied` it says
   * whether this node has caught up with the cluster.
   */
  readonly leaderCommit: number | null;
}

export class Raft {
  readonly id: NodeId;
  readonly #random: Random;
  readonly #electionTicks: number;
  readonly #heartbeatTicks: number;
  readonly #preVote: boolean;
  readonly #checkQuorum: boolean;

  /** Latest term seen; persisted before anything that depends on it leaves the node. */
  #term: number;
  /** Whom this node voted for in `#term`; persisted like the term. */
  #vote: NodeId | null;
  /** The leader of `#term` as far as known. */
  #leader: NodeId | null = null;
  /** See RaftStatus.leaderCommit. */
  #leaderCommit: number | null = null;
  #role: Role;
  readonly #log: RaftLog;
  /** The configuration in force: the latest config entry in the log, or the snapshot's. */
  #membership: Membership;
  /** Index of the entry (or snapshot) that set `#membership`. */
  #membershipIndex: number;

  /** Ticks since the last election timeout reset (followers), or check-quorum round. */
  #electionElapsed = 0;
  /** Ticks since the last heartbeat (leaders). */
  #heartbeatElapsed = 0;
  /** This round's election timeout, in [electionTicks, 2 * electionTicks). */
  #randomizedElectionTimeout = 0;
  /** Answers received in this (pre-)election, by voter. */
  readonly #votes = new Map<NodeId, boolean>();
  /** Leader only: each other member's replication state. */
  readonly #progress = new Map<NodeId, Progress>();
  /** Leader only: the voter leadership is being handed to, if any. */
  #transferee: NodeId | null = null;
  /** Messages produced since the last `ready()`. */
  #messages: Message[] = [];

  /** Term and vote as last handed to storage (via `advance`). */
  #persistedTerm: number;
  #persistedVote: NodeId | null;
  /** Soft state as of the last `advance`, so a Ready is due when it changes. */
  #reportedSoft: SoftState;
  /** A Ready is out: no input until `advance()`. */
  #readyInFlight = false;

  constructor(options: RaftOptions) {
    assert(isNodeId(options.id), `Raft id is not a node id: ${options.id}`);
    this.id = options.id;
    this.#random = options.random;
    this.#electionTicks = options.electionTicks ?? DEFAULT_ELECTION_TICKS;
    this.#heartbeatTicks = options.heartbeatTicks ?? DEFAULT_HEARTBEAT_TICKS;
    assert(Number.isInteger(this.#electionTicks), "electionTicks is not an integer");
    assert(Number.isInteger(this.#heartbeatTicks), "heartbeatTicks is not an integer");
    assert(this.#heartbeatTicks >= 1, "heartbeatTicks is below 1");
    assert(this.#electionTicks > this.#heartbeatTicks, "electionTicks must exceed heartbeatTicks");
    this.#preVote = options.preVote ?? true;
    this.#checkQuorum = options.checkQuorum ?? true;

    const stored = options.stored ?? EMPTY_STORED_STATE;
    this.#log = new RaftLog(stored.snapshot, stored.entries, stored.hardState.commit);
    this.#term = stored.hardState.term;
    this.#vote = stored.hardState.vote;
    // Storage writes the term before entries of that term (the persistence rule).
    assert(this.#term >= this.#log.lastTerm, `Stored term ${this.#term} is behind the log`);
    this.#persistedTerm = this.#term;
    this.#persistedVote = this.#vote;
    const found = this.#latestMembership();
    this.#membership = found.membership;
    this.#membershipIndex = found.index;
    this.#role = isVoter(this.#membership, this.id) ? "follower" : "observer";
    this.#resetElectionTimeout();
    this.#reportedSoft = this.softState();
  }

  // -------------------------------------------------------------------------------------
  // Reading.

  softState(): SoftState {
    return { role: this.#role, leader: this.#leader, term: this.#term };
  }

  get role(): Role {
    return this.#role;
  }

  get term(): number {
    return this.#term;
  }

  get leader(): NodeId | null {
    return this.#leader;
  }

  get membership(): Membership {
    return this.#membership;
  }

  status(): RaftStatus {
    const log = this.#log;
    return {
      id: this.id,
      role: this.#role,
      term: this.#term,
      vote: this.#vote,
      leader: this.#leader,
      commit: log.commit,
      applied: log.applied,
      firstIndex: log.firstIndex,
      lastIndex: log.lastIndex,
      lastTerm: log.lastTerm,
      snapshotIndex: log.snapshot.index,
      snapshotTerm: log.snapshot.term,
      membership: this.#membership,
      membershipIndex: this.#membershipIndex,
      leaderCommit: this.#role === "leader" ? log.commit : this.#leaderCommit,
    };
  }

  /** The term of the entry at `index`, null when compacted or past the end. */
  termAt(index: number): number | null {
    return this.#log.termAt(index);
  }

  /** The entry at `index` if the log holds it (not compacted). */
  entryAt(index: number): Entry | undefined {
    return this.#log.entryAt(index);
  }

  /** The latest snapshot (index 0 when there is none). */
  snapshot(): Snapshot {
    return this.#log.snapshot;
  }

  // -------------------------------------------------------------------------------------
  // Inputs.

  /**
   * Starts a new cluster on this node: the first entry is a configuration of `voters`
   * (which must include this node), committed at once. Only on an empty log; a node
   * joining an existing cluster starts empty instead and learns its configuration from
   * the leader. With `[self]` the node elects itself on its first election timeout.
   */
  bootstrap(voters: readonly NodeId[]): void {
    this.#assertNoReady();
    assert(this.#log.lastIndex === 0, "Bootstrap of a node that has a log");
    assert(this.#term === 0, "Bootstrap of a node that has a term");
    assert(voters.includes(this.id), `Bootstrap voters do not include node ${this.id}`);
    const membership = membershipOfVoters(voters);
    this.#term = 1;
    const entry: Entry = { index: 1, term: 1, kind: "config", data: encodeMembership(membership) };
    this.#log.append(entry);
    this.#log.commitTo(1);
    this.#setMembership(membership, 1);
  }

  tick(): void {
    this.#assertNoReady();
    if (this.#role === "leader") this.#tickLeader();
    else this.#tickElection();
  }

  /**
   * A node that is the only voter of its configuration is a majority by itself: it
   * elects itself now instead of after an election timeout, so a single node (or the
   * first of a new cluster) serves right after start. True when it campaigned.
   */
  campaignIfSoleVoter(): boolean {
    this.#assertNoReady();
    if (this.#role === "leader") return false;
    const voters = votersOf(this.#membership);
    if (voters.length !== 1 || voters[0] !== this.id) return false;
    this.#campaign("election", false);
    return true;
  }

  /**
   * The transport found `id`'s port refusing connections: its process is gone. When it
   * is this follower's leader, the leader's lease ends now rather than after an election
   * timeout: this node grants votes at once and campaigns within a tick or two, the
   * voters in node id order a couple of ticks apart (so that the survivors, who all see
   * the refusal, do not split the vote). Raft's safety does not depend on when an
   * election starts; a leader that is in fact alive keeps its term unless a quorum
   * votes it out, and pre-vote keeps a lone node from disrupting it.
   */
  leaderUnreachable(id: NodeId): void {
    this.#assertNoReady();
    if (this.#role !== "follower" || this.#leader !== id) return;
    this.#leader = null;
    const others = votersOf(this.#membership)
      .filter((voter) => voter !== id)
      .sort((a, b) => a - b);
    const rank = others.indexOf(this.id);
    if (rank < 0) return; // Not a voter: it never campaigns.
    this.#electionElapsed = this.#electionTicks;
    this.#randomizedElectionTimeout = this.#electionTicks + 1 + 2 * rank;
  }

  /**
   * Handles one message from another node. Messages that fail validation, are
   * addressed elsewhere or carry stale terms are answered or dropped as Raft says,
   * never thrown on.
   */
  step(message: Message): void {
    this.#assertNoReady();
    if (message.to !== this.id || message.from === this.id) return;
    if (validateMessage(message) !== null) return;
    if (!this.#stepTerm(message)) return;
    switch (message.type) {
      case "preVote":
      case "vote":
        return this.#handleVoteRequest(message);
      default:
        break;
    }
    switch (this.#role) {
      case "leader":
        return this.#stepLeader(message);
      case "candidate":
      case "preCandidate":
        return this.#stepCandidate(message);
      case "follower":
      case "observer":
        return this.#stepFollower(message);
    }
  }

  /** Appends `data` as a data entry; only the leader accepts. */
  propose(data: Uint8Array): ProposeResult {
    this.#assertNoReady();
    const refused = this.#checkProposal();
    if (refused !== null) return { ok: false, error: refused };
    if (data.byteLength > ENTRY_BYTES_MAX) {
      const message = `Entry is larger than ${ENTRY_BYTES_MAX} bytes: ${data.byteLength}`;
      return { ok: false, error: { kind: "tooLarge", message } };
    }
    return { ok: true, ...this.#appendOwn("data", data) };
  }

  /** Adds `id` as a voter, or promotes an observer. */
  addVoter(id: NodeId): ProposeResult {
    return this.proposeMembershipChange({ kind: "addVoter", id });
  }

  /** Adds `id` as an observer (a learner), or demotes a voter. */
  addObserver(id: NodeId): ProposeResult {
    return this.proposeMembershipChange({ kind: "addObserver", id });
  }

  removeNode(id: NodeId): ProposeResult {
    return this.proposeMembershipChange({ kind: "removeNode", id });
  }

  /**
   * A single-server change (dissertation 4.1): takes effect as soon as it is appended,
   * one uncommitted change at a time, and only once this leader has committed an entry
   * of its own term (the fix from the raft-dev list, 2015: otherwise two changes from
   * successive leaders could each form a majority without overlapping).
   */
  proposeMembershipChange(change: MembershipChange): ProposeResult {
    this.#assertNoReady();
    assert(isNodeId(change.id), `Member id is not a node id: ${change.id}`);
    const refused = this.#checkProposal();
    if (refused !== null) return { ok: false, error: refused };
    if (this.#membershipIndex > this.#log.commit) {
      const message = `A configuration change is uncommitted at ${this.#membershipIndex}`;
      return { ok: false, error: { kind: "configChangeInProgress", message } };
    }
    if (this.#log.termAt(this.#log.commit) !== this.#term) {
      const message = "The leader has not committed an entry of its term yet";
      return { ok: false, error: { kind: "configChangeInProgress", message } };
    }
    const changed = applyChange(this.#membership, change);
    if (!changed.ok) return { ok: false, error: changed.error };
    return { ok: true, ...this.#appendOwn("config", encodeMembership(changed.membership)) };
  }

  /**
   * Hands leadership to voter `to` (dissertation 3.10): proposals are refused while it
   * runs; once `to` has the whole log it gets TimeoutNow and campaigns at once. Gives up
   * after an election timeout. False when this node is not leader or `to` is no voter.
   */
  transferLeadership(to: NodeId): boolean {
    this.#assertNoReady();
    if (this.#role !== "leader" || to === this.id) return false;
    if (!isVoter(this.#membership, to)) return false;
    const progress = this.#progress.get(to);
    if (progress === undefined) return false;
    this.#transferee = to;
    this.#electionElapsed = 0;
    if (progress.match === this.#log.lastIndex) this.#send({ type: "timeoutNow", to });
    else this.#sendAppend(to, true);
    return true;
  }

  /**
   * Replaces the log up to `index` (applied) by the state machine's snapshot `data`
   * (paper 7). Stale when `index` is not past the current snapshot.
   */
  compact(index: number, data: Uint8Array): CompactResult {
    this.#assertNoReady();
    assert(Number.isSafeInteger(index), `Compaction index is not an integer: ${index}`);
    assert(index <= this.#log.applied, `Compaction past the applied index: ${index}`);
    if (index <= this.#log.snapshot.index) {
      const message = `Already compacted to ${this.#log.snapshot.index}`;
      return { ok: false, kind: "stale", message };
    }
    if (data.byteLength > SNAPSHOT_BYTES_MAX) {
      const message = `Snapshot is larger than ${SNAPSHOT_BYTES_MAX} bytes: ${data.byteLength}`;
      return { ok: false, kind: "tooLarge", message };
    }
    const snapshot = this.#log.compact(index, this.#membershipAt(index), data);
    return { ok: true, snapshot };
  }

  // -------------------------------------------------------------------------------------
  // Outputs.

  hasReady(): boolean {
    if (this.#messages.length > 0) return true;
    if (this.#log.hasUnstable() || this.#log.hasCommittedToApply()) return true;
    if (this.#term !== this.#persistedTerm || this.#vote !== this.#persistedVote) return true;
    const soft = this.#reportedSoft;
    return soft.role !== this.#role || soft.leader !== this.#leader || soft.term !== this.#term;
  }

  /** What to persist, send and apply now (see `Ready` for the persistence rule). */
  ready(): Ready {
    this.#assertNoReady();
    const log = this.#log;
    const hardChanged = this.#term !== this.#persistedTerm || this.#vote !== this.#persistedVote;
    const hardState: HardState | null = hardChanged
      ? { term: this.#term, vote: this.#vote, commit: log.commit }
      : null;
    const messages = this.#messages;
    this.#messages = [];
    this.#readyInFlight = true;
    return {
      softState: this.softState(),
      hardState,
      truncateFrom: log.truncateFrom,
      snapshot: log.pendingSnapshot,
      entries: log.unstableEntries(),
      messages,
      restore: log.pendingRestore,
      committedEntries: log.committedToApply(),
    };
  }

  /** The last Ready is persisted, sent and applied. */
  advance(): void {
    assert(this.#readyInFlight, "advance() without ready()");
    this.#readyInFlight = false;
    this.#log.advance(this.#log.commit);
    this.#persistedTerm = this.#term;
    this.#persistedVote = this.#vote;
    this.#reportedSoft = this.softState();
  }

  // -------------------------------------------------------------------------------------
  // Roles.

  #becomeFollower(term: number, leader: NodeId | null): void {
    assert(term >= this.#term, "A term never goes back");
    if (term > this.#term) {
      this.#term = term;
      this.#vote = null;
    }
    this.#leader = leader;
    this.#role = isVoter(this.#membership, this.id) ? "follower" : "observer";
    this.#progress.clear();
    this.#votes.clear();
    this.#transferee = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#resetElectionTimeout();
  }

  /**
   * Starts an election (or a pre-election: dissertation 9.6, asking whether voters
   * would vote for term + 1 before anyone's term moves).
   */
  #campaign(kind: "preElection" | "election", transfer: boolean): void {
    assert(isVoter(this.#membership, this.id), "Only voters campaign");
    this.#votes.clear();
    this.#leader = null;
    this.#progress.clear();
    this.#electionElapsed = 0;
    this.#resetElectionTimeout();
    let voteTerm: number;
    if (kind === "preElection") {
      this.#role = "preCandidate";
      voteTerm = this.#term + 1;
    } else {
      this.#role = "candidate";
      this.#term += 1;
      this.#vote = this.id;
      voteTerm = this.#term;
    }
    this.#votes.set(this.id, true);
    if (this.#tally() === "won") return this.#winElection(kind);
    const lastIndex = this.#log.lastIndex;
    const lastTerm = this.#log.lastTerm;
    for (const voter of votersOf(this.#membership)) {
      if (voter === this.id) continue;
      const envelope = { from: this.id, to: voter, term: voteTerm, lastIndex, lastTerm };
      if (kind === "preElection") this.#push({ type: "preVote", ...envelope });
      else this.#push({ type: "vote", ...envelope, transfer });
    }
  }

  #winElection(kind: "preElection" | "election"): void {
    if (kind === "preElection") this.#campaign("election", false);
    else this.#becomeLeader();
  }

  #becomeLeader(): void {
    assert(this.#role === "candidate", "Only a candidate becomes leader");
    this.#role = "leader";
    this.#leader = this.id;
    this.#votes.clear();
    this.#transferee = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#progress.clear();
    for (const member of this.#membership.members) {
      if (member.id !== this.id) {
        this.#progress.set(member.id, new Progress(this.#log.lastIndex + 1));
      }
    }
    // Paper 5.4.2 / dissertation 6.4: commit entries of earlier terms through one of ours.
    this.#appendOwn("noop", EMPTY_DATA);
  }

  /** Votes of this election among the voters of the configuration in force. */
  #tally(): "won" | "lost" | "pending" {
    const voters = votersOf(this.#membership);
    let granted = 0;
    let rejected = 0;
    for (const voter of voters) {
      const answer = this.#votes.get(voter);
      if (answer === true) granted++;
      else if (answer === false) rejected++;
    }
    const majority = majorityOf(voters.length);
    if (granted >= majority) return "won";
    if (rejected > voters.length - majority) return "lost";
    return "pending";
  }

  // -------------------------------------------------------------------------------------
  // Ticks.

  #tickElection(): void {
    this.#electionElapsed++;
    if (!isVoter(this.#membership, this.id)) return;
    if (this.#electionElapsed < this.#randomizedElectionTimeout) return;
    this.#campaign(this.#preVote ? "preElection" : "election", false);
  }

  #tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTicks) {
      this.#electionElapsed = 0;
      if (this.#checkQuorum && !this.#quorumActive()) {
        // Dissertation 6.2: a leader cut off from its quorum stops acting as one, so
        // clients find the real leader and stale reads end.
        this.#becomeFollower(this.#term, null);
        return;
      }
      for (const progress of this.#progress.values()) progress.recentActive = false;
      this.#transferee = null;
    }
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#heartbeat();
    }
  }

  #quorumActive(): boolean {
    const voters = votersOf(this.#membership);
    let active = 0;
    for (const voter of voters) {
      if (voter === this.id || this.#progress.get(voter)?.recentActive === true) active++;
    }
    return active >= majorityOf(voters.length);
  }

  /**
   * A heartbeat to every member, which is also the retransmission: whatever a follower
   * has not acknowledged is sent again (any message may have been lost).
   */
  #heartbeat(): void {
    for (const [id, progress] of this.#progress) {
      switch (progress.state) {
        case "snapshot":
          progress.snapshotTicks += this.#heartbeatTicks;
          if (progress.snapshotTicks < this.#electionTicks) continue;
          progress.becomeProbe();
          break;
        case "replicate":
          if (progress.match < this.#log.lastIndex) progress.becomeReplicate();
          break;
        case "probe":
          progress.probeSent = false;
          break;
      }
      this.#sendAppend(id, true);
    }
  }

  #resetElectionTimeout(): void {
    const ticks = this.#electionTicks;
    this.#randomizedElectionTimeout = ticks + this.#random.int(0, ticks - 1);
  }

  // -------------------------------------------------------------------------------------
  // Messages.

  /**
   * Term rules common to every role (paper 5.1, dissertation 9.6 and 6.2). Answers
   * false when the message is dealt with (or dropped) here.
   */
  #stepTerm(message: Message): boolean {
    if (message.term > this.#term) {
      if (message.type === "preVote" || message.type === "vote") {
        const transfer = message.type === "vote" && message.transfer;
        // Dissertation 4.2.3: while a leader is heard from, vote requests are ignored,
        // so a removed or partitioned server cannot depose it.
        const inLease =
          this.#checkQuorum && this.#leader !== null && this.#electionElapsed < this.#electionTicks;
        if (inLease && !transfer) return false;
      }
      if (message.type === "preVote") return true; // A pre-vote moves no term.
      if (message.type === "preVoteResponse" && message.granted) return true;
      const fromLeader =
        message.type === "append" || message.type === "snapshot" || message.type === "timeoutNow";
      this.#becomeFollower(message.term, fromLeader ? message.from : null);
      return true;
    }
    if (message.term < this.#term) {
      if (message.type === "append" || message.type === "snapshot") {
        // A stale leader learns the new term from the answer and steps down. Without
        // this, a leader cut off by check-quorum or pre-vote might never hear of it.
        this.#send({ type: "appendResponse", to: message.from, success: false, index: 0, hint: 0 });
      } else if (message.type === "preVote") {
        this.#send({ type: "preVoteResponse", to: message.from, granted: false });
      }
      return false;
    }
    return true;
  }

  /** Paper 5.2 and 5.4.1; a pre-vote is granted for a later term without recording it. */
  #handleVoteRequest(message: PreVoteMessage | VoteMessage): void {
    const pre = message.type === "preVote";
    const canVote =
      this.#vote === message.from ||
      (this.#vote === null && this.#leader === null) ||
      (pre && message.term > this.#term);
    const responseType = pre ? "preVoteResponse" : "voteResponse";
    if (canVote && this.#log.isUpToDate(message.lastIndex, message.lastTerm)) {
      if (!pre) {
        this.#vote = message.from;
        this.#electionElapsed = 0;
      }
      this.#push({
        type: responseType,
        from: this.id,
        to: message.from,
        term: message.term,
        granted: true,
      });
    } else {
      this.#push({
        type: responseType,
        from: this.id,
        to: message.from,
        term: this.#term,
        granted: false,
      });
    }
  }

  #stepLeader(message: Message): void {
    switch (message.type) {
      case "appendResponse":
        return this.#handleAppendResponse(message);
      default:
        // Another leader of this term cannot exist (Election Safety); stale answers
        // to votes and the like need nothing.
        return;
    }
  }

  #stepCandidate(message: Message): void {
    switch (message.type) {
      case "append":
        this.#becomeFollower(this.#term, message.from);
        return this.#handleAppend(message);
      case "snapshot":
        this.#becomeFollower(this.#term, message.from);
        return this.#handleSnapshot(message);
      case "preVoteResponse":
      case "voteResponse":
        return this.#handleVoteResponse(message);
      default:
        return;
    }
  }

  #handleVoteResponse(message: VoteResponseMessage): void {
    const expected = this.#role === "preCandidate" ? "preVoteResponse" : "voteResponse";
    if (message.type !== expected) return;
    if (!isVoter(this.#membership, message.from)) return;
    this.#votes.set(message.from, message.granted);
    const outcome = this.#tally();
    if (outcome === "won") {
      this.#winElection(this.#role === "preCandidate" ? "preElection" : "election");
    } else if (outcome === "lost") this.#becomeFollower(this.#term, null);
  }

  #stepFollower(message: Message): void {
    switch (message.type) {
      case "append":
        this.#electionElapsed = 0;
        this.#leader = message.from;
        this.#leaderCommit = Math.max(this.#leaderCommit ?? 0, message.commit);
        return this.#handleAppend(message);
      case "snapshot":
        this.#electionElapsed = 0;
        this.#leader = message.from;
        this.#leaderCommit = Math.max(this.#leaderCommit ?? 0, message.snapshot.index);
        return this.#handleSnapshot(message);
      case "timeoutNow":
        // Leadership transfer: campaign now, without pre-vote, past the voters' lease.
        if (isVoter(this.#membership, this.id)) this.#campaign("election", true);
        return;
      default:
        return;
    }
  }

  /** Paper 5.3, AppendEntries receiver. */
  #handleAppend(message: AppendMessage): void {
    const log = this.#log;
    let prevIndex = message.prevIndex;
    let prevTerm = message.prevTerm;
    let entries = message.entries;
    if (prevIndex < log.commit) {
      // What is committed here matches the leader's log (Leader Completeness); only
      // what follows needs checking. An old, reordered message may hold nothing new.
      const skip = entries.findIndex((entry) => entry.index > log.commit);
      if (skip < 0) return this.#answerAppend(message.from, true, log.commit, 0);
      prevIndex = log.commit;
      prevTerm = log.termAt(log.commit)!;
      entries = entries.slice(skip);
      if (entries[0]!.index !== prevIndex + 1) return;
    }
    if (!log.matches(prevIndex, prevTerm)) {
      return this.#answerAppend(
        message.from,
        false,
        message.prevIndex,
        this.#conflictHint(message),
      );
    }
    // What this message proves matches the leader: nothing past its last entry, even
    // when this log is longer (a stale suffix is neither acknowledged nor committed).
    const lastNew = prevIndex + entries.length;
    const { truncatedAt } = log.appendFromLeader(entries);
    if (truncatedAt !== null && this.#membershipIndex >= truncatedAt) this.#refreshMembership();
    for (const entry of entries) {
      if (entry.kind === "config" && entry.index > this.#membershipIndex) {
        this.#setMembership(decodeMembership(entry.data)!, entry.index);
      }
    }
    log.commitTo(Math.min(message.commit, lastNew));
    this.#answerAppend(message.from, true, lastNew, 0);
  }

  /**
   * The largest index at or below the rejected prevIndex whose term is at most the
   * leader's prevTerm (etcd's findConflictByTerm): every entry of ours above it has a
   * term the leader's log cannot have there, so probing can skip them in one step.
   */
  #conflictHint(message: AppendMessage): number {
    const log = this.#log;
    let index = Math.min(message.prevIndex, log.lastIndex);
    while (index > log.commit) {
      const term = log.termAt(index);
      if (term === null || term <= message.prevTerm) break;
      index--;
    }
    return index;
  }

  #answerAppend(to: NodeId, success: boolean, index: number, hint: number): void {
    this.#send({ type: "appendResponse", to, success, index, hint });
  }

  /** Paper 7, InstallSnapshot receiver; the snapshot arrives whole. */
  #handleSnapshot(message: SnapshotMessage): void {
    const log = this.#log;
    const snapshot = message.snapshot;
    if (snapshot.index <= log.commit) return this.#answerAppend(message.from, true, log.commit, 0);
    if (log.matches(snapshot.index, snapshot.term)) {
      // The log already holds it: just learn that it is committed (paper 7, step 6).
      log.commitTo(snapshot.index);
      return this.#answerAppend(message.from, true, snapshot.index, 0);
    }
    log.restore(snapshot);
    this.#setMembership(snapshot.membership, snapshot.index);
    this.#answerAppend(message.from, true, snapshot.index, 0);
  }

  #handleAppendResponse(message: AppendResponseMessage): void {
    const progress = this.#progress.get(message.from);
    if (progress === undefined) return;
    progress.recentActive = true;
    if (!message.success) {
      if (!this.#isCurrentRejection(progress, message)) return;
      // A follower's log matches ours up to `match`, so its hint is never below it unless
      // the follower lost entries it had acknowledged: its data dir was emptied. Copy
      // the log to it again from where it is. (Raft cannot make a voter that forgot its
      // log and its vote safe; src/cluster/raft/README.md says what this risks.)
      if (message.hint < progress.match) progress.logLost(message.hint);
      progress.becomeProbe();
      progress.next = Math.max(progress.match + 1, Math.min(message.index, message.hint + 1));
      this.#sendAppend(message.from, true);
      return;
    }
    const moved = progress.acknowledge(message.index);
    if (progress.state === "probe") progress.becomeReplicate();
    else if (progress.state === "snapshot" && progress.match >= progress.pendingSnapshot) {
      progress.becomeReplicate();
    }
    if (moved && this.#maybeCommit()) {
      // Spread the new commit index at once rather than at the next heartbeat.
      for (const [id, other] of this.#progress) {
        if (other.state === "replicate") this.#sendAppend(id, true);
      }
      if (this.#role !== "leader") return;
    } else {
      this.#sendAppend(message.from, false);
    }
    if (this.#transferee === message.from && progress.match === this.#log.lastIndex) {
      this.#send({ type: "timeoutNow", to: message.from });
    }
  }

  /** A rejection answers the Append now in flight, not an older one (reordering). */
  #isCurrentRejection(progress: Progress, message: AppendResponseMessage): boolean {
    switch (progress.state) {
      case "probe":
        return message.index === progress.next - 1;
      case "replicate":
        // At `match` itself only a follower that lost its log rejects (or a rejection
        // older than the acknowledgement, which costs one probe more).
        return (
          message.index > progress.match ||
          (message.index === progress.match && message.hint < progress.match)
        );
      case "snapshot":
        return false;
    }
  }

  /** Paper 5.3-5.4: the highest index on a majority, if it is of this term. */
  #maybeCommit(): boolean {
    const voters = votersOf(this.#membership);
    if (voters.length === 0) return false;
    const matches = voters
      .map((voter) =>
        voter === this.id ? this.#log.lastIndex : (this.#progress.get(voter)?.match ?? 0),
      )
      .sort((a, b) => b - a);
    const candidate = matches[majorityOf(voters.length) - 1]!;
    if (candidate <= this.#log.commit) return false;
    if (this.#log.termAt(candidate) !== this.#term) return false;
    this.#log.commitTo(candidate);
    this.#afterLeaderCommit();
    return true;
  }

  /**
   * Dissertation 4.2.2: a leader that is no longer a voter in a committed configuration
   * steps down, handing leadership to the most caught-up voter.
   */
  #afterLeaderCommit(): void {
    if (this.#membershipIndex > this.#log.commit) return;
    if (isVoter(this.#membership, this.id)) return;
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const [id, progress] of this.#progress) {
      if (isVoter(this.#membership, id) && progress.match > bestMatch) {
        best = id;
        bestMatch = progress.match;
      }
    }
    if (best !== null && bestMatch === this.#log.lastIndex) {
      this.#send({ type: "timeoutNow", to: best });
    }
    this.#becomeFollower(this.#term, null);
  }

  /**
   * Sends `to` what it lacks: entries from `next`, or the snapshot when they are
   * compacted. With `force` an empty Append (a heartbeat carrying the commit index)
   * goes out even when there is nothing new, and a paused probe is sent again.
   */
  #sendAppend(to: NodeId, force: boolean): void {
    const progress = this.#progress.get(to)!;
    if (progress.state === "snapshot") return;
    if (!force && progress.isPaused()) return;
    const log = this.#log;
    const prevIndex = progress.next - 1;
    const prevTerm = log.termAt(prevIndex);
    if (prevTerm === null) return this.#sendSnapshot(to, progress);
    const entries = progress.next <= log.lastIndex ? log.entriesFrom(progress.next) : [];
    if (entries.length === 0 && !force) return;
    this.#send({ type: "append", to, prevIndex, prevTerm, commit: log.commit, entries });
    if (progress.state === "probe") {
      progress.probeSent = true;
    } else if (entries.length > 0) {
      const last = entries.at(-1)!.index;
      progress.next = last + 1;
      progress.inflight.push(last);
    }
  }

  #sendSnapshot(to: NodeId, progress: Progress): void {
    const snapshot = this.#log.snapshot;
    assert(snapshot.index > 0, "Entries are compacted but there is no snapshot");
    progress.becomeSnapshot(snapshot.index);
    this.#send({ type: "snapshot", to, snapshot });
  }

  // -------------------------------------------------------------------------------------
  // Helpers.

  #checkProposal(): ProposalError | null {
    if (this.#role !== "leader") return { kind: "notLeader", leader: this.#leader };
    if (this.#transferee !== null) {
      const message = `Leadership is moving to node ${this.#transferee}`;
      return { kind: "transferring", message };
    }
    const uncommitted = this.#log.lastIndex - this.#log.commit;
    if (uncommitted >= UNCOMMITTED_ENTRIES_MAX) {
      const message = `Too many uncommitted entries: ${uncommitted}`;
      return { kind: "busy", message };
    }
    return null;
  }

  /** Appends an entry of this leader's term, counts it, and sends it. */
  #appendOwn(kind: Entry["kind"], data: Uint8Array): { index: number; term: number } {
    assert(this.#role === "leader", "Only the leader appends its own entries");
    const entry: Entry = { index: this.#log.lastIndex + 1, term: this.#term, kind, data };
    this.#log.append(entry);
    if (kind === "config") this.#setMembership(decodeMembership(data)!, entry.index);
    if (this.#maybeCommit() && this.#role !== "leader") return entry;
    for (const id of this.#progress.keys()) this.#sendAppend(id, false);
    return { index: entry.index, term: entry.term };
  }

  #setMembership(membership: Membership, index: number): void {
    this.#membership = membership;
    this.#membershipIndex = index;
    this.#onMembershipChanged();
  }

  /** After a truncation removed the entry that set the configuration. */
  #refreshMembership(): void {
    const found = this.#latestMembership();
    this.#setMembership(found.membership, found.index);
  }

  #latestMembership(): { membership: Membership; index: number } {
    const log = this.#log;
    for (let index = log.lastIndex; index >= log.firstIndex; index--) {
      const entry = log.entryAt(index)!;
      if (entry.kind !== "config") continue;
      const membership = decodeMembership(entry.data);
      assert(membership !== null, `Config entry ${index} does not decode`);
      return { membership, index };
    }
    return { membership: log.snapshot.membership, index: log.snapshot.index };
  }

  /** The configuration in force at `index` (for a snapshot taken there). */
  #membershipAt(index: number): Membership {
    const log = this.#log;
    for (let at = index; at >= log.firstIndex; at--) {
      const entry = log.entryAt(at)!;
      if (entry.kind === "config") return decodeMembership(entry.data)!;
    }
    return log.snapshot.membership;
  }

  #onMembershipChanged(): void {
    const voter = isVoter(this.#membership, this.id);
    switch (this.#role) {
      case "leader":
        for (const member of this.#membership.members) {
          if (member.id === this.id || this.#progress.has(member.id)) continue;
          this.#progress.set(member.id, new Progress(this.#log.lastIndex));
        }
        for (const id of [...this.#progress.keys()]) {
          if (memberOf(this.#membership, id) !== undefined) continue;
          this.#progress.delete(id);
          if (this.#transferee === id) this.#transferee = null;
        }
        // A leader that removed itself leads on until that change commits (4.2.2).
        return;
      case "follower":
      case "observer":
        this.#role = voter ? "follower" : "observer";
        return;
      case "candidate":
      case "preCandidate":
        if (!voter) this.#becomeFollower(this.#term, null);
        return;
    }
  }

  #send(message: DistributiveOmit<Message, "from" | "term">): void {
    this.#push({ ...message, from: this.id, term: this.#term } as Message);
  }

  #push(message: Message): void {
    this.#messages.push(message);
  }

  #assertNoReady(): void {
    assert(!this.#readyInFlight, "Input between ready() and advance()");
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
