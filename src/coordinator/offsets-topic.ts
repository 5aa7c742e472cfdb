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
import { ErrorCode } from "../protocol/error-codes.ts";
import type { ReplicaManager } from "../replication/replica-manager.ts";
import type { LogManager } from "../storage/log-manager.ts";
import { forEachStoredBatch } from "../storage/replay.ts";
import type { OffsetsTopic } from "./log-offset-store.ts";
import {
  OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
  OFFSETS_RETENTION_MS_DEFAULT,
} from "./offset-store.ts";

export const OFFSETS_TOPIC = "__consumer_offsets";
export const OFFSETS_TOPIC_PARTITIONS = 50;
/** Kafka's offsets.topic.replication.factor default. */
export const OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT = 3;
/** Kafka's offsets.topic.segment.bytes default. */
export const OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT = 100 * 1024 * 1024;

function offsetsTopicConfigs(segmentBytes: number): Array<{ name: string; value: string }> {
  return [
    { name: "cleanup.policy", value: "compact" },
    { name: "segment.bytes", value: String(segmentBytes) },
  ];
}

/** Kafka's offsets.commit.timeout.ms: how long a commit waits for the in-sync replicas. */
export const OFFSETS_COMMIT_TIMEOUT_MS = 5000;

export class OffsetsStoreError extends Error {
  override name = "OffsetsStoreError";
  /** True when this node does not lead the partition (the client finds the coordinator again). */
  readonly notLeader: boolean;

  constructor(message: string, notLeader = false) {
    super(message);
    this.notLeader = notLeader;
  }
}

export interface OffsetsTopicDeps {
  image: MetadataImage;
  metadata: MetadataWriter;
  logs: LogManager;
  /**
   * The replica manager in a node: commits are appended on the partition's leader with
   * acks=all and wait for the in-sync replicas, as Kafka writes them. Without it (unit
   * tests) the log itself takes them.
   */
  replicas?: Pick<ReplicaManager, "appendAsLeader" | "waitForCommit">;
  /** offsets.topic.segment.bytes (OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT); tests shrink it. */
  segmentBytes?: number;
  /**
   * offsets.topic.replication.factor (OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT): the
   * topic gets this many replicas, or as many as there are live brokers when it is
   * created if fewer.
   */
  replicationFactor?: number;
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
      const wanted = deps.replicationFactor ?? OFFSETS_TOPIC_REPLICATION_FACTOR_DEFAULT;
      const replicationFactor = Math.max(1, Math.min(wanted, image.liveBrokers().length));
      const request = {
        name: OFFSETS_TOPIC,
        numPartitions: OFFSETS_TOPIC_PARTITIONS,
        replicationFactor,
        configs,
      };
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
      const replicas = deps.replicas;
      if (replicas === undefined) {
        const result = logs.append(
          OFFSETS_TOPIC,
          partition,
          batch,
          image.topic(OFFSETS_TOPIC)!.partitions[partition]!.leaderEpoch,
        );
        if (!result.ok) throw new OffsetsStoreError(`Offset commit not stored: ${result.message}`);
        return;
      }
      const appended = replicas.appendAsLeader(OFFSETS_TOPIC, partition, batch, -1);
      if (!appended.ok) {
        const notLeader =
          "errorCode" in appended && appended.errorCode === ErrorCode.NOT_LEADER_OR_FOLLOWER;
        throw new OffsetsStoreError(
          `Offset commit not stored: ${appended.message ?? "not the leader"}`,
          notLeader,
        );
      }
      const code = await replicas.waitForCommit(
        OFFSETS_TOPIC,
        partition,
        appended.lastOffset + 1,
        OFFSETS_COMMIT_TIMEOUT_MS,
      );
      if (code !== ErrorCode.NONE) {
        const notLeader = code === ErrorCode.NOT_LEADER_OR_FOLLOWER;
        throw new OffsetsStoreError(
          `Offset commit not confirmed by the in-sync replicas (error code ${code})`,
          notLeader,
        );
      }
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
 * offsets.topic.segment.bytes and BROOK_OFFSETS_TOPIC_REPLICATION_FACTOR is
 * offsets.topic.replication.factor (both used when __consumer_offsets is created);
 * BROOK_OFFSETS_RETENTION_MINUTES is offsets.retention.minutes (default 10080; fractions
 * are allowed, for tests); BROOK_OFFSETS_RETENTION_CHECK_INTERVAL_MS is
 * offsets.retention.check.interval.ms (default 600000).
 */
export interface OffsetsSettings {
  segmentBytes?: number;
  replicationFactor?: number;
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
  const replicationFactor = number("BROOK_OFFSETS_TOPIC_REPLICATION_FACTOR", 1, true);
  const minutes = number("BROOK_OFFSETS_RETENTION_MINUTES", 0.001, false);
  const checkIntervalMs = number("BROOK_OFFSETS_RETENTION_CHECK_INTERVAL_MS", 1, true);
  return {
    ...(segmentBytes === undefined ? {} : { segmentBytes }),
    ...(replicationFactor === undefined ? {} : { replicationFactor }),
    retentionMs:
      minutes === undefined ? OFFSETS_RETENTION_MS_DEFAULT : Math.round(minutes * 60_000),
    checkIntervalMs: checkIntervalMs ?? OFFSETS_RETENTION_CHECK_INTERVAL_MS_DEFAULT,
  };
}
