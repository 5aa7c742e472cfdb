/**
 * A deterministic SWIM simulator (docs/conventions.md, section 5, after TigerBeetle's
 * VOPR): N `Swim` state machines in one process on virtual time, joined by a virtual
 * network that loses, delays, duplicates and (through random delays) reorders datagrams,
 * partitions nodes, and crashes and restarts them. Push-pull runs over a virtual TCP: no
 * loss, but a crash or partition fails it. Every packet goes through the real codec both
 * ways.
 *
 * One seed decides everything: the network's choices come from one SeededRandom, and each
 * node's from its own, derived from the seed, its index and its life (restart count).
 *
 * Safety invariants are checked after every step of every node:
 * - incarnations only grow, in every view (per observer life);
 * - (when `noFalseDead`) no node that keeps answering is ever seen dead.
 */
import {
  decodePacket,
  decodePushPull,
  encodePacket,
  encodePushPull,
} from "../../../src/cluster/swim/codec.ts";
import type { SwimConfig } from "../../../src/cluster/swim/config.ts";
import {
  endpointText,
  type Endpoint,
  type Member,
  type MemberState,
} from "../../../src/cluster/swim/member.ts";
import type { Packet, PushPullFrame } from "../../../src/cluster/swim/messages.ts";
import { Swim, type SwimOutput } from "../../../src/cluster/swim/swim.ts";
import { assert, unreachable } from "../../../src/util/assert.ts";
import { ManualClock } from "../../../src/util/clock.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { EventQueue } from "./event-queue.ts";

export interface NetworkFaults {
  /** Each datagram is lost with this probability. */
  readonly lossRatio: number;
  /** Each datagram that is not lost arrives twice with this probability. */
  readonly duplicateRatio: number;
  /** One-way delay, uniform in [min, max] per datagram (and per TCP hop). */
  readonly delayMsMin: number;
  readonly delayMsMax: number;
}

export interface SimulationOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly config: SwimConfig;
  readonly faults: NetworkFaults;
  /** Each node is ticked this often (the driver's tick). */
  readonly tickMs: number;
  readonly clusterId: string;
}

/** Thrown when an invariant breaks; the message says which, the trace what led there. */
export class InvariantError extends Error {
  override name = "InvariantError";
}

type SimEvent =
  | { readonly kind: "tick"; readonly node: number; readonly life: number }
  | {
      readonly kind: "packet";
      readonly node: number;
      readonly from: Endpoint;
      readonly bytes: Uint8Array;
      readonly fromNode: number;
    }
  | {
      readonly kind: "pushPullRequest";
      readonly node: number;
      readonly id: number;
      readonly frame: Uint8Array;
    }
  | { readonly kind: "pushPullResponse"; readonly id: number; readonly frame: Uint8Array }
  | { readonly kind: "pushPullFailed"; readonly id: number; readonly reason: string }
  | { readonly kind: "action"; readonly run: () => void };

interface PendingPushPull {
  readonly node: number;
  readonly life: number;
  readonly to: Endpoint;
  readonly target: number;
}

export class SimNode {
  readonly index: number;
  readonly nodeId: number;
  readonly gossip: Endpoint;
  swim: Swim | null = null;
  /** Bumped at every start and crash, so that what was in flight for an old life is dropped. */
  life = 0;
  everCrashed = false;
  leaving = false;
  leaveDeadlineMs = 0;
  /** Network side of a partition: nodes in different groups cannot talk. */
  group = 0;
  /** The cluster id persisted "on disk": it survives a crash. */
  clusterId: string | null = null;
  /** Highest incarnation seen per member in this life (the monotonicity check). */
  seen = new Map<number, number>();

  constructor(index: number) {
    this.index = index;
    this.nodeId = 100 + index * 7; // Not 0..n-1, so no code can confuse ids with indexes.
    this.gossip = { host: `10.0.0.${index + 1}`, port: 7946 };
  }

  get up(): boolean {
    return this.swim !== null;
  }

  view(nodeId: number): Member | undefined {
    return this.swim?.member(nodeId);
  }

  state(nodeId: number): MemberState | undefined {
    return this.view(nodeId)?.state;
  }
}

export class SwimSimulation {
  readonly options: SimulationOptions;
  readonly clock = new ManualClock(0);
  readonly nodes: SimNode[];
  /** Checked after every step: nobody that keeps answering may be seen dead. */
  noFalseDead = true;
  readonly #random: SeededRandom;
  readonly #events = new EventQueue<SimEvent>();
  readonly #byAddress = new Map<string, SimNode>();
  readonly #byNodeId = new Map<number, SimNode>();
  readonly #pushPulls = new Map<number, PendingPushPull>();
  readonly #trace: string[] = [];
  #pushPullId = 0;
  /** Counters, for reports. */
  readonly stats = { steps: 0, packetsSent: 0, packetsLost: 0, pushPulls: 0 };

