/**
 * @module
 * Bytes an encoded message refers to without holding them: a large Fetch answer's
 * record batches stay in their segment files until the connection writes them, read a
 * piece at a time as the socket takes them (src/storage/file-slice.ts). The encoder only
 * needs the length; the writer keeps the value as a chunk of its own.
 */

export interface DeferredBytes {
  readonly byteLength: number;
  /**
   * The next at most `maxBytes` bytes, in order, in a buffer the caller may keep. Throws
   * when the bytes cannot be read any more (the frame they belong to is then broken).
   */
  next(maxBytes: number): Uint8Array;
  /** Releases what the bytes hold (file descriptors); safe to call more than once. */
  release(): void;
  /**
   * Null when the next piece of at most `maxBytes` can be taken (`next` or `sendWith`)
   * without waiting for the disk; else a promise, never rejected, that settles once it
   * can. The writer does not take a piece before then.
   */
  whenReadable?(maxBytes: number): Promise<void> | null;
  /**
   * Where the bytes are in a file and sending them straight from it (sendfile) is worth
   * it: sends the next at most `maxBytes` with `send` (file descriptor, position,
   * count → bytes sent, 0 when the socket is full) and returns what was sent. Null when
   * the bytes had better be read with `next`.
   */
  sendWith?(
    send: (fileFd: number, position: number, count: number) => number,
    maxBytes: number,
  ): number | null;
}

/** What an encoded message is made of: byte arrays and deferred ranges. */
export type OutChunk = Uint8Array | DeferredBytes;

export function isDeferred(chunk: OutChunk): chunk is DeferredBytes {
  return !(chunk instanceof Uint8Array);
}

/** Reads a deferred range whole (for callers that need one buffer) and releases it. */
export function materialize(bytes: DeferredBytes): Uint8Array {
  try {
    const whole = new Uint8Array(bytes.byteLength);
    let filled = 0;
    while (filled < whole.byteLength) {
      const piece = bytes.next(whole.byteLength - filled);
      whole.set(piece, filled);
      filled += piece.byteLength;
    }
    return whole;
  } finally {
    bytes.release();
  }
}

/** Releases every deferred chunk (a response that will not be sent). */
export function releaseChunks(chunks: readonly OutChunk[]): void {
  for (const chunk of chunks) if (isDeferred(chunk)) chunk.release();
}
