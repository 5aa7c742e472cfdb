/**
 * Committed consumer offsets: per group, per topic partition, the last committed
 * position. `OffsetStore` is the seam; `MemoryOffsetStore` keeps them in memory (unit
 * tests), `LogOffsetStore` appends each commit to the internal compacted topic
 * `__consumer_offsets` (docs/architecture.md, principle 5) and answers reads from what
 * it applied, which is why writes may return a promise while reads stay synchronous.
 *
 * A commit takes all partitions of one OffsetCommit request at once: Kafka writes them
 * as one record batch, so they succeed or fail together.
 */
import { assert } from "../util/assert.ts";

/** Kafka's offset.metadata.max.bytes default; Kafka compares the string's length. */
export const OFFSET_METADATA_LENGTH_MAX = 4096;

export interface CommittedOffset {
  /** The next offset the group will consume. */
  readonly offset: number;
  /** Leader epoch of the last consumed record (KIP-320), -1 when unknown. */
  readonly leaderEpoch: number;
  readonly metadata: string;
  /** Wall-clock ms of the commit (or the time OffsetCommit v1 gave). */
  readonly commitTimestampMs: number;
  /** OffsetCommit v2-v4 retention: when the commit may expire; null for the default. */
  readonly expireTimestampMs: number | null;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface OffsetCommitEntry extends CommittedOffset, TopicPartition {}

export interface OffsetStore {
  /** Stores the offsets of one request together; resolves once they are durable. */
  commit(groupId: string, entries: readonly OffsetCommitEntry[]): void | Promise<void>;
  fetch(groupId: string, topic: string, partition: number): CommittedOffset | undefined;
  /** Every committed partition of the group, sorted by topic, then partition. */
  list(groupId: string): OffsetCommitEntry[];
  hasGroup(groupId: string): boolean;
  /** Every group with at least one committed offset. */
  groupIds(): string[];
  /** Removes some partitions' offsets; resolves to how many existed. */
  delete(groupId: string, partitions: readonly TopicPartition[]): number | Promise<number>;
  /** Removes all of a group's offsets; resolves to how many existed. */
  deleteGroup(groupId: string): number | Promise<number>;
}

export class MemoryOffsetStore implements OffsetStore {
  /** group → "topic\0partition" → offset. Topic names never contain NUL. */
  readonly #groups = new Map<string, Map<string, OffsetCommitEntry>>();

  commit(groupId: string, entries: readonly OffsetCommitEntry[]): void {
    if (entries.length === 0) return;
    let offsets = this.#groups.get(groupId);
    if (offsets === undefined) {
      offsets = new Map();
      this.#groups.set(groupId, offsets);
    }
    for (const entry of entries) {
      assert(Number.isSafeInteger(entry.offset), "Committed offset is not a safe integer");
      assert(Number.isInteger(entry.partition), "Partition is not an integer");
      offsets.set(key(entry.topic, entry.partition), { ...entry });
    }
  }

  fetch(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#groups.get(groupId)?.get(key(topic, partition));
  }

  list(groupId: string): OffsetCommitEntry[] {
    const offsets = this.#groups.get(groupId);
    if (offsets === undefined) return [];
    return [...offsets.values()].sort((a, b) =>
      a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition,
    );
  }

  hasGroup(groupId: string): boolean {
    return this.#groups.has(groupId);
  }

