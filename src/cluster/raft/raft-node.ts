/**
 * @module
 * The driver that ties the pure `Raft` to the world (etcd-io/raft's node loop): durable
 * storage (FileRaftStorage), the TCP transport, the state machine, and the node's timer
 * through `tick()`. The controller uses this.
 *
 * Lifecycle: `RaftNode.open` loads storage and restores the state machine from the
 * latest snapshot; the first node of a new cluster calls `bootstrap([self])` (a no-op
 * on a node that already has state); the caller registers `streamHandler` with the
 * cluster port's stream listener under RAFT_STREAM_TAG and calls `tick()` every
 * RAFT_TICK_MS from the node's timer (src/cluster owns no timers: test/tidy.test.ts);
 * `close()` ends it.
 *
 * After every input a Ready is processed (batched into one microtask): persisted and
 * fsynced (`persistReady`), then its messages sent, then `advance()`, then the snapshot
 * to restore and the committed entries applied to the state machine, in order; pending
 * proposals resolve once their entry is applied here. Every `snapshotEveryEntries`
 * applied entries the state machine's `snapshot()` compacts the log. A storage error
 * stops the node (`onFatal`): Raft cannot go on after a write it counted on failed.
 */
import { assert } from "../../util/assert.ts";
import { type Clock, systemClock } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import { type Random, systemRandom } from "../../util/random.ts";
import { FileRaftStorage } from "./file-storage.ts";
import type { MembershipChange } from "./membership.ts";
import { type ProposalError, type ProposeResult, Raft, type RaftStatus } from "./raft.ts";
import { persistReady, type RaftStorage } from "./storage.ts";
import {
  type Endpoint,
  type RaftTransport,
  type StreamHandler,
  TcpTransport,
} from "./tcp-transport.ts";
import type { Entry, Message, NodeId, Snapshot, SoftState } from "./types.ts";

const log = logger("raft");

/** The timer period the caller should call `tick()` at. */
export const RAFT_TICK_MS = 100;
/** Election timeouts are drawn from [1 s, 2 s) at the default tick. */
export const DEFAULT_ELECTION_TICKS = 10;
/** Heartbeats every 100 ms at the default tick. */
export const DEFAULT_HEARTBEAT_TICKS = 1;
export const DEFAULT_SNAPSHOT_EVERY_ENTRIES = 1024;
/** Callers waiting in `whenApplied` at once. */
export const APPLIED_WAITERS_MAX = 10_000;

/** What the replicated state machine (the metadata image) provides. */
export interface RaftStateMachine {
  /**
   * A committed entry, in log order (data, config and no-op entries alike; most callers
   * skip all but `data`). After a restart, entries after the snapshot come again.
   */
  apply(entry: Entry): void;
  /** The state after the last applied entry, for compaction (at most SNAPSHOT_BYTES_MAX). */
  snapshot(): Uint8Array;
  /** Replaces all state with a snapshot's: at start, and when the leader sends one. */
  restore(snapshot: Snapshot): void;
}

export interface RaftNodeOptions {
  id: NodeId;
  stateMachine: RaftStateMachine;
  /** Storage under `<dataDir>/__cluster_metadata-0/`; or give `storage`. */
  dataDir?: string;
  storage?: RaftStorage;
  /** Node id → cluster address (from SWIM), for the TCP transport; or give `transport`. */
  resolve?: (id: NodeId) => Endpoint | null;
  /** A transport of the caller's; it delivers inbound messages to `receive`. */
  transport?: (receive: (message: Message) => void) => RaftTransport;
  clock?: Clock;
  random?: Random;
  electionTicks?: number;
  heartbeatTicks?: number;
  snapshotEveryEntries?: number;
  /** Role, leader or term changed (the controller starts and stops on this). */
  onStateChange?: (state: SoftState) => void;
  /** A peer's cluster port refused a connection (its process is gone), after Raft was told. */
  onPeerRefused?: (id: NodeId) => void;
  /** A dial to a peer's cluster port opened (it listens again). */
  onPeerConnected?: (id: NodeId) => void;
  /** The cluster id the TCP transport names and checks on every connection (null until known). */
  clusterId?: () => string | null;
  /** Storage failed; the node has stopped. Default: log it. */
  onFatal?: (error: unknown) => void;
}

