/**
 * Snapshots of the metadata log. A snapshot is the image as records (`toRecords`),
 * encoded as JSON. A node that installs a snapshot over an image that already holds
 * something (it fell behind a compacted log) must not start from an empty image: the
 * log manager and the coordinator follow the image record by record. So the snapshot is
 * turned into the records that take the current image to the snapshot's state
 * (`recordsToReach`): topics that are gone are removed, configs that are gone are
 * cleared, everything else is written again (applying a record twice is harmless).
 */
import { MetadataImage, type MetadataRecord } from "./metadata-image.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeSnapshot(image: MetadataImage): Uint8Array {
  return encoder.encode(JSON.stringify(image.toRecords()));
}

export function decodeSnapshot(bytes: Uint8Array): MetadataRecord[] {
  const records: unknown = JSON.parse(decoder.decode(bytes));
  if (!Array.isArray(records)) throw new Error("Metadata snapshot is not a list of records");
  return records as MetadataRecord[];
}

/** Records that, applied to `current`, leave it equal to the image `snapshot` describes. */
export function recordsToReach(
  current: MetadataImage,
  snapshot: readonly MetadataRecord[],
): MetadataRecord[] {
  const target = new MetadataImage();
  for (const record of snapshot) target.apply(record);
  const records: MetadataRecord[] = [];
  for (const topic of current.topics()) {
    const kept = target.topicById(topic.topicId);
    if (kept === undefined || kept.name !== topic.name) {
      records.push({ type: "removeTopic", topicId: topic.topicId });
      continue;
    }
    for (const name of topic.configs.keys()) {
      if (!kept.configs.has(name))
        records.push({ type: "config", topicId: topic.topicId, name, value: null });
    }
  }
  for (const record of target.toRecords()) {
    if (record.type === "topic" && current.topicById(record.topicId)?.name === record.name)
      continue;
    records.push(record);
  }
  // A broker the snapshot has unfenced is unfenced here too.
  for (const broker of target.brokers()) {
    if (!broker.fenced && current.broker(broker.nodeId)?.fenced === true) {
      records.push({ type: "unfenceBroker", nodeId: broker.nodeId });
    }
  }
  return records;
}
