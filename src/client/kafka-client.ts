/**
 * A small Kafka client on Brook's own codec, the one every part of Brook that talks to
 * a broker uses: `brook produce` and `brook consume`, the follower fetcher
 * (src/replication), the build's start-up recording (build/compile.ts), and tests that
 * send exact requests (`test/helpers/raw-client.ts` re-exports `KafkaConnection` as
 * `RawClient`).
 *
 * `KafkaConnection` is one TCP connection: requests are framed with a v1/v2 request
 * header, pipelined, and answers matched by correlation id. Every request has a deadline
 * (`requestTimeoutMs`, plus the long-poll wait for Fetch): an answer that never comes
 * rejects instead of hanging the command. The connection closing rejects whatever waits.
 *
 * `KafkaCluster` adds what the commands need on top: a bootstrap connection, a check
 * that the broker answers the API versions used here, Metadata, and one connection per
 * broker (by node id) to reach partition leaders.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { decode, encode } from "../protocol/codec.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import {
  API_TABLES,
  ApiVersionsRequest,
  ApiVersionsResponse,
  FindCoordinatorRequest,
  FindCoordinatorResponse,
  MetadataRequest,
  MetadataResponse,
  type MetadataResponseData,
} from "../protocol/generated/index.ts";
import { RequestHeader } from "../protocol/generated/request-header.ts";
import { ResponseHeader } from "../protocol/generated/response-header.ts";
import { requestHeaderVersion, responseHeaderVersion } from "../protocol/headers.ts";
import { Reader } from "../protocol/reader.ts";
import type { Encodable, MessageSchema } from "../protocol/schema.ts";
import { Writer } from "../protocol/writer.ts";
import { FrameSplitter, isFrameError } from "../server/frame-splitter.ts";

const FRAME_LENGTH_BYTES = 4;
const API_VERSIONS_KEY = 18;
/** KIP-511: an ApiVersions answer with this code is always v0. */
const UNSUPPORTED_VERSION = 35;
/** A response larger than this is a broken stream, not a response. */
export const RESPONSE_BYTES_MAX = 128 * 1024 * 1024;
export const REQUEST_TIMEOUT_MS_DEFAULT = 30_000;

export interface ApiPair<Req, Res> {
  readonly request: MessageSchema<Req>;
  readonly response: MessageSchema<Res>;
}

export interface ConnectionOptions {
  /** Sent in every request header. */
  clientId?: string;
  /** How long an answer may take beyond what the request asks the broker to wait. */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * Assemble answers split across reads in one buffer reused from answer to answer,
   * instead of a new one each time. Only for a caller that is done with each answer
   * (and every view into it) before it sends its next request, one at a time: the
   * follower fetcher, whose answers are megabytes each.
   */
  reuseAnswerBuffer?: boolean;
}

interface Waiter {
  apiKey: number;
  version: number;
  timer: ReturnType<typeof setTimeout>;
  resolve: (value: any) => void;
  reject: (error: Error) => void;
}

export class KafkaConnection {
  readonly host: string;
  readonly port: number;
  readonly #socket: Socket;
  readonly #clientId: string;
  readonly #requestTimeoutMs: number;
  /** Received bytes not yet forming a whole frame. */
  readonly #frames: FrameSplitter;
  #nextCorrelationId = 1;
  readonly #waiting = new Map<number, Waiter>();
  #closedError: Error | null = null;
  readonly closed: Promise<void>;

