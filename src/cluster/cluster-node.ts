/**
 * One node's cluster side, wired: SWIM membership on --gossip (UDP, and TCP on the same
 * port number for push-pull, Raft and forwarded metadata commands, told apart by their
 * first byte), the Raft metadata quorum whose committed entries are applied to the
 * metadata image, and, on the Raft leader, the controller (controller.ts).
 *
 * Every node runs all of it, alone too: a node started without --join founds a
 * cluster of one voter, which elects itself at once; others join it later with
 * `--join`. The caller (src/node.ts) owns the timer and calls `tick()` every
 * RAFT_TICK_MS; everything periodic here hangs off that tick.
 */
import { DataDirError, adoptClusterId, type DataDirMeta } from "../storage/data-dir.ts";
import { assert } from "../util/assert.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import type { Random } from "../util/random.ts";
import type { Timers } from "../util/timers.ts";
import {
  ClusterMetadataWriter,
  decodeEntry,
  type MembershipView,
  type QuorumView,
  reconcileCommands,
} from "./controller.ts";
import {
  CONTROLLER_RPC_TAG,
  ControllerClient,
  serveControllerConnection,
} from "./controller-rpc.ts";
import type { MetadataImage } from "./metadata-image.ts";
import { decodeSnapshot, encodeSnapshot, recordsToReach } from "./metadata-snapshot.ts";
import { RAFT_TICK_MS, RaftNode } from "./raft/raft-node.ts";
import { STREAM_TAG_RAFT } from "./swim/stream-listener.ts";
import { type SwimEvent, SwimDriver } from "./swim/udp-driver.ts";
import { nextMembershipChange } from "./raft/voter-policy.ts";
import type { ClusterStatus } from "./cluster-status.ts";
import { connectionRefused } from "./liveness-probe.ts";
import type { TopicDefaults } from "./topics.ts";

const log = logger("cluster");

/** The controller compares the image with SWIM every this many ticks (500 ms). */
const RECONCILE_EVERY_TICKS = 5;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface ClusterNodeOptions {
  readonly nodeId: number;
  readonly dataDir: string;
  readonly meta: DataDirMeta;
  /** --gossip: where to bind UDP and TCP; port 0 picks one (tests). */
  readonly gossipBind: Endpoint;
  /** Host the other nodes reach our gossip port at. */
  readonly gossipAdvertiseHost: string;
  readonly join: readonly Endpoint[];
  readonly image: MetadataImage;
  readonly topicDefaults: TopicDefaults;
  readonly voterCount?: number;
  readonly clock: Clock;
  readonly random: Random;
  readonly timers: Timers;
  /** A condition the node cannot run with (another cluster's data dir, storage failure). */
  readonly onFatal: (error: Error) => void;
}

export class ClusterNode {
  readonly writer: ClusterMetadataWriter;
  readonly #options: ClusterNodeOptions;
  readonly #raft: RaftNode;
  readonly #rpc: ControllerClient;
  /** Null until `startMembership`: the Kafka and admin ports must be bound first. */
  #swim: SwimDriver | null = null;
  #meta: DataDirMeta;
  #ticks = 0;
  #reconciling = false;
  /** A pass was asked for while one ran. */
  #reconcileAgain = false;
  /** The Raft term of the last pass this node started (a new controller passes at once). */
  #reconciledTerm = -1;
  #closed = false;
  /** Latched by `#checkCaughtUp`; callers of `whenMetadataCaughtUp` wait in `#caughtUpWaiters`. */
  #caughtUp = false;
  #caughtUpWaiters: Array<() => void> = [];
  /**
   * Brokers whose cluster port refused the controller's last probe (liveness-probe.ts) or a
   * Raft dial, with the gossip address that refused: a process restarted on other ports
   * is a new member, and what its predecessor's port did says nothing about it.
   */
  readonly #refused = new Map<number, string>();

  private constructor(
    options: ClusterNodeOptions,
    raft: RaftNode,
    rpc: ControllerClient,
    writer: ClusterMetadataWriter,
  ) {
    this.#options = options;
    this.#raft = raft;
    this.#rpc = rpc;
    this.writer = writer;
    this.#meta = options.meta;
  }

