/**
 * @module
 * The load generator's connection: 4-byte length framing over one TCP socket and
 * nothing else. Requests go out as pre-encoded frames; every whole response frame is
 * handed to `onFrame` (without its length prefix, so it starts with the correlation id).
 *
 * Made for throughput: a frame that arrives within one chunk is passed as a subarray of
 * that chunk; only a frame split across chunks is copied, once, into a buffer of its
 * exact size. Responses are matched by the caller (the generator keeps its own window).
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { FRAME_LENGTH_BYTES } from "./workload.ts";

/** Larger than any response the bench asks for (fetch max_bytes is at most 55 MiB). */
const FRAME_BYTES_MAX = 128 * 1024 * 1024;

export class FrameSocket {
  readonly #socket: Socket;
  /** Chunks received and not yet part of a delivered frame, and their total size. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #error: Error | null = null;
  onFrame: (frame: Buffer) => void = () => {};
  onClose: (error: Error) => void = () => {};

  /** Wraps a connected socket (the null broker wraps accepted ones). */
  constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (error) => {
      this.#error ??= error;
    });
    socket.on("close", () => this.onClose(this.#error ?? new Error("Connection closed")));
  }

  static connect(port: number, host = "127.0.0.1"): Promise<FrameSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once("connect", () => {
        socket.removeAllListeners("error");
        resolve(new FrameSocket(socket));
      });
      socket.once("error", (error) => reject(new Error(`Cannot connect to ${host}:${port}: ${error.message}`)));
    });
  }

  /** Queues a frame; false when the kernel buffer is full (the caller may await drain). */
  write(frame: Uint8Array): boolean {
    return this.#socket.write(frame);
  }

  drained(): Promise<void> {
    return new Promise((resolve) => this.#socket.once("drain", () => resolve()));
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.byteLength;
    while (this.#pendingBytes >= FRAME_LENGTH_BYTES) {
      let first = this.#pending[0]!;
      if (first.byteLength < FRAME_LENGTH_BYTES) {
        first = Buffer.concat(this.#pending);
        this.#pending = [first];
      }
      const size = first.readInt32BE(0);
      if (size < 4 || size > FRAME_BYTES_MAX) {
        this.#error = new Error(`Broken response stream: frame of ${size} bytes`);
        this.#socket.destroy();
        return;
      }
      const total = FRAME_LENGTH_BYTES + size;
      if (this.#pendingBytes < total) return;
      this.onFrame(this.#take(total).subarray(FRAME_LENGTH_BYTES));
    }
  }

  #take(size: number): Buffer {
    const first = this.#pending[0]!;
    let taken: Buffer;
    if (first.byteLength >= size) {
      taken = first.subarray(0, size);
      if (first.byteLength === size) this.#pending.shift();
      else this.#pending[0] = first.subarray(size);
    } else {
      taken = Buffer.allocUnsafe(size);
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
