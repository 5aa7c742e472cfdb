/**
 * `brook topic|group|cluster` in process, against a real admin server on a loopback
 * port over a real (socket-less) node: the command line as yargs parses it, the request
 * undici sends, the table or JSON printed, and the error a refusal becomes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { startAdminServer, type AdminServer } from "../admin/server.ts";
import { createTestAdminNode, type TestAdminNode } from "../admin/test-helpers.ts";
import { AdminRequestError } from "./admin-client.ts";
import { parseAdminUrl } from "./admin-options.ts";
import { buildCli } from "./cli.ts";
import { UsageError } from "./errors.ts";
import type { CliIo } from "./output.ts";
import { formatTable } from "./output.ts";
import { parseConfigFlags } from "./topic-command.ts";

let node: TestAdminNode;
let server: AdminServer;
let adminUrl: string;

beforeAll(async () => {
  node = await createTestAdminNode();
  server = await startAdminServer({ admin: { host: "127.0.0.1", port: 0 } }, node.app);
  adminUrl = `http://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await server.stop();
  node.close();
});

function collector(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

/** Runs `brook <args> --admin-url <server>`; resolves to stdout, rejects as the command fails. */
async function brook(...args: string[]): Promise<string> {
  const out = collector();
  const err = collector();
  const io: CliIo = {
    stdin: process.stdin,
    stdout: out.stream,
    stderr: err.stream,
    stderrIsTty: false,
  };
  await buildCli({ args: [...args, "--admin-url", adminUrl], env: {}, io }).parseAsync();
  return out.text();
}

