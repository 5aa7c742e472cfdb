/**
 * The log-backed `OffsetsTopic`: `__consumer_offsets` as an internal, compacted topic of
 * this node, created through the metadata log on first use, with Kafka's defaults
 * (offsets.topic.num.partitions 50, offsets.topic.segment.bytes 100 MiB). Its
 * cleanup.policy is compact: the storage cleaner (src/storage/compaction.ts) keeps the
 * latest commit of each group, topic and partition and drops tombstones in time, so the
 * topic does not grow with the number of commits. The segment size only applies when
 * the topic is created (later it is the topic's config, as in Kafka).
 */
import type { MetadataImage } from "../cluster/metadata-image.ts";
import { ConfigError } from "../config/node-config.ts";
import type { MetadataWriter } from "../cluster/topics.ts";
import type { LogManager } from "../storage/log-manager.ts";
import { forEachStoredBatch } from "../storage/replay.ts";
import type { OffsetsTopic } from "./log-offset-store.ts";
import {
  OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
  OFFSETS_RETENTION_MS_DEFAULT,
} from "./offset-store.ts";

export const OFFSETS_TOPIC = "__consumer_offsets";
export const OFFSETS_TOPIC_PARTITIONS = 50;
/** Kafka's offsets.topic.segment.bytes default. */
export const OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT = 100 * 1024 * 1024;

function offsetsTopicConfigs(segmentBytes: number): Array<{ name: string; value: string }> {
  return [
    { name: "cleanup.policy", value: "compact" },
    { name: "segment.bytes", value: String(segmentBytes) },
  ];
}

export class OffsetsStoreError extends Error {
  override name = "OffsetsStoreError";
}

export interface OffsetsTopicDeps {
  image: MetadataImage;
  metadata: MetadataWriter;
  logs: LogManager;
  /**
   * How a commit is appended on the partition's leader: the replica manager's
   * `appendAsLeader` in a node (so the high watermark follows); the log itself in tests.
   */
  appendAsLeader?: (partition: number, batch: Uint8Array) => { ok: true } | { ok: false; message: string | null };
  /** offsets.topic.segment.bytes (OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT); tests shrink it. */
  segmentBytes?: number;
}

/** The node's `__consumer_offsets`: also creatable ahead of the first append. */
export interface LogOffsetsTopic extends OffsetsTopic {
  /** Creates the topic through the controller unless the image has it. */
  ensure(): Promise<void>;
}

export function logOffsetsTopic(deps: OffsetsTopicDeps): LogOffsetsTopic {
  const { image, metadata, logs } = deps;
  const configs = offsetsTopicConfigs(deps.segmentBytes ?? OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT);
  let creating: Promise<void> | null = null;
  const ensureTopic = async (): Promise<void> => {
    if (image.topic(OFFSETS_TOPIC) !== undefined) return;
    creating ??= (async () => {
      const request = { name: OFFSETS_TOPIC, numPartitions: OFFSETS_TOPIC_PARTITIONS, replicationFactor: 1, configs };
      const done = await metadata.submit({ kind: "createTopic", request, internal: true });
      // Created meanwhile by another node's request: fine.
      if (!done.ok && image.topic(OFFSETS_TOPIC) === undefined) {
        throw new OffsetsStoreError(`Cannot create ${OFFSETS_TOPIC}: ${done.error.message}`);
      }
    })().finally(() => (creating = null));
    await creating;
  };
  return {
    ensure: ensureTopic,
    get partitionCount() {
      return image.topic(OFFSETS_TOPIC)?.partitions.length ?? OFFSETS_TOPIC_PARTITIONS;
    },
    async append(partition, batch) {
      await ensureTopic();
      let result: { ok: true } | { ok: false; message: string | null };
      if (deps.appendAsLeader !== undefined) result = deps.appendAsLeader(partition, batch);
      else result = logs.append(OFFSETS_TOPIC, partition, batch, image.topic(OFFSETS_TOPIC)!.partitions[partition]!.leaderEpoch);
      if (!result.ok) throw new OffsetsStoreError(`Offset commit not stored: ${result.message ?? "not the leader"}`);
    },
    replay(visit, only = () => true) {
      const topic = image.topic(OFFSETS_TOPIC);
      if (topic === undefined) return [];
      const read: number[] = [];
      for (const p of topic.partitions) {
        if (!only(p.partition)) continue;
        const partitionLog = logs.get(OFFSETS_TOPIC, p.partition);
        if (partitionLog === undefined) continue;
        forEachStoredBatch(partitionLog, (batch) => visit(batch));
        read.push(p.partition);
      }
      return read;
    },
  };
}

/**
 * Kafka's offsets.* broker settings, which have no flag yet: read from the environment
 * only, for operators and tests. BROOK_OFFSETS_TOPIC_SEGMENT_BYTES is
 * offsets.topic.segment.bytes (used when __consumer_offsets is created);
 * BROOK_OFFSETS_RETENTION_MINUTES is offsets.retention.minutes (default 10080; fractions
 * are allowed, for tests); BROOK_OFFSETS_RETENTION_CHECK_INTERVAL_MS is
 * offsets.retention.check.interval.ms (default 600000).
 */
export interface OffsetsSettings {
  segmentBytes?: number;
  retentionMs: number;
  checkIntervalMs: number;
}

export function offsetsSettingsFromEnv(env: Record<string, string | undefined>): OffsetsSettings {
  const number = (name: string, min: number, integer: boolean): number | undefined => {
    const text = env[name];
    if (text === undefined || text === "") return undefined;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || (integer && !Number.isSafeInteger(value))) {
      const kind = integer ? "an integer" : "a number";
      throw new ConfigError(`${name} must be ${kind} of at least ${min}: ${text}`);
    }
    return value;
  };
  const segmentBytes = number("BROOK_OFFSETS_TOPIC_SEGMENT_BYTES", 14, true);
  const minutes = number("BROOK_OFFSETS_RETENTION_MINUTES", 0.001, false);
  const checkIntervalMs = number("BROOK_OFFSETS_RETENTION_CHECK_INTERVAL_MS", 1, true);
  return {
    ...(segmentBytes === undefined ? {} : { segmentBytes }),
    retentionMs: minutes === undefined ? OFFSETS_RETENTION_MS_DEFAULT : Math.round(minutes * 60_000),
    checkIntervalMs: checkIntervalMs ?? OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
  };
}
