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
import { RELATIVE_OFFSET_MAX, TIME_INDEX_ENTRIES_MAX, TIME_INDEX_ENTRY_BYTES } from "./limits.ts";

const ENTRY = TIME_INDEX_ENTRY_BYTES;
const INITIAL_CAPACITY_ENTRIES = 64;
const TWO_POW_32 = 4294967296;

function int32At(buf: Uint8Array, i: number): number {
  return (buf[i]! << 24) | (buf[i + 1]! << 16) | (buf[i + 2]! << 8) | buf[i + 3]!;
}

function int64At(buf: Uint8Array, i: number): number {
  return int32At(buf, i) * TWO_POW_32 + (int32At(buf, i + 4) >>> 0);
}

function setInt32At(buf: Uint8Array, i: number, value: number): void {
  buf[i] = (value >>> 24) & 0xff;
  buf[i + 1] = (value >>> 16) & 0xff;
  buf[i + 2] = (value >>> 8) & 0xff;
  buf[i + 3] = value & 0xff;
}

function setInt64At(buf: Uint8Array, i: number, value: number): void {
  const high = Math.floor(value / TWO_POW_32);
  setInt32At(buf, i, high | 0);
  setInt32At(buf, i + 4, (value - high * TWO_POW_32) >>> 0);
}

export class TimeIndex {
  readonly baseOffset: number;
  /** Entries in file format; capacity may exceed `#count` entries. */
  #bytes: Uint8Array;
  /** Entries in use. */
  #count: number;

  /** `fileBytes` are the contents of a `.timeindex` file; a torn trailing entry is ignored. */
  constructor(baseOffset: number, fileBytes?: Uint8Array) {
    assert(Number.isSafeInteger(baseOffset), "Time index base offset is not a safe integer");
    assert(baseOffset >= 0, "Time index base offset is negative");
    this.baseOffset = baseOffset;
    const whole = fileBytes === undefined ? 0 : Math.floor(fileBytes.byteLength / ENTRY);
    const count = Math.min(whole, TIME_INDEX_ENTRIES_MAX);
    this.#bytes = new Uint8Array(Math.max(count, INITIAL_CAPACITY_ENTRIES) * ENTRY);
    if (fileBytes !== undefined) this.#bytes.set(fileBytes.subarray(0, count * ENTRY));
    this.#count = count;
  }

  get entryCount(): number {
    return this.#count;
  }

  get byteLength(): number {
    return this.#count * ENTRY;
  }

  get memoryBytes(): number {
    return this.#bytes.byteLength;
  }

  timestampAt(i: number): number {
    assert(i >= 0 && i < this.#count, `Time index entry out of range: ${i}`);
    return int64At(this.#bytes, i * ENTRY);
  }

  relativeOffsetAt(i: number): number {
    assert(i >= 0 && i < this.#count, `Time index entry out of range: ${i}`);
    return int32At(this.#bytes, i * ENTRY + 8);
  }

  offsetAt(i: number): number {
    return this.baseOffset + this.relativeOffsetAt(i);
  }

  append(timestampMs: number, offset: number): void {
    assert(this.#count < TIME_INDEX_ENTRIES_MAX, "Time index is full");
    assert(Number.isSafeInteger(timestampMs), `Time index timestamp is unsafe: ${timestampMs}`);
    const relative = offset - this.baseOffset;
    assert(Number.isInteger(relative), "Time index offset is not an integer");
    assert(relative >= 0, `Time index offset is below the segment base: ${offset}`);
    assert(relative <= RELATIVE_OFFSET_MAX, `Time index offset is too far past base: ${offset}`);
    if (this.#count > 0) {
      const last = this.#count - 1;
      assert(timestampMs >= this.timestampAt(last), "Time index timestamps must not decrease");
      assert(relative > this.relativeOffsetAt(last), "Time index offsets must increase");
    }
    this.#reserve(this.#count + 1);
    setInt64At(this.#bytes, this.#count * ENTRY, timestampMs);
    setInt32At(this.#bytes, this.#count * ENTRY + 8, relative);
    this.#count++;
  }

  /** The last entry whose timestamp is < `timestampMs`, or -1. */
  lastBelow(timestampMs: number): number {
    let low = 0;
    let high = this.#count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (int64At(this.#bytes, mid * ENTRY) < timestampMs) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }

  truncate(count: number): void {
    assert(count >= 0 && count <= this.#count, `Time index truncation out of range: ${count}`);
    this.#count = count;
  }

  /** How many leading entries keep the invariants (timestamps up or equal, offsets up). */
  validPrefix(): number {
    let lastTimestamp = -Infinity;
    let lastRelative = -1;
    for (let i = 0; i < this.#count; i++) {
      const timestamp = int64At(this.#bytes, i * ENTRY);
      const relative = int32At(this.#bytes, i * ENTRY + 8);
      if (timestamp < lastTimestamp || relative <= lastRelative) return i;
      lastTimestamp = timestamp;
      lastRelative = relative;
    }
    return this.#count;
  }

  entryBytes(from: number, to: number): Uint8Array {
    assert(from >= 0 && from <= to, `Time index range is inverted: ${from}..${to}`);
    assert(to <= this.#count, `Time index range ends past the entries: ${to}`);
    return this.#bytes.subarray(from * ENTRY, to * ENTRY);
  }

  #reserve(entries: number): void {
    if (entries * ENTRY <= this.#bytes.byteLength) return;
    const doubled = (this.#bytes.byteLength / ENTRY) * 2;
    const capacity = Math.min(Math.max(entries, doubled), TIME_INDEX_ENTRIES_MAX);
    const grown = new Uint8Array(capacity * ENTRY);
    grown.set(this.#bytes.subarray(0, this.#count * ENTRY));
    this.#bytes = grown;
  }
}
