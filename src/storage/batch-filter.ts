/**
 * @module
 * Record-level work on one stored RecordBatch v2, for the log cleaner only (compaction
 * is the one storage path that must look inside batches; produce and fetch never do):
 *
 * - `forEachRecord` walks the records of a batch (decompressing it first if needed) with
 *   one reusable cursor, no object per record: the cleaner's offset map reads keys so.
 * - `filterBatch` asks, record by record, whether to keep each one. A batch whose records
 *   all stay is reported as such and copied by the caller byte for byte; one whose
 *   records all go is dropped; otherwise the batch is re-encoded from the surviving
 *   records' bytes, unchanged, in their order, recompressed with the batch's own codec.
 *
 * A re-encoded batch keeps Kafka's rules (MemoryRecords.filterTo): the header is the
 * original's (base offset, partition leader epoch, attributes, base timestamp, producer
 * id, epoch and base sequence), and so is lastOffsetDelta, so the batch still ends at its
 * original last offset and the producer's last sequence survives; records keep their
 * offset and timestamp deltas, so every kept record keeps its offset and timestamp. Only
 * the length, the record count, the max timestamp (under CreateTime, the largest kept
 * record's) and the CRC change. Such a batch has fewer records than its offset span, which
 * is why recovery accepts recordCount <= lastOffsetDelta + 1 (batch-scan.ts).
 *
 * A batch that cannot be read (bad compression, records that do not parse although the
 * CRC matched) is never filtered: the cleaner keeps it whole and skips its keys.
 */
