/**
 * SWIM membership with Lifeguard, as a pure state machine (docs/conventions.md,
 * section 5, after etcd-io/raft): no sockets, timers or global clock. The caller steps
 * it with inputs (ticks, decoded packets, push-pull exchanges) and drains outputs
 * (packets to send, push-pulls to make, member events). Time comes from the passed
 * Clock, read when an input arrives; randomness from the passed Random. The same class
 * runs under the UDP driver and under the simulator in test/sim/swim/.
 *
 * The protocol (SWIM paper, Das et al. 2002; Lifeguard, Dadgar et al. 2018; as in
 * hashicorp/memberlist state.go):
 * - Every probe interval, ping the next member in a shuffled round-robin. No ack within
 *   the probe timeout: ask k others to ping it (ping-req). No ack by the end of the
 *   interval: suspect it.
 * - A suspicion lasts between a min and a max timeout, shorter the more members confirm
 *   it independently; when it runs out, the member is dead.
 * - A member that hears it is suspected or dead at its current incarnation or above
 *   raises its incarnation and gossips alive: the refutation. Claims are ordered by
 *   incarnation: a claim below what we know is stale (or forged) and ignored.
 * - Gossip (alive, suspect, dead, left) rides on probe packets, each update a bounded
 *   number of times; when there is news, a short gossip timer also sends it to a few
 *   random members (memberlist's gossip). Periodically, a push-pull over TCP swaps the
 *   full member list with one random member; joining is a push-pull with a seed.
 * - Local health awareness widens our own probe interval and timeout when our probes
 *   fail in ways that suggest we are the slow one.
 *
 * Beyond memberlist, found necessary by the simulation (small clusters with most members
 * down under 10% loss): every packet to a member we suspect carries the suspicion (the
 * buddy system on all traffic, not only probes), and each gossip round sends it one; a
 * refutation goes straight to the accuser as well as into gossip; an accusation below our
 * incarnation (the accuser missed our refutation) makes us announce alive again; a leave
 * is also handed over by push-pull; and push-pull with a random dead member now and then
 * (Serf's reconnect) lets the two sides of a healed partition meet again.
 */
import { assert, unreachable } from "../../util/assert.ts";
import type { Clock } from "../../util/clock.ts";
import type { Random } from "../../util/random.ts";
import { Awareness } from "./awareness.ts";
import { BroadcastQueue } from "./broadcast-queue.ts";
import { isClusterId } from "./cluster-id.ts";
import {
  MEMBERS_MAX,
  PACKET_MESSAGES_MAX,
  UDP_PACKET_BYTES_MAX,
  messageBytes,
  packetOverheadBytes,
} from "./codec.ts";
import { checkSwimConfig, type SwimConfig } from "./config.ts";
import {
  INCARNATION_MAX,
  assertEndpoint,
  copyEndpoint,
  endpointText,
  isDeadOrLeft,
  isIncarnation,
  isNodeId,
  sameEndpoint,
  type Endpoint,
  type Member,
} from "./member.ts";
import type {
  AliveMessage,
  GossipMessage,
  MemberRecord,
  Packet,
  PushPullFrame,
  SwimMessage,
} from "./messages.ts";
import { ProbeRing } from "./probe-ring.ts";
import { Suspicion, suspicionMinMs } from "./suspicion.ts";

export type SwimInput =
  /** Time passed: run whatever timeouts are due. Any cadence works; finer is more exact. */
  | { readonly kind: "tick" }
  /** A decoded UDP packet and the address it came from. */
  | { readonly kind: "packet"; readonly from: Endpoint; readonly packet: Packet }
  /** A push-pull request from another node; answered by a `pushPullAnswer` with this id. */
  | {
      readonly kind: "pushPullRequest";
      readonly id: number;
      readonly from: Endpoint;
      readonly frame: PushPullFrame;
    }
  /** The answer to a `pushPull` output. */
  | { readonly kind: "pushPullResponse"; readonly to: Endpoint; readonly frame: PushPullFrame }
  /** A `pushPull` output could not complete (connect refused, timeout, bad frame). */
  | { readonly kind: "pushPullFailed"; readonly to: Endpoint; readonly reason: string };

export type MemberChange = "joined" | "updated" | "suspect" | "alive" | "dead" | "left";

export type SwimError =
  /** Our configured cluster id differs from the seed's: the caller should refuse to run. */
  {
    readonly kind: "clusterIdMismatch";
    readonly seed: Endpoint;
    readonly ours: string;
    readonly theirs: string;
  };

