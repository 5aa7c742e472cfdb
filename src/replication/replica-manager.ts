/**
 * The replica manager: owns each local partition's replica state beside its log (the
 * leader-epoch cache, the role it plays, acks=all waiters) and every append, leader and
 * follower alike. It follows the metadata image: when a partition record names this
 * node leader it takes over (a new epoch begins at its log end); when it names another
 * node it follows (the fetcher cuts and fetches); otherwise it does neither.
 *
 * The rules themselves are the pure state machines of this folder (leader-state.ts,
 * follower-state.ts), the same ones the simulator drives (test/sim/replication). This
 * module adds the log, files and waiting.
 *
 * A restarted node never leads in an epoch it may have led before it stopped (its high
 * watermark there is gone, and a follower may have moved on): it leads only once its
 * own registration with this process's incarnation is in the image, and only in a
 * leader epoch granted after that (the controller bumps every epoch it held when the
 * registration arrives). Until then its partitions answer NOT_LEADER_OR_FOLLOWER.
 */
import type { AlterPartitionRequest } from "../cluster/alter-partition.ts";
import type { MetadataImage, MetadataRecord, PartitionImage } from "../cluster/metadata-image.ts";
import { effectiveMinIsr } from "../cluster/eligible-leaders.ts";
import { topicConfigNumber } from "../cluster/topic-config.ts";
import type { CommandResult } from "../cluster/topics.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import type { LogManager } from "../storage/log-manager.ts";
import type { AppendResult, PartitionLog } from "../storage/partition-log.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import type { Timers } from "../util/timers.ts";
import { FollowerState, type FollowerLogView, type FollowerRequest } from "./follower-state.ts";
import {
  type EpochEndOffset,
  LeaderEpochCache,
  UNDEFINED_EPOCH,
  UNDEFINED_OFFSET,
} from "./leader-epoch-cache.ts";
import { readLeaderEpochs, writeLeaderEpochs } from "./leader-epoch-file.ts";
import { type AckStatus, LeaderState, REPLICA_LAG_TIME_MAX_MS_DEFAULT } from "./leader-state.ts";

const log = logger("replicas");

/** What sends an ISR change to the controller (the node's metadata writer). */
export type SubmitAlterPartition = (request: AlterPartitionRequest) => Promise<CommandResult>;

export interface ReplicaManagerOptions {
  readonly nodeId: number;
  /** This process's incarnation: a new one at every start. */
  readonly incarnation: string;
  readonly image: MetadataImage;
  readonly logs: LogManager;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly submitAlterPartition: SubmitAlterPartition;
  /** replica.lag.time.max.ms. */
  readonly lagTimeMaxMs?: number;
  /** Called when this node starts or stops following a leader (the fetchers). */
  readonly onFollowersChanged?: () => void;
}

/**
 * Told when this node starts or stops leading a partition, inside the metadata apply
 * that decided it; a listener that does real work defers it (the group coordinator
 * loads or unloads the groups of a __consumer_offsets partition).
 */
export type LeadershipListener = (topic: string, partition: number, leading: boolean) => void;

type Role =
  | { readonly kind: "leader"; readonly state: LeaderState }
  | { readonly kind: "follower"; readonly state: FollowerState }
  | { readonly kind: "none" };

interface CommitWaiter {
  readonly requiredOffset: number;
  readonly minInsync: number;
  readonly resolve: (errorCode: number) => void;
  readonly cancelTimer: () => void;
}

interface Replica {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  readonly topicId: string;
  readonly epochs: LeaderEpochCache;
  /**
   * The leader-epoch-checkpoint file still holds entries the cache cut at the log end
   * when it was loaded; written with the next change, before any batch is appended.
   */
  epochsFileStale: boolean;
  role: Role;
  /** Leader epochs at or below this are never led by this process (see the module comment). */
  leadFloor: number;
  waiters: CommitWaiter[];
}

