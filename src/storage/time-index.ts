/**
 * @module
 * A segment's sparse time index in memory: entries of (timestamp int64, relative
 * offset int32), big-endian, exactly as in the `.timeindex` file.
 *
 * An entry (T, O) is written together with each offset index entry, O being that
 * entry's batch, and T the largest batch max timestamp of the segment up to and
 * including that batch. So T never decreases, and T < ts proves that no batch up to O
 * holds a record at or after ts: a lookup for ts starts at the last entry with T < ts
 * and scans at most one index interval. When a segment is sealed a closing entry
 * (segment max timestamp, last batch) is added, so the last entry of a sealed segment
 * gives its largest timestamp without a scan. (Kafka's entries hold the offset where the
 * maximum was first reached instead; this form bounds the scan when timestamps are not
 * monotonic.)
 *
 * Invariants: timestamps never decrease; relative offsets strictly increase and are >= 0.
 */
import { assert } from "../util/assert.ts";
import { IndexEntries } from "./index-entries.ts";
import { RELATIVE_OFFSET_MAX, TIME_INDEX_ENTRIES_MAX, TIME_INDEX_ENTRY_BYTES } from "./limits.ts";

/** Byte positions of an entry's fields. */
const TIMESTAMP_AT = 0;
const RELATIVE_OFFSET_AT = 8;

export class TimeIndex {
  readonly baseOffset: number;
  readonly #entries: IndexEntries;

  /** `fileBytes` are the contents of a `.timeindex` file; a torn trailing entry is ignored. */
  constructor(baseOffset: number, fileBytes?: Uint8Array) {
    assert(Number.isSafeInteger(baseOffset), "Time index base offset is not a safe integer");
    assert(baseOffset >= 0, "Time index base offset is negative");
    this.baseOffset = baseOffset;
    this.#entries = new IndexEntries(TIME_INDEX_ENTRY_BYTES, TIME_INDEX_ENTRIES_MAX, fileBytes);
  }

  get entryCount(): number {
    return this.#entries.count;
  }

  get byteLength(): number {
    return this.#entries.byteLength;
  }

  get memoryBytes(): number {
    return this.#entries.memoryBytes;
  }

  timestampAt(i: number): number {
    this.#entries.check(i, "Time index");
    return this.#entries.int64(i, TIMESTAMP_AT);
  }

  relativeOffsetAt(i: number): number {
    this.#entries.check(i, "Time index");
    return this.#entries.int32(i, RELATIVE_OFFSET_AT);
  }

  offsetAt(i: number): number {
    return this.baseOffset + this.relativeOffsetAt(i);
  }

  append(timestampMs: number, offset: number): void {
    assert(!this.#entries.isFull, "Time index is full");
    assert(Number.isSafeInteger(timestampMs), `Time index timestamp is unsafe: ${timestampMs}`);
    const relative = offset - this.baseOffset;
    assert(Number.isInteger(relative), "Time index offset is not an integer");
    assert(relative >= 0, `Time index offset is below the segment base: ${offset}`);
    assert(relative <= RELATIVE_OFFSET_MAX, `Time index offset is too far past base: ${offset}`);
    const count = this.#entries.count;
    if (count > 0) {
      assert(timestampMs >= this.timestampAt(count - 1), "Time index timestamps must not decrease");
      assert(relative > this.relativeOffsetAt(count - 1), "Time index offsets must increase");
    }
    this.#entries.append((i) => {
      this.#entries.setInt64(i, TIMESTAMP_AT, timestampMs);
      this.#entries.setInt32(i, RELATIVE_OFFSET_AT, relative);
    });
  }

  /** The last entry whose timestamp is < `timestampMs`, or -1. */
  lastBelow(timestampMs: number): number {
    let low = 0;
    let high = this.#entries.count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.#entries.int64(mid, TIMESTAMP_AT) < timestampMs) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }

  truncate(count: number): void {
    this.#entries.truncate(count);
  }

  /** How many leading entries keep the invariants (timestamps up or equal, offsets up). */
  validPrefix(): number {
    let lastTimestamp = -Infinity;
    let lastRelative = -1;
    const count = this.#entries.count;
    for (let i = 0; i < count; i++) {
      const timestamp = this.#entries.int64(i, TIMESTAMP_AT);
      const relative = this.#entries.int32(i, RELATIVE_OFFSET_AT);
      if (timestamp < lastTimestamp || relative <= lastRelative) return i;
      lastTimestamp = timestamp;
      lastRelative = relative;
    }
    return count;
  }

  entryBytes(from: number, to: number): Uint8Array {
    return this.#entries.bytes(from, to);
  }
}