export type SwimOutput =
  | { readonly kind: "send"; readonly to: Endpoint; readonly packet: Packet }
  /** Open a push-pull with `to`: send `frame`, feed back the answer or the failure. */
  | {
      readonly kind: "pushPull";
      readonly to: Endpoint;
      readonly frame: PushPullFrame;
      readonly join: boolean;
    }
  /** The answer to a `pushPullRequest` input, or null to close without one. */
  | { readonly kind: "pushPullAnswer"; readonly id: number; readonly frame: PushPullFrame | null }
  /** Another member changed, as seen here. Never about ourselves. */
  | { readonly kind: "member"; readonly change: MemberChange; readonly member: Member }
  /** We learned our cluster id from a seed (we had none): the caller persists it. */
  | { readonly kind: "clusterId"; readonly clusterId: string }
  | { readonly kind: "joined"; readonly via: Endpoint; readonly members: number }
  /** One join attempt failed; the next round starts in `retryInMs` unless another seed answers. */
  | {
      readonly kind: "joinFailed";
      readonly seed: Endpoint;
      readonly reason: string;
      readonly attempt: number;
      readonly retryInMs: number;
    }
  | { readonly kind: "error"; readonly error: SwimError };

export interface SwimOptions {
  readonly nodeId: number;
  /** How other members reach us: the advertised gossip host and the port actually bound. */
  readonly gossip: Endpoint;
  readonly kafka: Endpoint;
  readonly admin: Endpoint;
  /** Null: not known yet; `join` learns it from the first seed that answers. */
  readonly clusterId: string | null;
  readonly config: SwimConfig;
  readonly clock: Clock;
  readonly random: Random;
  /** Start above an incarnation a previous life may have used (0 if none is known). */
  readonly incarnation?: number;
}

/** The probe in flight: one per probe interval. */
interface Probe {
  readonly target: number;
  readonly seq: number;
  /** The target's incarnation when probed: a failure suspects that incarnation only. */
  readonly incarnation: number;
  readonly directDeadlineMs: number;
  readonly endMs: number;
  indirectSent: boolean;
  expectedNacks: number;
  nacks: number;
}

/** An indirect probe we make for another member (we received its ping-req). */
interface Relay {
  readonly origin: Endpoint;
  readonly originSeq: number;
  readonly nackAtMs: number;
}

interface JoinAttempt {
  readonly seeds: readonly Endpoint[];
  /** Seeds asked in the current round and not yet answered (by endpoint text). */
  readonly pending: Set<string>;
  round: number;
  backoffMs: number;
  /** When the next round starts, once every seed of this one failed; null while waiting. */
  nextRoundMs: number | null;
}

/** Relayed probes outstanding at once; more ping-reqs are dropped (a flood must not grow memory). */
const RELAYS_MAX = 1024;
/** Push-pull intervals grow with log2 of the cluster size above this (memberlist). */
const PUSH_PULL_SCALE_THRESHOLD = 32;

export class Swim {
  readonly #config: SwimConfig;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #members = new Map<number, Member>();
  readonly #suspicions = new Map<number, Suspicion>();
  /**
   * An alive claim for a live member's id from another address, with a higher
   * incarnation: kept until that member is declared dead or left, then taken. A node
   * restarted on new ports (or a replacement machine) is then a member again as soon as
   * its previous life is dead, instead of waiting for a push-pull to hear of its death
   * and refute it. At most one per known member.
   */
  readonly #heldClaims = new Map<number, AliveMessage>();
  readonly #relays = new Map<number, Relay>();
  readonly #broadcasts: BroadcastQueue;
  readonly #awareness: Awareness;
  readonly #ring = new ProbeRing();
  #self: Member;
  #clusterId: string | null;
  #outbox: SwimOutput[] = [];
  #seq: number;
  #probe: Probe | null = null;
  #nextProbeMs: number;
  #nextPushPullMs: number;
  #nextReconnectMs: number;
  #nextGossipMs: number;
  #join: JoinAttempt | null = null;
  #left = false;
  /** The push-pull that hands our 'left' to one member for sure (see `#syncLeave`). */
  #leaveSync: { readonly tried: Set<number>; pending: string | null } | null = null;