  constructor(options: SimulationOptions) {
    assert(options.nodes >= 1, "No nodes");
    assert(options.faults.delayMsMin >= 0, "Negative delay");
    assert(options.faults.delayMsMin <= options.faults.delayMsMax, "Delay min above max");
    this.options = options;
    this.#random = new SeededRandom(options.seed);
    this.nodes = Array.from({ length: options.nodes }, (_, index) => new SimNode(index));
    for (const node of this.nodes) {
      this.#byAddress.set(endpointText(node.gossip), node);
      this.#byNodeId.set(node.nodeId, node);
    }
  }

  get nowMs(): number {
    return this.clock.monotonicMs();
  }

  /** The shared random source of the scenario and the network. */
  get random(): SeededRandom {
    return this.#random;
  }

  node(index: number): SimNode {
    const node = this.nodes[index];
    assert(node !== undefined, `No node ${index}`);
    return node;
  }

  up(): SimNode[] {
    return this.nodes.filter((node) => node.up);
  }

  // -------------------------------------------------------------------------------------
  // Faults and lifecycle.

  /** Starts (or restarts) a node; it joins through `seeds` (node indexes) if any. */
  start(index: number, seeds: readonly number[] = [], clusterId: string | null = null): void {
    const node = this.node(index);
    assert(!node.up, `Node ${index} is already up`);
    node.life += 1;
    node.leaving = false;
    node.seen = new Map();
    if (clusterId !== null) node.clusterId = clusterId;
    node.swim = new Swim({
      nodeId: node.nodeId,
      gossip: node.gossip,
      kafka: { host: node.gossip.host, port: 9092 },
      admin: { host: node.gossip.host, port: 8080 },
      clusterId: node.clusterId,
      config: this.options.config,
      clock: this.clock,
      random: new SeededRandom(mix(this.options.seed, index, node.life)),
    });
    this.#note(`start n${index} life=${node.life} seeds=${seeds.join(",")}`);
    if (seeds.length > 0) node.swim.join(seeds.map((seed) => this.node(seed).gossip));
    this.#after(node);
    const phase = this.#random.int(1, this.options.tickMs);
    this.#events.push(this.nowMs + phase, { kind: "tick", node: index, life: node.life });
  }

  crash(index: number): void {
    const node = this.node(index);
    assert(node.up, `Node ${index} is not up`);
    node.swim = null;
    node.life += 1;
    node.everCrashed = true;
    this.#note(`crash n${index}`);
  }

  /** Graceful leave: announce, keep stepping until disseminated or `waitMs`, then stop. */
  leave(index: number, waitMs: number): void {
    const node = this.node(index);
    const swim = node.swim;
    assert(swim !== null, `Node ${index} is not up`);
    node.leaving = true;
    node.leaveDeadlineMs = this.nowMs + waitMs;
    this.#note(`leave n${index}`);
    swim.leave();
    this.#after(node);
  }

  /** Cuts `indexes` off from everyone else (both directions) until `heal`. */
  isolate(indexes: readonly number[]): void {
    for (const index of indexes) this.node(index).group = 1;
    this.#note(`isolate ${indexes.map((i) => `n${i}`).join(",")}`);
  }

  heal(): void {
    for (const node of this.nodes) node.group = 0;
    this.#note("heal");
  }

  /** Runs `run` at virtual time `timeMs` (now if in the past). */
  at(timeMs: number, run: () => void): void {
    this.#events.push(Math.max(timeMs, this.nowMs), { kind: "action", run });
  }

  // -------------------------------------------------------------------------------------
  // Running.

  /** Processes events up to and including `untilMs`. */
  runUntilTime(untilMs: number): void {
    for (;;) {
      const next = this.#events.peekTime();
      if (next === undefined || next > untilMs) break;
      this.#stepOne();
    }
    if (this.nowMs < untilMs) this.clock.advance(untilMs - this.nowMs);
  }

  /**
   * Runs until `condition` holds (checked every `checkEveryMs` of virtual time) or until
   * `deadlineMs`; returns the time it first held, or null if it never did.
   */
  runUntil(condition: () => boolean, deadlineMs: number, checkEveryMs = 100): number | null {
    for (;;) {
      if (condition()) return this.nowMs;
      if (this.nowMs >= deadlineMs) return null;
      this.runUntilTime(Math.min(deadlineMs, this.nowMs + checkEveryMs));
    }
  }

