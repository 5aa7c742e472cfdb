/**
 * @module
 * The storage of an index in memory: fixed-size entries of big-endian integers in a
 * growable buffer, exactly as the index file holds them, so that persisting a range is
 * a view of this buffer. The offset index and the time index each give their entries a
 * meaning; this holds the bytes, the count, the growth and the bounds.
 */
import { assert } from "../util/assert.ts";

const INITIAL_CAPACITY_ENTRIES = 64;
const TWO_POW_32 = 4294967296;

export class IndexEntries {
  /** Bytes per entry. */
  readonly width: number;
  /** Most entries the index may hold. */
  readonly max: number;
  /** Entries in file format; capacity may exceed `count` entries. */
  #bytes: Uint8Array;
  /** Entries in use. */
  #count: number;

  /** `fileBytes` are an index file's contents; a torn trailing entry is ignored. */
  constructor(width: number, max: number, fileBytes?: Uint8Array) {
    assert(Number.isInteger(width) && width > 0, `Index entry width is not positive: ${width}`);
    this.width = width;
    this.max = max;
    const whole = fileBytes === undefined ? 0 : Math.floor(fileBytes.byteLength / width);
    const count = Math.min(whole, max);
    this.#bytes = new Uint8Array(Math.max(count, INITIAL_CAPACITY_ENTRIES) * width);
    if (fileBytes !== undefined) this.#bytes.set(fileBytes.subarray(0, count * width));
    this.#count = count;
  }

  get count(): number {
    return this.#count;
  }

  get isFull(): boolean {
    return this.#count >= this.max;
  }

  /** Bytes the entries take in the file. */
  get byteLength(): number {
    return this.#count * this.width;
  }

  /** Bytes held in memory (for cache accounting). */
  get memoryBytes(): number {
    return this.#bytes.byteLength;
  }

  /** The int32 at byte `at` of entry `i`; `i` is not checked (binary searches). */
  int32(i: number, at: number): number {
    const buf = this.#bytes;
    const p = i * this.width + at;
    return (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
  }

  int64(i: number, at: number): number {
    return this.int32(i, at) * TWO_POW_32 + (this.int32(i, at + 4) >>> 0);
  }

  /** Asserts that entry `i` exists. */
  check(i: number, what: string): void {
    assert(i >= 0 && i < this.#count, `${what} entry out of range: ${i}`);
  }

  /** Adds an entry; `fill` writes its fields through `setInt32` / `setInt64`. */
  append(fill: (i: number) => void): void {
    assert(!this.isFull, "Index is full");
    this.#reserve(this.#count + 1);
    fill(this.#count);
    this.#count++;
  }

  setInt32(i: number, at: number, value: number): void {
    const buf = this.#bytes;
    const p = i * this.width + at;
    buf[p] = (value >>> 24) & 0xff;
    buf[p + 1] = (value >>> 16) & 0xff;
    buf[p + 2] = (value >>> 8) & 0xff;
    buf[p + 3] = value & 0xff;
  }

  setInt64(i: number, at: number, value: number): void {
    const high = Math.floor(value / TWO_POW_32);
    this.setInt32(i, at, high | 0);
    this.setInt32(i, at + 4, (value - high * TWO_POW_32) >>> 0);
  }

  /** Keeps the first `count` entries. */
  truncate(count: number): void {
    assert(count >= 0 && count <= this.#count, `Index truncation out of range: ${count}`);
    this.#count = count;
  }

  /** File bytes of entries [from, to): what to write at file position from * width. */
  bytes(from: number, to: number): Uint8Array {
    assert(from >= 0 && from <= to, `Index range is inverted: ${from}..${to}`);
    assert(to <= this.#count, `Index range ends past the entries: ${to}`);
    return this.#bytes.subarray(from * this.width, to * this.width);
  }

  #reserve(entries: number): void {
    if (entries * this.width <= this.#bytes.byteLength) return;
    const doubled = (this.#bytes.byteLength / this.width) * 2;
    const capacity = Math.min(Math.max(entries, doubled), this.max);
    const grown = new Uint8Array(capacity * this.width);
    grown.set(this.#bytes.subarray(0, this.#count * this.width));
    this.#bytes = grown;
  }
}
