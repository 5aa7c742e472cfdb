/**
 * @module
 * What the benchmark sends: message values, RecordBatch v2 batches (uncompressed or
 * lz4) and pre-encoded request frames. Shared by the load generator (which sends them)
 * and the null broker (which serves the same batches from memory for fetch).
 *
 * Values are seeded pseudo-text (words from a small vocabulary) rather than one repeated
 * byte, so lz4 compresses them about as much as it compresses log lines (≈2x), not 100x.
 *
 * Batches are encoded here rather than with `src/protocol/record-batch-builder.ts`
 * because the builder has no lz4 and does not say where each value sits; the latency
 * bench patches a send timestamp into every value. `workload.test.ts` checks that an
 * uncompressed batch from here is byte-identical to the builder's.
 */
import { Buffer } from "node:buffer";
import { lz4 } from "../../src/protocol/native-codecs.ts";
import { encode } from "../../src/protocol/codec.ts";
import { FetchRequest, ProduceRequest } from "../../src/protocol/generated/index.ts";
import { RequestHeader } from "../../src/protocol/generated/request-header.ts";
import { requestHeaderVersion } from "../../src/protocol/headers.ts";
import type { MessageSchema } from "../../src/protocol/schema.ts";
import { Writer } from "../../src/protocol/writer.ts";
import {
  ATTRIBUTES_AT,
  BASE_TIMESTAMP_AT,
  BATCH_HEADER_BYTES,
  BATCH_LENGTH_AT,
  Compression,
  CRC_AT,
  LAST_OFFSET_DELTA_AT,
  LOG_OVERHEAD_BYTES,
  MAGIC_AT,
  MAGIC_V2,
  MAX_TIMESTAMP_AT,
  PARTITION_LEADER_EPOCH_AT,
  PRODUCER_EPOCH_AT,
  PRODUCER_ID_AT,
  BASE_SEQUENCE_AT,
  RECORD_COUNT_AT,
  computeBatchCrc,
} from "../../src/protocol/record-batch.ts";
import { assert } from "../../src/util/assert.ts";

export type BenchCompression = "none" | "lz4";

/** The versions the load generator speaks: what Kafka 2.8+ clients send. */
export const PRODUCE_VERSION = 9;
export const FETCH_VERSION = 12;
export const METADATA_VERSION = 9;
/** Correlation id position in a request frame: length, api key, api version. */
export const CORRELATION_ID_AT = 4 + 2 + 2;
export const FRAME_LENGTH_BYTES = 4;
/** The broker's default max.message.bytes (Kafka's 1048588): a batch may not be larger. */
export const BATCH_BYTES_MAX = 1024 * 1024;

/** Deterministic LCG: the same seed gives the same values in every process. */
export function seeded(seed: number): (bound: number) => number {
  let state = seed >>> 0;
  return (bound) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 4294967296) * bound);
  };
}

const VOCABULARY_WORDS = 512;

function vocabulary(random: (bound: number) => number): string[] {
  const letters = "abcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from({ length: VOCABULARY_WORDS }, () => {
    const length = 2 + random(9);
    let word = "";
    for (let i = 0; i < length; i++) word += letters[random(letters.length)];
    return word;
  });
}

/** `count` values of exactly `bytes` bytes each, seeded pseudo-text. */
export function messageValues(count: number, bytes: number, seed = 1): Buffer[] {
  assert(count > 0, "Value count is not positive");
  assert(bytes > 0, "Value size is not positive");
  const random = seeded(seed);
  const words = vocabulary(random);
  const values: Buffer[] = [];
  for (let v = 0; v < count; v++) {
    let text = "";
    while (text.length < bytes)
      text += words[random(words.length)] + (random(12) === 0 ? "\n" : " ");
    values.push(Buffer.from(text.slice(0, bytes), "latin1"));
  }
  return values;
}

/** Unsigned varint of a zigzag-encoded non-negative or negative safe integer. */
function writeVarint(target: Buffer, at: number, value: number): number {
  let raw = value >= 0 ? value * 2 : -value * 2 - 1;
  while (raw >= 0x80) {
    target[at++] = (raw % 0x80) | 0x80;
    raw = Math.floor(raw / 0x80);
  }
  target[at++] = raw;
  return at;
}

