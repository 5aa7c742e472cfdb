/**
 * Lifeguard's local health awareness (hashicorp/memberlist awareness.go). A node that is
 * itself slow (CPU starved, paused, losing packets) sees its probes fail and would accuse
 * healthy members. So it keeps a health score: missed acks and missed nacks and having to
 * refute a suspicion raise it, successful probes lower it. Timeouts are multiplied by
 * `score + 1`: a struggling node probes less often and waits longer before suspecting.
 */
import { assert } from "../../util/assert.ts";

export class Awareness {
  /** Score 0 is healthy; the multiplier is capped at `multiplierMax`. */
  readonly #multiplierMax: number;
  #score = 0;

  constructor(multiplierMax: number) {
    assert(Number.isInteger(multiplierMax), "Awareness multiplier max is not an integer");
    assert(multiplierMax >= 1, "Awareness multiplier max is below 1");
    this.#multiplierMax = multiplierMax;
  }

  get score(): number {
    return this.#score;
  }

  /** +1 per failed probe or missed nack or refutation; -1 per successful probe. */
  applyDelta(delta: number): void {
    assert(Number.isInteger(delta), "Awareness delta is not an integer");
    this.#score = Math.min(this.#multiplierMax - 1, Math.max(0, this.#score + delta));
  }

  scaleMs(timeoutMs: number): number {
    return timeoutMs * (this.#score + 1);
  }
}
