/**
 * A @platformatic/kafka 1.35 consumer group on a real Brook process (issue 5, proof 1):
 * three members of one group on a 6-partition topic get two partitions each; one leaves
 * (its stream closes, then the consumer: LeaveGroup) and the other two take its
 * partitions over from its committed offsets; a fourth joins. Each member processes its
 * stream one message at a time and commits it (`message.commit()`, awaited) before taking
 * the next. The client exposes generation ids: every member's `consumer:group:join`
 * generation must be the broker's (GET /v1/groups/:id) once the group is Stable.
 *
 * The scenario runs twice, on its own topic and group each time:
 * - quiet: messages are produced only between membership changes, and each change waits
 *   until what was produced is processed. Every message is processed exactly once.
 * - busy: messages are produced all along. Nothing may be skipped, and each partition the
 *   leaving member had continues exactly after its last commit; but this client can
 *   process a message twice when a rebalance catches it mid-processing, so duplicates are
 *   counted, not refused. Its rejoin runs beside the application (no revocation step
 *   that waits for the message in hand), and traces showed two ways: a commit the group
 *   refused with ILLEGAL_GENERATION is retried by the client after it rejoins, in the new
 *   generation, after the partition's new owner read the older offset; and after a
 *   rejoin the stream restarts from offsets read before its own last commit landed, then
 *   hands the same records out again. kafkajs and librdkafka (kafkajs.test.ts,
 *   python.test.ts) rejoin only from the consumer loop and are held to exactly once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Consumer, type MessagesStream, stringDeserializers } from "@platformatic/kafka";
import type { Kafka, Producer } from "kafkajs";
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
  partitionsByMember,
  runProblems,
} from "./helpers.ts";

const PARTITIONS = 6;

let broker: TestBroker;
let kafka: Kafka;
let producer: Producer;
const scenarios: Scenario[] = [];

type StringConsumer = Consumer<string, string, string, string>;

/** One run of the scenario: its topic, group, producer, members and what they processed. */
class Scenario {
  readonly topic: string;
  readonly group: string;
  readonly paced: PacedProducer;
  readonly members = new Map<string, PlatformaticMember>();
  /** Everything every member processed, in the order processed (one event loop). */
  readonly processed: Processed[] = [];

  constructor(readonly name: "quiet" | "busy") {
    this.topic = `platformatic-${name}`;
    this.group = `platformatic-${name}-group`;
    this.paced = new PacedProducer(producer, this.topic, PARTITIONS, `pl-${name}`);
  }

  live(): PlatformaticMember[] {
    return [...this.members.values()].filter((m) => !m.left);
  }

  async startMember(name: string): Promise<PlatformaticMember> {
    const member = new PlatformaticMember(this, name);
    this.members.set(name, member);
    await member.start();
    return member;
  }

  throwIfFailed(): void {
    for (const member of this.members.values()) if (member.failure) throw member.failure;
  }

  /**
   * The broker's Stable split, reported alike by every live client, generation included,
   * and every live member's stream restarted from the committed offsets.
   */
  async awaitAgreedSplit(sizes: number[]) {
    return eventually(
      `${this.name}: clients agree on the split ${sizes}`,
      async () => {
        this.throwIfFailed();
        const view = await awaitStableSplit(broker, this.group, this.topic, sizes);
        const byMember = partitionsByMember(view, this.topic);
        const clients = this.live();
        if (clients.length !== view.members.length) return null;
        for (const member of clients) {
          if (member.generationId !== view.generationId || !member.restarted) return null;
          const expected = byMember.get(member.memberId ?? "");
          if (JSON.stringify(expected) !== JSON.stringify(member.assignment)) return null;
        }
        return view;
      },
      WAIT_MS,
    );
  }

