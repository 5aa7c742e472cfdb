/**
 * @module
 * What a connection sends, in order, written to its socket in pieces of at most
 * `PIECE_BYTES` and only while the socket keeps up.
 *
 * Why pieces: handing the runtime one 32 MiB response (or corking several chunks into
 * one) makes it queue and copy what the kernel does not take at once. Measured on Bun
 * 1.4 between two processes on loopback, answering 32 MiB per request: one write 1.8-2.0
 * GB/s, cork + write 1.3 GB/s, 1 MiB writes that wait for `drain` when the socket says
 * so 3.3 GB/s, 256 KiB 2.6 GB/s, 64 KiB 1.5 GB/s. So large chunks go out as 1 MiB views
 * (no copy) and the queue waits for `drain`; small chunks that are ready together (the
 * header and fields of one response, or several pipelined Produce answers) are copied
 * into one piece, so the socket sees one write where cork/uncork used to gather them.
 *
 * Deferred chunks (record batches still in their segment files) are read a piece at a
 * time only when the socket can take it: a 32 MiB fetch answer then costs the broker
 * about one piece of memory, and the client receives its first bytes before the last
 * ones are read. A deferred chunk that cannot be read breaks its frame: `onBroken` is
 * told, and the connection closes.
 *
 * The queue holds references to the chunks it was given until they are written, so the
 * caller must not change them afterwards; it releases deferred chunks once read, and in
 * `clear`.
 */
import { Buffer } from "node:buffer";
import { isDeferred, type OutChunk, releaseChunks } from "../protocol/deferred-bytes.ts";
import type { SendFile } from "./sendfile.ts";

/** Largest single socket write. */
export const PIECE_BYTES = 1024 * 1024;
/** Chunks up to this size are copied together into one piece rather than written alone. */
const SMALL_CHUNK_BYTES = 64 * 1024;

/** The part of a socket the queue uses (node:net's Socket has it). */
export interface WritableSocket {
  write(data: Uint8Array): boolean;
  once(event: "drain", listener: () => void): unknown;
  readonly destroyed: boolean;
  /** Bytes the runtime holds for the socket, not yet taken by the kernel. */
  readonly writableLength: number;
}

export interface OutboundEvents {
  /** A deferred chunk could not be read: its frame is broken, the connection must close. */
  onBroken(error: Error): void;
  /** The socket took more after waiting for drain (queuedBytes went down). */
  onWritten?(): void;
}

/** Writing straight from files to the socket's descriptor (server/sendfile.ts). */
export interface DirectSend {
  readonly socketFd: number;
  readonly sendFile: SendFile;
}

export class Outbound {
  readonly #socket: WritableSocket;
  readonly #events: OutboundEvents;
  readonly #direct: DirectSend | null;
  readonly #chunks: OutChunk[] = [];
  /** Index of the first unsent chunk in #chunks, and how much of it was sent. */
  #head = 0;
  #headSent = 0;
  #queuedBytes = 0;
  #waitingForDrain = false;
  /** The head chunk's next piece is being read off the request thread (not cached). */
  #waitingForDisk = false;

  constructor(socket: WritableSocket, events: OutboundEvents, direct: DirectSend | null = null) {
    this.#socket = socket;
    this.#events = events;
    this.#direct = direct;
  }

  /** Bytes accepted but not yet handed to the socket. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Queues chunks after everything queued before and writes what the socket takes. */
  send(chunks: readonly OutChunk[]): void {
    for (const chunk of chunks) {
      if (chunk.byteLength === 0) continue;
      this.#chunks.push(chunk);
      this.#queuedBytes += chunk.byteLength;
    }
    this.#pump();
  }

