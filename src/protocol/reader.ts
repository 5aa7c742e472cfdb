/**
 * Cursor over a received frame. Like franz-go's kbin reader, a short buffer is noted
 * once (`failed`) instead of throwing per field: every read past the end returns a zero
 * value, and the caller checks `complete()` or `failed` once after decoding.
 */
import { Buffer } from "node:buffer";

const TWO_POW_32 = 4294967296;

export class Reader {
  readonly buffer: Buffer;
  offset: number;
  readonly end: number;
  failed = false;
  /** Why decoding failed, for the log line when the connection is closed. */
  failure = "";

  constructor(bytes: Uint8Array, offset = 0, end = bytes.byteLength) {
    this.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  /** True when every byte was consumed and nothing failed. */
  complete(): boolean {
    return !this.failed && this.offset === this.end;
  }

  fail(reason: string): void {
    if (!this.failed) this.failure = reason;
    this.failed = true;
    this.offset = this.end;
  }

  #take(size: number): number {
    const at = this.offset;
    if (size > this.end - at) {
      this.fail(`Frame too short: needed ${size} bytes at ${at}`);
      return -1;
    }
    this.offset = at + size;
    return at;
  }

  int8(): number {
    const at = this.#take(1);
    return at < 0 ? 0 : this.buffer.readInt8(at);
  }
  int16(): number {
    const at = this.#take(2);
    return at < 0 ? 0 : this.buffer.readInt16BE(at);
  }
  uint16(): number {
    const at = this.#take(2);
    return at < 0 ? 0 : this.buffer.readUInt16BE(at);
  }
  int32(): number {
    const at = this.#take(4);
    return at < 0 ? 0 : this.buffer.readInt32BE(at);
  }
  uint32(): number {
    const at = this.#take(4);
    return at < 0 ? 0 : this.buffer.readUInt32BE(at);
  }
  /** int64 as a JS number: exact up to 2^53, which offsets and timestamps never reach. */
  int64(): number {
    const at = this.#take(8);
    if (at < 0) return 0;
    return this.buffer.readInt32BE(at) * TWO_POW_32 + this.buffer.readUInt32BE(at + 4);
  }
  float64(): number {
    const at = this.#take(8);
    return at < 0 ? 0 : this.buffer.readDoubleBE(at);
  }
  bool(): boolean {
    return this.int8() !== 0;
  }

  uvarint(): number {
    return this.#unsignedVarint(5);
  }

  /** Zig-zag varlong (records' timestamp deltas): exact within 2^53. */
  varlong(): number {
    const raw = this.#unsignedVarint(10);
    return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
  }

  #unsignedVarint(bytesMax: number): number {
    let value = 0;
    let shift = 0;
    for (let i = 0; i < bytesMax; i++) {
      const at = this.#take(1);
      if (at < 0) return 0;
      const byte = this.buffer[at]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7;
    }
    this.fail(`Varint longer than ${bytesMax} bytes`);
    return 0;
  }

  varint(): number {
    const raw = this.uvarint();
    return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
  }

  /** A view (no copy) of the next `size` bytes. */
  view(size: number): Uint8Array {
    if (size < 0) {
      this.fail(`Negative length ${size}`);
      return EMPTY;
    }
    const at = this.#take(size);
    return at < 0 ? EMPTY : this.buffer.subarray(at, at + size);
  }

  utf8(size: number): string {
    if (size < 0) {
      this.fail(`Negative string length ${size}`);
      return "";
    }
    const at = this.#take(size);
    return at < 0 ? "" : this.buffer.toString("utf8", at, at + size);
  }

  uuid(): string {
    const at = this.#take(16);
    if (at < 0) return ZERO_UUID;
    return formatUuid(this.buffer.subarray(at, at + 16));
  }
}

const EMPTY = new Uint8Array(0);
export const ZERO_UUID = "00000000-0000-0000-0000-000000000000";

export function formatUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function parseUuid(text: string): Buffer {
  const hex = text.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new Error(`Invalid UUID: ${text}`);
  return Buffer.from(hex, "hex");
}