  constructor(options: SwimOptions) {
    checkSwimConfig(options.config);
    assert(isNodeId(options.nodeId), `Not a node id: ${options.nodeId}`);
    assertEndpoint(options.gossip, "Gossip");
    assertEndpoint(options.kafka, "Kafka");
    assertEndpoint(options.admin, "Admin");
    assert(options.gossip.port > 0, "Gossip port is 0: pass the port actually bound");
    assert(
      options.clusterId === null || isClusterId(options.clusterId),
      `Not a cluster id: ${options.clusterId}`,
    );
    const incarnation = options.incarnation ?? 0;
    assert(isIncarnation(incarnation) && incarnation < INCARNATION_MAX, "Bad starting incarnation");
    this.#config = options.config;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#clusterId = options.clusterId;
    this.#broadcasts = new BroadcastQueue(options.config.retransmitMult);
    this.#awareness = new Awareness(options.config.awarenessMultiplierMax);
    const now = this.#now();
    this.#self = {
      nodeId: options.nodeId,
      gossip: copyEndpoint(options.gossip),
      kafka: copyEndpoint(options.kafka),
      admin: copyEndpoint(options.admin),
      incarnation,
      state: "alive",
      stateChangeMs: now,
    };
    this.#seq = this.#random.int(0, 0x7fff_ffff);
    // Random phases, so that nodes started together do not probe and sync in lockstep.
    this.#nextProbeMs = now + this.#random.int(0, options.config.probeIntervalMs - 1);
    this.#nextGossipMs = now + this.#random.int(0, options.config.gossipIntervalMs - 1);
    this.#nextPushPullMs =
      now + this.#random.int(1, Math.max(1, options.config.pushPullIntervalMs));
    this.#nextReconnectMs =
      now + this.#random.int(1, Math.max(1, options.config.reconnectIntervalMs));
    this.#broadcasts.enqueue(this.#aliveOf(this.#self));
  }

  // -------------------------------------------------------------------------------------
  // Queries.

  get config(): SwimConfig {
    return this.#config;
  }

  get nodeId(): number {
    return this.#self.nodeId;
  }

  get self(): Member {
    return this.#self;
  }

  get clusterId(): string | null {
    return this.#clusterId;
  }

  /** Lifeguard's health score: 0 is healthy; timeouts are scaled by score + 1. */
  get healthScore(): number {
    return this.#awareness.score;
  }

  get hasLeft(): boolean {
    return this.#left;
  }

  /** True while a join has not yet reached any seed. */
  get joining(): boolean {
    return this.#join !== null;
  }

  /** Every member we know, ourselves included, by node id. */
  members(): Member[] {
    return [this.#self, ...this.#members.values()].sort((a, b) => a.nodeId - b.nodeId);
  }

  member(nodeId: number): Member | undefined {
    return nodeId === this.#self.nodeId ? this.#self : this.#members.get(nodeId);
  }

  /** After `leave`: the 'left' news has been sent as often as gossip sends anything (or nobody is left to tell). */
  isLeaveDisseminated(): boolean {
    if (!this.#left) return false;
    if (this.#leaveSync !== null && this.#leaveSync.pending !== null) return false;
    if (this.#liveOthers().length === 0) return true;
    return this.#broadcasts.about(this.#self.nodeId)?.type !== "left";
  }

  // -------------------------------------------------------------------------------------
  // Inputs and outputs.

  step(input: SwimInput): void {
    switch (input.kind) {
      case "tick":
        return this.#onTick();
      case "packet":
        return this.#onPacket(input.from, input.packet);
      case "pushPullRequest":
        return this.#onPushPullRequest(input.id, input.frame);
      case "pushPullResponse":
        return this.#onPushPullResponse(input.to, input.frame);
      case "pushPullFailed":
        return this.#onPushPullFailed(input.to, input.reason);
      default:
        return unreachable(input);
    }
  }

  /** Outputs since the last call, in order. */
  drain(): SwimOutput[] {
    return this.#outbox.splice(0);
  }

  /**
   * Joins through any of `seeds` (push-pull with each); retries every round with backoff
   * until one answers. Without a cluster id we learn the seed's.
   */
  join(seeds: readonly Endpoint[]): void {
    assert(seeds.length > 0, "Join without seeds");
    assert(!this.#left, "Join after leave");
    for (const seed of seeds) assertEndpoint(seed, "Seed");
    const others = seeds.filter((seed) => !sameEndpoint(seed, this.#self.gossip));
    if (others.length === 0) return; // Only ourselves: nothing to join.
    this.#join = {
      seeds: others.map(copyEndpoint),
      pending: new Set(),
      round: 0,
      backoffMs: this.#config.joinBackoffMs,
      nextRoundMs: null,
    };
    this.#startJoinRound();
  }

  /**
   * Announces that we leave (graceful shutdown): state left, gossiped at once to a few
   * members and on later gossip ticks until sent out. We stop probing; the caller keeps stepping
   * until `isLeaveDisseminated()` or its patience ends, then stops.
   */
  leave(): void {
    if (this.#left) return;
    this.#left = true;
    this.#join = null;
    this.#probe = null;
    this.#self = { ...this.#self, state: "left", stateChangeMs: this.#now() };
    this.#broadcasts.enqueue({
      type: "left",
      nodeId: this.#self.nodeId,
      incarnation: this.#self.incarnation,
    });
    this.#gossip(this.#now());
    this.#leaveSync = { tried: new Set(), pending: null };
    this.#syncLeave();
  }

  /**
   * Gossip can lose every copy of the 'left' news, and then, once we are gone, everybody
   * calls us dead. So a leave also push-pulls (TCP, reliable) with one live member, and
   * with another if that fails: at least one member knows, and push-pull spreads it.
   */
  #syncLeave(): void {
    const sync = this.#leaveSync;
    assert(sync !== null, "No leave in progress");
    sync.pending = null;
    const [peer] = this.#randomMembers(
      1,
      (member) => !isDeadOrLeft(member.state) && !sync.tried.has(member.nodeId),
    );
    if (peer === undefined || this.#clusterId === null) return;
    sync.tried.add(peer.nodeId);
    sync.pending = endpointText(peer.gossip);
    this.#pushPull(peer.gossip, false);
  }

  // -------------------------------------------------------------------------------------
  // Ticks.

  #now(): number {
    return this.#clock.monotonicMs();
  }

  #onTick(): void {
    const now = this.#now();
    this.#joinTick(now);
    if (this.#clusterId === null) return; // Nothing to talk about before we know our cluster.
    this.#relayTick(now);
    this.#suspicionTick(now);
    if (now >= this.#nextGossipMs) this.#gossip(now);
    if (this.#left) return; // A leaver only spreads its news.
    this.#probeTick(now);
    this.#pushPullTick(now);
  }

  #probeTick(now: number): void {
    const probe = this.#probe;
    if (probe !== null) {
      if (!probe.indirectSent && now >= probe.directDeadlineMs) this.#probeIndirectly(probe);
      if (now >= probe.endMs) {
        this.#probe = null;
        this.#probeFailed(probe);
      }
    }
    if (this.#probe === null && now >= this.#nextProbeMs) this.#startProbe(now);
  }

  #startProbe(now: number): void {
    const intervalMs = this.#awareness.scaleMs(this.#config.probeIntervalMs);
    const timeoutMs = this.#awareness.scaleMs(this.#config.probeTimeoutMs);
    this.#nextProbeMs = now + intervalMs;
    const target = this.#ring.next(
      (nodeId) => this.#isProbeable(nodeId),
      () =>
        [...this.#members.values()]
          .filter((member) => !isDeadOrLeft(member.state))
          .map((member) => member.nodeId),
      this.#random,
    );
    if (target === null) return;
    const member = this.#members.get(target);
    assert(member !== undefined, "Probe target is not a member");
    const seq = this.#nextSeq();
    this.#probe = {
      target,
      seq,
      incarnation: member.incarnation,
      directDeadlineMs: now + timeoutMs,
      endMs: now + intervalMs,
      indirectSent: false,
      expectedNacks: 0,
      nacks: 0,
    };
    this.#send(member.gossip, [{ type: "ping", seq, target }]);
  }

  #isProbeable(nodeId: number): boolean {
    const member = this.#members.get(nodeId);
    return member !== undefined && !isDeadOrLeft(member.state);
  }

  #probeIndirectly(probe: Probe): void {
    probe.indirectSent = true;
    const target = this.#members.get(probe.target);
    if (target === undefined || isDeadOrLeft(target.state)) return;
    const helpers = this.#randomMembers(
      this.#config.indirectChecks,
      (member) => member.state === "alive" && member.nodeId !== probe.target,
    );
    probe.expectedNacks = helpers.length;
    for (const helper of helpers) {
      this.#send(helper.gossip, [
        { type: "pingReq", seq: probe.seq, target: probe.target, targetGossip: target.gossip },
      ]);
    }
  }

  #probeFailed(probe: Probe): void {
    // Lifeguard: helpers that answered with nacks are up, so a missing nack points at us.
    // Without helpers, any failure counts against our own health a little.
    if (probe.expectedNacks > 0) {
      if (probe.nacks < probe.expectedNacks)
        this.#awareness.applyDelta(probe.expectedNacks - probe.nacks);
    } else {
      this.#awareness.applyDelta(1);
    }
    this.#onSuspect(probe.target, probe.incarnation, this.#self.nodeId);
  }

  #relayTick(now: number): void {
    for (const [seq, relay] of this.#relays) {
      if (now < relay.nackAtMs) continue;
      this.#relays.delete(seq);
      this.#send(relay.origin, [{ type: "nack", seq: relay.originSeq }]);
    }
  }

  #suspicionTick(now: number): void {
    for (const [nodeId, suspicion] of this.#suspicions) {
      if (!suspicion.expired(now)) continue;
      const member = this.#members.get(nodeId);
      assert(member !== undefined, "Suspicion of an unknown member");
      assert(member.state === "suspect", "Suspicion of a member not suspect");
      this.#suspicions.delete(nodeId);
      this.#setMember({ ...member, state: "dead", stateChangeMs: now }, "dead");
      this.#broadcasts.enqueue({
        type: "dead",
        nodeId,
        incarnation: member.incarnation,
        from: this.#self.nodeId,
      });
      this.#takeHeldClaim(nodeId);
    }
  }

  #pushPullTick(now: number): void {
    if (this.#config.pushPullIntervalMs > 0 && now >= this.#nextPushPullMs) {
      const live = this.#liveOthers().length;
      this.#nextPushPullMs = now + pushPullScaleMs(this.#config.pushPullIntervalMs, live + 1);
      const [peer] = this.#randomMembers(1, (member) => !isDeadOrLeft(member.state));
      if (peer !== undefined) this.#pushPull(peer.gossip, false);
    }
    if (this.#config.reconnectIntervalMs > 0 && now >= this.#nextReconnectMs) {
      this.#nextReconnectMs = now + this.#config.reconnectIntervalMs;
      const [lost] = this.#randomMembers(1, (member) => member.state === "dead");
      if (lost !== undefined) this.#pushPull(lost.gossip, false);
    }
  }

  /** Sends queued news to a few random members (and recently dead ones, so they can refute). */
  #gossip(now: number): void {
    this.#nextGossipMs = now + this.#config.gossipIntervalMs;
    // Every suspect hears of its suspicion each gossip round (`#send` attaches it): one
    // small packet per suspicion held, so that a refutation does not hang on one lucky
    // datagram while the suspicion runs out.
    for (const nodeId of this.#suspicions.keys()) {
      const member = this.#members.get(nodeId);
      assert(member !== undefined, "Suspicion of an unknown member");
      this.#send(member.gossip, []);
    }
    if (this.#broadcasts.size === 0) return;
    const targets = this.#randomMembers(
      this.#config.gossipNodes,
      (member) =>
        !isDeadOrLeft(member.state) ||
        (member.state === "dead" && now - member.stateChangeMs < this.#config.gossipToTheDeadMs),
    );
    for (const member of targets) this.#send(member.gossip, []);
  }

  // -------------------------------------------------------------------------------------
  // Joining.

  #startJoinRound(): void {
    const join = this.#join;
    assert(join !== null, "No join in progress");
    join.round += 1;
    join.nextRoundMs = null;
    for (const seed of join.seeds) {
      join.pending.add(endpointText(seed));
      this.#pushPull(seed, true);
    }
  }

  #joinTick(now: number): void {
    const join = this.#join;
    if (join === null || join.nextRoundMs === null || now < join.nextRoundMs) return;
    this.#startJoinRound();
  }

  #joinFailed(seed: Endpoint, reason: string): void {
    const join = this.#join;
    if (join === null || !join.pending.delete(endpointText(seed))) return;
    const retryInMs = join.backoffMs;
    this.#outbox.push({ kind: "joinFailed", seed, reason, attempt: join.round, retryInMs });
    if (join.pending.size > 0) return; // Another seed of this round may still answer.
    join.nextRoundMs = this.#now() + join.backoffMs;
    join.backoffMs = Math.min(join.backoffMs * 2, this.#config.joinBackoffMaxMs);
  }

  #isJoinSeed(seed: Endpoint): boolean {
    return this.#join !== null && this.#join.pending.has(endpointText(seed));
  }

  // -------------------------------------------------------------------------------------
  // Push-pull.

  #pushPull(to: Endpoint, join: boolean): void {
    this.#outbox.push({
      kind: "pushPull",
      to,
      join,
      frame: {
        clusterId: this.#clusterId ?? "",
        sender: this.#self.nodeId,
        body: { type: "request", join, members: this.#records() },
      },
    });
  }

  #records(): MemberRecord[] {
    return this.members().map((member) => ({
      nodeId: member.nodeId,
      incarnation: member.incarnation,
      state: member.state,
      gossip: member.gossip,
      kafka: member.kafka,
      admin: member.admin,
    }));
  }

  #answer(id: number, frame: PushPullFrame | null): void {
    this.#outbox.push({ kind: "pushPullAnswer", id, frame });
  }

  #onPushPullRequest(id: number, frame: PushPullFrame): void {
    const body = frame.body;
    if (body.type !== "request") return this.#answer(id, null);
    const sender = this.#self.nodeId;
    if (this.#clusterId === null) {
      return this.#answer(id, {
        clusterId: "",
        sender,
        body: { type: "refused", reason: "noClusterId" },
      });
    }
    const joiningFresh = body.join && frame.clusterId === "";
    if (frame.clusterId !== this.#clusterId && !joiningFresh) {
      return this.#answer(id, {
        clusterId: this.#clusterId,
        sender,
        body: { type: "refused", reason: "clusterMismatch" },
      });
    }
    // Our state as it was before the merge, as memberlist sends it.
    this.#answer(id, {
      clusterId: this.#clusterId,
      sender,
      body: { type: "response", members: this.#records() },
    });
    this.#merge(body.members, frame.sender);
  }

  #onPushPullResponse(to: Endpoint, frame: PushPullFrame): void {
    const body = frame.body;
    if (this.#leaveSync !== null && this.#leaveSync.pending === endpointText(to)) {
      // An answer means the peer merged our request, 'left' included; a refusal does not.
      if (body.type === "response" && frame.clusterId === this.#clusterId)
        this.#leaveSync.pending = null;
      else this.#syncLeave();
    }
    const wasJoin = this.#isJoinSeed(to);
    if (body.type === "request") {
      if (wasJoin) this.#joinFailed(to, "Answered with a request");
      return;
    }
    if (body.type === "refused") {
      if (!wasJoin) return;
      if (body.reason === "noClusterId")
        return this.#joinFailed(to, "Seed has not joined a cluster yet");
      return this.#clusterMismatch(to, frame.clusterId);
    }
    if (this.#clusterId === null) {
      if (!wasJoin) return;
      if (!isClusterId(frame.clusterId))
        return this.#joinFailed(to, "Seed sent no valid cluster id");
      this.#clusterId = frame.clusterId;
      this.#outbox.push({ kind: "clusterId", clusterId: frame.clusterId });
    } else if (frame.clusterId !== this.#clusterId) {
      if (wasJoin) this.#clusterMismatch(to, frame.clusterId);
      return;
    }
    this.#merge(body.members, frame.sender);
    if (wasJoin) {
      this.#join = null;
      this.#outbox.push({ kind: "joined", via: to, members: this.#members.size + 1 });
    }
  }

  #clusterMismatch(seed: Endpoint, theirs: string): void {
    this.#join = null;
    this.#outbox.push({
      kind: "error",
      error: { kind: "clusterIdMismatch", seed, ours: this.#clusterId ?? "", theirs },
    });
  }

  #onPushPullFailed(to: Endpoint, reason: string): void {
    this.#joinFailed(to, reason);
    if (this.#leaveSync?.pending !== null && this.#leaveSync?.pending === endpointText(to))
      this.#syncLeave();
  }

  /** memberlist's mergeState: a remote 'dead' only makes us suspect; we check for ourselves. */
  #merge(records: readonly MemberRecord[], from: number): void {
    for (const record of records) {
      switch (record.state) {
        case "alive":
          this.#onAlive({ type: "alive", ...record });
          break;
        case "suspect":
        case "dead":
          this.#onSuspect(record.nodeId, record.incarnation, from);
          break;
        case "left":
          this.#onDead(record.nodeId, record.incarnation, record.nodeId, true);
          break;
        default:
          unreachable(record.state);
      }
    }
  }

  // -------------------------------------------------------------------------------------
  // Packets.

  #onPacket(from: Endpoint, packet: Packet): void {
    if (this.#clusterId === null || packet.clusterId !== this.#clusterId) return;
    if (packet.sender === this.#self.nodeId) return; // Our own id from elsewhere: a misconfigured twin.
    for (const message of packet.messages) this.#onMessage(from, message);
  }

  #onMessage(from: Endpoint, message: SwimMessage): void {
    switch (message.type) {
      case "ping":
        if (message.target !== this.#self.nodeId) return; // Meant for whoever had this address before.
        return this.#send(from, [{ type: "ack", seq: message.seq }]);
      case "pingReq":
        return this.#onPingReq(from, message.seq, message.target, message.targetGossip);
      case "ack":
        return this.#onAck(message.seq);
      case "nack":
        if (this.#probe !== null && message.seq === this.#probe.seq) this.#probe.nacks += 1;
        return;
      case "alive":
        return this.#onAlive(message);
      case "suspect":
        return this.#onSuspect(message.nodeId, message.incarnation, message.from);
      case "dead":
        return this.#onDead(message.nodeId, message.incarnation, message.from, false);
      case "left":
        return this.#onDead(message.nodeId, message.incarnation, message.nodeId, true);
      default:
        return unreachable(message);
    }
  }

  #onPingReq(origin: Endpoint, originSeq: number, target: number, targetGossip: Endpoint): void {
    if (target === this.#self.nodeId) return this.#send(origin, [{ type: "ack", seq: originSeq }]);
    if (this.#relays.size >= RELAYS_MAX) return;
    const seq = this.#nextSeq();
    this.#relays.set(seq, {
      origin,
      originSeq,
      nackAtMs: this.#now() + this.#config.probeTimeoutMs,
    });
    this.#send(targetGossip, [{ type: "ping", seq, target }]);
  }

  #onAck(seq: number): void {
    const probe = this.#probe;
    if (probe !== null && seq === probe.seq) {
      this.#probe = null; // The next probe starts on schedule.
      this.#awareness.applyDelta(-1);
      return;
    }
    const relay = this.#relays.get(seq);
    if (relay === undefined) return; // Late, duplicated, or not ours.
    this.#relays.delete(seq);
    this.#send(relay.origin, [{ type: "ack", seq: relay.originSeq }]);
  }

  // -------------------------------------------------------------------------------------
  // Claims about members: the state rules.

  #onAlive(alive: AliveMessage): void {
    const now = this.#now();
    if (alive.nodeId === this.#self.nodeId) {
      if (this.#left || alive.incarnation < this.#self.incarnation) return;
      if (alive.incarnation === this.#self.incarnation && this.#sameEndpoints(this.#self, alive))
        return; // Our own news.
      // A claim about us we did not make: a previous life of this node id, or a forgery.
      return this.#refute(alive.incarnation, null);
    }
    const known = this.#members.get(alive.nodeId);
    if (known === undefined) {
      if (this.#members.size + 1 >= MEMBERS_MAX) return; // Full: refuse to grow without bound.
      const member: Member = {
        nodeId: alive.nodeId,
        gossip: copyEndpoint(alive.gossip),
        kafka: copyEndpoint(alive.kafka),
        admin: copyEndpoint(alive.admin),
        incarnation: alive.incarnation,
        state: "alive",
        stateChangeMs: now,
      };
      this.#setMember(member, "joined");
      this.#ring.add(member.nodeId, this.#random);
      this.#broadcasts.enqueue(alive);
      return;
    }
    if (alive.incarnation <= known.incarnation) return; // Stale, a duplicate, or forged lower.
    const moved = !this.#sameEndpoints(known, alive);
    // Another node claims a live member's id from elsewhere: keep the one we know until it
    // dies (two nodes configured with one id must not take turns).
    if (moved && !isDeadOrLeft(known.state)) {
      const held = this.#heldClaims.get(alive.nodeId);
      if (held === undefined || alive.incarnation > held.incarnation)
        this.#heldClaims.set(alive.nodeId, alive);
      return;
    }
    const change: MemberChange | null = isDeadOrLeft(known.state)
      ? "joined"
      : known.state === "suspect"
        ? "alive"
        : moved
          ? "updated"
          : null;
    this.#suspicions.delete(alive.nodeId);
    const member: Member = {
      ...known,
      gossip: copyEndpoint(alive.gossip),
      kafka: copyEndpoint(alive.kafka),
      admin: copyEndpoint(alive.admin),
      incarnation: alive.incarnation,
      state: "alive",
      stateChangeMs: known.state === "alive" ? known.stateChangeMs : now,
    };
    const held = this.#heldClaims.get(alive.nodeId);
    if (held !== undefined && held.incarnation <= alive.incarnation)
      this.#heldClaims.delete(alive.nodeId);
    this.#setMember(member, change);
    if (isDeadOrLeft(known.state)) this.#ring.add(member.nodeId, this.#random);
    this.#broadcasts.enqueue(alive);
  }

  /** A member just died or left: an alive claim held for its id from elsewhere now counts. */
  #takeHeldClaim(nodeId: number): void {
    const held = this.#heldClaims.get(nodeId);
    if (held === undefined) return;
    this.#heldClaims.delete(nodeId);
    this.#onAlive(held);
  }

  /**
   * The member a suspect, dead or left claim is about, when the claim is not stale; a
   * claim about ourselves is answered here (refuted, or our refutation repeated).
   */
  #accused(nodeId: number, incarnation: number, from: number): Member | null {
    if (nodeId === this.#self.nodeId) {
      if (this.#left) return null;
      if (incarnation < this.#self.incarnation) this.#reannounce(from);
      else this.#refute(incarnation, from);
      return null;
    }
    const known = this.#members.get(nodeId);
    if (known === undefined || incarnation < known.incarnation) return null;
    return known;
  }

  #onSuspect(nodeId: number, incarnation: number, from: number): void {
    const known = this.#accused(nodeId, incarnation, from);
    if (known === null) return;
    if (isDeadOrLeft(known.state)) return;
    if (known.state === "suspect") {
      const suspicion = this.#suspicions.get(nodeId);
      assert(suspicion !== undefined, "Suspect member without a suspicion");
      if (incarnation > known.incarnation) this.#setMember({ ...known, incarnation }, null);
      // A new independent suspecter shortens the timeout; pass it on so others count it too.
      if (suspicion.confirm(from))
        this.#broadcasts.enqueue({ type: "suspect", nodeId, incarnation, from });
      return;
    }
    const now = this.#now();
    this.#suspicions.set(nodeId, this.#newSuspicion(from, now));
    const member: Member = { ...known, incarnation, state: "suspect", stateChangeMs: now };
    this.#setMember(member, "suspect");
    const suspect: GossipMessage = { type: "suspect", nodeId, incarnation, from };
    this.#broadcasts.enqueue(suspect);
    // Our own suspicion: tell the suspect at once (Lifeguard's buddy system, without
    // waiting for our next probe of it), so that it can refute in time.
    if (from === this.#self.nodeId) this.#sendNow(member.gossip, [suspect]);
  }

  #newSuspicion(from: number, nowMs: number): Suspicion {
    // memberlist: expect suspicionMult - 2 confirmations, none if too few members could.
    const members = this.#liveOthers().length + 1;
    let expected = this.#config.suspicionMult - 2;
    if (members - 2 < expected) expected = 0;
    const minMs = suspicionMinMs(this.#config.suspicionMult, members, this.#config.probeIntervalMs);
    const maxMs = this.#config.suspicionMaxTimeoutMult * minMs;
    return new Suspicion({ from, expected, minMs, maxMs, nowMs });
  }

  /** A dead claim from `from`, or a left announcement (`left`, from the member itself). */
  #onDead(nodeId: number, incarnation: number, from: number, left: boolean): void {
    const known = this.#accused(nodeId, incarnation, from);
    if (known === null) return;
    if (known.state === "left") return; // Final: nothing says more.
    if (known.state === "dead" && !left) return;
    // A 'left' also replaces 'dead': the member said goodbye, whatever we concluded first.
    const state = left ? "left" : "dead";
    this.#suspicions.delete(nodeId);
    this.#setMember({ ...known, incarnation, state, stateChangeMs: this.#now() }, state);
    this.#broadcasts.enqueue(
      left ? { type: "left", nodeId, incarnation } : { type: "dead", nodeId, incarnation, from },
    );
    this.#takeHeldClaim(nodeId);
  }

  /**
   * Somebody (`accuser`, if known) claims we are suspect, dead or otherwise at `accused`:
   * outbid it and say alive, to everyone by gossip and to the accuser at once.
   */
  #refute(accused: number, accuser: number | null): void {
    assert(accused >= this.#self.incarnation, "Refuting a stale claim");
    const incarnation = accused + 1;
    if (incarnation >= INCARNATION_MAX) return; // Cannot outbid (the codec refuses such claims).
    this.#self = { ...this.#self, incarnation };
    this.#announce(accuser);
    // Lifeguard: being suspected while alive hints that we were slow to answer.
    this.#awareness.applyDelta(1);
  }

  /**
   * An accusation below our incarnation: we already refuted it, but the accuser has not
   * heard. Say it again (not in memberlist, which relies on the first round of gossip; in a
   * small cluster with most members down that round can miss the accuser entirely).
   */
  #reannounce(accuser: number): void {
    this.#announce(accuser);
  }

  /** Gossips our alive afresh, and sends it to the accuser at once. */
  #announce(accuser: number | null): void {
    const alive = this.#aliveOf(this.#self);
    this.#broadcasts.enqueue(alive);
    const accusing = accuser === null ? undefined : this.#members.get(accuser);
    if (accusing !== undefined) this.#sendNow(accusing.gossip, [alive]);
  }

  // -------------------------------------------------------------------------------------
  // Helpers.

  #setMember(member: Member, change: MemberChange | null): void {
    const known = this.#members.get(member.nodeId);
    assert(known === undefined || member.incarnation >= known.incarnation, "Incarnation went down");
    // A member is suspect exactly while a suspicion runs for it.
    assert(
      (member.state === "suspect") === this.#suspicions.has(member.nodeId),
      "Suspect state without its suspicion",
    );
    this.#members.set(member.nodeId, member);
    if (change !== null) this.#outbox.push({ kind: "member", change, member });
  }

  #aliveOf(member: Member): AliveMessage {
    return {
      type: "alive",
      nodeId: member.nodeId,
      incarnation: member.incarnation,
      gossip: member.gossip,
      kafka: member.kafka,
      admin: member.admin,
    };
  }

  #sameEndpoints(member: Member, alive: AliveMessage): boolean {
    return (
      sameEndpoint(member.gossip, alive.gossip) &&
      sameEndpoint(member.kafka, alive.kafka) &&
      sameEndpoint(member.admin, alive.admin)
    );
  }

  #liveOthers(): Member[] {
    return [...this.#members.values()].filter((member) => !isDeadOrLeft(member.state));
  }

  /** Up to `count` distinct members passing `accept`, chosen at random. */
  #randomMembers(count: number, accept: (member: Member) => boolean): Member[] {
    const candidates = [...this.#members.values()].filter(accept);
    const chosen: Member[] = [];
    while (chosen.length < count && candidates.length > 0) {
      const index = this.#random.int(0, candidates.length - 1);
      chosen.push(candidates[index] as Member);
      candidates[index] = candidates[candidates.length - 1] as Member;
      candidates.pop();
    }
    return chosen;
  }

  #nextSeq(): number {
    this.#seq = (this.#seq + 1) >>> 0;
    return this.#seq;
  }

  /**
   * Lifeguard's buddy system, wider than memberlist's (which attaches it to probes only):
   * whatever we send to a member we suspect says so, so the suspect can refute even when
   * the gossip about it ran out before reaching it.
   */
  #suspicionOf(to: Endpoint): SwimMessage | null {
    for (const nodeId of this.#suspicions.keys()) {
      const member = this.#members.get(nodeId);
      assert(member !== undefined, "Suspicion of an unknown member");
      if (!sameEndpoint(member.gossip, to)) continue;
      return { type: "suspect", nodeId, incarnation: member.incarnation, from: this.#self.nodeId };
    }
    return null;
  }

  /** Sends `messages` on their own, now (news for one member in particular). */
  #sendNow(to: Endpoint, messages: SwimMessage[]): void {
    if (this.#clusterId === null) return;
    this.#outbox.push({
      kind: "send",
      to,
      packet: { clusterId: this.#clusterId, sender: this.#self.nodeId, messages },
    });
  }

  /** Sends `primary` with as much queued gossip as fits; nothing at all if both are empty. */
  #send(to: Endpoint, primaryGiven: SwimMessage[]): void {
    let primary = primaryGiven;
    const clusterId = this.#clusterId;
    if (clusterId === null) return;
    const suspicion = this.#suspicionOf(to);
    if (suspicion !== null) primary = [...primary, suspicion];
    let budget = UDP_PACKET_BYTES_MAX - packetOverheadBytes(clusterId);
    for (const message of primary) budget -= messageBytes(message);
    assert(budget >= 0, "Probe message does not fit a packet");
    const members = this.#liveOthers().length + 1;
    const gossip: GossipMessage[] = this.#broadcasts.take(
      budget,
      members,
      PACKET_MESSAGES_MAX - primary.length,
    );
    const messages: SwimMessage[] = [...primary, ...gossip];
    if (messages.length === 0) return;
    this.#outbox.push({
      kind: "send",
      to,
      packet: { clusterId, sender: this.#self.nodeId, messages },
    });
  }
}

/** memberlist's pushPullScale: above 32 members, sync less often (log2 of the size). */
export function pushPullScaleMs(intervalMs: number, members: number): number {
  if (members <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const multiplier = Math.ceil(Math.log2(members) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return multiplier * intervalMs;
}
