import { describe, expect, test } from "bun:test";
import type { AlterPartitionRequest, AlterPartitionResult } from "../cluster/alter-partition.ts";
import type { PartitionImage } from "../cluster/metadata-image.ts";
import { AssertionError } from "../util/assert.ts";
import { LeaderEpochCache } from "./leader-epoch-cache.ts";
import {
  ALTER_PARTITION_RETRY_MS,
  type LeaderLogView,
  LeaderState,
  REPLICA_LAG_TIME_MAX_MS_DEFAULT,
} from "./leader-state.ts";

const TOPIC_ID = "id-t";
const LEADER = 1;
const LEADER_EPOCH = 4;
const PARTITION_EPOCH = 7;
const LAG_MS = 1_000;

function partition(isr: number[], overrides: Partial<PartitionImage> = {}): PartitionImage {
  return {
    partition: 0,
    replicas: [1, 2, 3],
    leader: LEADER,
    leaderEpoch: LEADER_EPOCH,
    isr,
    partitionEpoch: PARTITION_EPOCH,
    elr: [],
    ...overrides,
  };
}

/** The leader's log: epoch 2 from offset 0, this leader's epoch 4 from `takeover`. */
interface TestLog {
  logStartOffset: number;
  logEndOffset: number;
  epochs: LeaderEpochCache;
}

function leaderLog(takeover: number): TestLog {
  const epochs = new LeaderEpochCache([
    { epoch: 2, startOffset: 0 },
    { epoch: LEADER_EPOCH, startOffset: takeover },
  ]);
  return { logStartOffset: 0, logEndOffset: takeover, epochs };
}

/** A leader of partition 0 taking over a log ending at `takeover`, with `highWatermark` checkpointed, at time 0. */
function setup(
  isr: number[],
  options: { takeover?: number; highWatermark?: number; replicas?: number[]; minIsr?: number } = {},
) {
  const takeover = options.takeover ?? 10;
  const log = leaderLog(takeover);
  const state = new LeaderState({
    nodeId: LEADER,
    topicId: TOPIC_ID,
    partition: partition(isr, options.replicas === undefined ? {} : { replicas: options.replicas }),
    logEndOffset: takeover,
    highWatermark: options.highWatermark ?? takeover,
    nowMs: 0,
    lagTimeMaxMs: LAG_MS,
    ...(options.minIsr === undefined ? {} : { minIsr: options.minIsr }),
  });
  return { log, state };
}

function append(state: LeaderState, log: TestLog, endOffset: number): boolean {
  log.logEndOffset = endOffset;
  return state.onAppend(endOffset);
}

/** A well-behaved follower's fetch: its log is a prefix of the leader's, so its last epoch is the leader's at that offset. */
function fetch(
  state: LeaderState,
  log: LeaderLogView,
  replicaId: number,
  fetchOffset: number,
  nowMs: number,
) {
  const lastFetchedEpoch = log.epochs.epochOfLastBatch(fetchOffset);
  return state.onFollowerFetch(
    log,
    { replicaId, currentLeaderEpoch: LEADER_EPOCH, fetchOffset, lastFetchedEpoch },
    nowMs,
  );
}

function accepted(request: AlterPartitionRequest, partitionEpoch: number): AlterPartitionResult {
  return {
    ok: true,
    leader: LEADER,
    leaderEpoch: LEADER_EPOCH,
    partitionEpoch,
    isr: [...request.newIsr],
  };
}

function refused(
  partitionEpoch: number,
  error: "invalidUpdateVersion" | "ineligibleReplica" = "invalidUpdateVersion",
): AlterPartitionResult {
  return { ok: false, error, partitionEpoch, message: "refused" };
}

function request(newIsr: number[], partitionEpoch = PARTITION_EPOCH): AlterPartitionRequest {
  return {
    brokerId: LEADER,
    topicId: TOPIC_ID,
    partition: 0,
    leaderEpoch: LEADER_EPOCH,
    partitionEpoch,
    newIsr,
  };
}