  async awaitProcessedSoFar(): Promise<void> {
    const target = [...this.paced.produced];
    await eventually(
      `${this.name}: ${target.length} messages processed`,
      () => {
        this.throwIfFailed();
        const done = new Set(this.processed.map((p) => p.key));
        return target.every((key) => done.has(key));
      },
      WAIT_MS,
    );
  }
}

class PlatformaticMember {
  readonly consumer: StringConsumer;
  /** Generation and partitions of the topic from the last consumer:group:join. */
  generationId = -1;
  assignment: number[] = [];
  /**
   * Whether the stream has restarted from the committed offsets since the last join. It
   * does so after each join, and a fetch answered meanwhile can be rewound and handed
   * out again; a quiet membership change waits for it.
   */
  restarted = false;
  failure: unknown = null;
  left = false;
  #stream: MessagesStream<string, string, string, string> | null = null;
  #loop: Promise<void> | null = null;

  constructor(
    readonly scenario: Scenario,
    readonly name: string,
  ) {
    this.consumer = new Consumer({
      clientId: `groups-platformatic-${name}`,
      bootstrapBrokers: [broker.bootstrap],
      groupId: scenario.group,
      deserializers: stringDeserializers,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: REBALANCE_TIMEOUT_MS,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      maxWaitTime: 100,
    });
    this.consumer.on("consumer:group:join", (payload) => {
      this.generationId = payload.generationId ?? -1;
      this.restarted = false;
      this.assignment = (payload.assignments ?? [])
        .filter((a) => a.topic === scenario.topic)
        .flatMap((a) => a.partitions)
        .sort((a, b) => a - b);
    });
  }

  get memberId(): string | null {
    return this.consumer.memberId;
  }

  async start(): Promise<void> {
    const stream = await this.consumer.consume({
      topics: [this.scenario.topic],
      mode: "committed",
      fallbackMode: "earliest",
      autocommit: false,
    });
    this.#stream = stream;
    stream.on("offsets", () => {
      this.restarted = true;
    });
    stream.on("error", (error) => {
      if (!this.left) this.failure = error;
    });
    this.#loop = (async () => {
      for await (const message of stream) {
        // The stream may still hold records fetched before a rebalance took their
        // partition away; the new owner reads them from the last commit.
        const owned = (this.consumer.assignments ?? []).some(
          (a) => a.topic === message.topic && a.partitions.includes(message.partition),
        );
        if (!owned) continue;
        this.scenario.processed.push({
          member: this.name,
          partition: message.partition,
          offset: Number(message.offset),
          key: message.key,
        });
        await message.commit();
        if (this.left) break;
      }
    })().catch((error) => {
      this.failure = error;
    });
  }

  /** Stops taking messages after the one in hand (committed), then leaves the group. */
  async leave(): Promise<void> {
    this.left = true;
    await this.#stream?.close();
    await this.#loop;
    await this.consumer.close();
  }
}

/**
 * Where the next owner of each partition the leaver had started: the first message any
 * other member processed on it after the leaver's last must be the one right after.
 */
function handoverProblems(processed: readonly Processed[], leaver: string): string[] {
  const problems: string[] = [];
  const partitions = new Set(processed.filter((p) => p.member === leaver).map((p) => p.partition));
  for (const partition of partitions) {
    const list = processed.filter((p) => p.partition === partition);
    const last = list.findLastIndex((p) => p.member === leaver);
    const next = list[last + 1];
    if (next === undefined) {
      problems.push(`partition ${partition}: nobody went on after ${leaver}`);
    } else if (next.offset !== list[last]!.offset + 1) {
      problems.push(
        `partition ${partition}: ${leaver} ended at ${list[last]!.offset}, ` +
          `${next.member} went on at ${next.offset}`,
      );
    }
  }
  return problems;
}

beforeAll(async () => {
  broker = await startBroker();
  kafka = kafkaOf(broker, "groups-platformatic");
  await createTopics(kafka, ["platformatic-quiet", "platformatic-busy"], PARTITIONS);
  producer = kafka.producer();
  await producer.connect();
});

