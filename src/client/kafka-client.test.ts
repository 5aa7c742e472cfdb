/**
 * KafkaConnection against a scripted TCP peer (no broker): answers split into single
 * bytes, answers out of order, silence, a closed socket and a broken stream. The real
 * broker round trips are in test/admin/cli.test.ts and every test using RawClient.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import type { Server, Socket } from "node:net";
import { encode } from "../protocol/codec.ts";
import { ApiVersionsRequest, ApiVersionsResponse } from "../protocol/generated/index.ts";
import { encodeResponseHeader } from "../protocol/headers.ts";
import { Writer } from "../protocol/writer.ts";
import { KafkaConnection } from "./kafka-client.ts";
import { framePeer } from "./test-peer.ts";

const ApiVersions = { request: ApiVersionsRequest, response: ApiVersionsResponse };
let server: Server | null = null;

afterEach(() => {
  server?.close();
  server = null;
});

/** A peer that hands each request's correlation id to `onRequest`. */
async function peer(onRequest: (socket: Socket, correlationId: number) => void): Promise<number> {
  const started = await framePeer((socket, frame) => onRequest(socket, frame.readInt32BE(4)));
  server = started.server;
  return started.port;
}

/** An ApiVersions v3 answer naming one api key, framed. */
function answer(correlationId: number, apiKey: number): Buffer {
  const writer = new Writer();
  writer.int32(0);
  encodeResponseHeader(writer, correlationId, 0);
  encode(
    ApiVersionsResponse,
    3,
    { errorCode: 0, apiKeys: [{ apiKey, minVersion: 0, maxVersion: 1 }], throttleTimeMs: 0 },
    writer,
  );
  const frame = writer.toBuffer();
  frame.writeInt32BE(frame.length - 4, 0);
  return frame;
}

describe("cli: kafka client", () => {
  test("cli: kafka client: answers arriving a byte at a time and out of order reach their requests", async () => {
    const pending: Array<[Socket, number]> = [];
    const port = await peer((socket, correlationId) => {
      pending.push([socket, correlationId]);
      if (pending.length < 2) return;
      // Answer the second request first, one byte per write.
      for (const [s, id] of [pending[1]!, pending[0]!]) {
        for (const byte of answer(id, 100 + id)) s.write(Buffer.from([byte]));
      }
    });
    const connection = await KafkaConnection.connect(port);
    try {
      const [first, second] = await Promise.all([
        connection.send(ApiVersions, 3, {}),
        connection.send(ApiVersions, 3, {}),
      ]);
      expect(first.apiKeys[0]!.apiKey).toBe(101);
      expect(second.apiKeys[0]!.apiKey).toBe(102);
    } finally {
      connection.close();
    }
  });

  test("cli: kafka client: a request without an answer fails after its deadline", async () => {
    const port = await peer(() => {});
    const connection = await KafkaConnection.connect(port, "127.0.0.1", { requestTimeoutMs: 50 });
    try {
      await expect(connection.send(ApiVersions, 3, {})).rejects.toThrow(
        `No answer from 127.0.0.1:${port} within 50 ms (ApiVersionsRequest)`,
      );
      // The long-poll wait extends the deadline.
      const started = performance.now();
      await expect(connection.send(ApiVersions, 3, {}, 100)).rejects.toThrow("within 150 ms");
      expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    } finally {
      connection.close();
    }
  });

  test("cli: kafka client: a closed connection fails what waits and what comes after", async () => {
    const port = await peer((socket) => socket.destroy());
    const connection = await KafkaConnection.connect(port);
    await expect(connection.send(ApiVersions, 3, {})).rejects.toThrow(
      `Connection to 127.0.0.1:${port} closed`,
    );
    await connection.closed;
    await expect(connection.send(ApiVersions, 3, {})).rejects.toThrow("closed");
  });

  test("cli: kafka client: an impossible frame size breaks the connection with a reason", async () => {
    const port = await peer((socket) => socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff])));
    const connection = await KafkaConnection.connect(port);
    await expect(connection.send(ApiVersions, 3, {})).rejects.toThrow("Broken response stream");
  });

  test("cli: kafka client: a refused connection names the address", async () => {
    await expect(KafkaConnection.connect(1)).rejects.toThrow(/^Cannot connect to 127\.0\.0\.1:1: /);
  });
});
