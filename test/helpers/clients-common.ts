/**
 * Shared pieces of the real-client tests (kcat, confluent-kafka-python): deterministic
 * messages, a checker for what a client consumed back, a child-process runner with a
 * kill timer, and a raw Fetch that lists the stored batches with their codecs.
 */
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { crc32 } from "node:zlib";
import {
  Compression,
  type CompressionName,
  batchCrcIsValid,
  readBaseOffset,
  readBatchSize,
  readCompression,
  readLastOffset,
  readMagic,
  readRecordCount,
} from "../../src/protocol/record-batch.ts";
import { RawClient } from "./raw-client.ts";

export const MESSAGE_COUNT = 10_000;
export const PARTITIONS = 4;
export const CODECS: readonly CompressionName[] = ["none", "gzip", "snappy", "lz4", "zstd"];
/** How far a CreateTime may lie outside the produce run (clock granularity, batching). */
export const TIMESTAMP_SLACK_MS = 1000;

export const keyOf = (i: number): string => `k${i}`;

/** Deterministic per index, varied in length and compressible. */
export function valueOf(i: number): string {
  return `v${i}-${"abcdefghijklmnopqrstuvwxyz".slice(i % 26)}${String(i * 7919).repeat(3)}`;
}

/** The index a key encodes, or -1 when it is not a `k<i>` key. */
export function indexOfKey(key: string | null): number {
  const match = key === null ? null : /^k(\d+)$/.exec(key);
  return match ? Number(match[1]) : -1;
}

/**
 * librdkafka's default partitioner (`consistent_random`) for a non-empty key:
 * CRC-32 of the key bytes modulo the partition count (rdkafka_msg.c).
 */
export function librdkafkaPartition(key: string, partitions: number): number {
  return (crc32(Buffer.from(key)) >>> 0) % partitions;
}

/** One message as a client consumed it. */
export interface ConsumedRecord {
  partition: number;
  offset: number;
  /** "create" or "append" (or whatever the client reported). */
  timestampType: string;
  timestamp: number;
  key: string | null;
  value: string | null;
  headers: [string, string | null][];
}

/** What the consumed records must match. Each check is by message index. */
export interface Expectations {
  count: number;
  headersOf: (i: number) => [string, string][];
  /** Where the message must be; offset and timestamp when the client reported them. */
  placementOf: (i: number) => { partition: number; offset?: number; timestamp?: number };
  /** Inclusive window every CreateTime must lie in. */
  timestampWindow: [number, number];
}

/**
 * Checks a full consume from the start of fresh partitions: every index exactly once,
 * where it was produced, with its key, value, headers and CreateTime; per partition,
 * offsets contiguous from 0 and indexes in produce order. Returns the problems found
 * (at most `limit`), so an assertion on `[]` prints a readable failure.
 */
export function checkConsumed(
  records: readonly ConsumedRecord[],
  expect: Expectations,
  limit = 20,
): string[] {
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < limit) problems.push(text);
  };
  if (records.length !== expect.count) {
    problem(`consumed ${records.length} records, expected ${expect.count}`);
  }
  const seen = new Set<number>();
  const lastByPartition = new Map<number, { offset: number; index: number }>();
  const [earliest, latest] = expect.timestampWindow;
  for (const record of records) {
    const where = `partition ${record.partition} offset ${record.offset}`;
    const i = indexOfKey(record.key);
    if (i < 0 || i >= expect.count) {
      problem(`${where}: unexpected key ${JSON.stringify(record.key)}`);
      continue;
    }
    if (seen.has(i)) problem(`${where}: index ${i} consumed twice`);
    seen.add(i);
    if (record.value !== valueOf(i)) {
      problem(`${where}: value ${JSON.stringify(record.value)} for key ${record.key}`);
    }
    const headers = JSON.stringify(record.headers);
    if (headers !== JSON.stringify(expect.headersOf(i))) {
      problem(`${where}: headers ${headers} for key ${record.key}`);
    }
    const placement = expect.placementOf(i);
    if (record.partition !== placement.partition) {
      problem(`${where}: key ${record.key} expected in partition ${placement.partition}`);
    }
    if (placement.offset !== undefined && record.offset !== placement.offset) {
      problem(`${where}: key ${record.key} was delivered at offset ${placement.offset}`);
    }
    if (record.timestampType !== "create") {
      problem(`${where}: timestamp type ${record.timestampType}, expected create`);
    }
    if (placement.timestamp !== undefined && record.timestamp !== placement.timestamp) {
      problem(`${where}: timestamp ${record.timestamp}, delivery said ${placement.timestamp}`);
    }
    if (!(record.timestamp >= earliest && record.timestamp <= latest)) {
      problem(`${where}: timestamp ${record.timestamp} outside [${earliest}, ${latest}]`);
    }
    const last = lastByPartition.get(record.partition);
    const expectedOffset = last === undefined ? 0 : last.offset + 1;
    if (record.offset !== expectedOffset) {
      problem(`${where}: expected offset ${expectedOffset} next in the partition`);
    }
    if (last !== undefined && i <= last.index) {
      problem(`${where}: index ${i} after index ${last.index} (out of produce order)`);
    }
    lastByPartition.set(record.partition, { offset: record.offset, index: i });
  }
  if (seen.size !== expect.count) {
    problem(`${seen.size} distinct indexes consumed, expected ${expect.count}`);
  }
  return problems;
}