describe("replication: leader: construction", () => {
  test("takes the partition image's state; ISR followers get a lag window from the takeover", () => {
    const state = new LeaderState({
      nodeId: 1,
      topicId: TOPIC_ID,
      partition: partition([1, 2]),
      logEndOffset: 10,
      highWatermark: 6,
      nowMs: 500,
    });
    expect(state.partitionIndex).toBe(0);
    expect(state.leaderEpoch).toBe(LEADER_EPOCH);
    expect(state.epochStartOffset).toBe(10);
    expect(state.highWatermark).toBe(6);
    expect(state.isr).toEqual([1, 2]);
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH);
    expect(state.pendingIsr).toBeNull();
    expect(state.maximalIsr()).toEqual([1, 2]);
    expect(state.follower(1)).toBeUndefined();
    expect(state.follower(2)).toEqual({
      logEndOffset: -1,
      lastCaughtUpMs: 500,
      lastFetchMs: -Infinity,
      lastFetchLeaderLogEndOffset: -1,
    });
    expect(state.follower(3)).toEqual({
      logEndOffset: -1,
      lastCaughtUpMs: -Infinity,
      lastFetchMs: -Infinity,
      lastFetchLeaderLogEndOffset: -1,
    });
    expect(REPLICA_LAG_TIME_MAX_MS_DEFAULT).toBe(30_000);
    expect(ALTER_PARTITION_RETRY_MS).toBe(2_000);
  });

  test("a partition led by another node, or a high watermark beyond the log end, is a programmer error", () => {
    const base = { nodeId: 2, topicId: TOPIC_ID, logEndOffset: 10, highWatermark: 10, nowMs: 0 };
    expect(() => new LeaderState({ ...base, partition: partition([1, 2]) })).toThrow(
      AssertionError,
    );
    expect(
      () =>
        new LeaderState({ ...base, nodeId: 1, highWatermark: 11, partition: partition([1, 2]) }),
    ).toThrow(AssertionError);
  });

  test("the default lag time is 30 s", () => {
    const state = new LeaderState({
      nodeId: 1,
      topicId: TOPIC_ID,
      partition: partition([1, 2]),
      logEndOffset: 10,
      highWatermark: 10,
      nowMs: 0,
    });
    expect(state.isrChangeToPropose(30_000)).toBeNull();
    expect(state.isrChangeToPropose(30_001)).toEqual(request([1]));
  });
});

describe("replication: leader: high watermark", () => {
  test("with the leader alone in the ISR it follows appends", () => {
    const { log, state } = setup([1], { highWatermark: 4 });
    expect(append(state, log, 15)).toBe(true);
    expect(state.highWatermark).toBe(15);
    expect(append(state, log, 15)).toBe(false);
    // A follower outside the ISR holds nothing back.
    expect(fetch(state, log, 2, 5, 10)).toEqual({ kind: "read", fromOffset: 5, highWatermark: 15 });
    expect(append(state, log, 22)).toBe(true);
    expect(state.highWatermark).toBe(22);
  });

  test("it stands still while the committed ISR is below min.insync.replicas (strict minimum ISR)", () => {
    const { log, state } = setup([1], { highWatermark: 4, minIsr: 2 });
    // Alone, the leader appends but commits nothing: a replica that left the ISR meanwhile
    // (the ELR) must still hold everything committed.
    expect(append(state, log, 15)).toBe(false);
    expect(state.highWatermark).toBe(4);
    expect(state.ackStatus(15, 2)).toBe("waiting");
    // Follower 2 catches up and is proposed; while that is pending it still does not move.
    fetch(state, log, 2, 15, 10);
    const request = state.isrChangeToPropose(10)!;
    expect(request.newIsr).toEqual([1, 2]);
    expect(state.highWatermark).toBe(4);
    state.onAlterPartitionResult(request, accepted(request, PARTITION_EPOCH + 1));
    expect(state.highWatermark).toBe(15);
    // A lower minimum through metadata lets it move at once.
    const alone = setup([1], { highWatermark: 4, minIsr: 2 });
    append(alone.state, alone.log, 12);
    alone.state.onMetadata(partition([1]), 1);
    expect(alone.state.highWatermark).toBe(12);
  });

  test("with ISR [1,2,3] it is the least follower fetch offset and never moves back", () => {
    const { log, state } = setup([1, 2, 3], { highWatermark: 6 });
    expect(append(state, log, 20)).toBe(false);
    expect(state.highWatermark).toBe(6);
    expect(fetch(state, log, 2, 15, 100)).toEqual({
      kind: "read",
      fromOffset: 15,
      highWatermark: 6,
    });
    expect(fetch(state, log, 3, 12, 100)).toEqual({
      kind: "read",
      fromOffset: 12,
      highWatermark: 12,
    });
    expect(fetch(state, log, 2, 20, 200)).toEqual({
      kind: "read",
      fromOffset: 20,
      highWatermark: 12,
    });
    expect(fetch(state, log, 3, 20, 200)).toEqual({
      kind: "read",
      fromOffset: 20,
      highWatermark: 20,
    });
    // A follower asking from lower down (it truncated) records it, but the high watermark stays.
    expect(fetch(state, log, 2, 18, 300)).toEqual({
      kind: "read",
      fromOffset: 18,
      highWatermark: 20,
    });
    expect(state.follower(2)!.logEndOffset).toBe(18);
    expect(state.highWatermark).toBe(20);
    expect(append(state, log, 25)).toBe(false);
    expect(state.highWatermark).toBe(20);
  });

  test("a follower's fetch with an empty log (offset 0, no last epoch) records offset 0", () => {
    const { log, state } = setup([1, 2], { takeover: 0, highWatermark: 0 });
    expect(
      state.onFollowerFetch(
        log,
        { replicaId: 2, currentLeaderEpoch: LEADER_EPOCH, fetchOffset: 0, lastFetchedEpoch: -1 },
        5,
      ),
    ).toEqual({ kind: "read", fromOffset: 0, highWatermark: 0 });
    expect(state.follower(2)!.logEndOffset).toBe(0);
  });
});

