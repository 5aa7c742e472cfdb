/**
 * The SWIM driver over real UDP and TCP on loopback: three nodes in one process, short
 * timeouts. Waits are for conditions with deadlines, never fixed sleeps.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { encodePacket } from "./codec.ts";
import type { SwimConfig } from "./config.ts";
import type { Endpoint, MemberState } from "./member.ts";
import type { Timers } from "./timers.ts";
import { SwimDriver, type SwimEvent } from "./udp-driver.ts";

const timers: Timers = {
  after(ms, run) {
    const timer = setTimeout(run, ms);
    return () => clearTimeout(timer);
  },
};

/** Short timeouts: probe every 200 ms; a suspicion lasts 0.6 s to 1.2 s. */
const FAST: Partial<SwimConfig> = {
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  suspicionMult: 3,
  suspicionMaxTimeoutMult: 2,
  gossipIntervalMs: 50,
  pushPullIntervalMs: 1_000,
  reconnectIntervalMs: 1_000,
  joinBackoffMs: 100,
  joinBackoffMaxMs: 400,
};

/**
 * An abruptly closed node is declared dead within this: in a 3-node cluster each survivor
 * probes it within 2 rounds of 2 probes (0.8 s at full health, 6.4 s at the worst health
 * multiplier of 8, which loopback does not reach), then suspects it for at most 1.2 s.
 */
const DEAD_BOUND_MS = 5_000;

const CLUSTER = "driver-test";
const LOOPBACK = "127.0.0.1";
const drivers: SwimDriver[] = [];

afterEach(async () => {
  await Promise.all(drivers.splice(0).map((driver) => driver.close()));
});

async function startNode(
  nodeId: number,
  options: {
    clusterId?: string | null;
    join?: Endpoint[];
    config?: Partial<SwimConfig>;
    onEvent?: (event: SwimEvent) => void;
  } = {},
): Promise<SwimDriver> {
  const driver = await SwimDriver.start({
    nodeId,
    clusterId: options.clusterId === undefined ? CLUSTER : options.clusterId,
    bind: { host: LOOPBACK, port: 0 },
    kafka: { host: LOOPBACK, port: 9000 + nodeId },
    admin: { host: LOOPBACK, port: 8000 + nodeId },
    join: options.join,
    config: options.config ?? FAST,
    timers,
    tickMs: 20,
    leaveTimeoutMs: 1_000,
    onEvent: options.onEvent,
  });
  drivers.push(driver);
  return driver;
}

