/**
 * The contract every OffsetStore meets, run by each implementation's test file
 * (docs/conventions.md, section 7: one contract suite per interface).
 */
import { describe, expect, test } from "bun:test";
import type { OffsetCommitEntry, OffsetStore } from "./offset-store.ts";

function entry(topic: string, partition: number, offset: number): OffsetCommitEntry {
  return {
    topic,
    partition,
    offset,
    leaderEpoch: 3,
    metadata: "m",
    commitTimestampMs: 1000,
    expireTimestampMs: null,
  };
}

export function offsetStoreContract(name: string, make: () => OffsetStore): void {
  describe(`coordinator: offset store contract: ${name}`, () => {
    test("a commit is fetched back; unknown partitions and groups are undefined", async () => {
      const store = make();
      await store.commit("g", [entry("t", 0, 5), entry("t", 1, 7)]);
      expect(store.fetch("g", "t", 0)).toMatchObject({ offset: 5, leaderEpoch: 3, metadata: "m" });
      expect(store.fetch("g", "t", 1)?.offset).toBe(7);
      expect(store.fetch("g", "t", 2)).toBeUndefined();
      expect(store.fetch("other", "t", 0)).toBeUndefined();
      expect(store.hasGroup("g")).toBe(true);
      expect(store.hasGroup("other")).toBe(false);
    });

    test("a later commit replaces the earlier one", async () => {
      const store = make();
      await store.commit("g", [entry("t", 0, 5)]);
      await store.commit("g", [entry("t", 0, 3)]);
      expect(store.fetch("g", "t", 0)?.offset).toBe(3);
    });

    test("list is sorted by topic then partition", async () => {
      const store = make();
      await store.commit("g", [entry("b", 1, 1), entry("a", 10, 2), entry("a", 2, 3)]);
      const listed = store.list("g").map((e) => `${e.topic}-${e.partition}`);
      expect(listed).toEqual(["a-2", "a-10", "b-1"]);
      expect(store.list("none")).toEqual([]);
    });

    test("delete removes partitions, deleteGroup the whole group", async () => {
      const store = make();
      await store.commit("g", [entry("t", 0, 1), entry("t", 1, 2), entry("u", 0, 3)]);
      const partitions = [
        { topic: "t", partition: 0 },
        { topic: "x", partition: 0 },
      ];
      expect(await store.delete("g", partitions)).toBe(1);
      expect(store.fetch("g", "t", 0)).toBeUndefined();
      expect(await store.deleteGroup("g")).toBe(2);
      expect(store.hasGroup("g")).toBe(false);
      expect(await store.deleteGroup("g")).toBe(0);
    });

    test("deleting the last partition forgets the group", async () => {
      const store = make();
      await store.commit("g", [entry("t", 0, 1)]);
      await store.delete("g", [{ topic: "t", partition: 0 }]);
      expect(store.hasGroup("g")).toBe(false);
    });
  });
}
