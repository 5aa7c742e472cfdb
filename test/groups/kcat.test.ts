/**
 * kcat (librdkafka 2.0.2) as a consumer group member, and two groups reading one topic
 * independently (issue 5, proof 5). `kcat -G <group> <topic>` is librdkafka's
 * KafkaConsumer with auto-commit; two of them share a 4-partition topic two partitions
 * each (as they print on stderr and as the broker shows) and stop on SIGTERM (by pid),
 * which closes the consumer: final commit, LeaveGroup. Then a member of another group
 * reads everything from the beginning while a new member of the first group reads only
 * what came after that group's commits.
 *
 * kcat's `-X auto.commit.interval.ms` lands in the (legacy) topic configuration, so the
 * global 5 s interval stays: commits are checked after each kcat closed, which commits.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import type { Kafka, Producer } from "kafkajs";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import {
  HEARTBEAT_INTERVAL_MS,
  PacedProducer,
  type Processed,
  SESSION_TIMEOUT_MS,
  WAIT_MS,
  awaitStableSplit,
  createTopics,
  exactlyOnceProblems,
  exitedOrKilled,
  groupView,
  kafkaOf,
  killByPid,
} from "./helpers.ts";

const TOPIC = "kcat-orders";
const PARTITIONS = 4;
const G1 = "kcat-g1";
const G2 = "kcat-g2";

let broker: TestBroker;
let kafka: Kafka;
let producer: Producer;
let paced: PacedProducer;
const running = new Set<KcatMember>();

/** One `kcat -G` process; what it printed, parsed. */
class KcatMember {
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;
  #stdout = "";
  #stderr = "";

  constructor(
    readonly name: string,
    group: string,
  ) {
    this.#child = spawn(
      "kcat",
      [
        "-b",
        broker.bootstrap,
        "-G",
        group,
        "-u",
        "-f",
        "%p %o %k\\n",
        "-X",
        `client.id=kcat-${name}`,
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        `session.timeout.ms=${SESSION_TIMEOUT_MS}`,
        "-X",
        `heartbeat.interval.ms=${HEARTBEAT_INTERVAL_MS}`,
        "-X",
        "fetch.wait.max.ms=100",
        TOPIC,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    running.add(this);
    this.#child.stdout!.on("data", (chunk: Buffer) => {
      this.#stdout += chunk.toString();
    });
    this.#child.stderr!.on("data", (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    this.#exited = new Promise((resolve) =>
      this.#child.on("exit", (code) => {
        running.delete(this);
        resolve(code);
      }),
    );
  }

  /** Complete lines of `partition offset key`. */
  records(): Processed[] {
    return this.#stdout
      .split("\n")
      .slice(0, -1)
      .map((line) => {
        const [partition, offset, key] = line.split(" ");
        return {
          member: this.name,
          partition: Number(partition),
          offset: Number(offset),
          key: key!,
        };
      });
  }

  /**
   * The assignment from kcat's own report on stderr: "% Group <g> rebalanced (memberid
   * <id>): assigned: <topic> [0], <topic> [2]" (and "revoked: ..." before a new one).
   */
  assignment(): number[] {
    let current: number[] = [];
    const reports = /rebalanced \(memberid [^)]*\): (assigned|revoked): ([^\n]*)/g;
    for (const match of this.#stderr.matchAll(reports)) {
      const partitions = [...match[2]!.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]));
      current = match[1] === "assigned" ? partitions.sort((a, b) => a - b) : [];
    }
    return current;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** SIGTERM by pid: kcat closes its consumer (commit, LeaveGroup) and exits. */
  async stop(): Promise<number | null> {
    if (this.#child.exitCode === null) process.kill(this.#child.pid!, "SIGTERM");
    return exitedOrKilled(this.#child, this.#exited);
  }

  kill(): Promise<void> {
    return killByPid(this.#child, this.#exited);
  }
}

/** Waits until `members` together printed every key in `keys`; returns what they printed. */
async function awaitRead(members: KcatMember[], keys: readonly string[]): Promise<Processed[]> {
  return eventually(
    `${members.map((m) => m.name)} read ${keys.length} messages`,
    () => {
      const records = members.flatMap((m) => m.records());
      const seen = new Set(records.map((r) => r.key));
      return keys.every((key) => seen.has(key)) ? records : null;
    },
    WAIT_MS,
  );
}

beforeAll(async () => {
  broker = await startBroker();
  kafka = kafkaOf(broker, "groups-kcat");
  await createTopics(kafka, [TOPIC], PARTITIONS);
  producer = kafka.producer();
  await producer.connect();
  paced = new PacedProducer(producer, TOPIC, PARTITIONS, "kc");
});

afterAll(async () => {
  await Promise.all([...running].map((m) => m.kill()));
  await producer?.disconnect();
  if (broker) await stopAndClean(broker);
});

describe("groups: kcat", () => {
  test("groups: kcat: two kcat -G members share the partitions", async () => {
    const k1 = new KcatMember("k1", G1);
    const k2 = new KcatMember("k2", G1);
    const view = await eventually(
      "kcat members agree with the broker",
      async () => {
        const stable = await awaitStableSplit(broker, G1, TOPIC, [2, 2]);
        for (const m of [k1, k2]) {
          const mine = stable.members.find((v) => v.clientId === `kcat-${m.name}`);
          const partitions = (mine?.assignment ?? []).flatMap((a) => a.partitions).sort();
          if (JSON.stringify(partitions) !== JSON.stringify(m.assignment())) return null;
        }
        return stable;
      },
      WAIT_MS,
    );
    expect(view.members.map((m) => m.clientId).sort()).toEqual(["kcat-k1", "kcat-k2"]);
    await paced.burst(200);
    const records = await awaitRead([k1, k2], paced.produced);
    expect(exactlyOnceProblems(paced.produced, records)).toEqual([]);
    // Each printed only its own partitions, and both had two.
    for (const m of [k1, k2]) {
      const read = [...new Set(m.records().map((r) => r.partition))].sort();
      expect(read).toEqual(m.assignment());
      expect(read.length).toBe(2);
    }
    for (const m of [k1, k2]) expect(await m.stop()).toBe(0);
    const g1 = (await groupView(broker, G1))!;
    expect(g1.state).toBe("Empty");
    expect(g1.offsets.map((o) => o.committedOffset)).toEqual([50, 50, 50, 50]);
  });

  test("groups: kcat: two groups read the topic independently", async () => {
    // G2 has no commits: it starts from the beginning, whatever G1 committed.
    const k3 = new KcatMember("k3", G2);
    await awaitStableSplit(broker, G2, TOPIC, [4]);
    const all = await awaitRead([k3], paced.produced);
    expect(exactlyOnceProblems(paced.produced, all)).toEqual([]);
    // G1 goes on from its commits: only what comes now.
    const k4 = new KcatMember("k4", G1);
    await awaitStableSplit(broker, G1, TOPIC, [4]);
    const before = paced.produced.length;
    await paced.burst(40);
    const fresh = paced.produced.slice(before);
    expect(exactlyOnceProblems(fresh, await awaitRead([k4], fresh))).toEqual([]);
    expect(exactlyOnceProblems(paced.produced, await awaitRead([k3], paced.produced))).toEqual([]);
    for (const m of [k3, k4]) expect(await m.stop()).toBe(0);
    for (const group of [G1, G2]) {
      const view = (await groupView(broker, group))!;
      expect(view.state).toBe("Empty");
      expect(view.offsets.map((o) => o.committedOffset)).toEqual([60, 60, 60, 60]);
    }
  });
});
