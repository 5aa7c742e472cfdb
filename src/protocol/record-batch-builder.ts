/**
 * @module
 * Builds RecordBatch v2 bytes with a valid CRC: for tests across the repository and for
 * the broker's own small internal batches (metadata). Clients build client batches;
 * the broker's produce path never uses this. Allocates per record, on purpose: clarity
 * over speed.
 */
import { Buffer } from "node:buffer";
import { gzipSync } from "node:zlib";
import { assert } from "../util/assert.ts";
import {
  ATTRIBUTES_AT,
  BASE_OFFSET_AT,
  BASE_SEQUENCE_AT,
  BASE_TIMESTAMP_AT,
  BATCH_HEADER_BYTES,
  BATCH_LENGTH_AT,
  Compression,
  CONTROL_BIT,
  CRC_AT,
  LAST_OFFSET_DELTA_AT,
  LOG_OVERHEAD_BYTES,
  MAGIC_AT,
  MAGIC_V2,
  MAX_TIMESTAMP_AT,
  PARTITION_LEADER_EPOCH_AT,
  PRODUCER_EPOCH_AT,
  PRODUCER_ID_AT,
  RECORD_COUNT_AT,
  TIMESTAMP_TYPE_BIT,
  TRANSACTIONAL_BIT,
  computeBatchCrc,
  type TimestampType,
} from "./record-batch.ts";

export type Bytes = Uint8Array | string;

export interface BuildHeader {
  key: string;
  value: Bytes | null;
}

export interface BuildRecord {
  key?: Bytes | null;
  value?: Bytes | null;
  headers?: BuildHeader[];
  /** Milliseconds after baseTimestamp; default 0. */
  timestampDelta?: number;
  /** Default: the record's index in the batch. */
  offsetDelta?: number;
}

export interface BuildBatchOptions {
  records: BuildRecord[];
  /** Timestamp of the first record, in ms since the epoch. */
  baseTimestamp: number;
  /** "gzip" compresses the records with node:zlib, for tests of compressed batches. */
  compression?: "none" | "gzip";
  baseOffset?: number;
  partitionLeaderEpoch?: number;
  /** Default: baseTimestamp + the largest timestampDelta. */
  maxTimestamp?: number;
  timestampType?: TimestampType;
  transactional?: boolean;
  control?: boolean;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
}

const encoder = new TextEncoder();

function toBytes(value: Bytes): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : value;
}

/** Writes Kafka varints into a growing list of byte chunks. */
class ByteSink {
  readonly chunks: Uint8Array[] = [];
  size = 0;

  bytes(value: Uint8Array): void {
    this.chunks.push(value);
    this.size += value.byteLength;
  }

  int8(value: number): void {
    this.bytes(Uint8Array.of(value & 0xff));
  }

  /** Zigzag varint; exact for any safe integer, so it serves varlong too. */
  varlong(value: number): void {
    assert(Number.isSafeInteger(value), `Varint value is not a safe integer: ${value}`);
    let raw = value >= 0 ? value * 2 : -value * 2 - 1;
    const out: number[] = [];
    while (raw >= 0x80) {
      out.push((raw % 0x80) | 0x80);
      raw = Math.floor(raw / 0x80);
    }
    out.push(raw);
    this.bytes(Uint8Array.from(out));
  }

  nullable(value: Bytes | null | undefined): void {
    if (value === null || value === undefined) {
      this.varlong(-1);
      return;
    }
    const bytes = toBytes(value);
    this.varlong(bytes.byteLength);
    this.bytes(bytes);
  }

  concat(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

function encodeRecord(record: BuildRecord, index: number): Buffer {
  const body = new ByteSink();
  body.int8(0);
  body.varlong(record.timestampDelta ?? 0);
  body.varlong(record.offsetDelta ?? index);
  body.nullable(record.key);
  body.nullable(record.value);
  const headers = record.headers ?? [];
  body.varlong(headers.length);
  for (const header of headers) {
    body.nullable(header.key);
    body.nullable(header.value);
  }
  const framed = new ByteSink();
  framed.varlong(body.size);
  framed.bytes(body.concat());
  return framed.concat();
}

/** One RecordBatch v2 with a valid CRC. */
export function buildBatch(options: BuildBatchOptions): Buffer {
  const records = options.records;
  assert(records.length > 0, "A batch needs at least one record");
  const plain = Buffer.concat(records.map((record, i) => encodeRecord(record, i)));
  const compression = options.compression ?? "none";
  const payload = compression === "gzip" ? gzipSync(plain) : plain;
  let maxDelta = 0;
  for (const record of records) maxDelta = Math.max(maxDelta, record.timestampDelta ?? 0);
  const last = records[records.length - 1]!;
  const lastOffsetDelta = last.offsetDelta ?? records.length - 1;

  const size = BATCH_HEADER_BYTES + payload.byteLength;
  const batch = Buffer.alloc(size);
  let attributes = Compression[compression];
  if (options.timestampType === "LogAppendTime") attributes |= TIMESTAMP_TYPE_BIT;
  if (options.transactional === true) attributes |= TRANSACTIONAL_BIT;
  if (options.control === true) attributes |= CONTROL_BIT;

  batch.writeBigInt64BE(BigInt(options.baseOffset ?? 0), BASE_OFFSET_AT);
  batch.writeInt32BE(size - LOG_OVERHEAD_BYTES, BATCH_LENGTH_AT);
  batch.writeInt32BE(options.partitionLeaderEpoch ?? -1, PARTITION_LEADER_EPOCH_AT);
  batch.writeInt8(MAGIC_V2, MAGIC_AT);
  batch.writeInt16BE(attributes, ATTRIBUTES_AT);
  batch.writeInt32BE(lastOffsetDelta, LAST_OFFSET_DELTA_AT);
  batch.writeBigInt64BE(BigInt(options.baseTimestamp), BASE_TIMESTAMP_AT);
  const maxTimestamp = options.maxTimestamp ?? options.baseTimestamp + maxDelta;
  batch.writeBigInt64BE(BigInt(maxTimestamp), MAX_TIMESTAMP_AT);
  batch.writeBigInt64BE(BigInt(options.producerId ?? -1), PRODUCER_ID_AT);
  batch.writeInt16BE(options.producerEpoch ?? -1, PRODUCER_EPOCH_AT);
  batch.writeInt32BE(options.baseSequence ?? -1, BASE_SEQUENCE_AT);
  batch.writeInt32BE(records.length, RECORD_COUNT_AT);
  batch.set(payload, BATCH_HEADER_BYTES);
  batch.writeUInt32BE(computeBatchCrc(batch, 0, size), CRC_AT);
  return batch;
}

/** Concatenates batches into one records blob, as a produce request carries them. */
export function concatBatches(batches: readonly Uint8Array[]): Buffer {
  return Buffer.concat(batches);
}
