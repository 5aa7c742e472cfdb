/**
 * confluent-kafka-python 1.7 (librdkafka 2.0.2) consumer groups on a real Brook process
 * (issue 5, proofs 1, 2 and 3). Each member is its own process (python/group_member.py)
 * that commits every message synchronously after processing it and reports its
 * on_assign / on_revoke callbacks; messages come from a kafkajs producer.
 *
 * - Eager (librdkafka's default range assignor): three members get two partitions each
 *   of six; one leaves (close: LeaveGroup) and the others go on from its commits; a fourth
 *   joins; produced all along, every message is processed exactly once.
 * - Cooperative-sticky (KIP-429): when a member joins, the others are revoked only the
 *   partitions that move to it, and keep the rest through both rebalances; when it
 *   leaves, they are only given its partitions, nothing revoked.
 * - Static membership (KIP-345): a static member that restarts within its session timeout
 *   gets its old partitions back with no rebalance (the generation stays, the other
 *   member sees no callback); a second live process with the same group.instance.id takes
 *   the place over and the first is fenced (FENCED_INSTANCE_ID, fatal in librdkafka).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Kafka, Producer } from "kafkajs";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";
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
  type GroupView,
  groupView,
  kafkaOf,
  type MemberEvent,
  killAllMembers,
  ownershipRuns,
  partitionsHandedOverBy,
  runProblems,
} from "./helpers.ts";

const PARTITIONS = 6;
const HEARTBEAT = 12;
const FENCED_INSTANCE_ID = 82;

let broker: TestBroker;
let kafka: Kafka;
let producer: Producer;

/** A member of `group` on `topic`, client.id `py-<name>`, with short timeouts. */
function member(name: string, group: string, topic: string, config: Record<string, unknown> = {}) {
  return new PythonMember(name, {
    bootstrap: broker.bootstrap,
    group,
    topics: [topic],
    config: {
      "client.id": `py-${name}`,
      "session.timeout.ms": SESSION_TIMEOUT_MS,
      "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
      // Also librdkafka's JoinGroup rebalance timeout: bounds every join phase.
      "max.poll.interval.ms": REBALANCE_TIMEOUT_MS,
      "fetch.wait.max.ms": 100,
      ...config,
    },
  });
}

/** The view's partitions of `topic` for the member whose client id is `clientId`. */
function viewPartitions(view: GroupView, clientId: string, topic: string): number[] | undefined {
  const found = view.members.find((m) => m.clientId === clientId);
  if (found === undefined) return undefined;
  return (found.assignment ?? [])
    .filter((a) => a.topic === topic)
    .flatMap((a) => a.partitions)
    .sort((a, b) => a - b);
}

/**
 * The broker's Stable split of `topic` with these partition counts, and each given member
 * reporting (from its callbacks) what the broker says it has. Returns the view.
 */
async function awaitAgreedSplit(
  group: string,
  topic: string,
  sizes: number[],
  members: PythonMember[],
): Promise<GroupView> {
  return eventually(
    `${group}: members agree on the split ${sizes}`,
    async () => {
      const view = await awaitStableSplit(broker, group, topic, sizes);
      if (view.members.length !== members.length) return null;
      for (const m of members) {
        const expected = viewPartitions(view, `py-${m.name}`, topic);
        if (JSON.stringify(expected) !== JSON.stringify(m.partitions())) return null;
      }
      return view;
    },
    WAIT_MS,
  );
}

/** Waits until every message `paced` produced so far was processed by one of `members`. */
async function awaitProcessed(paced: PacedProducer, members: PythonMember[]): Promise<void> {
  const target = [...paced.produced];
  await eventually(
    `${target.length} messages processed`,
    () => {
      for (const m of members) {
        const fatal = m.of("error").find((e) => e.fatal || e.name === "_FATAL");
        if (fatal) throw new Error(`${m.name}: ${fatal.str}`);
      }
      const done = new Set(members.flatMap((m) => m.processed().map((p) => p.key)));
      return target.every((key) => done.has(key));
    },
    WAIT_MS,
  );
}

beforeAll(async () => {
  broker = await startBroker();
  kafka = kafkaOf(broker, "groups-python");
  await createTopics(kafka, ["py-eager", "py-coop", "py-static"], PARTITIONS);
  producer = kafka.producer();
  await producer.connect();
});

afterAll(async () => {
  await killAllMembers();
  await producer?.disconnect();
  if (broker) await stopAndClean(broker);
});

