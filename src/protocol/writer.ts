/**
 * Growable output for encoding responses. Small fields go into a scratch buffer; large
 * byte ranges (record batches read from segment files) are kept as references, so a
 * fetch response is a list of chunks handed to the socket without another copy.
 */
import { Buffer } from "node:buffer";
import { type DeferredBytes, isDeferred, materialize, type OutChunk } from "./deferred-bytes.ts";
import { parseUuid } from "./reader.ts";

const TWO_POW_32 = 4294967296;
/** Byte fields at least this long are referenced, not copied. */
const REFERENCE_BYTES_MIN = 1024;
const SCRATCH_BYTES_INITIAL = 1024;

export class Writer {
  #chunks: OutChunk[] = [];
  #scratch: Buffer;
  #position = 0;
  /** Where the not yet flushed part of the scratch buffer begins. */
  #pending = 0;
  #flushedBytes = 0;

  constructor(initialBytes = SCRATCH_BYTES_INITIAL) {
    this.#scratch = Buffer.allocUnsafe(initialBytes);
  }

  /** Total bytes written so far. */
  get length(): number {
    return this.#flushedBytes + (this.#position - this.#pending);
  }

  #ensure(size: number): number {
    if (this.#position + size > this.#scratch.length) {
      this.#flushScratch();
      const capacity = Math.max(size, this.#scratch.length * 2);
      this.#scratch = Buffer.allocUnsafe(capacity);
      this.#position = 0;
      this.#pending = 0;
    }
    const at = this.#position;
    this.#position += size;
    return at;
  }

  #flushScratch(): void {
    if (this.#position > this.#pending) {
      this.#chunks.push(this.#scratch.subarray(this.#pending, this.#position));
      this.#flushedBytes += this.#position - this.#pending;
      this.#pending = this.#position;
    }
  }

  int8(value: number): void {
    const at = this.#ensure(1);
    this.#scratch.writeInt8(value, at);
  }
  int16(value: number): void {
    const at = this.#ensure(2);
    this.#scratch.writeInt16BE(value, at);
  }
  uint16(value: number): void {
    const at = this.#ensure(2);
    this.#scratch.writeUInt16BE(value, at);
  }
  int32(value: number): void {
    const at = this.#ensure(4);
    this.#scratch.writeInt32BE(value, at);
  }
  uint32(value: number): void {
    const at = this.#ensure(4);
    this.#scratch.writeUInt32BE(value >>> 0, at);
  }
  int64(value: number): void {
    const at = this.#ensure(8);
    const high = Math.floor(value / TWO_POW_32);
    this.#scratch.writeInt32BE(high, at);
    this.#scratch.writeUInt32BE(value - high * TWO_POW_32, at + 4);
  }
  float64(value: number): void {
    const at = this.#ensure(8);
    this.#scratch.writeDoubleBE(value, at);
  }
  bool(value: boolean): void {
    this.int8(value ? 1 : 0);
  }

  uvarint(value: number): void {
    let rest = value;
    while (rest >= 0x80) {
      // Reserve before indexing: #ensure may replace the scratch buffer.
      const at = this.#ensure(1);
      this.#scratch[at] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    const at = this.#ensure(1);
    this.#scratch[at] = rest;
  }

  varint(value: number): void {
    this.uvarint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  utf8(text: string, byteLength: number): void {
    const at = this.#ensure(byteLength);
    this.#scratch.write(text, at, byteLength, "utf8");
  }

  uuid(text: string): void {
    const at = this.#ensure(16);
    parseUuid(text).copy(this.#scratch, at);
  }

  /** Bytes of a field; deferred bytes (and large arrays) become chunks of their own. */
  bytes(data: Uint8Array | DeferredBytes): void {
    if (isDeferred(data) || data.byteLength >= REFERENCE_BYTES_MIN) {
      this.#flushScratch();
      this.#chunks.push(data);
      this.#flushedBytes += data.byteLength;
      return;
    }
    const at = this.#ensure(data.byteLength);
    this.#scratch.set(data, at);
  }

  /**
   * The written bytes as chunks, in order; deferred bytes stay deferred (the caller
   * writes or releases them). The writer must not be used afterwards.
   */
  chunks(): OutChunk[] {
    this.#flushScratch();
    return this.#chunks;
  }

  /**
   * The written bytes as one buffer (copies when there is more than one chunk; reads
   * and releases deferred bytes).
   */
  toBuffer(): Buffer {
    const chunks = this.chunks().map((chunk) => (isDeferred(chunk) ? materialize(chunk) : chunk));
    if (chunks.length === 1) {
      const only = chunks[0]!;
      return Buffer.from(only.buffer, only.byteOffset, only.byteLength);
    }
    return Buffer.concat(chunks);
  }
}
