import { describe, expect, test } from "bun:test";
import {
  type FollowerLogView,
  type FollowerRequest,
  FollowerState,
  truncationPoint,
} from "./follower-state.ts";
import { LeaderEpochCache } from "./leader-epoch-cache.ts";

/** A mutable log: what the caller of FollowerState owns. */
interface TestLog {
  logEndOffset: number;
  epochs: LeaderEpochCache;
}

function log(logEndOffset: number, ...entries: [epoch: number, startOffset: number][]): TestLog {
  const epochs = new LeaderEpochCache(
    entries.map(([epoch, startOffset]) => ({ epoch, startOffset })),
  );
  return { logEndOffset, epochs };
}

/** What the caller does with a cut: the log and its epoch cache end at `offset`. */
function truncate(l: TestLog, offset: number | null): void {
  if (offset === null) return;
  l.logEndOffset = offset;
  l.epochs.truncateFromEnd(offset);
}

/** The follower appends fetched batches of `epoch` up to `endOffset`. */
function append(l: TestLog, epoch: number, endOffset: number): void {
  l.epochs.assign(epoch, l.logEndOffset);
  l.logEndOffset = endOffset;
}

function pairs(c: LeaderEpochCache): [number, number][] {
  return c.entries().map((e) => [e.epoch, e.startOffset]);
}

describe("replication: follower: truncationPoint", () => {
  test("the leader answers the epoch asked: cut to min(leader end, own end), done", () => {
    const view: FollowerLogView = log(15, [1, 0], [3, 10]);
    expect(truncationPoint(view, 3, { epoch: 3, endOffset: 12 }, 0)).toEqual({
      truncateTo: 12,
      done: true,
    });
    expect(truncationPoint(view, 3, { epoch: 3, endOffset: 20 }, 0)).toEqual({
      truncateTo: 15,
      done: true,
    });
    expect(truncationPoint(view, 3, { epoch: 3, endOffset: 15 }, 0)).toEqual({
      truncateTo: 15,
      done: true,
    });
  });

  test("the leader answers a lower epoch the follower has: cut to where that epoch ends on both sides, done", () => {
    // Follower: 1 [0,5), 2 [5,10), 3 [10,15). It asks about 3.
    const view = log(15, [1, 0], [2, 5], [3, 10]);
    // Leader 1@0, 2@5, 4@12: its epoch 2 ends at 12, the follower's at 10.
    expect(truncationPoint(view, 3, { epoch: 2, endOffset: 12 }, 0)).toEqual({
      truncateTo: 10,
      done: true,
    });
    // Leader 1@0, 2@5, 4@8: its epoch 2 ends at 8, before the follower's.
    expect(truncationPoint(view, 3, { epoch: 2, endOffset: 8 }, 0)).toEqual({
      truncateTo: 8,
      done: true,
    });
  });

  test("the leader answers an epoch the follower never had: cut to the end of the follower's epoch below it, not done", () => {
    // Follower: 1 [0,10), 3 [10,15). Leader: 1@0, 2@8, 4@12 answers (2, 12) for epoch 3.
    const view = log(15, [1, 0], [3, 10]);
    expect(truncationPoint(view, 3, { epoch: 2, endOffset: 12 }, 0)).toEqual({
      truncateTo: 10,
      done: false,
    });
  });

  test("the leader holds nothing at or below the epoch asked: cut to the high watermark, done", () => {
    const view = log(15, [1, 0], [3, 10]);
    expect(truncationPoint(view, 3, { epoch: -1, endOffset: -1 }, 7)).toEqual({
      truncateTo: 7,
      done: true,
    });
    // Never past the follower's own end.
    expect(truncationPoint(view, 3, { epoch: -1, endOffset: -1 }, 30)).toEqual({
      truncateTo: 15,
      done: true,
    });
  });

  test("a defined epoch with an undefined end offset cuts nothing, done", () => {
    const view = log(15, [1, 0], [3, 10]);
    expect(truncationPoint(view, 3, { epoch: 3, endOffset: -1 }, 7)).toEqual({
      truncateTo: 15,
      done: true,
    });
  });

  test("two rounds: follower [1@0, 3@10] end 15 against leader [1@0, 2@8, 4@12] ends at 8", () => {
    const leader = new LeaderEpochCache([
      { epoch: 1, startOffset: 0 },
      { epoch: 2, startOffset: 8 },
      { epoch: 4, startOffset: 12 },
    ]);
    const leaderEnd = 20;
    const follower = log(15, [1, 0], [3, 10]);
    const state = new FollowerState({ leaderId: 9, leaderEpoch: 4, highWatermark: 0 });

    const first = state.nextRequest(follower);
    expect(first).toEqual({ kind: "offsetForLeaderEpoch", currentLeaderEpoch: 4, epoch: 3 });
    const firstAnswer = leader.endOffsetFor(3, leaderEnd);
    expect(firstAnswer).toEqual({ epoch: 2, endOffset: 12 });
    const firstCut = state.onEpochEndOffset(follower, firstAnswer);
    expect(firstCut).toBe(10);
    expect(state.phase).toBe("truncating");
    truncate(follower, firstCut);
    expect(pairs(follower.epochs)).toEqual([[1, 0]]);

    // The next request asks with the epoch the follower is left with.
    const second = state.nextRequest(follower);
    expect(second).toEqual({ kind: "offsetForLeaderEpoch", currentLeaderEpoch: 4, epoch: 1 });
    const secondAnswer = leader.endOffsetFor(1, leaderEnd);
    expect(secondAnswer).toEqual({ epoch: 1, endOffset: 8 });
    const secondCut = state.onEpochEndOffset(follower, secondAnswer);
    expect(secondCut).toBe(8);
    expect(state.phase).toBe("fetching");
    truncate(follower, secondCut);
    expect(follower.logEndOffset).toBe(8);

    expect(state.nextRequest(follower)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 4,
      fetchOffset: 8,
      lastFetchedEpoch: 1,
    });
  });
});