function varintBytes(value: number): number {
  let raw = value >= 0 ? value * 2 : -value * 2 - 1;
  let bytes = 1;
  while (raw >= 0x80) {
    raw = Math.floor(raw / 0x80);
    bytes++;
  }
  return bytes;
}

export interface EncodedBatch {
  /** A whole RecordBatch v2 with a valid CRC. */
  batch: Buffer;
  records: number;
  /** Sum of the value sizes: what the MB/s figures count. */
  payloadBytes: number;
  /** For uncompressed batches, where each value starts (for patching); null for lz4. */
  valueAt: number[] | null;
}

/**
 * One batch of keyless records with the given values, offset deltas 0.., timestamp
 * deltas 0, no headers, producer id -1 (not idempotent), like a plain librdkafka batch.
 */
export function encodeBatch(
  values: readonly Uint8Array[],
  baseTimestamp: number,
  compression: BenchCompression,
): EncodedBatch {
  assert(values.length > 0, "A batch needs at least one record");
  let recordsBytes = 0;
  let payloadBytes = 0;
  const bodies: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const valueBytes = values[i]!.byteLength;
    // attributes, timestampDelta 0, offsetDelta i, key null (-1), value, headers 0.
    const body = 1 + 1 + varintBytes(i) + 1 + varintBytes(valueBytes) + valueBytes + 1;
    bodies.push(body);
    recordsBytes += varintBytes(body) + body;
    payloadBytes += valueBytes;
  }
  const records = Buffer.allocUnsafe(recordsBytes);
  const valueAt: number[] = [];
  let at = 0;
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!;
    at = writeVarint(records, at, bodies[i]!);
    records[at++] = 0;
    at = writeVarint(records, at, 0);
    at = writeVarint(records, at, i);
    at = writeVarint(records, at, -1);
    at = writeVarint(records, at, value.byteLength);
    valueAt.push(BATCH_HEADER_BYTES + at);
    records.set(value, at);
    at += value.byteLength;
    at = writeVarint(records, at, 0);
  }
  assert(at === recordsBytes, "Records encoded to an unexpected size");
  const payload = compression === "lz4" ? lz4().compressFrameSync(records) : records;
  const size = BATCH_HEADER_BYTES + payload.byteLength;
  const batch = Buffer.alloc(size);
  batch.writeBigInt64BE(0n, 0);
  batch.writeInt32BE(size - LOG_OVERHEAD_BYTES, BATCH_LENGTH_AT);
  batch.writeInt32BE(-1, PARTITION_LEADER_EPOCH_AT);
  batch.writeInt8(MAGIC_V2, MAGIC_AT);
  batch.writeInt16BE(Compression[compression], ATTRIBUTES_AT);
  batch.writeInt32BE(values.length - 1, LAST_OFFSET_DELTA_AT);
  batch.writeBigInt64BE(BigInt(baseTimestamp), BASE_TIMESTAMP_AT);
  batch.writeBigInt64BE(BigInt(baseTimestamp), MAX_TIMESTAMP_AT);
  batch.writeBigInt64BE(-1n, PRODUCER_ID_AT);
  batch.writeInt16BE(-1, PRODUCER_EPOCH_AT);
  batch.writeInt32BE(-1, BASE_SEQUENCE_AT);
  batch.writeInt32BE(values.length, RECORD_COUNT_AT);
  batch.set(payload, BATCH_HEADER_BYTES);
  sealBatch(batch);
  return {
    batch,
    records: values.length,
    payloadBytes,
    valueAt: compression === "none" ? valueAt : null,
  };
}

/** Recomputes the CRC after the batch's bytes from the attributes on were changed. */
export function sealBatch(batch: Buffer): void {
  batch.writeUInt32BE(computeBatchCrc(batch, 0, batch.byteLength), CRC_AT);
}

