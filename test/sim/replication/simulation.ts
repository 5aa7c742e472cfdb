/**
 * A deterministic simulation of partition replication: three replicas of one partition,
 * a controller that holds the real metadata image and plans with the real rules
 * (broker-lifecycle.ts, alter-partition.ts), replicas driven by the real leader and
 * follower state machines (src/replication/), a producer client, and a network and
 * disks that misbehave on purpose.
 *
 * Modelled:
 * - the metadata log is durable and reaches each node in order but late (Raft);
 * - the controller learns that a node died, was paused or came back after a random
 *   detection delay (SWIM), and fences or unfences it; a restarted node registers its
 *   new incarnation itself (planRegisterBroker) and leads nothing until that is in its
 *   image, then only in epochs granted after it;
 * - messages are delayed, reordered, lost; a node may be cut off from everyone;
 * - a process crash (SIGKILL) keeps the page cache; a machine crash keeps only what
 *   was synced (the log up to its last flush; checkpoint files are written synced);
 * - a paused node (SIGSTOP) keeps acting on its stale view when it resumes.
 *
 * Invariants, checked after every step (InvariantError):
 * - committed prefixes agree: below both replicas' high watermarks, two replicas hold
 *   the same entry at each offset;
 * - a leader's high watermark never moves back within its leadership, and never passes
 *   its log end; leaders never truncate;
 * - an entry acknowledged with acks=all is in the log of every leader of that epoch or
 *   a later one, at the offset it was acknowledged with;
 * - every eligible leader replica (ELR) holds every committed entry (without machine
 *   crashes; see #checkEligible).
 * The excuses all come from machine crashes, which lose what was not synced: an entry
 * is excused when no replica eligible to lead (ISR or ELR) holds it any more because a
 * machine crash erased the last copy, because the controller dropped the last holder
 * for restarting after one, or (min.insync.replicas 1 only) because every in-sync
 * replica had failed at once (`#excuse` has the rules). Replicas outside the ISR and ELR
 * do not count, since no election picks them (Kafka without unclean election loses the
 * same entries). Process crashes and pauses excuse nothing.
 */
import {
  type AlterPartitionRequest,
  type AlterPartitionResult,
  planAlterPartition,
} from "../../../src/cluster/alter-partition.ts";
import { planBrokerFenced, planBrokerUnfenced } from "../../../src/cluster/broker-lifecycle.ts";
import { effectiveMinIsr } from "../../../src/cluster/eligible-leaders.ts";
import { planRegisterBroker } from "../../../src/cluster/topics.ts";
import {
  MetadataImage,
  type MetadataRecord,
  type PartitionImage,
} from "../../../src/cluster/metadata-image.ts";
import { FollowerState } from "../../../src/replication/follower-state.ts";
import {
  type EpochEndOffset,
  type EpochEntry,
  LeaderEpochCache,
} from "../../../src/replication/leader-epoch-cache.ts";
import { LeaderState } from "../../../src/replication/leader-state.ts";
import type { Random } from "../../../src/util/random.ts";

export const TICK_MS = 10;
export const TOPIC = "t";
export const TOPIC_ID = "topic-t";
const CONTROLLER = 0;
const CLIENT = 100;
/** Entries a follower fetch returns at most. */
const FETCH_ENTRIES_MAX = 8;
/** A follower request unanswered this long is sent again. */
const REQUEST_RETRY_MS = 300;
const PRODUCE_TIMEOUT_MS = 1_500;

export class InvariantError extends Error {}

function incarnationOf(nodeId: number, incarnation: number): string {
  return `${nodeId}.${incarnation}`;
}

export interface Entry {
  readonly epoch: number;
  readonly value: string;
}

type Payload =
  | { kind: "produce"; id: number; acks: 1 | -1; value: string }
  | {
      kind: "produceAnswer";
      id: number;
      value: string;
      acks: 1 | -1;
      offset: number;
      epoch: number;
      error: string | null;
    }
  | {
      kind: "fetch";
      id: number;
      currentLeaderEpoch: number;
      fetchOffset: number;
      lastFetchedEpoch: number;
    }
  | {
      kind: "fetchAnswer";
      id: number;
      error: string | null;
      entries: Entry[];
      fromOffset: number;
      highWatermark: number;
      diverging: EpochEndOffset | null;
    }
  | { kind: "epochQuery"; id: number; currentLeaderEpoch: number; epoch: number }
  | { kind: "epochAnswer"; id: number; error: string | null; answer: EpochEndOffset }
  | { kind: "alterPartition"; request: AlterPartitionRequest }
  | { kind: "register"; incarnation: string; lossy: boolean }
  | { kind: "alterPartitionAnswer"; request: AlterPartitionRequest; result: AlterPartitionResult };

/** Why the replicas eligible to lead, or what they hold, changed (`Simulation.#excuse`). */
type Cause =
  { kind: "machine" | "lossy" } | { kind: "fence"; nodeId: number; isrBefore: readonly number[] };

