/**
 * Three Raft nodes in one process over real TCP on 127.0.0.1, with file storage in temp
 * data dirs and a fast tick (20 ms, so elections take a few hundred ms): bootstrap one,
 * grow to three voters, replicate, lose the leader, elect another, restart the old one
 * from its data dir and watch it catch up (from a snapshot: the log is compacted often).
 */
import { afterAll, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { createServer, type Server, type Socket } from "node:net";
import { makeTempDir, removeDir } from "../../storage/test-support.ts";
import { SeededRandom } from "../../util/random.ts";
import { RaftNode, RaftProposalError, type RaftStateMachine } from "./raft-node.ts";
import { RAFT_STREAM_TAG } from "./tcp-transport.ts";
import type { Entry, NodeId, Snapshot } from "./types.ts";

const TICK_MS = 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The replicated state: the data entries applied, in order. */
class Journal implements RaftStateMachine {
  values: string[] = [];
  apply(entry: Entry): void {
    if (entry.kind === "data") this.values.push(decoder.decode(entry.data));
  }
  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify(this.values));
  }
  restore(snapshot: Snapshot): void {
    this.values = JSON.parse(decoder.decode(snapshot.data)) as string[];
  }
}

interface Running {
  node: RaftNode;
  journal: Journal;
  server: Server;
  sockets: Set<Socket>;
  ticker: ReturnType<typeof setInterval>;
}

const ports = new Map<NodeId, number>();
const dataDirs = new Map<NodeId, string>();
const running = new Map<NodeId, Running>();

async function start(id: NodeId): Promise<Running> {
  let dataDir = dataDirs.get(id);
  if (dataDir === undefined) {
    dataDir = makeTempDir(`raft-node-${id}`);
    dataDirs.set(id, dataDir);
  }
  const journal = new Journal();
  const node = RaftNode.open({
    id,
    dataDir,
    stateMachine: journal,
    resolve: (peer) => {
      const port = ports.get(peer);
      return port === undefined ? null : { host: "127.0.0.1", port };
    },
    random: new SeededRandom(id * 7919),
    electionTicks: 10,
    heartbeatTicks: 1,
    snapshotEveryEntries: 8,
  });
  // The stream listener's part: strip the tag byte, hand over the rest.
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (first: Buffer) => {
      if (first[0] !== RAFT_STREAM_TAG) return socket.destroy();
      node.streamHandler(socket, first.subarray(1));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("No port");
  ports.set(id, address.port);
  const ticker = setInterval(() => node.tick(), TICK_MS);
  const entry = { node, journal, server, sockets, ticker };
  running.set(id, entry);
  return entry;
}

async function stop(id: NodeId): Promise<void> {
  const entry = running.get(id);
  if (entry === undefined) return;
  running.delete(id);
  clearInterval(entry.ticker);
  entry.node.close();
  for (const socket of entry.sockets) socket.destroy();
  await new Promise<void>((resolve) => entry.server.close(() => resolve()));
}

async function waitFor<T>(
  probe: () => T | null | undefined | false,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function leaderAmong(ids: NodeId[]): Running | null {
  for (const id of ids) {
    const entry = running.get(id);
    if (entry?.node.isLeader) return entry;
  }
  return null;
}

afterAll(async () => {
  for (const id of [...running.keys()]) await stop(id);
  for (const dir of dataDirs.values()) removeDir(dir);
});

test("raft: node: bootstrap, grow to three voters, fail over, restart and catch up", async () => {
  const one = await start(1);
  await start(2);
  await start(3);
  expect(one.node.bootstrap([1])).toBe(true);
  await waitFor(() => one.node.isReadyLeader(), "node 1 to lead");

  // Newcomers join as observers, then are promoted (what the voter policy asks for).
  await one.node.addObserver(2);
  await one.node.addObserver(3);
  await one.node.addVoter(2);
  await one.node.addVoter(3);
  expect(one.node.status().membership.members).toEqual([
    { id: 1, voter: true },
    { id: 2, voter: true },
    { id: 3, voter: true },
  ]);

  const first = Array.from({ length: 20 }, (_, i) => `a${i}`);
  const committed = await Promise.all(
    first.map((value) => one.node.propose(encoder.encode(value))),
  );
  expect(committed.map((c) => c.index)).toEqual(
    [...committed.map((c) => c.index)].sort((a, b) => a - b),
  );
  const last = committed.at(-1)!.index;
  for (const id of [1, 2, 3]) {
    await running.get(id)!.node.whenApplied(last);
    expect(running.get(id)!.node.appliedIndex).toBeGreaterThanOrEqual(last);
    expect(running.get(id)!.journal.values).toEqual(first);
  }
  expect(running.get(2)!.node.isReadyLeader()).toBe(false);

  // A follower refuses proposals and names the leader.
  const refused = await running
    .get(2)!
    .node.propose(encoder.encode("x"))
    .catch((error: unknown) => error);
  expect(refused).toBeInstanceOf(RaftProposalError);
  expect((refused as RaftProposalError).kind).toBe("notLeader");
  expect((refused as RaftProposalError).leader).toBe(1);

  // The leader goes away: another is elected and takes proposals.
  const stoppedAt = performance.now();
  await stop(1);
  const next = await waitFor(() => leaderAmong([2, 3]), "a new leader", 5_000);
  const electedMs = performance.now() - stoppedAt;
  expect(electedMs).toBeLessThan(5_000);
  const second = Array.from({ length: 12 }, (_, i) => `b${i}`);
  await Promise.all(second.map((value) => next.node.propose(encoder.encode(value))));
  const expected = [...first, ...second];
  for (const id of [2, 3]) {
    await waitFor(
      () => running.get(id)!.journal.values.length === expected.length,
      `node ${id} to apply`,
    );
    expect(running.get(id)!.journal.values).toEqual(expected);
  }

  // The old leader restarts from its data dir (at a new port) and catches up.
  const restarted = await start(1);
  expect(restarted.node.bootstrap([1])).toBe(false);
  await waitFor(() => restarted.journal.values.length === expected.length, "node 1 to catch up");
  expect(restarted.journal.values).toEqual(expected);
  expect(restarted.node.isLeader).toBe(false);

  // And it takes part: one more entry reaches all three.
  const leader = await waitFor(() => leaderAmong([1, 2, 3]), "a leader");
  await leader.node.propose(encoder.encode("c0"));
  for (const id of [1, 2, 3]) {
    await waitFor(
      () => running.get(id)!.journal.values.at(-1) === "c0",
      `node ${id} to apply the last entry`,
    );
  }
}, 60_000);
