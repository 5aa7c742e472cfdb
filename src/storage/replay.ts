/**
 * Reading a whole log batch by batch, for the broker's internal logs that are replayed
 * into memory at start (metadata, committed offsets).
 */
import { readBaseOffset, readBatchSize, readLastOffset } from "../protocol/record-batch.ts";
import { assert } from "../util/assert.ts";
import type { PartitionLog } from "./partition-log.ts";

const REPLAY_READ_BYTES = 1024 * 1024;

/** Calls `visit` with every batch from the log start to the log end, in offset order. */
export function forEachStoredBatch(
  log: PartitionLog,
  visit: (batch: Uint8Array, baseOffset: number) => void,
): void {
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const read = log.read(offset, REPLAY_READ_BYTES, { minOneBatch: true });
    assert(read.ok, `${log.dir} unreadable at offset ${offset}`);
    const bytes = read.records;
    // Compaction may leave no batch between here and the log end.
    if (bytes.byteLength === 0) break;
    for (let at = 0; at < bytes.byteLength;) {
      const size = readBatchSize(bytes, at);
      visit(bytes.subarray(at, at + size), readBaseOffset(bytes, at));
      offset = readLastOffset(bytes, at) + 1;
      at += size;
    }
  }
}
