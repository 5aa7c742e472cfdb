/**
 * N Raft nodes in one process on a virtual clock and a virtual network (TigerBeetle's
 * VOPR idea, docs/conventions.md, section 5). One seeded Random decides everything:
 * message loss, delay (and so reordering), duplication, partitions, crashes and
 * restarts, torn writes, proposals and compaction. Nodes run the real `Raft` over
 * `MemoryRaftStorage`; a crash keeps what was persisted (and of a Ready being
 * persisted, a random prefix of its writes) and loses everything else. Invariants
 * (invariants.ts) are checked after every step; any violation throws.
 */
import { Raft } from "../../../src/cluster/raft/raft.ts";
import { MemoryRaftStorage, writeReady } from "../../../src/cluster/raft/storage.ts";
import type { Entry, Message, NodeId, Snapshot } from "../../../src/cluster/raft/types.ts";
import { assert } from "../../../src/util/assert.ts";
import type { Random } from "../../../src/util/random.ts";
import { EventQueue } from "./event-queue.ts";
import { hashEntry, InvariantChecker, InvariantError } from "./invariants.ts";

/** Virtual milliseconds per Raft tick. */
export const TICK_MS = 10;
/** Messages in flight at once: more means a message storm (a bug), not a slow network. */
const IN_FLIGHT_MAX = 100_000;

export interface NetworkFaults {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice. */
  duplicateRate: number;
  /** Delivery takes 1..delayMsMax virtual ms; different delays reorder messages. */
  delayMsMax: number;
}

export interface SimulationOptions {
  random: Random;
  /** Node ids 1..nodeCount. */
  nodeCount: number;
  electionTicks: number;
  heartbeatTicks: number;
  faults: NetworkFaults;
  /** Compact when this many applied entries follow the snapshot (0: never). */
  compactEvery: number;
  /** Probability that persisting a Ready is cut by a crash before its fsync. */
  tornWriteRate: number;
}

/** The replicated state machine: a hash chain of applied entries. */
class HashChain {
  index = 0;
  hash = 0;

  apply(entry: Entry): void {
    assert(entry.index === this.index + 1, `Applied ${entry.index} after ${this.index}`);
    this.index = entry.index;
    this.hash = Math.imul(this.hash ^ hashEntry(entry), 0x01000193) >>> 0;
    this.hash = Math.imul(this.hash ^ entry.term, 0x01000193) >>> 0;
  }

  snapshot(): Uint8Array {
    const bytes = new Uint8Array(12);
    const view = new DataView(bytes.buffer);
    view.setFloat64(0, this.index);
    view.setUint32(8, this.hash);
    return bytes;
  }

  restore(snapshot: Snapshot): void {
    const view = new DataView(
      snapshot.data.buffer,
      snapshot.data.byteOffset,
      snapshot.data.byteLength,
    );
    assert(view.getFloat64(0) === snapshot.index, "Snapshot data is of another index");
    this.index = snapshot.index;
    this.hash = view.getUint32(8);
  }
}

export class SimNode {
  readonly id: NodeId;
  readonly storage = new MemoryRaftStorage();
  raft: Raft | null = null;
  machine = new HashChain();
  /** Partition group: messages flow only within a group. */
  group = 0;

  constructor(id: NodeId) {
    this.id = id;
  }

  get up(): boolean {
    return this.raft !== null;
  }
}

type SimEvent = { kind: "tick" } | { kind: "deliver"; message: Message };

export class Simulation {
  readonly random: Random;
  readonly options: SimulationOptions;
  readonly nodes: SimNode[];
  readonly checker = new InvariantChecker();
  faults: NetworkFaults;
  tornWriteRate: number;
  nowMs = 0;
  readonly #queue = new EventQueue<SimEvent>();
  /** Counters for reports. */
  readonly stats = {
    delivered: 0,
    dropped: 0,
    crashes: 0,
    tornWrites: 0,
    snapshots: 0,
    elections: 0,
  };

  constructor(options: SimulationOptions) {
    this.options = options;
    this.random = options.random;
    this.faults = { ...options.faults };
    this.tornWriteRate = options.tornWriteRate;
    this.nodes = Array.from({ length: options.nodeCount }, (_, i) => new SimNode(i + 1));
    for (const node of this.nodes) this.#start(node);
    this.#queue.push(TICK_MS, { kind: "tick" });
  }

  node(id: NodeId): SimNode {
    const node = this.nodes[id - 1];
    assert(node !== undefined, `No node ${id}`);
    return node;
  }

  upNodes(): SimNode[] {
    return this.nodes.filter((node) => node.up);
  }

  /** The live leaders (more than one only while an old one has not heard of the new term). */
  leaders(): Raft[] {
    const out: Raft[] = [];
    for (const node of this.nodes) if (node.raft?.role === "leader") out.push(node.raft);
    return out;
  }

  /** The leader with the highest term, if any. */
  leader(): Raft | null {
    let best: Raft | null = null;
    for (const raft of this.leaders()) if (best === null || raft.term > best.term) best = raft;
    return best;
  }