  private constructor(socket: Socket, host: string, port: number, options: ConnectionOptions) {
    this.#socket = socket;
    this.host = host;
    this.port = port;
    this.#clientId = options.clientId ?? "brook-cli";
    this.#requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
    let reused = Buffer.alloc(0);
    const allocate =
      options.reuseAnswerBuffer === true
        ? (size: number) =>
            (reused.byteLength >= size ? reused : (reused = Buffer.allocUnsafe(size))).subarray(
              0,
              size,
            )
        : Buffer.allocUnsafe;
    this.#frames = new FrameSplitter({ min: 4, max: RESPONSE_BYTES_MAX }, allocate);
    socket.setNoDelay(true);
    socket.on("data", (data: Buffer) => this.#onData(data));
    this.closed = new Promise((resolve) =>
      socket.on("close", () => {
        this.#failAll(this.#closedError ?? new Error(`Connection to ${host}:${port} closed`));
        resolve();
      }),
    );
    socket.on("error", (error) => {
      this.#closedError ??= new Error(`Connection to ${host}:${port} failed: ${error.message}`);
    });
  }

  static connect(
    port: number,
    host = "127.0.0.1",
    options: ConnectionOptions = {},
  ): Promise<KafkaConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`Cannot connect to ${host}:${port}: timed out`));
      }, options.connectTimeoutMs ?? 10_000);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new KafkaConnection(socket, host, port, options));
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(new Error(`Cannot connect to ${host}:${port}: ${error.message}`));
      });
    });
  }

  /** Sends a request given as a loose object (tests) and resolves with the decoded answer. */
  request<T = any>(
    apiKey: number,
    version: number,
    body: Record<string, unknown>,
    waitMs = 0,
  ): Promise<T> {
    const api = API_TABLES.get(apiKey);
    if (api === undefined) return Promise.reject(new Error(`Unknown api key ${apiKey}`));
    return this.#send(apiKey, api.request, version, body, waitMs);
  }

  /** Sends a typed request; `waitMs` is how long the broker may hold it (Fetch long poll). */
  send<Req, Res>(
    api: ApiPair<Req, Res>,
    version: number,
    body: Encodable<Req>,
    waitMs = 0,
  ): Promise<Res> {
    return this.#send(api.request.apiKey, api.request, version, body, waitMs);
  }

  /** Sends bytes as they are (bad input tests). */
  writeRaw(bytes: Uint8Array): void {
    this.#socket.write(bytes);
  }

  close(): void {
    this.#socket.destroy();
  }

  #send(
    apiKey: number,
    schema: MessageSchema,
    version: number,
    body: unknown,
    waitMs: number,
  ): Promise<any> {
    if (this.#socket.destroyed) {
      return Promise.reject(
        this.#closedError ?? new Error(`Connection to ${this.host}:${this.port} closed`),
      );
    }
    const correlationId = this.#nextCorrelationId++;
    const writer = new Writer();
    writer.int32(0); // Frame length, patched below.
    const header = {
      requestApiKey: apiKey,
      requestApiVersion: version,
      correlationId,
      clientId: this.#clientId,
    };
    encode(RequestHeader, requestHeaderVersion(schema, version), header, writer);
    encode(schema, version, body as never, writer);
    const frame = writer.toBuffer();
    frame.writeInt32BE(frame.length - FRAME_LENGTH_BYTES, 0);
    return new Promise((resolve, reject) => {
      const timeoutMs = this.#requestTimeoutMs + waitMs;
      const timer = setTimeout(() => {
        this.#waiting.delete(correlationId);
        reject(
          new Error(
            `No answer from ${this.host}:${this.port} within ${timeoutMs} ms (${schema.name})`,
          ),
        );
      }, timeoutMs);
      this.#waiting.set(correlationId, { apiKey, version, timer, resolve, reject });
      this.#socket.write(frame);
    });
  }

  #failAll(error: Error): void {
    for (const waiter of this.#waiting.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
    this.#waiting.clear();
  }

  #onData(data: Buffer): void {
    this.#frames.push(data);
    for (;;) {
      const frame = this.#frames.next();
      if (frame === null) return;
      if (isFrameError(frame)) {
        this.#closedError = new Error(
          `Broken response stream from ${this.host}:${this.port}: ${frame.error}`,
        );
        this.#frames.clear();
        this.#socket.destroy();
        return;
      }
      this.#onFrame(frame);
    }
  }

  #onFrame(frame: Buffer): void {
    const correlationId = frame.readInt32BE(0);
    const waiter = this.#waiting.get(correlationId);
    if (waiter === undefined) return; // Timed out already.
    this.#waiting.delete(correlationId);
    clearTimeout(waiter.timer);
    const api = API_TABLES.get(waiter.apiKey)!;
    const reader = new Reader(frame);
    decode(
      ResponseHeader,
      responseHeaderVersion(waiter.apiKey, api.response, waiter.version),
      reader,
    );
    const fallback =
      waiter.apiKey === API_VERSIONS_KEY &&
      frame.length >= 6 &&
      frame.readInt16BE(4) === UNSUPPORTED_VERSION;
    const body = decode(api.response, fallback ? 0 : waiter.version, reader);
    if (!reader.complete())
      waiter.reject(
        new Error(`Malformed ${api.response.name}: ${reader.failure || "trailing bytes"}`),
      );
    else waiter.resolve(body);
  }
}

/** The versions the commands use; every Kafka since 2.8 and every Brook answers them. */
export const VERSIONS = {
  apiVersions: 3,
  metadata: 9,
  produce: 9,
  fetch: 12,
  listOffsets: 7,
  offsetCommit: 8,
  offsetFetch: 7,
  findCoordinator: 3,
} as const;

/** How often, 100 ms apart, `coordinator()` retries COORDINATOR_NOT_AVAILABLE. */
const COORDINATOR_ATTEMPTS_MAX = 100;

const USED_APIS: ReadonlyArray<[name: string, apiKey: number, version: number]> = [
  ["Produce", 0, VERSIONS.produce],
  ["Fetch", 1, VERSIONS.fetch],
  ["ListOffsets", 2, VERSIONS.listOffsets],
  ["Metadata", 3, VERSIONS.metadata],
  ["OffsetCommit", 8, VERSIONS.offsetCommit],
  ["OffsetFetch", 9, VERSIONS.offsetFetch],
  ["FindCoordinator", 10, VERSIONS.findCoordinator],
];

/** A failure the command reports as one line and exit code 1. */
export class KafkaClientError extends Error {
  override name = "KafkaClientError";
}

export function errorName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) if (value === code) return name;
  return `error ${code}`;
}

