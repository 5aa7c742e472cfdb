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
import { FrameSplitter, isFrameError } from "../../src/server/frame-splitter.ts";

/** Larger than any response the bench asks for (fetch max_bytes is at most 55 MiB). */
const FRAME_BYTES_MAX = 128 * 1024 * 1024;

export class FrameSocket {
  readonly #socket: Socket;
  /** The same splitter the broker reads requests with. */
  readonly #frames: FrameSplitter;
  #error: Error | null = null;
  onFrame: (frame: Buffer) => void = () => {};
  onClose: (error: Error) => void = () => {};

  /**
   * Wraps a connected socket (the null broker wraps accepted ones). With `reuseFrames`,
   * a frame split across chunks is assembled in one buffer kept for the connection, so
   * a frame is valid only until `onFrame` returns: a consumer reading large answers
   * then pays one copy per frame, not a fresh allocation of its size.
   */
  constructor(socket: Socket, options: { reuseFrames?: boolean } = {}) {
    this.#socket = socket;
    let scratch = Buffer.alloc(0);
    const reused = (size: number) => {
      if (scratch.byteLength < size) scratch = Buffer.allocUnsafe(size);
      return scratch.subarray(0, size);
    };
    this.#frames = new FrameSplitter(
      { min: 4, max: FRAME_BYTES_MAX },
      options.reuseFrames ? reused : Buffer.allocUnsafe,
    );
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (error) => {
      this.#error ??= error;
    });
    socket.on("close", () => this.onClose(this.#error ?? new Error("Connection closed")));
  }

  static connect(
    port: number,
    host = "127.0.0.1",
    options: { reuseFrames?: boolean } = {},
  ): Promise<FrameSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      socket.once("connect", () => {
        socket.removeAllListeners("error");
        resolve(new FrameSocket(socket, options));
      });
      socket.once("error", (error) =>
        reject(new Error(`Cannot connect to ${host}:${port}: ${error.message}`)),
      );
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
    this.#frames.push(chunk);
    for (;;) {
      const frame = this.#frames.next();
      if (frame === null) return;
      if (isFrameError(frame)) {
        this.#error = new Error(`Broken response stream: ${frame.error}`);
        this.#frames.clear();
        this.#socket.destroy();
        return;
      }
      this.onFrame(frame);
    }
  }
}