describe("replication: leader: follower fetch", () => {
  const initial = {
    logEndOffset: -1,
    lastCaughtUpMs: 0,
    lastFetchMs: -Infinity,
    lastFetchLeaderLogEndOffset: -1,
  };

  test("a stale current leader epoch is fenced, a newer one unknown", () => {
    const { log, state } = setup([1, 2]);
    const ask = (currentLeaderEpoch: number) =>
      state.onFollowerFetch(
        log,
        { replicaId: 2, currentLeaderEpoch, fetchOffset: 10, lastFetchedEpoch: 2 },
        50,
      );
    expect(ask(LEADER_EPOCH - 1)).toEqual({ kind: "error", error: "fencedLeaderEpoch" });
    expect(ask(LEADER_EPOCH + 1)).toEqual({ kind: "error", error: "unknownLeaderEpoch" });
    expect(state.follower(2)).toEqual(initial);
  });

  test("a current leader epoch of -1 (older Fetch versions) is not checked", () => {
    const { log, state } = setup([1, 2]);
    const answer = state.onFollowerFetch(
      log,
      { replicaId: 2, currentLeaderEpoch: -1, fetchOffset: 0, lastFetchedEpoch: -1 },
      50,
    );
    expect(answer.kind).toBe("read");
  });

  test("a node that is not a follower replica (or the leader itself) is notReplica", () => {
    const { log, state } = setup([1, 2]);
    const ask = (replicaId: number) =>
      state.onFollowerFetch(
        log,
        { replicaId, currentLeaderEpoch: LEADER_EPOCH, fetchOffset: 10, lastFetchedEpoch: 2 },
        50,
      );
    expect(ask(7)).toEqual({ kind: "error", error: "notReplica" });
    expect(ask(LEADER)).toEqual({ kind: "error", error: "notReplica" });
    expect(state.follower(7)).toBeUndefined();
  });

  test("an offset beyond the log end, or before the log start, is out of range", () => {
    const { log, state } = setup([1, 2]);
    log.logStartOffset = 5;
    const ask = (fetchOffset: number) =>
      state.onFollowerFetch(
        log,
        { replicaId: 2, currentLeaderEpoch: LEADER_EPOCH, fetchOffset, lastFetchedEpoch: -1 },
        50,
      );
    expect(ask(11)).toEqual({ kind: "error", error: "offsetOutOfRange" });
    expect(ask(4)).toEqual({ kind: "error", error: "offsetOutOfRange" });
    expect(state.follower(2)).toEqual(initial);
    expect(ask(5)).toEqual({ kind: "read", fromOffset: 5, highWatermark: 10 });
  });

  test("a last fetched epoch the leader never had is diverging at the end of the leader's epoch below it; no progress", () => {
    const { log, state } = setup([1, 2], { highWatermark: 8 });
    append(state, log, 20);
    const answer = state.onFollowerFetch(
      log,
      { replicaId: 2, currentLeaderEpoch: LEADER_EPOCH, fetchOffset: 12, lastFetchedEpoch: 3 },
      50,
    );
    expect(answer).toEqual({
      kind: "diverging",
      diverging: { epoch: 2, endOffset: 10 },
      highWatermark: 8,
    });
    expect(state.follower(2)).toEqual(initial);
    expect(state.highWatermark).toBe(8);
  });

  test("a last fetched epoch that ends in the leader's log before the fetch offset is diverging; no progress", () => {
    const { log, state } = setup([1, 2], { highWatermark: 8 });
    append(state, log, 20);
    const answer = state.onFollowerFetch(
      log,
      { replicaId: 2, currentLeaderEpoch: LEADER_EPOCH, fetchOffset: 12, lastFetchedEpoch: 2 },
      50,
    );
    expect(answer).toEqual({
      kind: "diverging",
      diverging: { epoch: 2, endOffset: 10 },
      highWatermark: 8,
    });
    expect(state.follower(2)).toEqual(initial);
  });

  test("a fetch beyond the log end in the leader's latest epoch is diverging at the log end", () => {
    const { log, state } = setup([1, 2], { highWatermark: 8 });
    append(state, log, 20);
    const answer = state.onFollowerFetch(
      log,
      { replicaId: 2, currentLeaderEpoch: LEADER_EPOCH, fetchOffset: 21, lastFetchedEpoch: 4 },
      50,
    );
    expect(answer).toEqual({
      kind: "diverging",
      diverging: { epoch: 4, endOffset: 20 },
      highWatermark: 8,
    });
    expect(state.follower(2)).toEqual(initial);
  });

  test("a follower is caught up at the log end, or when it reaches the leader's log end of its previous fetch", () => {
    const { log, state } = setup([1, 2]);
    append(state, log, 20);
    // Behind, with no previous fetch: caught-up time stays the takeover's.
    fetch(state, log, 2, 10, 100);
    expect(state.follower(2)).toEqual({
      logEndOffset: 10,
      lastCaughtUpMs: 0,
      lastFetchMs: 100,
      lastFetchLeaderLogEndOffset: 20,
    });
    append(state, log, 30);
    // Still behind the log end of its previous fetch (20): nothing changes.
    fetch(state, log, 2, 15, 200);
    expect(state.follower(2)).toEqual({
      logEndOffset: 15,
      lastCaughtUpMs: 0,
      lastFetchMs: 200,
      lastFetchLeaderLogEndOffset: 30,
    });
    // Reaching 30, the leader's log end at the fetch of time 200: caught up as of 200.
    append(state, log, 40);
    fetch(state, log, 2, 30, 300);
    expect(state.follower(2)).toEqual({
      logEndOffset: 30,
      lastCaughtUpMs: 200,
      lastFetchMs: 300,
      lastFetchLeaderLogEndOffset: 40,
    });
    // At the log end: caught up now.
    fetch(state, log, 2, 40, 400);
    expect(state.follower(2)).toEqual({
      logEndOffset: 40,
      lastCaughtUpMs: 400,
      lastFetchMs: 400,
      lastFetchLeaderLogEndOffset: 40,
    });
  });
});

