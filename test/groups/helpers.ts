/**
 * Shared pieces of the consumer group tests against real clients (test/groups/): the
 * group as the broker sees it (admin API), a paced producer that keeps producing while
 * membership changes, the exactly-once check over what a group consumed, a broker that
 * restarts on the same Kafka port, and a confluent-kafka-python group member run as a
 * child process (python/group_member.py) that reports its events as JSON lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { eventually, startBroker, type TestBroker } from "../helpers/broker.ts";

/** The broker's minimum (group.min.session.timeout.ms). */
export const SESSION_TIMEOUT_MS = 6000;
export const HEARTBEAT_INTERVAL_MS = 500;
/** How long a rebalance may wait for a member; bounds every join phase in these tests. */
export const REBALANCE_TIMEOUT_MS = 10_000;
/** Deadline of every awaited condition. */
export const WAIT_MS = 20_000;

// ---------------------------------------------------------------------------------------
// The group as the broker sees it: GET /v1/groups/:id.

export interface GroupMemberView {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  assignment: { topic: string; partitions: number[] }[] | null;
}

export interface GroupView {
  groupId: string;
  state: string;
  protocol: string;
  generationId: number;
  leaderId: string | null;
  members: GroupMemberView[];
  offsets: { topic: string; partition: number; committedOffset: number; lag: number | null }[];
  totalLag: number;
}

export async function groupView(broker: TestBroker, groupId: string): Promise<GroupView | null> {
  const response = await fetch(`${broker.adminUrl}/v1/groups/${encodeURIComponent(groupId)}`);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`GET /v1/groups/${groupId}: ${response.status}`);
  return (await response.json()) as GroupView;
}

/** Partitions of `topic` per member id, sorted, from a Stable group's view. */
export function partitionsByMember(view: GroupView, topic: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const member of view.members) {
    const mine = (member.assignment ?? [])
      .filter((a) => a.topic === topic)
      .flatMap((a) => a.partitions);
    out.set(
      member.memberId,
      mine.sort((a, b) => a - b),
    );
  }
  return out;
}

/**
 * Waits until the broker shows the group Stable with `members` members whose
 * assignments of `topic` have the given sizes (in any order) and cover every partition
 * once. Returns that view.
 */
export async function awaitStableSplit(
  broker: TestBroker,
  groupId: string,
  topic: string,
  sizes: number[],
): Promise<GroupView> {
  const want = [...sizes].sort().join(",");
  const total = sizes.reduce((a, b) => a + b, 0);
  return eventually(
    `${groupId} Stable with partition counts ${want}`,
    async () => {
      const view = await groupView(broker, groupId);
      if (view === null || view.state !== "Stable") return null;
      const split = [...partitionsByMember(view, topic).values()];
      const counts = split
        .map((p) => p.length)
        .sort()
        .join(",");
      const covered = new Set(split.flat());
      return counts === want && covered.size === total ? view : null;
    },
    WAIT_MS,
  );
}

/** A quiet kafkajs client of `broker`. */
export function kafkaOf(broker: TestBroker, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
}

/** Creates `topics` with `partitions` partitions each through kafkajs's admin. */
export async function createTopics(
  kafka: Kafka,
  topics: readonly string[],
  partitions: number,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: topics.map((topic) => ({ topic, numPartitions: partitions })),
    });
    if (!created) throw new Error(`Topics not created: ${topics.join(", ")}`);
  } finally {
    await admin.disconnect();
  }
}

// ---------------------------------------------------------------------------------------
// Producing while the membership changes.

/** Key and value of the `i`th message of a run. */
export const messageKey = (prefix: string, i: number) => `${prefix}-${i}`;

/**
 * Produces to every partition in turn at a steady pace until stopped: the load shape of
 * the test (messages keep arriving while members join and leave), not a wait. Keys are
 * recorded once the broker acknowledged them.
 */
