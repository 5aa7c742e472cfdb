/**
 * Pieces the JavaScript client tests (kafkajs, @platformatic/kafka) share: the snappy,
 * LZ4 and zstd codecs kafkajs lacks, registered through its pluggable codec table (the
 * way kafkajs-snappy and kafkajs-lz4 do), and the Java client's murmur2 hash, which both
 * clients' default partitioners start from.
 */
import { Buffer } from "node:buffer";
import { zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { CompressionCodecs, CompressionTypes } from "kafkajs";
import { compressFrameSync, decompressFrameSync } from "lz4-napi";
import { compressSync, uncompressSync } from "snappy";

/** snappy-java's stream header: magic, version 1, compatible version 1. */
const XERIAL_HEADER = Buffer.from([
  0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1,
]);
/** snappy-java's default block size (SnappyOutputStream), the one Kafka's Java client uses. */
const XERIAL_BLOCK_BYTES = 32 * 1024;

/** Snappy in xerial's framing, as the Java client writes it: header, then sized blocks. */
export function xerialSnappyCompress(data: Buffer): Buffer {
  const parts: Buffer[] = [XERIAL_HEADER];
  for (let at = 0; at < data.length; at += XERIAL_BLOCK_BYTES) {
    const block = compressSync(data.subarray(at, at + XERIAL_BLOCK_BYTES));
    const size = Buffer.alloc(4);
    size.writeInt32BE(block.length);
    parts.push(size, block);
  }
  return Buffer.concat(parts);
}

/** Reads both framings: xerial's (Java client) and raw snappy (librdkafka). */
export function snappyDecompress(data: Buffer): Buffer {
  const xerial =
    data.length >= XERIAL_HEADER.length && data.subarray(0, 8).equals(XERIAL_HEADER.subarray(0, 8));
  if (!xerial) {
    return uncompressSync(data, { asBuffer: true }) as Buffer;
  }
  const blocks: Buffer[] = [];
  for (let at = XERIAL_HEADER.length; at < data.length;) {
    const size = data.readInt32BE(at);
    at += 4;
    blocks.push(uncompressSync(data.subarray(at, at + size), { asBuffer: true }) as Buffer);
    at += size;
  }
  return Buffer.concat(blocks);
}

/** kafkajs hands `compress` its Encoder; only `.buffer` is needed. */
type KafkajsCodec = () => {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
};

const codec =
  (compress: (b: Buffer) => Buffer, decompress: (b: Buffer) => Buffer): KafkajsCodec =>
  () => ({
    compress: async (encoder) => compress(encoder.buffer),
    decompress: async (buffer) => decompress(buffer),
  });

/**
 * Registers snappy (xerial framing), LZ4 (frame format, KIP-57) and zstd (KIP-110) in
 * kafkajs's codec table; gzip is built in. Idempotent.
 */
export function registerKafkajsCodecs(): void {
  const codecs = CompressionCodecs as unknown as Record<number, KafkajsCodec>;
  codecs[CompressionTypes.Snappy] = codec(xerialSnappyCompress, snappyDecompress);
  codecs[CompressionTypes.LZ4] = codec(
    (b) => compressFrameSync(b),
    (b) => decompressFrameSync(b),
  );
  codecs[CompressionTypes.ZSTD] = codec(
    (b) => zstdCompressSync(b),
    (b) => zstdDecompressSync(b),
  );
}

/** Kafka's murmur2 (Java `Utils.murmur2`), as a signed 32-bit int. */
export function murmur2(data: Buffer): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest >= 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[whole]!, m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/**
 * The Java client's (and kafkajs's `DefaultPartitioner`'s) partition for a key:
 * `toPositive(murmur2(key)) % partitions`, toPositive clearing the sign bit.
 */
export function javaPartition(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key)) & 0x7fffffff) % partitions;
}

/**
 * @platformatic/kafka's default partitioner for a key: murmur2 read as unsigned, modulo
 * the partition count (its `defaultPartitioner`; `compatibilityPartitioner` is Java's).
 */
export function platformaticPartition(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key)) >>> 0) % partitions;
}

export interface Placement {
  partition: number;
  offset: number;
  timestamp: number;
}

/** Where every produced message landed, from the clients' send reports. */
export interface Produced {
  placements: Placement[];
  /** Records per partition, from the reports. */
  counts: number[];
  problems: string[];
}

export interface SendReport {
  partition: number;
  topic: string;
  baseOffset: number;
}

/**
 * Checks one send call's reports against the partitions its messages were hashed to,
 * and records each message's offset (base offset plus its rank in that partition).
 */
export function tallySend(
  produced: Produced,
  options: {
    start: number;
    topic: string;
    byPartition: ReadonlyMap<number, readonly number[]>;
    reports: readonly SendReport[];
    timestampOf: (i: number) => number;
  },
): void {
  const { start, topic, byPartition, reports } = options;
  const { placements, counts, problems } = produced;
  const reported = reports.map((r) => r.partition).sort();
  const expected = [...byPartition.keys()].sort();
  if (JSON.stringify(reported) !== JSON.stringify(expected)) {
    problems.push(`send at ${start}: reports for partitions ${reported}, sent to ${expected}`);
  }
  for (const report of reports) {
    const where = `send at ${start}, partition ${report.partition}`;
    if (report.topic !== topic) problems.push(`${where}: topic ${report.topic}`);
    const base = report.baseOffset;
    if (base !== counts[report.partition]) {
      problems.push(`${where}: base offset ${base}, expected ${counts[report.partition]}`);
    }
    const sent = byPartition.get(report.partition) ?? [];
    sent.forEach((i, rank) => {
      placements[i] = {
        partition: report.partition,
        offset: base + rank,
        timestamp: options.timestampOf(i),
      };
    });
    counts[report.partition] = base + sent.length;
  }
}