interface Message {
  from: number;
  to: number;
  deliverAtMs: number;
  seq: number;
  payload: Payload;
}

export interface Faults {
  dropRate: number;
  delayMsMax: number;
}

/** What survives a crash: the files. */
interface Disk {
  log: Entry[];
  /** Entries below this survive a machine crash. */
  synced: number;
  epochs: EpochEntry[];
  highWatermarkCheckpoint: number;
  /** Metadata records applied (the Raft log is durable). */
  metadataApplied: number;
}

interface ProduceWaiter {
  from: number;
  id: number;
  value: string;
  offset: number;
  deadlineMs: number;
}

type Role =
  | { kind: "leader"; state: LeaderState }
  | { kind: "follower"; state: FollowerState }
  | { kind: "none" };

export class SimNode {
  readonly id: number;
  readonly disk: Disk = {
    log: [],
    synced: 0,
    epochs: [],
    highWatermarkCheckpoint: 0,
    metadataApplied: 0,
  };
  up = true;
  paused = false;
  incarnation = 0;
  image = new MetadataImage();
  epochs = new LeaderEpochCache();
  role: Role = { kind: "none" };
  /** The high watermark of the last role, kept while offline. */
  highWatermark = 0;
  /**
   * Leader epochs at or below this are never led by this process: until its registration
   * (with this incarnation) is in its image, none; from then on, those granted before it.
   * The real rule, from src/replication/replica-manager.ts.
   */
  leadFloor = -1;
  registered = true;
  /** This process started after a machine crash (what the boot id tells a real node). */
  lossy = false;
  /** When this process last asked the controller to register it. */
  lastRegisterMs = -Infinity;
  waiters: ProduceWaiter[] = [];
  /** The follower's one outstanding request. */
  outstanding: { id: number; sentMs: number; lastFetchedEpoch: number } | null = null;
  nextRequestId = 1;

  constructor(id: number) {
    this.id = id;
  }

  get logEndOffset(): number {
    return this.disk.log.length;
  }

  /** How far this replica's log counts as committed (its high watermark, or the checkpoint while down). */
  committedLength(): number {
    const hw = this.up ? this.highWatermark : this.disk.highWatermarkCheckpoint;
    return Math.min(hw, this.disk.log.length);
  }
}

export interface SimStats {
  acked: number;
  ackedOne: number;
  processCrashes: number;
  machineCrashes: number;
  pauses: number;
  isolations: number;
  leaderChanges: number;
  isrShrinks: number;
  isrExpands: number;
  truncations: number;
  excusedLosses: number;
  notEnoughReplicas: number;
}

export class Simulation {
  readonly random: Random;
  readonly faults: Faults;
  readonly nodes: SimNode[];
  readonly minInsync: number;
  /** Replay aid: every event as a line (BROOK_SIM_TRACE=1 in run-seed.ts). */
  trace: ((line: string) => void) | null = null;
  nowMs = 0;
  /** The controller's image and its metadata log. */
  readonly controller = new MetadataImage();
  readonly records: MetadataRecord[] = [];
  /** The controller's belief about each node: alive or not, and since when that differs. */
  readonly #detected = new Map<
    number,
    { alive: boolean; differsSinceMs: number | null; delayMs: number }
  >();
  #messages: Message[] = [];
  #seq = 0;
  readonly isolated = new Set<number>();
  producing = true;
  #nextValue = 0;
  #nextProduceId = 1;
  /** acks=all acknowledgements: value → offset and the leader epoch that acknowledged it. */
  readonly acked = new Map<string, { offset: number; epoch: number }>();
  /** Where each value was first appended (values are unique, appended once). */
  readonly #offsetOf = new Map<string, number>();
  readonly excused = new Set<string>();
  /** The committed entry at each offset, as first seen below a high watermark. */
  readonly #committed: string[] = [];
  /** Per node, offsets below this are known to match `#committed`. */
  readonly #checkedUpTo = new Map<number, number>();
  /** Per node: the leadership (epoch, incarnation) and its last high watermark. */
  readonly #leaderHighWatermarks = new Map<number, { key: string; highWatermark: number }>();
  readonly stats: SimStats = {
    acked: 0,
    ackedOne: 0,
    processCrashes: 0,
    machineCrashes: 0,
    pauses: 0,
    isolations: 0,
    leaderChanges: 0,
    isrShrinks: 0,
    isrExpands: 0,
    truncations: 0,
    excusedLosses: 0,
    notEnoughReplicas: 0,
  };