/** A partition this node follows, as the fetcher sees it. */
export interface FollowedPartition {
  readonly key: string;
  readonly topic: string;
  readonly topicId: string;
  readonly partition: number;
  readonly leaderId: number;
  readonly leaderEpoch: number;
}

export type FollowerFetchAnswer =
  | {
      readonly kind: "read";
      readonly log: PartitionLog;
      readonly fromOffset: number;
      readonly highWatermark: number;
    }
  | {
      readonly kind: "diverging";
      readonly diverging: EpochEndOffset;
      readonly highWatermark: number;
      readonly logStartOffset: number;
    }
  | { readonly kind: "error"; readonly errorCode: number };

export class ReplicaManager {
  readonly #options: ReplicaManagerOptions;
  readonly #replicas = new Map<string, Replica>();
  readonly #lagTimeMaxMs: number;
  /** The image holds this process's registration: leading is allowed from then on. */
  #registered = false;
  readonly #leadershipListeners: LeadershipListener[] = [];
  /** ISR changes of partitions led here since start (Kafka's IsrShrinksPerSec, IsrExpandsPerSec as counts). */
  #isrShrinks = 0;
  #isrExpands = 0;
  /** Each other broker's incarnation as last registered. */
  readonly #incarnations = new Map<number, string>();

  constructor(options: ReplicaManagerOptions) {
    this.#options = options;
    this.#lagTimeMaxMs = options.lagTimeMaxMs ?? REPLICA_LAG_TIME_MAX_MS_DEFAULT;
    options.image.onApply((record, image) => this.#onMetadata(record, image));
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** Adds a listener for leadership gained and lost (not for a new epoch of the same leader). */
  onLeadershipChange(listener: LeadershipListener): void {
    this.#leadershipListeners.push(listener);
  }

  /** Replicas dropped from, and added to, ISRs of partitions this node led, since start. */
  get isrChanges(): { readonly shrinks: number; readonly expands: number } {
    return { shrinks: this.#isrShrinks, expands: this.#isrExpands };
  }

  /**
   * Each replica's log end and lag behind the leader's log end, as this node knows it
   * while it leads the partition (a follower's from its last fetch; null before one);
   * null when it does not lead it.
   */
  replicaStates(
    topic: string,
    partition: number,
  ): Array<{ nodeId: number; logEndOffset: number | null; lag: number | null }> | null {
    const state = this.leaderState(topic, partition);
    const partitionLog = this.#options.logs.get(topic, partition);
    const image = this.#options.image.topic(topic)?.partitions[partition];
    if (state === null || partitionLog === undefined || image === undefined) return null;
    const end = partitionLog.logEndOffset;
    return image.replicas.map((nodeId) => {
      if (nodeId === this.#options.nodeId) return { nodeId, logEndOffset: end, lag: 0 };
      const fetched = state.follower(nodeId)?.logEndOffset ?? -1;
      return fetched < 0
        ? { nodeId, logEndOffset: null, lag: null }
        : { nodeId, logEndOffset: fetched, lag: Math.max(0, end - fetched) };
    });
  }

  /** The partition's leader state if this node leads it now. */
  leaderState(topic: string, partition: number): LeaderState | null {
    const role = this.#replicas.get(this.#options.logs.key(topic, partition))?.role;
    return role?.kind === "leader" ? role.state : null;
  }

  // ---- produce -------------------------------------------------------------------------

  /**
   * A produce's append on the leader. Kafka error codes for what is not this node's to
   * take; the log's own result otherwise.
   */
  appendAsLeader(
    topic: string,
    partition: number,
    records: Uint8Array,
    acks: number,
  ): AppendResult | { ok: false; errorCode: number; message: string | null } {
    const replica = this.#replicas.get(this.#options.logs.key(topic, partition));
    const role = replica?.role;
    if (replica === undefined || role?.kind !== "leader") {
      return { ok: false, errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, message: null };
    }
    const configs = this.#options.image.topic(topic)?.configs ?? new Map<string, string>();
    const minInsync = topicConfigNumber(configs, "min.insync.replicas");
    if (acks === -1 && role.state.isr.length < minInsync) {
      const message = `The ISR has ${role.state.isr.length} members, fewer than min.insync.replicas ${minInsync}`;
      return { ok: false, errorCode: ErrorCode.NOT_ENOUGH_REPLICAS, message };
    }
    const result = this.#options.logs.append(topic, partition, records, role.state.leaderEpoch);
    if (result.ok) this.#leaderMoved(replica, role.state.onAppend(result.lastOffset + 1));
    return result;
  }

  /**
   * Resolves with the produce's error code once the batch ending before `requiredOffset`
   * is committed (NONE), the ISR shrank below min.insync.replicas, leadership moved, or
   * `timeoutMs` passed (REQUEST_TIMED_OUT).
   */
  waitForCommit(
    topic: string,
    partition: number,
    requiredOffset: number,
    timeoutMs: number,
  ): Promise<number> {
    const replica = this.#replicas.get(this.#options.logs.key(topic, partition));
    if (replica === undefined || replica.role.kind !== "leader")
      return Promise.resolve(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    const configs = this.#options.image.topic(topic)?.configs ?? new Map<string, string>();
    const minInsync = topicConfigNumber(configs, "min.insync.replicas");
    const now = ackCode(replica.role.state.ackStatus(requiredOffset, minInsync));
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve) => {
      const waiter: CommitWaiter = {
        requiredOffset,
        minInsync,
        resolve,
        cancelTimer: this.#options.timers.after(Math.max(timeoutMs, 0), () => {
          replica.waiters = replica.waiters.filter((w) => w !== waiter);
          resolve(ErrorCode.REQUEST_TIMED_OUT);
        }),
      };
      replica.waiters.push(waiter);
    });
  }

  // ---- the leader's side of replication ------------------------------------------------

  /** A follower's fetch of one partition, on the leader. */
  followerFetch(
    topic: string,
    partition: number,
    fetch: {
      replicaId: number;
      currentLeaderEpoch: number;
      fetchOffset: number;
      lastFetchedEpoch: number;
    },
  ): FollowerFetchAnswer {
    const replica = this.#replicas.get(this.#options.logs.key(topic, partition));
    const partitionLog = this.#options.logs.get(topic, partition);
    if (replica === undefined || partitionLog === undefined || replica.role.kind !== "leader") {
      return { kind: "error", errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER };
    }
    const state = replica.role.state;
    const view = {
      logStartOffset: partitionLog.logStartOffset,
      logEndOffset: partitionLog.logEndOffset,
      epochs: replica.epochs,
    };
    const before = state.highWatermark;
    const answer = state.onFollowerFetch(view, fetch, this.#options.clock.monotonicMs());
    this.#leaderMoved(replica, state.highWatermark !== before);
    switch (answer.kind) {
      case "read":
        return {
          kind: "read",
          log: partitionLog,
          fromOffset: answer.fromOffset,
          highWatermark: answer.highWatermark,
        };
      case "diverging":
        return {
          kind: "diverging",
          diverging: answer.diverging,
          highWatermark: answer.highWatermark,
          logStartOffset: view.logStartOffset,
        };
      case "error":
        return { kind: "error", errorCode: followerErrorCode(answer.error) };
    }
  }

  /**
   * OffsetForLeaderEpoch on the leader: where `leaderEpoch` ends in this log. A
   * `currentLeaderEpoch` of -1 skips the fencing check (older clients).
   */
  endOffsetForEpoch(
    topic: string,
    partition: number,
    currentLeaderEpoch: number,
    leaderEpoch: number,
  ): { errorCode: number } & EpochEndOffset {
    const none = { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_OFFSET };
    const image = this.#options.image.topic(topic)?.partitions[partition];
    if (image === undefined) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ...none };
    const replica = this.#replicas.get(this.#options.logs.key(topic, partition));
    const partitionLog = this.#options.logs.get(topic, partition);
    if (replica === undefined || partitionLog === undefined || replica.role.kind !== "leader") {
      return { errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER, ...none };
    }
    const epoch = replica.role.state.leaderEpoch;
    if (currentLeaderEpoch >= 0 && currentLeaderEpoch < epoch)
      return { errorCode: ErrorCode.FENCED_LEADER_EPOCH, ...none };
    if (currentLeaderEpoch > epoch) return { errorCode: ErrorCode.UNKNOWN_LEADER_EPOCH, ...none };
    return {
      errorCode: ErrorCode.NONE,
      ...replica.epochs.endOffsetFor(leaderEpoch, partitionLog.logEndOffset),
    };
  }

  /** Periodic work (the node's timer): ISR changes to propose, sent to the controller. */
  tick(): void {
    const nowMs = this.#options.clock.monotonicMs();
    for (const replica of this.#replicas.values()) {
      if (replica.role.kind !== "leader") continue;
      const state = replica.role.state;
      const request = state.isrChangeToPropose(nowMs);
      if (request === null) continue;
      log.info("Proposing an ISR change", {
        partition: replica.key,
        isr: `[${state.isr}]`,
        newIsr: `[${request.newIsr}]`,
      });
      this.#options.submitAlterPartition(request).then(
        (result) => {
          // An accepted change is in the image before `submit` resolves: onMetadata took it.
          if (result.ok || result.error.kind !== "alterPartition") return;
          if (replica.role.kind !== "leader" || replica.role.state !== state) return;
          log.info("ISR change refused", { partition: replica.key, reason: result.error.message });
          state.onAlterPartitionResult(request, result.error.result);
        },
        // Lost on the way: the leader sends it again after ALTER_PARTITION_RETRY_MS.
        (error: unknown) =>
          log.warn("ISR change not delivered", { partition: replica.key, error: String(error) }),
      );
    }
  }