describe("replication: leader: ISR shrink", () => {
  test("a follower not caught up for the lag time is proposed for removal; the high watermark waits until committed", () => {
    const { log, state } = setup([1, 2, 3]);
    append(state, log, 20);
    fetch(state, log, 2, 20, 500);
    // Follower 3 fetches, but stays behind the log end.
    fetch(state, log, 3, 12, 900);
    expect(state.highWatermark).toBe(12);
    expect(state.isrChangeToPropose(LAG_MS)).toBeNull();
    const shrink = state.isrChangeToPropose(LAG_MS + 1);
    expect(shrink).toEqual(request([1, 2]));
    expect(state.pendingIsr).toEqual([1, 2]);
    expect(state.isr).toEqual([1, 2, 3]);
    expect(state.maximalIsr()).toEqual([1, 2, 3]);
    // While pending, the removed follower still holds the high watermark back.
    append(state, log, 30);
    fetch(state, log, 2, 30, 1_100);
    expect(state.highWatermark).toBe(12);
    state.onAlterPartitionResult(shrink!, accepted(shrink!, PARTITION_EPOCH + 1));
    expect(state.isr).toEqual([1, 2]);
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH + 1);
    expect(state.pendingIsr).toBeNull();
    expect(state.maximalIsr()).toEqual([1, 2]);
    expect(state.highWatermark).toBe(30);
  });

  test("followers that never fetched are dropped after the lag window from the takeover, all at once", () => {
    const { state } = setup([1, 2, 3]);
    expect(state.isrChangeToPropose(LAG_MS)).toBeNull();
    expect(state.isrChangeToPropose(LAG_MS + 1)).toEqual(request([1]));
  });

  test("a follower that keeps reaching its previous fetch's log end stays in the ISR", () => {
    const { log, state } = setup([1, 2]);
    for (let t = 100, end = 10; t <= 3_000; t += 100, end += 5) {
      // The leader appends first: the follower always asks for what was the log end at
      // its previous fetch, never the current one.
      append(state, log, end + 5);
      fetch(state, log, 2, end, t);
    }
    expect(state.follower(2)!.logEndOffset).toBe(155);
    expect(log.logEndOffset).toBe(160);
    expect(state.follower(2)!.lastCaughtUpMs).toBe(2_900);
    expect(state.isrChangeToPropose(3_000)).toBeNull();
  });
});

