/**
 * Which member to probe next. SWIM's round-robin over a randomly shuffled list (the SWIM
 * paper, section 4.3; memberlist's probe loop): random enough that probes spread evenly,
 * and every member is probed within two rounds, which bounds detection time. A member
 * that joins goes in at a random place in the rest of the current round.
 */
import type { Random } from "../../util/random.ts";

export function shuffle<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    const held = items[i] as T;
    items[i] = items[j] as T;
    items[j] = held;
  }
  return items;
}

export class ProbeRing {
  #order: number[] = [];
  #index = 0;

  /**
   * The next member to probe, or null when there is none. `eligible` says whether a member
   * may still be probed (alive or suspect, not ourselves); `everyone` lists them for the
   * next round.
   */
  next(
    eligible: (nodeId: number) => boolean,
    everyone: () => number[],
    random: Random,
  ): number | null {
    for (let round = 0; round < 2; round++) {
      while (this.#index < this.#order.length) {
        const nodeId = this.#order[this.#index] as number;
        this.#index += 1;
        if (eligible(nodeId)) return nodeId;
      }
      this.#order = shuffle(everyone(), random);
      this.#index = 0;
    }
    return null;
  }

  add(nodeId: number, random: Random): void {
    const at = random.int(this.#index, this.#order.length);
    this.#order.splice(at, 0, nodeId);
  }
}
