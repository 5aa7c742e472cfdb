/**
 * @module
 * RecordBatch v2 (magic 2) header view: field positions, typed getters, the in-place
 * rewrites the broker makes (offsets, leader epoch, LogAppendTime) and validation of a
 * produce request's records blob.
 *
 * The broker works per batch, never per record, on client data (docs/architecture.md,
 * principle 3): it reads the 61-byte header, checks the CRC, stamps `baseOffset` and
 * `partitionLeaderEpoch` (outside the CRC) and stores the bytes as received. Compressed
 * batches are never decompressed. Uncompressed batches may be walked record by record
 * without allocation to check the declared record count and find a record by timestamp.
 *
 * Layout (big-endian), Kafka's DefaultRecordBatch:
 *
 * | at | field                 | type   |
 * | -- | --------------------- | ------ |
 * | 0  | baseOffset            | int64  |
 * | 8  | batchLength           | int32  | bytes after this field: total = 12 + batchLength
 * | 12 | partitionLeaderEpoch  | int32  |
 * | 16 | magic                 | int8   | 2
 * | 17 | crc                   | uint32 | CRC-32C of bytes [21, end)
 * | 21 | attributes            | int16  | bits 0-2 compression, 3 timestampType, 4 txn, 5 control
 * | 23 | lastOffsetDelta       | int32  |
 * | 27 | baseTimestamp         | int64  |
 * | 35 | maxTimestamp          | int64  |
 * | 43 | producerId            | int64  |
 * | 51 | producerEpoch         | int16  |
 * | 53 | baseSequence          | int32  |
 * | 57 | recordCount           | int32  |
 * | 61 | records               |        |
 *
 * int64 fields are read as JS numbers: offsets and millisecond timestamps stay far below
 * 2^53, and producer ids of -1 read back as -1.
 */
import { crc32c } from "./crc32c.ts";
import { assert } from "../util/assert.ts";

export const BASE_OFFSET_AT = 0;
export const BATCH_LENGTH_AT = 8;
export const PARTITION_LEADER_EPOCH_AT = 12;
export const MAGIC_AT = 16;
export const CRC_AT = 17;
export const ATTRIBUTES_AT = 21;
export const LAST_OFFSET_DELTA_AT = 23;
export const BASE_TIMESTAMP_AT = 27;
export const MAX_TIMESTAMP_AT = 35;
export const PRODUCER_ID_AT = 43;
export const PRODUCER_EPOCH_AT = 51;
export const BASE_SEQUENCE_AT = 53;
export const RECORD_COUNT_AT = 57;
export const RECORDS_AT = 61;

/** Size of the fixed batch header; the smallest possible batch (no records) has this size. */
export const BATCH_HEADER_BYTES = 61;
/** baseOffset and batchLength: the bytes that batchLength does not count. */
export const LOG_OVERHEAD_BYTES = 12;
/** Bytes needed to read the magic byte, which sits at the same place in every format. */
export const BATCH_MAGIC_PREFIX_BYTES = MAGIC_AT + 1;
/** The CRC covers the batch from the attributes to the end. */
export const CRC_FROM_AT = ATTRIBUTES_AT;
export const MAGIC_V2 = 2;

export const COMPRESSION_MASK = 0x07;
export const TIMESTAMP_TYPE_BIT = 0x08;
export const TRANSACTIONAL_BIT = 0x10;
export const CONTROL_BIT = 0x20;

/** Compression codes in attributes bits 0-2. */
export const Compression = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
export type CompressionName = keyof typeof Compression;
export const COMPRESSION_CODE_MAX = 4;

export type TimestampType = "CreateTime" | "LogAppendTime";
/** Kafka's RecordBatch.NO_TIMESTAMP. */
export const NO_TIMESTAMP = -1;

/** The smallest record: length, attributes, timestampDelta, offsetDelta, key, value, headers. */
const RECORD_BYTES_MIN = 7;
const TWO_POW_32 = 4294967296;

// ---------------------------------------------------------------------------------------
// Primitive big-endian access without a DataView per call.

function int8At(buf: Uint8Array, i: number): number {
  return (buf[i]! << 24) >> 24;
}

function int16At(buf: Uint8Array, i: number): number {
  return (((buf[i]! << 8) | buf[i + 1]!) << 16) >> 16;
}

