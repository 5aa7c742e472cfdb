/**
 * What a partition leader knows and decides, as a pure state machine: each follower's
 * progress, the in-sync replica set (ISR) and its pending changes, the high watermark,
 * and when an acks=all produce is committed.
 *
 * Rules (Kafka's Partition, with KRaft's AlterPartition):
 * - A follower's log end offset is what its last valid fetch asked for; a fetch in an
 *   older leader epoch is fenced, one in a newer epoch is unknown, and one whose last
 *   fetched epoch disagrees with this log answers "diverging" and changes nothing.
 * - A follower is caught up when it asked for the log end, or for what was the log end
 *   at its previous fetch; one that is neither at the log end nor caught up within
 *   `lagTimeMaxMs` is proposed for removal.
 *   One whose log end reaches both the high watermark and the offset where this
 *   leader's epoch began is proposed for addition.
 * - The ISR changes only through the controller: a proposal is in flight until the
 *   controller answers or a newer partition epoch arrives in metadata. Until then the
 *   high watermark is computed over the "maximal ISR", the committed ISR together with
 *   any member being added, so a leader cut off from the controller can never advance
 *   it alone.
 * - The high watermark is the least log end offset over the maximal ISR (the leader's
 *   own included) and never moves back while this leader holds this epoch. It moves
 *   only while the committed ISR has at least min.insync.replicas members (Kafka's
 *   strict minimum ISR, KIP-966): replicas that leave a smaller ISR then hold every
 *   committed entry, which is what lets the controller elect them
 *   (src/cluster/eligible-leaders.ts).
 * - A produce with acks=all whose last offset is below the high watermark is committed
 *   if the maximal ISR still has min.insync.replicas members, and fails with
 *   NOT_ENOUGH_REPLICAS_AFTER_APPEND if not.
 *
 * Time comes in as arguments (monotonic ms); nothing here reads a clock.
 */
import type { AlterPartitionRequest, AlterPartitionResult } from "../cluster/alter-partition.ts";
import type { PartitionImage } from "../cluster/metadata-image.ts";
import { assert } from "../util/assert.ts";
import {
  type EpochEndOffset,
  type LeaderEpochCache,
  UNDEFINED_EPOCH,
} from "./leader-epoch-cache.ts";

/** Kafka's replica.lag.time.max.ms. */
export const REPLICA_LAG_TIME_MAX_MS_DEFAULT = 30_000;
/** How long an AlterPartition may go unanswered before it is sent again. */
export const ALTER_PARTITION_RETRY_MS = 2_000;

export interface FollowerProgress {
  /** -1 until the follower's first valid fetch in this epoch. */
  logEndOffset: number;
  lastCaughtUpMs: number;
  lastFetchMs: number;
  /** The leader's log end offset when it answered this follower's previous fetch. */
  lastFetchLeaderLogEndOffset: number;
}

export type FollowerFetchAnswer =
  | { readonly kind: "read"; readonly fromOffset: number; readonly highWatermark: number }
  | {
      readonly kind: "diverging";
      readonly diverging: EpochEndOffset;
      readonly highWatermark: number;
    }
  | {
      readonly kind: "error";
      readonly error:
        "notReplica" | "fencedLeaderEpoch" | "unknownLeaderEpoch" | "offsetOutOfRange";
    };

export type AckStatus = "waiting" | "committed" | "notEnoughReplicasAfterAppend";

/** The view of the leader's own log that decisions need. */
export interface LeaderLogView {
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  readonly epochs: LeaderEpochCache;
}

interface PendingIsrChange {
  readonly request: AlterPartitionRequest;
  sentMs: number;
  /** Rejected while the controller's partition epoch had moved on: wait for metadata. */
  awaitingMetadata: boolean;
}

export interface LeaderStateOptions {
  readonly nodeId: number;
  readonly topicId: string;
  readonly partition: PartitionImage;
  /** This log's end when the node took leadership (where its epoch begins). */
  readonly logEndOffset: number;
  /** The checkpointed high watermark, at most the log end. */
  readonly highWatermark: number;
  readonly nowMs: number;
  readonly lagTimeMaxMs?: number;
  /** The effective min.insync.replicas (eligible-leaders.ts); 1 when absent. */
  readonly minIsr?: number;
  /**
   * Whether a replica may join the ISR at all: in a node, its broker is registered and
   * not fenced (Kafka's ISR eligibility, KIP-841). Every replica when absent.
   */
  readonly isEligible?: (replicaId: number) => boolean;
}