describe("replication: follower: FollowerState", () => {
  test("starts truncating with the given leader and high watermark", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 4 });
    expect(state.leaderId).toBe(2);
    expect(state.leaderEpoch).toBe(5);
    expect(state.phase).toBe("truncating");
    expect(state.highWatermark).toBe(4);
  });

  test("an empty log skips straight to fetching from offset 0 with no last fetched epoch", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const empty = log(0);
    expect(state.nextRequest(empty)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 5,
      fetchOffset: 0,
      lastFetchedEpoch: -1,
    });
    expect(state.phase).toBe("fetching");
    // An OffsetForLeaderEpoch answer arriving now changes nothing.
    expect(state.onEpochEndOffset(empty, { epoch: 5, endOffset: 0 })).toBeNull();
    expect(state.phase).toBe("fetching");
  });

  test("a log whose only epoch entry starts at its end has no batch: straight to fetching", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l = log(0, [3, 0]);
    expect(state.nextRequest(l)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 5,
      fetchOffset: 0,
      lastFetchedEpoch: -1,
    });
  });

  test("asks OffsetForLeaderEpoch for the epoch of its last batch, repeatedly until answered", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l = log(15, [1, 0], [3, 10]);
    const request: FollowerRequest = {
      kind: "offsetForLeaderEpoch",
      currentLeaderEpoch: 5,
      epoch: 3,
    };
    expect(state.nextRequest(l)).toEqual(request);
    expect(state.nextRequest(l)).toEqual(request);
    expect(state.phase).toBe("truncating");
  });

  test("after a truncation that cuts nothing: a fetch from the log end with the last batch's epoch", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    expect(state.onEpochEndOffset(l, { epoch: 3, endOffset: 15 })).toBeNull();
    expect(state.phase).toBe("fetching");
    expect(state.nextRequest(l)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 5,
      fetchOffset: 15,
      lastFetchedEpoch: 3,
    });
  });

  test("after a cut: a fetch from the new log end with the epoch of the batch now last", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    const cut = state.onEpochEndOffset(l, { epoch: 3, endOffset: 12 });
    expect(cut).toBe(12);
    truncate(l, cut);
    expect(state.nextRequest(l)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 5,
      fetchOffset: 12,
      lastFetchedEpoch: 3,
    });
    // Cut to exactly where epoch 3 began: the last batch is epoch 1's.
    const other = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l2 = log(15, [1, 0], [3, 10]);
    other.nextRequest(l2);
    const cut2 = other.onEpochEndOffset(l2, { epoch: 3, endOffset: 10 });
    expect(cut2).toBe(10);
    truncate(l2, cut2);
    expect(other.nextRequest(l2)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 5,
      fetchOffset: 10,
      lastFetchedEpoch: 1,
    });
  });

  test("onFetched sets the high watermark to min(leader high watermark, log end) and never lowers it", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 3 });
    const l = log(0);
    state.nextRequest(l);
    append(l, 5, 10);
    state.onFetched(l, 8);
    expect(state.highWatermark).toBe(8);
    state.onFetched(l, 14);
    expect(state.highWatermark).toBe(10);
    state.onFetched(l, 6);
    expect(state.highWatermark).toBe(10);
    append(l, 5, 20);
    state.onFetched(l, 14);
    expect(state.highWatermark).toBe(14);
  });

  test("a truncation below the high watermark lowers it; one above leaves it", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 13 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    expect(state.onEpochEndOffset(l, { epoch: 3, endOffset: 11 })).toBe(11);
    expect(state.highWatermark).toBe(11);

    const other = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 9 });
    const l2 = log(15, [1, 0], [3, 10]);
    other.nextRequest(l2);
    expect(other.onEpochEndOffset(l2, { epoch: 3, endOffset: 11 })).toBe(11);
    expect(other.highWatermark).toBe(9);
  });

  test("an undefined answer cuts to the high watermark", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 6 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    expect(state.onEpochEndOffset(l, { epoch: -1, endOffset: -1 })).toBe(6);
    expect(state.phase).toBe("fetching");
    expect(state.highWatermark).toBe(6);
  });

  test("onDiverging with the leader's own end of the fetched epoch: cut, keep fetching", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    state.onEpochEndOffset(l, { epoch: 3, endOffset: 15 });
    expect(state.phase).toBe("fetching");
    const cut = state.onDiverging(l, 3, { epoch: 3, endOffset: 12 });
    expect(cut).toBe(12);
    expect(state.phase).toBe("fetching");
    truncate(l, cut);
    expect(state.nextRequest(l)).toEqual({
      kind: "fetch",
      currentLeaderEpoch: 5,
      fetchOffset: 12,
      lastFetchedEpoch: 3,
    });
  });

  test("onDiverging naming an epoch the follower never had: cut and go back to OffsetForLeaderEpoch", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 0 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    state.onEpochEndOffset(l, { epoch: 3, endOffset: 15 });
    const cut = state.onDiverging(l, 3, { epoch: 2, endOffset: 12 });
    expect(cut).toBe(10);
    expect(state.phase).toBe("truncating");
    truncate(l, cut);
    expect(state.nextRequest(l)).toEqual({
      kind: "offsetForLeaderEpoch",
      currentLeaderEpoch: 5,
      epoch: 1,
    });
    const last = state.onEpochEndOffset(l, { epoch: 1, endOffset: 8 });
    expect(last).toBe(8);
    expect(state.phase).toBe("fetching");
  });

  test("onDiverging that cuts nothing returns null and lowers nothing", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 14 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    state.onEpochEndOffset(l, { epoch: 3, endOffset: 15 });
    expect(state.onDiverging(l, 3, { epoch: 3, endOffset: 40 })).toBeNull();
    expect(state.highWatermark).toBe(14);
    expect(state.phase).toBe("fetching");
  });

  test("onDiverging below the high watermark lowers it", () => {
    const state = new FollowerState({ leaderId: 2, leaderEpoch: 5, highWatermark: 14 });
    const l = log(15, [1, 0], [3, 10]);
    state.nextRequest(l);
    state.onEpochEndOffset(l, { epoch: 3, endOffset: 15 });
    expect(state.onDiverging(l, 3, { epoch: 3, endOffset: 11 })).toBe(11);
    expect(state.highWatermark).toBe(11);
  });
});
