/**
 * The Swim state machine, one rule at a time, stepped by hand on a manual clock. The
 * whole protocol under faults is exercised by the simulation in test/sim/swim/.
 */
import { describe, expect, test } from "bun:test";
import { ManualClock } from "../../util/clock.ts";
import { SeededRandom } from "../../util/random.ts";
import { swimConfig } from "./config.ts";
import type { Endpoint } from "./member.ts";
import type { MemberRecord, Packet, PushPullFrame, SwimMessage } from "./messages.ts";
import { Swim, type SwimOutput } from "./swim.ts";

const CLUSTER = "cluster-a";
const config = swimConfig({
  probeIntervalMs: 1_000,
  probeTimeoutMs: 400,
  pushPullIntervalMs: 60_000,
  reconnectIntervalMs: 60_000,
  joinBackoffMs: 1_000,
  joinBackoffMaxMs: 4_000,
});

function endpoints(nodeId: number): { gossip: Endpoint; kafka: Endpoint; admin: Endpoint } {
  const host = `10.0.0.${nodeId}`;
  return { gossip: { host, port: 7946 }, kafka: { host, port: 9092 }, admin: { host, port: 8080 } };
}

function record(
  nodeId: number,
  incarnation = 0,
  state: MemberRecord["state"] = "alive",
): MemberRecord {
  return { nodeId, incarnation, state, ...endpoints(nodeId) };
}

function makeSwim(
  nodeId: number,
  clusterId: string | null = CLUSTER,
): { swim: Swim; clock: ManualClock } {
  const clock = new ManualClock(0);
  const swim = new Swim({
    nodeId,
    ...endpoints(nodeId),
    clusterId,
    config,
    clock,
    random: new SeededRandom(nodeId),
  });
  return { swim, clock };
}

function packet(sender: number, ...messages: SwimMessage[]): Packet {
  return { clusterId: CLUSTER, sender, messages };
}

/** Makes `swim` know `others` as alive at incarnation 0, through a push-pull answer. */
function know(swim: Swim, ...others: MemberRecord[]): void {
  swim.step({
    kind: "pushPullResponse",
    to: endpoints(others[0]?.nodeId ?? 0).gossip,
    frame: {
      clusterId: CLUSTER,
      sender: others[0]?.nodeId ?? 0,
      body: { type: "response", members: others },
    },
  });
  swim.drain();
}

function sent(outputs: SwimOutput[]): Array<{ to: string; messages: readonly SwimMessage[] }> {
  return outputs.flatMap((output) =>
    output.kind === "send" ? [{ to: output.to.host, messages: output.packet.messages }] : [],
  );
}

function messages(outputs: SwimOutput[]): SwimMessage[] {
  return sent(outputs).flatMap((packet) => [...packet.messages]);
}

function memberEvents(outputs: SwimOutput[]): string[] {
  return outputs.flatMap((output) =>
    output.kind === "member"
      ? [`${output.member.nodeId} ${output.change} ${output.member.incarnation}`]
      : [],
  );
}

/** Ticks every 100 ms for `ms`, collecting outputs. */
function run(swim: Swim, clock: ManualClock, ms: number): SwimOutput[] {
  const outputs: SwimOutput[] = [];
  for (let t = 0; t < ms; t += 100) {
    clock.advance(100);
    swim.step({ kind: "tick" });
    outputs.push(...swim.drain());
  }
  return outputs;
}

