import { expect, test } from "bun:test";
import { ManualClock } from "../util/clock.ts";
import { LogOffsetStore } from "./log-offset-store.ts";
import { parseOffsetRecord, partitionForGroup } from "./offset-records.ts";
import { offsetStoreContract } from "./offset-store.contract.ts";
import { decodeRecords } from "../protocol/records.ts";
import { TopicTwin } from "./test-helpers.ts";

offsetStoreContract("log-backed", () => new LogOffsetStore(new TopicTwin(), new ManualClock()));

const entry = (topic: string, partition: number, offset: number) => ({
  topic,
  partition,
  offset,
  leaderEpoch: 2,
  metadata: "meta",
  commitTimestampMs: 1234,
  expireTimestampMs: null,
});

test("coordinator: log offset store: a new store over the same topic has every commit and deletion", async () => {
  const topic = new TopicTwin();
  const store = new LogOffsetStore(topic, new ManualClock());
  await store.commit("group-a", [entry("t", 0, 10), entry("t", 1, 20)]);
  await store.commit("group-b", [entry("u", 3, 7)]);
  await store.commit("group-a", [entry("t", 0, 15)]);
  await store.delete("group-a", [{ topic: "t", partition: 1 }]);
  await store.commit("group-c", [entry("v", 0, 1)]);
  await store.deleteGroup("group-c");
  const reloaded = new LogOffsetStore(topic, new ManualClock());
  expect(reloaded.list("group-a")).toEqual([entry("t", 0, 15)]);
  expect(reloaded.list("group-b")).toEqual([entry("u", 3, 7)]);
  expect(reloaded.hasGroup("group-c")).toBe(false);
});

test("coordinator: log offset store: one commit request is one batch in the group's partition", async () => {
  const topic = new TopicTwin();
  const store = new LogOffsetStore(topic, new ManualClock());
  await store.commit("orders-app", [entry("t", 0, 1), entry("t", 1, 2), entry("t", 2, 3)]);
  const partition = partitionForGroup("orders-app", 5);
  expect(topic.partitions[partition]).toHaveLength(1);
  const records = decodeRecords(topic.partitions[partition]![0]!)!;
  expect(records.map((r) => parseOffsetRecord(r.key, r.value))).toEqual(
    [0, 1, 2].map((p) => ({
      kind: "commit",
      groupId: "orders-app",
      entry: entry("t", p, p + 1),
    })),
  );
});

test("coordinator: log offset store: a failed append leaves the view unchanged", async () => {
  const topic = new TopicTwin();
  const store = new LogOffsetStore(topic, new ManualClock());
  await store.commit("g", [entry("t", 0, 5)]);
  topic.failing = true;
  await expect(store.commit("g", [entry("t", 0, 9)])).rejects.toThrow("Disk on fire");
  expect(store.fetch("g", "t", 0)?.offset).toBe(5);
});

test("coordinator: offset records: partition of a group follows Java's String.hashCode", () => {
  // "hello".hashCode() = 99162322; Utils.abs(...) % 50 = 22. Non-ASCII hashes UTF-16 units.
  expect(partitionForGroup("hello", 50)).toBe(99162322 % 50);
  expect(partitionForGroup("", 50)).toBe(0);
  // "é".hashCode() = 233.
  expect(partitionForGroup("é", 50)).toBe(233 % 50);
});

test("coordinator: log offset store: a partition is read when this node comes to lead it and forgotten when it stops", async () => {
  const topic = new TopicTwin();
  // Another node led meanwhile: its commits are in the log, not in this store's view.
  const other = new LogOffsetStore(topic, new ManualClock());
  const groupA = "group-a";
  const groupB = ["group-b", "group-c", "group-d", "group-e"].find(
    (g) => partitionForGroup(g, 5) !== partitionForGroup(groupA, 5),
  )!;
  const store = new LogOffsetStore(topic, new ManualClock(), { loadAtStart: false });
  await other.commit(groupA, [entry("t", 0, 10)]);
  await other.commit(groupB, [entry("t", 1, 20)]);
  expect(store.hasGroup(groupA)).toBe(false);

  const loaded = store.loadPartition(partitionForGroup(groupA, 5));
  expect(loaded.groupIds).toEqual([groupA]);
  expect(store.fetch(groupA, "t", 0)?.offset).toBe(10);
  expect(store.hasGroup(groupB)).toBe(false); // its partition is not led here

  // Newer commits by the other leader replace what this store knew, not add to it.
  await other.commit(groupA, [entry("t", 0, 11)]);
  await other.deleteGroup(groupA);
  await other.commit(groupA, [entry("t", 5, 1)]);
  store.loadPartition(partitionForGroup(groupA, 5));
  expect(store.list(groupA)).toEqual([entry("t", 5, 1)]);

  expect(store.unloadPartition(partitionForGroup(groupA, 5))).toEqual([groupA]);
  expect(store.hasGroup(groupA)).toBe(false);
});
