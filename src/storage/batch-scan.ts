/**
 * @module
 * The batch walker: visits the RecordBatches of a range of a .log file in order, a chunk
 * read at a time, by header only or verified (magic, size, CRC, record count). Separate
 * from segment.ts because it knows a descriptor and a range, not segments or indexes:
 * recovery, index rebuilds, lookups in a segment and the cleaner's swap recovery share it.
 */
import { Buffer } from "node:buffer";
import {
  BATCH_HEADER_BYTES,
  MAGIC_V2,
  batchCrcIsValid,
  readBatchSize,
  readLastOffsetDelta,
  readMagic,
  readRecordCount,
} from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import { BATCH_BYTES_MAX } from "./limits.ts";
import { readFully } from "./segment-files.ts";

// ---------------------------------------------------------------------------------------
// Scanning batch by batch: recovery, index rebuilds and the short scans after an index
// lookup all use this.

/**
 * headers: the visitor gets at least the batch's 61-byte header; used on data already
 * verified. verify: the visitor gets the whole batch, checked (magic, length, CRC,
 * record count) first; used where a crash may have torn the data.
 */
export type ScanMode = "headers" | "verify";

/**
 * end: every batch in range was visited. found: the visitor stopped at `position`.
 * partial: the range ends inside the batch at `position`. corrupt: the batch at
 * `position` fails a check.
 */
export type ScanStop = "end" | "found" | "partial" | "corrupt";

export interface ScanOutcome {
  stop: ScanStop;
  /** For "end", the end of the range; otherwise where the batch it stopped at starts. */
  position: number;
  /** Why a partial or corrupt batch was refused; empty otherwise. */
  reason: string;
  /** Bytes the scan read from the file (what recovery reports as its cost). */
  bytesRead: number;
}

/**
 * `buf` holds the batch at `at` (it starts at file `position` and has `size` bytes);
 * valid only during the call. Return true to stop the scan there.
 */
export type BatchVisitor = (buf: Uint8Array, at: number, position: number, size: number) => boolean;

/**
 * Visits the batches of file range [from, to) in order, reading chunks of `chunkBytes`
 * (grown to one whole batch in verify mode). Allocates one chunk per scan.
 */
export function scanBatches(
  fd: number,
  from: number,
  to: number,
  mode: ScanMode,
  chunkBytes: number,
  visit: BatchVisitor,
): ScanOutcome {
  assert(from >= 0, "Scan starts before the file");
  assert(from <= to, "Scan range is inverted");
  let chunk = Buffer.allocUnsafe(Math.max(BATCH_HEADER_BYTES, Math.min(chunkBytes, to - from)));
  // File range held in `chunk`.
  let chunkStart = from;
  let chunkEnd = from;
  let position = from;
  let bytesRead = 0;
  const stopped = (stop: ScanStop, reason: string): ScanOutcome => ({
    stop,
    position,
    reason,
    bytesRead,
  });
  while (position < to) {
    const left = to - position;
    if (left < BATCH_HEADER_BYTES) {
      return stopped("partial", `Batch header is cut: ${left} bytes left`);
    }
    if (position + BATCH_HEADER_BYTES > chunkEnd) {
      const n = readFully(fd, chunk, 0, Math.min(chunk.byteLength, left), position);
      bytesRead += n;
      chunkStart = position;
      chunkEnd = position + n;
      if (n < BATCH_HEADER_BYTES) return stopped("partial", `File ends at ${chunkEnd}`);
    }
    let at = position - chunkStart;
    const magic = readMagic(chunk, at);
    if (magic !== MAGIC_V2) return stopped("corrupt", `Batch magic is ${magic}`);
    const size = readBatchSize(chunk, at);
    if (size < BATCH_HEADER_BYTES || size > BATCH_BYTES_MAX) {
      return stopped("corrupt", `Batch size is implausible: ${size}`);
    }
    if (size > left) return stopped("partial", `Batch is cut: ${left} of ${size} bytes`);
    if (mode === "verify") {
      if (position + size > chunkEnd) {
        if (size > chunk.byteLength) chunk = Buffer.allocUnsafe(size);
        const n = readFully(fd, chunk, 0, Math.min(chunk.byteLength, left), position);
        bytesRead += n;
        chunkStart = position;
        chunkEnd = position + n;
        at = 0;
        if (n < size) return stopped("partial", `File ends at ${chunkEnd}`);
      }
      if (!batchCrcIsValid(chunk, at, size)) return stopped("corrupt", "Batch CRC mismatch");
      // A batch has at least one record and no more than its offsets allow; compaction
      // leaves fewer records than offsets (batch-filter.ts keeps lastOffsetDelta).
      const count = readRecordCount(chunk, at);
      if (count < 1 || readLastOffsetDelta(chunk, at) < count - 1) {
        return stopped("corrupt", `Batch record count is off: ${count}`);
      }
    }
    if (visit(chunk, at, position, size)) return stopped("found", "");
    position += size;
  }
  return stopped("end", "");
}