export interface PartitionInfo {
  readonly partition: number;
  readonly leader: number;
  readonly leaderEpoch: number;
}

/** Connections to a cluster reached through one bootstrap address. */
export class KafkaCluster {
  readonly #bootstrap: { host: string; port: number };
  readonly #options: ConnectionOptions;
  #bootstrapConnection: KafkaConnection | null = null;
  /** One per broker this command talked to: bounded by the cluster's size. */
  readonly #brokers = new Map<number, Promise<KafkaConnection>>();
  #addresses = new Map<number, { host: string; port: number }>();

  constructor(bootstrap: { host: string; port: number }, options: ConnectionOptions = {}) {
    this.#bootstrap = bootstrap;
    this.#options = options;
  }

  /** Connects to the bootstrap broker and checks it answers the versions used here. */
  async connect(): Promise<void> {
    const connection = await KafkaConnection.connect(
      this.#bootstrap.port,
      this.#bootstrap.host,
      this.#options,
    );
    this.#bootstrapConnection = connection;
    const versions = await connection.send(
      { request: ApiVersionsRequest, response: ApiVersionsResponse },
      VERSIONS.apiVersions,
      {
        clientSoftwareName: "brook-cli",
        clientSoftwareVersion: "1",
      },
    );
    if (versions.errorCode !== ErrorCode.NONE) {
      throw new KafkaClientError(`ApiVersions failed: ${errorName(versions.errorCode)}`);
    }
    for (const [name, apiKey, version] of USED_APIS) {
      const range = versions.apiKeys.find((entry) => entry.apiKey === apiKey);
      if (range === undefined || version < range.minVersion || version > range.maxVersion) {
        throw new KafkaClientError(
          `Broker ${this.#bootstrap.host}:${this.#bootstrap.port} does not answer ${name} v${version}`,
        );
      }
    }
  }

  /** Any connection: the bootstrap one. */
  get any(): KafkaConnection {
    if (this.#bootstrapConnection === null) throw new KafkaClientError("Not connected");
    return this.#bootstrapConnection;
  }

  /** Metadata of one topic; throws KafkaClientError when it does not exist. */
  async topic(name: string): Promise<PartitionInfo[]> {
    const metadata: MetadataResponseData = await this.any.send(
      { request: MetadataRequest, response: MetadataResponse },
      VERSIONS.metadata,
      {
        topics: [{ name }],
        allowAutoTopicCreation: false,
      },
    );
    this.#addresses = new Map(
      metadata.brokers.map((broker) => [broker.nodeId, { host: broker.host, port: broker.port }]),
    );
    const topic = metadata.topics.find((entry) => entry.name === name);
    if (topic === undefined || topic.errorCode === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) {
      throw new KafkaClientError(`Topic does not exist: ${name}`);
    }
    if (topic.errorCode !== ErrorCode.NONE) {
      throw new KafkaClientError(`Metadata of topic ${name} failed: ${errorName(topic.errorCode)}`);
    }
    return topic.partitions
      .map((partition) => ({
        partition: partition.partitionIndex,
        leader: partition.leaderId,
        leaderEpoch: partition.leaderEpoch,
      }))
      .sort((a, b) => a.partition - b.partition);
  }

  /**
   * The connection to a group's coordinator (FindCoordinator), where its commits and
   * committed offsets go; retried while the coordinator is not available yet.
   */
  async coordinator(groupId: string): Promise<KafkaConnection> {
    for (let attempt = 1; ; attempt++) {
      const answer = await this.any.send(
        { request: FindCoordinatorRequest, response: FindCoordinatorResponse },
        VERSIONS.findCoordinator,
        {
          key: groupId,
          keyType: 0,
        },
      );
      if (answer.errorCode === ErrorCode.NONE) {
        this.#addresses.set(answer.nodeId, { host: answer.host, port: answer.port });
        return this.broker(answer.nodeId);
      }
      const retriable =
        answer.errorCode === ErrorCode.COORDINATOR_NOT_AVAILABLE ||
        answer.errorCode === ErrorCode.NOT_COORDINATOR;
      if (!retriable || attempt >= COORDINATOR_ATTEMPTS_MAX) {
        throw new KafkaClientError(
          `No coordinator for group ${groupId}: ${errorName(answer.errorCode)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The connection to a broker, opened on first use; the address comes from Metadata. */
  broker(nodeId: number): Promise<KafkaConnection> {
    let connection = this.#brokers.get(nodeId);
    if (connection === undefined) {
      const address = this.#addresses.get(nodeId);
      if (address === undefined)
        return Promise.reject(new KafkaClientError(`No address for broker ${nodeId}`));
      connection = KafkaConnection.connect(address.port, address.host, this.#options);
      // A failed connection is forgotten, so the next call tries again.
      connection.catch(() => this.#brokers.delete(nodeId));
      this.#brokers.set(nodeId, connection);
    }
    return connection;
  }

  close(): void {
    this.#bootstrapConnection?.close();
    for (const connection of this.#brokers.values())
      connection.then(
        (c) => c.close(),
        () => {},
      );
    this.#brokers.clear();
  }
}