  /** Drops everything not yet written (the connection is closing). */
  clear(): void {
    releaseChunks(this.#chunks.slice(this.#head));
    this.#chunks.length = 0;
    this.#head = 0;
    this.#headSent = 0;
    this.#queuedBytes = 0;
  }

  #pump(): void {
    while (
      !this.#waitingForDrain &&
      !this.#waitingForDisk &&
      this.#queuedBytes > 0 &&
      !this.#socket.destroyed
    ) {
      let piece: Uint8Array;
      try {
        if (this.#waitForDisk()) return;
        if (this.#sendDirect()) continue;
        piece = this.#nextPiece();
      } catch (error) {
        this.clear();
        this.#events.onBroken(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      this.#queuedBytes -= piece.byteLength;
      if (!this.#socket.write(piece)) {
        this.#waitingForDrain = true;
        this.#socket.once("drain", () => {
          this.#waitingForDrain = false;
          this.#pump();
          this.#events.onWritten?.();
        });
      }
    }
    if (this.#queuedBytes === 0) {
      this.#chunks.length = 0;
      this.#head = 0;
    } else if (this.#head > COMPACT_AFTER && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /**
   * True when the head chunk's next piece is not in the page cache: it is read on the
   * runtime's file-system threads and the queue goes on once it is, so the request
   * thread never waits for the disk on a consumer's behalf.
   */
  #waitForDisk(): boolean {
    const first = this.#chunks[this.#head]!;
    if (!isDeferred(first) || first.whenReadable === undefined) return false;
    const readable = first.whenReadable(this.#pieceBytes(first));
    if (readable === null) return false;
    this.#waitingForDisk = true;
    void readable.then(() => {
      this.#waitingForDisk = false;
      this.#pump();
      this.#events.onWritten?.();
    });
    return true;
  }

  /** The size of the next piece of a deferred head chunk. */
  #pieceBytes(head: OutChunk): number {
    return Math.min(PIECE_BYTES, head.byteLength - this.#headSent);
  }

  /**
   * sendfile from the head chunk when it is in a file that wants it and the runtime
   * holds nothing for the socket (so bytes cannot overtake each other). True when bytes
   * went out; false when the socket is full (a read piece goes next, and its write waits
   * for drain) or the chunk is better read.
   */
  #sendDirect(): boolean {
    const direct = this.#direct;
    const first = this.#chunks[this.#head]!;
    if (direct === null || !isDeferred(first) || first.sendWith === undefined) return false;
    if (this.#socket.writableLength > 0) return false;
    const { socketFd, sendFile } = direct;
    const sent = first.sendWith(
      (fileFd, position, count) => sendFile(socketFd, fileFd, position, count),
      this.#pieceBytes(first),
    );
    if (sent === null || sent === 0) return false;
    this.#queuedBytes -= sent;
    this.#advance(this.#headSent + sent);
    return true;
  }

  /** The next piece: read from a deferred chunk, a view of a large one, or small ones copied together. */
  #nextPiece(): Uint8Array {
    const first = this.#chunks[this.#head]!;
    if (isDeferred(first)) {
      const piece = first.next(this.#pieceBytes(first));
      if (piece.byteLength === 0) throw new Error("Deferred bytes ended early");
      this.#advance(this.#headSent + piece.byteLength);
      return piece;
    }
    if (
      first.byteLength - this.#headSent > SMALL_CHUNK_BYTES ||
      this.#head + 1 === this.#chunks.length
    ) {
      const end = Math.min(first.byteLength, this.#headSent + PIECE_BYTES);
      const piece = first.subarray(this.#headSent, end);
      this.#advance(end);
      return piece;
    }
    // Gather the run of small chunks (the first may be the tail of a large one).
    let size = 0;
    let last = this.#head;
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i]!;
      if (isDeferred(chunk)) break;
      const left = chunk.byteLength - (i === this.#head ? this.#headSent : 0);
      if (left > SMALL_CHUNK_BYTES || size + left > PIECE_BYTES) break;
      size += left;
      last = i;
    }
    const piece = Buffer.allocUnsafe(size);
    let filled = 0;
    for (let i = this.#head; i <= last; i++) {
      const chunk = this.#chunks[i] as Uint8Array;
      const from = i === this.#head ? this.#headSent : 0;
      piece.set(from === 0 ? chunk : chunk.subarray(from), filled);
      filled += chunk.byteLength - from;
      this.#chunks[i] = EMPTY;
    }
    this.#head = last + 1;
    this.#headSent = 0;
    return piece;
  }

  /** Marks the head chunk sent up to `end`; moves to the next chunk when it is done. */
  #advance(end: number): void {
    const head = this.#chunks[this.#head]!;
    if (end < head.byteLength) {
      this.#headSent = end;
      return;
    }
    if (isDeferred(head)) head.release();
    this.#chunks[this.#head] = EMPTY;
    this.#head++;
    this.#headSent = 0;
  }
}

const EMPTY = new Uint8Array(0);
/** Sent chunks at the front of the array are dropped in bulk past this many. */
const COMPACT_AFTER = 1024;
