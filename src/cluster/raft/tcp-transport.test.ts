import { afterEach, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { connect, createServer, type Server, type Socket } from "node:net";
import { ManualClock, systemClock } from "../../util/clock.ts";
import { SeededRandom } from "../../util/random.ts";
import { encodeMessage } from "./codec.ts";
import {
  BACKOFF_MS_MAX,
  RAFT_STREAM_TAG,
  REFUSED_BACKOFF_MS_MAX,
  streamHeader,
  TcpTransport,
} from "./tcp-transport.ts";
import type { Message } from "./types.ts";

const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A stand-in for the cluster port's stream listener: reads the tag byte of each
 * connection and hands the rest to the Raft handler (connections with another tag close).
 */
async function listen(
  handler: (socket: Socket, rest: Buffer) => void,
  atPort = 0,
): Promise<{ port: number; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (first: Buffer) => {
      if (first[0] !== RAFT_STREAM_TAG) return socket.destroy();
      handler(socket, first.subarray(1));
    });
  });
  await new Promise<void>((resolve) => server.listen(atPort, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("No port");
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  );
  return { port: address.port, server };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface Node {
  transport: TcpTransport;
  received: Message[];
  port: number;
}

async function node(id: number, ports: Map<number, number>, clusterId = ""): Promise<Node> {
  const received: Message[] = [];
  const transport = new TcpTransport({
    id,
    clusterId: () => clusterId,
    resolve: (peer) => {
      const port = ports.get(peer);
      return port === undefined ? null : { host: "127.0.0.1", port };
    },
    onMessage: (message) => received.push(message),
    clock: systemClock,
    random: new SeededRandom(id),
  });
  const { port } = await listen(transport.handleConnection);
  cleanups.push(() => transport.close());
  ports.set(id, port);
  return { transport, received, port };
}

/** A transport that only receives (it resolves no peer), and what it received. */
function receiver(id: number): { transport: TcpTransport; received: Message[] } {
  const received: Message[] = [];
  const transport = new TcpTransport({
    id,
    resolve: () => null,
    onMessage: (message) => received.push(message),
    clock: systemClock,
    random: new SeededRandom(id),
  });
  return { transport, received };
}

function append(from: number, to: number, index: number, bytes = 10): Message {
  return {
    type: "append",
    from,
    to,
    term: 1,
    prevIndex: index - 1,
    prevTerm: index === 1 ? 0 : 1,
    commit: 0,
    entries: [{ index, term: 1, kind: "data", data: new Uint8Array(bytes).fill(index & 0xff) }],
  };
}

test("raft: tcp transport: messages arrive in order, large ones included", async () => {
  const ports = new Map<number, number>();
  const a = await node(1, ports);
  const b = await node(2, ports);
  const sent: Message[] = [];
  for (let i = 1; i <= 200; i++) sent.push(append(1, 2, i, i % 50 === 0 ? 512 * 1024 : 10));
  sent.push({
    type: "snapshot",
    from: 1,
    to: 2,
    term: 1,
    snapshot: {
      index: 300,
      term: 1,
      membership: { members: [{ id: 1, voter: true }] },
      data: new Uint8Array(4 << 20).fill(7),
    },
  });
  a.transport.send(sent);
  await waitFor(() => b.received.length === sent.length, "all messages");
  expect(b.received).toEqual(sent);
  // And back, over b's own connection.
  b.transport.send([
    {
      type: "appendResponse",
      from: 2,
      to: 1,
      term: 1,
      success: true,
      index: 200,
      hint: 0,
    },
  ]);
  await waitFor(() => a.received.length === 1, "the answer");
  expect(a.transport.openPeers()).toEqual([2]);
});

test("raft: tcp transport: bad frames close the connection, the node goes on", async () => {
  const ports = new Map<number, number>();
  const a = await node(1, ports);
  const b = await node(2, ports);
  const valid = encodeMessage(append(1, 2, 1));
  const oversized = Buffer.alloc(5);
  oversized.writeUInt32BE(64 * 1024 * 1024, 0);
  oversized.writeUInt8(5, 4);
  const unknownType = Buffer.from([0, 0, 0, 3, 99, 0, 0]);
  const badLength = Buffer.from(valid);
  badLength.writeUInt32BE(10, 0);
  const cases: [string, Buffer][] = [
    ["unknown version", Buffer.from([RAFT_STREAM_TAG, 9])],
    ["oversized frame", Buffer.concat([streamHeader(""), oversized])],
    ["unknown type", Buffer.concat([streamHeader(""), unknownType])],
    ["truncated body", Buffer.concat([streamHeader(""), badLength.subarray(0, 14)])],
    [
      "garbage after a valid frame",
      Buffer.concat([streamHeader(""), valid, Buffer.from([0, 0, 0, 0, 5])]),
    ],
  ];
  for (const [name, bytes] of cases) {
    const socket = connect({ host: "127.0.0.1", port: b.port });
    let closed = false;
    socket.on("close", () => {
      closed = true;
    });
    socket.on("error", () => {});
    socket.write(bytes);
    await waitFor(() => closed, `the connection with ${name} to close`);
  }
  // The one valid frame sent before garbage was delivered; the node still takes messages.
  expect(b.received).toHaveLength(1);
  a.transport.send([append(1, 2, 2)]);
  await waitFor(() => b.received.length === 2, "a message after the bad ones");
  // A connection cut inside a frame delivers nothing and breaks nothing.
  const socket = connect({ host: "127.0.0.1", port: b.port });
  socket.on("error", () => {});
  socket.end(Buffer.concat([streamHeader(""), valid.subarray(0, valid.byteLength - 3)]));
  a.transport.send([append(1, 2, 3)]);
  await waitFor(() => b.received.length === 3, "a message after a cut connection");
});

test("raft: tcp transport: unknown peers and dead ones drop messages; a restarted peer is redialled", async () => {
  const ports = new Map<number, number>();
  const a = await node(1, ports);
  a.transport.send([append(1, 9, 1)]);
  expect(a.transport.dropped).toBe(1);

  // Node 2 at a port where nothing listens yet.
  const placeholder = await listen(() => {});
  const deadPort = placeholder.port;
  await new Promise<void>((resolve) => placeholder.server.close(() => resolve()));
  await waitFor(() => !placeholder.server.listening, "the placeholder to close");
  ports.set(2, deadPort);
  a.transport.send([append(1, 2, 1)]);

  // Node 2 comes up at a new address: the transport dials it on a later send.
  const { transport: b, received } = receiver(2);
  const { port } = await listen(b.handleConnection);
  cleanups.push(() => b.close());
  ports.set(2, port);
  let index = 2;
  await waitFor(() => {
    a.transport.send([append(1, 2, index++)]);
    return received.length > 0;
  }, "delivery after the peer came up");
  expect(received[0]!.type).toBe("append");
});

/**
 * Node 1 dials node 2 at a port nothing listens on, `refusals` times (the manual clock
 * passing each backoff), then node 2 starts listening at that same port: a process
 * restarted on its address.
 */
async function refusedThenBack(refusals: number) {
  const clock = new ManualClock();
  const placeholder = await listen(() => {});
  const port = placeholder.port;
  await new Promise<void>((resolve) => placeholder.server.close(() => resolve()));
  let refused = 0;
  const a = new TcpTransport({
    id: 1,
    resolve: () => ({ host: "127.0.0.1", port }),
    onMessage: () => {},
    onRefused: () => refused++,
    clock,
    random: new SeededRandom(1),
  });
  cleanups.push(() => a.close());
  for (let i = 1; i <= refusals; i++) {
    a.send([append(1, 2, i)]);
    await waitFor(() => refused === i, `refusal ${i}`);
    // Wait for the close that follows the error, then let the backoff pass.
    await new Promise((resolve) => setTimeout(resolve, 20));
    clock.advance(BACKOFF_MS_MAX);
  }
  // The last refusal's backoff has not passed yet.
  a.send([append(1, 2, refusals + 1)]);
  await waitFor(() => refused === refusals + 1, "the last refusal");
  await new Promise((resolve) => setTimeout(resolve, 20));
  const { transport: b, received } = receiver(2);
  await listen(b.handleConnection, port);
  cleanups.push(() => b.close());
  return { a, clock, received };
}

test("raft: tcp transport: a peer that refused many dials is dialled again within the refused backoff once it listens", async () => {
  const { a, clock, received } = await refusedThenBack(8);
  a.send([append(1, 2, 100)]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(received).toHaveLength(0); // Still backing off.
  clock.advance(REFUSED_BACKOFF_MS_MAX);
  a.send([append(1, 2, 101)]);
  await waitFor(() => received.length > 0, "delivery once the refused backoff passed");
  expect(received[0]!.type === "append" && received[0]!.entries[0]!.index).toBe(101);
});

test("raft: tcp transport: gossip saying a peer is alive ends its backoff", async () => {
  const { a, received } = await refusedThenBack(3);
  a.send([append(1, 2, 100)]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  expect(received).toHaveLength(0);
  a.peerAlive(2);
  a.send([append(1, 2, 101)]);
  await waitFor(() => received.length > 0, "delivery right after peerAlive");
  expect(received[0]!.type === "append" && received[0]!.entries[0]!.index).toBe(101);
});

test("raft: tcp transport: a connection from another cluster is closed before any message is delivered", async () => {
  const ports = new Map<number, number>();
  const ours = await node(1, ports, "cluster-a");
  const stranger = await node(2, new Map([[1, ours.port]]), "cluster-b");
  const joining = await node(3, new Map([[1, ours.port]]), "");
  stranger.transport.send([append(2, 1, 1)]);
  joining.transport.send([append(3, 1, 1)]);
  await waitFor(
    () => ours.received.length === 1,
    "the message of the node without a cluster id yet",
  );
  await waitFor(
    () => ours.transport.rejected >= 1,
    "the stranger's connection closed on its header",
  );
  expect(ours.received.map((m) => m.from)).toEqual([3]);
});
