/**
 * One client connection: 4-byte length framing, decoding, and an ordered pipeline.
 * Many requests may be in flight; responses leave strictly in request order (Kafka's
 * guarantee to clients), whatever order the handlers finish in.
 *
 * Invariants: a frame larger than `frameBytesMax` or shorter than a request header
 * closes this connection only; at most `inFlightMax` requests are pending and at most
 * about OUTBOUND_BYTES_HIGH of responses wait to be written, beyond that the socket is
 * paused so one client cannot grow the broker's memory (or open files) without bound.
 */
import { FrameSplitter, isFrameError } from "./frame-splitter.ts";
import { Buffer } from "node:buffer";
import type { Socket } from "node:net";
import { decode } from "../protocol/codec.ts";
import { type OutChunk, releaseChunks } from "../protocol/deferred-bytes.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  API_VERSIONS_KEY,
  decodeRequestHeader,
  encodeResponseFrame,
  REQUEST_HEADER_BYTES_MIN,
  requestHeaderVersion,
} from "../protocol/headers.ts";
import { Reader } from "../protocol/reader.ts";
import { inRange } from "../protocol/schema.ts";
import { logger } from "../util/log.ts";
import { type ApiHandler, NO_RESPONSE, type RequestContext } from "./handler.ts";
import { type DirectSend, Outbound } from "./outbound.ts";
import { sendFile, socketDescriptor } from "./sendfile.ts";
import type { HandlerRegistry } from "./registry.ts";

const log = logger("connection");
export const IN_FLIGHT_MAX = 256;
/** Response bytes queued for one client above which its requests are not read... */
const OUTBOUND_BYTES_HIGH = 64 * 1024 * 1024;
/** ...until they fall to this. */
const OUTBOUND_BYTES_LOW = 16 * 1024 * 1024;
/**
 * Request bytes one connection may have handled before it lets the others have a turn:
 * a producer pipelining large requests would otherwise hold the event loop for all of
 * them at once, while every other client's small request waits (Kafka's network threads
 * read one request per connection per poll for the same reason).
 */
export const TURN_BYTES_MAX = 256 * 1024;
/** Ready answers of at least this many bytes are sent at once rather than at the turn's end. */
const FLUSH_AT_ONCE_BYTES = 64 * 1024;

interface Slot {
  /** Encoded response chunks once ready; null while the handler runs; [] for no response. */
  chunks: OutChunk[] | null;
  /** `RequestObserver.now()` when the frame was taken; 0 without an observer. */
  startedAt: number;
}

/**
 * Told of every request once its handler has answered (also with no response, or with a
 * failure): request latency per API for the metrics. `now` is read when the frame is
 * taken, and `requestDone` gets it back when the handler's answer is in, before it is
 * encoded and waits its turn behind earlier responses: decoding, the handler's work and
 * its wait (a Fetch long poll, an acks=-1 Produce) are in it.
 */
export interface RequestObserver {
  now(): number;
  /** `requestName` is the request schema's name, e.g. "ProduceRequest". */
  requestDone(requestName: string, startedAt: number): void;
}

export interface ConnectionOptions {
  readonly frameBytesMax: number;
  readonly registry: HandlerRegistry;
  readonly onClose: (connection: Connection) => void;
  readonly observer?: RequestObserver;
  /**
   * Null when the node may answer; else a promise of when it may. Requests other than
   * ApiVersions wait for it (a node whose metadata has not caught up); answers keep the
   * order of the requests, so an ApiVersions behind a waiting request waits too.
   */
  readonly ready?: () => Promise<void> | null;
}

let nextConnectionId = 1;

/** sendfile for this socket where the runtime allows it (server/sendfile.ts). */
function directSend(socket: Socket): DirectSend | null {
  const socketFd = socketDescriptor(socket);
  return sendFile === null || socketFd === null ? null : { socketFd, sendFile };
}

export class Connection {
  readonly id = nextConnectionId++;
  readonly remote: string;
  readonly #socket: Socket;
  readonly #options: ConnectionOptions;
  /** Received bytes not yet forming a whole frame. */
  readonly #frames: FrameSplitter;
  readonly #slots: Slot[] = [];
  /** Responses on their way out, written as fast as the socket takes them. */
  readonly #outbound: Outbound;
  #closed = false;
  #paused = false;
  /** True while #takeFrames runs. */
  #taking = false;
  /** A turn ended with whole frames left: they are taken after the other connections' I/O. */
  #yielded = false;
  /**
   * Responses are ready but not yet handed to the socket: they go in one write at the end
   * of the turn (#takeFrames) or of the microtasks that completed them.
   */
  #flushDue = false;
  /**
   * Bytes of answers encoded but not yet handed to #outbound (waiting for the end of the
   * turn, or behind an earlier request still running). They count toward the bound on
   * what one client may make the broker hold, like the queued ones: a deferred fetch
   * answer holds its segment files open.
   */
  #readyBytes = 0;