export class PacedProducer {
  readonly produced: string[] = [];
  #next = 0;
  #running = false;
  #loop: Promise<void> | null = null;

  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly partitions: number,
    private readonly prefix: string,
  ) {}

  /** Sends `count` messages now, round-robin over the partitions. */
  async burst(count: number): Promise<void> {
    const indexes = Array.from({ length: count }, () => this.#next++);
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      messages: indexes.map((i) => ({
        key: messageKey(this.prefix, i),
        value: messageKey(this.prefix, i),
        partition: i % this.partitions,
      })),
    });
    for (const i of indexes) this.produced.push(messageKey(this.prefix, i));
  }

  /** One message per partition every `periodMs` until `stop`. */
  start(periodMs = 40): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = (async () => {
      while (this.#running) {
        await this.burst(this.partitions);
        await new Promise((resolve) => setTimeout(resolve, periodMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    this.#loop = null;
  }
}

/** One processed message: who processed it, where it was. */
export interface Processed {
  member: string;
  partition: number;
  offset: number;
  key: string;
}

/**
 * Exactly once: every produced key processed once, nothing else processed. Returns the
 * problems (at most `limit`), so `expect(...).toEqual([])` prints a readable failure.
 */
export function exactlyOnceProblems(
  produced: readonly string[],
  processed: readonly Processed[],
  limit = 20,
): string[] {
  const problems: string[] = [];
  const expected = new Set(produced);
  const seen = new Map<string, Processed>();
  for (const each of processed) {
    const where = `${each.key} (partition ${each.partition} offset ${each.offset}, ${each.member})`;
    if (!expected.has(each.key)) problems.push(`unexpected ${where}`);
    const before = seen.get(each.key);
    if (before !== undefined) {
      problems.push(`twice: ${where}, first by ${before.member} at offset ${before.offset}`);
    }
    seen.set(each.key, each);
  }
  const missing = produced.filter((key) => !seen.has(key));
  if (missing.length > 0) {
    problems.push(`${missing.length} never processed, first ${missing.slice(0, 5).join(" ")}`);
  }
  return problems.slice(0, limit);
}

/** A stretch of a partition processed by one member, offsets `from`..`to` inclusive. */
export interface OwnershipRun {
  member: string;
  from: number;
  to: number;
}

/**
 * Who processed which stretch of each partition, in offset order. With exactly-once
 * processing the runs are contiguous from offset 0, and a member that took a partition
 * over starts right after the previous owner's last committed message.
 */
export function ownershipRuns(processed: readonly Processed[]): Map<number, OwnershipRun[]> {
  const byPartition = new Map<number, Processed[]>();
  for (const each of processed) {
    byPartition.set(each.partition, [...(byPartition.get(each.partition) ?? []), each]);
  }
  const out = new Map<number, OwnershipRun[]>();
  for (const [partition, list] of [...byPartition].sort((a, b) => a[0] - b[0])) {
    const runs: OwnershipRun[] = [];
    for (const each of list.sort((a, b) => a.offset - b.offset)) {
      const last = runs.at(-1);
      if (last !== undefined && last.member === each.member && last.to + 1 === each.offset) {
        last.to = each.offset;
      } else {
        runs.push({ member: each.member, from: each.offset, to: each.offset });
      }
    }
    out.set(partition, runs);
  }
  return out;
}

/** Gaps and overlaps between runs, and runs not starting at offset 0. */
/** Partitions that `member` owned for a while and another member went on with afterwards. */
export function partitionsHandedOverBy(runs: Map<number, OwnershipRun[]>, member: string): number {
  return [...runs.values()].filter((list) =>
    list.some((run, i) => run.member === member && i + 1 < list.length),
  ).length;
}

export function runProblems(runs: Map<number, OwnershipRun[]>): string[] {
  const problems: string[] = [];
  for (const [partition, list] of runs) {
    let next = 0;
    for (const run of list) {
      if (run.from !== next) {
        problems.push(
          `partition ${partition}: ${run.member} starts at ${run.from}, expected ${next}`,
        );
      }
      next = run.to + 1;
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// A broker that comes back on the same Kafka port, so running clients find it again.

/**
 * Starts Brook with `--kafka 127.0.0.1:<port>` (0 = any free port) through `sh`, which
 * rewrites the `--kafka` value that startBroker passes and then execs the broker, so the
 * process id stop() and kill() signal is the broker's own.
 */
export function startBrokerOnPort(dataDir: string, port: number): Promise<TestBroker> {
  const script = [
    "swap=",
    "for arg; do shift",
    `  if [ "$swap" = 1 ]; then arg=127.0.0.1:${port}; swap=; fi`,
    '  if [ "$arg" = --kafka ]; then swap=1; fi',
    '  set -- "$@" "$arg"',
    "done",
    'exec "$@"',
  ].join("\n");
  const main = join(import.meta.dir, "../../src/main.ts");
  return startBroker({ dataDir, command: ["/bin/sh", "-c", script, "sh", process.execPath, main] });
}

// ---------------------------------------------------------------------------------------
// confluent-kafka-python members.

const PYTHON = "/usr/bin/python3";
const MEMBER_SCRIPT = join(import.meta.dir, "python/group_member.py");

export interface MemberEvent {
  event: string;
  [field: string]: any;
}

const runningMembers = new Set<PythonMember>();

/**
 * A librdkafka consumer in its own process. `events` grows as the member reports;
 * `assignment()` replays assign/revoke/lost (eager: revoke all, assign all; cooperative:
 * incremental), which gives the current assignment under either protocol.
 */
export class PythonMember {
  readonly events: MemberEvent[] = [];
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;
  #stderr = "";

  constructor(
    readonly name: string,
    spec: { bootstrap: string; group: string; topics: string[]; config?: Record<string, unknown> },
  ) {
    this.#child = spawn(PYTHON, [MEMBER_SCRIPT, JSON.stringify(spec)], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    runningMembers.add(this);
    let partial = "";
    this.#child.stdout!.on("data", (chunk: Buffer) => {
      partial += chunk.toString();
      const lines = partial.split("\n");
      partial = lines.pop()!;
      for (const line of lines) if (line.length > 0) this.events.push(JSON.parse(line));
    });
    this.#child.stderr!.on("data", (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    this.#child.stdin!.on("error", () => {});
    this.#exited = new Promise((resolve) =>
      this.#child.on("exit", (code) => {
        runningMembers.delete(this);
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.#child.pid!;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The current assignment as "topic:partition" strings, sorted. */
  assignment(): string[] {
    const current = new Set<string>();
    for (const event of this.events) {
      const parts = (event.partitions ?? []).map(([t, p]: [string, number]) => `${t}:${p}`);
      if (event.event === "assign") for (const p of parts) current.add(p);
      const gone = event.event === "revoke" || event.event === "lost";
      if (gone) for (const p of parts) current.delete(p);
    }
    return [...current].sort();
  }

  /** Partition numbers of the current assignment, sorted. */
  partitions(): number[] {
    return this.assignment()
      .map((p) => Number(p.slice(p.lastIndexOf(":") + 1)))
      .sort((a, b) => a - b);
  }

  processed(): Processed[] {
    return this.events
      .filter((e) => e.event === "message")
      .map((e) => ({
        member: this.name,
        partition: e.partition,
        offset: e.offset,
        key: e.key,
      }));
  }

  /** The processed messages whose commit succeeded (a "committed" event followed). */
  committedProcessed(): Processed[] {
    const out: Processed[] = [];
    let last: Processed | null = null;
    for (const e of this.events) {
      if (e.event === "message") {
        last = { member: this.name, partition: e.partition, offset: e.offset, key: e.key };
      } else if (
        e.event === "committed" &&
        last !== null &&
        e.partition === last.partition &&
        e.offset === last.offset + 1
      ) {
        out.push(last);
        last = null;
      }
    }
    return out;
  }

  of(kind: string): MemberEvent[] {
    return this.events.filter((e) => e.event === kind);
  }

  async waitFor<T>(what: string, probe: () => T): Promise<NonNullable<T>> {
    return eventually(
      `${this.name}: ${what}`,
      () => {
        if (this.#child.exitCode !== null) {
          throw new Error(`${this.name} exited ${this.#child.exitCode}:\n${this.#stderr}`);
        }
        return probe();
      },
      WAIT_MS,
    );
  }

  /** consumer.close(): a dynamic member leaves the group. Exit code 0 expected. */
  async close(): Promise<number | null> {
    if (this.#child.exitCode !== null) return this.#child.exitCode;
    this.#child.stdin!.write(`${JSON.stringify({ op: "close" })}\n`);
    return exitedOrKilled(this.#child, this.#exited);
  }

  /** SIGKILL by pid: the member vanishes without a word to the broker. */
  kill(): Promise<void> {
    return killByPid(this.#child, this.#exited);
  }
}

/** Safety net for afterAll: kills the members a failed test left running. */
export async function killAllMembers(): Promise<void> {
  await Promise.all([...runningMembers].map((member) => member.kill()));
}

/** SIGKILL by pid unless the process has ended; resolves once it has. */
export async function killByPid(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
  await exited;
}

/** The exit code once the process ends by itself, or null after a SIGKILL at WAIT_MS. */
export async function exitedOrKilled(
  child: ChildProcess,
  exited: Promise<number | null>,
): Promise<number | null> {
  const timer = setTimeout(() => void killByPid(child, exited), WAIT_MS);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}
