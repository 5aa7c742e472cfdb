/**
 * @module
 * The data of the Raft metadata quorum: log entries, snapshots, configurations, the
 * messages nodes exchange, and what `Raft.ready()` hands to its driver. Plain values
 * only: the state machine in raft.ts produces and consumes them, the codec puts them on
 * the wire, and the storages put them on disk.
 *
 * Numbering follows the Raft paper: log indexes start at 1, index 0 with term 0 is the
 * empty log. A Raft `term` is not a partition `leaderEpoch` (docs/conventions.md,
 * section 2: one word, one meaning), although the durable log stores each entry's term
 * in its batch's partitionLeaderEpoch field, as Kafka's KRaft does.
 */

/** A Brook node id (Kafka broker id): int32, not negative. */
export type NodeId = number;

/**
 * data: a payload proposed by the caller (metadata records). config: a new cluster
 * configuration (`decodeMembership` reads it). noop: appended by each new leader so it
 * can commit entries of earlier terms (Raft paper section 5.4.2, dissertation 6.4).
 */
export type EntryKind = "data" | "config" | "noop";

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/** A member of the cluster configuration; observers replicate the log but never vote. */
export interface Member {
  readonly id: NodeId;
  readonly voter: boolean;
}

/**
 * A cluster configuration: its members in the order they joined (the voter policy
 * promotes the earliest), each a voter or an observer.
 */
export interface Membership {
  readonly members: readonly Member[];
}

/** The state machine up to `index` (inclusive), with the configuration in force there. */
export interface Snapshot {
  readonly index: number;
  readonly term: number;
  readonly membership: Membership;
  readonly data: Uint8Array;
}

/**
 * What Raft must remember across a crash. The commit index is reported too, but the
 * storages do not need it (it is relearned from the leader; see storage.ts).
 */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

export type Role = "follower" | "preCandidate" | "candidate" | "leader" | "observer";

/** Volatile state, for callers and logs. */
export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly term: number;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/**
 * Pre-vote (dissertation 9.6): would you vote for me in `term` (my term + 1)? Nobody's
 * term changes until a majority says yes.
 */
export interface PreVoteMessage extends Envelope {
  readonly type: "preVote";
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export interface VoteMessage extends Envelope {
  readonly type: "vote";
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Sent after TimeoutNow (leadership transfer): voters ignore their leader lease. */
  readonly transfer: boolean;
}

export interface VoteResponseMessage extends Envelope {
  readonly type: "preVoteResponse" | "voteResponse";
  readonly granted: boolean;
}

/** AppendEntries; with no entries it is the heartbeat, still checked against prevIndex. */
export interface AppendMessage extends Envelope {
  readonly type: "append";
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly commit: number;
  readonly entries: readonly Entry[];
}

/**
 * Answers Append and Snapshot. success: the sender's log matches the leader's up to
 * `index`. Otherwise `index` is the rejected prevIndex and `hint` the largest index that
 * may still match (the leader probes from hint + 1).
 */
export interface AppendResponseMessage extends Envelope {
  readonly type: "appendResponse";
  readonly success: boolean;
  readonly index: number;
  readonly hint: number;
}

/** InstallSnapshot in one message: metadata snapshots are small (limits.ts bounds them). */
export interface SnapshotMessage extends Envelope {
  readonly type: "snapshot";
  readonly snapshot: Snapshot;
}

/** Leadership transfer (dissertation 3.10): campaign now, skipping pre-vote. */
export interface TimeoutNowMessage extends Envelope {
  readonly type: "timeoutNow";
}

export type Message =
  | PreVoteMessage
  | VoteMessage
  | VoteResponseMessage
  | AppendMessage
  | AppendResponseMessage
  | SnapshotMessage
  | TimeoutNowMessage;

export type MessageType = Message["type"];

/**
 * One batch of work for the driver. The persistence rule: persist first (in this
 * order: `hardState`, `truncateFrom`, `snapshot`, `entries`, then fsync; see
 * `persistReady`), and only then send `messages` and apply `restore` and
 * `committedEntries`; call `advance()` before the next input. A vote or an
 * acknowledgement that leaves the node before the state behind it is on disk could be
 * forgotten by a crash, and two leaders could then be elected in one term, or a
 * committed entry lost.
 */
export interface Ready {
  readonly softState: SoftState;
  /** Term and vote to persist before anything else; null when unchanged. */
  readonly hardState: HardState | null;
  /** Stored entries at and after this index must go (a conflicting suffix); else null. */
  readonly truncateFrom: number | null;
  /**
   * A snapshot to persist: entries up to its index leave storage; later ones stay only
   * if the stored entry at its index has its term (see RaftStorage.saveSnapshot).
   */
  readonly snapshot: Snapshot | null;
  /** Entries to append after the (possibly truncated) stored log, contiguous. */
  readonly entries: readonly Entry[];
  /** To send once everything above is durable. */
  readonly messages: readonly Message[];
  /** The state machine must reset to this snapshot (installed from the leader) first. */
  readonly restore: Snapshot | null;
  /** Committed entries to apply, in order, after `restore`. */
  readonly committedEntries: readonly Entry[];
}

/** The durable state a node starts from (what RaftStorage.load returns). */
export interface StoredState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot (or from index 1), contiguous. */
  readonly entries: readonly Entry[];
}

export const EMPTY_MEMBERSHIP: Membership = Object.freeze({ members: Object.freeze([]) });
export const EMPTY_DATA = new Uint8Array(0);

/** The snapshot of the empty log: index 0, term 0, no members. */
export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  index: 0,
  term: 0,
  membership: EMPTY_MEMBERSHIP,
  data: EMPTY_DATA,
});

export const EMPTY_STORED_STATE: StoredState = Object.freeze({
  hardState: Object.freeze({ term: 0, vote: null, commit: 0 }),
  snapshot: null,
  entries: Object.freeze([]),
});

/** Node ids are Kafka broker ids: int32, not negative. */
export function isNodeId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= 2_147_483_647;
}

/** Terms and indexes: safe integers, not negative. */
export function isCount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}