  #stepOne(): void {
    const popped = this.#events.pop();
    assert(popped !== undefined, "No event");
    if (popped.timeMs > this.nowMs) this.clock.advance(popped.timeMs - this.nowMs);
    const event = popped.item;
    switch (event.kind) {
      case "tick":
        return this.#onTick(event.node, event.life);
      case "packet":
        return this.#onPacket(event.node, event.fromNode, event.from, event.bytes);
      case "pushPullRequest":
        return this.#onPushPullRequest(event.node, event.id, event.frame);
      case "pushPullResponse":
        return this.#onPushPullResponse(event.id, event.frame);
      case "pushPullFailed":
        return this.#onPushPullFailed(event.id, event.reason);
      case "action":
        return event.run();
      default:
        return unreachable(event);
    }
  }

  #onTick(index: number, life: number): void {
    const node = this.node(index);
    if (node.swim === null || node.life !== life) return;
    node.swim.step({ kind: "tick" });
    this.#after(node);
    if (node.leaving && (node.swim.isLeaveDisseminated() || this.nowMs >= node.leaveDeadlineMs)) {
      node.swim = null;
      node.life += 1;
      this.#note(`stopped n${index} after leave`);
      return;
    }
    this.#events.push(this.nowMs + this.options.tickMs, { kind: "tick", node: index, life });
  }

  #onPacket(index: number, fromIndex: number, from: Endpoint, bytes: Uint8Array): void {
    const node = this.node(index);
    if (node.swim === null) return; // Nobody listens on that address now.
    if (node.group !== this.node(fromIndex).group) return; // Cut while in flight.
    const clusterId = node.swim.clusterId;
    const decoded = decodePacket(bytes, clusterId ?? undefined);
    if (!decoded.ok) {
      // Only our own nodes send, all in one cluster, and a node without a cluster id
      // checks none: every packet must decode.
      return this.fail(`n${index} could not decode a packet: ${JSON.stringify(decoded.error)}`);
    }
    node.swim.step({ kind: "packet", from, packet: decoded.value });
    this.#after(node);
  }

  #onPushPullRequest(index: number, id: number, bytes: Uint8Array): void {
    const pending = this.#pushPulls.get(id);
    assert(pending !== undefined, "Unknown push-pull");
    const node = this.node(index);
    if (node.swim === null || node.group !== this.node(pending.node).group) {
      return this.#failPushPull(id, "Connection refused");
    }
    const decoded = decodePushPull(bytes);
    this.#check(
      decoded.ok,
      `Push-pull request does not decode: ${decoded.ok ? "" : JSON.stringify(decoded.error)}`,
    );
    if (!decoded.ok) return;
    node.swim.step({
      kind: "pushPullRequest",
      id,
      from: this.node(pending.node).gossip,
      frame: decoded.value,
    });
    this.#after(node);
  }

  #onPushPullResponse(id: number, bytes: Uint8Array): void {
    const pending = this.#pushPulls.get(id);
    assert(pending !== undefined, "Unknown push-pull");
    this.#pushPulls.delete(id);
    const node = this.node(pending.node);
    if (node.swim === null || node.life !== pending.life) return;
    if (node.group !== this.node(pending.target).group) {
      node.swim.step({ kind: "pushPullFailed", to: pending.to, reason: "Connection reset" });
      return this.#after(node);
    }
    const decoded = decodePushPull(bytes);
    this.#check(decoded.ok, "Push-pull response does not decode");
    if (!decoded.ok) return;
    node.swim.step({ kind: "pushPullResponse", to: pending.to, frame: decoded.value });
    this.#after(node);
  }

  #onPushPullFailed(id: number, reason: string): void {
    const pending = this.#pushPulls.get(id);
    assert(pending !== undefined, "Unknown push-pull");
    this.#pushPulls.delete(id);
    const node = this.node(pending.node);
    if (node.swim === null || node.life !== pending.life) return;
    node.swim.step({ kind: "pushPullFailed", to: pending.to, reason });
    this.#after(node);
  }

  #failPushPull(id: number, reason: string): void {
    // A refused connect is quick; a partition is a connect timeout.
    this.#events.push(this.nowMs + this.#random.int(1, 1_000), {
      kind: "pushPullFailed",
      id,
      reason,
    });
  }

  // -------------------------------------------------------------------------------------
  // After each step: perform outputs, check invariants.

  #after(node: SimNode): void {
    const swim = node.swim;
    if (swim === null) return;
    this.stats.steps += 1;
    for (const output of swim.drain()) this.#perform(node, output);
    this.#checkNode(node, swim);
  }

  #perform(node: SimNode, output: SwimOutput): void {
    switch (output.kind) {
      case "send":
        return this.#sendPacket(node, output.to, output.packet);
      case "pushPull":
        return this.#startPushPull(node, output.to, output.frame);
      case "pushPullAnswer":
        return this.#answerPushPull(output.id, output.frame);
      case "member":
        return this.#note(
          `n${node.index} sees ${this.#name(output.member.nodeId)} ${output.change} inc=${output.member.incarnation}`,
        );
      case "clusterId":
        node.clusterId = output.clusterId;
        return this.#note(`n${node.index} learned cluster ${output.clusterId}`);
      case "joined":
        return this.#note(`n${node.index} joined via ${endpointText(output.via)}`);
      case "joinFailed":
        return this.#note(
          `n${node.index} join via ${endpointText(output.seed)} failed: ${output.reason}`,
        );
      case "error":
        return this.#check(false, `n${node.index} error: ${JSON.stringify(output.error)}`);
      default:
        return unreachable(output);
    }
  }

  #delay(): number {
    return this.#random.int(this.options.faults.delayMsMin, this.options.faults.delayMsMax);
  }

  #sendPacket(node: SimNode, to: Endpoint, packet: Packet): void {
    this.stats.packetsSent += 1;
    const bytes = encodePacket(packet); // Asserts the size limit on every packet we make.
    const target = this.#byAddress.get(endpointText(to));
    if (target === undefined || target.group !== node.group) return;
    const faults = this.options.faults;
    if (this.#random.next() < faults.lossRatio) {
      this.stats.packetsLost += 1;
      return;
    }
    const copies = this.#random.next() < faults.duplicateRatio ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.#events.push(this.nowMs + this.#delay(), {
        kind: "packet",
        node: target.index,
        fromNode: node.index,
        from: node.gossip,
        bytes,
      });
    }
  }

  #startPushPull(node: SimNode, to: Endpoint, frame: PushPullFrame): void {
    this.stats.pushPulls += 1;
    this.#pushPullId += 1;
    const id = this.#pushPullId;
    const target = this.#byAddress.get(endpointText(to));
    this.#pushPulls.set(id, {
      node: node.index,
      life: node.life,
      to,
      target: target?.index ?? node.index,
    });
    if (target === undefined || !target.up || target.group !== node.group)
      return this.#failPushPull(id, "Connection refused");
    this.#events.push(this.nowMs + this.#delay(), {
      kind: "pushPullRequest",
      node: target.index,
      id,
      frame: encodePushPull(frame),
    });
  }

  #answerPushPull(id: number, frame: PushPullFrame | null): void {
    if (frame === null) return this.#failPushPull(id, "Closed without an answer");
    this.#events.push(this.nowMs + this.#delay(), {
      kind: "pushPullResponse",
      id,
      frame: encodePushPull(frame),
    });
  }

  /** Whether `node` keeps answering: up, never crashed, not leaving. */
  answering(node: SimNode): boolean {
    return node.up && !node.everCrashed && !node.leaving;
  }

  #checkNode(node: SimNode, swim: Swim): void {
    for (const member of swim.members()) {
      const seen = node.seen.get(member.nodeId);
      this.#check(
        seen === undefined || member.incarnation >= seen,
        `Incarnation went down: n${node.index} sees ${this.#name(member.nodeId)} at ${member.incarnation} after ${seen}`,
      );
      if (seen === undefined || member.incarnation > seen)
        node.seen.set(member.nodeId, member.incarnation);
      if (this.noFalseDead && member.state === "dead") {
        const subject = this.#byNodeId.get(member.nodeId);
        this.#check(
          subject === undefined || !this.answering(subject),
          `A node that keeps answering was declared dead: n${node.index} sees ${this.#name(member.nodeId)} dead`,
        );
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Failures and the trace.

  #name(nodeId: number): string {
    const node = this.#byNodeId.get(nodeId);
    return node === undefined ? `node ${nodeId}` : `n${node.index}`;
  }

  #note(text: string): void {
    this.#trace.push(`${this.nowMs}ms ${text}`);
    if (this.#trace.length > 300) this.#trace.splice(0, 100);
  }

  note(text: string): void {
    this.#note(text);
  }

  /** Fails with the message and the last events that led to it. */
  fail(message: string): never {
    const views = this.nodes.map(
      (node) =>
        `  n${node.index} ${node.up ? "up" : "down"}${node.leaving ? " leaving" : ""}: ` +
        (node.swim
          ?.members()
          .map((m) => `${this.#name(m.nodeId)}=${m.state}@${m.incarnation}`)
          .join(" ") ?? "-") +
        (node.swim ? ` health=${node.swim.healthScore}` : ""),
    );
    throw new InvariantError(
      `${message} at ${this.nowMs}ms\nviews:\n${views.join("\n")}\ntrace (last events):\n  ${this.#trace.slice(-60).join("\n  ")}`,
    );
  }

  #check(condition: boolean, message: string): void {
    if (!condition) this.fail(message);
  }
}

/** A node's seed from the run's seed, its index and its life (SplitMix-style mixing). */
function mix(seed: number, index: number, life: number): number {
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9) ^ Math.imul(life, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}