  /**
   * Opens the Raft log (restoring the image from its snapshot) and founds a cluster of
   * one when this is a new node without --join. A sole voter elects itself at once and
   * this resolves once it applied its whole log, so the image is complete; a member of
   * a larger cluster catches up from the leader once `startMembership` lets it find it.
   */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const { image, nodeId } = options;
    const holder: { node: ClusterNode | null } = { node: null };
    // What Raft connections and forwarded commands name and check (another cluster's are refused).
    const clusterId = () => holder.node?.clusterId ?? options.meta.clusterId;
    const raft = RaftNode.open({
      id: nodeId,
      dataDir: options.dataDir,
      clock: options.clock,
      random: options.random,
      resolve: (id) => {
        const member = holder.node?.swimMember(id);
        return member === undefined ? null : { host: member.gossip.host, port: member.gossip.port };
      },
      stateMachine: {
        apply(entry) {
          if (entry.kind === "noop") {
            // A new leader's first entry: once applied, this node is the controller and
            // passes at once (fencing a dead leader's node), not at its next tick.
            queueMicrotask(() => holder.node?.passIfNewController());
            return;
          }
          if (entry.kind !== "data") return;
          for (const record of decodeEntry(entry.data)) image.apply(record);
        },
        snapshot: () => encodeSnapshot(image),
        restore(snapshot) {
          for (const record of recordsToReach(image, decodeSnapshot(snapshot.data)))
            image.apply(record);
        },
      },
      onStateChange: (state) =>
        log.info("Raft state", {
          role: state.role,
          leader: state.leader ?? "none",
          term: state.term,
        }),
      // A peer that died: the controller (if this is it) fences it now, not at its next pass.
      onPeerRefused: (id) => holder.node?.peerRefused(id),
      // A peer whose port took a dial is up: no longer counted gone for a past refusal.
      onPeerConnected: (id) => holder.node?.peerConnected(id),
      clusterId,
      onFatal: (error) =>
        options.onFatal(error instanceof Error ? error : new Error(String(error))),
    });
    if (options.join.length === 0 && raft.bootstrap([nodeId])) {
      log.info("Founded a new cluster", { nodeId, clusterId: options.meta.clusterId });
    }
    const rpc = new ControllerClient({ timers: options.timers, clusterId });
    const membership: MembershipView = {
      alive: () => holder.node?.membership().alive() ?? [],
      isGone: (id) => holder.node?.membership().isGone(id) ?? false,
      clusterAddress: (id) => holder.node?.membership().clusterAddress(id),
    };
    const quorum = raftQuorum(raft, options.timers);
    const writer = new ClusterMetadataWriter({
      image,
      quorum,
      membership,
      rpc,
      defaults: options.topicDefaults,
      random: options.random,
    });
    const node = new ClusterNode(options, raft, rpc, writer);
    holder.node = node;
    // A sole voter is a majority by itself: lead now, so the image is whole right away.
    if (raft.campaignIfSoleVoter()) await raft.whenApplied(raft.status().lastIndex);
    return node;
  }

  /**
   * Starts SWIM on --gossip with the addresses this node serves, joins the seeds in the
   * background, and opens the cluster port to Raft and forwarded commands.
   */
  async startMembership(served: { kafka: Endpoint; admin: Endpoint }): Promise<void> {
    assert(this.#swim === null, "Membership started twice");
    const options = this.#options;
    const swim = await SwimDriver.start({
      nodeId: options.nodeId,
      clusterId: this.#meta.clusterId,
      bind: options.gossipBind,
      advertiseHost: options.gossipAdvertiseHost,
      kafka: served.kafka,
      admin: served.admin,
      join: options.join,
      timers: options.timers,
      clock: options.clock,
      random: options.random,
      onEvent: (event) => this.onSwimEvent(event),
    });
    this.#swim = swim;
    swim.streams.register(STREAM_TAG_RAFT, this.#raft.streamHandler);
    swim.streams.register(CONTROLLER_RPC_TAG, (socket, rest) =>
      serveControllerConnection(
        socket,
        rest,
        (command) => this.writer.execute(command),
        () => this.clusterId,
      ),
    );
  }

  swimMember(nodeId: number) {
    return this.#swim?.member(nodeId);
  }

  /** SWIM's view for the controller; empty before `startMembership`. */
  membership(): MembershipView {
    const swim = this.#swim;
    if (swim === null)
      return { alive: () => [], isGone: () => false, clusterAddress: () => undefined };
    const view = swimMembership(swim);
    // A refused probe outweighs SWIM's "alive" until the port answers again.
    return {
      alive: () => view.alive().filter((m) => !this.#isRefused(m.nodeId)),
      isGone: (nodeId) => this.#isRefused(nodeId) || view.isGone(nodeId),
      clusterAddress: (nodeId) => view.clusterAddress(nodeId),
    };
  }

  /** The controller's probe of every other broker's cluster port (liveness-probe.ts). */
  async #probeBrokers(): Promise<void> {
    const swim = this.#swim;
    if (swim === null) return;
    const self = this.#options.nodeId;
    const probes = swim
      .members()
      .filter(
        (m) =>
          m.nodeId !== self &&
          (m.state === "alive" || m.state === "suspect" || this.#isRefused(m.nodeId)),
      )
      .map(async (m) => {
        const refused = await connectionRefused(m.gossip.host, m.gossip.port, this.#options.timers);
        if (refused) this.#markRefused(m.nodeId, m.gossip);
        else this.#refused.delete(m.nodeId);
      });
    await Promise.all(probes);
  }

  get clusterId(): string | null {
    return this.#meta.clusterId;
  }

  /** The gossip address bound (with the real port); null before `startMembership`. */
  get gossip(): Endpoint | null {
    return this.#swim?.gossip ?? null;
  }

  get controllerId(): number | null {
    return this.#raft.leader;
  }

  /**
   * Null once this node's metadata image holds everything its Raft leader had committed
   * when it last heard from it (at once for a sole voter, which leads); until then a
   * promise of that. A node that restarts or joins has an image that is empty or stale
   * until then, and Kafka's brokers do not serve before they have caught up with the
   * metadata log either. Once caught up, it stays so for this process.
   */
  whenMetadataCaughtUp(): Promise<void> | null {
    if (this.#checkCaughtUp()) return null;
    return new Promise((resolve) => this.#caughtUpWaiters.push(resolve));
  }

  #checkCaughtUp(): boolean {
    if (this.#caughtUp) return true;
    const { leaderCommit, applied, term } = this.#raft.status();
    if (leaderCommit === null || applied < leaderCommit) return false;
    // A new leader's commit index is authoritative only once it has committed an entry
    // of its own term (Raft 5.4.2): until then entries committed in earlier terms may lie
    // beyond it, and an image up to it can lack topics that exist (after a whole-cluster
    // restart a node served Metadata without one and tried to create it again).
    if (this.#raft.termAt(leaderCommit) !== term) return false;
    this.#caughtUp = true;
    log.info("Metadata caught up with the leader", { applied });
    for (const resolve of this.#caughtUpWaiters.splice(0)) resolve();
    return true;
  }

  /** Call every RAFT_TICK_MS. */
  tick(): void {
    if (this.#closed) return;
    this.#raft.tick();
    if (!this.#caughtUp) this.#checkCaughtUp();
    this.#ticks++;
    // Every RECONCILE_EVERY_TICKS, and at once in a new term (a new controller).
    if (!this.#raft.isReadyLeader()) return;
    if (this.#ticks % RECONCILE_EVERY_TICKS === 0) this.reconcileNow();
    else this.passIfNewController();
  }

  /** A controller pass now if this node leads a term it has not passed in yet. */
  passIfNewController(): void {
    if (this.#raft.isReadyLeader() && this.#reconciledTerm !== this.#raft.status().term)
      this.reconcileNow();
  }

  /**
   * Raft found `id`'s cluster port refusing connections: it counts as gone (as a refused
   * probe does) until a probe reaches it again, and the controller passes now.
   */
  peerRefused(id: number): void {
    if (id === this.#options.nodeId) return;
    const gossip = this.#swim?.member(id)?.gossip;
    if (gossip === undefined) return;
    this.#markRefused(id, gossip);
    this.reconcileNow();
  }

  /**
   * Raft's dial to `id`'s cluster port opened. A node restarted on its address was marked
   * refused while it was down; until now only the controller's next probe cleared that,
   * and a topic created in between fenced the live node again (#fenceGone).
   */
  peerConnected(id: number): void {
    this.#refused.delete(id);
  }

  #markRefused(nodeId: number, gossip: Endpoint): void {
    if (!this.#isRefused(nodeId))
      log.info("Cluster port refused: fencing without waiting for SWIM", { nodeId });
    this.#refused.set(nodeId, `${gossip.host}:${gossip.port}`);
  }

  /** Whether `nodeId`'s port refused at the address SWIM still has for it. */
  #isRefused(nodeId: number): boolean {
    const at = this.#refused.get(nodeId);
    if (at === undefined) return false;
    const gossip = this.#swim?.member(nodeId)?.gossip;
    if (gossip !== undefined && `${gossip.host}:${gossip.port}` === at) return true;
    this.#refused.delete(nodeId); // SWIM has a newer process at another address
    return false;
  }

  /** A controller pass now if this node is the controller (again after the running one). */
  reconcileNow(): void {
    if (this.#closed || !this.#raft.isReadyLeader()) return;
    this.#reconciledTerm = this.#raft.status().term;
    if (this.#reconciling) {
      this.#reconcileAgain = true;
      return;
    }
    void this.#reconcile();
  }

  /** Members as SWIM sees them, and the quorum, for the admin API. */
  status(): ClusterStatus {
    return {
      members: () =>
        (this.#swim?.members() ?? []).map((m) => ({
          nodeId: m.nodeId,
          state: m.state,
          incarnation: m.incarnation,
          gossip: `${m.gossip.host}:${m.gossip.port}`,
          kafka: `${m.kafka.host}:${m.kafka.port}`,
          admin: `${m.admin.host}:${m.admin.port}`,
          self: m.nodeId === this.#options.nodeId,
        })),
      quorum: () => {
        const status = this.#raft.status();
        return {
          role: status.role,
          term: status.term,
          leader: status.leader,
          commitIndex: status.commit,
          appliedIndex: status.applied,
          voters: status.membership.members.filter((m) => m.voter).map((m) => m.id),
          observers: status.membership.members.filter((m) => !m.voter).map((m) => m.id),
        };
      },
    };
  }

  /** Clean stop: hand leadership over if we lead, announce the leave, close. */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const voters = this.#raft
      .status()
      .membership.members.filter((m) => m.voter && m.id !== this.#options.nodeId);
    const alive = voters.find((m) => this.#swim?.member(m.id)?.state === "alive");
    if (this.#raft.isLeader && alive !== undefined && this.#raft.transferLeadership(alive.id)) {
      // Ticks keep the transfer going; a second or two is plenty on a LAN.
      for (let i = 0; i < 20 && this.#raft.isLeader; i++) {
        await new Promise<void>((resolve) => this.#options.timers.after(RAFT_TICK_MS, resolve));
        this.#raft.tick();
      }
    }
    await this.#swim?.leave();
    this.#rpc.close();
    this.#raft.close();
  }

  /** Abrupt stop for tests of crashes: nothing announced. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#rpc.close();
    this.#raft.close();
    await this.#swim?.close();
  }

  onSwimEvent(event: SwimEvent): void {
    switch (event.kind) {
      case "clusterId":
        return this.#adopt(event.clusterId, "the cluster joined");
      case "error":
        if (event.error.kind === "clusterIdMismatch") {
          const seed = `${event.error.seed.host}:${event.error.seed.port}`;
          this.#options.onFatal(
            new DataDirError(
              `Data dir ${this.#options.dataDir} belongs to cluster ${event.error.ours}, but ${seed} is in cluster ${event.error.theirs}`,
            ),
          );
        }
        return;
      case "member":
        log.info("Member", {
          change: event.change,
          nodeId: event.member.nodeId,
          incarnation: event.member.incarnation,
        });
        if (event.change === "joined" || event.change === "alive")
          this.#raft.peerAlive(event.member.nodeId);
        return;
      default:
        return;
    }
  }

  #adopt(clusterId: string, source: string): void {
    try {
      this.#meta = adoptClusterId(this.#options.dataDir, this.#meta, clusterId, source);
    } catch (error) {
      this.#options.onFatal(error as Error);
    }
  }

  /** The controller's pass: brokers follow SWIM, voters follow the voter policy. */
  async #reconcile(): Promise<void> {
    if (this.#reconciling) return;
    this.#reconciling = true;
    try {
      await this.#probeBrokers();
      const membership = this.membership();
      for (const command of reconcileCommands(this.#options.image, membership)) {
        const result = await this.writer.submit(command);
        if (!result.ok)
          log.warn("Controller change refused", {
            command: command.kind,
            error: result.error.message,
          });
      }
      const status = this.#raft.status();
      const live = new Set(membership.alive().map((m) => m.nodeId));
      const change = nextMembershipChange(status.membership, live, {
        voterCount: this.#options.voterCount ?? 3,
        self: this.#options.nodeId,
      });
      if (change !== null) {
        log.info("Quorum change", { change: change.kind, nodeId: change.id });
        await this.#raft.changeMembership(change);
      }
    } catch (error) {
      log.warn("Controller pass failed; retrying", {
        error: error instanceof Error ? error.message : String(error),
      });
    } finally {
      this.#reconciling = false;
      if (this.#reconcileAgain) {
        this.#reconcileAgain = false;
        this.reconcileNow();
      }
    }
  }
}

function swimMembership(swim: SwimDriver): MembershipView {
  return {
    alive: () =>
      swim
        .members()
        .filter((m) => m.state === "alive")
        .map((m) => ({ nodeId: m.nodeId, kafka: m.kafka })),
    isGone: (nodeId) => {
      const state = swim.member(nodeId)?.state;
      return state === "dead" || state === "left";
    },
    clusterAddress: (nodeId) => swim.member(nodeId)?.gossip,
  };
}

function raftQuorum(raft: RaftNode, timers: Timers): QuorumView {
  return {
    isReadyLeader: () => raft.isReadyLeader(),
    leaderId: () => raft.leader,
    propose: async (data) => (await raft.propose(data)).index,
    waitApplied: (index, timeoutMs) => {
      if (raft.appliedIndex >= index) return Promise.resolve(true);
      return new Promise((resolve) => {
        const cancel = timers.after(timeoutMs, () => resolve(false));
        raft.whenApplied(index).then(
          () => {
            cancel();
            resolve(true);
          },
          () => {
            cancel();
            resolve(false);
          },
        );
      });
    },
  };
}

assert(RECONCILE_EVERY_TICKS > 0, "Reconcile period must be positive");
