/**
 * Committed consumer offsets: per group, per topic partition, the last committed
 * position. `OffsetStore` is the seam; `MemoryOffsetStore` keeps them in memory for
 * now. A later implementation appends each commit to the internal compacted topic
 * `__consumer_offsets` (DESIGN.md principle 5) and answers reads from what it applied,
 * which is why writes may return a promise while reads stay synchronous.
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
      a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition);
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

function key(topic: string, partition: number): string {
  return `${topic}\0${partition}`;
}
