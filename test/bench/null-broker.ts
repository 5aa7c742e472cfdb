/**
 * The null broker: the machine's limit for what a broker in this runtime can do, driven
 * by the same load generator (and kcat) as Brook. It speaks just enough Kafka for them:
 *
 * - ApiVersions, and Metadata naming itself leader of every partition of any topic asked
 *   for (a topic named `…-p<N>` has N partitions, any other one).
 * - Produce: appends the request frame, as received, to a file per topic
 *   (`<dir>/<topic>.bin`, opened for append on first use) and answers every partition
 *   with error 0. No validation, no index, no offsets kept beyond a counter. The harness
 *   truncates a topic's file when it deletes the matching Brook topic, so both leave the
 *   same amount of dirty page cache for the kernel to write back.
 * - Fetch: answers every partition from one in-memory buffer of batches (the same kind
 *   of batches the consume bench reads from Brook), as much as max_bytes allows, never
 *   waiting. With `--stamp-fetch-offsets` the answer is a copy whose batches start at
 *   the fetch offset, as a real client that checks offsets (librdkafka) needs; without it
 *   they always start at 0 (the load generator only counts bytes), and nothing is copied.
 * - ListOffsets: 0 for the earliest offset, the high watermark for the latest.
 *
 * A second listener is a TCP sink for the raw loopback figure: the sender writes an
 * 8-byte length and then that many bytes; the sink answers one byte when it has them.
 *
 *   bun test/bench/null-broker.ts --dir <dir> [--port 0] [--fetch-message-bytes 1024] [--fetch-batch-bytes 65536]
 *     [--stamp-fetch-offsets]
 *
 * prints `null broker ready kafka=127.0.0.1:<port> sink=127.0.0.1:<port>` on stdout and
 * runs until killed. It starts with the allocator settings Brook starts with
 * (src/runtime/allocator.ts), so that the limit is measured in the same runtime
 * conditions.
 */
import { Buffer } from "node:buffer";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { decode } from "../../src/protocol/codec.ts";
import { ErrorCode } from "../../src/protocol/error-codes.ts";
import {
  ApiVersionsRequest,
  ApiVersionsResponse,
  FetchRequest,
  type FetchRequestData,
  FetchResponse,
  ListOffsetsRequest,
  type ListOffsetsRequestData,
  ListOffsetsResponse,
  MetadataRequest,
  type MetadataRequestData,
  MetadataResponse,
  ProduceRequest,
  type ProduceRequestData,
  ProduceResponse,
} from "../../src/protocol/generated/index.ts";
import {
  API_VERSIONS_KEY,
  decodeRequestHeader,
  encodeResponseFrame,
  requestHeaderVersion,
} from "../../src/protocol/headers.ts";
import { applyAllocatorSettings } from "../../src/runtime/allocator.ts";
import { Reader } from "../../src/protocol/reader.ts";
import {
  LOG_OVERHEAD_BYTES,
  readBatchLength,
  readLastOffsetDelta,
  stampBatch,
} from "../../src/protocol/record-batch.ts";
import type { MessageSchema } from "../../src/protocol/schema.ts";
import { Outbound } from "../../src/server/outbound.ts";
import { FrameSocket } from "./wire.ts";
import { throughputBatch } from "./workload.ts";

applyAllocatorSettings();

const NODE_ID = 1;
/** Enough batches for the largest partition_max_bytes the bench asks for (32 MiB). */
const FETCH_CACHE_BYTES = 48 * 1024 * 1024;
const HIGH_WATERMARK = 2 ** 50;

interface Api {
  request: MessageSchema<any>;
  response: MessageSchema<any>;
  /** What ApiVersions advertises: Produce from v0, as Brook does for librdkafka. */
  advertised: [number, number];
  /** What this broker decodes. */
  versions: [number, number];
  handle(request: any, version: number): unknown;
}

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback);
}

const dir = argument("dir", "");
if (dir === "") throw new Error("Usage: null-broker.ts --dir <dir>");
mkdirSync(dir, { recursive: true });
/** Append-mode descriptors by topic: bounded by the topics the harness uses. */
const produceFds = new Map<string, number>();
let kafkaPort = 0;

function produceFd(topic: string): number {
  let fd = produceFds.get(topic);
  if (fd === undefined) {
    if (!/^[\w.-]+$/.test(topic)) throw new Error(`Topic name not usable as a file name: ${topic}`);
    fd = openSync(join(dir, `${topic}.bin`), "a");
    produceFds.set(topic, fd);
  }
  return fd;
}

/**
 * The fetch answer: batches with consecutive offsets, and where each one ends. Built on
 * the first fetch, so that the idle RSS of a fresh null broker is the runtime's floor.
 */
let fetchCache: FetchCache | null = null;

interface FetchCache {
  buffer: Buffer;
  ends: number[];
  /** Every batch holds this many records (so batch i starts at offset i * this). */
  recordsPerBatch: number;
}

const STAMP_FETCH_OFFSETS = process.argv.includes("--stamp-fetch-offsets");