  /** Runs an input against one node, then drains its Ready loop. */
  input(node: SimNode, action: (raft: Raft) => void): void {
    const raft = node.raft;
    if (raft === null) return;
    const wasLeader = raft.role === "leader";
    const termBefore = raft.term;
    action(raft);
    this.#drain(node, wasLeader, termBefore);
  }

  /** Advances virtual time to `untilMs`, processing every event on the way. */
  runUntil(untilMs: number, stop?: () => boolean): boolean {
    while (this.#queue.peekTime() <= untilMs) {
      const next = this.#queue.pop()!;
      this.nowMs = next.at;
      this.#handle(next.event);
      if (stop?.()) return true;
    }
    this.nowMs = untilMs;
    return stop?.() ?? false;
  }

  crash(node: SimNode): void {
    if (!node.up) return;
    node.storage.crash(0);
    node.raft = null;
    node.machine = new HashChain();
    this.stats.crashes++;
  }

  restart(node: SimNode): void {
    if (node.up) return;
    this.#start(node);
  }

  /** Splits the nodes into two groups at random (a network partition). */
  partition(): void {
    for (const node of this.nodes) node.group = this.random.int(0, 1);
  }

  /** Isolates one node from all others. */
  isolate(node: SimNode): void {
    for (const other of this.nodes) other.group = 0;
    node.group = 1;
  }

  heal(): void {
    for (const node of this.nodes) node.group = 0;
  }

  #start(node: SimNode): void {
    const stored = node.storage.load();
    const raft = new Raft({
      id: node.id,
      random: this.random,
      electionTicks: this.options.electionTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      stored,
    });
    node.machine = new HashChain();
    if (stored.snapshot !== null) {
      node.machine.restore(stored.snapshot);
      this.checker.onRestored(raft, stored.snapshot.index, node.machine.hash);
    }
    node.raft = raft;
  }

  #handle(event: SimEvent): void {
    switch (event.kind) {
      case "tick": {
        this.#queue.push(this.nowMs + TICK_MS, { kind: "tick" });
        // Nodes tick in a random order each round, so no node always goes first.
        const order = this.upNodes();
        for (let i = order.length - 1; i > 0; i--) {
          const j = this.random.int(0, i);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        for (const node of order) this.input(node, (raft) => raft.tick());
        return;
      }
      case "deliver": {
        const message = event.message;
        const to = this.node(message.to);
        if (!to.up || to.group !== this.node(message.from).group) {
          this.stats.dropped++;
          return;
        }
        this.stats.delivered++;
        this.input(to, (raft) => raft.step(message));
        return;
      }
    }
  }

  #drain(node: SimNode, wasLeaderAtStart: boolean, termAtStart: number): void {
    let wasLeader = wasLeaderAtStart && node.raft?.term === termAtStart;
    while (node.raft !== null && node.raft.hasReady()) {
      const raft = node.raft;
      const ready = raft.ready();
      this.checker.onEntriesWritten(raft, ready.entries);
      const mustSync = writeReady(node.storage, ready);
      if (mustSync && this.random.next() < this.tornWriteRate) {
        // Power cut before the fsync: a prefix of the writes survives, nothing is sent.
        node.storage.crash(this.random.int(0, node.storage.pendingOperations));
        node.raft = null;
        this.stats.tornWrites++;
        return;
      }
      if (mustSync) node.storage.sync();
      for (const message of ready.messages) this.#send(message);
      this.checker.onCommitted(raft, ready.committedEntries, this.leaders());
      if (ready.restore !== null) {
        node.machine.restore(ready.restore);
        this.checker.onRestored(raft, ready.restore.index, node.machine.hash);
        this.stats.snapshots++;
      }
      for (const entry of ready.committedEntries) {
        node.machine.apply(entry);
        this.checker.onApplied(raft, entry, node.machine.hash);
      }
      raft.advance();
      const isLeader = raft.role === "leader";
      if (isLeader && !wasLeader) this.stats.elections++;
      this.checker.onSoftState(raft, isLeader && !wasLeader);
      wasLeader = isLeader;
      this.#maybeCompact(node, raft);
    }
  }

  #maybeCompact(node: SimNode, raft: Raft): void {
    const every = this.options.compactEvery;
    if (every === 0) return;
    const applied = node.machine.index;
    if (applied - raft.snapshot().index < every) return;
    const result = raft.compact(applied, node.machine.snapshot());
    if (!result.ok) throw new InvariantError(`Compaction at ${applied} failed: ${result.message}`);
  }

  #send(message: Message): void {
    const faults = this.faults;
    if (this.node(message.from).group !== this.node(message.to).group) {
      this.stats.dropped++;
      return;
    }
    if (this.random.next() < faults.dropRate) {
      this.stats.dropped++;
      return;
    }
    if (this.#queue.size > IN_FLIGHT_MAX) {
      throw new InvariantError(`Message storm: more than ${IN_FLIGHT_MAX} messages in flight`);
    }
    const copies = this.random.next() < faults.duplicateRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.random.int(1, faults.delayMsMax);
      this.#queue.push(this.nowMs + delay, { kind: "deliver", message });
    }
  }
}
