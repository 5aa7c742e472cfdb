/**
 * Decompression of record batch payloads, for the rare paths where the broker must see
 * records inside a compressed batch (ListOffsets by timestamp). Produce and fetch never
 * decompress: batches are stored and served as the producer compressed them.
 *
 * Codecs as Kafka frames them: gzip; snappy raw (librdkafka) or in xerial's framing
 * (the Java client); LZ4 frames; zstd frames.
 */
import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { lz4, snappy } from "./native-codecs.ts";
import {
  ATTRIBUTES_AT,
  BATCH_LENGTH_AT,
  COMPRESSION_MASK,
  Compression,
  LOG_OVERHEAD_BYTES,
  readBatchSize,
  RECORDS_AT,
} from "./record-batch.ts";

/** xerial snappy-java stream header: magic, then version and compatible version. */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;

export class DecompressionError extends Error {
  override name = "DecompressionError";
}

function unsnappy(payload: Buffer): Buffer {
  if (payload.length < XERIAL_HEADER_BYTES || !payload.subarray(0, 8).equals(XERIAL_MAGIC)) {
    return snappy().uncompressSync(payload, { asBuffer: true }) as Buffer;
  }
  const blocks: Buffer[] = [];
  let at = XERIAL_HEADER_BYTES;
  while (at < payload.length) {
    if (at + 4 > payload.length)
      throw new DecompressionError("Truncated xerial snappy block length");
    const size = payload.readInt32BE(at);
    at += 4;
    if (size < 0 || at + size > payload.length)
      throw new DecompressionError("Truncated xerial snappy block");
    blocks.push(
      snappy().uncompressSync(payload.subarray(at, at + size), { asBuffer: true }) as Buffer,
    );
    at += size;
  }
  return Buffer.concat(blocks);
}

/** The uncompressed records of a batch payload; throws DecompressionError if unreadable. */
export function decompress(codec: number, payload: Uint8Array): Buffer {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  try {
    switch (codec) {
      case Compression.none:
        return bytes;
      case Compression.gzip:
        return zlib.gunzipSync(bytes);
      case Compression.snappy:
        return unsnappy(bytes);
      case Compression.lz4:
        return lz4().decompressFrameSync(bytes);
      case Compression.zstd:
        return zlib.zstdDecompressSync(bytes);
      default:
        throw new DecompressionError(`Unknown compression codec ${codec}`);
    }
  } catch (error) {
    if (error instanceof DecompressionError) throw error;
    throw new DecompressionError(`Cannot decompress codec ${codec}: ${(error as Error).message}`);
  }
}

/**
 * The same batch with its records decompressed and the compression bits cleared, so
 * that record walkers for uncompressed batches can read it. The CRC is not recomputed:
 * the twin never leaves the process.
 */
export function uncompressedTwin(batch: Uint8Array): Buffer {
  const header = Buffer.from(batch.buffer, batch.byteOffset, RECORDS_AT);
  const codec = header.readInt16BE(ATTRIBUTES_AT) & COMPRESSION_MASK;
  const records = decompress(codec, batch.subarray(RECORDS_AT, readBatchSize(batch, 0)));
  const twin = Buffer.allocUnsafe(RECORDS_AT + records.length);
  header.copy(twin, 0);
  records.copy(twin, RECORDS_AT);
  twin.writeInt16BE(header.readInt16BE(ATTRIBUTES_AT) & ~COMPRESSION_MASK, ATTRIBUTES_AT);
  twin.writeInt32BE(twin.length - LOG_OVERHEAD_BYTES, BATCH_LENGTH_AT);
  return twin;
}
