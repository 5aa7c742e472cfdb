/**
 * What a follower replica does, as a pure state machine: it first finds where its log
 * stops agreeing with the new leader's (OffsetForLeaderEpoch, one or more rounds), cuts
 * its tail there, and only then fetches from its log end. A fetch answer that says the
 * follower diverged (the leader's DivergingEpoch) sends it back to cutting.
 *
 * The caller owns the log: it asks `nextRequest` what to send, does the truncation
 * `onEpochEndOffset` or `onDiverging` returns, appends fetched batches itself and then
 * calls `onFetched`. Nothing here touches files, sockets or clocks.
 *
 * Before constructing one, the caller drops epoch-cache entries at or past its log end
 * (an epoch this node took over as leader without writing a batch): fetched batches of
 * an older epoch would otherwise land after them.
 *
 * Invariant kept: the follower never fetches (and so never reports a log end offset to
 * the leader) before its truncation for this leader epoch has finished, so what it
 * reports is a prefix of the leader's log.
 */
import {
  type EpochEndOffset,
  type LeaderEpochCache,
  UNDEFINED_EPOCH,
  UNDEFINED_OFFSET,
} from "./leader-epoch-cache.ts";

export type FollowerRequest =
  | {
      readonly kind: "offsetForLeaderEpoch";
      readonly currentLeaderEpoch: number;
      readonly epoch: number;
    }
  | {
      readonly kind: "fetch";
      readonly currentLeaderEpoch: number;
      readonly fetchOffset: number;
      /** The epoch of the last batch this follower holds (Fetch v12's LastFetchedEpoch). */
      readonly lastFetchedEpoch: number;
    };

/** What the follower's log looks like now; the caller's real or simulated log. */
export interface FollowerLogView {
  readonly logEndOffset: number;
  readonly epochs: LeaderEpochCache;
}

/**
 * Where to cut a follower's log given the leader's answer for the epoch it asked about,
 * and whether that settles it (Kafka's AbstractFetcherThread truncation rules). When
 * the leader never had the follower's epoch, the follower cuts to where its own
 * matching epoch ends and asks again with the epoch it is left with, until both agree
 * on an epoch.
 */
export function truncationPoint(
  log: FollowerLogView,
  askedEpoch: number,
  answer: EpochEndOffset,
  highWatermark: number,
): { truncateTo: number; done: boolean } {
  const end = log.logEndOffset;
  // The leader holds no epoch at or below ours: keep only what we know is committed.
  if (answer.epoch === UNDEFINED_EPOCH)
    return { truncateTo: Math.min(highWatermark, end), done: true };
  if (answer.endOffset === UNDEFINED_OFFSET) return { truncateTo: end, done: true };
  if (answer.epoch === askedEpoch)
    return { truncateTo: Math.min(answer.endOffset, end), done: true };
  const ours = log.epochs.endOffsetFor(answer.epoch, end);
  const cut = Math.min(
    answer.endOffset,
    ours.endOffset === UNDEFINED_OFFSET ? end : ours.endOffset,
    end,
  );
  return { truncateTo: cut, done: ours.epoch === answer.epoch };
}

export class FollowerState {
  readonly leaderId: number;
  readonly leaderEpoch: number;
  #phase: "truncating" | "fetching" = "truncating";
  /** The epoch the outstanding OffsetForLeaderEpoch asked about. */
  #askedEpoch = UNDEFINED_EPOCH;
  #highWatermark: number;

  constructor(options: { leaderId: number; leaderEpoch: number; highWatermark: number }) {
    this.leaderId = options.leaderId;
    this.leaderEpoch = options.leaderEpoch;
    this.#highWatermark = options.highWatermark;
  }

  get phase(): "truncating" | "fetching" {
    return this.#phase;
  }

  get highWatermark(): number {
    return this.#highWatermark;
  }

  /** The request to send next (the caller keeps one outstanding at a time). */
  nextRequest(log: FollowerLogView): FollowerRequest {
    const lastEpoch = log.epochs.epochOfLastBatch(log.logEndOffset);
    if (this.#phase === "truncating") {
      const epoch = lastEpoch;
      // An empty log has nothing to disagree about.
      if (epoch === UNDEFINED_EPOCH) this.#phase = "fetching";
      else {
        this.#askedEpoch = epoch;
        return { kind: "offsetForLeaderEpoch", currentLeaderEpoch: this.leaderEpoch, epoch };
      }
    }
    return {
      kind: "fetch",
      currentLeaderEpoch: this.leaderEpoch,
      fetchOffset: log.logEndOffset,
      lastFetchedEpoch: lastEpoch,
    };
  }

  /**
   * The leader's OffsetForLeaderEpoch answer. Returns the offset to cut the log to (the
   * caller truncates before anything else), or null when nothing is cut.
   */
  onEpochEndOffset(log: FollowerLogView, answer: EpochEndOffset): number | null {
    if (this.#phase !== "truncating") return null;
    const { truncateTo, done } = truncationPoint(
      log,
      this.#askedEpoch,
      answer,
      this.#highWatermark,
    );
    if (done) this.#phase = "fetching";
    return this.#cut(log, truncateTo);
  }

  /** A fetch answer with a diverging epoch: cut as for an OffsetForLeaderEpoch answer. */
  onDiverging(
    log: FollowerLogView,
    fetchedEpoch: number,
    diverging: EpochEndOffset,
  ): number | null {
    const { truncateTo, done } = truncationPoint(log, fetchedEpoch, diverging, this.#highWatermark);
    if (!done) this.#phase = "truncating";
    return this.#cut(log, truncateTo);
  }

  /** After the caller appended a fetch answer's batches: the leader's high watermark. */
  onFetched(log: FollowerLogView, leaderHighWatermark: number): void {
    const next = Math.min(leaderHighWatermark, log.logEndOffset);
    if (next > this.#highWatermark) this.#highWatermark = next;
  }

  #cut(log: FollowerLogView, truncateTo: number): number | null {
    if (truncateTo >= log.logEndOffset) return null;
    if (truncateTo < this.#highWatermark) this.#highWatermark = truncateTo;
    return truncateTo;
  }
}
