import { describe, expect, test } from "bun:test";
import { AssertionError } from "../util/assert.ts";
import {
  type EpochEntry,
  LeaderEpochCache,
  UNDEFINED_EPOCH,
  UNDEFINED_OFFSET,
} from "./leader-epoch-cache.ts";

/** A cache holding `entries` (as a log that wrote them in order would have). */
function cache(...entries: [epoch: number, startOffset: number][]): LeaderEpochCache {
  return new LeaderEpochCache(entries.map(([epoch, startOffset]) => ({ epoch, startOffset })));
}

function pairs(c: LeaderEpochCache): [number, number][] {
  return c.entries().map((e: EpochEntry) => [e.epoch, e.startOffset]);
}

describe("replication: epoch cache: assign", () => {
  test("an empty cache has no entries and latest epoch -1; undefined constants are Kafka's -1", () => {
    const c = new LeaderEpochCache();
    expect(c.entries()).toEqual([]);
    expect(c.latestEpoch()).toBe(-1);
    expect(UNDEFINED_EPOCH).toBe(-1);
    expect(UNDEFINED_OFFSET).toBe(-1);
  });

  test("a new epoch appends and becomes the latest", () => {
    const c = new LeaderEpochCache();
    expect(c.assign(1, 0)).toBe(true);
    expect(c.assign(3, 10)).toBe(true);
    expect(c.assign(4, 12)).toBe(true);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 10],
      [4, 12],
    ]);
    expect(c.latestEpoch()).toBe(4);
  });

  test("the latest epoch again, at its start or later, is a no-op", () => {
    const c = cache([1, 0], [3, 10]);
    expect(c.assign(3, 10)).toBe(false);
    expect(c.assign(3, 25)).toBe(false);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 10],
    ]);
  });

  test("the latest epoch at an earlier start replaces its entry", () => {
    const c = cache([1, 0], [3, 10]);
    expect(c.assign(3, 7)).toBe(true);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 7],
    ]);
  });

  test("a lower epoch drops the entries of that epoch and later", () => {
    const c = cache([1, 0], [3, 10], [5, 20]);
    expect(c.assign(4, 25)).toBe(true);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 10],
      [4, 25],
    ]);
    expect(c.assign(3, 30)).toBe(true);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 30],
    ]);
  });

  test("a higher epoch starting at or before an existing entry drops the entries it contradicts", () => {
    const c = cache([1, 0], [3, 10], [5, 20]);
    expect(c.assign(6, 10)).toBe(true);
    expect(pairs(c)).toEqual([
      [1, 0],
      [6, 10],
    ]);
    expect(c.assign(7, 5)).toBe(true);
    expect(pairs(c)).toEqual([
      [1, 0],
      [7, 5],
    ]);
  });

  test("an older epoch than the first entry, or at offset 0, leaves only itself", () => {
    const c = cache([2, 5], [3, 10]);
    expect(c.assign(1, 20)).toBe(true);
    expect(pairs(c)).toEqual([[1, 20]]);
    const d = cache([2, 5], [3, 10]);
    expect(d.assign(4, 0)).toBe(true);
    expect(pairs(d)).toEqual([[4, 0]]);
  });

  test("the constructor assigns entries in order, dropping contradicted ones", () => {
    const c = new LeaderEpochCache([
      { epoch: 1, startOffset: 0 },
      { epoch: 3, startOffset: 10 },
      { epoch: 2, startOffset: 12 },
    ]);
    expect(pairs(c)).toEqual([
      [1, 0],
      [2, 12],
    ]);
  });

  test("entries() is a copy", () => {
    const c = cache([1, 0]);
    const copy = c.entries();
    copy.push({ epoch: 9, startOffset: 99 });
    expect(pairs(c)).toEqual([[1, 0]]);
  });

  test("a negative epoch or start offset is a programmer error", () => {
    const c = new LeaderEpochCache();
    expect(() => c.assign(-1, 0)).toThrow(AssertionError);
    expect(() => c.assign(0, -1)).toThrow(AssertionError);
    expect(c.entries()).toEqual([]);
  });
});

