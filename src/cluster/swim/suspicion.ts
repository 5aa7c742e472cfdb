/**
 * Lifeguard's dynamic suspicion timeout (hashicorp/memberlist suspicion.go): a suspicion
 * starts with the maximum timeout and shrinks toward the minimum as independent
 * confirmations arrive (other members that also failed to probe the suspect), on a log
 * scale, so that a suspicion many members share resolves fast and a lone suspicion (which
 * may be the suspecter's own fault) waits long enough for the suspect to refute it.
 *
 * Pure: the caller passes times in and asks whether the deadline has passed.
 */
import { assert } from "../../util/assert.ts";

/**
 * The time left, as memberlist's remainingSuspicionTime: `max - (max - min) * log(n + 1) /
 * log(k + 1)` measured from the start, floored to whole ms, never below `min`.
 */
export function suspicionTimeoutMs(
  confirmations: number,
  expected: number,
  minMs: number,
  maxMs: number,
): number {
  assert(confirmations >= 0, "Confirmations are negative");
  assert(minMs <= maxMs, "Suspicion min is above max");
  if (expected < 1) return minMs;
  const fraction = Math.log(confirmations + 1) / Math.log(expected + 1);
  const raw = Math.floor(maxMs - fraction * (maxMs - minMs));
  return Math.max(minMs, raw);
}

/**
 * The minimum suspicion timeout (memberlist's suspicionTimeout): `mult` probe intervals,
 * scaled by log10 of the cluster size so that gossip has time to reach everyone.
 */
export function suspicionMinMs(
  suspicionMult: number,
  members: number,
  probeIntervalMs: number,
): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, members)));
  return Math.floor(suspicionMult * nodeScale * probeIntervalMs);
}

export class Suspicion {
  /** The node that started it (ourselves, or the first gossiped `from`). */
  readonly #confirmedBy = new Set<number>();
  readonly #expected: number;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #startMs: number;
  #deadlineMs: number;

  /**
   * @param from the first suspecter; it is not a confirmation.
   * @param expected confirmations that would bring the timeout down to min (memberlist's k;
   *   0 means "start at min": too few members to expect any).
   */
  constructor(options: {
    from: number;
    expected: number;
    minMs: number;
    maxMs: number;
    nowMs: number;
  }) {
    assert(options.expected >= 0, "Expected confirmations are negative");
    assert(options.minMs > 0, "Suspicion min is not positive");
    assert(options.minMs <= options.maxMs, "Suspicion min is above max");
    this.#confirmedBy.add(options.from);
    this.#expected = options.expected;
    this.#minMs = options.minMs;
    this.#maxMs = options.maxMs;
    this.#startMs = options.nowMs;
    this.#deadlineMs = options.nowMs + (options.expected < 1 ? options.minMs : options.maxMs);
  }

  /** Independent confirmations so far (the first suspecter does not count). */
  get confirmations(): number {
    return this.#confirmedBy.size - 1;
  }

  get deadlineMs(): number {
    return this.#deadlineMs;
  }

  /**
   * Records that `from` also suspects. True when it was new (the caller re-gossips it, so
   * that others learn of the confirmation too); false for a repeat or once enough arrived.
   */
  confirm(from: number): boolean {
    if (this.confirmations >= this.#expected) return false;
    if (this.#confirmedBy.has(from)) return false;
    this.#confirmedBy.add(from);
    const timeoutMs = suspicionTimeoutMs(
      this.confirmations,
      this.#expected,
      this.#minMs,
      this.#maxMs,
    );
    const deadlineMs = this.#startMs + timeoutMs;
    assert(deadlineMs <= this.#deadlineMs, "A confirmation lengthened a suspicion");
    this.#deadlineMs = deadlineMs;
    return true;
  }

  expired(nowMs: number): boolean {
    return nowMs >= this.#deadlineMs;
  }
}
