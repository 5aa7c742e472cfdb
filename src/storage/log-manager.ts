/**
 * Owns the partition logs of this node: opens them at start, creates and deletes them
 * as the metadata image changes, and wakes long-polling fetches when an append lands.
 * Directory per partition: `<data-dir>/<topic>-<partition>` (DESIGN.md).
 *
 * Invariant: a log exists here exactly for each partition of the image that names this
 * node as a replica.
 */
import { join } from "node:path";
import type { MetadataImage, MetadataRecord } from "../cluster/metadata-image.ts";
import { logConfigFromOverrides } from "../cluster/topic-config.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import { type AppendResult, PartitionLog } from "./partition-log.ts";
import { SegmentCache } from "./segment-cache.ts";

const log = logger("log-manager");

export type { RecordsErrorKind as AppendErrorKind } from "../protocol/record-batch.ts";

/** Waiters per log; bounded by the number of in-flight fetches, each bounded per connection. */
type Waiter = () => void;

export class LogManager {
  readonly #dataDir: string;
  readonly #nodeId: number;
  readonly #clock: Clock;
  readonly #logs = new Map<string, PartitionLog>();
  /** One bound on open files and cached indexes for all logs of this node. */
  readonly #cache = new SegmentCache();
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Topic names by id, so a removal (applied to the image first) finds its logs. */
  readonly #topicNames = new Map<string, string>();

  constructor(options: { dataDir: string; nodeId: number; clock: Clock; image: MetadataImage }) {
    this.#dataDir = options.dataDir;
    this.#nodeId = options.nodeId;
    this.#clock = options.clock;
    options.image.onApply((record, image) => this.#onMetadata(record, image));
  }

  key(topic: string, partition: number): string {
    return `${topic}-${partition}`;
  }

  get(topic: string, partition: number): PartitionLog | undefined {
    return this.#logs.get(this.key(topic, partition));
  }

  all(): ReadonlyMap<string, PartitionLog> {
    return this.#logs;
  }

  append(topic: string, partition: number, records: Uint8Array, leaderEpoch: number): AppendResult {
    const key = this.key(topic, partition);
    const partitionLog = this.#logs.get(key);
    if (partitionLog === undefined) throw new Error(`No log for ${key}`);
    const result = partitionLog.append(records, { leaderEpoch });
    if (result.ok) this.#wake(key);
    return result;
  }

  /** Resolves true when one of the logs gets an append, false after `timeoutMs`. */
  waitForAppend(keys: readonly string[], timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (woken: boolean) => {
        if (timer !== undefined) clearTimeout(timer);
        for (const key of keys) this.#waiters.get(key)?.delete(wake);
        resolve(woken);
      };
      const wake = () => done(true);
      for (const key of keys) {
        let set = this.#waiters.get(key);
        if (set === undefined) this.#waiters.set(key, (set = new Set()));
        set.add(wake);
      }
      timer = setTimeout(() => done(false), timeoutMs);
    });
  }

  #wake(key: string): void {
    const set = this.#waiters.get(key);
    if (set === undefined || set.size === 0) return;
    this.#waiters.delete(key);
    for (const wake of set) wake();
  }

  #onMetadata(record: MetadataRecord, image: MetadataImage): void {
    switch (record.type) {
      case "topic":
        this.#topicNames.set(record.topicId, record.name);
        return;
      case "partition": {
        const topic = image.topicById(record.topicId)!;
        if (!record.replicas.includes(this.#nodeId)) return;
        const key = this.key(topic.name, record.partition);
        if (this.#logs.has(key)) return;
        this.#logs.set(key, PartitionLog.open({ dir: join(this.#dataDir, key), config: logConfigFromOverrides(topic.configs), clock: this.#clock, cache: this.#cache }));
        return;
      }
      case "config": {
        const topic = image.topicById(record.topicId)!;
        for (const p of topic.partitions) this.get(topic.name, p.partition)?.updateConfig(logConfigFromOverrides(topic.configs));
        return;
      }
      case "removeTopic": {
        // The image has already dropped the topic, so its name comes from our own map.
        const prefix = this.#topicNames.get(record.topicId);
        this.#topicNames.delete(record.topicId);
        if (prefix === undefined) return;
        for (const [key, partitionLog] of this.#logs) {
          if (!this.#ownedBy(key, prefix)) continue;
          partitionLog.deleteAll();
          this.#logs.delete(key);
          this.#wake(key);
        }
        return;
      }
      default:
        return;
    }
  }

  #ownedBy(key: string, topicName: string): boolean {
    return key.startsWith(`${topicName}-`) && /^\d+$/.test(key.slice(topicName.length + 1));
  }

  flushAll(): void {
    for (const partitionLog of this.#logs.values()) partitionLog.flush();
  }

  close(): void {
    for (const partitionLog of this.#logs.values()) partitionLog.close();
    this.#logs.clear();
  }

  summary(): { partitions: number; bytes: number } {
    let bytes = 0;
    for (const partitionLog of this.#logs.values()) bytes += partitionLog.sizeBytes();
    return { partitions: this.#logs.size, bytes };
  }
}