describe("groups: python: eager", () => {
  const TOPIC = "py-eager";
  const GROUP = "py-eager-group";
  let paced: PacedProducer;
  const all = new Map<string, PythonMember>();
  const live = () => [...all.values()].filter((m) => !left.has(m.name));
  const everyone = () => [...all.values()];
  const left = new Set<string>();
  const start = (name: string) => {
    const m = member(name, GROUP, TOPIC);
    all.set(name, m);
    return m;
  };

  test("groups: python: eager: three members of a 6-partition topic get two each", async () => {
    paced = new PacedProducer(producer, TOPIC, PARTITIONS, "py");
    await paced.burst(60);
    paced.start();
    ["a", "b", "c"].forEach(start);
    await awaitAgreedSplit(GROUP, TOPIC, [2, 2, 2], live());
    await awaitProcessed(paced, everyone());
  });

  test("groups: python: eager: one leaves, the others take over from its commits", async () => {
    const before = (await groupView(broker, GROUP))!;
    const leaver = all.get("c")!;
    expect(leaver.partitions().length).toBe(2);
    left.add("c");
    expect(await leaver.close()).toBe(0);
    expect(leaver.of("closed").length).toBe(1);
    const view = await awaitAgreedSplit(GROUP, TOPIC, [3, 3], live());
    expect(view.generationId).toBeGreaterThan(before.generationId);
    await awaitProcessed(paced, everyone());
  });

  test("groups: python: eager: a fourth member joins and gets two partitions", async () => {
    const before = (await groupView(broker, GROUP))!;
    start("d");
    const view = await awaitAgreedSplit(GROUP, TOPIC, [2, 2, 2], live());
    expect(view.generationId).toBeGreaterThan(before.generationId);
    expect(all.get("d")!.partitions().length).toBe(2);
    await awaitProcessed(paced, everyone());
  });

  test("groups: python: eager: every produced message was processed exactly once", async () => {
    await paced.stop();
    await paced.burst(60);
    await awaitProcessed(paced, everyone());
    const members = [...all.values()];
    const processed = members.flatMap((m) => m.processed());
    expect(paced.produced.length).toBeGreaterThan(200);
    expect(exactlyOnceProblems(paced.produced, processed)).toEqual([]);
    const runs = ownershipRuns(processed);
    expect(runProblems(runs)).toEqual([]);
    // Both partitions c had went on with another member right after c's last message.
    expect(partitionsHandedOverBy(runs, "c")).toBe(2);
    expect(processed.some((p) => p.member === "d")).toBe(true);
    for (const m of members) {
      expect(m.of("commit_error")).toEqual([]);
      expect(m.of("error")).toEqual([]);
    }
    // Eager: each rebalance revokes a member's whole assignment, then assigns anew.
    for (const m of members) {
      let current: string[] = [];
      for (const e of m.events) {
        const parts = (e.partitions ?? [])
          .map(([, p]: [string, number]) => p)
          .sort()
          .join(",");
        if (e.event === "revoke") {
          expect(parts).toBe(current.join(","));
          current = [];
        }
        if (e.event === "assign") current = parts === "" ? [] : parts.split(",");
      }
    }
    const view = (await groupView(broker, GROUP))!;
    expect(view.offsets.length).toBe(PARTITIONS);
    expect(view.totalLag).toBe(0);
    for (const m of live()) expect(await m.close()).toBe(0);
  });
});

