/**
 * Splits a byte stream into frames that start with a 4-byte big-endian length, as Kafka
 * sends requests and responses and as Brook's cluster port sends its commands. A frame
 * that arrived within one chunk is a view of that chunk (no copy); only a frame split
 * across chunks is copied, once. A length outside [min, max] is an error: the stream is
 * broken and the caller closes it, so nothing beyond `max` is ever buffered for a frame.
 */
import { Buffer } from "node:buffer";

export const FRAME_LENGTH_BYTES = 4;

export interface FrameBounds {
  /** Smallest acceptable length (after the prefix). */
  readonly min: number;
  /** Largest acceptable length (after the prefix). */
  readonly max: number;
}

/**
 * Where a frame split across chunks is assembled. The default is a fresh buffer per
 * frame; a reader that is done with each frame before asking for the next may pass one
 * reused buffer instead (the load generator does, so a 32 MiB fetch answer does not
 * fault in 32 MiB of new pages each time).
 */
export type FrameAllocator = (size: number) => Buffer;

/** Why the stream cannot be split further. */
export interface FrameError {
  readonly error: string;
}

export class FrameSplitter {
  readonly #bounds: FrameBounds;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  readonly #allocate: FrameAllocator;

  constructor(bounds: FrameBounds, allocate: FrameAllocator = Buffer.allocUnsafe) {
    this.#bounds = bounds;
    this.#allocate = allocate;
  }

  push(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.byteLength;
  }

  /** The next whole frame without its length, null until more bytes come, or an error. */
  next(): Buffer | null | FrameError {
    if (this.#pendingBytes < FRAME_LENGTH_BYTES) return null;
    const size = this.#peekLength();
    const { min, max } = this.#bounds;
    if (size < min || size > max) return { error: `Frame size ${size} outside [${min}, ${max}]` };
    if (this.#pendingBytes < FRAME_LENGTH_BYTES + size) return null;
    return this.#take(FRAME_LENGTH_BYTES + size).subarray(FRAME_LENGTH_BYTES);
  }

  /** Whether a whole frame (or a bad length) is buffered: what `next` would not answer null to. */
  hasFrame(): boolean {
    if (this.#pendingBytes < FRAME_LENGTH_BYTES) return false;
    const size = this.#peekLength();
    return (
      size < this.#bounds.min ||
      size > this.#bounds.max ||
      this.#pendingBytes >= FRAME_LENGTH_BYTES + size
    );
  }

  /** Drops what is buffered (the stream is being closed). */
  clear(): void {
    this.#pending = [];
    this.#pendingBytes = 0;
  }

  #peekLength(): number {
    const first = this.#pending[0]!;
    if (first.byteLength >= FRAME_LENGTH_BYTES) return first.readInt32BE(0);
    const joined = Buffer.concat(this.#pending);
    this.#pending = [joined];
    return joined.readInt32BE(0);
  }

  /** Removes `size` bytes from the front of the pending chunks, copying only if split. */
  #take(size: number): Buffer {
    const first = this.#pending[0]!;
    let taken: Buffer;
    if (first.byteLength >= size) {
      taken = first.subarray(0, size);
      if (first.byteLength === size) this.#pending.shift();
      else this.#pending[0] = first.subarray(size);
    } else {
      taken = this.#allocate(size);
      let filled = 0;
      while (filled < size) {
        const chunk = this.#pending[0]!;
        const use = Math.min(chunk.byteLength, size - filled);
        chunk.copy(taken, filled, 0, use);
        filled += use;
        if (use === chunk.byteLength) this.#pending.shift();
        else this.#pending[0] = chunk.subarray(use);
      }
    }
    this.#pendingBytes -= size;
    return taken;
  }
}

export function isFrameError(value: Buffer | FrameError): value is FrameError {
  return !Buffer.isBuffer(value);
}