describe("replication: epoch cache: endOffsetFor", () => {
  // Epoch 1 holds [0, 8), 2 holds [8, 12), 4 holds [12, 20).
  const epochs = () => cache([1, 0], [2, 8], [4, 12]);

  test("the latest epoch ends at the log end offset", () => {
    expect(epochs().endOffsetFor(4, 20)).toEqual({ epoch: 4, endOffset: 20 });
    expect(epochs().endOffsetFor(4, 12)).toEqual({ epoch: 4, endOffset: 12 });
  });

  test("an older epoch ends where the next higher epoch starts", () => {
    expect(epochs().endOffsetFor(1, 20)).toEqual({ epoch: 1, endOffset: 8 });
    expect(epochs().endOffsetFor(2, 20)).toEqual({ epoch: 2, endOffset: 12 });
  });

  test("an epoch this log never had answers the largest epoch below it and the next one's start", () => {
    expect(epochs().endOffsetFor(3, 20)).toEqual({ epoch: 2, endOffset: 12 });
  });

  test("an epoch below the earliest answers itself with the earliest start offset", () => {
    const c = cache([3, 5], [4, 12]);
    expect(c.endOffsetFor(1, 20)).toEqual({ epoch: 1, endOffset: 5 });
    expect(c.endOffsetFor(2, 20)).toEqual({ epoch: 2, endOffset: 5 });
  });

  test("an epoch above the latest answers undefined", () => {
    expect(epochs().endOffsetFor(5, 20)).toEqual({ epoch: -1, endOffset: -1 });
  });

  test("an empty cache answers undefined for any epoch", () => {
    expect(new LeaderEpochCache().endOffsetFor(0, 10)).toEqual({ epoch: -1, endOffset: -1 });
    expect(new LeaderEpochCache().endOffsetFor(3, 0)).toEqual({ epoch: -1, endOffset: -1 });
  });

  test("the undefined epoch answers undefined", () => {
    expect(epochs().endOffsetFor(UNDEFINED_EPOCH, 20)).toEqual({ epoch: -1, endOffset: -1 });
  });
});

describe("replication: epoch cache: epochOfLastBatch", () => {
  test("the latest entry starting before the log end", () => {
    const c = cache([1, 0], [3, 10]);
    expect(c.epochOfLastBatch(15)).toBe(3);
    expect(c.epochOfLastBatch(11)).toBe(3);
    expect(c.epochOfLastBatch(5)).toBe(1);
  });

  test("an entry starting at the log end (a takeover with no batch yet) is not counted", () => {
    const c = cache([1, 0], [3, 10]);
    expect(c.epochOfLastBatch(10)).toBe(1);
    expect(c.latestEpoch()).toBe(3);
  });

  test("an empty log or cache has no last batch", () => {
    expect(cache([1, 0]).epochOfLastBatch(0)).toBe(-1);
    expect(new LeaderEpochCache().epochOfLastBatch(10)).toBe(-1);
    expect(cache([2, 5]).epochOfLastBatch(5)).toBe(-1);
  });
});

describe("replication: epoch cache: truncation", () => {
  test("truncateFromEnd drops the epochs starting at or after the new end", () => {
    const c = cache([1, 0], [3, 10], [5, 20]);
    c.truncateFromEnd(25);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 10],
      [5, 20],
    ]);
    c.truncateFromEnd(20);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 10],
    ]);
    c.truncateFromEnd(11);
    expect(pairs(c)).toEqual([
      [1, 0],
      [3, 10],
    ]);
    c.truncateFromEnd(10);
    expect(pairs(c)).toEqual([[1, 0]]);
    c.truncateFromEnd(0);
    expect(c.entries()).toEqual([]);
    expect(c.latestEpoch()).toBe(-1);
  });

  test("truncateFromStart moves the covering epoch's start and drops the ones before it", () => {
    const c = cache([1, 0], [3, 10], [5, 20]);
    c.truncateFromStart(12);
    expect(pairs(c)).toEqual([
      [3, 12],
      [5, 20],
    ]);
  });

  test("truncateFromStart at an epoch's exact start drops only the earlier epochs", () => {
    const c = cache([1, 0], [3, 10], [5, 20]);
    c.truncateFromStart(20);
    expect(pairs(c)).toEqual([[5, 20]]);
  });

  test("truncateFromStart past every start keeps the latest epoch, starting there", () => {
    const c = cache([1, 0], [3, 10]);
    c.truncateFromStart(40);
    expect(pairs(c)).toEqual([[3, 40]]);
  });

  test("truncateFromStart before the first entry changes nothing", () => {
    const c = cache([3, 10], [5, 20]);
    c.truncateFromStart(4);
    expect(pairs(c)).toEqual([
      [3, 10],
      [5, 20],
    ]);
    const empty = new LeaderEpochCache();
    empty.truncateFromStart(4);
    expect(empty.entries()).toEqual([]);
  });

  test("after truncateFromStart, an older epoch answers itself with the new start", () => {
    const c = cache([1, 0], [3, 10], [5, 20]);
    c.truncateFromStart(12);
    expect(c.endOffsetFor(1, 30)).toEqual({ epoch: 1, endOffset: 12 });
    expect(c.endOffsetFor(3, 30)).toEqual({ epoch: 3, endOffset: 20 });
  });
});
