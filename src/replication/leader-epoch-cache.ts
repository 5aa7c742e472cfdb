/**
 * A replica's leader-epoch cache: for each leader epoch whose batches this log holds, the
 * offset of its first batch (Kafka's `leader-epoch-checkpoint`). It answers "where does
 * epoch E end in this log?", which is how a replica that becomes a follower finds the
 * first offset where its log diverges from the new leader's (KIP-101, KIP-279), and how a
 * leader answers OffsetForLeaderEpoch.
 *
 * Entries are kept strictly increasing in both epoch and start offset. The cache is cut
 * with the log: `truncateFromEnd` when the tail is removed, `truncateFromStart` when
 * retention or DeleteRecords moves the log start.
 *
 * Pure: no files. The owner persists `entries()` when they change.
 */
import { assert } from "../util/assert.ts";

/** Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET. */
export const UNDEFINED_EPOCH = -1;
export const UNDEFINED_OFFSET = -1;

export interface EpochEntry {
  readonly epoch: number;
  readonly startOffset: number;
}

/** The answer to OffsetForLeaderEpoch: the largest epoch ≤ the one asked and where it ends. */
export interface EpochEndOffset {
  readonly epoch: number;
  readonly endOffset: number;
}

export class LeaderEpochCache {
  #entries: EpochEntry[] = [];

  constructor(entries: readonly EpochEntry[] = []) {
    for (const entry of entries) this.assign(entry.epoch, entry.startOffset);
  }

  entries(): EpochEntry[] {
    return [...this.#entries];
  }

  latestEpoch(): number {
    return this.#entries.at(-1)?.epoch ?? UNDEFINED_EPOCH;
  }

  /**
   * The epoch of the batch that ends a log of `logEndOffset`: the latest entry that starts
   * before it. A leader's entry for its takeover, with no batch yet, is not counted: a
   * replica that led without appending and then follows has no batch of that epoch.
   */
  epochOfLastBatch(logEndOffset: number): number {
    for (let i = this.#entries.length - 1; i >= 0; i--) {
      if (this.#entries[i]!.startOffset < logEndOffset) return this.#entries[i]!.epoch;
    }
    return UNDEFINED_EPOCH;
  }

  /**
   * Records that `epoch` starts at `startOffset` (a leader taking over at its log end, or
   * a batch of a new epoch appended). The same epoch again changes nothing. Entries that
   * the new one contradicts (a later or equal epoch, or a start at or after this one)
   * are dropped: they belong to a tail that has been, or is being, replaced.
   */
  assign(epoch: number, startOffset: number): boolean {
    assert(epoch >= 0 && startOffset >= 0, `Bad epoch entry ${epoch}@${startOffset}`);
    const latest = this.#entries.at(-1);
    if (latest !== undefined && latest.epoch === epoch && latest.startOffset <= startOffset)
      return false;
    this.#entries = this.#entries.filter((e) => e.epoch < epoch && e.startOffset < startOffset);
    this.#entries.push({ epoch, startOffset });
    return true;
  }

  /**
   * Kafka's `endOffsetFor`: for the latest epoch, the log end offset; for an older one,
   * the start of the first epoch after it, paired with the largest epoch ≤ the one asked
   * (the requester may name an epoch this log never had). An epoch above the latest, or
   * an empty cache, answers undefined.
   */
  endOffsetFor(requestedEpoch: number, logEndOffset: number): EpochEndOffset {
    const latest = this.#entries.at(-1);
    if (requestedEpoch === UNDEFINED_EPOCH || latest === undefined) {
      return { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_OFFSET };
    }
    if (requestedEpoch === latest.epoch) return { epoch: latest.epoch, endOffset: logEndOffset };
    const higher = this.#entries.findIndex((e) => e.epoch > requestedEpoch);
    if (higher === -1) return { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_OFFSET };
    const floor = higher === 0 ? undefined : this.#entries[higher - 1]!;
    return { epoch: floor?.epoch ?? requestedEpoch, endOffset: this.#entries[higher]!.startOffset };
  }

  /** The log was cut to end at `endOffset`: epochs starting there or later are gone. */
  truncateFromEnd(endOffset: number): void {
    this.#entries = this.#entries.filter((e) => e.startOffset < endOffset);
  }

  /**
   * The log now starts at `startOffset`: the epoch that covers it starts there, and the
   * ones wholly before it are gone.
   */
  truncateFromStart(startOffset: number): void {
    let covering = -1;
    for (let i = 0; i < this.#entries.length; i++)
      if (this.#entries[i]!.startOffset <= startOffset) covering = i;
    if (covering === -1) return;
    const kept = this.#entries.slice(covering);
    kept[0] = { epoch: kept[0]!.epoch, startOffset };
    this.#entries = kept;
  }
}
