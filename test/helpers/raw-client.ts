/**
 * A minimal Kafka client on Brook's own codec, for tests that must send exact bytes
 * (bad input, specific versions) and read exact answers. Requests are pipelined; answers
 * are matched by correlation id.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { decode, encode } from "../../src/protocol/codec.ts";
import { API_TABLES } from "../../src/protocol/generated/index.ts";
import { requestHeaderVersion, responseHeaderVersion } from "../../src/protocol/headers.ts";
import { RequestHeader } from "../../src/protocol/generated/request-header.ts";
import { ResponseHeader } from "../../src/protocol/generated/response-header.ts";
import { Reader } from "../../src/protocol/reader.ts";
import { Writer } from "../../src/protocol/writer.ts";

export class RawClient {
  readonly #socket: Socket;
  #buffer = Buffer.alloc(0);
  #nextCorrelationId = 1;
  readonly #waiting = new Map<number, { apiKey: number; version: number; resolve: (value: any) => void; reject: (error: Error) => void }>();
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (data: Buffer) => this.#onData(data));
    this.closed = new Promise((resolve) => socket.on("close", () => {
      for (const waiter of this.#waiting.values()) waiter.reject(new Error("Connection closed"));
      this.#waiting.clear();
      resolve();
    }));
    socket.on("error", () => {});
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  /** Sends a request built from the API's table and resolves with the decoded answer. */
  request<T = any>(apiKey: number, version: number, body: Record<string, unknown>): Promise<T> {
    const api = API_TABLES.get(apiKey)!;
    const correlationId = this.#nextCorrelationId++;
    const writer = new Writer();
    encode(RequestHeader, requestHeaderVersion(api.request, version), { requestApiKey: apiKey, requestApiVersion: version, correlationId, clientId: "raw-test" }, writer);
    encode(api.request, version, body as never, writer);
    const payload = writer.toBuffer();
    const frame = Buffer.alloc(4 + payload.length);
    frame.writeInt32BE(payload.length, 0);
    payload.copy(frame, 4);
    const answer = new Promise<T>((resolve, reject) => this.#waiting.set(correlationId, { apiKey, version, resolve, reject }));
    this.#socket.write(frame);
    return answer;
  }

  /** Sends bytes as they are (bad input tests). */
  writeRaw(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(data: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, data]);
    while (this.#buffer.length >= 4) {
      const size = this.#buffer.readInt32BE(0);
      if (this.#buffer.length < 4 + size) return;
      const frame = this.#buffer.subarray(4, 4 + size);
      this.#buffer = this.#buffer.subarray(4 + size);
      const correlationId = frame.readInt32BE(0);
      const waiter = this.#waiting.get(correlationId);
      if (waiter === undefined) continue;
      this.#waiting.delete(correlationId);
      const api = API_TABLES.get(waiter.apiKey)!;
      const reader = new Reader(frame);
      decode(ResponseHeader, responseHeaderVersion(waiter.apiKey, api.response, waiter.version), reader);
      // A KIP-511 fallback answer to ApiVersions is always v0.
      const version = waiter.apiKey === 18 && frame.length >= 6 && frame.readInt16BE(4) === 35 ? 0 : waiter.version;
      const body = decode(api.response, version, reader);
      if (!reader.complete()) waiter.reject(new Error(`Malformed response: ${reader.failure}`));
      else waiter.resolve(body);
    }
  }
}
