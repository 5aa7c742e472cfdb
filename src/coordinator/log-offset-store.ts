/**
 * Committed offsets persisted as records of the internal compacted topic
 * `__consumer_offsets` (docs/architecture.md, principle 5). Each commit request is one
 * record batch appended to the group's partition before it is applied to the in-memory
 * view that answers reads; at start the view is rebuilt by replaying the topic. The
 * topic is created on first use. Deleted and expired offsets are tombstones (null
 * values), which the log cleaner removes from the compacted topic after
 * delete.retention.ms.
 *
 * The same topic keeps group metadata (GroupMetadataStore): each group's latest
 * snapshot, in the group's partition, so offsets and group of one group stay in order.
 *
 * Appends reach the log in call order, and the view applies them in that order too
 * (every write path awaits the same one append), so the view and a replay agree.
 */
import { buildBatch } from "../protocol/record-batch-builder.ts";
import { decodeRecords } from "../protocol/records.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import type { GroupMetadataStore } from "./group-coordinator.ts";
import type { GroupSnapshot } from "./group-snapshot.ts";
import {
  groupMetadataKey,
  groupMetadataValue,
  offsetKey,
  offsetValue,
  parseOffsetRecord,
  partitionForGroup,
} from "./offset-records.ts";
import {
  type CommittedOffset,
  MemoryOffsetStore,
  type OffsetCommitEntry,
  type OffsetStore,
  type TopicPartition,
} from "./offset-store.ts";

const log = logger("offsets");

/** Where the records live; the node gives a log-backed one, tests may give a twin. */
export interface OffsetsTopic {
  readonly partitionCount: number;
  /** Appends one batch to a partition, creating the topic first if needed. */
  append(partition: number, batch: Uint8Array): Promise<void>;
  /**
   * Calls `visit` with every stored batch of the partitions held here, partition by
   * partition, in offset order; returns the partitions it read.
   */
  replay(visit: (batch: Uint8Array) => void, only?: (partition: number) => boolean): number[];
}

export class LogOffsetStore implements OffsetStore, GroupMetadataStore {
  readonly #topic: OffsetsTopic;
  readonly #clock: Clock;
  readonly #view = new MemoryOffsetStore();
  /** The group metadata found by the replays, latest per group. */
  readonly #loadedGroups = new Map<string, GroupSnapshot>();
  /** Commits in flight per group (appended, not yet in the view); expiry leaves them be. */
  readonly #pending = new Map<string, number>();

  /**
   * `loadAtStart` (default true) replays every partition held here at once. A node in a
   * cluster passes false and loads a partition when it comes to lead it
   * (`loadPartition`), as Kafka's coordinator does.
   */
  constructor(topic: OffsetsTopic, clock: Clock, options: { loadAtStart?: boolean } = {}) {
    this.#topic = topic;
    this.#clock = clock;
    if (options.loadAtStart ?? true) this.#replay(() => true);
  }

  /**
   * This node now leads `partition`: its commits and group metadata are read again from
   * the log (what was known of them before may be stale: another node led meanwhile).
   * Returns the groups whose metadata the partition holds, and every group with commits
   * there.
   */
  loadPartition(partition: number): { groups: GroupSnapshot[]; groupIds: string[] } {
    this.unloadPartition(partition);
    this.#replay((p) => p === partition);
    const here = (groupId: string) => this.#partitionOf(groupId) === partition;
    return {
      groups: [...this.#loadedGroups.values()].filter((group) => here(group.groupId)),
      groupIds: this.#view.groupIds().filter(here),
    };
  }

  /**
   * This node no longer leads `partition`: forgets what it knew of the partition's
   * groups. Returns their ids.
   */
  unloadPartition(partition: number): string[] {
    const ids = new Set([...this.#view.groupIds(), ...this.#loadedGroups.keys()]);
    const gone = [...ids].filter((groupId) => this.#partitionOf(groupId) === partition);
    for (const groupId of gone) {
      this.#view.deleteGroup(groupId);
      this.#loadedGroups.delete(groupId);
    }
    return gone;
  }

  #partitionOf(groupId: string): number {
    return partitionForGroup(groupId, this.#topic.partitionCount);
  }

  #replay(only: (partition: number) => boolean): number[] {
    let commits = 0;
    let groupRecords = 0;
    const read = this.#topic.replay((batch) => {
      const records = decodeRecords(batch);
      if (records === null) {
        log.warn("Skipping an unreadable __consumer_offsets batch");
        return;
      }
      for (const record of records) {
        const parsed = parseOffsetRecord(record.key, record.value);
        if (parsed === null) continue;
        switch (parsed.kind) {
          case "commit":
            this.#view.commit(parsed.groupId, [parsed.entry]);
            commits++;
            break;
          case "delete":
            this.#view.delete(parsed.groupId, [parsed.partition]);
            break;
          case "group":
            this.#loadedGroups.set(parsed.groupId, parsed.group);
            groupRecords++;
            break;
          case "groupDeleted":
            this.#loadedGroups.delete(parsed.groupId);
            break;
        }
      }
    }, only);
    // Empty partitions are the common case in a cluster (each node leads a few of 50).
    if (commits + groupRecords > 0)
      log.info("Committed offsets loaded", {
        partitions: read.length,
        records: commits,
        groups: this.#loadedGroups.size,
      });
    return read;
  }

  /** Group metadata as the replay at start found it. */
  loadedGroups(): GroupSnapshot[] {
    return [...this.#loadedGroups.values()];
  }

  storeGroup(group: GroupSnapshot): Promise<void> {
    return this.#write(group.groupId, [
      { key: groupMetadataKey(group.groupId), value: groupMetadataValue(group) },
    ]);
  }