describe("groups: python: cooperative-sticky", () => {
  // Messages are produced only between membership changes, and each change waits until
  // they are processed: librdkafka before 2.10 treats a commit refused with
  // ILLEGAL_GENERATION during a cooperative rebalance as a lost assignment (its issue
  // #4059, fixed by #4908), which Kafka provokes as well as Brook does (a commit of the
  // old generation after the join completed). Idle members commit nothing.
  const TOPIC = "py-coop";
  const GROUP = "py-coop-group";
  const coop = { "partition.assignment.strategy": "cooperative-sticky" };
  let paced: PacedProducer;
  let a: PythonMember;
  let b: PythonMember;
  let c: PythonMember;
  /** Events each member had reported before the change under test. */
  const mark = new Map<PythonMember, number>();
  const since = (m: PythonMember, kind: string) =>
    m.events.slice(mark.get(m) ?? 0).filter((e) => e.event === kind);
  const partitionsOf = (events: MemberEvent[]) =>
    events
      .flatMap((e) => (e.partitions as [string, number][]).map(([, p]) => p))
      .sort((x, y) => x - y);

  test("groups: python: cooperative-sticky: two members split six partitions", async () => {
    paced = new PacedProducer(producer, TOPIC, PARTITIONS, "coop");
    a = member("coop-a", GROUP, TOPIC, coop);
    b = member("coop-b", GROUP, TOPIC, coop);
    await awaitAgreedSplit(GROUP, TOPIC, [3, 3], [a, b]);
    await paced.burst(30);
    await awaitProcessed(paced, [a, b]);
  });

  test("groups: python: cooperative-sticky: a joining member takes only what moves", async () => {
    const before = (await groupView(broker, GROUP))!;
    const had = new Map([
      [a, a.partitions()],
      [b, b.partitions()],
    ]);
    for (const m of [a, b]) mark.set(m, m.events.length);
    c = member("coop-c", GROUP, TOPIC, coop);
    const view = await awaitAgreedSplit(GROUP, TOPIC, [2, 2, 2], [a, b, c]);
    // KIP-429: one rebalance to revoke what moves, a second to hand it out.
    expect(view.generationId).toBeGreaterThanOrEqual(before.generationId + 2);
    const moved: number[] = [];
    for (const m of [a, b]) {
      const revoked = partitionsOf(since(m, "revoke"));
      const kept = m.partitions();
      // Only partitions it had were revoked, one each, and it kept the other two.
      expect(revoked.length).toBe(1);
      expect(had.get(m)).toEqual(expect.arrayContaining(revoked));
      expect(kept).toEqual(had.get(m)!.filter((p) => !revoked.includes(p)));
      // Nothing it kept was revoked, lost or handed to it again (incremental callbacks).
      expect(partitionsOf(since(m, "assign"))).toEqual([]);
      expect(since(m, "lost")).toEqual([]);
      moved.push(...revoked);
    }
    // Exactly what was revoked went to the newcomer, which gave nothing up.
    expect(c.partitions()).toEqual(moved.sort((x, y) => x - y));
    expect(c.of("revoke")).toEqual([]);
    // Everyone goes on from the commits: c on what it took over, a and b on the rest.
    await paced.burst(30);
    await awaitProcessed(paced, [a, b, c]);
    expect(c.processed().length).toBe(10);
  });

  test("groups: python: cooperative-sticky: a leaver's partitions are only added", async () => {
    for (const m of [a, b]) mark.set(m, m.events.length);
    const had = new Map([
      [a, a.partitions()],
      [b, b.partitions()],
    ]);
    const hadC = c.partitions();
    expect(await c.close()).toBe(0);
    await awaitAgreedSplit(GROUP, TOPIC, [3, 3], [a, b]);
    for (const m of [a, b]) {
      expect(since(m, "revoke")).toEqual([]);
      expect(since(m, "lost")).toEqual([]);
      const added = partitionsOf(since(m, "assign"));
      expect(m.partitions()).toEqual([...had.get(m)!, ...added].sort((x, y) => x - y));
      expect(hadC).toEqual(expect.arrayContaining(added));
    }
    await paced.burst(30);
    await awaitProcessed(paced, [a, b, c]);
    const processed = [a, b, c].flatMap((m) => m.processed());
    expect(exactlyOnceProblems(paced.produced, processed)).toEqual([]);
    expect(runProblems(ownershipRuns(processed))).toEqual([]);
    for (const m of [a, b, c]) {
      expect(m.of("commit_error")).toEqual([]);
      expect(m.of("lost")).toEqual([]);
    }
    for (const m of [a, b]) expect(await m.close()).toBe(0);
  });
});