  constructor(options: { random: Random; faults: Faults; minInsync: number; replicas?: number }) {
    this.random = options.random;
    this.faults = options.faults;
    this.minInsync = options.minInsync;
    const count = options.replicas ?? 3;
    this.nodes = Array.from({ length: count }, (_, i) => new SimNode(i + 1));
    const ids = this.nodes.map((n) => n.id);
    const founding: MetadataRecord[] = ids.map((nodeId) => ({
      type: "registerBroker",
      nodeId,
      host: "127.0.0.1",
      port: 9092 + nodeId,
      rack: null,
      incarnation: incarnationOf(nodeId, 0),
    }));
    const leader = ids[this.random.int(0, ids.length - 1)]!;
    const replicas = [leader, ...ids.filter((id) => id !== leader)];
    founding.push({ type: "topic", name: TOPIC, topicId: TOPIC_ID });
    founding.push({
      type: "config",
      topicId: TOPIC_ID,
      name: "min.insync.replicas",
      value: String(this.minInsync),
    });
    // As the controller creates a partition (topics.ts newPartition): every replica empty and in sync.
    founding.push({
      type: "partition",
      topicId: TOPIC_ID,
      partition: 0,
      replicas,
      leader,
      leaderEpoch: 0,
      isr: [...replicas],
      partitionEpoch: 0,
    });
    this.#commit(founding);
    for (const node of this.nodes) {
      this.#detected.set(node.id, { alive: true, differsSinceMs: null, delayMs: 0 });
      this.#checkedUpTo.set(node.id, 0);
      for (const record of founding) node.image.apply(record);
      node.disk.metadataApplied = founding.length;
      this.#reconcile(node);
    }
  }

  /** The partition as the controller has it. */
  partition(): PartitionImage {
    return this.controller.topic(TOPIC)!.partitions[0]!;
  }

  node(id: number): SimNode {
    return this.nodes[id - 1]!;
  }

  // ---- faults -------------------------------------------------------------------------

  crash(node: SimNode, machine: boolean): void {
    if (!node.up) return;
    this.#trace(
      `crash ${node.id} ${machine ? "machine" : "process"} (synced ${node.disk.synced} of ${node.logEndOffset}, hw ckpt ${node.disk.highWatermarkCheckpoint})`,
    );
    node.up = false;
    node.paused = false;
    // Until a lossy start is registered, every later start is lossy too.
    node.lossy ||= machine;
    if (machine) {
      this.stats.machineCrashes++;
      const kept = node.disk.synced;
      const heldBefore = this.#heldByEligible();
      node.disk.log.length = kept;
      this.#lowered(node, kept);
      this.#excuse(heldBefore, { kind: "machine" });
    } else {
      this.stats.processCrashes++;
    }
    for (const message of this.#messages)
      if (message.to === node.id || message.from === node.id) message.deliverAtMs = -1;
    this.#messages = this.#messages.filter((m) => m.deliverAtMs >= 0);
  }

  /**
   * Entries that some eligible replica (ISR or ELR, as the controller has them) held
   * before a change (`heldBefore`) and none holds after it. The loss is excused when the
   * change's `cause` is one the guarantee allows:
   * - "machine": a machine crash erased the last eligible copy;
   * - "lossy": the controller dropped the last eligible holder because it restarted after
   *   a machine crash (it may have lost unsynced writes, src/cluster/eligible-leaders.ts);
   * - "fence" with min.insync.replicas 1 while every other ISR member had failed too
   *   (down, or back after a machine crash and not yet registered): every in-sync
   *   replica had failed at once, when Kafka's guarantee does not hold (with a larger
   *   minimum, the ELR must keep such a replica eligible, so nothing is excused).
   * Any other change excuses nothing: a later leader lacking the entry then fails the
   * invariants.
   */
  #excuse(heldBefore: ReadonlySet<string>, cause: Cause): void {
    const legit =
      cause.kind === "machine" ||
      cause.kind === "lossy" ||
      (cause.kind === "fence" &&
        this.minInsync === 1 &&
        cause.isrBefore.every((id) => id === cause.nodeId || this.#failed(this.node(id))));
    if (!legit) return;
    const heldNow = this.#heldByEligible();
    for (const value of heldBefore) {
      if (heldNow.has(value) || this.excused.has(value)) continue;
      this.#trace(`excused ${value} (${cause.kind})`);
      this.excused.add(value);
      if (this.acked.has(value)) this.stats.excusedLosses++;
    }
  }

  /** The entries some eligible replica (ISR or ELR, as the controller has them) holds. */
  #heldByEligible(): Set<string> {
    const { isr, elr } = this.partition();
    const eligible = this.nodes.filter((n) => isr.includes(n.id) || elr.includes(n.id));
    const held = new Set<string>();
    for (const [value, offset] of this.#offsetOf) {
      if (eligible.some((n) => n.disk.log[offset]?.value === value)) held.add(value);
    }
    return held;
  }

