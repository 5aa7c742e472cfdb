import { expect, test } from "bun:test";
import { offsetStoreContract } from "./offset-store.contract.ts";
import { MemoryOffsetStore } from "./offset-store.ts";

offsetStoreContract("memory", () => new MemoryOffsetStore());

test("coordinator: memory offset store: a stored commit is a copy", () => {
  const store = new MemoryOffsetStore();
  const committed = {
    topic: "t",
    partition: 0,
    offset: 1,
    leaderEpoch: -1,
    metadata: "",
    commitTimestampMs: 0,
    expireTimestampMs: null,
  };
  store.commit("g", [committed]);
  committed.offset = 99;
  expect(store.fetch("g", "t", 0)?.offset).toBe(1);
});
