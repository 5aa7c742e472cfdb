/**
 * Gossip waiting to be piggybacked (hashicorp/memberlist queue.go, TransmitLimitedQueue).
 * Each update is sent a bounded number of times, `retransmitMult * ceil(log10(n + 1))`,
 * enough for epidemic spread to reach everyone with high probability and no more; the
 * least-sent updates go first, so fresh news spreads before old news repeats. A newer
 * update about a member replaces the queued one: nobody needs the old claim any more.
 */
import { assert } from "../../util/assert.ts";
import { messageBytes } from "./codec.ts";
import type { GossipMessage } from "./messages.ts";

export function retransmitLimit(retransmitMult: number, members: number): number {
  assert(members >= 0, "Member count is negative");
  return retransmitMult * Math.ceil(Math.log10(members + 1));
}

interface Queued {
  readonly message: GossipMessage;
  readonly bytes: number;
  /** Enqueue order: among equally sent items, the newest goes first. */
  readonly order: number;
  transmits: number;
}

export class BroadcastQueue {
  readonly #retransmitMult: number;
  /** At most one update per member: keyed by the node id the update is about. */
  readonly #items = new Map<number, Queued>();
  #order = 0;

  constructor(retransmitMult: number) {
    assert(Number.isInteger(retransmitMult), "Retransmit mult is not an integer");
    assert(retransmitMult >= 1, "Retransmit mult is below 1");
    this.#retransmitMult = retransmitMult;
  }

  get size(): number {
    return this.#items.size;
  }

  /** The queued update about `nodeId`, if any. */
  about(nodeId: number): GossipMessage | undefined {
    return this.#items.get(nodeId)?.message;
  }

  enqueue(message: GossipMessage): void {
    this.#order += 1;
    this.#items.set(message.nodeId, {
      message,
      bytes: messageBytes(message),
      order: this.#order,
      transmits: 0,
    });
  }

  /**
   * Updates that fit in `budgetBytes`, least sent first; each counts as sent once, and
   * leaves the queue when it reaches the retransmit limit for `members` members.
   */
  take(budgetBytes: number, members: number, countMax: number): GossipMessage[] {
    if (this.#items.size === 0 || budgetBytes <= 0 || countMax <= 0) return [];
    const limit = retransmitLimit(this.#retransmitMult, members);
    const ordered = [...this.#items.values()].sort(
      (a, b) => a.transmits - b.transmits || b.order - a.order,
    );
    const taken: GossipMessage[] = [];
    let left = budgetBytes;
    for (const item of ordered) {
      if (taken.length >= countMax) break;
      if (item.bytes > left) continue;
      left -= item.bytes;
      taken.push(item.message);
      item.transmits += 1;
      if (item.transmits >= limit) this.#items.delete(item.message.nodeId);
    }
    return taken;
  }

  clear(): void {
    this.#items.clear();
  }
}
