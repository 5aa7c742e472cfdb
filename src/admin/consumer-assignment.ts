/**
 * Reads a consumer's assigned partitions out of the ConsumerProtocol assignment bytes a
 * group leader hands out in SyncGroup, for `GET /v1/groups/:id`. The coordinator keeps
 * the bytes opaque; only the admin API looks inside. (The subscription side of the same
 * protocol is read in `src/coordinator/consumer-protocol.ts`.)
 *
 * ConsumerProtocolAssignment, every version starts with the v0 layout (Kafka parses
 * later versions as v0 plus trailing fields, so they never break this reader):
 *   version int16, assigned_partitions array (int32 count, then per topic an int16-length
 *   UTF-8 name and an int32 array of partitions), user_data nullable bytes, ...
 */
import { Reader } from "../protocol/reader.ts";

export interface AssignedTopic {
  readonly topic: string;
  readonly partitions: readonly number[];
}

/** [] for empty bytes (no assignment yet); null when the bytes are not an assignment. */
export function decodeConsumerAssignment(bytes: Uint8Array): AssignedTopic[] | null {
  if (bytes.byteLength === 0) return [];
  const reader = new Reader(bytes);
  const version = reader.int16();
  if (reader.failed || version < 0) return null;
  const topicCount = reader.int32();
  // Each topic takes at least 6 bytes (name length, partition count): bounds a hostile count.
  if (reader.failed || topicCount < 0 || topicCount * 6 > reader.remaining) return null;
  const topics: AssignedTopic[] = [];
  for (let t = 0; t < topicCount; t++) {
    const nameLength = reader.int16();
    if (nameLength < 0) return null;
    const topic = reader.utf8(nameLength);
    const partitionCount = reader.int32();
    if (reader.failed || partitionCount < 0 || partitionCount * 4 > reader.remaining) return null;
    const partitions: number[] = [];
    for (let p = 0; p < partitionCount; p++) partitions.push(reader.int32());
    if (reader.failed) return null;
    topics.push({ topic, partitions });
  }
  return topics;
}