describe("replication: leader: ISR expand", () => {
  test("a follower reaching the high watermark and the epoch start is proposed; while pending it counts in the maximal ISR", () => {
    const { log, state } = setup([1, 2], { highWatermark: 4 });
    append(state, log, 20);
    fetch(state, log, 2, 5, 100);
    expect(state.highWatermark).toBe(5);
    // At or past the high watermark, but before this leader's epoch began at 10.
    fetch(state, log, 3, 7, 100);
    expect(state.isrChangeToPropose(100)).toBeNull();
    fetch(state, log, 2, 20, 200);
    expect(state.highWatermark).toBe(20);
    // Past the epoch start, but below the high watermark.
    fetch(state, log, 3, 12, 200);
    expect(state.isrChangeToPropose(200)).toBeNull();
    fetch(state, log, 3, 20, 300);
    const expand = state.isrChangeToPropose(300);
    expect(expand).toEqual(request([1, 2, 3]));
    expect(state.pendingIsr).toEqual([1, 2, 3]);
    expect(state.isr).toEqual([1, 2]);
    expect(state.maximalIsr()).toEqual([1, 2, 3]);
    // The joining follower now holds the high watermark back.
    append(state, log, 30);
    fetch(state, log, 2, 30, 400);
    expect(state.highWatermark).toBe(20);
    fetch(state, log, 3, 25, 400);
    expect(state.highWatermark).toBe(25);
    state.onAlterPartitionResult(expand!, accepted(expand!, PARTITION_EPOCH + 1));
    expect(state.isr).toEqual([1, 2, 3]);
    expect(state.pendingIsr).toBeNull();
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH + 1);
  });

  test("a follower that has not fetched in this epoch is not proposed", () => {
    const { state } = setup([1, 2], { takeover: 0, highWatermark: 0 });
    expect(state.isrChangeToPropose(10)).toBeNull();
  });
});

