/**
 * @module
 * Helpers for the storage tests (not used by production code): temporary directories,
 * batches of a given shape, and a model of what a log should hold, to compare reads with.
 */
import { afterEach } from "bun:test";
import { Buffer } from "node:buffer";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBatch, concatBatches } from "../protocol/record-batch-builder.ts";
import { readBaseOffset, readBatchSize, readLastOffset } from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import type { AppendResult, PartitionLog } from "./partition-log.ts";

export const T0 = 1_700_000_000_000;

export function makeTempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `brook-${name}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * The temp dirs and open logs of a test file: push to them, and after each test the logs
 * are closed and the dirs removed (this registers the afterEach).
 */
export function tempLogs(): { dirs: string[]; logs: PartitionLog[] } {
  const dirs: string[] = [];
  const logs: PartitionLog[] = [];
  afterEach(() => {
    for (const log of logs.splice(0)) log.close();
    for (const dir of dirs.splice(0)) removeDir(dir);
  });
  return { dirs, logs };
}

export interface BatchShape {
  count: number;
  valueBytes?: number;
  baseTimestamp?: number;
  /** Timestamp step between records, ms. */
  stepMs?: number;
  gzip?: boolean;
}

/** A batch of `count` records with values of `valueBytes` bytes. */
export function makeBatch(shape: BatchShape): Buffer {
  const step = shape.stepMs ?? 1;
  return buildBatch({
    baseTimestamp: shape.baseTimestamp ?? T0,
    compression: shape.gzip === true ? "gzip" : "none",
    records: Array.from({ length: shape.count }, (_, i) => ({
      key: `k${i}`,
      value: Buffer.alloc(shape.valueBytes ?? 100, 97 + (i % 26)),
      headers: [],
      timestampDelta: i * step,
    })),
  });
}

export interface StoredBatch {
  baseOffset: number;
  lastOffset: number;
  bytes: Buffer;
}

/** What the log should contain: each appended batch as stamped. */
export class LogModel {
  readonly batches: StoredBatch[] = [];

  /** Appends `records` to `log` and remembers the stamped batches. */
  append(log: PartitionLog, records: Uint8Array, leaderEpoch = 0): AppendResult & { ok: true } {
    const result = log.append(records, { leaderEpoch });
    assert(result.ok, result.ok ? "" : `Append failed: ${result.kind}: ${result.message}`);
    for (const batch of splitBatches(records)) {
      this.batches.push({
        baseOffset: readBaseOffset(batch, 0),
        lastOffset: readLastOffset(batch, 0),
        bytes: Buffer.from(batch),
      });
    }
    return result;
  }

  get endOffset(): number {
    const last = this.batches[this.batches.length - 1];
    return last === undefined ? 0 : last.lastOffset + 1;
  }

  /** Index of the batch holding `offset`. */
  batchIndexFor(offset: number): number {
    const i = this.batches.findIndex((b) => b.lastOffset >= offset);
    assert(i >= 0, `No batch holds ${offset}`);
    return i;
  }

  /** Bytes of batches [from, to). */
  bytes(from: number, to = this.batches.length): Buffer {
    return Buffer.concat(this.batches.slice(from, to).map((b) => b.bytes));
  }
}

/** The batches of a records blob, as views. */
export function splitBatches(records: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < records.byteLength) {
    const size = readBatchSize(records, at);
    out.push(records.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Deterministic pseudo-random integers (a test prints nothing to replay: fixed seeds). */
export function seededRandom(seed: number): (bound: number) => number {
  let state = seed >>> 0;
  return (bound: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % bound;
  };
}

/** Appends batches of varied shapes until the log has `segments` segments. */
export function fillLog(log: PartitionLog, model: LogModel, segments: number, seed = 1): void {
  const random = seededRandom(seed);
  let timestamp = T0;
  while (log.segmentCount() < segments || (log.segmentCount() === segments && random(4) !== 0)) {
    const batchesInBlob = 1 + random(3);
    const blob = concatBatches(
      Array.from({ length: batchesInBlob }, () => {
        const count = 1 + random(6);
        const valueBytes = 50 + random(600);
        const batch = makeBatch({ count, valueBytes, baseTimestamp: timestamp, stepMs: 2 });
        timestamp += count * 2;
        return batch;
      }),
    );
    model.append(log, blob);
  }
}