function buildFetchCache(): FetchCache {
  const { batch, records } = throughputBatch({
    messageBytes: Number(argument("fetch-message-bytes", "1024")),
    batchBytes: Number(argument("fetch-batch-bytes", "65536")),
    compression: "none",
  });
  const count = Math.max(1, Math.floor(FETCH_CACHE_BYTES / batch.byteLength));
  const buffer = Buffer.allocUnsafe(count * batch.byteLength);
  const ends: number[] = [];
  for (let i = 0; i < count; i++) {
    batch.copy(buffer, i * batch.byteLength);
    stampBatch(buffer.subarray(i * batch.byteLength, (i + 1) * batch.byteLength), i * records, 0);
    ends.push((i + 1) * batch.byteLength);
  }
  return { buffer, ends, recordsPerBatch: records };
}

/** `records` (a prefix of the cache) as batches starting at `offset`: a stamped copy. */
function atOffset(records: Buffer, offset: number): Buffer {
  if (!STAMP_FETCH_OFFSETS || offset <= 0) return records;
  const copy = Buffer.from(records);
  const { ends, recordsPerBatch } = fetchCache!;
  let start = 0;
  for (let i = 0; i < ends.length && ends[i]! <= copy.byteLength; i++) {
    stampBatch(copy.subarray(start, ends[i]!), offset + i * recordsPerBatch, 0);
    start = ends[i]!;
  }
  return copy;
}

/** The longest prefix of the cache made of whole batches within `budget` (at least one). */
function cachedRecords(budget: number): Buffer {
  fetchCache ??= buildFetchCache();
  let end = fetchCache.ends[0]!;
  for (const candidate of fetchCache.ends) {
    if (candidate > budget) break;
    end = candidate;
  }
  return fetchCache.buffer.subarray(0, end);
}

const nextOffsets = new Map<string, number>();

function appendCount(records: Uint8Array): number {
  let at = 0;
  let count = 0;
  while (at + LOG_OVERHEAD_BYTES <= records.byteLength) {
    count += readLastOffsetDelta(records, at) + 1;
    at += LOG_OVERHEAD_BYTES + readBatchLength(records, at);
  }
  return count;
}

function partitionCount(topic: string): number {
  const match = /-p(\d+)$/.exec(topic);
  return match === null ? 1 : Number(match[1]);
}

const APIS: Map<number, Api> = new Map<number, Api>([
  [
    0,
    {
      request: ProduceRequest,
      response: ProduceResponse,
      advertised: [0, 9],
      versions: [3, 9],
      handle(request: ProduceRequestData) {
        return {
          responses: request.topicData.map((topic) => ({
            name: topic.name,
            partitionResponses: topic.partitionData.map((partition) => {
              const key = `${topic.name}-${partition.index}`;
              const baseOffset = nextOffsets.get(key) ?? 0;
              nextOffsets.set(
                key,
                baseOffset + (partition.records === null ? 0 : appendCount(partition.records)),
              );
              return {
                index: partition.index,
                errorCode: ErrorCode.NONE,
                baseOffset,
                logAppendTimeMs: -1,
                logStartOffset: 0,
              };
            }),
          })),
          throttleTimeMs: 0,
        };
      },
    },
  ],
  [
    1,
    {
      request: FetchRequest,
      response: FetchResponse,
      advertised: [4, 12],
      versions: [4, 12],
      handle(request: FetchRequestData) {
        let left = Math.max(request.maxBytes, 0);
        return {
          throttleTimeMs: 0,
          errorCode: ErrorCode.NONE,
          sessionId: 0,
          responses: request.topics.map((topic) => ({
            topic: topic.topic,
            partitions: topic.partitions.map((partition) => {
              const records =
                left > 0
                  ? atOffset(
                      cachedRecords(Math.min(left, partition.partitionMaxBytes)),
                      Number(partition.fetchOffset),
                    )
                  : null;
              left -= records?.byteLength ?? 0;
              return {
                partitionIndex: partition.partition,
                errorCode: ErrorCode.NONE,
                highWatermark: HIGH_WATERMARK,
                lastStableOffset: HIGH_WATERMARK,
                logStartOffset: 0,
                abortedTransactions: null,
                preferredReadReplica: -1,
                records,
              };
            }),
          })),
        };
      },
    },
  ],
  [
    2,
    {
      request: ListOffsetsRequest,
      response: ListOffsetsResponse,
      advertised: [1, 7],
      versions: [1, 7],
      handle(request: ListOffsetsRequestData) {
        return {
          throttleTimeMs: 0,
          topics: request.topics.map((topic) => ({
            name: topic.name,
            partitions: topic.partitions.map((partition) => ({
              partitionIndex: partition.partitionIndex,
              errorCode: ErrorCode.NONE,
              oldStyleOffsets: [],
              timestamp: -1,
              // -2 asks for the earliest offset; anything else gets the latest.
              offset: partition.timestamp === -2 ? 0 : HIGH_WATERMARK,
              leaderEpoch: 0,
            })),
          })),
        };
      },
    },
  ],
  [
    3,
    {
      request: MetadataRequest,
      response: MetadataResponse,
      advertised: [0, 12],
      versions: [0, 12],
      handle(request: MetadataRequestData) {
        return {
          throttleTimeMs: 0,
          brokers: [{ nodeId: NODE_ID, host: "127.0.0.1", port: kafkaPort, rack: null }],
          clusterId: "null-broker",
          controllerId: NODE_ID,
          topics: (request.topics ?? []).map((topic) => ({
            errorCode: ErrorCode.NONE,
            name: topic.name,
            isInternal: false,
            partitions: Array.from(
              { length: partitionCount(topic.name ?? "") },
              (_, partitionIndex) => ({
                errorCode: ErrorCode.NONE,
                partitionIndex,
                leaderId: NODE_ID,
                leaderEpoch: 0,
                replicaNodes: [NODE_ID],
                isrNodes: [NODE_ID],
                offlineReplicas: [],
              }),
            ),
            topicAuthorizedOperations: -2147483648,
          })),
          clusterAuthorizedOperations: -2147483648,
        };
      },
    },
  ],
  [
    API_VERSIONS_KEY,
    {
      request: ApiVersionsRequest,
      response: ApiVersionsResponse,
      advertised: [0, 3],
      versions: [0, 3],
      handle(): unknown {
        return {
          errorCode: ErrorCode.NONE,
          apiKeys: [...APIS.entries()].map(([apiKey, api]) => ({
            apiKey,
            minVersion: api.advertised[0],
            maxVersion: api.advertised[1],
          })),
          throttleTimeMs: 0,
        };
      },
    },
  ],
]);

