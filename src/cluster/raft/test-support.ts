/**
 * @module
 * A hand-driven cluster for Raft's unit and transcript tests (not used by production
 * code): nodes are real `Raft`s over `MemoryRaftStorage`; every Ready is persisted and
 * advanced at once, and its messages wait in a mailbox until the test delivers them, so
 * a test decides exactly what happens in which order.
 */
import { assert } from "../../util/assert.ts";
import { SeededRandom } from "../../util/random.ts";
import { describeMembership } from "./membership.ts";
import { Raft, type RaftOptions } from "./raft.ts";
import { MemoryRaftStorage, persistReady } from "./storage.ts";
import type { Entry, Message, NodeId } from "./types.ts";

export interface TestNode {
  readonly id: NodeId;
  raft: Raft | null;
  storage: MemoryRaftStorage;
  /** Committed entries in apply order. */
  applied: Entry[];
}

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in send order. */
  mailbox: Message[] = [];
  /** Node pairs that cannot talk ("a-b", both ways). */
  readonly #cut = new Set<string>();
  readonly #options: Partial<RaftOptions>;
  readonly #random: SeededRandom;

  constructor(ids: readonly NodeId[], options: Partial<RaftOptions> = {}, seed = 1) {
    this.#options = options;
    this.#random = new SeededRandom(seed);
    for (const id of ids) {
      const node: TestNode = { id, raft: null, storage: new MemoryRaftStorage(), applied: [] };
      this.nodes.set(id, node);
      this.#start(node);
    }
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    assert(node !== undefined, `No node ${id}`);
    return node;
  }

  raft(id: NodeId): Raft {
    const raft = this.node(id).raft;
    assert(raft !== null, `Node ${id} is down`);
    return raft;
  }

  /** Runs `action` on node `id`, then persists and advances its Readies. */
  on<T>(id: NodeId, action: (raft: Raft) => T): T {
    const result = action(this.raft(id));
    this.settle(id);
    return result;
  }

  settle(id: NodeId): void {
    const node = this.node(id);
    const raft = node.raft;
    if (raft === null) return;
    while (raft.hasReady()) {
      const ready = raft.ready();
      persistReady(node.storage, ready);
      this.mailbox.push(...ready.messages);
      if (ready.restore !== null) node.applied = [];
      node.applied.push(...ready.committedEntries);
      raft.advance();
    }
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.on(id, (raft) => raft.tick());
  }

  /** Ticks node `id` until its role is `role` (at most `limit` ticks). */
  tickUntil(id: NodeId, done: (raft: Raft) => boolean, limit = 100): void {
    for (let i = 0; i < limit && !done(this.raft(id)); i++) this.tick(id);
    assert(
      done(this.raft(id)),
      `Node ${id} did not get there in ${limit} ticks: ${this.describe(id)}`,
    );
  }

  /** Takes the messages matching `filter` out of the mailbox. */
  take(filter: (message: Message) => boolean = () => true): Message[] {
    const taken = this.mailbox.filter(filter);
    this.mailbox = this.mailbox.filter((message) => !filter(message));
    return taken;
  }

  /** Delivers one message; false when it was dropped (an end is down, the link is cut). */
  deliver(message: Message): boolean {
    const to = this.nodes.get(message.to);
    if (to?.raft === null || to === undefined) return false;
    if (this.#cut.has(`${message.from}-${message.to}`)) return false;
    this.on(message.to, (raft) => raft.step(message));
    return true;
  }

  /** Delivers mail until none is left (bounded: a loop would be a bug). */
  deliverAll(limit = 10_000): number {
    let delivered = 0;
    while (this.mailbox.length > 0) {
      assert(delivered < limit, "Messages never stop");
      this.deliver(this.mailbox.shift()!);
      delivered++;
    }
    return delivered;
  }

  /** Cuts the links between `id` and every other node. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.#cut.add(`${id}-${other}`);
      this.#cut.add(`${other}-${id}`);
    }
  }

  heal(): void {
    this.#cut.clear();
  }

  /** The node loses everything not persisted (nothing is pending between Readies here). */
  crash(id: NodeId): void {
    const node = this.node(id);
    node.storage.crash(0);
    node.raft = null;
    node.applied = [];
  }

  restart(id: NodeId): void {
    this.#start(this.node(id));
  }

  /** The node crashes and comes back with nothing stored (its data dir was emptied). */
  restartEmpty(id: NodeId): void {
    this.crash(id);
    this.node(id).storage = new MemoryRaftStorage();
    this.restart(id);
  }

  /** One line of a node's state, for transcripts and failure messages. */
  describe(id: NodeId): string {
    const raft = this.node(id).raft;
    if (raft === null) return `${id}: down`;
    const s = raft.status();
    const leader = s.leader === null ? "-" : String(s.leader);
    return (
      `${id}: ${s.role} term=${s.term} leader=${leader} vote=${s.vote ?? "-"} ` +
      `last=${s.lastIndex}/${s.lastTerm} commit=${s.commit} applied=${s.applied} ` +
      `snapshot=${s.snapshotIndex} members=${describeMembership(s.membership) || "-"}`
    );
  }

  #start(node: TestNode): void {
    node.raft = new Raft({
      id: node.id,
      random: this.#random,
      electionTicks: 10,
      heartbeatTicks: 1,
      ...this.#options,
      stored: node.storage.load(),
    });
  }
}

/** A short text for a message, for transcripts. */
export function describeMessage(message: Message): string {
  const head = `${message.from}->${message.to} ${message.type} term=${message.term}`;
  switch (message.type) {
    case "preVote":
    case "vote":
      return `${head} last=${message.lastIndex}/${message.lastTerm}`;
    case "preVoteResponse":
    case "voteResponse":
      return `${head} ${message.granted ? "granted" : "rejected"}`;
    case "append": {
      const entries = message.entries.map(
        (entry) => `${entry.index}/${entry.term}${entry.kind === "data" ? "" : `:${entry.kind}`}`,
      );
      const prev = `prev=${message.prevIndex}/${message.prevTerm}`;
      return `${head} ${prev} commit=${message.commit} entries=[${entries.join(" ")}]`;
    }
    case "appendResponse":
      return `${head} ${message.success ? "ok" : "reject"} index=${message.index}${
        message.success ? "" : ` hint=${message.hint}`
      }`;
    case "snapshot":
      return `${head} snapshot=${message.snapshot.index}/${message.snapshot.term}`;
    case "timeoutNow":
      return head;
  }
}
