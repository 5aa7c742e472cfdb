/**
 * A metadata writer without a quorum, for in-process tests and tools (the admin API's
 * tests): the node itself runs the Raft log of cluster-node.ts, even alone. Records are
 * stored as JSON values in
 * RecordBatch v2 batches of an ordinary partition log at
 * `<data-dir>/__cluster_metadata-0/`, replayed into the image at start. One `append`
 * is one batch, so a topic and its partitions appear together or not at all. The Raft
 * quorum of a cluster replaces only how this log is agreed, not the records or image.
 */
import { join } from "node:path";
import { buildBatch } from "../protocol/record-batch-builder.ts";
import { decodeRecords } from "../protocol/records.ts";
import { DEFAULT_LOG_CONFIG } from "../storage/log-config.ts";
import { PartitionLog } from "../storage/partition-log.ts";
import { forEachStoredBatch } from "../storage/replay.ts";
import { assert } from "../util/assert.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import type { MetadataImage, MetadataRecord } from "./metadata-image.ts";
import {
  type CommandResult,
  type MetadataCommand,
  type MetadataWriter,
  planCommand,
  type TopicDefaults,
} from "./topics.ts";

const log = logger("metadata-log");
export const METADATA_LOG_DIR = "__cluster_metadata-0";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class LocalMetadataLog implements MetadataWriter {
  readonly #log: PartitionLog;
  readonly #image: MetadataImage;
  readonly #clock: Clock;
  readonly #defaults: TopicDefaults;

  private constructor(
    partitionLog: PartitionLog,
    image: MetadataImage,
    clock: Clock,
    defaults: TopicDefaults,
  ) {
    this.#log = partitionLog;
    this.#image = image;
    this.#clock = clock;
    this.#defaults = defaults;
  }

  /** Opens the log and applies every stored record to `image`, in order. */
  static open(options: {
    dataDir: string;
    image: MetadataImage;
    clock: Clock;
    topicDefaults: TopicDefaults;
  }): LocalMetadataLog {
    const partitionLog = PartitionLog.open({
      dir: join(options.dataDir, METADATA_LOG_DIR),
      config: DEFAULT_LOG_CONFIG,
      clock: options.clock,
    });
    let applied = 0;
    forEachStoredBatch(partitionLog, (batch, baseOffset) => {
      const records = decodeRecords(batch);
      assert(records !== null, `Metadata batch at ${baseOffset} is not readable`);
      for (const record of records) {
        options.image.apply(JSON.parse(decoder.decode(record.value!)) as MetadataRecord);
        applied++;
      }
    });
    log.info("Metadata log replayed", { records: applied, endOffset: partitionLog.logEndOffset });
    return new LocalMetadataLog(partitionLog, options.image, options.clock, options.topicDefaults);
  }

  /** One node is its own controller: plan, append and apply without a pause between. */
  async submit(command: MetadataCommand): Promise<CommandResult> {
    const plan = planCommand(this.#image, command, this.#defaults);
    if (!plan.ok) return plan;
    if (plan.records.length > 0) this.append(plan.records);
    return { ok: true };
  }

  append(records: MetadataRecord[]): void {
    assert(records.length > 0, "Empty metadata append");
    const batch = buildBatch({
      baseTimestamp: this.#clock.nowMs(),
      records: records.map((record, i) => ({
        key: null,
        value: encoder.encode(JSON.stringify(record)),
        headers: [],
        timestampDelta: 0,
        offsetDelta: i,
      })),
    });
    const result = this.#log.append(batch, { leaderEpoch: 0 });
    assert(result.ok, `Metadata append failed: ${result.ok ? "" : result.message}`);
    // Metadata is rare and precious: make it durable before anyone acts on it.
    this.#log.flush();
    for (const record of records) this.#image.apply(record);
  }

  close(): void {
    this.#log.close();
  }
}