afterAll(async () => {
  for (const scenario of scenarios) {
    await scenario.paced.stop();
    for (const member of scenario.live()) await member.leave();
  }
  await producer?.disconnect();
  if (broker) await stopAndClean(broker);
});

for (const name of ["quiet", "busy"] as const) {
  describe(`groups: platformatic (${name})`, () => {
    let s: Scenario;
    const busy = name === "busy";
    const produceBetweenChanges = async () => {
      if (!busy) await s.paced.burst(30);
    };

    test(`groups: platformatic (${name}): three members get two partitions each`, async () => {
      s = new Scenario(name);
      scenarios.push(s);
      if (busy) {
        await s.paced.burst(60);
        s.paced.start();
      }
      await Promise.all(["a", "b", "c"].map((m) => s.startMember(m)));
      await s.awaitAgreedSplit([2, 2, 2]);
      await produceBetweenChanges();
      await s.awaitProcessedSoFar();
    });

    test(`groups: platformatic (${name}): one leaves, the rest go on from commits`, async () => {
      const before = await groupView(broker, s.group);
      const leaver = s.members.get("c")!;
      const leaverPartitions = [...leaver.assignment];
      expect(leaverPartitions.length).toBe(2);
      await leaver.leave();
      const view = await s.awaitAgreedSplit([3, 3]);
      expect(view.generationId).toBeGreaterThan(before!.generationId);
      expect(view.members.map((m) => m.memberId)).not.toContain(leaver.memberId);
      const taken = s.live().flatMap((m) => m.assignment);
      for (const p of leaverPartitions) expect(taken).toContain(p);
      await produceBetweenChanges();
      await s.awaitProcessedSoFar();
      expect(handoverProblems(s.processed, "c")).toEqual([]);
    });

    test(`groups: platformatic (${name}): a fourth member joins, gets two partitions`, async () => {
      const before = await groupView(broker, s.group);
      const fourth = await s.startMember("d");
      const view = await s.awaitAgreedSplit([2, 2, 2]);
      expect(view.generationId).toBeGreaterThan(before!.generationId);
      expect(fourth.assignment.length).toBe(2);
      await produceBetweenChanges();
      await s.awaitProcessedSoFar();
    });

    const outcome = busy ? "duplicates counted" : "exactly once";
    test(`groups: platformatic (${name}): every message processed, ${outcome}`, async () => {
      await s.paced.stop();
      await s.paced.burst(60);
      await s.awaitProcessedSoFar();
      expect(s.paced.produced.length).toBeGreaterThanOrEqual(busy ? 200 : 150);
      const problems = exactlyOnceProblems(s.paced.produced, s.processed, 1000);
      const duplicates = problems.filter((p) => p.startsWith("twice: "));
      // Never skipped, never foreign: only duplicates are left to judge.
      expect(problems.filter((p) => !p.startsWith("twice: "))).toEqual([]);
      if (busy) {
        if (duplicates.length > 0) {
          console.log(
            `platformatic (busy): ${duplicates.length} of ${s.processed.length} ` +
              `processings were repeats, first: ${duplicates[0]}`,
          );
        }
      } else {
        expect(duplicates).toEqual([]);
        expect(runProblems(ownershipRuns(s.processed))).toEqual([]);
      }
      expect(s.processed.some((p) => p.member === "d")).toBe(true);
      // The broker holds the commit after every partition's last message: no lag.
      const view = await groupView(broker, s.group);
      expect(view!.offsets.length).toBe(PARTITIONS);
      expect(view!.totalLag).toBe(0);
    });
  });
}

describe("groups: platformatic", () => {
  test("groups: platformatic: the broker logged no warnings or errors", () => {
    const lines = broker
      .stderr()
      .split("\n")
      .filter((line) => / (WARN|ERROR) /.test(line));
    expect(lines.slice(0, 10)).toEqual([]);
  });
});
