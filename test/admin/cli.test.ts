/**
 * The `brook` subcommands as real processes against a real broker: topic, group and
 * cluster commands over the admin API (tables, --json, exit 1 with the server's message,
 * exit 2 for bad usage), and lines produced with `brook produce` read back with
 * `brook consume` over the Kafka protocol — keyed lines placed by Kafka's murmur2
 * partitioner, keyless ones round-robin, and `--group` resuming where it committed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { CompressionTypes, Kafka, logLevel } from "kafkajs";
import { partitionForKey } from "../../src/cli/partitioner.ts";
import { BUN, REPO, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";

const MAIN = join(REPO, "src", "main.ts");
let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  if (broker) await stopAndClean(broker);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `brook <args>` with --admin-url or --bootstrap filled in, stdin from `input`. */
async function brook(args: string[], input = ""): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("BROOK_")) env[key] = value;
  }
  env.BROOK_ADMIN_URL = broker.adminUrl;
  env.BROOK_BOOTSTRAP = broker.bootstrap;
  const child = Bun.spawn([BUN, MAIN, ...args], {
    cwd: REPO,
    env,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  child.stdin.write(input);
  await child.stdin.end();
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  clearTimeout(killer);
  return { code, stdout, stderr };
}

function expectOk(run: Run): Run {
  if (run.code !== 0) throw new Error(`Exit ${run.code}: ${run.stderr}`);
  expect(run.stderr).toBe("");
  return run;
}

/** Exit code and exactly one line on stderr. */
function expectFailure(run: Run, code: 1 | 2, line: string | RegExp): void {
  expect(run.code).toBe(code);
  expect(run.stdout).toBe("");
  const lines = run.stderr.split("\n");
  expect(lines).toHaveLength(2);
  if (typeof line === "string") expect(lines[0]).toBe(line);
  else expect(lines[0]).toMatch(line);
}

async function highWatermarks(topic: string): Promise<number[]> {
  const view = JSON.parse(expectOk(await brook(["topic", "describe", topic, "--json"])).stdout);
  return view.partitions.map((p: { highWatermark: number }) => p.highWatermark);
}

const sorted = (text: string) =>
  text
    .split("\n")
    .filter((line) => line !== "")
    .sort();

describe("cli: admin commands against a real broker", () => {
  test("cli: the checkout's short form, npm run -s brook -- …, is the same command", async () => {
    expectOk(await brook(["topic", "create", "cli-short-form", "--partitions", "2"]));
    const direct = expectOk(await brook(["topic", "list"]));
    const env = { ...process.env, BROOK_ADMIN_URL: broker.adminUrl };
    const viaNpm = Bun.spawnSync(["npm", "run", "-s", "brook", "--", "topic", "list"], {
      cwd: REPO,
      env,
    });
    expect(viaNpm.stderr.toString()).toBe("");
    expect(viaNpm.exitCode).toBe(0);
    expect(viaNpm.stdout.toString()).toBe(direct.stdout);
    expect(direct.stdout).toContain("cli-short-form");
    expectOk(await brook(["topic", "delete", "cli-short-form"]));
  });

  test("cli: topic create, list, describe, delete; exit 1 with the server's message on refusal", async () => {
    expect(
      expectOk(
        await brook([
          "topic",
          "create",
          "cli-orders",
          "--partitions",
          "3",
          "--config",
          "retention.ms=3600000",
        ]),
      ).stdout,
    ).toBe("Created topic cli-orders: 3 partitions, replication factor 1\n");
    expectFailure(
      await brook(["topic", "create", "cli-orders"]),
      1,
      "brook: Topic 'cli-orders' already exists.",
    );
    expectFailure(
      await brook(["topic", "create", "../etc"]),
      1,
      "brook: Topic name has characters other than [a-zA-Z0-9._-]: ../etc",
    );
    expectFailure(
      await brook(["topic", "create", "t2", "--config", "retention.ms=soon"]),
      1,
      "brook: Not an integer: soon",
    );

    const list = expectOk(await brook(["topic", "list"])).stdout;
    expect(list).toMatch(/^NAME\s+PARTITIONS\s+REPLICATION-FACTOR\s+INTERNAL\s+TOPIC-ID\n/);
    expect(list).toMatch(/\ncli-orders\s+3\s+1\s+false\s+[0-9a-f-]{36}\n/);
    const described = expectOk(await brook(["topic", "describe", "cli-orders"])).stdout;
    expect(described).toContain("Configs: retention.ms=3600000\n");
    expect(described).toMatch(
      /PARTITION\s+LEADER\s+EPOCH\s+REPLICAS\s+ISR\s+ELR\s+LOG-START\s+LOG-END\s+HIGH-WATERMARK\s+LAST-STABLE\s+SIZE-BYTES\s+REPLICA-LAG\n/,
    );
    // On its leader: epoch 0, this node the only replica and in the ISR, an empty log, lag 0.
    expect(described).toMatch(/\n0\s+(\d+)\s+0\s+\1\s+\1\s+-\s+0\s+0\s+0\s+0\s+\d+\s+\1:0\n/);
    const json = JSON.parse(
      expectOk(await brook(["topic", "describe", "cli-orders", "--json"])).stdout,
    );
    expect(json).toMatchObject({
      name: "cli-orders",
      partitionCount: 3,
      configs: { "retention.ms": "3600000" },
    });

    expect(expectOk(await brook(["topic", "delete", "cli-orders"])).stdout).toBe(
      "Deleted topic cli-orders\n",
    );
    expectFailure(
      await brook(["topic", "describe", "cli-orders"]),
      1,
      "brook: Topic does not exist: cli-orders",
    );
    expectFailure(
      await brook(["topic", "delete", "cli-orders"]),
      1,
      "brook: Topic does not exist: cli-orders",
    );
  });

  test("cli: bad usage is one line and exit 2", async () => {
    expectFailure(
      await brook(["topic", "create", "t", "--partitions", "0"]),
      2,
      'brook: Invalid --partitions: expected a positive integer, got "0"',
    );
    expectFailure(
      await brook(["topic"]),
      2,
      "brook: Missing subcommand: brook topic create|list|describe|delete",
    );
    expectFailure(await brook(["topic", "rename", "a"]), 2, /^brook: Unknown argument/);
    expectFailure(
      await brook(["topic", "list", "--admin-url", "ftp://x"]),
      2,
      'brook: Invalid --admin-url: expected an http:// or https:// URL, got "ftp://x"',
    );
    expectFailure(await brook(["produce"]), 2, "brook: Missing required argument: topic");
    expectFailure(
      await brook(["produce", "--topic", "t", "--bootstrap", "nowhere"]),
      2,
      'brook: Invalid --bootstrap: expected host:port, got "nowhere"',
    );
    expectFailure(
      await brook(["consume", "--topic", "t", "--max-messages", "0"]),
      2,
      'brook: Invalid --max-messages: expected an integer of at least 1, got "0"',
    );
    expectFailure(await brook(["group", "describe"]), 2, /^brook: Not enough non-option arguments/);
  });

  test("cli: an unreachable admin API is exit 1 naming the URL", async () => {
    expectFailure(
      await brook(["cluster", "status", "--admin-url", "http://127.0.0.1:1"]),
      1,
      /^brook: Cannot reach the admin API at http:\/\/127\.0\.0\.1:1: /,
    );
  });

  test("cli: cluster status", async () => {
    const status = expectOk(await brook(["cluster", "status"])).stdout;
    // A node alone is a Raft quorum of one voter, itself, and its own controller.
    expect(status).toMatch(
      /^Cluster id: \S+\nAnswered by node: (\d+)\nController: \1\nRaft: leader, term \d+, commit index \d+, applied \d+\nVoters: \1; observers: -\n\nNODE\s+KAFKA\s+GOSSIP\s+SWIM\s+INCARNATION\s+BROKER\n\d+ \(controller\) \*\s+/,
    );
    expect(status).toMatch(
      new RegExp(
        `${broker.bootstrap.replaceAll(".", "\\.")}\\s+${broker.gossip.replaceAll(".", "\\.")}\\s+alive\\s+0\\s+registered\n`,
      ),
    );
  });
});

describe("cli: produce and consume against a real broker", () => {
  test("cli: keyless lines go round-robin and come back whole", async () => {
    expectOk(await brook(["topic", "create", "lines", "--partitions", "3"]));
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i} ${"x".repeat(i % 50)}`);
    expectOk(await brook(["produce", "--topic", "lines"], `${lines.join("\n")}\n`));
    expect(await highWatermarks("lines")).toEqual([334, 333, 333]);
    const consumed = expectOk(
      await brook(["consume", "--topic", "lines", "--from-beginning", "--max-messages", "1000"]),
    ).stdout;
    expect(sorted(consumed)).toEqual([...lines].sort());
    // Within a partition, order is kept: partition 0 got lines 0, 3, 6, ...
    const partition0 = consumed
      .split("\n")
      .filter((line) => /^line \d+ /.test(line) && Number(line.split(" ")[1]) % 3 === 0);
    expect(partition0.map((line) => Number(line.split(" ")[1]))).toEqual(
      Array.from({ length: 334 }, (_, i) => i * 3),
    );
  });

  test("cli: keyed lines land where Kafka's murmur2 partitioner puts them, and print back with keys", async () => {
    expectOk(await brook(["topic", "create", "keyed", "--partitions", "4"]));
    const lines = Array.from({ length: 200 }, (_, i) => `user-${i % 37}:event ${i}`);
    expectOk(
      await brook(["produce", "--topic", "keyed", "--key-separator", ":"], lines.join("\n")),
    );
    const expected = [0, 0, 0, 0];
    for (let i = 0; i < 200; i++) expected[partitionForKey(Buffer.from(`user-${i % 37}`), 4)]! += 1;
    expect(await highWatermarks("keyed")).toEqual(expected);
    const consumed = expectOk(
      await brook([
        "consume",
        "--topic",
        "keyed",
        "--from-beginning",
        "--max-messages",
        "200",
        "--key-separator",
        ":",
      ]),
    ).stdout;
    expect(sorted(consumed)).toEqual([...lines].sort());
    // One key's events keep their order (one partition).
    const user5 = consumed.split("\n").filter((line) => line.startsWith("user-5:"));
    expect(user5).toEqual(lines.filter((line) => line.startsWith("user-5:")));
  });

  test("cli: a line without the key separator stops with exit 1 after the lines before it", async () => {
    expectOk(await brook(["topic", "create", "strict"]));
    expectFailure(
      await brook(
        ["produce", "--topic", "strict", "--key-separator", "="],
        "a=1\nb=2\nno separator\nc=3\n",
      ),
      1,
      'brook: Line 3 has no key separator "="',
    );
    expect(await highWatermarks("strict")).toEqual([2]);
  });

  test("cli: consume with --group resumes after what it printed and committed", async () => {
    expectOk(await brook(["topic", "create", "resume", "--partitions", "2"]));
    const lines = Array.from({ length: 40 }, (_, i) => `r${i}`);
    expectOk(await brook(["produce", "--topic", "resume"], lines.join("\n")));
    const first = expectOk(
      await brook([
        "consume",
        "--topic",
        "resume",
        "--group",
        "cli-group",
        "--from-beginning",
        "--max-messages",
        "15",
      ]),
    ).stdout;
    expect(sorted(first)).toHaveLength(15);
    const group = JSON.parse(
      expectOk(await brook(["group", "describe", "cli-group", "--json"])).stdout,
    );
    expect(group.state).toBe("Empty");
    expect(group.totalLag).toBe(25);
    const second = expectOk(
      await brook(["consume", "--topic", "resume", "--group", "cli-group", "--timeout-ms", "1500"]),
    ).stdout;
    expect([...sorted(first), ...sorted(second)].sort()).toEqual([...lines].sort());

    expect(expectOk(await brook(["group", "list"])).stdout).toMatch(
      /\ncli-group\s+Empty\s+-\s+0\n/,
    );
    const described = expectOk(await brook(["group", "describe", "cli-group"])).stdout;
    expect(described).toContain("Total lag: 0\n");
    expect(described).toMatch(
      /TOPIC\s+PARTITION\s+COMMITTED\s+HIGH-WATERMARK\s+LAG\nresume\s+0\s+20\s+20\s+0\nresume\s+1\s+20\s+20\s+0\n$/,
    );
    expect(expectOk(await brook(["group", "delete", "cli-group"])).stdout).toBe(
      "Deleted group cli-group and 2 committed offsets\n",
    );
    expectFailure(
      await brook(["group", "delete", "cli-group"]),
      1,
      "brook: Group does not exist: cli-group",
    );
  });

  test("cli: consume reads what another client compressed (kafkajs, gzip)", async () => {
    expectOk(await brook(["topic", "create", "zipped"]));
    const kafka = new Kafka({
      clientId: "cli-test",
      brokers: [broker.bootstrap],
      logLevel: logLevel.NOTHING,
    });
    const producer = kafka.producer();
    await producer.connect();
    try {
      const messages = Array.from({ length: 50 }, (_, i) => ({
        key: `k${i}`,
        value: `compressed ${i}`,
      }));
      await producer.send({ topic: "zipped", compression: CompressionTypes.GZIP, messages });
    } finally {
      await producer.disconnect();
    }
    const consumed = expectOk(
      await brook([
        "consume",
        "--topic",
        "zipped",
        "--from-beginning",
        "--max-messages",
        "50",
        "--key-separator",
        "=",
      ]),
    ).stdout;
    expect(consumed.split("\n").filter(Boolean)).toEqual(
      Array.from({ length: 50 }, (_, i) => `k${i}=compressed ${i}`),
    );
  });

  test("cli: consume without --from-beginning starts at the end", async () => {
    expectOk(await brook(["topic", "create", "tail"]));
    expectOk(await brook(["produce", "--topic", "tail"], "old 1\nold 2\n"));
    const run = expectOk(await brook(["consume", "--topic", "tail", "--timeout-ms", "300"]));
    expect(run.stdout).toBe("");
  });

  test("cli: an unknown topic is exit 1 for produce and consume", async () => {
    expectFailure(
      await brook(["produce", "--topic", "nope"], "x\n"),
      1,
      "brook: Topic does not exist: nope",
    );
    expectFailure(
      await brook(["consume", "--topic", "nope", "--max-messages", "1"]),
      1,
      "brook: Topic does not exist: nope",
    );
  });

  test("cli: a broker that cannot be reached is exit 1 naming it", async () => {
    expectFailure(
      await brook(["consume", "--topic", "t", "--bootstrap", "127.0.0.1:1"]),
      1,
      /^brook: Cannot connect to 127\.0\.0\.1:1: /,
    );
  });
});