describe("replication: leader: AlterPartition", () => {
  /** ISR [1,2], replica 3 caught up: an expand to [1,2,3] is sent at time 10. */
  function pendingExpand() {
    const { log, state } = setup([1, 2]);
    fetch(state, log, 3, 10, 10);
    const sent = state.isrChangeToPropose(10);
    expect(sent).toEqual(request([1, 2, 3]));
    return { log, state, sent: sent! };
  }

  test("one proposal at a time, resent unchanged after the retry interval", () => {
    const { state, sent } = pendingExpand();
    // Follower 2 is now lagging, but the expand is still in flight.
    expect(state.isrChangeToPropose(1_500)).toBeNull();
    expect(state.isrChangeToPropose(10 + ALTER_PARTITION_RETRY_MS - 1)).toBeNull();
    expect(state.isrChangeToPropose(10 + ALTER_PARTITION_RETRY_MS)).toBe(sent);
    expect(state.isrChangeToPropose(10 + 2 * ALTER_PARTITION_RETRY_MS - 1)).toBeNull();
    expect(state.isrChangeToPropose(10 + 2 * ALTER_PARTITION_RETRY_MS)).toBe(sent);
    expect(state.pendingIsr).toEqual([1, 2, 3]);
  });

  test("ok adopts the controller's ISR and partition epoch, and the next change can be proposed", () => {
    const { state, sent } = pendingExpand();
    state.onAlterPartitionResult(sent, {
      ok: true,
      leader: 1,
      leaderEpoch: LEADER_EPOCH,
      partitionEpoch: 9,
      isr: [1, 2, 3],
    });
    expect(state.isr).toEqual([1, 2, 3]);
    expect(state.partitionEpoch).toBe(9);
    expect(state.pendingIsr).toBeNull();
    // Follower 2 stopped fetching long ago; 3 counted as caught up when it could join.
    expect(state.isrChangeToPropose(1_500)).toEqual(request([1, 3], 9));
  });

  test("an ok answer older than what is known, or of another leader epoch, adopts nothing", () => {
    const { state, sent } = pendingExpand();
    state.onAlterPartitionResult(sent, {
      ok: true,
      leader: 1,
      leaderEpoch: LEADER_EPOCH,
      partitionEpoch: PARTITION_EPOCH,
      isr: [1],
    });
    expect(state.isr).toEqual([1, 2]);
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH);
    expect(state.pendingIsr).toBeNull();
    state.onAlterPartitionResult(sent, {
      ok: true,
      leader: 1,
      leaderEpoch: LEADER_EPOCH + 1,
      partitionEpoch: 12,
      isr: [1],
    });
    expect(state.isr).toEqual([1, 2]);
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH);
  });

  test("an error at the request's partition epoch clears the pending change; the next call proposes afresh", () => {
    const { state, sent } = pendingExpand();
    state.onAlterPartitionResult(sent, refused(PARTITION_EPOCH, "ineligibleReplica"));
    expect(state.pendingIsr).toBeNull();
    expect(state.isr).toEqual([1, 2]);
    expect(state.maximalIsr()).toEqual([1, 2]);
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH);
    // Follower 2 is lagging by now: a shrink comes before another expand.
    const next = state.isrChangeToPropose(1_500);
    expect(next).toEqual(request([1]));
    expect(next).not.toBe(sent);
  });

  test("an error at another partition epoch keeps the change pending, unsent, until metadata moves on", () => {
    const { log, state } = setup([1, 2, 3]);
    append(state, log, 20);
    fetch(state, log, 2, 20, 500);
    const shrink = state.isrChangeToPropose(LAG_MS + 1);
    expect(shrink).toEqual(request([1, 2]));
    state.onAlterPartitionResult(shrink!, refused(PARTITION_EPOCH + 1));
    expect(state.pendingIsr).toEqual([1, 2]);
    expect(state.maximalIsr()).toEqual([1, 2, 3]);
    expect(state.isrChangeToPropose(LAG_MS + 1 + 10 * ALTER_PARTITION_RETRY_MS)).toBeNull();
    expect(state.highWatermark).toBe(10);
    // Metadata no newer than what is known changes nothing.
    state.onMetadata(partition([1, 2]));
    expect(state.pendingIsr).toEqual([1, 2]);
    expect(state.isr).toEqual([1, 2, 3]);
    // The controller's newer partition epoch settles it.
    state.onMetadata(partition([1, 2], { partitionEpoch: PARTITION_EPOCH + 1 }));
    expect(state.pendingIsr).toBeNull();
    expect(state.isr).toEqual([1, 2]);
    expect(state.partitionEpoch).toBe(PARTITION_EPOCH + 1);
    expect(state.highWatermark).toBe(20);
    // Follower 2 sits at the end of an idle log: in sync (Kafka's isCaughtUp).
    expect(state.isrChangeToPropose(LAG_MS + 2 + 10 * ALTER_PARTITION_RETRY_MS)).toBeNull();
    // Once the log grows past it and it lags, the next proposal is based on the new partition epoch.
    append(state, log, 25);
    expect(state.isrChangeToPropose(LAG_MS + 2 + 10 * ALTER_PARTITION_RETRY_MS)).toEqual(
      request([1], PARTITION_EPOCH + 1),
    );
  });

  test("an answer to a request that is no longer pending is ignored", () => {
    const { log, state, sent } = pendingExpand();
    state.onAlterPartitionResult(sent, refused(PARTITION_EPOCH));
    const other = request([1, 2, 3]);
    // The same change again only after the retry interval (no proposal storm).
    expect(state.isrChangeToPropose(20)).toBeNull();
    const at = 10 + ALTER_PARTITION_RETRY_MS;
    fetch(state, log, 2, 10, at);
    fetch(state, log, 3, 10, at);
    const again = state.isrChangeToPropose(at)!;
    expect(again).toEqual(other);
    // The first request's late error does not touch the new pending one.
    state.onAlterPartitionResult(sent, refused(PARTITION_EPOCH + 3));
    expect(state.pendingIsr).toEqual([1, 2, 3]);
    expect(state.isrChangeToPropose(at + ALTER_PARTITION_RETRY_MS)).toBe(again);
  });

  test("metadata with a new replica starts tracking it", () => {
    const { log, state } = setup([1, 2]);
    expect(fetch(state, log, 4, 10, 10)).toEqual({ kind: "error", error: "notReplica" });
    state.onMetadata(
      partition([1, 2], { replicas: [1, 2, 3, 4], partitionEpoch: PARTITION_EPOCH + 1 }),
    );
    expect(state.follower(4)).toEqual({
      logEndOffset: -1,
      lastCaughtUpMs: -Infinity,
      lastFetchMs: -Infinity,
      lastFetchLeaderLogEndOffset: -1,
    });
    expect(fetch(state, log, 4, 10, 20)).toEqual({
      kind: "read",
      fromOffset: 10,
      highWatermark: 10,
    });
    expect(state.isrChangeToPropose(20)).toEqual(request([1, 2, 4], PARTITION_EPOCH + 1));
  });

  test("metadata of another leadership is a programmer error", () => {
    const { state } = setup([1, 2]);
    expect(() =>
      state.onMetadata(partition([1, 2], { leaderEpoch: LEADER_EPOCH + 1, partitionEpoch: 9 })),
    ).toThrow(AssertionError);
    expect(() => state.onMetadata(partition([2], { leader: 2, partitionEpoch: 9 }))).toThrow(
      AssertionError,
    );
  });
});

