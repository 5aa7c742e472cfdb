/**
 * Offsets retention (offsets.retention.minutes, KIP-211) on a ManualClock: when the
 * commits of a group without members expire, and how LogOffsetStore writes them away as
 * tombstones of __consumer_offsets.
 */
import { TopicTwin as SharedTopicTwin } from "./test-helpers.ts";
import { describe, expect, test } from "bun:test";
import { decodeRecords } from "../protocol/records.ts";
import { ManualClock } from "../util/clock.ts";
import { LogOffsetStore, type OffsetsTopic } from "./log-offset-store.ts";
import { offsetValue, parseOffsetRecord } from "./offset-records.ts";
import { MemoryOffsetStore, type OffsetCommitEntry, OffsetRetention } from "./offset-store.ts";

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

function entry(
  topic: string,
  partition: number,
  offset: number,
  commitTimestampMs: number,
  expireTimestampMs: number | null = null,
): OffsetCommitEntry {
  return {
    topic,
    partition,
    offset,
    leaderEpoch: -1,
    metadata: "",
    commitTimestampMs,
    expireTimestampMs,
  };
}

/** The shared topic twin, with the records it holds decoded. */
class TopicTwin extends SharedTopicTwin {
  records() {
    return this.partitions
      .flat()
      .flatMap((batch) => decodeRecords(batch)!.map((r) => parseOffsetRecord(r.key, r.value)));
  }
}

describe("coordinator: offsets retention", () => {
  const retentionMs = 10 * MINUTE;

  test("a group Empty for the retention loses its offsets; one with members keeps them", () => {
    const store = new MemoryOffsetStore();
    store.commit("idle", [entry("t", 0, 5, T0), entry("t", 1, 6, T0)]);
    store.commit("busy", [entry("t", 0, 9, T0)]);
    const retention = new OffsetRetention({ retentionMs, checkIntervalMs: MINUTE });
    const members = new Set(["busy"]);
    const hasMembers = (group: string) => members.has(group);
    expect(retention.check(store, hasMembers, T0)).toEqual([]);
    expect(retention.emptySinceMs("idle")).toBe(T0);
    expect(retention.emptySinceMs("busy")).toBeNull();
    expect(retention.check(store, hasMembers, T0 + retentionMs - 1)).toEqual([]);
    const due = retention.check(store, hasMembers, T0 + retentionMs + MINUTE);
    expect(due).toEqual([{ groupId: "idle", entries: store.list("idle") }]);
  });

  test("the clock starts when the group was last seen Empty, and at the last commit", () => {
    const store = new MemoryOffsetStore();
    store.commit("g", [entry("t", 0, 5, T0), entry("t", 1, 6, T0 + 5 * MINUTE)]);
    const retention = new OffsetRetention({ retentionMs, checkIntervalMs: 1 });
    let active = true;
    const hasMembers = () => active;
    retention.check(store, hasMembers, T0);
    active = false;
    retention.check(store, hasMembers, T0 + 2 * MINUTE); // Empty from here on.
    active = true;
    retention.check(store, hasMembers, T0 + 3 * MINUTE); // Members again: the clock stops.
    active = false;
    retention.check(store, hasMembers, T0 + 4 * MINUTE); // Empty again.
    expect(retention.check(store, hasMembers, T0 + 14 * MINUTE - 1)).toEqual([]);
    // Partition 0 is due 10 minutes after the group became Empty; partition 1 was
    // committed later, so it waits 10 minutes from its commit.
    expect(
      retention.check(store, hasMembers, T0 + 14 * MINUTE)[0]!.entries.map((e) => e.partition),
    ).toEqual([0]);
    expect(
      retention.check(store, hasMembers, T0 + 15 * MINUTE)[0]!.entries.map((e) => e.partition),
    ).toEqual([0, 1]);
  });

  test("an explicit expire timestamp (OffsetCommit v2-v4) decides for an Empty group", () => {
    const store = new MemoryOffsetStore();
    store.commit("g", [entry("t", 0, 5, T0, T0 + MINUTE), entry("t", 1, 6, T0, T0 + 100 * MINUTE)]);
    const retention = new OffsetRetention({ retentionMs, checkIntervalMs: 1 });
    let active = true;
    expect(retention.check(store, () => active, T0 + 2 * MINUTE)).toEqual([]);
    active = false;
    expect(
      retention.check(store, () => active, T0 + 3 * MINUTE)[0]!.entries.map((e) => e.partition),
    ).toEqual([0]);
    // Partition 1 ignores the broker's retention: it expires at its own time.
    expect(
      retention.check(store, () => active, T0 + 99 * MINUTE)[0]!.entries.map((e) => e.partition),
    ).toEqual([0]);
    expect(
      retention.check(store, () => active, T0 + 100 * MINUTE)[0]!.entries.map((e) => e.partition),
    ).toEqual([0, 1]);
  });

  test("scans at most once per check interval, and forgets groups that have no offsets", () => {
    const store = new MemoryOffsetStore();
    store.commit("g", [entry("t", 0, 5, T0)]);
    const retention = new OffsetRetention({ retentionMs, checkIntervalMs: 5 * MINUTE });
    expect(retention.check(store, () => false, T0)).toEqual([]);
    expect(retention.check(store, () => false, T0 + retentionMs)).toHaveLength(1);
    expect(retention.check(store, () => false, T0 + retentionMs + MINUTE)).toEqual([]);
    expect(retention.check(store, () => false, T0 + retentionMs + 5 * MINUTE)).toHaveLength(1);
    store.deleteGroup("g");
    retention.check(store, () => false, T0 + retentionMs + 10 * MINUTE);
    expect(retention.emptySinceMs("g")).toBeNull();
  });
});

