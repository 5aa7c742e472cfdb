/**
 * One-shot timers behind an interface. Algorithm folders own no timers (test/tidy.test.ts):
 * the process (src/node.ts) passes `systemTimers`, built on the global timer functions,
 * and tests and simulations pass their own.
 */
export interface Timers {
  /** Calls `run` once after `ms`; the returned function cancels it (harmless once run). */
  after(ms: number, run: () => void): () => void;
}

export const systemTimers: Timers = {
  after(ms, run) {
    const timer = setTimeout(run, ms);
    return () => clearTimeout(timer);
  },
};