describe("groups: python: static membership", () => {
  const TOPIC = "py-static";
  const GROUP = "py-static-group";
  const staticMember = (name: string, instance: string) =>
    member(name, GROUP, TOPIC, { "group.instance.id": instance, "client.id": `py-${instance}` });
  let paced: PacedProducer;
  let first: PythonMember;
  let other: PythonMember;
  let restarted: PythonMember;
  let stable: GroupView;
  const instanceMember = (view: GroupView, instance: string) =>
    view.members.find((m) => m.groupInstanceId === instance)!;

  test("groups: python: static: two static members split six partitions", async () => {
    paced = new PacedProducer(producer, TOPIC, PARTITIONS, "static");
    first = staticMember("first", "i-1");
    other = staticMember("other", "i-2");
    stable = await eventually(
      "both static members assigned",
      async () => {
        const view = await awaitStableSplit(broker, GROUP, TOPIC, [3, 3]);
        const ok = first.partitions().length === 3 && other.partitions().length === 3;
        return ok ? view : null;
      },
      WAIT_MS,
    );
    expect(stable.members.map((m) => m.groupInstanceId).sort()).toEqual(["i-1", "i-2"]);
    await paced.burst(30);
    await awaitProcessed(paced, [first, other]);
  });

  test("groups: python: static: a restart within the session timeout: no rebalance", async () => {
    const otherCallbacks = other.of("assign").length + other.of("revoke").length;
    const partitions = first.partitions();
    const oldId = instanceMember(stable, "i-1").memberId;
    // A static member's close sends no LeaveGroup (KIP-345): the group does not move.
    expect(await first.close()).toBe(0);
    const closedAt = Date.now();
    const meanwhile = (await groupView(broker, GROUP))!;
    expect(meanwhile.state).toBe("Stable");
    expect(meanwhile.generationId).toBe(stable.generationId);
    expect(instanceMember(meanwhile, "i-1").memberId).toBe(oldId);
    // Messages arrive while it is away; it must go on from its commits.
    await paced.burst(30);
    restarted = staticMember("restarted", "i-1");
    await restarted.waitFor("assignment", () => restarted.partitions().length > 0);
    await awaitProcessed(paced, [first, other, restarted]);
    expect(Date.now() - closedAt).toBeLessThan(SESSION_TIMEOUT_MS);
    expect(restarted.partitions()).toEqual(partitions);
    const after = (await groupView(broker, GROUP))!;
    expect(after.state).toBe("Stable");
    expect(after.generationId).toBe(stable.generationId);
    const newId = instanceMember(after, "i-1").memberId;
    expect(newId).not.toBe(oldId);
    expect(instanceMember(after, "i-2").memberId).toBe(instanceMember(stable, "i-2").memberId);
    // The other member saw no rebalance at all.
    expect(other.of("assign").length + other.of("revoke").length).toBe(otherCallbacks);
    const processed = [first, other, restarted].flatMap((m) => m.processed());
    expect(exactlyOnceProblems(paced.produced, processed)).toEqual([]);
    expect(runProblems(ownershipRuns(processed))).toEqual([]);
    expect(processed.some((p) => p.member === "restarted")).toBe(true);
  });

  test("groups: python: static: a second live member with its instance id fences it", async () => {
    const before = (await groupView(broker, GROUP))!;
    const fencedId = instanceMember(before, "i-1").memberId;
    const partitions = restarted.partitions();
    const otherCallbacks = other.of("assign").length + other.of("revoke").length;
    const duplicate = staticMember("duplicate", "i-1");
    await duplicate.waitFor("assignment", () => duplicate.partitions().length > 0);
    expect(duplicate.partitions()).toEqual(partitions);
    // The one that was there learns on its next heartbeat: a fatal error in librdkafka
    // (error_cb reports _FATAL; the message names the broker's FENCED_INSTANCE_ID).
    const fenced = await restarted.waitFor("fenced", () =>
      restarted.of("error").find((e) => e.name === "_FATAL"),
    );
    expect(fenced.str).toContain(
      "Static consumer fenced by other consumer with same group.instance.id",
    );
    const after = (await groupView(broker, GROUP))!;
    expect(after.generationId).toBe(before.generationId);
    expect(after.state).toBe("Stable");
    const takenId = instanceMember(after, "i-1").memberId;
    expect(takenId).not.toBe(fencedId);
    expect(other.of("assign").length + other.of("revoke").length).toBe(otherCallbacks);
    // On the wire: the old member id is FENCED_INSTANCE_ID, the new one is fine.
    const raw = await RawClient.connect(broker.port);
    try {
      const beat = (memberId: string) =>
        raw
          .request(HEARTBEAT, 4, {
            groupId: GROUP,
            generationId: after.generationId,
            memberId,
            groupInstanceId: "i-1",
          })
          .then((answer) => answer.errorCode);
      expect(await beat(fencedId)).toBe(FENCED_INSTANCE_ID);
      expect(await beat(takenId)).toBe(0);
    } finally {
      raw.close();
    }
    await restarted.kill();
    for (const m of [duplicate, other]) expect(await m.close()).toBe(0);
  });
});

describe("groups: python", () => {
  test("groups: python: the broker logged no warnings or errors", () => {
    const lines = broker
      .stderr()
      .split("\n")
      .filter((line) => / (WARN|ERROR) /.test(line));
    expect(lines.slice(0, 10)).toEqual([]);
  });
});
