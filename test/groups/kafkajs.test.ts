/**
 * A kafkajs 2.2.4 consumer group on a real Brook process (issue 5, proof 1): three
 * members of one group on a 6-partition topic get two partitions each; one leaves
 * (disconnect: LeaveGroup) and the other two take its partitions over from its committed
 * offsets; a fourth joins. Messages are produced all along. Every member commits each
 * message synchronously after processing it, so the group as a whole processes every
 * produced message exactly once: graceful leaves commit before they go, and a revoked
 * partition's new owner starts at the last commit.
 *
 * The partition split is checked twice: as each client reports it (GROUP_JOIN) and as
 * the broker shows it (GET /v1/groups/:id, decoded assignments per member id).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Admin, Consumer, Kafka, Producer } from "kafkajs";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import {
  HEARTBEAT_INTERVAL_MS,
  PacedProducer,
  type Processed,
  REBALANCE_TIMEOUT_MS,
  SESSION_TIMEOUT_MS,
  WAIT_MS,
  awaitStableSplit,
  createTopics,
  exactlyOnceProblems,
  groupView,
  kafkaOf,
  ownershipRuns,
  partitionsHandedOverBy,
  partitionsByMember,
  runProblems,
} from "./helpers.ts";

const TOPIC = "kafkajs-orders";
const PARTITIONS = 6;
const GROUP = "kafkajs-group";

let broker: TestBroker;
let kafka: Kafka;
let admin: Admin;
let producer: Producer;
let paced: PacedProducer;
const members = new Map<string, JsMember>();
/** Everything every member processed, in the order processed (one event loop). */
const processed: Processed[] = [];

/** A group member that commits each message synchronously after processing it. */
class JsMember {
  readonly consumer: Consumer;
  memberId: string | null = null;
  /** Partitions of TOPIC from the last GROUP_JOIN. */
  assignment: number[] = [];
  readonly commitErrors: string[] = [];
  crash: unknown = null;
  left = false;

  constructor(readonly name: string) {
    this.consumer = kafka.consumer({
      groupId: GROUP,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: REBALANCE_TIMEOUT_MS,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTimeInMs: 100,
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      this.memberId = payload.memberId;
      this.assignment = [...(payload.memberAssignment[TOPIC] ?? [])].sort((a, b) => a - b);
    });
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      this.crash = payload.error;
    });
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const offset = Number(message.offset);
        processed.push({ member: this.name, partition, offset, key: message.key!.toString() });
        try {
          await this.consumer.commitOffsets([{ topic, partition, offset: String(offset + 1) }]);
        } catch (error) {
          this.commitErrors.push(`${partition}@${offset}: ${String(error)}`);
          throw error;
        }
      },
    });
  }

  /** disconnect(): finishes the message in hand (and its commit), then LeaveGroup. */
  async leave(): Promise<void> {
    this.left = true;
    await this.consumer.disconnect();
  }
}

async function startMember(name: string): Promise<JsMember> {
  const member = new JsMember(name);
  members.set(name, member);
  await member.start();
  return member;
}

const live = () => [...members.values()].filter((m) => !m.left);

/**
 * Waits for the broker's Stable split and for every live client to report the same
 * assignment for its member id; returns the broker's view.
 */
async function awaitAgreedSplit(sizes: number[]) {
  return eventually(
    `clients agree on the split ${sizes}`,
    async () => {
      for (const member of members.values()) if (member.crash) throw member.crash;
      const view = await awaitStableSplit(broker, GROUP, TOPIC, sizes);
      const byMember = partitionsByMember(view, TOPIC);
      const clients = live();
      if (clients.length !== view.members.length) return null;
      for (const member of clients) {
        const expected = byMember.get(member.memberId ?? "");
        if (JSON.stringify(expected) !== JSON.stringify(member.assignment)) return null;
      }
      return view;
    },
    WAIT_MS,
  );
}