/** Sets base and max timestamp (call sealBatch afterwards). */
export function setBatchTimestamp(batch: Buffer, timestampMs: number): void {
  batch.writeBigInt64BE(BigInt(timestampMs), BASE_TIMESTAMP_AT);
  batch.writeBigInt64BE(BigInt(timestampMs), MAX_TIMESTAMP_AT);
}

/** Per-record framing bytes around a value of this size in one of our batches. */
function recordOverheadBytes(valueBytes: number, index: number): number {
  const body = 1 + 1 + varintBytes(index) + 1 + varintBytes(valueBytes) + valueBytes + 1;
  return varintBytes(body) + body - valueBytes;
}

/** How many records of `messageBytes` fill an uncompressed batch of about `batchBytes`. */
export function recordsPerBatch(messageBytes: number, batchBytes: number): number {
  const perRecord = messageBytes + recordOverheadBytes(messageBytes, 1000);
  return Math.max(
    1,
    Math.floor((Math.min(batchBytes, BATCH_BYTES_MAX) - BATCH_HEADER_BYTES) / perRecord),
  );
}

export interface ThroughputBatchOptions {
  messageBytes: number;
  batchBytes: number;
  compression: BenchCompression;
  seed?: number;
}

/** The one batch a throughput run sends again and again. */
export function throughputBatch(options: ThroughputBatchOptions): EncodedBatch {
  const count = recordsPerBatch(options.messageBytes, options.batchBytes);
  const values = messageValues(count, options.messageBytes, options.seed ?? 1);
  return encodeBatch(values, Date.now(), options.compression);
}

/** A request frame: 4-byte length, request header, body. */
export function requestFrame<T>(
  schema: MessageSchema<T>,
  version: number,
  body: T,
  correlationId = 0,
  clientId = "brook-bench",
): Buffer {
  const writer = new Writer(64 * 1024);
  writer.int32(0);
  const header = {
    requestApiKey: schema.apiKey,
    requestApiVersion: version,
    correlationId,
    clientId,
  };
  encode(RequestHeader, requestHeaderVersion(schema, version), header, writer);
  encode(schema, version, body as never, writer);
  const frame = writer.toBuffer();
  frame.writeInt32BE(frame.byteLength - FRAME_LENGTH_BYTES, 0);
  assert(
    frame.readInt32BE(CORRELATION_ID_AT) === correlationId,
    "Correlation id is not where expected",
  );
  return frame;
}

export interface ProduceFrameOptions {
  topic: string;
  partitions: readonly number[];
  /** Records blob sent to every partition (the broker stamps its own copy). */
  records: Uint8Array;
  acks: number;
  timeoutMs?: number;
}

export function produceFrame(options: ProduceFrameOptions): Buffer {
  return requestFrame(ProduceRequest, PRODUCE_VERSION, {
    transactionalId: null,
    acks: options.acks,
    timeoutMs: options.timeoutMs ?? 30_000,
    topicData: [
      {
        name: options.topic,
        partitionData: options.partitions.map((index) => ({ index, records: options.records })),
      },
    ],
  });
}

export interface FetchPosition {
  partition: number;
  offset: number;
}

export interface FetchFrameOptions {
  topic: string;
  positions: readonly FetchPosition[];
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  partitionMaxBytes: number;
}

export function fetchFrame(options: FetchFrameOptions, correlationId: number): Buffer {
  return requestFrame(
    FetchRequest,
    FETCH_VERSION,
    {
      clusterId: null,
      replicaId: -1,
      replicaState: { replicaId: -1, replicaEpoch: -1 },
      maxWaitMs: options.maxWaitMs,
      minBytes: options.minBytes,
      maxBytes: options.maxBytes,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [
        {
          topic: options.topic,
          topicId: "00000000-0000-0000-0000-000000000000",
          partitions: options.positions.map((position) => ({
            partition: position.partition,
            currentLeaderEpoch: -1,
            fetchOffset: position.offset,
            lastFetchedEpoch: -1,
            logStartOffset: -1,
            partitionMaxBytes: options.partitionMaxBytes,
            replicaDirectoryId: "00000000-0000-0000-0000-000000000000",
          })),
        },
      ],
      forgottenTopicsData: [],
      rackId: "",
    },
    correlationId,
  );
}
