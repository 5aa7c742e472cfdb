import { expect, test } from "bun:test";
import { Suspicion, suspicionMinMs, suspicionTimeoutMs } from "./suspicion.ts";

// Figures from hashicorp/memberlist suspicion_test.go (TestSuspicion_remainingSuspicionTime,
// whose rows subtract the elapsed time; these are from the start), in ms: k=3, min 2 s, max 30 s.
test("swim: suspicion: the timeout shrinks on a log scale, as memberlist's remainingSuspicionTime", () => {
  expect(suspicionTimeoutMs(0, 3, 2_000, 30_000)).toBe(30_000);
  expect(suspicionTimeoutMs(1, 3, 2_000, 30_000)).toBe(16_000);
  expect(suspicionTimeoutMs(2, 3, 2_000, 30_000)).toBe(7_810);
  expect(suspicionTimeoutMs(3, 3, 2_000, 30_000)).toBe(2_000);
  expect(suspicionTimeoutMs(4, 3, 2_000, 30_000)).toBe(2_000);
  expect(suspicionTimeoutMs(0, 0, 2_000, 30_000)).toBe(2_000);
});

test("swim: suspicion: min scales with log10 of the cluster size", () => {
  expect(suspicionMinMs(4, 1, 1_000)).toBe(4_000);
  expect(suspicionMinMs(4, 10, 1_000)).toBe(4_000);
  expect(suspicionMinMs(4, 100, 1_000)).toBe(8_000);
});

test("swim: suspicion: independent confirmations bring the deadline forward; repeats do not", () => {
  const suspicion = new Suspicion({
    from: 1,
    expected: 3,
    minMs: 2_000,
    maxMs: 30_000,
    nowMs: 1_000,
  });
  expect(suspicion.deadlineMs).toBe(31_000);
  expect(suspicion.confirm(1)).toBe(false); // The first suspecter is not a confirmation.
  expect(suspicion.confirm(2)).toBe(true);
  expect(suspicion.deadlineMs).toBe(17_000);
  expect(suspicion.confirm(2)).toBe(false);
  expect(suspicion.confirm(3)).toBe(true);
  expect(suspicion.confirm(4)).toBe(true);
  expect(suspicion.deadlineMs).toBe(3_000);
  expect(suspicion.confirm(5)).toBe(false); // Enough already.
  expect(suspicion.confirmations).toBe(3);
  expect(suspicion.expired(2_999)).toBe(false);
  expect(suspicion.expired(3_000)).toBe(true);
});

test("swim: suspicion: with no confirmations expected it starts at min", () => {
  const suspicion = new Suspicion({ from: 1, expected: 0, minMs: 4_000, maxMs: 24_000, nowMs: 0 });
  expect(suspicion.deadlineMs).toBe(4_000);
  expect(suspicion.confirm(2)).toBe(false);
});
