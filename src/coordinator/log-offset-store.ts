/**
 * Committed offsets persisted as records of the internal compacted topic
 * `__consumer_offsets` (DESIGN.md principle 5). Each commit request is one record batch
 * appended to the group's partition before it is applied to the in-memory view that
 * answers reads; at start the view is rebuilt by replaying the topic. The topic is
 * created on first use.
 */
import { buildBatch } from "../protocol/record-batch-builder.ts";
import { decodeRecords } from "../protocol/records.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import { offsetKey, offsetValue, parseOffsetRecord, partitionForGroup } from "./offset-records.ts";
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
  /** Calls `visit` with every stored batch, partition by partition, in offset order. */
  replay(visit: (batch: Uint8Array) => void): void;
}

export class LogOffsetStore implements OffsetStore {
  readonly #topic: OffsetsTopic;
  readonly #clock: Clock;
  readonly #view = new MemoryOffsetStore();

  constructor(topic: OffsetsTopic, clock: Clock) {
    this.#topic = topic;
    this.#clock = clock;
    let commits = 0;
    topic.replay((batch) => {
      const records = decodeRecords(batch);
      if (records === null) {
        log.warn("Skipping an unreadable __consumer_offsets batch");
        return;
      }
      for (const record of records) {
        const parsed = parseOffsetRecord(record.key, record.value);
        if (parsed === null || parsed.kind === "other") continue;
        if (parsed.kind === "commit") {
          this.#view.commit(parsed.groupId, [parsed.entry]);
          commits++;
        } else {
          this.#view.delete(parsed.groupId, [parsed.partition]);
        }
      }
    });
    log.info("Committed offsets loaded", { records: commits });
  }

  async commit(groupId: string, entries: readonly OffsetCommitEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.#write(groupId, entries.map((entry) => ({
      key: offsetKey(groupId, entry.topic, entry.partition),
      value: offsetValue(entry),
    })));
    this.#view.commit(groupId, entries);
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
    const existing = partitions.filter((p) => this.#view.fetch(groupId, p.topic, p.partition) !== undefined);
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
    return this.#write(groupId, partitions.map((p) => ({ key: offsetKey(groupId, p.topic, p.partition), value: null })));
  }

  #write(groupId: string, records: Array<{ key: Uint8Array; value: Uint8Array | null }>): Promise<void> {
    const batch = buildBatch({ baseTimestamp: this.#clock.nowMs(), records });
    return this.#topic.append(partitionForGroup(groupId, this.#topic.partitionCount), batch);
  }
}
