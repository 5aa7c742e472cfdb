/**
 * The little of Kafka's ConsumerProtocol the broker reads. Member metadata and
 * assignments are opaque bytes to the coordinator, except that OffsetDelete must know
 * which topics a consumer group subscribes to (GROUP_SUBSCRIBED_TO_TOPIC).
 *
 * Subscription, every version starts with the v0 layout (Kafka parses v0 as the prefix
 * of all versions, so new versions never break the broker):
 *   version int16, topics array (int32 count, then int16-length UTF-8 strings),
 *   user_data nullable bytes, then fields of later versions (owned partitions, ...).
 */
import { Reader } from "../protocol/reader.ts";

/** The subscribed topic names, or null when the bytes are not a subscription. */
export function subscriptionTopics(metadata: Uint8Array): string[] | null {
  const reader = new Reader(metadata);
  const version = reader.int16();
  if (reader.failed || version < 0) return null;
  const count = reader.int32();
  // Each topic takes at least its 2-byte length, which bounds a hostile count.
  if (reader.failed || count < 0 || count * 2 > reader.remaining) return null;
  const topics: string[] = [];
  for (let i = 0; i < count; i++) {
    const length = reader.int16();
    if (length < 0) return null;
    const topic = reader.utf8(length);
    if (reader.failed) return null;
    topics.push(topic);
  }
  return topics;
}
