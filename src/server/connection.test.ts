/**
 * Turns: a connection that pipelines many large requests hands the event loop to the
 * other connections every TURN_BYTES_MAX of requests, and its own requests stay in order.
 * Driven through fake sockets, so the interleaving is exact.
 */
import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { encode } from "../protocol/codec.ts";
import { MetadataRequest, MetadataResponse } from "../protocol/generated/index.ts";
import { RequestHeader } from "../protocol/generated/request-header.ts";
import { requestHeaderVersion } from "../protocol/headers.ts";
import { Writer } from "../protocol/writer.ts";
import { Connection, TURN_BYTES_MAX } from "./connection.ts";
import { defineHandler, type RequestContext } from "./handler.ts";
import { HandlerRegistry } from "./registry.ts";

const METADATA_VERSION = 9;

/** What Connection uses of a socket; writes are kept. */
class FakeSocket extends EventEmitter {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 1;
  destroyed = false;
  writableLength = 0;
  paused = false;
  readonly written: Uint8Array[] = [];
  setNoDelay(): void {}
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  write(data: Uint8Array): boolean {
    this.written.push(data);
    return true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

/** A Metadata request frame of about `bytes` (topic names make it large). */
function metadataFrame(correlationId: number, bytes: number): Buffer {
  const writer = new Writer();
  writer.int32(0);
  const header = {
    requestApiKey: 3,
    requestApiVersion: METADATA_VERSION,
    correlationId,
    clientId: "t",
  };
  encode(RequestHeader, requestHeaderVersion(MetadataRequest, METADATA_VERSION), header, writer);
  const name = "n".repeat(200);
  const topics = Array.from({ length: Math.ceil(bytes / 202) }, () => ({ name }));
  encode(
    MetadataRequest,
    METADATA_VERSION,
    { topics, allowAutoTopicCreation: false } as never,
    writer,
  );
  const frame = writer.toBuffer();
  frame.writeInt32BE(frame.length - 4, 0);
  return frame;
}

const EMPTY_METADATA = {
  throttleTimeMs: 0,
  brokers: [],
  clusterId: null,
  controllerId: -1,
  topics: [],
};

/** A registry whose Metadata handler is `handle`. */
function metadataRegistry(
  handle: (context: RequestContext) => typeof EMPTY_METADATA | Promise<typeof EMPTY_METADATA>,
): HandlerRegistry {
  const registry = new HandlerRegistry();
  registry.register(
    defineHandler({
      request: MetadataRequest,
      response: MetadataResponse,
      versions: [0, 12],
      handle: (_request, context) => handle(context),
    }),
  );
  return registry;
}

test("connection: a pipelining connection yields every TURN_BYTES_MAX; each keeps its order", async () => {
  const handled: string[] = [];
  const registry = metadataRegistry((context) => {
    handled.push(`${context.connectionId === big.id ? "big" : "small"}${context.correlationId}`);
    return EMPTY_METADATA;
  });
  const options = { frameBytesMax: 8 << 20, registry, onClose: () => {} };
  const bigSocket = new FakeSocket();
  const smallSocket = new FakeSocket();
  const big = new Connection(bigSocket as unknown as Socket, options);
  new Connection(smallSocket as unknown as Socket, options);
  const frameBytes = TURN_BYTES_MAX / 2 + 1000;
  // Six large requests arrive in one chunk, then one small request on the other socket.
  bigSocket.emit(
    "data",
    Buffer.concat([1, 2, 3, 4, 5, 6].map((id) => metadataFrame(id, frameBytes))),
  );
  expect(bigSocket.paused).toBe(true);
  smallSocket.emit("data", metadataFrame(1, 100));
  // Two large ones make a turn; the small one did not wait for the other four.
  expect(handled).toEqual(["big1", "big2", "small1"]);
  while (handled.length < 7) await new Promise((resolve) => setImmediate(resolve));
  expect(handled).toEqual(["big1", "big2", "small1", "big3", "big4", "big5", "big6"]);
  expect(bigSocket.paused).toBe(false);
  // Every request was answered, in order on its own connection.
  expect(bigSocket.written.length).toBeGreaterThan(0);
  const correlationIds = bigSocket.written
    .map((chunk) => Buffer.from(chunk))
    .reduce((all, chunk) => Buffer.concat([all, chunk]), Buffer.alloc(0));
  const ids: number[] = [];
  for (let at = 0; at < correlationIds.length;) {
    ids.push(correlationIds.readInt32BE(at + 4));
    at += 4 + correlationIds.readInt32BE(at);
  }
  expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
});

/** The correlation ids of the response frames in `written`, in order. */
function responseIds(written: Uint8Array[]): number[] {
  const bytes = Buffer.concat(written.map((chunk) => Buffer.from(chunk)));
  const ids: number[] = [];
  for (let at = 0; at < bytes.length; at += 4 + bytes.readInt32BE(at)) {
    ids.push(bytes.readInt32BE(at + 4));
  }
  return ids;
}

test("connection: the answers of one turn leave in one write, ready at once or after microtasks", async () => {
  const late = new Map<number, () => void>();
  const registry = metadataRegistry((context) => {
    const id = context.correlationId;
    if (id <= 20) return EMPTY_METADATA; // at once
    if (id <= 40) return Promise.resolve(EMPTY_METADATA); // after a few microtasks
    return new Promise((resolve) => late.set(id, () => resolve(EMPTY_METADATA))); // a long poll
  });
  const socket = new FakeSocket();
  new Connection(socket as unknown as Socket, {
    frameBytesMax: 1 << 20,
    registry,
    onClose: () => {},
  });
  const frames = (from: number, to: number) =>
    Buffer.concat(Array.from({ length: to - from + 1 }, (_, i) => metadataFrame(from + i, 10)));

  socket.emit("data", frames(1, 20));
  expect(socket.written.length).toBe(1);
  expect(responseIds(socket.written)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));

  socket.emit("data", frames(21, 40));
  expect(socket.written.length).toBe(1); // not before the microtasks ran
  await Promise.resolve().then(() => new Promise((resolve) => setImmediate(resolve)));
  expect(socket.written.length).toBe(2);
  expect(responseIds(socket.written.slice(1))).toEqual(
    Array.from({ length: 20 }, (_, i) => i + 21),
  );

  // A request that waits holds back the ones behind it; they leave together with it.
  socket.emit("data", frames(41, 43));
  await new Promise((resolve) => setImmediate(resolve));
  expect(socket.written.length).toBe(2);
  late.get(43)!();
  late.get(42)!();
  await new Promise((resolve) => setImmediate(resolve));
  expect(socket.written.length).toBe(2);
  late.get(41)!();
  await new Promise((resolve) => setImmediate(resolve));
  expect(socket.written.length).toBe(3);
  expect(responseIds(socket.written.slice(2))).toEqual([41, 42, 43]);
});