/**
 * Checks a consume that started at `offset` of one partition against the full consume:
 * it must be exactly the full consume's records of that partition from that offset on.
 */
export function checkFromOffset(
  records: readonly ConsumedRecord[],
  full: readonly ConsumedRecord[],
  partition: number,
  offset: number,
): string[] {
  const expected = full.filter((r) => r.partition === partition && r.offset >= offset);
  const problems: string[] = [];
  if (expected.length === 0) problems.push(`nothing at or after ${offset} in ${partition}`);
  if (records[0]?.offset !== offset) {
    problems.push(`first record at offset ${records[0]?.offset}, expected ${offset}`);
  }
  if (records.length !== expected.length) {
    problems.push(`consumed ${records.length} records, expected ${expected.length}`);
  }
  for (let n = 0; n < Math.min(records.length, expected.length) && problems.length < 6; n++) {
    const got = JSON.stringify(records[n]);
    const want = JSON.stringify(expected[n]);
    if (got !== want) problems.push(`record ${n}: ${got}, expected ${want}`);
  }
  return problems;
}

/** The partition with the most records and its record count. */
export function fullestPartition(records: readonly ConsumedRecord[]): {
  partition: number;
  count: number;
} {
  const counts = new Map<number, number>();
  for (const { partition } of records) counts.set(partition, (counts.get(partition) ?? 0) + 1);
  let best = { partition: -1, count: 0 };
  for (const [partition, count] of counts) if (count > best.count) best = { partition, count };
  return best;
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command with optional stdin; SIGKILLs it (by pid) after `timeoutMs` so a hung
 * client fails the test instead of blocking it. Rejects on timeout.
 */
export function runProcess(
  command: string,
  args: readonly string[],
  options: { stdin?: string; timeoutMs: number },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL");
    }, options.timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on("error", () => {});
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const result = {
        code,
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString(),
      };
      if (!timedOut) return resolve(result);
      const tail = result.stderr.slice(-4000);
      const what = `${command} ${args.join(" ")}`;
      reject(new Error(`${what} killed after ${options.timeoutMs} ms:\n${tail}`));
    });
    child.stdin.end(options.stdin ?? "");
  });
}

const FETCH = 1;
const LIST_OFFSETS = 2;
const BATCH_HEADER_BYTES = 61;
const FETCH_MAX_BYTES = 4 << 20;

export interface StoredBatch {
  partition: number;
  baseOffset: number;
  codec: string;
  records: number;
}

export interface StoredBatches {
  batches: StoredBatch[];
  /** Sum of the batches' record counts. */
  records: number;
  badCrcs: number;
  badMagic: number;
}

/**
 * Lists every batch of the given partitions with raw ListOffsets v7 and Fetch v12. The
 * broker keeps batches as the client sent them, so this shows the codec the client
 * really used, and that the stored CRCs still hold.
 */