  groupIds(): string[] {
    return [...this.#groups.keys()];
  }

  delete(groupId: string, partitions: readonly TopicPartition[]): number {
    const offsets = this.#groups.get(groupId);
    if (offsets === undefined) return 0;
    let removed = 0;
    for (const { topic, partition } of partitions) {
      if (offsets.delete(key(topic, partition))) removed += 1;
    }
    if (offsets.size === 0) this.#groups.delete(groupId);
    return removed;
  }

  deleteGroup(groupId: string): number {
    const removed = this.#groups.get(groupId)?.size ?? 0;
    this.#groups.delete(groupId);
    return removed;
  }
}

// ---------------------------------------------------------------------------------------
// Offsets retention.

/** Kafka's offsets.retention.minutes default: 7 days. */
export const OFFSETS_RETENTION_MINUTES_DEFAULT = 10080;
export const OFFSETS_RETENTION_MS_DEFAULT = OFFSETS_RETENTION_MINUTES_DEFAULT * 60_000;
/** Kafka's offsets.retention.check.interval.ms default: 10 minutes. */
export const OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT = 600_000;

/** The commits of one group that are due to expire. */
export interface ExpiredOffsets {
  readonly groupId: string;
  readonly entries: readonly OffsetCommitEntry[];
}

export interface OffsetRetentionOptions {
  /** offsets.retention.minutes, in ms. */
  retentionMs?: number;
  /** offsets.retention.check.interval.ms: least time between two expiry scans. */
  checkIntervalMs?: number;
}

/**
 * Offsets retention (Kafka's offsets.retention.minutes as KIP-211 has it): the committed
 * offsets of a group without members expire once the retention has passed since the
 * group became Empty and since the offset was committed; a commit with an explicit
 * expire timestamp (OffsetCommit v2-v4 retention) expires at that time instead. A group
 * with members keeps its offsets. Kafka expires offsets of a Stable group's unsubscribed
 * topics too; that is not here.
 *
 * Pure bookkeeping, no timer, no clock: the driver calls `check` (every second or so)
 * with the time and whether each group has members now, and writes the tombstones of
 * what it answers through the store. When a group became Empty is what `check` saw: the
 * first call that found it without members (so, after a restart, no earlier than the
 * start; the coordinator keeps no older state timestamp). That errs on the late side.
 */
export class OffsetRetention {
  readonly retentionMs: number;
  readonly checkIntervalMs: number;
  /**
   * Wall-clock ms when each group with committed offsets was first seen without members.
   * Bounded by the groups of the store: others are forgotten on each check.
   */
  readonly #emptySinceMs = new Map<string, number>();
  /** Wall-clock ms of the last expiry scan, null before the first. */
  #lastScanMs: number | null = null;

  constructor(options: OffsetRetentionOptions = {}) {
    this.retentionMs = options.retentionMs ?? OFFSETS_RETENTION_MS_DEFAULT;
    this.checkIntervalMs = options.checkIntervalMs ?? OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT;
    assert(this.retentionMs > 0, "Offsets retention must be positive");
    assert(this.checkIntervalMs > 0, "Offsets retention check interval must be positive");
  }

  /** When `groupId` was first seen without members, null if it has members (or is unknown). */
  emptySinceMs(groupId: string): number | null {
    return this.#emptySinceMs.get(groupId) ?? null;
  }

  /**
   * Notes which groups have members now and, at most once per check interval, answers
   * the commits due to expire (an empty list otherwise).
   */
  check(
    store: Pick<OffsetStore, "groupIds" | "list">,
    hasMembers: (groupId: string) => boolean,
    nowMs: number,
  ): ExpiredOffsets[] {
    const groups = store.groupIds();
    const known = new Set(groups);
    for (const groupId of this.#emptySinceMs.keys()) {
      if (!known.has(groupId)) this.#emptySinceMs.delete(groupId);
    }
    for (const groupId of groups) {
      if (hasMembers(groupId)) this.#emptySinceMs.delete(groupId);
      else if (!this.#emptySinceMs.has(groupId)) this.#emptySinceMs.set(groupId, nowMs);
    }
    if (this.#lastScanMs !== null && nowMs - this.#lastScanMs < this.checkIntervalMs) return [];
    this.#lastScanMs = nowMs;
    const expired: ExpiredOffsets[] = [];
    for (const groupId of groups) {
      const emptySinceMs = this.#emptySinceMs.get(groupId);
      if (emptySinceMs === undefined) continue;
      const entries = store
        .list(groupId)
        .filter((entry) => this.#isExpired(entry, emptySinceMs, nowMs));
      if (entries.length > 0) expired.push({ groupId, entries });
    }
    return expired;
  }

  #isExpired(entry: OffsetCommitEntry, emptySinceMs: number, nowMs: number): boolean {
    if (entry.expireTimestampMs !== null) return nowMs >= entry.expireTimestampMs;
    return nowMs - Math.max(emptySinceMs, entry.commitTimestampMs) >= this.retentionMs;
  }
}

function key(topic: string, partition: number): string {
  return `${topic}\0${partition}`;
}