export class LeaderState {
  readonly nodeId: number;
  readonly topicId: string;
  readonly partitionIndex: number;
  readonly leaderEpoch: number;
  /** Where this leader's epoch begins in its log. */
  readonly epochStartOffset: number;
  readonly #lagTimeMaxMs: number;
  #minIsr: number;
  #replicas: readonly number[];
  #isr: readonly number[];
  #partitionEpoch: number;
  #highWatermark: number;
  #logEndOffset: number;
  #pending: PendingIsrChange | null = null;
  /** A change the controller refused: the same one is not proposed again before `untilMs`. */
  #refused: { readonly newIsr: readonly number[]; readonly untilMs: number } | null = null;
  readonly #isEligible: (replicaId: number) => boolean;
  readonly #followers = new Map<number, FollowerProgress>();

  constructor(options: LeaderStateOptions) {
    const { partition } = options;
    assert(
      partition.leader === options.nodeId,
      "A leader state for a partition this node does not lead",
    );
    assert(options.highWatermark <= options.logEndOffset, "High watermark beyond the log end");
    this.nodeId = options.nodeId;
    this.topicId = options.topicId;
    this.partitionIndex = partition.partition;
    this.leaderEpoch = partition.leaderEpoch;
    this.epochStartOffset = options.logEndOffset;
    this.#lagTimeMaxMs = options.lagTimeMaxMs ?? REPLICA_LAG_TIME_MAX_MS_DEFAULT;
    this.#minIsr = options.minIsr ?? 1;
    this.#isEligible = options.isEligible ?? (() => true);
    this.#replicas = partition.replicas;
    this.#isr = partition.isr;
    this.#partitionEpoch = partition.partitionEpoch;
    this.#highWatermark = options.highWatermark;
    this.#logEndOffset = options.logEndOffset;
    for (const id of partition.replicas) {
      if (id === options.nodeId) continue;
      // ISR members get a full lag window from the takeover before they can be dropped.
      this.#followers.set(id, {
        logEndOffset: -1,
        lastCaughtUpMs: partition.isr.includes(id) ? options.nowMs : -Infinity,
        lastFetchMs: -Infinity,
        lastFetchLeaderLogEndOffset: -1,
      });
    }
    // A leader alone in its ISR has committed its whole log (Kafka's
    // maybeIncrementLeaderHW on becoming leader).
    this.#advanceHighWatermark();
  }

  get highWatermark(): number {
    return this.#highWatermark;
  }

  get isr(): readonly number[] {
    return this.#isr;
  }

  get partitionEpoch(): number {
    return this.#partitionEpoch;
  }

  get pendingIsr(): readonly number[] | null {
    return this.#pending?.request.newIsr ?? null;
  }

  follower(id: number): Readonly<FollowerProgress> | undefined {
    return this.#followers.get(id);
  }

  /** The committed ISR with any member being added: what the high watermark waits for. */
  maximalIsr(): number[] {
    const members = [...this.#isr];
    for (const id of this.#pending?.request.newIsr ?? [])
      if (!members.includes(id)) members.push(id);
    return members;
  }

  /** The leader appended; returns whether the high watermark moved. */
  onAppend(logEndOffset: number): boolean {
    assert(logEndOffset >= this.#logEndOffset, "A leader's log end moved back");
    this.#logEndOffset = logEndOffset;
    return this.#advanceHighWatermark();
  }

  /** A follower's fetch. `read` says where to read from; progress is updated first. */
  onFollowerFetch(
    log: LeaderLogView,
    fetch: {
      replicaId: number;
      currentLeaderEpoch: number;
      fetchOffset: number;
      lastFetchedEpoch: number;
    },
    nowMs: number,
  ): FollowerFetchAnswer {
    const progress = this.#followers.get(fetch.replicaId);
    if (progress === undefined) return { kind: "error", error: "notReplica" };
    // A current leader epoch of -1 (Fetch before v9) skips the check, as in Kafka.
    if (fetch.currentLeaderEpoch !== UNDEFINED_EPOCH) {
      if (fetch.currentLeaderEpoch < this.leaderEpoch)
        return { kind: "error", error: "fencedLeaderEpoch" };
      if (fetch.currentLeaderEpoch > this.leaderEpoch)
        return { kind: "error", error: "unknownLeaderEpoch" };
    }
    if (fetch.lastFetchedEpoch !== UNDEFINED_EPOCH) {
      const ours = log.epochs.endOffsetFor(fetch.lastFetchedEpoch, log.logEndOffset);
      if (ours.epoch !== fetch.lastFetchedEpoch || ours.endOffset < fetch.fetchOffset) {
        return { kind: "diverging", diverging: ours, highWatermark: this.#highWatermark };
      }
    }
    if (fetch.fetchOffset > log.logEndOffset || fetch.fetchOffset < log.logStartOffset) {
      return { kind: "error", error: "offsetOutOfRange" };
    }
    if (fetch.fetchOffset >= log.logEndOffset)
      progress.lastCaughtUpMs = Math.max(progress.lastCaughtUpMs, nowMs);
    else if (fetch.fetchOffset >= progress.lastFetchLeaderLogEndOffset) {
      progress.lastCaughtUpMs = Math.max(progress.lastCaughtUpMs, progress.lastFetchMs);
    }
    progress.logEndOffset = fetch.fetchOffset;
    // A follower that may join the ISR now counts as caught up now: it must not be
    // dropped again by its first lag check after joining.
    if (!this.#isr.includes(fetch.replicaId) && this.#mayJoin(progress)) {
      progress.lastCaughtUpMs = Math.max(progress.lastCaughtUpMs, nowMs);
    }
    progress.lastFetchMs = nowMs;
    progress.lastFetchLeaderLogEndOffset = log.logEndOffset;
    this.#logEndOffset = log.logEndOffset;
    this.#advanceHighWatermark();
    return { kind: "read", fromOffset: fetch.fetchOffset, highWatermark: this.#highWatermark };
  }

  /**
   * The ISR change to send to the controller now, if any: a new one when none is
   * pending, or the pending one again when its answer is overdue. One at a time.
   */
  isrChangeToPropose(nowMs: number): AlterPartitionRequest | null {
    if (this.#pending !== null) {
      if (this.#pending.awaitingMetadata || nowMs - this.#pending.sentMs < ALTER_PARTITION_RETRY_MS)
        return null;
      this.#pending.sentMs = nowMs;
      return this.#pending.request;
    }
    const newIsr = this.#proposedIsr(nowMs);
    if (newIsr === null) return null;
    const refused = this.#refused;
    if (refused !== null && nowMs < refused.untilMs && sameMembers(refused.newIsr, newIsr))
      return null;
    const request: AlterPartitionRequest = {
      brokerId: this.nodeId,
      topicId: this.topicId,
      partition: this.partitionIndex,
      leaderEpoch: this.leaderEpoch,
      partitionEpoch: this.#partitionEpoch,
      newIsr,
    };
    this.#pending = { request, sentMs: nowMs, awaitingMetadata: false };
    return request;
  }

  /** The controller's answer to an AlterPartition this leader sent. */
  onAlterPartitionResult(request: AlterPartitionRequest, result: AlterPartitionResult): void {
    const current = this.#pending?.request === request;
    if (result.ok) {
      if (result.leaderEpoch === this.leaderEpoch && result.partitionEpoch > this.#partitionEpoch) {
        this.#isr = result.isr;
        this.#partitionEpoch = result.partitionEpoch;
      }
      if (current) this.#pending = null;
      this.#advanceHighWatermark();
      return;
    }
    if (!current) return;
    // The controller still holds the state the request was based on: nothing changed,
    // so the committed ISR known here is the controller's. Otherwise the request may
    // have been committed before (its answer lost), so keep counting it until metadata
    // shows what the controller holds.
    if (result.partitionEpoch === request.partitionEpoch) {
      this.#refused = {
        newIsr: request.newIsr,
        untilMs: this.#pending!.sentMs + ALTER_PARTITION_RETRY_MS,
      };
      this.#pending = null;
    } else {
      this.#pending!.awaitingMetadata = true;
    }
  }

  /**
   * The follower's broker was fenced or registered another process: what it fetched
   * before says nothing of its log now, so it must fetch again before it may join the ISR.
   */
  resetFollower(replicaId: number): void {
    const progress = this.#followers.get(replicaId);
    if (progress !== undefined) Object.assign(progress, unknownProgress());
  }

  /**
   * The partition as the metadata image now has it, in this leader's epoch (a newer
   * epoch or another leader ends this state; the caller checks that first).
   */
  onMetadata(partition: PartitionImage, minIsr: number = this.#minIsr): void {
    assert(
      partition.leader === this.nodeId && partition.leaderEpoch === this.leaderEpoch,
      "Metadata of another leadership",
    );
    this.#minIsr = minIsr;
    if (partition.partitionEpoch <= this.#partitionEpoch) {
      this.#advanceHighWatermark();
      return;
    }
    this.#isr = partition.isr;
    this.#replicas = partition.replicas;
    this.#partitionEpoch = partition.partitionEpoch;
    if (this.#pending !== null && partition.partitionEpoch > this.#pending.request.partitionEpoch)
      this.#pending = null;
    for (const id of this.#replicas) {
      if (id !== this.nodeId && !this.#followers.has(id)) {
        this.#followers.set(id, unknownProgress());
      }
    }
    // A replica moved off this partition is no follower any more: its fetches are refused.
    for (const id of [...this.#followers.keys()])
      if (!this.#replicas.includes(id)) this.#followers.delete(id);
    this.#advanceHighWatermark();
  }

  /** Whether a produce whose batches end just before `requiredOffset` is committed. */
  ackStatus(requiredOffset: number, minInsyncReplicas: number): AckStatus {
    if (this.#highWatermark < requiredOffset) return "waiting";
    return this.maximalIsr().length >= minInsyncReplicas
      ? "committed"
      : "notEnoughReplicasAfterAppend";
  }

  #proposedIsr(nowMs: number): number[] | null {
    // Kafka's isCaughtUp: at the log end, or caught up within the lag time. A follower
    // that stopped fetching at the end of an idle log stays; a dead one leaves the ISR
    // when the controller fences its broker.
    const lagging = this.#isr.filter((id) => {
      if (id === this.nodeId) return false;
      const progress = this.#followers.get(id);
      if (progress === undefined) return true;
      return (
        progress.logEndOffset !== this.#logEndOffset &&
        nowMs - progress.lastCaughtUpMs > this.#lagTimeMaxMs
      );
    });
    if (lagging.length > 0) return this.#isr.filter((id) => !lagging.includes(id));
    for (const id of this.#replicas) {
      if (this.#isr.includes(id)) continue;
      const progress = this.#followers.get(id);
      if (progress !== undefined && this.#mayJoin(progress) && this.#isEligible(id))
        return [...this.#isr, id];
    }
    return null;
  }

  /** Kafka's rule for joining the ISR: it holds the high watermark and this epoch's start. */
  #mayJoin(progress: FollowerProgress): boolean {
    return (
      progress.logEndOffset >= 0 &&
      progress.logEndOffset >= this.#highWatermark &&
      progress.logEndOffset >= this.epochStartOffset
    );
  }

  #advanceHighWatermark(): boolean {
    if (this.#isr.length < this.#minIsr) return false;
    let low = this.#logEndOffset;
    for (const id of this.maximalIsr()) {
      if (id === this.nodeId) continue;
      const progress = this.#followers.get(id);
      low = Math.min(low, progress?.logEndOffset ?? -1);
    }
    if (low <= this.#highWatermark) return false;
    this.#highWatermark = low;
    return true;
  }
}

function sameMembers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

/** A follower not heard from (yet, or since its broker came back). */
function unknownProgress(): FollowerProgress {
  return {
    logEndOffset: -1,
    lastCaughtUpMs: -Infinity,
    lastFetchMs: -Infinity,
    lastFetchLeaderLogEndOffset: -1,
  };
}