export async function storedBatches(
  port: number,
  topic: string,
  partitions: number,
): Promise<StoredBatches> {
  const client = await RawClient.connect(port);
  const names = new Map<number, string>(
    Object.entries(Compression).map(([name, code]) => [code, name]),
  );
  const result: StoredBatches = { batches: [], records: 0, badCrcs: 0, badMagic: 0 };
  try {
    for (let partition = 0; partition < partitions; partition++) {
      const listed = await client.request(LIST_OFFSETS, 7, {
        replicaId: -1,
        isolationLevel: 0,
        topics: [
          {
            name: topic,
            partitions: [{ partitionIndex: partition, timestamp: -1, currentLeaderEpoch: -1 }],
          },
        ],
      });
      const end: number = listed.topics[0].partitions[0].offset;
      let offset = 0;
      while (offset < end) {
        const answer = await client.request(FETCH, 12, {
          replicaId: -1,
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: FETCH_MAX_BYTES,
          isolationLevel: 0,
          sessionId: 0,
          sessionEpoch: -1,
          forgottenTopicsData: [],
          rackId: "",
          topics: [
            {
              topic,
              partitions: [
                {
                  partition,
                  currentLeaderEpoch: -1,
                  fetchOffset: offset,
                  logStartOffset: -1,
                  partitionMaxBytes: FETCH_MAX_BYTES,
                },
              ],
            },
          ],
        });
        const data = answer.responses[0].partitions[0];
        const where = `${topic}-${partition}@${offset}`;
        if (data.errorCode !== 0) throw new Error(`Fetch ${where}: error ${data.errorCode}`);
        const buf = (data.records ?? new Uint8Array()) as Uint8Array;
        const before = offset;
        for (let at = 0; at + BATCH_HEADER_BYTES <= buf.byteLength;) {
          const size = readBatchSize(buf, at);
          if (at + size > buf.byteLength) break;
          const baseOffset = readBaseOffset(buf, at);
          if (baseOffset >= offset) {
            if (readMagic(buf, at) !== 2) result.badMagic++;
            if (!batchCrcIsValid(buf, at, size)) result.badCrcs++;
            const code = readCompression(buf, at);
            const records = readRecordCount(buf, at);
            const codec = names.get(code) ?? `code ${code}`;
            result.batches.push({ partition, baseOffset, codec, records });
            result.records += records;
            offset = readLastOffset(buf, at) + 1;
          }
          at += size;
        }
        if (offset === before) throw new Error(`Fetch ${where} made no progress`);
      }
    }
  } finally {
    client.close();
  }
  return result;
}

/**
 * librdkafka sends a batch uncompressed when compressing does not make it smaller
 * (rdkafka_msgset_writer.c), which happens to batches of a record or two. Batches at
 * least this big must carry the codec asked for.
 */
export const MIN_COMPRESSED_BATCH_RECORDS = 10;

/**
 * The batches that do not carry `codec` (small uncompressed ones excepted, see above),
 * or a note when no batch carries it at all.
 */
export function codecMismatches(stored: StoredBatches, codec: CompressionName): string[] {
  const excused = (b: StoredBatch) =>
    b.codec === "none" && b.records < MIN_COMPRESSED_BATCH_RECORDS;
  const wrong = stored.batches
    .filter((b) => b.codec !== codec && !excused(b))
    .map((b) => `partition ${b.partition} at ${b.baseOffset}: ${b.records} records, ${b.codec}`);
  if (!stored.batches.some((b) => b.codec === codec)) {
    wrong.push(`no ${codec} batch among ${stored.batches.length}`);
  }
  return wrong.slice(0, 10);
}

/**
 * An offset near `near` in `partition` strictly inside a stored batch, when a batch
 * there holds more than one record: Fetch answers with the whole batch, so the client
 * must drop the records before the offset it asked for.
 */
export function offsetInsideBatch(stored: StoredBatches, partition: number, near: number): number {
  const inside = stored.batches
    .filter((b) => b.partition === partition && b.records > 1)
    .map((b) => Math.min(Math.max(near, b.baseOffset + 1), b.baseOffset + b.records - 1));
  inside.sort((a, b) => Math.abs(a - near) - Math.abs(b - near));
  return inside[0] ?? near;
}

/** True when `offset` is the first offset of a stored batch of `partition`. */
export function startsABatch(stored: StoredBatches, partition: number, offset: number): boolean {
  return stored.batches.some((b) => b.partition === partition && b.baseOffset === offset);
}