function int32At(buf: Uint8Array, i: number): number {
  return (buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!;
}

function uint32At(buf: Uint8Array, i: number): number {
  return int32At(buf, i) >>> 0;
}

function int64At(buf: Uint8Array, i: number): number {
  return int32At(buf, i) * TWO_POW_32 + uint32At(buf, i + 4);
}

function setInt16At(buf: Uint8Array, i: number, value: number): void {
  buf[i] = (value >>> 8) & 0xff;
  buf[i + 1] = value & 0xff;
}

function setInt32At(buf: Uint8Array, i: number, value: number): void {
  buf[i] = (value >>> 24) & 0xff;
  buf[i + 1] = (value >>> 16) & 0xff;
  buf[i + 2] = (value >>> 8) & 0xff;
  buf[i + 3] = value & 0xff;
}

function setInt64At(buf: Uint8Array, i: number, value: number): void {
  assert(Number.isSafeInteger(value), `Int64 field is not a safe integer: ${value}`);
  const high = Math.floor(value / TWO_POW_32);
  setInt32At(buf, i, high | 0);
  setInt32At(buf, i + 4, (value - high * TWO_POW_32) >>> 0);
}

// ---------------------------------------------------------------------------------------
// Header getters: `at` is where the batch starts inside `buf`.

export function readBaseOffset(buf: Uint8Array, at: number): number {
  return int64At(buf, at + BASE_OFFSET_AT);
}
export function readBatchLength(buf: Uint8Array, at: number): number {
  return int32At(buf, at + BATCH_LENGTH_AT);
}
/** Whole batch size in bytes: 12 + batchLength. */
export function readBatchSize(buf: Uint8Array, at: number): number {
  return LOG_OVERHEAD_BYTES + int32At(buf, at + BATCH_LENGTH_AT);
}
export function readPartitionLeaderEpoch(buf: Uint8Array, at: number): number {
  return int32At(buf, at + PARTITION_LEADER_EPOCH_AT);
}
export function readMagic(buf: Uint8Array, at: number): number {
  return int8At(buf, at + MAGIC_AT);
}
export function readCrc(buf: Uint8Array, at: number): number {
  return uint32At(buf, at + CRC_AT);
}
export function readAttributes(buf: Uint8Array, at: number): number {
  return int16At(buf, at + ATTRIBUTES_AT);
}
export function readCompression(buf: Uint8Array, at: number): number {
  return readAttributes(buf, at) & COMPRESSION_MASK;
}
export function readTimestampType(buf: Uint8Array, at: number): TimestampType {
  return (readAttributes(buf, at) & TIMESTAMP_TYPE_BIT) !== 0 ? "LogAppendTime" : "CreateTime";
}
export function readIsTransactional(buf: Uint8Array, at: number): boolean {
  return (readAttributes(buf, at) & TRANSACTIONAL_BIT) !== 0;
}
export function readIsControl(buf: Uint8Array, at: number): boolean {
  return (readAttributes(buf, at) & CONTROL_BIT) !== 0;
}
export function readLastOffsetDelta(buf: Uint8Array, at: number): number {
  return int32At(buf, at + LAST_OFFSET_DELTA_AT);
}
/** Offset of the batch's last record: baseOffset + lastOffsetDelta. */
export function readLastOffset(buf: Uint8Array, at: number): number {
  return readBaseOffset(buf, at) + readLastOffsetDelta(buf, at);
}
export function readBaseTimestamp(buf: Uint8Array, at: number): number {
  return int64At(buf, at + BASE_TIMESTAMP_AT);
}
export function readMaxTimestamp(buf: Uint8Array, at: number): number {
  return int64At(buf, at + MAX_TIMESTAMP_AT);
}
export function readProducerId(buf: Uint8Array, at: number): number {
  return int64At(buf, at + PRODUCER_ID_AT);
}
export function readProducerEpoch(buf: Uint8Array, at: number): number {
  return int16At(buf, at + PRODUCER_EPOCH_AT);
}
export function readBaseSequence(buf: Uint8Array, at: number): number {
  return int32At(buf, at + BASE_SEQUENCE_AT);
}
export function readRecordCount(buf: Uint8Array, at: number): number {
  return int32At(buf, at + RECORD_COUNT_AT);
}

/** CRC-32C over [at + 21, at + size): what the crc field must hold. */
export function computeBatchCrc(buf: Uint8Array, at: number, size: number): number {
  assert(size >= BATCH_HEADER_BYTES, `Batch is shorter than its header: ${size} bytes`);
  assert(at + size <= buf.byteLength, "Batch extends past its buffer");
  return crc32c(buf.subarray(at + CRC_FROM_AT, at + size));
}

/** True when the stored CRC matches the bytes. `size` must be the batch's whole size. */
export function batchCrcIsValid(buf: Uint8Array, at: number, size: number): boolean {
  return computeBatchCrc(buf, at, size) === readCrc(buf, at);
}

// ---------------------------------------------------------------------------------------
// In-place rewrites. `batch` starts at the batch's first byte and holds the whole batch.

function assertWholeV2Batch(batch: Uint8Array): number {
  const length = batch.byteLength;
  assert(length >= BATCH_HEADER_BYTES, `Batch is shorter than its header: ${length} bytes`);
  assert(readMagic(batch, 0) === MAGIC_V2, "Batch magic is not 2");
  const size = readBatchSize(batch, 0);
  assert(size >= BATCH_HEADER_BYTES, `Batch length field is too small: ${size} bytes`);
  assert(size <= batch.byteLength, `Batch is truncated: ${batch.byteLength} of ${size} bytes`);
  return size;
}

/**
 * Assigns the batch its offsets and leader epoch. Both fields lie before the CRC'd range,
 * so the CRC stays valid and nothing is recomputed.
 */
export function stampBatch(batch: Uint8Array, baseOffset: number, leaderEpoch: number): void {
  assertWholeV2Batch(batch);
  assert(Number.isSafeInteger(baseOffset), `Base offset is not a safe integer: ${baseOffset}`);
  assert(baseOffset >= 0, `Base offset is negative: ${baseOffset}`);
  assert(Number.isInteger(leaderEpoch), `Leader epoch is not an integer: ${leaderEpoch}`);
  assert(leaderEpoch >= -1, `Leader epoch is below -1: ${leaderEpoch}`);
  assert(leaderEpoch <= 0x7fffffff, `Leader epoch exceeds int32: ${leaderEpoch}`);
  setInt64At(batch, BASE_OFFSET_AT, baseOffset);
  setInt32At(batch, PARTITION_LEADER_EPOCH_AT, leaderEpoch);
}

/**
 * Sets the timestampType attribute bit and maxTimestamp, and recomputes the CRC if
 * either changed (Kafka's DefaultRecordBatch.setMaxTimestamp).
 */
export function setMaxTimestamp(batch: Uint8Array, type: TimestampType, timestampMs: number): void {
  const size = assertWholeV2Batch(batch);
  assert(Number.isSafeInteger(timestampMs), `Timestamp is not a safe integer: ${timestampMs}`);
  const attributes = readAttributes(batch, 0);
  const wanted =
    type === "LogAppendTime" ? attributes | TIMESTAMP_TYPE_BIT : attributes & ~TIMESTAMP_TYPE_BIT;
  if (wanted === attributes && readMaxTimestamp(batch, 0) === timestampMs) return;
  setInt16At(batch, ATTRIBUTES_AT, wanted);
  setInt64At(batch, MAX_TIMESTAMP_AT, timestampMs);
  setInt32At(batch, CRC_AT, computeBatchCrc(batch, 0, size) | 0);
}

/**
 * Kafka's LogAppendTime rule: the broker's clock replaces the batch's max timestamp and
 * the attribute says so; consumers then take every record's timestamp from the header.
 */
export function setLogAppendTime(batch: Uint8Array, timestampMs: number): void {
  setMaxTimestamp(batch, "LogAppendTime", timestampMs);
}

// ---------------------------------------------------------------------------------------
// Walking the records of an uncompressed batch without allocating per record.

/** Reusable cursor over varints; one per walk, never one per record. */
/** A cursor over record fields (varints) inside one batch; shared by record walkers. */
export class VarintCursor {
  buf: Uint8Array = new Uint8Array(0);
  pos = 0;
  end = 0;
  failed = false;

  reset(buf: Uint8Array, pos: number, end: number): void {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.failed = false;
  }

  int8(): number {
    if (this.pos >= this.end) return this.#fail();
    return int8At(this.buf, this.pos++);
  }

  /** Zigzag varint (int32), at most 5 bytes. */
  varint(): number {
    let raw = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) return this.#fail();
      const byte = this.buf[this.pos++]!;
      raw |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return (raw >>> 1) ^ -(raw & 1);
    }
    return this.#fail();
  }

  /** Zigzag varlong (int64) as a JS number, exact below 2^53, at most 10 bytes. */
  varlong(): number {
    let raw = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) return this.#fail();
      const byte = this.buf[this.pos++]!;
      raw += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
      scale *= 128;
    }
    return this.#fail();
  }

  skip(bytes: number): void {
    if (bytes < 0 || this.pos + bytes > this.end) {
      this.#fail();
      return;
    }
    this.pos += bytes;
  }

  #fail(): number {
    this.failed = true;
    this.pos = this.end;
    return 0;
  }
}