export type RaftProposalErrorKind =
  | ProposalError["kind"]
  /** This node stopped leading before the entry committed; it may still commit. */
  | "leadershipLost"
  /** Another entry was committed at its index: it will never commit. */
  | "dropped"
  | "closed";

/** `whenApplied` failed: the node closed, or too many callers wait already. */
export class RaftClosedError extends Error {
  override name = "RaftClosedError";
}

/** Why a proposal failed; `leader` is the leader as known here, to retry against. */
export class RaftProposalError extends Error {
  override name = "RaftProposalError";
  readonly kind: RaftProposalErrorKind;
  readonly leader: NodeId | null;

  constructor(kind: RaftProposalErrorKind, message: string, leader: NodeId | null) {
    super(message);
    this.kind = kind;
    this.leader = leader;
  }
}

export interface Committed {
  readonly index: number;
  readonly term: number;
}

interface PendingProposal {
  readonly term: number;
  readonly resolve: (committed: Committed) => void;
  readonly reject: (error: RaftProposalError) => void;
}

export class RaftNode {
  readonly id: NodeId;
  readonly #raft: Raft;
  readonly #storage: RaftStorage;
  readonly #transport: RaftTransport;
  readonly #tcp: TcpTransport | null;
  readonly #machine: RaftStateMachine;
  readonly #snapshotEvery: number;
  readonly #onStateChange: ((state: SoftState) => void) | undefined;
  readonly #onFatal: (error: unknown) => void;
  /** Proposals appended here and not yet applied, by index (bounded by Raft's busy limit). */
  readonly #pending = new Map<number, PendingProposal>();
  /** Callers of `whenApplied`, waiting for an index. */
  readonly #appliedWaiters: {
    index: number;
    resolve: () => void;
    reject: (error: Error) => void;
  }[] = [];
  /** Last index applied to the state machine (or restored from a snapshot). */
  #appliedIndex: number;
  #soft: SoftState;
  /** Applied index of a compaction the state machine's snapshot was too large for. */
  #compactFailedAt = 0;
  #scheduled = false;
  #closed = false;

  private constructor(options: RaftNodeOptions, storage: RaftStorage) {
    this.id = options.id;
    this.#storage = storage;
    this.#machine = options.stateMachine;
    this.#snapshotEvery = options.snapshotEveryEntries ?? DEFAULT_SNAPSHOT_EVERY_ENTRIES;
    assert(this.#snapshotEvery >= 1, "snapshotEveryEntries is below 1");
    this.#onStateChange = options.onStateChange;
    this.#onFatal =
      options.onFatal ?? ((error) => log.error("Raft node stopped", { error: String(error) }));
    const clock = options.clock ?? systemClock;
    const random = options.random ?? systemRandom;
    const stored = storage.load();
    if (stored.snapshot !== null) this.#machine.restore(stored.snapshot);
    this.#appliedIndex = stored.snapshot?.index ?? 0;
    this.#raft = new Raft({
      id: options.id,
      random,
      electionTicks: options.electionTicks ?? DEFAULT_ELECTION_TICKS,
      heartbeatTicks: options.heartbeatTicks ?? DEFAULT_HEARTBEAT_TICKS,
      stored,
    });
    this.#soft = this.#raft.softState();
    const receive = (message: Message) => this.#step(message);
    if (options.transport !== undefined) {
      this.#transport = options.transport(receive);
      this.#tcp = null;
    } else {
      assert(options.resolve !== undefined, "A RaftNode needs `resolve` or `transport`");
      this.#tcp = new TcpTransport({
        id: options.id,
        resolve: options.resolve,
        onMessage: receive,
        ...(options.clusterId === undefined ? {} : { clusterId: options.clusterId }),
        onRefused: (id) => {
          if (this.#closed) return;
          this.#raft.leaderUnreachable(id);
          this.#schedule();
          options.onPeerRefused?.(id);
        },
        onConnected: (id) => {
          if (!this.#closed) options.onPeerConnected?.(id);
        },
        clock,
        random,
      });
      this.#transport = this.#tcp;
    }
    log.info("Raft node started", {
      id: this.id,
      term: this.#soft.term,
      role: this.#soft.role,
      lastIndex: this.#raft.status().lastIndex,
    });
  }

  static open(options: RaftNodeOptions): RaftNode {
    let storage = options.storage;
    if (storage === undefined) {
      assert(options.dataDir !== undefined, "A RaftNode needs `dataDir` or `storage`");
      storage = new FileRaftStorage({
        dataDir: options.dataDir,
        clock: options.clock ?? systemClock,
      });
    }
    return new RaftNode(options, storage);
  }

  /** Register under RAFT_STREAM_TAG with the cluster port's stream listener. */
  get streamHandler(): StreamHandler {
    assert(this.#tcp !== null, "This node has no TCP transport");
    return this.#tcp.handleConnection;
  }

  get isLeader(): boolean {
    return this.#soft.role === "leader";
  }

  get leader(): NodeId | null {
    return this.#soft.leader;
  }

  status(): RaftStatus {
    return this.#raft.status();
  }

  /** The term of the entry at `index` in this node's log (or its snapshot); null if unknown. */
  termAt(index: number): number | null {
    return this.#raft.termAt(index);
  }

  /** The last index the state machine has applied. */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /**
   * Leads, and has applied everything committed before its term (its own no-op is
   * applied): the state machine is current, so the controller may act on it.
   */
  isReadyLeader(): boolean {
    if (this.#closed || this.#soft.role !== "leader") return false;
    return this.#raft.termAt(this.#appliedIndex) === this.#raft.term;
  }

  /**
   * Resolves once the state machine here has applied `index` (at once if it has).
   * No deadline of its own (src/cluster owns no timers): race it with the caller's.
   * Rejects with RaftClosedError when the node closes or too many callers wait.
   */
  whenApplied(index: number): Promise<void> {
    if (index <= this.#appliedIndex) return Promise.resolve();
    if (this.#closed) return Promise.reject(new RaftClosedError("The Raft node is closed"));
    if (this.#appliedWaiters.length >= APPLIED_WAITERS_MAX) {
      return Promise.reject(
        new RaftClosedError(`Too many callers wait for entries: ${APPLIED_WAITERS_MAX}`),
      );
    }
    return new Promise((resolve, reject) => {
      this.#appliedWaiters.push({ index, resolve, reject });
      this.#appliedWaiters.sort((a, b) => a.index - b.index);
    });
  }

  /**
   * Starts a new cluster with these voters (include this node; usually just `[id]`).
   * False, and nothing happens, when this node already has Raft state.
   */
  bootstrap(voters: readonly NodeId[]): boolean {
    this.#assertOpen();
    const status = this.#raft.status();
    if (status.lastIndex > 0 || status.term > 0) return false;
    this.#raft.bootstrap(voters);
    this.#schedule();
    return true;
  }

  /** Elects this node at once when it is the only voter (see Raft.campaignIfSoleVoter). */
  campaignIfSoleVoter(): boolean {
    if (this.#closed) return false;
    const campaigned = this.#raft.campaignIfSoleVoter();
    if (campaigned) this.#schedule();
    return campaigned;
  }

  /** Call every RAFT_TICK_MS. */
  tick(): void {
    if (this.#closed) return;
    this.#raft.tick();
    this.#schedule();
  }

  /** Resolves once `data` is committed and applied here; rejects with RaftProposalError. */
  propose(data: Uint8Array): Promise<Committed> {
    return this.#track(() => this.#raft.propose(data));
  }

  addVoter(id: NodeId): Promise<Committed> {
    return this.changeMembership({ kind: "addVoter", id });
  }

  addObserver(id: NodeId): Promise<Committed> {
    return this.changeMembership({ kind: "addObserver", id });
  }

  removeNode(id: NodeId): Promise<Committed> {
    return this.changeMembership({ kind: "removeNode", id });
  }

  /** One single-server change (see Raft.proposeMembershipChange for the rules). */
  changeMembership(change: MembershipChange): Promise<Committed> {
    return this.#track(() => this.#raft.proposeMembershipChange(change));
  }

  /** Asks the leader (this node) to hand over to `to`; false when it cannot. */
  transferLeadership(to: NodeId): boolean {
    if (this.#closed) return false;
    const started = this.#raft.transferLeadership(to);
    this.#schedule();
    return started;
  }

  /** Gossip says `id` is up: a connection to it backing off is dialled at the next send. */
  peerAlive(id: NodeId): void {
    this.#tcp?.peerAlive(id);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#transport.close();
    this.#storage.close();
    this.#rejectPending("closed", "The Raft node is closed");
    for (const waiter of this.#appliedWaiters.splice(0)) {
      waiter.reject(new RaftClosedError("The Raft node is closed"));
    }
    log.info("Raft node closed", { id: this.id });
  }

  // -------------------------------------------------------------------------------------

  #track(propose: () => ProposeResult): Promise<Committed> {
    if (this.#closed) {
      return Promise.reject(new RaftProposalError("closed", "The Raft node is closed", null));
    }
    const result = propose();
    if (!result.ok) {
      const error = result.error;
      const message =
        error.kind === "notLeader"
          ? `Not the leader; the leader is ${error.leader ?? "unknown"}`
          : error.message;
      const leader = error.kind === "notLeader" ? error.leader : this.#raft.leader;
      return Promise.reject(new RaftProposalError(error.kind, message, leader));
    }
    this.#schedule();
    return new Promise((resolve, reject) => {
      this.#pending.set(result.index, { term: result.term, resolve, reject });
    });
  }

  #step(message: Message): void {
    if (this.#closed) return;
    this.#raft.step(message);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#processReady();
    });
  }

  #processReady(): void {
    const raft = this.#raft;
    while (!this.#closed && raft.hasReady()) {
      const ready = raft.ready();
      try {
        persistReady(this.#storage, ready);
      } catch (error) {
        this.#fatal(error);
        return;
      }
      this.#transport.send(ready.messages);
      raft.advance();
      this.#noteSoftState(ready.softState);
      if (ready.restore !== null) {
        this.#machine.restore(ready.restore);
        this.#appliedIndex = ready.restore.index;
      }
      for (const entry of ready.committedEntries) this.#apply(entry);
      this.#wakeAppliedWaiters();
      this.#maybeCompact();
    }
  }

  #apply(entry: Entry): void {
    this.#machine.apply(entry);
    this.#appliedIndex = entry.index;
    const pending = this.#pending.get(entry.index);
    if (pending === undefined) return;
    this.#pending.delete(entry.index);
    if (pending.term === entry.term) {
      pending.resolve({ index: entry.index, term: entry.term });
    } else {
      const message = `Entry ${entry.index} of term ${pending.term} was replaced by one of term ${entry.term}`;
      pending.reject(new RaftProposalError("dropped", message, this.#raft.leader));
    }
  }

  #wakeAppliedWaiters(): void {
    const waiters = this.#appliedWaiters;
    let woken = 0;
    while (woken < waiters.length && waiters[woken]!.index <= this.#appliedIndex) woken++;
    for (const waiter of waiters.splice(0, woken)) waiter.resolve();
  }

  #noteSoftState(soft: SoftState): void {
    const before = this.#soft;
    if (before.role === soft.role && before.leader === soft.leader && before.term === soft.term) {
      return;
    }
    this.#soft = soft;
    log.info("Raft state changed", {
      id: this.id,
      role: soft.role,
      leader: soft.leader ?? -1,
      term: soft.term,
    });
    if (before.role === "leader" && soft.role !== "leader") {
      this.#rejectPending(
        "leadershipLost",
        "Leadership was lost before the entry committed; it may still commit",
      );
    }
    this.#onStateChange?.(soft);
  }

  #maybeCompact(): void {
    const status = this.#raft.status();
    if (status.applied - status.snapshotIndex < this.#snapshotEvery) return;
    // After a failure, wait another interval rather than retry on every Ready.
    if (status.applied - this.#compactFailedAt < this.#snapshotEvery) return;
    const result = this.#raft.compact(status.applied, this.#machine.snapshot());
    if (!result.ok) {
      this.#compactFailedAt = status.applied;
      log.error("Cannot compact the Raft log", {
        id: this.id,
        applied: status.applied,
        reason: result.message,
      });
    }
  }

  #rejectPending(kind: RaftProposalErrorKind, message: string): void {
    const leader = this.#raft.leader;
    for (const pending of this.#pending.values()) {
      pending.reject(new RaftProposalError(kind, message, leader));
    }
    this.#pending.clear();
  }

  #fatal(error: unknown): void {
    this.close();
    this.#onFatal(error);
  }

  #assertOpen(): void {
    assert(!this.#closed, "The Raft node is closed");
  }
}