async function waitFor(
  what: string,
  condition: () => boolean,
  deadlineMs: number,
): Promise<number> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > deadlineMs)
      throw new Error(`Timed out after ${deadlineMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return performance.now() - started;
}

function sees(observer: SwimDriver, subject: SwimDriver, state: MemberState): boolean {
  return observer.member(subject.self.nodeId)?.state === state;
}

function allSeeAllAlive(nodes: SwimDriver[]): boolean {
  return nodes.every((a) => nodes.every((b) => a === b || sees(a, b, "alive")));
}

describe("swim: udp driver", () => {
  test("swim: udp driver: join through one seed, leave is 'left', an abrupt close is 'dead' within the bound", async () => {
    const events: string[] = [];
    const a = await startNode(1);
    const b = await startNode(2, { clusterId: null, join: [a.gossip] });
    const c = await startNode(3, {
      clusterId: null,
      join: [a.gossip],
      onEvent: (event) => events.push(event.kind),
    });
    await waitFor("all three see all alive", () => allSeeAllAlive([a, b, c]), 5_000);
    expect(b.clusterId).toBe(CLUSTER); // Learned from the seed.
    expect(events).toContain("clusterId");
    expect(events).toContain("joined");
    expect(a.member(3)?.kafka).toEqual({ host: LOOPBACK, port: 9003 });
    expect(a.member(3)?.admin).toEqual({ host: LOOPBACK, port: 8003 });

    await c.leave();
    await waitFor("a and b see c left", () => sees(a, c, "left") && sees(b, c, "left"), 3_000);

    await b.close(); // No goodbye.
    const tookMs = await waitFor("a declares b dead", () => sees(a, b, "dead"), DEAD_BOUND_MS);
    expect(tookMs).toBeLessThan(DEAD_BOUND_MS);
    expect(sees(a, c, "left")).toBe(true); // Still left, not dead.
  }, 20_000);

  test("swim: udp driver: garbage, truncated, oversized, other-cluster and unknown-type datagrams change nothing", async () => {
    const a = await startNode(11);
    const b = await startNode(12, { join: [a.gossip] });
    await waitFor("a and b see each other", () => allSeeAllAlive([a, b]), 5_000);
    const valid = encodePacket({
      clusterId: CLUSTER,
      sender: 99,
      messages: [{ type: "suspect", nodeId: 12, incarnation: 0, from: 99 }],
    });
    const unknownType = valid.slice();
    unknownType[valid.length - 13] = 200; // The suspect message's type byte.
    const bad: Uint8Array[] = [
      new Uint8Array(0),
      Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff),
      valid.subarray(0, valid.length - 3),
      new Uint8Array(2_000), // Over the 1,400-byte limit.
      encodePacket({
        clusterId: "another-cluster",
        sender: 12,
        messages: [{ type: "dead", nodeId: 12, incarnation: 5, from: 99 }],
      }),
      unknownType,
    ];
    const sender = createSocket("udp4");
    try {
      for (const bytes of bad) {
        await new Promise<void>((resolve, reject) =>
          sender.send(bytes, a.gossip.port, LOOPBACK, (error) =>
            error ? reject(error) : resolve(),
          ),
        );
      }
    } finally {
      sender.close();
    }
    await waitFor(
      "a dropped them all",
      () => Object.values(a.stats.dropped).reduce((sum, n) => sum + (n ?? 0), 0) >= bad.length - 1,
      3_000,
    );
    expect(a.stats.dropped.truncated).toBeGreaterThanOrEqual(1);
    expect(a.stats.dropped.oversized).toBe(1);
    expect(a.stats.dropped.wrongCluster).toBe(1);
    expect(a.stats.dropped.unknownType).toBe(1);
    // Still a working cluster: b stays alive at incarnation 0 and a newcomer joins through a.
    const c = await startNode(13, { join: [a.gossip] });
    await waitFor(
      "a newcomer joins through the node that got the garbage",
      () => allSeeAllAlive([a, b, c]),
      5_000,
    );
    expect(a.member(12)?.incarnation).toBe(0);
  }, 20_000);

  test("swim: udp driver: an unreachable seed is retried with backoff, and the node keeps running", async () => {
    const failures: number[] = [];
    // A port nothing listens on: bind one, note it, close it.
    const probe = await startNode(21);
    const deadSeed = probe.gossip;
    await probe.close();
    const lonely = await startNode(22, {
      clusterId: null,
      join: [deadSeed],
      onEvent: (event) => {
        if (event.kind === "joinFailed") failures.push(event.retryInMs);
      },
    });
    await waitFor("three failed attempts", () => failures.length >= 3, 5_000);
    expect(failures.slice(0, 3)).toEqual([100, 200, 400]);
    expect(lonely.clusterId).toBeNull();
    // The seed comes up on that port later: the next retry gets in.
    const seed = await SwimDriver.start({
      nodeId: 23,
      clusterId: CLUSTER,
      bind: deadSeed,
      kafka: { host: LOOPBACK, port: 9023 },
      admin: { host: LOOPBACK, port: 8023 },
      config: FAST,
      timers,
      tickMs: 20,
    });
    drivers.push(seed);
    await waitFor("the retry joins", () => allSeeAllAlive([lonely, seed]), 5_000);
    expect(lonely.clusterId).toBe(CLUSTER);
  }, 20_000);

  test("swim: udp driver: a configured cluster id that differs from the seed's is reported", async () => {
    const a = await startNode(31);
    const errors: SwimEvent[] = [];
    await startNode(32, {
      clusterId: "someone-else",
      join: [a.gossip],
      onEvent: (event) => event.kind === "error" && errors.push(event),
    });
    await waitFor("the mismatch is reported", () => errors.length === 1, 3_000);
    expect(errors[0]).toMatchObject({
      kind: "error",
      error: { kind: "clusterIdMismatch", ours: "someone-else", theirs: CLUSTER },
    });
    expect(a.member(32)).toBeUndefined();
  }, 10_000);
});