/** What walking an uncompressed batch found. */
interface RecordWalk {
  /** Null when the records fill the batch exactly as declared. */
  error: string | null;
  /** Largest record timestamp (baseTimestamp + timestampDelta). */
  maxTimestamp: number;
}

/**
 * Walks the records of the uncompressed batch at `at`, checking that `recordCount`
 * records with offset deltas 0, 1, 2, … fill the batch exactly.
 */
function walkUncompressed(
  buf: Uint8Array,
  at: number,
  size: number,
  cursor: VarintCursor,
  out: RecordWalk,
): void {
  const end = at + size;
  const count = readRecordCount(buf, at);
  const baseTimestamp = readBaseTimestamp(buf, at);
  let maxTimestamp = NO_TIMESTAMP;
  let pos = at + RECORDS_AT;
  out.error = null;
  for (let i = 0; i < count; i++) {
    cursor.reset(buf, pos, end);
    const length = cursor.varint();
    if (cursor.failed || length < RECORD_BYTES_MIN - 1 || cursor.pos + length > end) {
      out.error = `Record ${i} has a bad length: ${length}`;
      return;
    }
    const recordEnd = cursor.pos + length;
    cursor.end = recordEnd;
    cursor.int8(); // Record attributes: unused by Kafka so far.
    const timestampDelta = cursor.varlong();
    const offsetDelta = cursor.varint();
    if (cursor.failed) {
      out.error = `Record ${i} is truncated`;
      return;
    }
    if (offsetDelta !== i) {
      out.error = `Record ${i} has offset delta ${offsetDelta}`;
      return;
    }
    const timestamp = baseTimestamp + timestampDelta;
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    pos = recordEnd;
  }
  if (pos !== end) {
    out.error = `Records end at ${pos - at} of ${size} batch bytes`;
    return;
  }
  out.maxTimestamp = maxTimestamp;
}

