import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { connect, createServer, type Server, type Socket } from "node:net";
import {
  CONTROLLER_FRAME_BYTES_MAX,
  CONTROLLER_RPC_TAG,
  ControllerClient,
  parseCommand,
  serveControllerConnection,
} from "./controller-rpc.ts";
import type { MetadataCommand } from "./topics.ts";
import { systemTimers } from "../util/timers.ts";

const received: MetadataCommand[] = [];
let server: Server;
let port: number;

beforeAll(async () => {
  // A minimal cluster port: the first byte picks the protocol, as the real listener does.
  server = createServer((socket) => {
    socket.once("data", (chunk: Buffer) => {
      if (chunk[0] !== CONTROLLER_RPC_TAG) return socket.destroy();
      serveControllerConnection(
        socket,
        chunk.subarray(1),
        async (command) => {
          received.push(command);
          if (command.kind === "deleteTopic" && command.topicId === "boom")
            throw new Error("Controller stepped down");
          if (command.kind === "createPartitions") {
            return {
              result: {
                ok: false,
                error: { kind: "unknown", message: `Topic '${command.name}' does not exist` },
              },
              index: -1,
            };
          }
          return { result: { ok: true }, index: received.length };
        },
        () => "cluster-a",
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(() => server.close());

function rawConnection(): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
  });
}

function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => socket.on("close", () => resolve()));
}

describe("cluster: controller rpc", () => {
  test("commands reach the controller and outcomes come back, in any number", async () => {
    const client = new ControllerClient({ timers: systemTimers });
    const address = { host: "127.0.0.1", port };
    const create: MetadataCommand = {
      kind: "createTopic",
      request: {
        name: "orders",
        numPartitions: 6,
        replicationFactor: 1,
        configs: [{ name: "retention.ms", value: "1000" }],
      },
      internal: false,
    };
    const answers = await Promise.all([
      client.submit(address, create),
      client.submit(address, { kind: "createPartitions", name: "nope", count: 3 }),
      client.submit(address, { kind: "deleteTopic", topicId: "boom" }),
    ]);
    expect(received[0]).toEqual(create);
    expect(answers[0]!.result).toEqual({ ok: true });
    expect(answers[0]!.index).toBeGreaterThan(0);
    expect(answers[1]!.result).toEqual({
      ok: false,
      error: { kind: "unknown", message: "Topic 'nope' does not exist" },
    });
    expect(answers[2]!.result).toEqual({
      ok: false,
      error: { kind: "notController", message: "Controller stepped down" },
    });
    client.close();
  });

  test("an unreachable controller is a notController outcome, not a throw", async () => {
    const client = new ControllerClient({ timers: systemTimers, timeoutMs: 2000 });
    const answer = await client.submit(
      { host: "127.0.0.1", port: 1 },
      { kind: "fenceBroker", nodeId: 3 },
    );
    expect(answer.result.ok).toBe(false);
    expect(answer.result.ok ? "" : answer.result.error.kind).toBe("notController");
    client.close();
  });

  test("a malformed or oversized frame closes the connection; the server keeps serving", async () => {
    const before = received.length;
    const bad = await rawConnection();
    const json = Buffer.from(
      JSON.stringify({ id: 1, command: { kind: "createTopic", request: { name: 7 } } }),
    );
    const head = Buffer.alloc(4);
    head.writeUInt32BE(json.length);
    bad.write(Buffer.concat([Buffer.from([CONTROLLER_RPC_TAG]), head, json]));
    await closed(bad);
    const huge = await rawConnection();
    const big = Buffer.alloc(5);
    big[0] = CONTROLLER_RPC_TAG;
    big.writeUInt32BE(CONTROLLER_FRAME_BYTES_MAX + 1, 1);
    huge.write(big);
    await closed(huge);
    expect(received.length).toBe(before);
    const client = new ControllerClient({ timers: systemTimers });
    const answer = await client.submit(
      { host: "127.0.0.1", port },
      { kind: "unfenceBroker", nodeId: 2 },
    );
    expect(answer.result).toEqual({ ok: true });
    client.close();
  });

  test("parseCommand accepts every command kind and refuses wrong types", () => {
    const good: MetadataCommand[] = [
      {
        kind: "createTopic",
        request: {
          name: "t",
          numPartitions: -1,
          replicationFactor: -1,
          configs: [{ name: "x", value: null }],
        },
        internal: true,
      },
      { kind: "createPartitions", name: "t", count: 4 },
      { kind: "deleteTopic", topicId: "id" },
      { kind: "registerBroker", nodeId: 2, host: "10.0.0.2", port: 9092, rack: null },
      { kind: "fenceBroker", nodeId: 2 },
      { kind: "unfenceBroker", nodeId: 2 },
      {
        kind: "registerBroker",
        nodeId: 2,
        host: "10.0.0.2",
        port: 9092,
        rack: null,
        incarnation: "c0ffee",
      },
      {
        kind: "alterPartition",
        request: {
          brokerId: 2,
          topicId: "id",
          partition: 1,
          leaderEpoch: 3,
          partitionEpoch: 7,
          newIsr: [2, 1],
        },
      },
    ];
    for (const command of good)
      expect(parseCommand(JSON.parse(JSON.stringify(command)))).toEqual(command);
    for (const bad of [
      null,
      7,
      "x",
      {},
      { kind: "dropEverything" },
      { kind: "fenceBroker", nodeId: "2" },
      { kind: "createPartitions", name: "t", count: 1.5 },
      { kind: "registerBroker", nodeId: 1, host: "h", port: 1, rack: 5 },
      { kind: "registerBroker", nodeId: 1, host: "h", port: 1, rack: null, incarnation: 5 },
      {
        kind: "alterPartition",
        request: {
          brokerId: 2,
          topicId: "id",
          partition: 1,
          leaderEpoch: 3,
          partitionEpoch: 7,
          newIsr: ["2"],
        },
      },
      {
        kind: "alterPartition",
        request: { brokerId: 2, topicId: "id", partition: 1, leaderEpoch: 3, newIsr: [2] },
      },
      {
        kind: "createTopic",
        request: {
          name: "t",
          numPartitions: 1,
          replicationFactor: 1,
          configs: [{ name: "x", value: 3 }],
        },
      },
    ]) {
      expect(parseCommand(bad)).toBeNull();
    }
  });
});

describe("cluster: controller rpc: another cluster", () => {
  test("a command from another cluster is refused and not executed; one from a node without an id yet is taken", async () => {
    const address = { host: "127.0.0.1", port };
    const command: MetadataCommand = { kind: "deleteTopic", topicId: "from-elsewhere" };
    const stranger = new ControllerClient({ timers: systemTimers, clusterId: () => "cluster-b" });
    const before = received.length;
    const refused = await stranger.submit(address, command);
    expect(refused.result).toEqual({
      ok: false,
      error: { kind: "notController", message: "This node is in cluster cluster-a, not cluster-b" },
    });
    expect(received.length).toBe(before);
    stranger.close();
    const member = new ControllerClient({ timers: systemTimers, clusterId: () => "cluster-a" });
    expect((await member.submit(address, command)).result).toEqual({ ok: true });
    member.close();
  });
});
