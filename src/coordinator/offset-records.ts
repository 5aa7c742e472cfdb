/**
 * Committed offsets as records of `__consumer_offsets`, in Kafka's own layout so that
 * Kafka's tools would read them: key version 1 (group, topic, partition), value version
 * 3 (offset, leader epoch, metadata, commit timestamp), or version 1 (no leader epoch, an
 * expire timestamp) for a commit with an explicit retention, as Kafka writes; a null
 * value deletes (a tombstone, which compaction removes in time).
 *
 * Group metadata: key version 2 (group), value version 3 (protocol type, generation,
 * protocol, leader, state timestamp, members with their subscription and assignment),
 * written when a generation's assignment is stored, when a group becomes Empty and when
 * a static member takes a new member id; a tombstone when the group goes. Values
 * version 0-3 are read (version 4, Kafka's flexible one, is not written by Kafka for
 * classic groups before 4.0's downgrade path; it is rejected as unknown here).
 */
import { Buffer } from "node:buffer";
import { Reader } from "../protocol/reader.ts";
import type { GroupSnapshot, MemberSnapshot } from "./group-snapshot.ts";
import type { OffsetCommitEntry, TopicPartition } from "./offset-store.ts";

const OFFSET_KEY_VERSION = 1;
const GROUP_METADATA_KEY_VERSION = 2;
const OFFSET_VALUE_VERSION = 3;
const GROUP_METADATA_VALUE_VERSION = 3;

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

export function groupMetadataKey(groupId: string): Buffer {
  const version = Buffer.allocUnsafe(2);
  version.writeInt16BE(GROUP_METADATA_KEY_VERSION, 0);
  return Buffer.concat([version, stringBytes(groupId)]);
}

export function groupMetadataValue(group: GroupSnapshot): Buffer {
  const parts: Buffer[] = [int16(GROUP_METADATA_VALUE_VERSION), stringBytes(group.protocolType)];
  parts.push(int32(group.generationId), nullableStringBytes(group.protocolName));
  parts.push(nullableStringBytes(group.leaderId), int64(group.stateTimestampMs));
  parts.push(int32(group.members.length));
  for (const member of group.members) {
    parts.push(stringBytes(member.memberId), nullableStringBytes(member.groupInstanceId));
    parts.push(stringBytes(member.clientId), stringBytes(member.clientHost));
    parts.push(int32(member.rebalanceTimeoutMs), int32(member.sessionTimeoutMs));
    parts.push(bytesField(member.subscription), bytesField(member.assignment));
  }
  return Buffer.concat(parts);
}

function int16(value: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeInt16BE(value, 0);
  return out;
}

function int32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeInt32BE(value, 0);
  return out;
}

function int64(value: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeBigInt64BE(BigInt(value), 0);
  return out;
}

function nullableStringBytes(text: string | null): Buffer {
  return text === null ? int16(-1) : stringBytes(text);
}

function bytesField(bytes: Uint8Array): Buffer {
  return Buffer.concat([
    int32(bytes.byteLength),
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  ]);
}

export type OffsetRecord =
  | { kind: "commit"; groupId: string; entry: OffsetCommitEntry }
  | { kind: "delete"; groupId: string; partition: TopicPartition }
  | { kind: "group"; groupId: string; group: GroupSnapshot }
  | { kind: "groupDeleted"; groupId: string };

/** Parses one record; null when it is not one Brook or Kafka would write. */
export function parseOffsetRecord(
  key: Uint8Array | null,
  value: Uint8Array | null,
): OffsetRecord | null {
  if (key === null) return null;
  const keyReader = new Reader(key);
  const keyVersion = keyReader.int16();
  if (keyVersion === GROUP_METADATA_KEY_VERSION) return parseGroupRecord(keyReader, value);
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
    entry: {
      topic,
      partition,
      offset,
      leaderEpoch,
      metadata,
      commitTimestampMs,
      expireTimestampMs,
    },
  };
}

function parseGroupRecord(keyReader: Reader, value: Uint8Array | null): OffsetRecord | null {
  const groupId = keyReader.utf8(keyReader.int16());
  if (!keyReader.complete()) return null;
  if (value === null) return { kind: "groupDeleted", groupId };
  const reader = new Reader(value);
  const version = reader.int16();
  if (version < 0 || version > GROUP_METADATA_VALUE_VERSION) return null;
  const protocolType = reader.utf8(reader.int16());
  const generationId = reader.int32();
  const protocolName = nullableString(reader);
  const leaderId = nullableString(reader);
  // Version 2 added the state timestamp, 1 the rebalance timeout, 3 the instance id.
  const stateTimestampMs = version >= 2 ? reader.int64() : -1;
  const count = reader.int32();
  if (reader.failed || count < 0 || count > reader.remaining) return null;
  const members: MemberSnapshot[] = [];
  for (let i = 0; i < count; i++) {
    const memberId = reader.utf8(reader.int16());
    const groupInstanceId = version >= 3 ? nullableString(reader) : null;
    const clientId = reader.utf8(reader.int16());
    const clientHost = reader.utf8(reader.int16());
    const rebalanceTimeoutMs = version >= 1 ? reader.int32() : -1;
    const sessionTimeoutMs = reader.int32();
    const subscription = new Uint8Array(reader.view(reader.int32()));
    const assignment = new Uint8Array(reader.view(reader.int32()));
    members.push({
      memberId,
      groupInstanceId,
      clientId,
      clientHost,
      // Before version 1 the session timeout was also the rebalance timeout.
      rebalanceTimeoutMs: rebalanceTimeoutMs < 0 ? sessionTimeoutMs : rebalanceTimeoutMs,
      sessionTimeoutMs,
      subscription,
      assignment,
    });
  }
  if (reader.failed) return null;
  const group = {
    groupId,
    protocolType,
    generationId,
    protocolName,
    leaderId,
    stateTimestampMs,
    members,
  };
  return { kind: "group", groupId, group };
}

function nullableString(reader: Reader): string | null {
  const length = reader.int16();
  return length < 0 ? null : reader.utf8(length);
}