  // ---- the follower's side -------------------------------------------------------------

  /** Partitions this node follows, by leader. */
  followed(): FollowedPartition[] {
    const followed: FollowedPartition[] = [];
    for (const replica of this.#replicas.values()) {
      if (replica.role.kind !== "follower") continue;
      const { leaderId, leaderEpoch } = replica.role.state;
      followed.push({
        key: replica.key,
        topic: replica.topic,
        topicId: replica.topicId,
        partition: replica.partition,
        leaderId,
        leaderEpoch,
      });
    }
    return followed;
  }

  /** What the fetcher sends next for a followed partition; null when it no longer follows that leader and epoch. */
  followerRequest(followed: FollowedPartition): FollowerRequest | null {
    const found = this.#follower(followed);
    return found === null ? null : found.state.nextRequest(found.view);
  }

  /** The leader's OffsetForLeaderEpoch answer for a followed partition: cut the tail it names. */
  onEpochEndOffset(followed: FollowedPartition, answer: EpochEndOffset): void {
    const found = this.#follower(followed);
    if (found === null) return;
    this.#truncate(found.replica, found.state.onEpochEndOffset(found.view, answer));
  }

  /** A fetch answer that says the follower's log diverged. */
  onDiverging(followed: FollowedPartition, fetchedEpoch: number, diverging: EpochEndOffset): void {
    const found = this.#follower(followed);
    if (found === null) return;
    this.#truncate(found.replica, found.state.onDiverging(found.view, fetchedEpoch, diverging));
  }