  constructor(socket: Socket, options: ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#frames = new FrameSplitter({ min: REQUEST_HEADER_BYTES_MIN, max: options.frameBytesMax });
    this.#outbound = new Outbound(
      socket,
      {
        onBroken: (error) => this.close(`Response could not be sent: ${error.message}`),
        onWritten: () => this.#updateReading(),
      },
      directSend(socket),
    );
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on("data", (data: Buffer) => this.#onData(data));
    socket.on("error", (error) =>
      log.debug("Socket error", { connection: this.id, error: error.message }),
    );
    socket.on("close", () => this.#onClosed());
  }

  /** Not reading: too many answers are queued for a client that does not take them. */
  get paused(): boolean {
    return this.#paused;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(reason: string): void {
    if (this.#closed) return;
    log.warn(`Closing connection: ${reason}`, { connection: this.id, remote: this.remote });
    this.#closed = true;
    this.#dropPending();
    this.#socket.destroy();
  }

  #onClosed(): void {
    this.#closed = true;
    this.#dropPending();
    this.#options.onClose(this);
  }

  /** Forgets what was received and not sent; deferred record batches are released. */
  #dropPending(): void {
    for (const slot of this.#slots) if (slot.chunks !== null) releaseChunks(slot.chunks);
    this.#slots.length = 0;
    this.#readyBytes = 0;
    this.#frames.clear();
    this.#outbound.clear();
  }

  #onData(data: Buffer): void {
    if (this.#closed) return;
    this.#frames.push(data);
    this.#takeFrames();
  }

  /**
   * Handles the whole frames received, until paused: one chunk may carry hundreds of
   * small requests, and a paused connection takes none of them until it resumes.
   */
  #takeFrames(): void {
    // Resumed from within the loop below: it carries on. Yielded: the turn's end takes them.
    if (this.#taking || this.#yielded) return;
    this.#taking = true;
    let turnBytes = 0;
    try {
      while (!this.#closed && !this.#paused) {
        if (turnBytes >= TURN_BYTES_MAX && this.#frames.hasFrame()) {
          this.#yield();
          return;
        }
        const frame = this.#frames.next();
        if (frame === null) return;
        if (isFrameError(frame)) return this.close(frame.error);
        turnBytes += frame.byteLength;
        this.#onFrame(frame);
      }
    } finally {
      this.#taking = false;
      // The answers this turn's frames got at once leave in one write.
      this.#flushNow();
    }
  }

  /**
   * Ends this connection's turn: reading stops (what it sends meanwhile waits in the
   * kernel, not here) and the remaining frames are taken once the event loop has served
   * the I/O that is ready.
   */
  #yield(): void {
    this.#yielded = true;
    this.#socket.pause();
    setImmediate(() => {
      this.#yielded = false;
      if (this.#closed) return;
      if (!this.#paused) this.#socket.resume();
      this.#takeFrames();
    });
  }

  #onFrame(frame: Buffer): void {
    const startedAt = this.#options.observer?.now() ?? 0;
    const reader = new Reader(frame);
    const apiKey = reader.int16();
    const apiVersion = reader.int16();
    reader.offset = 0;
    const handler = this.#options.registry.get(apiKey);
    if (handler === undefined) {
      if (apiKey === API_VERSIONS_KEY) return; // Registry always has ApiVersions.
      this.close(`Unsupported api key ${apiKey}`);
      return;
    }
    const supported = inRange(apiVersion, handler.versions);
    if (!supported && apiKey !== API_VERSIONS_KEY) {
      this.close(`Unsupported version ${apiVersion} of api key ${apiKey}`);
      return;
    }
    // KIP-511: an ApiVersions request of a version the broker does not know is answered
    // in v0 with UNSUPPORTED_VERSION and the supported ranges; its body is not decoded.
    const headerVersion = supported ? requestHeaderVersion(handler.request, apiVersion) : 1;
    const header = decodeRequestHeader(reader, headerVersion);
    if (reader.failed) {
      this.close(`Malformed request header: ${reader.failure}`);
      return;
    }
    const context: RequestContext = {
      apiKey,
      apiVersion,
      correlationId: header.correlationId,
      clientId: header.clientId,
      connectionId: this.id,
      remote: this.remote,
    };
    if (!supported) {
      this.#respondNow(handler, context, 0, {
        errorCode: ErrorCode.UNSUPPORTED_VERSION,
        apiKeys: this.#options.registry.apiVersionsList(),
      });
      return;
    }
    const request = decode(handler.request, apiVersion, reader);
    if (!reader.complete()) {
      this.close(
        `Malformed ${handler.request.name} v${apiVersion}: ${reader.failure || "trailing bytes"}`,
      );
      return;
    }
    this.#dispatch(handler, context, request, startedAt);
  }

  #dispatch(
    handler: ApiHandler,
    context: RequestContext,
    request: unknown,
    startedAt: number,
  ): void {
    const slot: Slot = { chunks: null, startedAt };
    this.#slots.push(slot);
    this.#updateReading();
    let result: unknown;
    const notReady = context.apiKey === API_VERSIONS_KEY ? null : (this.#options.ready?.() ?? null);
    try {
      result =
        notReady === null
          ? handler.handle(request, context)
          : notReady.then(() => handler.handle(request, context));
    } catch (error) {
      this.#fail(handler, context, slot, error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => this.#complete(handler, context, slot, value),
        (error) => this.#fail(handler, context, slot, error),
      );
    } else {
      this.#complete(handler, context, slot, result);
    }
  }

  #fail(handler: ApiHandler, context: RequestContext, slot: Slot, error: unknown): void {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log.error(`Handler ${handler.request.name} failed`, { connection: this.id, error: message });
    // Only a response with a top-level error code can say "unknown server error" without
    // echoing the request; any other API closes the connection so the client retries.
    if (handler.response.fields.some((field) => field.name === "errorCode")) {
      this.#complete(handler, context, slot, { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR });
    } else {
      this.close(`Handler ${handler.request.name} failed`);
    }
  }

  #complete(handler: ApiHandler, context: RequestContext, slot: Slot, value: unknown): void {
    this.#options.observer?.requestDone(handler.request.name, slot.startedAt);
    if (value === NO_RESPONSE) {
      if (this.#closed) return;
      slot.chunks = [];
    } else {
      // Encoded even after a close: the chunks may hold deferred record batches (open
      // segment files) that must be released.
      let chunks: OutChunk[];
      try {
        chunks = this.#encodeResponse(handler, context, value);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log.error(`Encoding ${handler.response.name} v${context.apiVersion} failed`, {
          error: message,
        });
        this.close("Response could not be encoded");
        return;
      }
      if (this.#closed) {
        releaseChunks(chunks);
        return;
      }
      this.#ready(slot, chunks);
    }
    this.#flushSoon();
  }

  #respondNow(handler: ApiHandler, context: RequestContext, version: number, value: unknown): void {
    const slot: Slot = { chunks: null, startedAt: 0 };
    this.#slots.push(slot);
    this.#ready(slot, this.#encodeResponse(handler, { ...context, apiVersion: version }, value));
    this.#flushSoon();
  }

  #ready(slot: Slot, chunks: OutChunk[]): void {
    slot.chunks = chunks;
    for (const chunk of chunks) this.#readyBytes += chunk.byteLength;
  }

  /**
   * Sends ready responses once the current turn is done rather than one write each: a
   * client pipelining small requests (librdkafka's linger.ms=0 producer sends one per
   * partition batch) gets all the answers of a turn in one send, so a busier broker makes
   * fewer system calls per request instead of more. Frames taken in #takeFrames are
   * flushed at its end; answers completed later (a promise, a long poll) at the end of
   * the microtasks that completed them, before the event loop goes back to I/O.
   */
  #flushSoon(): void {
    // Large answers gain nothing from waiting, and must reach the bound of #updateReading.
    if (this.#readyBytes >= FLUSH_AT_ONCE_BYTES) {
      this.#flushDue = true;
      this.#flushNow();
      return;
    }
    this.#updateReading();
    if (this.#flushDue) return;
    this.#flushDue = true;
    if (!this.#taking) queueMicrotask(() => this.#flushNow());
  }

  #flushNow(): void {
    if (!this.#flushDue) return;
    this.#flushDue = false;
    this.#flush();
  }

  #encodeResponse(handler: ApiHandler, context: RequestContext, value: unknown): OutChunk[] {
    return encodeResponseFrame(
      context.apiKey,
      context.apiVersion,
      context.correlationId,
      handler.response,
      value as never,
    );
  }

  /** Writes every ready response at the head of the queue, in order. */
  #flush(): void {
    if (this.#closed) return;
    const ready: OutChunk[] = [];
    while (this.#slots.length > 0 && this.#slots[0]!.chunks !== null) {
      for (const chunk of this.#slots.shift()!.chunks!) {
        ready.push(chunk);
        this.#readyBytes -= chunk.byteLength;
      }
    }
    if (ready.length > 0) this.#outbound.send(ready);
    this.#updateReading();
  }

  /**
   * Stops reading requests while too many are pending or too many response bytes wait
   * for a client that does not read them (a deferred fetch answer holds open segment
   * files, so this also bounds descriptors); reads again once both are well below.
   */
  #updateReading(): void {
    if (this.#closed) return;
    const pending = this.#slots.length;
    const queued = this.#outbound.queuedBytes + this.#readyBytes;
    if (!this.#paused && (pending >= IN_FLIGHT_MAX || queued > OUTBOUND_BYTES_HIGH)) {
      this.#paused = true;
      this.#socket.pause();
    } else if (this.#paused && pending < IN_FLIGHT_MAX / 2 && queued <= OUTBOUND_BYTES_LOW) {
      this.#paused = false;
      this.#socket.resume();
      this.#takeFrames(); // Frames that arrived with the chunk that paused us.
    }
  }
}
