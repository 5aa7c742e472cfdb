/**
 * Committed offsets as records of `__consumer_offsets`, in Kafka's own layout so that
 * Kafka's tools would read them: key version 1 (group, topic, partition), value version
 * 3 (offset, leader epoch, metadata, commit timestamp), or version 1 (no leader epoch, an
 * expire timestamp) for a commit with an explicit retention, as Kafka writes; a null
 * value deletes (a tombstone, which compaction removes in time). Group metadata records
 * (key version 2) are recognised and skipped for now.
 */
import { Buffer } from "node:buffer";
import { Reader } from "../protocol/reader.ts";
import type { OffsetCommitEntry, TopicPartition } from "./offset-store.ts";

const OFFSET_KEY_VERSION = 1;
const GROUP_METADATA_KEY_VERSION = 2;
const OFFSET_VALUE_VERSION = 3;

/** Kafka's `Utils.abs(groupId.hashCode()) % partitions`: Java's String.hashCode over UTF-16. */
export function partitionForGroup(groupId: string, partitions: number): number {
  let hash = 0;
  for (let i = 0; i < groupId.length; i++) hash = (Math.imul(hash, 31) + groupId.charCodeAt(i)) | 0;
  return (hash & 0x7fffffff) % partitions;
}

function stringBytes(text: string): Buffer {
  const bytes = Buffer.from(text, "utf8");
  const out = Buffer.allocUnsafe(2 + bytes.length);
  out.writeInt16BE(bytes.length, 0);
  bytes.copy(out, 2);
  return out;
}

export function offsetKey(groupId: string, topic: string, partition: number): Buffer {
  const version = Buffer.allocUnsafe(2);
  version.writeInt16BE(OFFSET_KEY_VERSION, 0);
  const tail = Buffer.allocUnsafe(4);
  tail.writeInt32BE(partition, 0);
  return Buffer.concat([version, stringBytes(groupId), stringBytes(topic), tail]);
}

export function offsetValue(entry: OffsetCommitEntry): Buffer {
  // Kafka writes value version 1 for a commit with an explicit expire timestamp
  // (OffsetCommit v2-v4 retention): only that version carries one.
  if (entry.expireTimestampMs !== null) return offsetValueV1(entry, entry.expireTimestampMs);
  const head = Buffer.allocUnsafe(14);
  head.writeInt16BE(OFFSET_VALUE_VERSION, 0);
  head.writeBigInt64BE(BigInt(entry.offset), 2);
  head.writeInt32BE(entry.leaderEpoch, 10);
  const tail = Buffer.allocUnsafe(8);
  tail.writeBigInt64BE(BigInt(entry.commitTimestampMs), 0);
  return Buffer.concat([head, stringBytes(entry.metadata), tail]);
}

/** Value version 1: offset, metadata, commit timestamp, expire timestamp (no leader epoch). */
function offsetValueV1(entry: OffsetCommitEntry, expireTimestampMs: number): Buffer {
  const head = Buffer.allocUnsafe(10);
  head.writeInt16BE(1, 0);
  head.writeBigInt64BE(BigInt(entry.offset), 2);
  const tail = Buffer.allocUnsafe(16);
  tail.writeBigInt64BE(BigInt(entry.commitTimestampMs), 0);
  tail.writeBigInt64BE(BigInt(expireTimestampMs), 8);
  return Buffer.concat([head, stringBytes(entry.metadata), tail]);
}

export type OffsetRecord =
  | { kind: "commit"; groupId: string; entry: OffsetCommitEntry }
  | { kind: "delete"; groupId: string; partition: TopicPartition }
  | { kind: "other" };

/** Parses one record; null when it is not one Brook or Kafka would write. */
export function parseOffsetRecord(key: Uint8Array | null, value: Uint8Array | null): OffsetRecord | null {
  if (key === null) return null;
  const keyReader = new Reader(key);
  const keyVersion = keyReader.int16();
  if (keyVersion === GROUP_METADATA_KEY_VERSION) return { kind: "other" };
  if (keyVersion !== 0 && keyVersion !== OFFSET_KEY_VERSION) return null;
  const groupId = keyReader.utf8(keyReader.int16());
  const topic = keyReader.utf8(keyReader.int16());
  const partition = keyReader.int32();
  if (!keyReader.complete()) return null;
  if (value === null) return { kind: "delete", groupId, partition: { topic, partition } };
  const reader = new Reader(value);
  const version = reader.int16();
  const offset = reader.int64();
  // Value v3 added the leader epoch; v1 carried an expire timestamp after the commit time.
  const leaderEpoch = version >= 3 ? reader.int32() : -1;
  const metadata = reader.utf8(reader.int16());
  const commitTimestampMs = reader.int64();
  const expireTimestampMs = version === 1 ? reader.int64() : null;
  if (reader.failed || version < 0 || version > 4) return null;
  return {
    kind: "commit",
    groupId,
    entry: { topic, partition, offset, leaderEpoch, metadata, commitTimestampMs, expireTimestampMs },
  };
}
