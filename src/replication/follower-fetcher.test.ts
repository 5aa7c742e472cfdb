/**
 * The follower fetcher's loop against a fake leader on loopback, with timers that never
 * fire on their own: a loop backing off after the leader refused one partition (a topic
 * being deleted, which the leader forgot first) asks again at once when a leadership
 * moves to that leader, instead of holding the new partition for the whole backoff.
 */
import { afterEach, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import type { Server } from "node:net";
import { framePeer } from "../client/test-peer.ts";
import type { MetadataImage } from "../cluster/metadata-image.ts";
import { decode } from "../protocol/codec.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { FetchRequest, FetchResponse } from "../protocol/generated/index.ts";
import {
  decodeRequestHeader,
  encodeResponseFrame,
  requestHeaderVersion,
} from "../protocol/headers.ts";
import { Reader } from "../protocol/reader.ts";
import type { Timers } from "../util/timers.ts";
import { FollowerFetcher } from "./follower-fetcher.ts";
import type { FollowerRequest } from "./follower-state.ts";
import type { FollowedPartition, ReplicaManager } from "./replica-manager.ts";

const FETCH = 1;
const LEADER = 7;
let server: Server | null = null;
let fetcher: FollowerFetcher | null = null;

afterEach(async () => {
  await fetcher?.close();
  server?.close();
  fetcher = null;
  server = null;
});

/** A leader that answers every Fetch at once: `gone` refused, anything else empty. */
async function fakeLeader(gone: string, asked: string[][]): Promise<number> {
  const started = await framePeer((socket, frame) => {
    const reader = new Reader(frame);
    const apiKey = frame.readInt16BE(0);
    const version = frame.readInt16BE(2);
    expect(apiKey).toBe(FETCH);
    const header = decodeRequestHeader(reader, requestHeaderVersion(FetchRequest, version));
    const request = decode(FetchRequest, version, reader);
    const keys = request.topics.flatMap((t) =>
      t.partitions.map((p) => `${t.topic}-${p.partition}`),
    );
    asked.push(keys);
    const responses = request.topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partition,
        errorCode:
          `${t.topic}-${p.partition}` === gone
            ? ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            : ErrorCode.NONE,
        highWatermark: 0,
        lastStableOffset: 0,
        logStartOffset: 0,
        abortedTransactions: null,
        preferredReadReplica: -1,
        records: null,
      })),
    }));
    const chunks = encodeResponseFrame(FETCH, version, header.correlationId, FetchResponse, {
      throttleTimeMs: 0,
      errorCode: 0,
      sessionId: 0,
      responses,
    } as never);
    socket.write(Buffer.concat(chunks as Uint8Array[]));
  });
  server = started.server;
  return started.port;
}

function partition(topic: string): FollowedPartition {
  return {
    key: `${topic}-0`,
    topic,
    topicId: topic,
    partition: 0,
    leaderId: LEADER,
    leaderEpoch: 1,
  };
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  const until = performance.now() + 5000;
  while (!check()) {
    if (performance.now() > until) throw new Error(`Never happened: ${what}`);
    await Bun.sleep(5);
  }
}

test("fetcher: a backoff after a refused partition ends when a leadership moves to that leader", async () => {
  const asked: string[][] = [];
  const port = await fakeLeader("deleted-0", asked);
  let followed = [partition("deleted")];
  const replicas = {
    followed: () => followed,
    followerRequest: (): FollowerRequest => ({
      kind: "fetch",
      currentLeaderEpoch: 1,
      fetchOffset: 0,
      lastFetchedEpoch: -1,
    }),
    onFetched: () => {},
    onDiverging: () => {},
    onEpochEndOffset: () => {},
  } as unknown as ReplicaManager;
  const image = {
    broker: (id: number) =>
      id === LEADER ? { nodeId: id, host: "127.0.0.1", port, fenced: false } : undefined,
  } as unknown as MetadataImage;
  // Timers that never fire: a loop that backs off stays asleep unless woken.
  const sleeping: number[] = [];
  const timers: Timers = {
    after: (ms) => {
      sleeping.push(ms);
      return () => {};
    },
  } as Timers;
  fetcher = new FollowerFetcher({ nodeId: 2, image, replicas, timers });
  fetcher.refresh();
  await eventually(() => sleeping.length > 0, "the loop backs off after the refusal");
  expect(asked).toEqual([["deleted-0"]]);
  expect(sleeping).toEqual([200]);

  followed = [partition("deleted"), partition("moved")];
  fetcher.refresh();
  await eventually(() => asked.length === 2, "a Fetch with the partition that moved");
  expect(asked[1]).toEqual(["deleted-0", "moved-0"]);
});
