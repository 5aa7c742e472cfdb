/**
 * One TCP port for every cluster stream. The gossip port number serves UDP for SWIM and
 * TCP for SWIM push-pull and (later) Raft; a connection says which by its first byte:
 * 0x53 'S' SWIM push-pull, 0x52 'R' Raft. Each kind registers a handler; a connection
 * with an unknown tag, or none within `firstByteTimeoutMs`, is closed.
 *
 * The handler receives the socket and the rest of the first chunk (the bytes after the
 * tag). It is called synchronously from the socket's first 'data' event, so listeners it
 * attaches at once miss nothing. From then on the socket is the handler's, but the
 * listener still destroys it on `close`, so a stop leaves no connection open.
 */
import { createServer, type Server, type Socket } from "node:net";
import { assert } from "../../util/assert.ts";
import { logger, type Logger } from "../../util/log.ts";
import type { Timers } from "./timers.ts";

export const STREAM_TAG_SWIM = 0x53; // 'S'
export const STREAM_TAG_RAFT = 0x52; // 'R'

export type StreamHandler = (socket: Socket, firstChunkRest: Buffer) => void;

export interface StreamListenerOptions {
  /** Address to bind, without brackets; port 0 picks a free port (see `port`). */
  readonly host: string;
  readonly port: number;
  readonly timers: Timers;
  /** A connection that sends nothing this long is closed. */
  readonly firstByteTimeoutMs?: number;
  readonly log?: Logger;
}

const FIRST_BYTE_TIMEOUT_MS = 10_000;

export class StreamListener {
  readonly #options: StreamListenerOptions;
  readonly #handlers = new Map<number, StreamHandler>();
  readonly #sockets = new Set<Socket>();
  readonly #log: Logger;
  #server: Server | null = null;
  #port = 0;
  #closed = false;

  constructor(options: StreamListenerOptions) {
    this.#options = options;
    this.#log = options.log ?? logger("streams");
  }

  /** The port actually bound (after `listen`). */
  get port(): number {
    assert(this.#server !== null, "Stream listener is not listening");
    return this.#port;
  }

  get host(): string {
    return this.#options.host;
  }

  /** Connections accepted and not yet closed. */
  connectionCount(): number {
    return this.#sockets.size;
  }

  register(tag: number, handler: StreamHandler): void {
    assert(Number.isInteger(tag) && tag >= 0 && tag <= 0xff, `Stream tag is not a byte: ${tag}`);
    assert(!this.#handlers.has(tag), `Stream tag ${tag} is already registered`);
    this.#handlers.set(tag, handler);
  }

  unregister(tag: number): void {
    this.#handlers.delete(tag);
  }

  /** Binds host:port; rejects if it cannot (the error's code says why, e.g. EADDRINUSE). */
  async listen(): Promise<void> {
    assert(this.#server === null, "Stream listener is already listening");
    assert(!this.#closed, "Stream listener is closed");
    const server = createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: this.#options.host, port: this.#options.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", (error) =>
      this.#log.warn("Stream listener error", { error: error.message }),
    );
    const address = server.address();
    this.#port =
      typeof address === "object" && address !== null ? address.port : this.#options.port;
    this.#server = server;
  }

  /** Stops listening and destroys every connection; calling it again is harmless. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    const server = this.#server;
    if (server === null) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    // A reset peer must not crash the process; handlers add their own listeners too.
    socket.on("error", (error) => this.#log.debug("Stream error", { error: error.message }));
    const cancel = this.#options.timers.after(
      this.#options.firstByteTimeoutMs ?? FIRST_BYTE_TIMEOUT_MS,
      () => {
        this.#log.debug("Stream sent no tag in time", { remote: socket.remoteAddress });
        socket.destroy();
      },
    );
    socket.on("close", () => {
      cancel();
      this.#sockets.delete(socket);
    });
    socket.once("data", (chunk: Buffer) => {
      cancel();
      const tag = chunk[0] as number;
      const handler = this.#handlers.get(tag);
      if (handler === undefined) {
        this.#log.debug("Stream with an unknown tag", { tag, remote: socket.remoteAddress });
        socket.destroy();
        return;
      }
      handler(socket, chunk.subarray(1));
    });
  }
}
