/**
 * Time behind an interface so that algorithms and storage can run on a simulated clock.
 * Production code receives `systemClock`; tests pass a `ManualClock`.
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch (timestamps that leave the process). */
  nowMs(): number;
  /** Monotonic milliseconds for measuring intervals and deadlines. */
  monotonicMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
};

export class ManualClock implements Clock {
  #ms: number;
  constructor(startMs = 1_700_000_000_000) {
    this.#ms = startMs;
  }
  nowMs(): number {
    return this.#ms;
  }
  monotonicMs(): number {
    return this.#ms;
  }
  advance(ms: number): void {
    this.#ms += ms;
  }
}