describe("swim: state rules", () => {
  test("swim: refutation: suspected at our incarnation, we raise it and say alive (to the accuser at once)", () => {
    const { swim } = makeSwim(1);
    know(swim, record(2));
    swim.step({
      kind: "packet",
      from: endpoints(2).gossip,
      packet: packet(2, { type: "suspect", nodeId: 1, incarnation: 0, from: 2 }),
    });
    expect(swim.self.incarnation).toBe(1);
    const alive = messages(swim.drain()).find((m) => m.type === "alive" && m.nodeId === 1);
    expect(alive).toMatchObject({ type: "alive", nodeId: 1, incarnation: 1 });
    expect(swim.healthScore).toBe(1); // Lifeguard: being suspected hints we were slow.
  });

  test("swim: refutation: a dead claim above our incarnation is outbid", () => {
    const { swim } = makeSwim(1);
    swim.step({
      kind: "packet",
      from: endpoints(2).gossip,
      packet: packet(2, { type: "dead", nodeId: 1, incarnation: 7, from: 2 }),
    });
    expect(swim.self.incarnation).toBe(8);
    expect(swim.self.state).toBe("alive");
  });

  test("swim: a forged lower incarnation is ignored; incarnations only grow", () => {
    const { swim } = makeSwim(1);
    know(swim, record(2, 5));
    const from = endpoints(2).gossip;
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "suspect", nodeId: 2, incarnation: 4, from: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "dead", nodeId: 2, incarnation: 3, from: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "left", nodeId: 2, incarnation: 0 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "alive", nodeId: 2, incarnation: 1, ...endpoints(9) }),
    });
    expect(swim.member(2)).toMatchObject({
      state: "alive",
      incarnation: 5,
      gossip: endpoints(2).gossip,
    });
    expect(memberEvents(swim.drain())).toEqual([]);
    // And about ourselves: a stale suspicion changes nothing.
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "suspect", nodeId: 1, incarnation: 0, from: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "suspect", nodeId: 1, incarnation: 0, from: 3 }),
    });
    expect(swim.self.incarnation).toBe(1);
  });

  test("swim: suspect, then alive at a higher incarnation clears it; dead, then a higher alive rejoins", () => {
    const { swim } = makeSwim(1);
    know(swim, record(2));
    const from = endpoints(3).gossip;
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "suspect", nodeId: 2, incarnation: 0, from: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "alive", nodeId: 2, incarnation: 1, ...endpoints(2) }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "dead", nodeId: 2, incarnation: 1, from: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "alive", nodeId: 2, incarnation: 1, ...endpoints(2) }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "alive", nodeId: 2, incarnation: 2, ...endpoints(2) }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(3, { type: "left", nodeId: 2, incarnation: 2 }),
    });
    expect(memberEvents(swim.drain())).toEqual([
      "2 suspect 0",
      "2 alive 1",
      "2 dead 1",
      "2 joined 2",
      "2 left 2",
    ]);
  });

  test("swim: 'left' replaces 'dead' at the same incarnation, never the reverse", () => {
    const { swim } = makeSwim(1);
    know(swim, record(2, 3), record(3, 3));
    const from = endpoints(4).gossip;
    swim.step({
      kind: "packet",
      from,
      packet: packet(4, { type: "dead", nodeId: 2, incarnation: 3, from: 4 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(4, { type: "left", nodeId: 2, incarnation: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(4, { type: "left", nodeId: 3, incarnation: 3 }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(4, { type: "dead", nodeId: 3, incarnation: 3, from: 4 }),
    });
    expect(swim.member(2)?.state).toBe("left");
    expect(swim.member(3)?.state).toBe("left");
  });

  test("swim: a live member's id claimed from another address is kept as it is", () => {
    const { swim } = makeSwim(1);
    know(swim, record(2));
    swim.step({
      kind: "packet",
      from: endpoints(9).gossip,
      packet: packet(9, { type: "alive", nodeId: 2, incarnation: 5, ...endpoints(9) }),
    });
    expect(swim.member(2)).toMatchObject({ incarnation: 0, gossip: endpoints(2).gossip });
  });

  test("swim: that claim is held and taken once the member it names is dead (a node restarted on new ports)", () => {
    const { swim } = makeSwim(1);
    know(swim, record(2), record(3));
    const from = endpoints(9).gossip;
    swim.step({
      kind: "packet",
      from,
      packet: packet(9, { type: "alive", nodeId: 2, incarnation: 1, ...endpoints(9) }),
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(9, { type: "alive", nodeId: 2, incarnation: 3, ...endpoints(9) }),
    });
    expect(swim.member(2)).toMatchObject({ incarnation: 0, gossip: endpoints(2).gossip });
    swim.drain();
    swim.step({
      kind: "packet",
      from: endpoints(3).gossip,
      packet: packet(3, { type: "dead", nodeId: 2, incarnation: 0, from: 3 }),
    });
    expect(swim.member(2)).toMatchObject({
      incarnation: 3,
      state: "alive",
      gossip: endpoints(9).gossip,
    });
    expect(memberEvents(swim.drain())).toEqual(["2 dead 0", "2 joined 3"]);
    // A stale claim is not held: the member's own higher incarnation wins.
    know(swim, record(4));
    swim.step({
      kind: "packet",
      from,
      packet: packet(9, { type: "alive", nodeId: 4, incarnation: 1, ...endpoints(9) }),
    });
    swim.step({
      kind: "packet",
      from: endpoints(4).gossip,
      packet: packet(4, { type: "alive", nodeId: 4, incarnation: 2, ...endpoints(4) }),
    });
    swim.step({
      kind: "packet",
      from: endpoints(3).gossip,
      packet: packet(3, { type: "dead", nodeId: 4, incarnation: 2, from: 3 }),
    });
    expect(swim.member(4)).toMatchObject({
      incarnation: 2,
      state: "dead",
      gossip: endpoints(4).gossip,
    });
  });

  test("swim: packets from another cluster or claiming our own id are ignored", () => {
    const { swim } = makeSwim(1);
    const from = endpoints(2).gossip;
    swim.step({
      kind: "packet",
      from,
      packet: {
        clusterId: "other",
        sender: 2,
        messages: [{ type: "alive", nodeId: 2, incarnation: 0, ...endpoints(2) }],
      },
    });
    swim.step({
      kind: "packet",
      from,
      packet: packet(1, { type: "alive", nodeId: 2, incarnation: 0, ...endpoints(2) }),
    });
    expect(swim.member(2)).toBeUndefined();
  });

  test("swim: a ping for another node id is not acked (someone else had that address)", () => {
    const { swim } = makeSwim(1);
    swim.step({
      kind: "packet",
      from: endpoints(2).gossip,
      packet: packet(2, { type: "ping", seq: 5, target: 99 }),
    });
    expect(messages(swim.drain()).filter((m) => m.type === "ack")).toEqual([]);
    swim.step({
      kind: "packet",
      from: endpoints(2).gossip,
      packet: packet(2, { type: "ping", seq: 5, target: 1 }),
    });
    expect(messages(swim.drain()).filter((m) => m.type === "ack")).toEqual([
      { type: "ack", seq: 5 },
    ]);
  });
});

describe("swim: probing", () => {
  test("swim: probe: no ack, ping-req through k others, then suspect, then dead after the suspicion timeout", () => {
    const { swim, clock } = makeSwim(1);
    know(swim, record(2), record(3), record(4), record(5));
    let pinged: { target: number; seq: number } | null = null;
    const outputs: SwimOutput[] = [];
    for (let i = 0; i < 20 && pinged === null; i++) {
      clock.advance(100);
      swim.step({ kind: "tick" });
      const drained = swim.drain();
      outputs.push(...drained);
      const ping = messages(drained).find((m) => m.type === "ping");
      if (ping?.type === "ping") pinged = { target: ping.target, seq: ping.seq };
    }
    expect(pinged).not.toBeNull();
    const { target, seq } = pinged as { target: number; seq: number };
    const later = run(swim, clock, 500);
    const pingReqs = messages(later).filter((m) => m.type === "pingReq");
    expect(pingReqs).toHaveLength(3); // indirectChecks, default 3.
    for (const m of pingReqs) expect(m).toMatchObject({ seq, target });
    const failed = run(swim, clock, 600);
    expect(memberEvents(failed)).toEqual([`${target} suspect 0`]);
    // The suspect hears it at once (buddy system).
    expect(
      sent(failed).some(
        (p) => p.to === `10.0.0.${target}` && p.messages.some((m) => m.type === "suspect"),
      ),
    ).toBe(true);
    // Three helpers never nacked: our own health is in doubt.
    expect(swim.healthScore).toBe(3);
    // 5 members expect 2 confirmations: the suspicion starts at max = 6 * 4 s.
    const suspected = run(swim, clock, 6 * 4_000 - 1_000);
    expect(memberEvents(suspected).filter((e) => e.startsWith(`${target} `))).toEqual([]);
    const dead = run(swim, clock, 2_000);
    expect(memberEvents(dead)).toContain(`${target} dead 0`);
  });

  test("swim: probe: a relayed ack (ping-req) counts, and lowers the health score", () => {
    const { swim, clock } = makeSwim(1);
    know(swim, record(2), record(3));
    swim.step({
      kind: "packet",
      from: endpoints(2).gossip,
      packet: packet(2, { type: "suspect", nodeId: 1, incarnation: 0, from: 2 }),
    });
    expect(swim.healthScore).toBe(1);
    let ping: SwimMessage | undefined;
    for (let i = 0; i < 20 && ping === undefined; i++)
      ping = messages(run(swim, clock, 100)).find((m) => m.type === "ping");
    expect(ping?.type).toBe("ping");
    if (ping?.type !== "ping") return;
    swim.step({
      kind: "packet",
      from: endpoints(3).gossip,
      packet: packet(3, { type: "ack", seq: ping.seq }),
    });
    expect(swim.healthScore).toBe(0);
    expect(memberEvents(run(swim, clock, 2_000))).toEqual([]);
  });

  test("swim: ping-req: we ping the target for the asker and forward its ack, or nack in time", () => {
    const { swim, clock } = makeSwim(1);
    const asker = endpoints(2).gossip;
    swim.step({
      kind: "packet",
      from: asker,
      packet: packet(2, { type: "pingReq", seq: 40, target: 3, targetGossip: endpoints(3).gossip }),
    });
    const ping = sent(swim.drain()).find((p) => p.to === "10.0.0.3")?.messages[0];
    expect(ping).toMatchObject({ type: "ping", target: 3 });
    if (ping?.type !== "ping") return;
    swim.step({
      kind: "packet",
      from: endpoints(3).gossip,
      packet: packet(3, { type: "ack", seq: ping.seq }),
    });
    expect(
      sent(swim.drain()).map((p) => ({
        to: p.to,
        messages: p.messages.filter((m) => m.type === "ack"),
      })),
    ).toEqual([{ to: "10.0.0.2", messages: [{ type: "ack", seq: 40 }] }]);
    swim.step({
      kind: "packet",
      from: asker,
      packet: packet(2, { type: "pingReq", seq: 41, target: 3, targetGossip: endpoints(3).gossip }),
    });
    swim.drain();
    const nacks = messages(run(swim, clock, 500)).filter((m) => m.type === "nack");
    expect(nacks).toEqual([{ type: "nack", seq: 41 }]);
  });
});

describe("swim: joining", () => {
  test("swim: join: a node without a cluster id learns it from the seed's answer", () => {
    const { swim } = makeSwim(5, null);
    swim.join([endpoints(1).gossip]);
    const [request] = swim.drain();
    expect(request).toMatchObject({
      kind: "pushPull",
      join: true,
      frame: { clusterId: "", body: { type: "request", join: true } },
    });
    swim.step({
      kind: "pushPullResponse",
      to: endpoints(1).gossip,
      frame: {
        clusterId: CLUSTER,
        sender: 1,
        body: { type: "response", members: [record(1), record(2)] },
      },
    });
    const outputs = swim.drain();
    expect(outputs.find((o) => o.kind === "clusterId")).toEqual({
      kind: "clusterId",
      clusterId: CLUSTER,
    });
    expect(outputs.find((o) => o.kind === "joined")).toMatchObject({ kind: "joined", members: 3 });
    expect(swim.clusterId).toBe(CLUSTER);
    expect(swim.joining).toBe(false);
  });

  test("swim: join: the seed answers a fresh joiner, refuses another cluster, and a node without a cluster cannot be a seed", () => {
    const { swim: seed } = makeSwim(1);
    const ask = (frame: PushPullFrame): PushPullFrame | null => {
      seed.step({ kind: "pushPullRequest", id: 7, from: endpoints(5).gossip, frame });
      const answer = seed.drain().find((o) => o.kind === "pushPullAnswer");
      return answer?.kind === "pushPullAnswer" ? answer.frame : null;
    };
    const members = [record(5)];
    expect(
      ask({ clusterId: "", sender: 5, body: { type: "request", join: true, members } })?.body.type,
    ).toBe("response");
    expect(seed.member(5)?.state).toBe("alive");
    expect(
      ask({
        clusterId: "other",
        sender: 6,
        body: { type: "request", join: true, members: [record(6)] },
      }),
    ).toEqual({
      clusterId: CLUSTER,
      sender: 1,
      body: { type: "refused", reason: "clusterMismatch" },
    });
    expect(
      ask({
        clusterId: "",
        sender: 6,
        body: { type: "request", join: false, members: [record(6)] },
      })?.body.type,
    ).toBe("refused");
    expect(seed.member(6)).toBeUndefined();
    const { swim: fresh } = makeSwim(2, null);
    fresh.step({
      kind: "pushPullRequest",
      id: 1,
      from: endpoints(5).gossip,
      frame: { clusterId: "", sender: 5, body: { type: "request", join: true, members } },
    });
    expect(fresh.drain()).toEqual([
      {
        kind: "pushPullAnswer",
        id: 1,
        frame: { clusterId: "", sender: 2, body: { type: "refused", reason: "noClusterId" } },
      },
    ]);
  });

  test("swim: join: a configured cluster id that differs from the seed's is a typed error", () => {
    const { swim } = makeSwim(5, "cluster-b");
    swim.join([endpoints(1).gossip]);
    swim.drain();
    swim.step({
      kind: "pushPullResponse",
      to: endpoints(1).gossip,
      frame: {
        clusterId: CLUSTER,
        sender: 1,
        body: { type: "refused", reason: "clusterMismatch" },
      },
    });
    expect(swim.drain()).toEqual([
      {
        kind: "error",
        error: {
          kind: "clusterIdMismatch",
          seed: endpoints(1).gossip,
          ours: "cluster-b",
          theirs: CLUSTER,
        },
      },
    ]);
    expect(swim.joining).toBe(false);
  });

  test("swim: join: unreachable seeds are retried with exponential backoff up to the cap", () => {
    const { swim, clock } = makeSwim(5, null);
    const seeds = [endpoints(1).gossip, endpoints(2).gossip];
    swim.join(seeds);
    const retries: number[] = [];
    let attempts = 0;
    for (let round = 0; round < 5; round++) {
      const requests = swim.drain().filter((o) => o.kind === "pushPull");
      expect(requests).toHaveLength(2);
      attempts += 1;
      for (const seed of seeds)
        swim.step({ kind: "pushPullFailed", to: seed, reason: "Connection refused" });
      const failures = swim.drain().filter((o) => o.kind === "joinFailed");
      expect(failures).toHaveLength(2);
      const retryInMs = failures[0]?.kind === "joinFailed" ? failures[0].retryInMs : 0;
      retries.push(retryInMs);
      clock.advance(retryInMs - 1);
      swim.step({ kind: "tick" });
      expect(swim.drain().filter((o) => o.kind === "pushPull")).toHaveLength(0);
      clock.advance(1);
      swim.step({ kind: "tick" });
    }
    expect(attempts).toBe(5);
    expect(retries).toEqual([1_000, 2_000, 4_000, 4_000, 4_000]);
    expect(swim.joining).toBe(true);
  });
});

describe("swim: leaving", () => {
  test("swim: leave: 'left' is sent at once and until it has gone out; we stop probing", () => {
    const { swim, clock } = makeSwim(1);
    know(swim, record(2), record(3), record(4));
    swim.leave();
    const first = swim.drain();
    expect(swim.self.state).toBe("left");
    expect(messages(first).filter((m) => m.type === "left")).toHaveLength(3); // gossipNodes, default 3.
    // And one push-pull, so that at least one member surely knows; a failed one is retried elsewhere.
    const sync = first.filter((o) => o.kind === "pushPull");
    expect(sync).toHaveLength(1);
    const firstPeer = sync[0]?.kind === "pushPull" ? sync[0].to : endpoints(2).gossip;
    swim.step({ kind: "pushPullFailed", to: firstPeer, reason: "Connection refused" });
    const retry = swim.drain().find((o) => o.kind === "pushPull");
    expect(retry?.kind === "pushPull" && retry.to.host !== firstPeer.host).toBe(true);
    const later = run(swim, clock, 1_000);
    expect(swim.isLeaveDisseminated()).toBe(false); // Gossip is done, the sync is not.
    if (retry?.kind !== "pushPull") return;
    swim.step({
      kind: "pushPullResponse",
      to: retry.to,
      frame: { clusterId: CLUSTER, sender: 3, body: { type: "response", members: [] } },
    });
    expect(swim.isLeaveDisseminated()).toBe(true);
    expect(messages(later).filter((m) => m.type === "ping" || m.type === "pingReq")).toEqual([]);
    // A left node does not come back by refuting.
    swim.step({
      kind: "packet",
      from: endpoints(2).gossip,
      packet: packet(2, { type: "dead", nodeId: 1, incarnation: 0, from: 2 }),
    });
    expect(swim.self).toMatchObject({ state: "left", incarnation: 0 });
  });
});
