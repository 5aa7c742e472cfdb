import { expect, test } from "bun:test";
import { Awareness } from "./awareness.ts";

// As hashicorp/memberlist awareness_test.go: the score stays in [0, max - 1] and scales timeouts by score + 1.
test("swim: awareness: the health score is clamped and scales timeouts", () => {
  const awareness = new Awareness(8);
  expect(awareness.scaleMs(500)).toBe(500);
  awareness.applyDelta(-1);
  expect(awareness.score).toBe(0);
  awareness.applyDelta(3);
  expect(awareness.score).toBe(3);
  expect(awareness.scaleMs(1_000)).toBe(4_000);
  awareness.applyDelta(100);
  expect(awareness.score).toBe(7);
  expect(awareness.scaleMs(1_000)).toBe(8_000);
  awareness.applyDelta(-2);
  expect(awareness.score).toBe(5);
});