function respond(
  outbound: Outbound,
  apiKey: number,
  api: Api,
  version: number,
  correlationId: number,
  value: unknown,
): void {
  // Encoded and written the way Brook's connections do it (1 MiB pieces, waiting for
  // drain), so the limit is not slower than Brook for want of the same care.
  outbound.send(encodeResponseFrame(apiKey, version, correlationId, api.response, value as never));
}

function onRequest(socket: Socket, outbound: Outbound, frame: Buffer): void {
  const reader = new Reader(frame);
  const apiKey = reader.int16();
  const version = reader.int16();
  reader.offset = 0;
  const api = APIS.get(apiKey);
  if (api === undefined) {
    process.stderr.write(`null broker: unsupported api key ${apiKey}, closing the connection\n`);
    socket.destroy();
    return;
  }
  const supported = version >= api.versions[0] && version <= api.versions[1];
  const header = decodeRequestHeader(
    reader,
    supported ? requestHeaderVersion(api.request, version) : 1,
  );
  if (!supported) {
    if (apiKey === API_VERSIONS_KEY) {
      // KIP-511: answer an unknown ApiVersions version in v0 with the ranges.
      const answer = api.handle(null, 0) as { errorCode: number };
      respond(outbound, apiKey, api, 0, header.correlationId, {
        ...answer,
        errorCode: ErrorCode.UNSUPPORTED_VERSION,
      });
      return;
    }
    process.stderr.write(
      `null broker: unsupported version ${version} of api key ${apiKey}, closing the connection\n`,
    );
    socket.destroy();
    return;
  }
  const request = decode(api.request, version, reader);
  if (!reader.complete()) {
    process.stderr.write(`null broker: malformed ${api.request.name} v${version}\n`);
    socket.destroy();
    return;
  }
  if (apiKey === 0) {
    const produce = request as ProduceRequestData;
    writeSync(produceFd(produce.topicData[0]?.name ?? "empty"), frame);
    if (produce.acks === 0) return;
  }
  respond(outbound, apiKey, api, version, header.correlationId, api.handle(request, version));
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () => resolve((server.address() as { port: number }).port)),
  );
}

const kafka = createServer((socket) => {
  const framed = new FrameSocket(socket);
  const outbound = new Outbound(socket, { onBroken: () => socket.destroy() });
  framed.onFrame = (frame) => onRequest(socket, outbound, frame);
});

const sink = createServer((socket) => {
  let expected = -1;
  let received = 0;
  let head = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    if (expected < 0) {
      head = Buffer.concat([head, chunk]);
      if (head.byteLength < 8) return;
      expected = Number(head.readBigUInt64BE(0));
      received = head.byteLength - 8;
    } else {
      received += chunk.byteLength;
    }
    if (received >= expected) {
      socket.write(Buffer.of(1));
      expected = Infinity;
    }
  });
  socket.on("error", () => {});
});

kafkaPort = await listen(kafka, Number(argument("port", "0")));
const sinkPort = await listen(sink, 0);
process.on("SIGTERM", () => {
  for (const fd of produceFds.values()) closeSync(fd);
  process.exit(0);
});
process.stdout.write(`null broker ready kafka=127.0.0.1:${kafkaPort} sink=127.0.0.1:${sinkPort}\n`);
