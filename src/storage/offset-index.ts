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
import { INDEX_ENTRIES_MAX, OFFSET_INDEX_ENTRY_BYTES, RELATIVE_OFFSET_MAX } from "./limits.ts";

const ENTRY = OFFSET_INDEX_ENTRY_BYTES;
const INITIAL_CAPACITY_ENTRIES = 64;

function int32At(buf: Uint8Array, i: number): number {
  return (buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!;
}

function setInt32At(buf: Uint8Array, i: number, value: number): void {
  buf[i] = (value >>> 24) & 0xff;
  buf[i + 1] = (value >>> 16) & 0xff;
  buf[i + 2] = (value >>> 8) & 0xff;
  buf[i + 3] = value & 0xff;
}

export class OffsetIndex {
  /** Offset that relative offsets are counted from: the segment's base offset. */
  readonly baseOffset: number;
  /** Entries in file format; capacity may exceed `#count` entries. */
  #bytes: Uint8Array;
  /** Entries in use. */
  #count: number;

  /**
   * `fileBytes` are the contents of an `.index` file; a torn trailing entry is ignored.
   * The entries are taken as they are: call `validPrefix` before trusting a file that a
   * crash may have left behind.
   */
  constructor(baseOffset: number, fileBytes?: Uint8Array) {
    assert(Number.isSafeInteger(baseOffset), "Index base offset is not a safe integer");
    assert(baseOffset >= 0, "Index base offset is negative");
    this.baseOffset = baseOffset;
    const whole = fileBytes === undefined ? 0 : Math.floor(fileBytes.byteLength / ENTRY);
    const count = Math.min(whole, INDEX_ENTRIES_MAX);
    this.#bytes = new Uint8Array(Math.max(count, INITIAL_CAPACITY_ENTRIES) * ENTRY);
    if (fileBytes !== undefined) this.#bytes.set(fileBytes.subarray(0, count * ENTRY));
    this.#count = count;
  }

  get entryCount(): number {
    return this.#count;
  }

  /** Bytes the entries take in the file. */
  get byteLength(): number {
    return this.#count * ENTRY;
  }

  /** Bytes held in memory (for cache accounting). */
  get memoryBytes(): number {
    return this.#bytes.byteLength;
  }

  get isFull(): boolean {
    return this.#count >= INDEX_ENTRIES_MAX;
  }

  relativeOffsetAt(i: number): number {
    assert(i >= 0 && i < this.#count, `Index entry out of range: ${i}`);
    return int32At(this.#bytes, i * ENTRY);
  }

  offsetAt(i: number): number {
    return this.baseOffset + this.relativeOffsetAt(i);
  }

  positionAt(i: number): number {
    assert(i >= 0 && i < this.#count, `Index entry out of range: ${i}`);
    return int32At(this.#bytes, i * ENTRY + 4);
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
    if (this.#count > 0) {
      const last = this.#count - 1;
      assert(relative > this.relativeOffsetAt(last), "Index offsets must increase");
      assert(position > this.positionAt(last), "Index positions must increase");
    }
    this.#reserve(this.#count + 1);
    setInt32At(this.#bytes, this.#count * ENTRY, relative);
    setInt32At(this.#bytes, this.#count * ENTRY + 4, position);
    this.#count++;
  }

  /** The entry with the largest offset <= `offset`, or -1 if every entry is above it. */
  floor(offset: number): number {
    const relative = offset - this.baseOffset;
    let low = 0;
    let high = this.#count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (int32At(this.#bytes, mid * ENTRY) <= relative) {
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
    assert(count >= 0 && count <= this.#count, `Index truncation out of range: ${count}`);
    this.#count = count;
  }

  /**
   * How many leading entries are trustworthy for a log of `logBytes` bytes: offsets and
   * positions strictly increasing, positions inside the log.
   */
  validPrefix(logBytes: number): number {
    let lastRelative = -1;
    let lastPosition = -1;
    for (let i = 0; i < this.#count; i++) {
      const relative = int32At(this.#bytes, i * ENTRY);
      const position = int32At(this.#bytes, i * ENTRY + 4);
      if (relative <= lastRelative || position <= lastPosition || position >= logBytes) return i;
      lastRelative = relative;
      lastPosition = position;
    }
    return this.#count;
  }

  /** File bytes of entries [from, to): what to write at file position from * 8. */
  entryBytes(from: number, to: number): Uint8Array {
    assert(from >= 0 && from <= to, `Index range is inverted: ${from}..${to}`);
    assert(to <= this.#count, `Index range ends past the entries: ${to}`);
    return this.#bytes.subarray(from * ENTRY, to * ENTRY);
  }

  #reserve(entries: number): void {
    if (entries * ENTRY <= this.#bytes.byteLength) return;
    const doubled = (this.#bytes.byteLength / ENTRY) * 2;
    const capacity = Math.min(Math.max(entries, doubled), INDEX_ENTRIES_MAX);
    const grown = new Uint8Array(capacity * ENTRY);
    grown.set(this.#bytes.subarray(0, this.#count * ENTRY));
    this.#bytes = grown;
  }
}
