/**
 * @module
 * A segment's sparse offset index in memory: entries of (relative offset int32,
 * position int32), big-endian, exactly as in the `.index` file, one per
 * index.interval.bytes of log. An entry names the base offset of a batch and where that
 * batch starts in the `.log` file.
 *
 * Invariants: relative offsets and positions strictly increase; relative offsets are
 * >= 0. Any prefix of a valid index is valid (lookups only get slower), which is what
 * makes a short index after a crash harmless and cheap to complete.
 *
 * Pure data: the segment owns the file and persists `entryBytes()` ranges.
 */
import { assert } from "../util/assert.ts";
import { IndexEntries } from "./index-entries.ts";
import { INDEX_ENTRIES_MAX, OFFSET_INDEX_ENTRY_BYTES, RELATIVE_OFFSET_MAX } from "./limits.ts";

/** Byte positions of an entry's fields. */
const RELATIVE_OFFSET_AT = 0;
const POSITION_AT = 4;

export class OffsetIndex {
  /** Offset that relative offsets are counted from: the segment's base offset. */
  readonly baseOffset: number;
  readonly #entries: IndexEntries;

  /**
   * `fileBytes` are the contents of an `.index` file; a torn trailing entry is ignored.
   * The entries are taken as they are: call `validPrefix` before trusting a file that a
   * crash may have left behind.
   */
  constructor(baseOffset: number, fileBytes?: Uint8Array) {
    assert(Number.isSafeInteger(baseOffset), "Index base offset is not a safe integer");
    assert(baseOffset >= 0, "Index base offset is negative");
    this.baseOffset = baseOffset;
    this.#entries = new IndexEntries(OFFSET_INDEX_ENTRY_BYTES, INDEX_ENTRIES_MAX, fileBytes);
  }

  get entryCount(): number {
    return this.#entries.count;
  }

  /** Bytes the entries take in the file. */
  get byteLength(): number {
    return this.#entries.byteLength;
  }

  /** Bytes held in memory (for cache accounting). */
  get memoryBytes(): number {
    return this.#entries.memoryBytes;
  }

  get isFull(): boolean {
    return this.#entries.isFull;
  }

  relativeOffsetAt(i: number): number {
    this.#entries.check(i, "Index");
    return this.#entries.int32(i, RELATIVE_OFFSET_AT);
  }

  offsetAt(i: number): number {
    return this.baseOffset + this.relativeOffsetAt(i);
  }

  positionAt(i: number): number {
    this.#entries.check(i, "Index");
    return this.#entries.int32(i, POSITION_AT);
  }

  /** Adds an entry for the batch with base `offset` starting at `position`. */
  append(offset: number, position: number): void {
    assert(!this.isFull, "Offset index is full");
    const relative = offset - this.baseOffset;
    assert(Number.isInteger(relative), "Index offset is not an integer");
    assert(relative >= 0, `Index offset is below the segment base: ${offset}`);
    assert(relative <= RELATIVE_OFFSET_MAX, `Index offset is too far past the base: ${offset}`);
    assert(Number.isInteger(position), "Index position is not an integer");
    assert(position >= 0, `Index position is negative: ${position}`);
    assert(position <= RELATIVE_OFFSET_MAX, `Index position exceeds int32: ${position}`);
    const count = this.#entries.count;
    if (count > 0) {
      assert(relative > this.relativeOffsetAt(count - 1), "Index offsets must increase");
      assert(position > this.positionAt(count - 1), "Index positions must increase");
    }
    this.#entries.append((i) => {
      this.#entries.setInt32(i, RELATIVE_OFFSET_AT, relative);
      this.#entries.setInt32(i, POSITION_AT, position);
    });
  }

  /** The entry with the largest offset <= `offset`, or -1 if every entry is above it. */
  floor(offset: number): number {
    return this.#lastAtOrBelow(RELATIVE_OFFSET_AT, offset - this.baseOffset);
  }

  /** The last entry whose position is <= `position`, or -1 (positions grow with offsets). */
  floorPosition(position: number): number {
    return this.#lastAtOrBelow(POSITION_AT, position);
  }

  /** Binary search over one field of the entries, which grows with the entry index. */
  #lastAtOrBelow(field: number, value: number): number {
    let low = 0;
    let high = this.#entries.count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.#entries.int32(mid, field) <= value) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }

  /** Keeps the first `count` entries. */
  truncate(count: number): void {
    this.#entries.truncate(count);
  }

  /**
   * How many leading entries are trustworthy for a log of `logBytes` bytes: offsets and
   * positions strictly increasing, positions inside the log.
   */
  validPrefix(logBytes: number): number {
    let lastRelative = -1;
    let lastPosition = -1;
    const count = this.#entries.count;
    for (let i = 0; i < count; i++) {
      const relative = this.#entries.int32(i, RELATIVE_OFFSET_AT);
      const position = this.#entries.int32(i, POSITION_AT);
      if (relative <= lastRelative || position <= lastPosition || position >= logBytes) return i;
      lastRelative = relative;
      lastPosition = position;
    }
    return count;
  }

  /** File bytes of entries [from, to): what to write at file position from * 8. */
  entryBytes(from: number, to: number): Uint8Array {
    return this.#entries.bytes(from, to);
  }
}
