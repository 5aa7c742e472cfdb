/**
 * The log-backed `OffsetsTopic`: `__consumer_offsets` as an internal, compacted topic of
 * this node, created through the metadata log on first use, with Kafka's defaults
 * (offsets.topic.num.partitions 50, offsets.topic.segment.bytes 100 MiB).
 */
import type { MetadataImage } from "../cluster/metadata-image.ts";
import { type MetadataWriter, planCreateTopic } from "../cluster/topics.ts";
import type { LogManager } from "../storage/log-manager.ts";
import { forEachStoredBatch } from "../storage/replay.ts";
import type { OffsetsTopic } from "./log-offset-store.ts";

export const OFFSETS_TOPIC = "__consumer_offsets";
export const OFFSETS_TOPIC_PARTITIONS = 50;
const OFFSETS_TOPIC_CONFIGS = [
  { name: "cleanup.policy", value: "compact" },
  { name: "segment.bytes", value: String(100 * 1024 * 1024) },
];

export class OffsetsStoreError extends Error {
  override name = "OffsetsStoreError";
}

export function logOffsetsTopic(deps: { image: MetadataImage; metadata: MetadataWriter; logs: LogManager }): OffsetsTopic {
  const { image, metadata, logs } = deps;
  let creating: Promise<void> | null = null;
  const ensureTopic = async (): Promise<void> => {
    if (image.topic(OFFSETS_TOPIC) !== undefined) return;
    creating ??= (async () => {
      const plan = planCreateTopic(
        image,
        { name: OFFSETS_TOPIC, numPartitions: OFFSETS_TOPIC_PARTITIONS, replicationFactor: 1, configs: OFFSETS_TOPIC_CONFIGS },
        { numPartitions: OFFSETS_TOPIC_PARTITIONS, replicationFactor: 1 },
        true,
      );
      if (!plan.ok) throw new OffsetsStoreError(`Cannot create ${OFFSETS_TOPIC}: ${plan.error.message}`);
      await metadata.append(plan.records);
    })().finally(() => (creating = null));
    await creating;
  };
  return {
    get partitionCount() {
      return image.topic(OFFSETS_TOPIC)?.partitions.length ?? OFFSETS_TOPIC_PARTITIONS;
    },
    async append(partition, batch) {
      await ensureTopic();
      const leaderEpoch = image.topic(OFFSETS_TOPIC)!.partitions[partition]!.leaderEpoch;
      const result = logs.append(OFFSETS_TOPIC, partition, batch, leaderEpoch);
      if (!result.ok) throw new OffsetsStoreError(`Offset commit not stored: ${result.message}`);
    },
    replay(visit) {
      const topic = image.topic(OFFSETS_TOPIC);
      if (topic === undefined) return;
      for (const p of topic.partitions) {
        const partitionLog = logs.get(OFFSETS_TOPIC, p.partition);
        if (partitionLog !== undefined) forEachStoredBatch(partitionLog, (batch) => visit(batch));
      }
    },
  };
}
