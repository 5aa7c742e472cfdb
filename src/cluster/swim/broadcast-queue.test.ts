import { expect, test } from "bun:test";
import { BroadcastQueue, retransmitLimit } from "./broadcast-queue.ts";
import { messageBytes } from "./codec.ts";
import type { GossipMessage } from "./messages.ts";

const suspect = (nodeId: number, incarnation: number): GossipMessage => ({
  type: "suspect",
  nodeId,
  incarnation,
  from: 1,
});

test("swim: broadcast queue: retransmit limit is mult * ceil(log10(n + 1))", () => {
  expect(retransmitLimit(4, 1)).toBe(4);
  expect(retransmitLimit(4, 9)).toBe(4);
  expect(retransmitLimit(4, 10)).toBe(8);
  expect(retransmitLimit(4, 99)).toBe(8);
  expect(retransmitLimit(4, 100)).toBe(12);
});

test("swim: broadcast queue: each update is sent at most the limit, then dropped", () => {
  const queue = new BroadcastQueue(2); // Limit 2 for up to 9 members.
  queue.enqueue(suspect(5, 0));
  expect(queue.take(1_000, 3, 255)).toEqual([suspect(5, 0)]);
  expect(queue.take(1_000, 3, 255)).toEqual([suspect(5, 0)]);
  expect(queue.take(1_000, 3, 255)).toEqual([]);
  expect(queue.size).toBe(0);
});

test("swim: broadcast queue: a newer update about a member replaces the queued one", () => {
  const queue = new BroadcastQueue(4);
  queue.enqueue(suspect(5, 0));
  queue.enqueue({
    type: "alive",
    nodeId: 5,
    incarnation: 1,
    gossip: { host: "h", port: 1 },
    kafka: { host: "h", port: 2 },
    admin: { host: "h", port: 3 },
  });
  expect(queue.size).toBe(1);
  expect(queue.about(5)?.type).toBe("alive");
});

test("swim: broadcast queue: least-sent first, newest first among equals, within the byte budget", () => {
  const queue = new BroadcastQueue(4);
  queue.enqueue(suspect(1, 0));
  queue.enqueue(suspect(2, 0));
  expect(queue.take(messageBytes(suspect(1, 0)), 3, 255)).toEqual([suspect(2, 0)]);
  queue.enqueue(suspect(3, 0));
  expect(queue.take(1_000, 3, 255)).toEqual([suspect(3, 0), suspect(1, 0), suspect(2, 0)]);
  expect(queue.take(1_000, 3, 1)).toHaveLength(1);
  expect(queue.take(0, 3, 255)).toEqual([]);
});