  /**
   * Batches fetched from the leader, appended as they are, starting at `fromOffset`
   * (which must still be this log's end), then the leader's high watermark.
   */
  onFetched(
    followed: FollowedPartition,
    fromOffset: number,
    records: Uint8Array,
    leaderHighWatermark: number,
  ): void {
    const found = this.#follower(followed);
    if (found === null) return;
    const { replica, view } = found;
    const logs = this.#options.logs;
    if (records.byteLength > 0) {
      if (fromOffset !== view.logEndOffset) return;
      const result = logs.appendReplicated(replica.topic, replica.partition, records);
      if (!result.ok) {
        log.warn("Fetched batches refused", {
          partition: replica.key,
          kind: result.kind,
          message: result.message,
        });
        return;
      }
      this.#persistEpochs(replica, this.#dir(replica), this.#noteBatchEpochs(replica, records));
    }
    found.state.onFetched(this.#view(replica), leaderHighWatermark);
    this.#setHighWatermark(replica, found.state.highWatermark);
  }

  // ---- metadata ----------------------------------------------------------------------

  #onMetadata(record: MetadataRecord, image: MetadataImage): void {
    switch (record.type) {
      case "registerBroker":
        // Another process of that broker: what its previous one fetched counts for nothing
        // (it may have restarted from an empty data dir).
        if (record.nodeId !== this.#options.nodeId && record.incarnation !== undefined) {
          const before = this.#incarnations.get(record.nodeId);
          this.#incarnations.set(record.nodeId, record.incarnation);
          if (before !== undefined && before !== record.incarnation)
            this.#forgetFollower(record.nodeId);
        }
        if (
          record.nodeId === this.#options.nodeId &&
          record.incarnation === this.#options.incarnation &&
          !this.#registered
        ) {
          this.#registered = true;
          // Every epoch in the image now predates this process's registration.
          for (const replica of this.#replicas.values()) {
            const partition = image.topicById(replica.topicId)?.partitions[replica.partition];
            if (partition !== undefined) replica.leadFloor = partition.leaderEpoch;
          }
          log.info("Registered with the controller; partitions are led from the next leader epoch");
        }
        return;
      case "fenceBroker":
        // A fenced broker may come back as another process (even unfenced by SWIM before
        // its own registration arrives): it must fetch again before it rejoins an ISR.
        if (record.nodeId !== this.#options.nodeId) this.#forgetFollower(record.nodeId);
        return;
      case "partition": {
        const topic = image.topicById(record.topicId);
        if (topic === undefined) return;
        const partition = topic.partitions[record.partition]!;
        this.#reconcile(topic.name, record.topicId, partition, effectiveMinIsr(topic, partition));
        return;
      }
      case "removeTopic":
        for (const [key, replica] of this.#replicas) {
          if (replica.topicId !== record.topicId) continue;
          this.#setRole(replica, { kind: "none" });
          this.#replicas.delete(key);
        }
        return;
      default:
        return;
    }
  }

  #reconcile(topic: string, topicId: string, partition: PartitionImage, minIsr: number): void {
    const { nodeId } = this.#options;
    const key = this.#options.logs.key(topic, partition.partition);
    let replica = this.#replicas.get(key);
    if (!partition.replicas.includes(nodeId)) {
      if (replica !== undefined) this.#setRole(replica, { kind: "none" });
      return;
    }
    const partitionLog = this.#options.logs.get(topic, partition.partition);
    if (partitionLog === undefined) return;
    if (replica === undefined) {
      replica = {
        key,
        topic,
        partition: partition.partition,
        topicId,
        ...this.#loadEpochs(partitionLog),
        role: { kind: "none" },
        leadFloor: -1,
        waiters: [],
      };
      if (!this.#registered) replica.leadFloor = Number.MAX_SAFE_INTEGER;
      this.#replicas.set(key, replica);
    }
    const role = replica.role;
    if (partition.leader === nodeId && partition.leaderEpoch > replica.leadFloor) {
      if (role.kind === "leader" && role.state.leaderEpoch === partition.leaderEpoch) {
        const before = role.state.isr;
        role.state.onMetadata(partition, minIsr);
        this.#countIsrChange(before, role.state.isr);
        this.#leaderMoved(replica, true);
        return;
      }
      // A new epoch begins at this log's end.
      const assigned = replica.epochs.assign(partition.leaderEpoch, partitionLog.logEndOffset);
      this.#persistEpochs(replica, partitionLog.dir, assigned);
      const state = new LeaderState({
        nodeId,
        topicId,
        partition,
        logEndOffset: partitionLog.logEndOffset,
        highWatermark: Math.min(partitionLog.highWatermark, partitionLog.logEndOffset),
        nowMs: this.#options.clock.monotonicMs(),
        lagTimeMaxMs: this.#lagTimeMaxMs,
        minIsr,
        isEligible: (id) => {
          const broker = this.#options.image.broker(id);
          return broker !== undefined && !broker.fenced;
        },
      });
      this.#setRole(replica, { kind: "leader", state });
      log.info("Leading", {
        partition: key,
        epoch: partition.leaderEpoch,
        isr: `[${partition.isr}]`,
        logEnd: partitionLog.logEndOffset,
      });
      this.#leaderMoved(replica, true);
      return;
    }
    if (partition.leader >= 0 && partition.leader !== nodeId) {
      if (
        role.kind === "follower" &&
        role.state.leaderId === partition.leader &&
        role.state.leaderEpoch === partition.leaderEpoch
      )
        return;
      // An epoch this node took over without writing a batch describes nothing.
      const before = replica.epochs.entries().length;
      replica.epochs.truncateFromEnd(partitionLog.logEndOffset);
      // Before it fetches: a batch of an older epoch must not land under a stale entry.
      this.#persistEpochs(replica, partitionLog.dir, replica.epochs.entries().length !== before);
      const state = new FollowerState({
        leaderId: partition.leader,
        leaderEpoch: partition.leaderEpoch,
        highWatermark: partitionLog.highWatermark,
      });
      this.#setRole(replica, { kind: "follower", state });
      log.info("Following", {
        partition: key,
        leader: partition.leader,
        epoch: partition.leaderEpoch,
        logEnd: partitionLog.logEndOffset,
      });
      return;
    }
    this.#setRole(replica, { kind: "none" });
  }

  #forgetFollower(nodeId: number): void {
    for (const replica of this.#replicas.values()) {
      if (replica.role.kind === "leader") replica.role.state.resetFollower(nodeId);
    }
  }