describe("replication: leader: acks=all", () => {
  test("waiting below the high watermark; then committed or not enough replicas against min.insync.replicas", () => {
    const { log, state } = setup([1, 2, 3]);
    append(state, log, 15);
    expect(state.ackStatus(15, 2)).toBe("waiting");
    fetch(state, log, 2, 15, 100);
    expect(state.ackStatus(15, 2)).toBe("waiting");
    // Follower 3 is dead: a shrink to [1,2] is proposed; while pending the maximal ISR is [1,2,3].
    const shrink = state.isrChangeToPropose(LAG_MS + 1)!;
    expect(shrink).toEqual(request([1, 2]));
    expect(state.ackStatus(15, 2)).toBe("waiting");
    state.onAlterPartitionResult(shrink, accepted(shrink, PARTITION_EPOCH + 1));
    expect(state.highWatermark).toBe(15);
    expect(state.ackStatus(15, 2)).toBe("committed");
    expect(state.ackStatus(14, 3)).toBe("notEnoughReplicasAfterAppend");
    // Follower 2 dies too: alone in the ISR, the leader commits by itself, but not for min.insync.replicas 2.
    append(state, log, 16);
    const shrinkAgain = state.isrChangeToPropose(2 * LAG_MS + 200)!;
    expect(shrinkAgain).toEqual(request([1], PARTITION_EPOCH + 1));
    state.onAlterPartitionResult(shrinkAgain, accepted(shrinkAgain, PARTITION_EPOCH + 2));
    append(state, log, 20);
    expect(state.highWatermark).toBe(20);
    expect(state.ackStatus(20, 2)).toBe("notEnoughReplicasAfterAppend");
    expect(state.ackStatus(16, 2)).toBe("notEnoughReplicasAfterAppend");
    expect(state.ackStatus(20, 1)).toBe("committed");
    expect(state.ackStatus(21, 1)).toBe("waiting");
  });

  test("a pending shrink still counts the member being removed toward min.insync.replicas", () => {
    const { log, state } = setup([1, 2]);
    fetch(state, log, 2, 10, 100);
    append(state, log, 12);
    const shrink = state.isrChangeToPropose(LAG_MS + 101)!;
    expect(shrink).toEqual(request([1]));
    expect(state.ackStatus(10, 2)).toBe("committed");
    state.onAlterPartitionResult(shrink, accepted(shrink, PARTITION_EPOCH + 1));
    expect(state.ackStatus(10, 2)).toBe("notEnoughReplicasAfterAppend");
  });
});