/** Waits until every key produced so far was processed by someone. */
async function awaitProcessedSoFar(): Promise<void> {
  const target = [...paced.produced];
  await eventually(
    `${target.length} messages processed`,
    () => {
      for (const member of members.values()) if (member.crash) throw member.crash;
      const done = new Set(processed.map((p) => p.key));
      return target.every((key) => done.has(key));
    },
    WAIT_MS,
  );
}

beforeAll(async () => {
  broker = await startBroker();
  kafka = kafkaOf(broker, "groups-kafkajs");
  await createTopics(kafka, [TOPIC], PARTITIONS);
  admin = kafka.admin();
  await admin.connect();
  producer = kafka.producer();
  await producer.connect();
  paced = new PacedProducer(producer, TOPIC, PARTITIONS, "kjs");
});

afterAll(async () => {
  await paced?.stop();
  for (const member of members.values()) if (!member.left) await member.leave();
  await producer?.disconnect();
  await admin?.disconnect();
  if (broker) await stopAndClean(broker);
});

describe("groups: kafkajs", () => {
  test("groups: kafkajs: three members of a 6-partition topic get two each", async () => {
    await paced.burst(60);
    paced.start();
    await Promise.all(["a", "b", "c"].map(startMember));
    const view = await awaitAgreedSplit([2, 2, 2]);
    expect(view.members.map((m) => m.clientId)).toEqual(Array(3).fill("groups-kafkajs"));
    await awaitProcessedSoFar();
  });

  test("groups: kafkajs: a member leaves and the others take over from its commits", async () => {
    const before = await groupView(broker, GROUP);
    const leaver = members.get("c")!;
    const leaverPartitions = [...leaver.assignment];
    const leaverProcessedBefore = processed.filter((p) => p.member === "c").length;
    expect(leaverPartitions.length).toBe(2);
    await leaver.leave();
    const view = await awaitAgreedSplit([3, 3]);
    expect(view.generationId).toBeGreaterThan(before!.generationId);
    expect(view.members.map((m) => m.memberId)).not.toContain(leaver.memberId);
    // The leaver's partitions went to the others.
    const taken = live().flatMap((m) => m.assignment);
    for (const p of leaverPartitions) expect(taken).toContain(p);
    await awaitProcessedSoFar();
    // c processed before leaving and others continued on its partitions (checked for
    // gaps and repeats at the end).
    expect(leaverProcessedBefore).toBeGreaterThan(0);
  });

  test("groups: kafkajs: a fourth member joins and gets two partitions", async () => {
    const before = await groupView(broker, GROUP);
    const fourth = await startMember("d");
    const view = await awaitAgreedSplit([2, 2, 2]);
    expect(view.generationId).toBeGreaterThan(before!.generationId);
    expect(fourth.assignment.length).toBe(2);
    await awaitProcessedSoFar();
  });

  test("groups: kafkajs: every produced message was processed exactly once", async () => {
    await paced.stop();
    await paced.burst(60);
    await awaitProcessedSoFar();
    expect(paced.produced.length).toBeGreaterThan(200);
    expect(exactlyOnceProblems(paced.produced, processed)).toEqual([]);
    const runs = ownershipRuns(processed);
    expect(runProblems(runs)).toEqual([]);
    // Each partition c owned went on with another member after c's last message.
    expect(partitionsHandedOverBy(runs, "c")).toBe(2);
    // d processed something: it really took partitions over.
    expect(processed.some((p) => p.member === "d")).toBe(true);
    for (const member of members.values()) expect(member.commitErrors).toEqual([]);
    // The broker holds the commit after every partition's last message: no lag.
    const view = await groupView(broker, GROUP);
    expect(view!.offsets.length).toBe(PARTITIONS);
    expect(view!.totalLag).toBe(0);
  });

  test("groups: kafkajs: the broker logged no warnings or errors", () => {
    const lines = broker
      .stderr()
      .split("\n")
      .filter((line) => / (WARN|ERROR) /.test(line));
    expect(lines.slice(0, 10)).toEqual([]);
  });
});
