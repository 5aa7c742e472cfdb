import { afterEach, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { FileSlice } from "../storage/file-slice.ts";
import { DEFAULT_LOG_CONFIG } from "../storage/log-config.ts";
import { PartitionLog } from "../storage/partition-log.ts";
import { makeBatch, makeTempDir, removeDir, T0 } from "../storage/test-support.ts";
import { ManualClock } from "../util/clock.ts";
import { Outbound } from "./outbound.ts";
import { sendFile, socketDescriptor } from "./sendfile.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

test("server: sendfile is available on Linux under Bun", () => {
  expect(sendFile).not.toBeNull();
});

test("server: a slice of large batches reaches a real socket byte for byte, mostly by sendfile, with small writes before and after it", async () => {
  const dir = makeTempDir("sendfile");
  cleanups.push(() => removeDir(dir));
  const log = PartitionLog.open({
    dir: join(dir, "topic-0"),
    config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 4 * 1024 * 1024 },
    clock: new ManualClock(T0),
  });
  cleanups.push(() => log.close());
  for (let i = 0; i < 400; i++)
    expect(log.append(makeBatch({ count: 60, valueBytes: 1000 }), { leaderEpoch: 0 }).ok).toBe(
      true,
    );
  const whole = log.read(0, 1 << 30, { minOneBatch: true });
  const deferred = log.readDeferred(0, 1 << 30, { minOneBatch: true, deferFromBytes: 1 });
  if (!whole.ok || !deferred.ok || !(deferred.records instanceof FileSlice))
    throw new Error("Expected a slice");

  // A loopback pair: the server side writes through Outbound, the client only reads.
  let accepted!: Socket;
  const server: Server = createServer((socket) => (accepted = socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  cleanups.push(() => server.close());
  const client = connect({ port: (server.address() as { port: number }).port, host: "127.0.0.1" });
  cleanups.push(() => client.destroy());
  await new Promise<void>((resolve) => client.once("connect", () => resolve()));
  while (accepted === undefined) await Bun.sleep(1);
  cleanups.push(() => accepted.destroy());

  const socketFd = socketDescriptor(accepted);
  expect(socketFd).not.toBeNull();
  let bySendfile = 0;
  const outbound = new Outbound(
    accepted,
    {
      onBroken: (error) => {
        throw error;
      },
    },
    {
      socketFd: socketFd!,
      sendFile: (out, file, position, count) => {
        const sent = sendFile!(out, file, position, count);
        bySendfile += sent;
        return sent;
      },
    },
  );
  const head = Buffer.from("head:");
  const tail = Buffer.from(":tail");
  const expected = Buffer.concat([head, Buffer.from(whole.records), tail]);
  const received: Buffer[] = [];
  let receivedBytes = 0;
  const done = new Promise<void>((resolve) => {
    client.on("data", (chunk: Buffer) => {
      received.push(chunk);
      receivedBytes += chunk.byteLength;
      if (receivedBytes >= expected.byteLength) resolve();
    });
  });
  outbound.send([head, deferred.records, tail]);
  await done;
  expect(Buffer.concat(received)).toEqual(expected);
  // The first piece is read (to see the batch sizes); most of the rest is sendfile.
  expect(bySendfile).toBeGreaterThan(whole.records.byteLength / 2);
  expect(outbound.queuedBytes).toBe(0);
});