  #countIsrChange(before: readonly number[], after: readonly number[]): void {
    this.#isrShrinks += before.filter((id) => !after.includes(id)).length;
    this.#isrExpands += after.filter((id) => !before.includes(id)).length;
  }

  #setRole(replica: Replica, role: Role): void {
    const was = replica.role.kind;
    if (was === "leader") {
      for (const waiter of replica.waiters) {
        waiter.cancelTimer();
        waiter.resolve(ErrorCode.NOT_LEADER_OR_FOLLOWER);
      }
      replica.waiters = [];
    }
    replica.role = role;
    if (was === "follower" || role.kind === "follower") this.#options.onFollowersChanged?.();
    const leading = role.kind === "leader";
    if ((was === "leader") !== leading) {
      for (const listener of this.#leadershipListeners)
        listener(replica.topic, replica.partition, leading);
    }
  }

  // ---- helpers -----------------------------------------------------------------------

  /** After a leader's state changed: publish its high watermark and settle waiters. */
  #leaderMoved(replica: Replica, changed: boolean): void {
    if (replica.role.kind !== "leader" || !changed) return;
    const state = replica.role.state;
    this.#setHighWatermark(replica, state.highWatermark);
    if (replica.waiters.length === 0) return;
    replica.waiters = replica.waiters.filter((waiter) => {
      const code = ackCode(state.ackStatus(waiter.requiredOffset, waiter.minInsync));
      if (code === null) return true;
      waiter.cancelTimer();
      waiter.resolve(code);
      return false;
    });
  }

  #setHighWatermark(replica: Replica, offset: number): void {
    const partitionLog = this.#options.logs.get(replica.topic, replica.partition);
    if (partitionLog !== undefined && offset > partitionLog.highWatermark) {
      this.#options.logs.setHighWatermark(replica.topic, replica.partition, offset);
    }
  }

  #truncate(replica: Replica, offset: number | null): void {
    if (offset === null) return;
    const partitionLog = this.#options.logs.get(replica.topic, replica.partition);
    if (partitionLog === undefined) return;
    log.info("Truncating a divergent tail", {
      partition: replica.key,
      from: partitionLog.logEndOffset,
      to: offset,
    });
    partitionLog.truncateTo(offset);
    replica.epochs.truncateFromEnd(partitionLog.logEndOffset);
    this.#persistEpochs(replica, partitionLog.dir, true);
  }

  #follower(
    followed: FollowedPartition,
  ): { replica: Replica; state: FollowerState; view: FollowerLogView } | null {
    const replica = this.#replicas.get(followed.key);
    if (replica === undefined || replica.role.kind !== "follower") return null;
    const state = replica.role.state;
    if (state.leaderId !== followed.leaderId || state.leaderEpoch !== followed.leaderEpoch)
      return null;
    return { replica, state, view: this.#view(replica) };
  }

  #view(replica: Replica): FollowerLogView {
    const partitionLog = this.#options.logs.get(replica.topic, replica.partition)!;
    return { logEndOffset: partitionLog.logEndOffset, epochs: replica.epochs };
  }

  #dir(replica: Replica): string {
    return this.#options.logs.get(replica.topic, replica.partition)!.dir;
  }

  /** The stored epoch cache, or one rebuilt from the batches; cut to the log's end. */
  /**
   * The epoch cache as stored, cut to the log end. Built from the log when there is no
   * file, and then written, so the next start need not scan the log. A cut (an epoch
   * begun where no batch followed, as after every restart) is written only with the next
   * change, which follows at once for a partition this node leads or follows: one synced
   * write per partition per start instead of two. Until then the file may keep the
   * extra entries, which every load cuts again.
   */
  #loadEpochs(partitionLog: PartitionLog): { epochs: LeaderEpochCache; epochsFileStale: boolean } {
    const stored = readLeaderEpochs(partitionLog.dir);
    const epochs = new LeaderEpochCache(stored ?? partitionLog.epochStarts());
    epochs.truncateFromEnd(partitionLog.logEndOffset);
    if (stored === null) writeLeaderEpochs(partitionLog.dir, epochs.entries());
    return {
      epochs,
      epochsFileStale: stored !== null && epochs.entries().length !== stored.length,
    };
  }

  /** Writes the epoch cache when it `changed` or the file is stale (see Replica). */
  #persistEpochs(replica: Replica, dir: string, changed: boolean): void {
    if (!changed && !replica.epochsFileStale) return;
    writeLeaderEpochs(dir, replica.epochs.entries());
    replica.epochsFileStale = false;
  }

  /** Notes each appended batch's epoch in the cache; true when an entry was added. */
  #noteBatchEpochs(replica: Replica, records: Uint8Array): boolean {
    const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
    let changed = false;
    for (let position = 0; position + BATCH_HEADER_BYTES <= records.byteLength;) {
      const baseOffset = Number(view.getBigInt64(position));
      const batchLength = view.getInt32(position + 8);
      const epoch = view.getInt32(position + 12);
      if (epoch > replica.epochs.latestEpoch())
        changed = replica.epochs.assign(epoch, baseOffset) || changed;
      position += 12 + batchLength;
    }
    return changed;
  }
}

/** Base offset, length and partition leader epoch: what `#noteBatchEpochs` reads. */
const BATCH_HEADER_BYTES = 16;

function ackCode(status: AckStatus): number | null {
  switch (status) {
    case "waiting":
      return null;
    case "committed":
      return ErrorCode.NONE;
    case "notEnoughReplicasAfterAppend":
      return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND;
  }
}

function followerErrorCode(
  error: "notReplica" | "fencedLeaderEpoch" | "unknownLeaderEpoch" | "offsetOutOfRange",
): number {
  switch (error) {
    // Kafka answers a fetch from a broker that is not a replica so.
    case "notReplica":
      return ErrorCode.NOT_LEADER_OR_FOLLOWER;
    case "fencedLeaderEpoch":
      return ErrorCode.FENCED_LEADER_EPOCH;
    case "unknownLeaderEpoch":
      return ErrorCode.UNKNOWN_LEADER_EPOCH;
    case "offsetOutOfRange":
      return ErrorCode.OFFSET_OUT_OF_RANGE;
  }
}