  /** Down, or up again after a machine crash that its registration has not reported yet. */
  #failed(node: SimNode): boolean {
    return !node.up || node.lossy;
  }

  restart(node: SimNode): void {
    if (node.up) return;
    this.#trace(`restart ${node.id} (log end ${node.logEndOffset})`);
    node.up = true;
    node.incarnation++;
    node.image = new MetadataImage();
    for (const record of this.records.slice(0, node.disk.metadataApplied)) node.image.apply(record);
    node.epochs = new LeaderEpochCache(node.disk.epochs);
    node.epochs.truncateFromEnd(node.logEndOffset);
    node.disk.epochs = node.epochs.entries();
    node.highWatermark = Math.min(node.disk.highWatermarkCheckpoint, node.logEndOffset);
    node.role = { kind: "none" };
    node.waiters = [];
    node.outstanding = null;
    // It leads nothing until the controller has its new registration (see leadFloor).
    node.registered = false;
    node.leadFloor = Number.MAX_SAFE_INTEGER;
    node.lastRegisterMs = -Infinity;
    this.#reconcile(node);
  }

  pause(node: SimNode): void {
    if (!node.up || node.paused) return;
    node.paused = true;
    this.stats.pauses++;
    this.#trace(`pause ${node.id}`);
  }

  resume(node: SimNode): void {
    if (node.paused) this.#trace(`resume ${node.id}`);
    node.paused = false;
  }

  // ---- the step -----------------------------------------------------------------------

  step(): void {
    this.nowMs += TICK_MS;
    this.#detect();
    this.#deliver();
    for (const node of this.nodes) {
      if (!node.up || node.paused) continue;
      this.#catchUpMetadata(node);
      this.#tick(node);
      if (this.random.next() < 0.1) node.disk.synced = node.logEndOffset;
      if (this.random.next() < 0.1) node.disk.highWatermarkCheckpoint = node.highWatermark;
    }
    if (this.producing && this.random.next() < 0.3) this.#produce();
    this.#checkInvariants();
  }

  /** Heal: everyone up, resumed, connected, no loss. */
  heal(): void {
    this.isolated.clear();
    this.faults.dropRate = 0;
    for (const node of this.nodes) {
      if (!node.up) this.restart(node);
      this.resume(node);
    }
  }

  // ---- the controller -----------------------------------------------------------------

  #trace(line: string): void {
    this.trace?.(`${this.nowMs} ${line}`);
  }

  #commit(records: MetadataRecord[], cause: Cause | null = null): void {
    const heldBefore = cause !== null && records.length > 0 ? this.#heldByEligible() : null;
    for (const record of records) {
      this.#trace(`metadata #${this.records.length}: ${JSON.stringify(record)}`);
      this.controller.apply(record);
      this.records.push(record);
    }
    if (heldBefore !== null && cause !== null) this.#excuse(heldBefore, cause);
  }

  /** The failure detector: act on a difference that lasted its detection delay. */
  #detect(): void {
    for (const node of this.nodes) {
      const seen = this.#detected.get(node.id)!;
      const alive = node.up && !node.paused && !this.isolated.has(node.id);
      const differs = seen.alive !== alive;
      if (!differs) {
        seen.differsSinceMs = null;
        continue;
      }
      if (seen.differsSinceMs === null) {
        seen.differsSinceMs = this.nowMs;
        seen.delayMs = this.random.int(5, 40) * TICK_MS;
      }
      if (this.nowMs - seen.differsSinceMs < seen.delayMs) continue;
      const before = this.partition();
      // A restart the detector missed is the node's own registration's to report.
      const fence: Cause = { kind: "fence", nodeId: node.id, isrBefore: before.isr };
      if (!alive) this.#commit(planBrokerFenced(this.controller, node.id), fence);
      else this.#commit(planBrokerUnfenced(this.controller, node.id));
      if (this.partition().leader !== before.leader) this.stats.leaderChanges++;
      seen.alive = alive;
      seen.differsSinceMs = null;
    }
  }

  #onControllerMessage(message: Message): void {
    const payload = message.payload;
    if (payload.kind === "register") {
      const command = {
        kind: "registerBroker" as const,
        nodeId: message.from,
        host: "127.0.0.1",
        port: 9092 + message.from,
        rack: null,
      };
      const before = this.partition();
      // A restart is a fence and a return in one entry (planRegisterBroker).
      const cause: Cause = payload.lossy
        ? { kind: "lossy" }
        : { kind: "fence", nodeId: message.from, isrBefore: before.isr };
      this.#commit(
        planRegisterBroker(this.controller, {
          ...command,
          incarnation: payload.incarnation,
          lossy: payload.lossy,
        }),
        cause,
      );
      if (this.partition().leader !== before.leader) this.stats.leaderChanges++;
      return;
    }
    if (payload.kind !== "alterPartition") return;
    const before = this.partition().isr.length;
    const { result, records } = planAlterPartition(this.controller, payload.request);
    this.#commit(records);
    if (records.length > 0) {
      if (this.partition().isr.length < before) this.stats.isrShrinks++;
      else this.stats.isrExpands++;
    }
    this.#send(CONTROLLER, message.from, {
      kind: "alterPartitionAnswer",
      request: payload.request,
      result,
    });
  }

  // ---- the network --------------------------------------------------------------------

  #send(from: number, to: number, payload: Payload): void {
    if (this.isolated.has(from) || this.isolated.has(to)) return;
    if (this.random.next() < this.faults.dropRate) return;
    const delay =
      this.random.int(1, Math.max(1, Math.round(this.faults.delayMsMax / TICK_MS))) * TICK_MS;
    this.#messages.push({ from, to, deliverAtMs: this.nowMs + delay, seq: this.#seq++, payload });
  }

  #deliver(): void {
    const due: Message[] = [];
    const later: Message[] = [];
    for (const message of this.#messages) {
      const target =
        message.to === CONTROLLER || message.to === CLIENT ? null : this.node(message.to);
      // A paused node's socket buffers hold what reaches it until it resumes.
      if (message.deliverAtMs <= this.nowMs && (target === null || !target.paused))
        due.push(message);
      else later.push(message);
    }
    this.#messages = later;
    due.sort((a, b) => a.deliverAtMs - b.deliverAtMs || a.seq - b.seq);
    for (const message of due) {
      if (this.isolated.has(message.from) || this.isolated.has(message.to)) continue;
      if (message.to === CONTROLLER) this.#onControllerMessage(message);
      else if (message.to === CLIENT) this.#onClientMessage(message);
      else {
        const node = this.node(message.to);
        if (node.up) this.#onNodeMessage(node, message);
      }
    }
  }

  // ---- the client ---------------------------------------------------------------------

  #produce(): void {
    const leader = this.partition().leader;
    const target =
      leader >= 1 && this.random.next() < 0.85 ? leader : this.random.int(1, this.nodes.length);
    const value = `v${this.#nextValue++}`;
    const acks = this.random.next() < 0.7 ? -1 : 1;
    this.#send(CLIENT, target, { kind: "produce", id: this.#nextProduceId++, acks, value });
  }

  #onClientMessage(message: Message): void {
    const answer = message.payload;
    if (answer.kind !== "produceAnswer") return;
    if (answer.error === "notEnoughReplicas") this.stats.notEnoughReplicas++;
    if (answer.error !== null) return;
    if (answer.acks === 1) {
      this.stats.ackedOne++;
      return;
    }
    this.acked.set(answer.value, { offset: answer.offset, epoch: answer.epoch });
    this.#trace(`acked ${answer.value}@${answer.offset} epoch ${answer.epoch} by ${message.from}`);
    this.stats.acked++;
    for (const node of this.nodes) {
      if (node.up && node.role.kind === "leader" && node.role.state.leaderEpoch >= answer.epoch) {
        this.#checkLeaderHolds(node, answer.value);
      }
    }
  }

  // ---- a node -------------------------------------------------------------------------

  #catchUpMetadata(node: SimNode): void {
    if (this.isolated.has(node.id) || node.disk.metadataApplied >= this.records.length) return;
    if (this.random.next() < 0.4) return;
    const upTo = Math.min(this.records.length, node.disk.metadataApplied + this.random.int(1, 4));
    for (const record of this.records.slice(node.disk.metadataApplied, upTo)) {
      node.image.apply(record);
      node.disk.metadataApplied++;
      // As the replica manager does: a follower whose broker was fenced, or registered
      // another process, must fetch again before it may rejoin the ISR.
      const restarted = record.type === "registerBroker" && record.nodeId !== node.id;
      if (
        (record.type === "fenceBroker" || restarted) &&
        record.nodeId !== node.id &&
        node.role.kind === "leader"
      ) {
        node.role.state.resetFollower(record.nodeId);
      }
      if (
        record.type === "registerBroker" &&
        record.nodeId === node.id &&
        record.incarnation === incarnationOf(node.id, node.incarnation)
      ) {
        node.registered = true;
        node.lossy = false;
        // Every epoch in the image now predates this process's registration.
        node.leadFloor = node.image.topic(TOPIC)!.partitions[0]!.leaderEpoch;
      }
      this.#reconcile(node);
    }
  }

  /** The effective min.insync.replicas, as the replica manager computes it. */
  #minIsr(): number {
    return effectiveMinIsr(this.controller.topic(TOPIC)!, this.partition());
  }

  /** The replica manager: the node's role follows its image. */
  #reconcile(node: SimNode): void {
    const partition = node.image.topic(TOPIC)!.partitions[0]!;
    const role = node.role;
    if (partition.leader === node.id && partition.leaderEpoch > node.leadFloor) {
      if (role.kind === "leader" && role.state.leaderEpoch === partition.leaderEpoch) {
        role.state.onMetadata(partition, this.#minIsr());
        this.#checkWaiters(node);
        return;
      }
      this.#leaveRole(node);
      if (node.epochs.assign(partition.leaderEpoch, node.logEndOffset))
        node.disk.epochs = node.epochs.entries();
      const state = new LeaderState({
        nodeId: node.id,
        topicId: TOPIC_ID,
        partition,
        logEndOffset: node.logEndOffset,
        highWatermark: Math.min(node.highWatermark, node.logEndOffset),
        nowMs: this.nowMs,
        lagTimeMaxMs: 400,
        minIsr: this.#minIsr(),
      });
      node.role = { kind: "leader", state };
      this.#trace(
        `${node.id} leads epoch ${partition.leaderEpoch} from log end ${node.logEndOffset} hw ${state.highWatermark} isr [${partition.isr}]`,
      );
      for (const value of this.acked.keys()) {
        if (this.acked.get(value)!.epoch <= partition.leaderEpoch)
          this.#checkLeaderHolds(node, value);
      }
      return;
    }
    if (
      partition.leader >= 1 &&
      partition.leader !== node.id &&
      partition.replicas.includes(node.id)
    ) {
      if (
        role.kind === "follower" &&
        role.state.leaderId === partition.leader &&
        role.state.leaderEpoch === partition.leaderEpoch
      )
        return;
      this.#leaveRole(node);
      // An epoch this node took over as leader but wrote nothing in has no batch to
      // describe; a fetched batch of an older epoch must not land after it.
      node.epochs.truncateFromEnd(node.logEndOffset);
      node.disk.epochs = node.epochs.entries();
      this.#trace(
        `${node.id} follows ${partition.leader} in epoch ${partition.leaderEpoch} (log end ${node.logEndOffset}, epochs ${JSON.stringify(node.epochs.entries())})`,
      );
      node.role = {
        kind: "follower",
        state: new FollowerState({
          leaderId: partition.leader,
          leaderEpoch: partition.leaderEpoch,
          highWatermark: node.highWatermark,
        }),
      };
      return;
    }
    if (role.kind !== "none") {
      this.#leaveRole(node);
      node.role = { kind: "none" };
    }
  }

  #leaveRole(node: SimNode): void {
    for (const waiter of node.waiters) this.#answerProduce(node, waiter, "notLeader", -1);
    node.waiters = [];
    node.outstanding = null;
  }

  #tick(node: SimNode): void {
    if (!node.registered && this.nowMs - node.lastRegisterMs >= REQUEST_RETRY_MS) {
      node.lastRegisterMs = this.nowMs;
      this.#send(node.id, CONTROLLER, {
        kind: "register",
        incarnation: incarnationOf(node.id, node.incarnation),
        lossy: node.lossy,
      });
    }
    const role = node.role;
    if (role.kind === "leader") {
      const request = role.state.isrChangeToPropose(this.nowMs);
      if (request !== null) this.#send(node.id, CONTROLLER, { kind: "alterPartition", request });
      this.#checkWaiters(node);
    } else if (role.kind === "follower") {
      if (node.outstanding !== null && this.nowMs - node.outstanding.sentMs < REQUEST_RETRY_MS)
        return;
      const request = role.state.nextRequest(node);
      const id = node.nextRequestId++;
      if (request.kind === "offsetForLeaderEpoch") {
        node.outstanding = { id, sentMs: this.nowMs, lastFetchedEpoch: request.epoch };
        this.#send(node.id, role.state.leaderId, {
          kind: "epochQuery",
          id,
          currentLeaderEpoch: request.currentLeaderEpoch,
          epoch: request.epoch,
        });
      } else {
        node.outstanding = { id, sentMs: this.nowMs, lastFetchedEpoch: request.lastFetchedEpoch };
        this.#send(node.id, role.state.leaderId, {
          kind: "fetch",
          id,
          currentLeaderEpoch: request.currentLeaderEpoch,
          fetchOffset: request.fetchOffset,
          lastFetchedEpoch: request.lastFetchedEpoch,
        });
      }
    }
  }

  #onNodeMessage(node: SimNode, message: Message): void {
    const payload = message.payload;
    const role = node.role;
    switch (payload.kind) {
      case "produce": {
        if (role.kind !== "leader") {
          this.#send(node.id, message.from, {
            kind: "produceAnswer",
            id: payload.id,
            value: payload.value,
            acks: payload.acks,
            offset: -1,
            epoch: -1,
            error: "notLeader",
          });
          return;
        }
        if (payload.acks === -1 && role.state.isr.length < this.minInsync) {
          this.#send(node.id, message.from, {
            kind: "produceAnswer",
            id: payload.id,
            value: payload.value,
            acks: payload.acks,
            offset: -1,
            epoch: -1,
            error: "notEnoughReplicas",
          });
          return;
        }
        const offset = node.logEndOffset;
        node.disk.log.push({ epoch: role.state.leaderEpoch, value: payload.value });
        this.#offsetOf.set(payload.value, offset);
        role.state.onAppend(node.logEndOffset);
        node.highWatermark = role.state.highWatermark;
        const waiter = {
          from: message.from,
          id: payload.id,
          value: payload.value,
          offset,
          deadlineMs: this.nowMs + PRODUCE_TIMEOUT_MS,
        };
        if (payload.acks === 1)
          this.#send(node.id, message.from, {
            kind: "produceAnswer",
            id: payload.id,
            value: payload.value,
            acks: 1,
            offset,
            epoch: role.state.leaderEpoch,
            error: null,
          });
        else node.waiters.push(waiter);
        this.#checkWaiters(node);
        return;
      }
      case "fetch": {
        if (role.kind !== "leader") {
          this.#send(node.id, message.from, {
            kind: "fetchAnswer",
            id: payload.id,
            error: "notLeader",
            entries: [],
            fromOffset: -1,
            highWatermark: -1,
            diverging: null,
          });
          return;
        }
        const answer = role.state.onFollowerFetch(
          { logStartOffset: 0, logEndOffset: node.logEndOffset, epochs: node.epochs },
          { replicaId: message.from, ...payload },
          this.nowMs,
        );
        node.highWatermark = role.state.highWatermark;
        if (answer.kind === "error") {
          this.#send(node.id, message.from, {
            kind: "fetchAnswer",
            id: payload.id,
            error: answer.error,
            entries: [],
            fromOffset: -1,
            highWatermark: -1,
            diverging: null,
          });
        } else if (answer.kind === "diverging") {
          this.#send(node.id, message.from, {
            kind: "fetchAnswer",
            id: payload.id,
            error: null,
            entries: [],
            fromOffset: -1,
            highWatermark: answer.highWatermark,
            diverging: answer.diverging,
          });
        } else {
          const entries = node.disk.log.slice(
            answer.fromOffset,
            answer.fromOffset + FETCH_ENTRIES_MAX,
          );
          this.#send(node.id, message.from, {
            kind: "fetchAnswer",
            id: payload.id,
            error: null,
            entries,
            fromOffset: answer.fromOffset,
            highWatermark: answer.highWatermark,
            diverging: null,
          });
        }
        this.#checkWaiters(node);
        return;
      }
      case "epochQuery": {
        let error: string | null = null;
        if (role.kind !== "leader") error = "notLeader";
        else if (payload.currentLeaderEpoch < role.state.leaderEpoch) error = "fencedLeaderEpoch";
        else if (payload.currentLeaderEpoch > role.state.leaderEpoch) error = "unknownLeaderEpoch";
        const answer =
          error === null
            ? node.epochs.endOffsetFor(payload.epoch, node.logEndOffset)
            : { epoch: -1, endOffset: -1 };
        this.#send(node.id, message.from, { kind: "epochAnswer", id: payload.id, error, answer });
        return;
      }
      case "epochAnswer": {
        if (
          role.kind !== "follower" ||
          node.outstanding?.id !== payload.id ||
          message.from !== role.state.leaderId
        )
          return;
        node.outstanding = null;
        if (payload.error !== null) return;
        this.#truncate(node, role.state.onEpochEndOffset(node, payload.answer));
        node.highWatermark = role.state.highWatermark;
        return;
      }
      case "fetchAnswer": {
        if (
          role.kind !== "follower" ||
          node.outstanding?.id !== payload.id ||
          message.from !== role.state.leaderId
        )
          return;
        const lastFetchedEpoch = node.outstanding.lastFetchedEpoch;
        node.outstanding = null;
        if (payload.error !== null) return;
        if (payload.diverging !== null) {
          this.#truncate(node, role.state.onDiverging(node, lastFetchedEpoch, payload.diverging));
        } else {
          if (payload.fromOffset !== node.logEndOffset)
            throw new InvariantError(
              `Node ${node.id} got a fetch answer from ${payload.fromOffset} at log end ${node.logEndOffset}`,
            );
          for (const entry of payload.entries) {
            if (
              entry.epoch > node.epochs.latestEpoch() &&
              node.epochs.assign(entry.epoch, node.logEndOffset)
            )
              node.disk.epochs = node.epochs.entries();
            node.disk.log.push(entry);
          }
          role.state.onFetched(node, payload.highWatermark);
        }
        node.highWatermark = role.state.highWatermark;
        return;
      }
      case "alterPartitionAnswer": {
        if (role.kind !== "leader" || role.state.leaderEpoch !== payload.request.leaderEpoch)
          return;
        role.state.onAlterPartitionResult(payload.request, payload.result);
        node.highWatermark = role.state.highWatermark;
        this.#checkWaiters(node);
        return;
      }
      default:
        return;
    }
  }

  #truncate(node: SimNode, to: number | null): void {
    if (to === null) return;
    if (node.role.kind === "leader")
      throw new InvariantError(`Leader ${node.id} truncated its log`);
    this.stats.truncations++;
    this.#trace(`${node.id} truncates ${node.logEndOffset} -> ${to}`);
    node.disk.log.length = to;
    node.disk.synced = Math.min(node.disk.synced, to);
    node.epochs.truncateFromEnd(to);
    node.disk.epochs = node.epochs.entries();
    this.#lowered(node, to);
  }

  #checkWaiters(node: SimNode): void {
    const role = node.role;
    if (role.kind !== "leader") return;
    node.highWatermark = role.state.highWatermark;
    node.waiters = node.waiters.filter((waiter) => {
      const status = role.state.ackStatus(waiter.offset + 1, this.minInsync);
      if (status === "waiting") {
        if (this.nowMs < waiter.deadlineMs) return true;
        this.#answerProduce(node, waiter, "timedOut", -1);
        return false;
      }
      if (status === "committed") this.#answerProduce(node, waiter, null, role.state.leaderEpoch);
      else this.#answerProduce(node, waiter, "notEnoughReplicasAfterAppend", -1);
      return false;
    });
  }

  #answerProduce(node: SimNode, waiter: ProduceWaiter, error: string | null, epoch: number): void {
    this.#send(node.id, waiter.from, {
      kind: "produceAnswer",
      id: waiter.id,
      value: waiter.value,
      acks: -1,
      offset: waiter.offset,
      epoch,
      error,
    });
  }

  // ---- invariants ---------------------------------------------------------------------

  /** Offsets at or above `length` of this node's log changed: check them again. */
  #lowered(node: SimNode, length: number): void {
    this.#checkedUpTo.set(node.id, Math.min(this.#checkedUpTo.get(node.id)!, length));
  }

  #checkLeaderHolds(node: SimNode, value: string): void {
    if (this.excused.has(value)) return;
    const { offset } = this.acked.get(value)!;
    const held = node.disk.log[offset];
    if (held?.value !== value) {
      throw new InvariantError(
        `Leader ${node.id} (epoch ${(node.role as { state: LeaderState }).state.leaderEpoch}) lacks acknowledged ${value}@${offset}: has ${held?.value ?? "nothing"}`,
      );
    }
  }

  #checkInvariants(): void {
    for (const node of this.nodes) {
      if (node.up && node.highWatermark > node.logEndOffset) {
        throw new InvariantError(
          `Node ${node.id}: high watermark ${node.highWatermark} beyond log end ${node.logEndOffset}`,
        );
      }
      const role = node.role;
      if (node.up && role.kind === "leader") {
        const key = `${role.state.leaderEpoch}/${node.incarnation}`;
        const last = this.#leaderHighWatermarks.get(node.id);
        if (last?.key === key && role.state.highWatermark < last.highWatermark) {
          throw new InvariantError(
            `Leader ${node.id}: high watermark went back from ${last.highWatermark} to ${role.state.highWatermark}`,
          );
        }
        this.#leaderHighWatermarks.set(node.id, { key, highWatermark: role.state.highWatermark });
      }
      // Committed prefixes agree: each offset below the high watermark matches what
      // was first seen committed there.
      const committed = node.committedLength();
      for (let offset = this.#checkedUpTo.get(node.id)!; offset < committed; offset++) {
        const value = node.disk.log[offset]!.value;
        const known = this.#committed[offset];
        if (known === undefined || this.excused.has(known)) this.#committed[offset] = value;
        else if (known !== value && !this.excused.has(value)) {
          throw new InvariantError(
            `Node ${node.id} committed ${value} at ${offset} where another replica committed ${known}`,
          );
        }
      }
      this.#checkedUpTo.set(node.id, Math.max(this.#checkedUpTo.get(node.id)!, committed));
    }
    this.#checkEligible();
  }

  /**
   * An eligible leader replica holds every committed entry: that is what lets the
   * controller elect it (src/cluster/eligible-leaders.ts). Checked while no machine
   * crash happened: a replica back from one may stay eligible as the last one there is,
   * with whatever it kept.
   */
  #checkEligible(): void {
    if (this.stats.machineCrashes > 0) return;
    for (const id of this.partition().elr) {
      const log = this.node(id).disk.log;
      for (let offset = 0; offset < this.#committed.length; offset++) {
        const value = this.#committed[offset];
        if (value === undefined || log[offset]?.value === value) continue;
        throw new InvariantError(
          `ELR member ${id} lacks committed ${value}@${offset}: has ${log[offset]?.value ?? "nothing"}`,
        );
      }
    }
  }

  /** After the heal: every replica holds the same log and every acknowledged entry. */
  converged(): boolean {
    const partition = this.partition();
    if (partition.leader < 1 || partition.isr.length !== this.nodes.length) return false;
    const leader = this.node(partition.leader);
    if (leader.role.kind !== "leader") return false;
    for (const node of this.nodes) {
      if (node.logEndOffset !== leader.logEndOffset || node.highWatermark !== leader.logEndOffset)
        return false;
    }
    return true;
  }

  checkFinal(): void {
    const reference = this.nodes[0]!.disk.log;
    for (const node of this.nodes) {
      for (let offset = 0; offset < reference.length; offset++) {
        if (
          node.disk.log[offset]!.value !== reference[offset]!.value ||
          node.disk.log[offset]!.epoch !== reference[offset]!.epoch
        ) {
          throw new InvariantError(
            `After the heal node ${node.id} differs from node 1 at ${offset}`,
          );
        }
      }
      for (const [value, { offset }] of this.acked) {
        if (!this.excused.has(value) && node.disk.log[offset]?.value !== value) {
          throw new InvariantError(
            `After the heal node ${node.id} lacks acknowledged ${value}@${offset}`,
          );
        }
      }
    }
  }
}