describe("replication: leader: replicas and idle logs", () => {
  test("a replica the metadata moved off the partition is refused as notReplica", () => {
    const { log, state } = setup([1, 2, 3]);
    expect(fetch(state, log, 3, 10, 5)).toEqual({
      kind: "read",
      fromOffset: 10,
      highWatermark: 10,
    });
    state.onMetadata(partition([1, 2], { replicas: [1, 2], partitionEpoch: PARTITION_EPOCH + 1 }));
    expect(fetch(state, log, 3, 10, 6)).toEqual({ kind: "error", error: "notReplica" });
    expect(state.follower(3)).toBeUndefined();
  });

  test("a follower at the end of an idle log stays in the ISR; once the log grows past it, it lags out", () => {
    const { log, state } = setup([1, 2]);
    fetch(state, log, 2, 10, 100);
    expect(state.isrChangeToPropose(100 + 10 * LAG_MS)).toBeNull();
    append(state, log, 11);
    expect(state.isrChangeToPropose(100 + 10 * LAG_MS)).toEqual(request([1]));
  });

  test("a follower that joins the ISR is not dropped by its first lag check", () => {
    const { log, state } = setup([1, 2]);
    append(state, log, 20);
    fetch(state, log, 2, 12, 100);
    // Follower 3's first fetch is behind the log end but reaches the high watermark (12).
    fetch(state, log, 3, 15, 100);
    const expand = state.isrChangeToPropose(100)!;
    expect(expand).toEqual(request([1, 2, 3]));
    state.onAlterPartitionResult(expand, accepted(expand, PARTITION_EPOCH + 1));
    expect(state.isrChangeToPropose(110)).toBeNull();
  });
});

describe("replication: leader: ISR eligibility", () => {
  test("a caught-up follower whose broker is not eligible (fenced) is not proposed", () => {
    const eligible = new Set([2]);
    const log = leaderLog(10);
    const state = new LeaderState({
      nodeId: LEADER,
      topicId: TOPIC_ID,
      partition: partition([1]),
      logEndOffset: 10,
      highWatermark: 10,
      nowMs: 0,
      lagTimeMaxMs: LAG_MS,
      isEligible: (id) => eligible.has(id),
    });
    fetch(state, log, 3, 10, 100);
    expect(state.isrChangeToPropose(100)).toBeNull();
    eligible.add(3);
    expect(state.isrChangeToPropose(100)).toEqual(request([1, 3]));
  });

  test("a follower whose broker registered anew must fetch again before it is proposed", () => {
    const { log, state } = setup([1]);
    fetch(state, log, 2, 10, 100);
    state.resetFollower(2);
    expect(state.follower(2)!.logEndOffset).toBe(-1);
    expect(state.isrChangeToPropose(100)).toBeNull();
    fetch(state, log, 2, 10, 200);
    expect(state.isrChangeToPropose(200)).toEqual(request([1, 2]));
  });

  test("after a refusal on the same partition epoch the same proposal waits ALTER_PARTITION_RETRY_MS", () => {
    const { log, state } = setup([1]);
    fetch(state, log, 2, 10, 100);
    const first = state.isrChangeToPropose(100)!;
    state.onAlterPartitionResult(first, refused(PARTITION_EPOCH, "ineligibleReplica"));
    expect(state.pendingIsr).toBeNull();
    expect(state.isrChangeToPropose(200)).toBeNull();
    expect(state.isrChangeToPropose(100 + ALTER_PARTITION_RETRY_MS)).toEqual(request([1, 2]));
  });
});