describe("coordinator: log offset store: expiry", () => {
  test("expired commits become tombstones; a new store over the topic does not have them", async () => {
    const topic = new TopicTwin();
    const store = new LogOffsetStore(topic, new ManualClock(T0));
    await store.commit("g", [entry("t", 0, 5, T0), entry("t", 1, 6, T0)]);
    expect(await store.expire("g", [entry("t", 0, 5, T0)])).toBe(1);
    expect(store.fetch("g", "t", 0)).toBeUndefined();
    expect(store.fetch("g", "t", 1)?.offset).toBe(6);
    expect(topic.records().at(-1)).toEqual({
      kind: "delete",
      groupId: "g",
      partition: { topic: "t", partition: 0 },
    });
    const reloaded = new LogOffsetStore(topic, new ManualClock(T0));
    expect(reloaded.list("g")).toEqual([entry("t", 1, 6, T0)]);
  });

  test("a commit that changed, or is in flight, is not expired", async () => {
    const topic = new TopicTwin();
    const store = new LogOffsetStore(topic, new ManualClock(T0));
    await store.commit("g", [entry("t", 0, 5, T0)]);
    // Planned on the old commit, run after a newer one.
    await store.commit("g", [entry("t", 0, 7, T0 + 1)]);
    expect(await store.expire("g", [entry("t", 0, 5, T0)])).toBe(0);
    expect(store.fetch("g", "t", 0)?.offset).toBe(7);
    // A commit in flight when the expiry runs.
    const inFlight = store.commit("g", [entry("t", 0, 8, T0 + 2)]);
    expect(await store.expire("g", [entry("t", 0, 7, T0 + 1)])).toBe(0);
    await inFlight;
    expect(store.fetch("g", "t", 0)?.offset).toBe(8);
    // A commit issued while the tombstones are written lands after them and stays.
    const expiry = store.expire("g", [entry("t", 0, 8, T0 + 2)]);
    const later = store.commit("g", [entry("t", 0, 9, T0 + 3)]);
    await Promise.all([expiry, later]);
    expect(store.fetch("g", "t", 0)?.offset).toBe(9);
    expect(new LogOffsetStore(topic, new ManualClock(T0)).fetch("g", "t", 0)?.offset).toBe(9);
  });

  test("a commit with an explicit expire timestamp keeps it across a reload (value version 1)", async () => {
    const topic = new TopicTwin();
    const store = new LogOffsetStore(topic, new ManualClock(T0));
    const expiring = { ...entry("t", 0, 5, T0, T0 + MINUTE), metadata: "m" };
    await store.commit("g", [expiring]);
    expect(offsetValue(expiring).readInt16BE(0)).toBe(1);
    expect(new LogOffsetStore(topic, new ManualClock(T0)).list("g")).toEqual([expiring]);
  });
});
