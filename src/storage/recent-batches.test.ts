import { expect, test } from "bun:test";
import { AssertionError } from "../util/assert.ts";
import { RecentBatches } from "./recent-batches.ts";

test("storage: recent batches: the batch holding an offset or the next; undefined below the ring", () => {
  const ring = new RecentBatches(4);
  expect(ring.locate(0)).toBeUndefined();
  // Batches [10-12] at 0, [15-15] at 100 (a gap before it), [16-19] at 180.
  ring.add(10, 12, 0, 100);
  ring.add(15, 15, 100, 80);
  ring.add(16, 19, 180, 120);
  expect(ring.locate(9)).toBeUndefined();
  expect(ring.locate(11)).toEqual({ position: 0, size: 100, baseOffset: 10, lastOffset: 12 });
  expect(ring.locate(13)).toEqual({ position: 100, size: 80, baseOffset: 15, lastOffset: 15 });
  expect(ring.locate(19)).toMatchObject({ baseOffset: 16 });
  expect(ring.locate(20)).toBeNull();
  // Two more wrap the ring: [10-12] falls out, so offset 11 is the index's to answer.
  ring.add(20, 20, 300, 70);
  ring.add(21, 25, 370, 200);
  expect(ring.locate(11)).toBeUndefined();
  expect(ring.locate(15)).toMatchObject({ baseOffset: 15, position: 100 });
  expect(ring.locate(22)).toMatchObject({ baseOffset: 21, position: 370, size: 200 });
  expect(ring.locate(26)).toBeNull();
  expect(() => ring.add(25, 26, 570, 10)).toThrow(AssertionError);
});
