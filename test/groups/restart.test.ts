/**
 * A consumer group lives through broker restarts under it (issue 5, proof 4): two
 * confluent-kafka-python members keep running while Brook stops cleanly (SIGTERM) and
 * later dies (SIGKILL), each time coming back on the same data dir and Kafka port.
 * Group metadata (the stored generation with its members and assignments) and the
 * committed offsets are records of __consumer_offsets, so the group comes back Stable
 * with the same generation and member ids, the members carry on heartbeating and
 * committing with no rebalance, and they resume where they committed.
 * auto.offset.reset is earliest: had the commits been lost, everything would be
 * processed again; had the group skipped ahead, messages produced while the broker came
 * back would be missing. Every message is processed exactly once, over both restarts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { eventually, tempDir, type TestBroker } from "../helpers/broker.ts";
import {
  HEARTBEAT_INTERVAL_MS,
  PacedProducer,
  PythonMember,
  REBALANCE_TIMEOUT_MS,
  SESSION_TIMEOUT_MS,
  WAIT_MS,
  awaitStableSplit,
  createTopics,
  exactlyOnceProblems,
  groupView,
  kafkaOf,
  killAllMembers,
  type GroupView,
  startBrokerOnPort,
} from "./helpers.ts";

const TOPIC = "restart-orders";
const GROUP = "restart-group";
const PARTITIONS = 4;

const dataDir = tempDir("brook-groups-restart-");
let broker: TestBroker;
let port: number;
const members: PythonMember[] = [];
/** Every key produced, over all broker lifetimes. */
const produced: string[] = [];
let batches = 0;

/** Produces `count` messages with a fresh kafkajs producer (the broker may be new). */
async function produce(count: number): Promise<void> {
  const producer = kafkaOf(broker, "groups-restart").producer();
  await producer.connect();
  try {
    const paced = new PacedProducer(producer, TOPIC, PARTITIONS, `restart-${batches++}`);
    await paced.burst(count);
    produced.push(...paced.produced);
  } finally {
    await producer.disconnect();
  }
}

const processed = () => members.flatMap((m) => m.processed());

/** Everything produced so far is processed, and the broker holds the commits (no lag). */
async function awaitCaughtUp(): Promise<void> {
  await eventually(
    `${produced.length} messages processed and committed`,
    async () => {
      for (const m of members) {
        const fatal = m.of("error").find((e) => e.name === "_FATAL");
        if (fatal) throw new Error(`${m.name}: ${fatal.str}`);
      }
      const done = new Set(processed().map((p) => p.key));
      if (!produced.every((key) => done.has(key))) return false;
      const view = await groupView(broker, GROUP);
      return view !== null && view.offsets.length === PARTITIONS && view.totalLag === 0;
    },
    WAIT_MS,
  );
}

beforeAll(async () => {
  broker = await startBrokerOnPort(dataDir, 0);
  port = broker.port;
  await createTopics(kafkaOf(broker, "groups-restart"), [TOPIC], PARTITIONS);
});

afterAll(async () => {
  await killAllMembers();
  await broker?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("groups: restart", () => {
  test("groups: restart: two members consume and commit", async () => {
    for (const name of ["r1", "r2"]) {
      members.push(
        new PythonMember(name, {
          bootstrap: broker.bootstrap,
          group: GROUP,
          topics: [TOPIC],
          config: {
            "client.id": `py-${name}`,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "max.poll.interval.ms": REBALANCE_TIMEOUT_MS,
            "fetch.wait.max.ms": 100,
            "reconnect.backoff.max.ms": 200,
          },
        }),
      );
    }
    await awaitStableSplit(broker, GROUP, TOPIC, [2, 2]);
    await produce(40);
    await awaitCaughtUp();
  });

  for (const how of ["a clean stop", "kill -9"] as const) {
    test(`groups: restart: after ${how} the group carries on, no rebalance`, async () => {
      const before = (await groupView(broker, GROUP))!;
      expect(before.state).toBe("Stable");
      if (how === "kill -9") await broker.kill();
      else expect(await broker.stop()).toBe(0);
      broker = await startBrokerOnPort(dataDir, port);
      expect(broker.port).toBe(port);
      // Back as stored, before any member spoke to the new process.
      const restored = (await groupView(broker, GROUP))!;
      expect(restored.state).toBe("Stable");
      expect(restored.generationId).toBe(before.generationId);
      expect(restored.leaderId).toBe(before.leaderId);
      const assignments = (view: GroupView) =>
        view.members.map((m) => [m.memberId, m.assignment]).sort();
      expect(assignments(restored)).toEqual(assignments(before));
      await produce(40);
      await awaitCaughtUp();
      await produce(40);
      await awaitCaughtUp();
      // The same generation throughout: the members were never asked to rejoin.
      const after = (await groupView(broker, GROUP))!;
      expect(after.generationId).toBe(before.generationId);
      expect(assignments(after)).toEqual(assignments(before));
      expect(members.flatMap((m) => m.of("commit_error"))).toEqual([]);
      expect(exactlyOnceProblems(produced, processed())).toEqual([]);
    });
  }

  test("groups: restart: the members leave, the commits stay", async () => {
    for (const m of members) expect(await m.close()).toBe(0);
    const view = (await groupView(broker, GROUP))!;
    expect(view.state).toBe("Empty");
    // 200 messages over four partitions, every one committed.
    expect(view.offsets.map((o) => o.committedOffset)).toEqual([50, 50, 50, 50]);
  });
});