/**
 * The first record of an uncompressed CreateTime batch whose timestamp is at least
 * `timestampMs`, or null when none is (or the batch is malformed). For ListOffsets.
 */
export function findRecordAtTimestamp(
  buf: Uint8Array,
  at: number,
  timestampMs: number,
): { offsetDelta: number; timestamp: number } | null {
  assert(readCompression(buf, at) === Compression.none, "Cannot walk a compressed batch's records");
  const size = readBatchSize(buf, at);
  assert(at + size <= buf.byteLength, "Batch extends past its buffer");
  const end = at + size;
  const count = readRecordCount(buf, at);
  const baseTimestamp = readBaseTimestamp(buf, at);
  const cursor = new VarintCursor();
  let pos = at + RECORDS_AT;
  for (let i = 0; i < count; i++) {
    cursor.reset(buf, pos, end);
    const length = cursor.varint();
    if (cursor.failed || length < 0 || cursor.pos + length > end) return null;
    const recordEnd = cursor.pos + length;
    cursor.end = recordEnd;
    cursor.int8();
    const timestampDelta = cursor.varlong();
    const offsetDelta = cursor.varint();
    if (cursor.failed) return null;
    const timestamp = baseTimestamp + timestampDelta;
    if (timestamp >= timestampMs) return { offsetDelta, timestamp };
    pos = recordEnd;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Validation of a produce request's records.

export type RecordsErrorKind = "corrupt" | "unsupportedMagic" | "tooLarge" | "invalidRecord";

/** Why a records blob was refused; mapped to Kafka codes by the produce handler. */
export interface RecordsError {
  ok: false;
  /**
   * corrupt → CORRUPT_MESSAGE (framing, length, CRC), unsupportedMagic →
   * UNSUPPORTED_FOR_MESSAGE_FORMAT, tooLarge → MESSAGE_TOO_LARGE, invalidRecord →
   * INVALID_RECORD (the batch is intact but its content breaks the format's rules).
   */
  kind: RecordsErrorKind;
  message: string;
}

/** One batch of a validated blob, read from its header. */
export interface BatchInfo {
  /** Where the batch starts in the blob. */
  at: number;
  /** Whole batch size: 12 + batchLength. */
  size: number;
  recordCount: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  /**
   * The header's maxTimestamp, except for uncompressed batches, where it is the largest
   * record timestamp found by walking the records (Kafka recomputes it the same way).
   */
  maxTimestamp: number;
  compression: number;
  timestampType: TimestampType;
  isTransactional: boolean;
  isControl: boolean;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

export type ValidateResult = { ok: true; batches: BatchInfo[]; recordCount: number } | RecordsError;

function refuse(kind: RecordsErrorKind, message: string): RecordsError {
  return { ok: false, kind, message };
}

/**
 * The framing checks of the batch at `at` of a records blob: enough bytes for a header,
 * magic 2, a length between the header size and `maxBatchBytes` that fits the blob, and
 * a CRC that matches. Answers the batch's size, or why it is refused.
 */
export function checkBatchFrame(
  records: Uint8Array,
  at: number,
  maxBatchBytes: number,
): { ok: true; size: number } | RecordsError {
  const left = records.byteLength - at;
  if (left < BATCH_MAGIC_PREFIX_BYTES) {
    return refuse("corrupt", `Records end inside a batch header: ${left} bytes at ${at}`);
  }
  const magic = readMagic(records, at);
  if (magic === 0 || magic === 1) {
    return refuse("unsupportedMagic", `Batch magic is not supported: ${magic}, at ${at}`);
  }
  if (magic !== MAGIC_V2) return refuse("corrupt", `Batch magic is invalid: ${magic}, at ${at}`);
  const size = readBatchSize(records, at);
  if (size < BATCH_HEADER_BYTES) {
    return refuse("corrupt", `Batch length is smaller than the header: ${size} bytes, at ${at}`);
  }
  if (size > maxBatchBytes) {
    return refuse("tooLarge", `Batch is larger than the limit: ${size} > ${maxBatchBytes} bytes`);
  }
  if (size > left) return refuse("corrupt", `Batch is cut: ${left} of ${size} bytes, at ${at}`);
  if (!batchCrcIsValid(records, at, size)) {
    return refuse("corrupt", `Batch CRC does not match its bytes, at ${at}`);
  }
  return { ok: true, size };
}

/**
 * Checks a records blob (one or more concatenated v2 batches) before it is appended:
 * framing (the blob is exactly whole batches), size, magic, CRC, and the record count
 * against lastOffsetDelta. Uncompressed batches are also walked to check that the
 * declared records fill the batch; compressed ones are never decompressed.
 * Work is per batch: one BatchInfo per batch and no allocation per record.
 */
export function validateRecords(records: Uint8Array, maxBatchBytes: number): ValidateResult {
  assert(Number.isInteger(maxBatchBytes), "maxBatchBytes is not an integer");
  assert(maxBatchBytes >= 0, "maxBatchBytes is negative");
  const total = records.byteLength;
  if (total === 0) return refuse("invalidRecord", "Records are empty: 0 bytes");
  const batches: BatchInfo[] = [];
  const cursor = new VarintCursor();
  const walk: RecordWalk = { error: null, maxTimestamp: NO_TIMESTAMP };
  let recordCount = 0;
  let at = 0;
  while (at < total) {
    const frame = checkBatchFrame(records, at, maxBatchBytes);
    if (!frame.ok) return frame;
    const size = frame.size;
    const count = readRecordCount(records, at);
    const lastOffsetDelta = readLastOffsetDelta(records, at);
    if (count < 1) return refuse("invalidRecord", `Batch has no records: count ${count}, at ${at}`);
    if (lastOffsetDelta !== count - 1) {
      return refuse(
        "invalidRecord",
        `Batch lastOffsetDelta does not match its count: ${lastOffsetDelta}, ${count} records`,
      );
    }
    const attributes = readAttributes(records, at);
    const compression = attributes & COMPRESSION_MASK;
    if (compression > COMPRESSION_CODE_MAX) {
      return refuse("corrupt", `Batch compression code is unknown: ${compression}, at ${at}`);
    }
    let maxTimestamp = readMaxTimestamp(records, at);
    if (compression === Compression.none) {
      walkUncompressed(records, at, size, cursor, walk);
      if (walk.error !== null) return refuse("invalidRecord", `${walk.error}, in batch at ${at}`);
      maxTimestamp = walk.maxTimestamp;
    }
    batches.push({
      at,
      size,
      recordCount: count,
      lastOffsetDelta,
      baseTimestamp: readBaseTimestamp(records, at),
      maxTimestamp,
      compression,
      timestampType: (attributes & TIMESTAMP_TYPE_BIT) !== 0 ? "LogAppendTime" : "CreateTime",
      isTransactional: (attributes & TRANSACTIONAL_BIT) !== 0,
      isControl: (attributes & CONTROL_BIT) !== 0,
      producerId: readProducerId(records, at),
      producerEpoch: readProducerEpoch(records, at),
      baseSequence: readBaseSequence(records, at),
    });
    recordCount += count;
    at += size;
  }
  assert(at === total, "Validation walked past the records");
  assert(batches.length > 0, "Validation accepted a blob without batches");
  return { ok: true, batches, recordCount };
}