import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { lz4, snappy } from "../protocol/native-codecs.ts";
import { DecompressionError, decompress } from "../protocol/compression.ts";
import {
  BATCH_HEADER_BYTES,
  BATCH_LENGTH_AT,
  CRC_AT,
  Compression,
  LOG_OVERHEAD_BYTES,
  MAX_TIMESTAMP_AT,
  RECORDS_AT,
  RECORD_COUNT_AT,
  computeBatchCrc,
  readBaseOffset,
  readBaseTimestamp,
  readBatchSize,
  readCompression,
  readRecordCount,
  readTimestampType,
  VarintCursor,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";

/** xerial snappy-java stream header (the Java client's snappy framing). */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;
/** snappy-java's default block size. */
const XERIAL_BLOCK_BYTES = 32 * 1024;

/**
 * Where the current record lies and what it holds; one per walk, overwritten for each
 * record. Positions are in `plain`, the batch's uncompressed records.
 */
export class RecordCursor {
  /** The uncompressed records of the batch being walked. */
  plain: Uint8Array = new Uint8Array(0);
  /** Offset of the batch's first record slot (the batch's base offset). */
  baseOffset = 0;
  /** Record bytes, from its length varint to its last header: [start, end). */
  start = 0;
  end = 0;
  offsetDelta = 0;
  timestampDelta = 0;
  /** Where the key starts, and its length (-1: null key). */
  keyAt = 0;
  keyLength = -1;
  /** Where the value starts, and its length (-1: null value, a tombstone). */
  valueAt = 0;
  valueLength = -1;

  get offset(): number {
    return this.baseOffset + this.offsetDelta;
  }

  get isTombstone(): boolean {
    return this.valueLength < 0;
  }

  /** The key as a view into `plain` (valid during the visit), or null. */
  key(): Uint8Array | null {
    if (this.keyLength < 0) return null;
    return this.plain.subarray(this.keyAt, this.keyAt + this.keyLength);
  }

  /** The value as a view into `plain` (valid during the visit), or null (a tombstone). */
  value(): Uint8Array | null {
    if (this.valueLength < 0) return null;
    return this.plain.subarray(this.valueAt, this.valueAt + this.valueLength);
  }
}

/**
 * The uncompressed records of the batch at `at` (a view for an uncompressed batch, a new
 * buffer otherwise), or null when its payload cannot be decompressed.
 */
export function plainRecords(buf: Uint8Array, at: number): Uint8Array | null {
  const size = readBatchSize(buf, at);
  assert(at + size <= buf.byteLength, "Batch extends past its buffer");
  const payload = buf.subarray(at + RECORDS_AT, at + size);
  const codec = readCompression(buf, at);
  if (codec === Compression.none) return payload;
  try {
    return decompress(codec, payload);
  } catch (error) {
    if (error instanceof DecompressionError) return null;
    throw error;
  }
}

/**
 * Calls `visit` for each of the `count` records in `plain` (offsets from `baseOffset`),
 * reusing `cursor`. False when the records do not parse or do not fill `plain` exactly
 * (the visits made so far stand; callers that act on them must check the result first).
 */
export function forEachRecord(
  plain: Uint8Array,
  baseOffset: number,
  count: number,
  cursor: RecordCursor,
  visit: (cursor: RecordCursor) => void,
): boolean {
  const reader = new VarintCursor();
  cursor.plain = plain;
  cursor.baseOffset = baseOffset;
  let pos = 0;
  let previousDelta = -1;
  for (let i = 0; i < count; i++) {
    reader.reset(plain, pos, plain.byteLength);
    const length = reader.varint();
    if (reader.failed || length < 6 || reader.pos + length > plain.byteLength) return false;
    const end = reader.pos + length;
    reader.end = end;
    reader.skip(1); // Record attributes: unused by Kafka so far.
    const timestampDelta = reader.varlong();
    const offsetDelta = reader.varint();
    const keyLength = reader.varint();
    const keyAt = reader.pos;
    if (keyLength > 0) reader.skip(keyLength);
    const valueLength = reader.varint();
    const valueAt = reader.pos;
    if (valueLength > 0) reader.skip(valueLength);
    const headerCount = reader.varint();
    for (let h = 0; h < headerCount && !reader.failed; h++) {
      reader.skip(reader.varint());
      const headerValueLength = reader.varint();
      if (headerValueLength > 0) reader.skip(headerValueLength);
    }
    if (reader.failed || reader.pos !== end || headerCount < 0) return false;
    // Offsets inside a batch only grow (a cleaned batch may have gaps).
    if (offsetDelta <= previousDelta) return false;
    previousDelta = offsetDelta;
    cursor.start = pos;
    cursor.end = end;
    cursor.offsetDelta = offsetDelta;
    cursor.timestampDelta = timestampDelta;
    cursor.keyAt = keyAt;
    cursor.keyLength = keyLength < 0 ? -1 : keyLength;
    cursor.valueAt = valueAt;
    cursor.valueLength = valueLength < 0 ? -1 : valueLength;
    visit(cursor);
    pos = end;
  }
  return pos === plain.byteLength;
}

/** Records of the batch at `at`, walked as `forEachRecord`; false when unreadable. */
export function forEachRecordOfBatch(
  buf: Uint8Array,
  at: number,
  cursor: RecordCursor,
  visit: (cursor: RecordCursor) => void,
): boolean {
  const plain = plainRecords(buf, at);
  if (plain === null) return false;
  return forEachRecord(plain, readBaseOffset(buf, at), readRecordCount(buf, at), cursor, visit);
}

export type FilterOutcome =
  /** Every record stays: the caller copies the batch as it is. */
  | { kind: "all"; records: number }
  /** Every record goes: so does the batch. */
  | { kind: "none"; records: number }
  /** Some records go: `batch` is the re-encoded batch of the others. */
  | { kind: "some"; batch: Uint8Array; kept: number; dropped: number }
  /** The records cannot be read: the batch is kept whole. */
  | { kind: "unreadable" };

/**
 * Decides record by record (`keep` sees each record once, in offset order, through the
 * cursor) and builds the batch that holds the kept ones. See the module comment.
 */
export function filterBatch(
  buf: Uint8Array,
  at: number,
  keep: (cursor: RecordCursor) => boolean,
): FilterOutcome {
  const size = readBatchSize(buf, at);
  assert(size >= BATCH_HEADER_BYTES, `Batch is shorter than its header: ${size}`);
  const plain = plainRecords(buf, at);
  if (plain === null) return { kind: "unreadable" };
  const count = readRecordCount(buf, at);
  const cursor = new RecordCursor();
  // First pass: parse everything before deciding anything, so that a malformed batch is
  // kept whole rather than half-filtered.
  if (!forEachRecord(plain, readBaseOffset(buf, at), count, cursor, ignore)) {
    return { kind: "unreadable" };
  }
  const keptRanges: number[] = [];
  let keptBytes = 0;
  let maxTimestampDelta = Number.NEGATIVE_INFINITY;
  forEachRecord(plain, readBaseOffset(buf, at), count, cursor, (c) => {
    if (!keep(c)) return;
    keptRanges.push(c.start, c.end);
    keptBytes += c.end - c.start;
    if (c.timestampDelta > maxTimestampDelta) maxTimestampDelta = c.timestampDelta;
  });
  const kept = keptRanges.length / 2;
  if (kept === count) return { kind: "all", records: count };
  if (kept === 0) return { kind: "none", records: count };

  const survivors = Buffer.allocUnsafe(keptBytes);
  let filled = 0;
  for (let i = 0; i < keptRanges.length; i += 2) {
    survivors.set(plain.subarray(keptRanges[i]!, keptRanges[i + 1]!), filled);
    filled += keptRanges[i + 1]! - keptRanges[i]!;
  }
  const codec = readCompression(buf, at);
  const payload =
    codec === Compression.none
      ? survivors
      : compress(codec, survivors, buf.subarray(at + RECORDS_AT, at + size));
  const batch = Buffer.allocUnsafe(BATCH_HEADER_BYTES + payload.byteLength);
  batch.set(buf.subarray(at, at + BATCH_HEADER_BYTES), 0);
  batch.set(payload, BATCH_HEADER_BYTES);
  batch.writeInt32BE(batch.byteLength - LOG_OVERHEAD_BYTES, BATCH_LENGTH_AT);
  batch.writeInt32BE(kept, RECORD_COUNT_AT);
  if (readTimestampType(buf, at) === "CreateTime") {
    // Kafka's rule: the header carries the largest timestamp of the records it holds.
    const maxTimestamp = readBaseTimestamp(buf, at) + maxTimestampDelta;
    assert(Number.isSafeInteger(maxTimestamp), "Kept records' timestamp is not an integer");
    writeInt64(batch, MAX_TIMESTAMP_AT, maxTimestamp);
  }
  batch.writeUInt32BE(computeBatchCrc(batch, 0, batch.byteLength), CRC_AT);
  return { kind: "some", batch, kept, dropped: count - kept };
}

function ignore(): void {}

function writeInt64(buf: Buffer, at: number, value: number): void {
  const high = Math.floor(value / 4294967296);
  buf.writeInt32BE(high | 0, at);
  buf.writeUInt32BE(value - high * 4294967296, at + 4);
}

/**
 * Compresses `plain` with `codec` as Kafka's clients frame it. Snappy keeps the framing
 * of `original` (the batch's old payload): xerial's for the Java client, raw otherwise.
 */
export function compress(codec: number, plain: Uint8Array, original: Uint8Array): Uint8Array {
  const bytes = Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  switch (codec) {
    case Compression.gzip:
      return zlib.gzipSync(bytes);
    case Compression.snappy:
      return isXerial(original) ? xerialCompress(bytes) : snappy().compressSync(bytes);
    case Compression.lz4:
      return lz4().compressFrameSync(bytes);
    case Compression.zstd:
      return zlib.zstdCompressSync(bytes);
    default:
      assert(false, `Cannot compress with codec ${codec}`);
  }
}

function isXerial(payload: Uint8Array): boolean {
  if (payload.byteLength < XERIAL_HEADER_BYTES) return false;
  for (let i = 0; i < XERIAL_MAGIC.byteLength; i++) {
    if (payload[i] !== XERIAL_MAGIC[i]) return false;
  }
  return true;
}

/** snappy-java's stream format: magic, version 1, compatible version 1, sized blocks. */
function xerialCompress(plain: Buffer): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(XERIAL_HEADER_BYTES);
  XERIAL_MAGIC.copy(header, 0);
  header.writeInt32BE(1, 8);
  header.writeInt32BE(1, 12);
  parts.push(header);
  for (let at = 0; at < plain.byteLength; at += XERIAL_BLOCK_BYTES) {
    const block = snappy().compressSync(plain.subarray(at, at + XERIAL_BLOCK_BYTES));
    const size = Buffer.allocUnsafe(4);
    size.writeInt32BE(block.byteLength, 0);
    parts.push(size, block);
  }
  return Buffer.concat(parts);
}