  removeGroup(groupId: string): Promise<void> {
    return this.#write(groupId, [{ key: groupMetadataKey(groupId), value: null }]);
  }

  async commit(groupId: string, entries: readonly OffsetCommitEntry[]): Promise<void> {
    if (entries.length === 0) return;
    this.#pending.set(groupId, (this.#pending.get(groupId) ?? 0) + 1);
    try {
      await this.#write(
        groupId,
        entries.map((entry) => ({
          key: offsetKey(groupId, entry.topic, entry.partition),
          value: offsetValue(entry),
        })),
      );
      this.#view.commit(groupId, entries);
    } finally {
      const left = this.#pending.get(groupId)! - 1;
      if (left === 0) this.#pending.delete(groupId);
      else this.#pending.set(groupId, left);
    }
  }

  /**
   * Offsets retention (OffsetRetention decides what): deletes these commits of a group
   * with tombstones, as `delete` does, unless a commit to the group is in flight or a
   * commit changed since it was listed. Resolves to how many went.
   */
  async expire(groupId: string, entries: readonly OffsetCommitEntry[]): Promise<number> {
    if (this.#pending.has(groupId)) return 0;
    const unchanged = entries.flatMap((entry) => {
      const current = this.#view.fetch(groupId, entry.topic, entry.partition);
      const same = current !== undefined && sameCommit(current, entry);
      return same ? [{ entry, current }] : [];
    });
    if (unchanged.length === 0) return 0;
    await this.#tombstones(
      groupId,
      unchanged.map((each) => each.entry),
    );
    // A commit that landed meanwhile was appended after the tombstones: it stays.
    const gone = unchanged.filter(
      ({ entry, current }) => this.#view.fetch(groupId, entry.topic, entry.partition) === current,
    );
    const removed = this.#view.delete(
      groupId,
      gone.map((each) => each.entry),
    );
    log.info("Committed offsets expired", { group: groupId, partitions: removed });
    return removed;
  }

  fetch(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#view.fetch(groupId, topic, partition);
  }

  list(groupId: string): OffsetCommitEntry[] {
    return this.#view.list(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.#view.hasGroup(groupId);
  }

  groupIds(): string[] {
    return this.#view.groupIds();
  }

  async delete(groupId: string, partitions: readonly TopicPartition[]): Promise<number> {
    const existing = partitions.filter(
      (p) => this.#view.fetch(groupId, p.topic, p.partition) !== undefined,
    );
    if (existing.length === 0) return 0;
    await this.#tombstones(groupId, existing);
    return this.#view.delete(groupId, existing);
  }

  async deleteGroup(groupId: string): Promise<number> {
    const existing = this.#view.list(groupId);
    if (existing.length === 0) return 0;
    await this.#tombstones(groupId, existing);
    return this.#view.deleteGroup(groupId);
  }

  #tombstones(groupId: string, partitions: readonly TopicPartition[]): Promise<void> {
    return this.#write(
      groupId,
      partitions.map((p) => ({ key: offsetKey(groupId, p.topic, p.partition), value: null })),
    );
  }

  #write(
    groupId: string,
    records: Array<{ key: Uint8Array; value: Uint8Array | null }>,
  ): Promise<void> {
    const batch = buildBatch({ baseTimestamp: this.#clock.nowMs(), records });
    return this.#topic.append(this.#partitionOf(groupId), batch);
  }
}

function sameCommit(a: CommittedOffset, b: CommittedOffset): boolean {
  return (
    a.offset === b.offset &&
    a.commitTimestampMs === b.commitTimestampMs &&
    a.expireTimestampMs === b.expireTimestampMs &&
    a.leaderEpoch === b.leaderEpoch &&
    a.metadata === b.metadata
  );
}