describe("cli: admin commands", () => {
  test("cli: topic create, list, describe and delete print tables", async () => {
    expect(
      await brook(
        "topic",
        "create",
        "orders",
        "--partitions",
        "2",
        "--config",
        "retention.ms=60000",
      ),
    ).toBe("Created topic orders: 2 partitions, replication factor 1\n");
    const listed = await brook("topic", "list");
    expect(listed.split("\n")[0]).toMatch(
      /^NAME\s+PARTITIONS\s+REPLICATION-FACTOR\s+INTERNAL\s+TOPIC-ID$/,
    );
    expect(listed.split("\n")[1]).toMatch(/^orders\s+2\s+1\s+false\s+[0-9a-f-]{36}$/);
    const described = await brook("topic", "describe", "orders");
    expect(described).toContain("Topic: orders\n");
    expect(described).toContain("Configs: retention.ms=60000\n");
    // PARTITION LEADER EPOCH REPLICAS ISR ELR LOG-START LOG-END HIGH-WATERMARK LAST-STABLE SIZE-BYTES REPLICA-LAG
    expect(described).toMatch(
      /\n0\s+1\s+0\s+1\s+1\s+-\s+0\s+0\s+0\s+0\s+0\s+1:0\n1\s+1\s+0\s+1\s+1\s+-\s+0\s+0\s+0\s+0\s+0\s+1:0\n$/,
    );
    expect(await brook("topic", "delete", "orders")).toBe("Deleted topic orders\n");
    expect(await brook("topic", "list")).toBe("No topics\n");
  });

  test("cli: --json prints the API's JSON", async () => {
    const created = JSON.parse(await brook("topic", "create", "events", "--json"));
    expect(created).toMatchObject({ name: "events", partitionCount: 1 });
    expect(JSON.parse(await brook("topic", "describe", "events", "--json"))).toEqual(created);
    expect(
      JSON.parse(await brook("topic", "list", "--json")).topics.map(
        (t: { name: string }) => t.name,
      ),
    ).toEqual(["events"]);
    expect(JSON.parse(await brook("cluster", "status", "--json"))).toMatchObject({
      nodeId: 1,
      controller: 1,
    });
    expect(JSON.parse(await brook("group", "list", "--json"))).toEqual({ groups: [] });
    await brook("topic", "delete", "events");
  });

  test("cli: a refused request fails with the server's message", async () => {
    await brook("topic", "create", "dup");
    const refusal = brook("topic", "create", "dup");
    await expect(refusal).rejects.toBeInstanceOf(AdminRequestError);
    await expect(refusal).rejects.toThrow("Topic 'dup' already exists.");
    await expect(brook("topic", "create", "bad/name")).rejects.toThrow(
      "Topic name has characters other than [a-zA-Z0-9._-]: bad/name",
    );
    await expect(brook("topic", "create", "t", "--config", "nonsense=1")).rejects.toThrow(
      "Unknown topic config name: nonsense",
    );
    await expect(brook("topic", "describe", "nothing")).rejects.toThrow(
      "Topic does not exist: nothing",
    );
    await expect(brook("group", "describe", "nobody")).rejects.toThrow(
      "Group does not exist: nobody",
    );
    await expect(brook("group", "delete", "nobody")).rejects.toThrow(
      "Group does not exist: nobody",
    );
    await brook("topic", "delete", "dup");
  });

  test("cli: bad usage is a UsageError before any request", async () => {
    await expect(brook("topic", "create", "t", "--partitions", "0")).rejects.toThrow(
      new UsageError('Invalid --partitions: expected a positive integer, got "0"'),
    );
    await expect(brook("topic", "create", "t", "--partitions", "two")).rejects.toThrow(
      'Invalid --partitions: expected a positive integer, got "two"',
    );
    await expect(brook("topic", "create", "t", "--replication-factor", "-1")).rejects.toThrow(
      "Invalid --replication-factor",
    );
    await expect(brook("topic", "create", "t", "--config", "novalue")).rejects.toThrow(
      'Invalid --config: expected name=value, got "novalue"',
    );
    await expect(brook("topic")).rejects.toThrow(
      "Missing subcommand: brook topic create|list|describe|delete",
    );
    await expect(brook("group")).rejects.toThrow(
      "Missing subcommand: brook group list|describe|delete",
    );
    await expect(brook("cluster")).rejects.toThrow("Missing subcommand: brook cluster status");
    await expect(brook("topic", "create")).rejects.toThrow(/Not enough non-option arguments/);
    await expect(brook("topic", "frob")).rejects.toThrow("Unknown argument: frob");
    expect(node.services.image.topics()).toEqual([]);
  });

  test("cli: group list and describe show members, offsets and lag", async () => {
    await brook("topic", "create", "orders");
    node.coordinator.validateOffsetCommit({
      groupId: "billing",
      generationId: -1,
      memberId: "",
      groupInstanceId: null,
      unknownGroupError: "illegalGeneration",
    });
    node.offsets.commit("billing", [
      {
        topic: "orders",
        partition: 0,
        offset: 0,
        leaderEpoch: -1,
        metadata: "",
        commitTimestampMs: 0,
        expireTimestampMs: null,
      },
    ]);
    expect(await brook("group", "list")).toMatch(
      /^GROUP\s+STATE\s+PROTOCOL-TYPE\s+MEMBERS\nbilling\s+Empty\s+-\s+0\n$/,
    );
    const described = await brook("group", "describe", "billing");
    expect(described).toContain("State: Empty\n");
    expect(described).toContain("No members\n");
    expect(described).toMatch(
      /TOPIC\s+PARTITION\s+COMMITTED\s+HIGH-WATERMARK\s+LAG\norders\s+0\s+0\s+0\s+0\n$/,
    );
    expect(await brook("group", "delete", "billing")).toBe(
      "Deleted group billing and 1 committed offsets\n",
    );
    await brook("topic", "delete", "orders");
  });

  test("cli: cluster status", async () => {
    expect(await brook("cluster", "status")).toBe(
      [
        "Cluster id: test-cluster",
        "Answered by node: 1",
        "Controller: 1",
        "",
        "NODE              KAFKA           GOSSIP  SWIM   INCARNATION  BROKER",
        "1 (controller) *  127.0.0.1:9092  -       alive  0            registered",
        "",
      ].join("\n"),
    );
  });

  test("cli: an admin API that cannot be reached is a failure naming the URL", async () => {
    const out = collector();
    const io: CliIo = {
      stdin: process.stdin,
      stdout: out.stream,
      stderr: out.stream,
      stderrIsTty: false,
    };
    const run = buildCli({
      args: ["topic", "list", "--admin-url", "http://127.0.0.1:1"],
      env: {},
      io,
    }).parseAsync();
    await expect(run).rejects.toThrow(/^Cannot reach the admin API at http:\/\/127\.0\.0\.1:1: /);
  });

  test("cli: --admin-url comes from BROOK_ADMIN_URL when not given, and must be http(s)", async () => {
    const out = collector();
    const io: CliIo = {
      stdin: process.stdin,
      stdout: out.stream,
      stderr: out.stream,
      stderrIsTty: false,
    };
    await buildCli({
      args: ["topic", "list"],
      env: { BROOK_ADMIN_URL: adminUrl },
      io,
    }).parseAsync();
    expect(out.text()).toBe("No topics\n");
    expect(() => parseAdminUrl("ftp://x")).toThrow(UsageError);
    expect(() => parseAdminUrl("nonsense")).toThrow(
      'Invalid --admin-url: expected an http:// or https:// URL, got "nonsense"',
    );
    expect(parseAdminUrl("http://127.0.0.1:9644/")).toBe("http://127.0.0.1:9644");
  });
});

describe("cli: helpers", () => {
  test("cli: --config flags become an object; a name twice is bad usage", () => {
    expect(parseConfigFlags(["a=1", "b=x=y", "c="])).toEqual({ a: "1", b: "x=y", c: "" });
    expect(() => parseConfigFlags(["a=1", "a=2"])).toThrow("Invalid --config: a given twice");
    expect(() => parseConfigFlags(["=1"])).toThrow(UsageError);
  });

  test("cli: tables pad every column but the last", () => {
    expect(
      formatTable(
        ["A", "LONGER"],
        [
          ["xyz", 1],
          [null, "z"],
        ],
      ),
    ).toBe("A    LONGER\nxyz  1\n-    z\n");
  });
});
