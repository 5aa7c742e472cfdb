import { afterEach, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { STREAM_TAG_RAFT, STREAM_TAG_SWIM, StreamListener } from "./stream-listener.ts";
import type { Timers } from "./timers.ts";

const timers: Timers = {
  after(ms, run) {
    const timer = setTimeout(run, ms);
    return () => clearTimeout(timer);
  },
};

const listeners: StreamListener[] = [];
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((listener) => listener.close()));
});

async function listening(firstByteTimeoutMs?: number): Promise<StreamListener> {
  const listener = new StreamListener({ host: "127.0.0.1", port: 0, timers, firstByteTimeoutMs });
  await listener.listen();
  listeners.push(listener);
  return listener;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
    socket.once("error", reject);
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.once("close", () => resolve()));
}

test("swim: stream listener: dispatches by first byte, with the rest of the first chunk", async () => {
  const listener = await listening();
  const raft: string[] = [];
  listener.register(STREAM_TAG_RAFT, (socket, rest) => {
    raft.push(rest.toString());
    socket.on("data", (chunk: Buffer) => {
      raft.push(chunk.toString());
      socket.end("ok");
    });
  });
  listener.register(STREAM_TAG_SWIM, (socket) => socket.end("swim"));
  expect(() => listener.register(STREAM_TAG_RAFT, () => {})).toThrow("already registered");

  const socket = await dial(listener.port);
  const answer = new Promise<string>((resolve) =>
    socket.on("data", (chunk: Buffer) => resolve(chunk.toString())),
  );
  socket.write(Buffer.concat([Buffer.of(STREAM_TAG_RAFT), Buffer.from("hello")]));
  await new Promise((resolve) => setTimeout(resolve, 20)); // Let the first chunk arrive alone.
  socket.write("again");
  expect(await answer).toBe("ok");
  expect(raft).toEqual(["hello", "again"]);
  socket.destroy();
});

test("swim: stream listener: an unknown tag, or silence, gets the connection closed", async () => {
  const listener = await listening(100);
  listener.register(STREAM_TAG_SWIM, () => {});
  const unknown = await dial(listener.port);
  const unknownClosed = closed(unknown);
  unknown.write(Buffer.of(0x00, 1, 2, 3));
  await unknownClosed;
  const silent = await dial(listener.port);
  await closed(silent); // After the 100 ms first-byte timeout.
});

test("swim: stream listener: close destroys connections a handler still holds", async () => {
  const listener = await listening();
  let held = false;
  listener.register(STREAM_TAG_RAFT, () => {
    held = true; // Keeps the socket open.
  });
  const socket = await dial(listener.port);
  socket.write(Buffer.of(STREAM_TAG_RAFT));
  while (!held) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(listener.connectionCount()).toBe(1);
  const socketClosed = closed(socket);
  await listener.close();
  await socketClosed;
  expect(listener.connectionCount()).toBe(0);
});
