/**
 * The load generator: a process of its own, apart from the broker it drives, so the two
 * do not share an event loop. The harness (`run.ts`) starts one per measured run:
 *
 *   bun test/bench/loadgen.ts '<json spec>'
 *
 * and reads one JSON line (the result) from stdout. Any failure (a broker error code, a
 * closed connection, a deadline) exits 1 with a one-line message on stderr.
 *
 * Modes:
 *
 * - produce: `connections` producers, each with `window` requests in flight. Every
 *   request carries the same pre-built batch for each partition; the frames are encoded
 *   once per window slot and only the correlation id is patched before each send (the
 *   broker stamps offsets into its own copy). Runs for `durationMs`, or until
 *   `payloadBytesTarget` is sent (to fill a backlog), then waits for the last answers.
 * - consume: one consumer drains partitions 0..n-1 from offset 0 with large max_bytes,
 *   one fetch at a time (the next offsets depend on the answer), until every partition
 *   reaches its high watermark, `wireBytesTarget` bytes of batches arrived or, when
 *   given, `durationMs` passed (checked between fetches: the fetch in flight completes).
 * - latency: a producer sends `rateBytesPerSec` of messages (a batch per 1 ms tick, each
 *   value starting with its send time, performance.now() as float64) and a long-poll
 *   consumer in the same process (same clock) records receive time minus send time.
 * - tcp: writes `bytes` to a sink in `writeBytes` writes; the sink answers one byte once
 *   it has them all.
 */
import { Buffer } from "node:buffer";
import { decode } from "../../src/protocol/codec.ts";
import { ErrorCode } from "../../src/protocol/error-codes.ts";
import { FetchResponse, ProduceResponse } from "../../src/protocol/generated/index.ts";
import { ResponseHeader } from "../../src/protocol/generated/response-header.ts";
import { Reader } from "../../src/protocol/reader.ts";
import {
  LOG_OVERHEAD_BYTES,
  readBaseOffset,
  readBatchLength,
  readLastOffsetDelta,
  readRecordCount,
} from "../../src/protocol/record-batch.ts";
import { decodeRecords } from "../../src/protocol/records.ts";
import { Samples, percentile } from "./stats.ts";
import { FrameSocket } from "./wire.ts";
import {
  type BenchCompression,
  CORRELATION_ID_AT,
  encodeBatch,
  FETCH_VERSION,
  fetchFrame,
  messageValues,
  PRODUCE_VERSION,
  produceFrame,
  recordsPerBatch,
  sealBatch,
  setBatchTimestamp,
  throughputBatch,
  type EncodedBatch,
  type FetchPosition,
} from "./workload.ts";
import { connect } from "node:net";

export interface ProduceSpec {
  mode: "produce";
  host: string;
  port: number;
  topic: string;
  partitions: number;
  connections: number;
  messageBytes: number;
  batchBytes: number;
  compression: BenchCompression;
  acks: number;
  window: number;
  durationMs?: number;
  payloadBytesTarget?: number;
}

export interface ProduceResult {
  messages: number;
  payloadBytes: number;
  /** Bytes of record batches acknowledged (what the broker stores). */
  batchBytes: number;
  requests: number;
  seconds: number;
  messagesPerSec: number;
  payloadMBPerSec: number;
  ackP50Ms: number;
  ackP99Ms: number;
}

export interface ConsumeSpec {
  mode: "consume";
  host: string;
  port: number;
  topic: string;
  partitions: number;
  messageBytes: number;
  wireBytesTarget: number;
  maxBytes: number;
  partitionMaxBytes: number;
  /** Stop after this long (alongside producers that run as long); unbounded without it. */
  durationMs?: number;
}

export interface ConsumeResult {
  messages: number;
  batchBytes: number;
  fetches: number;
  seconds: number;
  messagesPerSec: number;
  payloadMBPerSec: number;
  batchMBPerSec: number;
  /** Every partition reached its high watermark (it stopped for that, not for time or bytes). */
  reachedEnd: boolean;
}

export interface LatencySpec {
  mode: "latency";
  host: string;
  port: number;
  topic: string;
  messageBytes: number;
  rateBytesPerSec: number;
  durationMs: number;
  /** The producer's acks (1 when absent; -1 for the replicated rows). */
  acks?: number;
}

export interface LatencyResult {
  messages: number;
  offeredMBPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export interface TcpSpec {
  mode: "tcp";
  host: string;
  port: number;
  bytes: number;
  writeBytes: number;
}

export interface TcpResult {
  bytes: number;
  seconds: number;
  MBPerSec: number;
}

export type LoadSpec = ProduceSpec | ConsumeSpec | LatencySpec | TcpSpec;

const MB = 1e6;
/** Longest a run may wait for its last answers or messages after it stops sending. */
const DRAIN_DEADLINE_MS = 60_000;

function fail(message: string): never {
  throw new Error(message);
}

function responseBody<T>(
  frame: Buffer,
  schema: typeof ProduceResponse | typeof FetchResponse,
  version: number,
): T {
  const reader = new Reader(frame);
  decode(ResponseHeader, 1, reader); // Produce v9 and Fetch v12 are flexible: header v1.
  const body = decode(schema as never, version, reader);
  if (!reader.complete()) fail(`Malformed ${schema.name}: ${reader.failure || "trailing bytes"}`);
  return body as T;
}

function checkProduceResponse(frame: Buffer): void {
  const body = responseBody<{
    responses: {
      name: string;
      partitionResponses: { index: number; errorCode: number; errorMessage: string | null }[];
    }[];
  }>(frame, ProduceResponse, PRODUCE_VERSION);
  for (const topic of body.responses) {
    for (const partition of topic.partitionResponses) {
      if (partition.errorCode !== ErrorCode.NONE) {
        fail(
          `Produce to ${topic.name}-${partition.index} failed: error ${partition.errorCode} ${partition.errorMessage ?? ""}`,
        );
      }
    }
  }
}

async function produce(spec: ProduceSpec): Promise<ProduceResult> {
  if (spec.acks === 0) fail("acks=0 has no answers to count");
  if (spec.durationMs === undefined && spec.payloadBytesTarget === undefined)
    fail("Produce needs durationMs or payloadBytesTarget");
  const batch = throughputBatch({
    messageBytes: spec.messageBytes,
    batchBytes: spec.batchBytes,
    compression: spec.compression,
  });
  const partitions = Array.from({ length: spec.partitions }, (_, i) => i);
  const template = produceFrame({
    topic: spec.topic,
    partitions,
    records: batch.batch,
    acks: spec.acks,
  });
  const messagesPerRequest = batch.records * spec.partitions;
  const payloadPerRequest = batch.payloadBytes * spec.partitions;
  const batchBytesPerRequest = batch.batch.byteLength * spec.partitions;
  const sockets = await Promise.all(
    Array.from({ length: spec.connections }, () => FrameSocket.connect(spec.port, spec.host)),
  );

  let requestsAcked = 0;
  let payloadSent = 0;
  let stopping = false;
  const ackMs = new Samples();
  const started = performance.now();
  const stopAt = spec.durationMs === undefined ? Infinity : started + spec.durationMs;
  const mayContinue = () => {
    if (stopping) return false;
    if (performance.now() >= stopAt) stopping = true;
    if (spec.payloadBytesTarget !== undefined && payloadSent >= spec.payloadBytesTarget)
      stopping = true;
    return !stopping;
  };

  const finished = sockets.map(
    (socket) =>
      new Promise<void>((resolve, reject) => {
        // Each window slot owns a copy of the frame: a slot is rewritten only after its
        // answer came back, so no queued write ever sees its bytes change.
        const slots = Array.from({ length: spec.window }, () => Buffer.from(template));
        const free: number[] = slots.map((_, i) => i);
        const inFlight = new Map<number, { slot: number; sentAt: number }>();
        let nextCorrelationId = 1;
        const sendOne = () => {
          const slot = free.pop()!;
          const correlationId = nextCorrelationId++;
          slots[slot]!.writeInt32BE(correlationId, CORRELATION_ID_AT);
          inFlight.set(correlationId, { slot, sentAt: performance.now() });
          payloadSent += payloadPerRequest;
          socket.write(slots[slot]!);
        };
        socket.onClose = (error) =>
          reject(new Error(`Producer connection closed: ${error.message}`));
        socket.onFrame = (frame) => {
          try {
            const correlationId = frame.readInt32BE(0);
            const sent =
              inFlight.get(correlationId) ?? fail(`Unexpected correlation id ${correlationId}`);
            inFlight.delete(correlationId);
            checkProduceResponse(frame);
            ackMs.push(performance.now() - sent.sentAt);
            requestsAcked++;
            free.push(sent.slot);
            if (mayContinue()) sendOne();
            else if (inFlight.size === 0) resolve();
          } catch (error) {
            reject(error);
          }
        };
        for (let i = 0; i < spec.window && mayContinue(); i++) sendOne();
        if (inFlight.size === 0) resolve();
      }),
  );
  const deadline = setTimeout(
    () => {
      for (const socket of sockets) socket.close();
    },
    (spec.durationMs ?? 600_000) + DRAIN_DEADLINE_MS,
  );
  try {
    await Promise.all(finished);
  } finally {
    clearTimeout(deadline);
  }
  const seconds = (performance.now() - started) / 1000;
  for (const socket of sockets) {
    socket.onClose = () => {};
    socket.close();
  }
  const sorted = ackMs.sorted();
  return {
    messages: requestsAcked * messagesPerRequest,
    payloadBytes: requestsAcked * payloadPerRequest,
    batchBytes: requestsAcked * batchBytesPerRequest,
    requests: requestsAcked,
    seconds,
    messagesPerSec: (requestsAcked * messagesPerRequest) / seconds,
    payloadMBPerSec: (requestsAcked * payloadPerRequest) / MB / seconds,
    ackP50Ms: sorted.length > 0 ? percentile(sorted, 50) : 0,
    ackP99Ms: sorted.length > 0 ? percentile(sorted, 99) : 0,
  };
}

interface FetchedPartition {
  partitionIndex: number;
  errorCode: number;
  highWatermark: number;
  records: Uint8Array | null;
}

function fetchedPartitions(frame: Buffer): FetchedPartition[] {
  const body = responseBody<{ errorCode: number; responses: { partitions: FetchedPartition[] }[] }>(
    frame,
    FetchResponse,
    FETCH_VERSION,
  );
  if (body.errorCode !== ErrorCode.NONE) fail(`Fetch failed: error ${body.errorCode}`);
  const partitions: FetchedPartition[] = [];
  for (const topic of body.responses) {
    for (const partition of topic.partitions) {
      if (partition.errorCode !== ErrorCode.NONE)
        fail(`Fetch of partition ${partition.partitionIndex} failed: error ${partition.errorCode}`);
      partitions.push(partition);
    }
  }
  return partitions;
}

/** Whole batches in a records blob (a fetch may end in a partial one). */
function forEachBatch(records: Uint8Array, visit: (at: number, size: number) => void): number {
  let at = 0;
  while (at + LOG_OVERHEAD_BYTES <= records.byteLength) {
    const size = LOG_OVERHEAD_BYTES + readBatchLength(records, at);
    if (at + size > records.byteLength) break;
    visit(at, size);
    at += size;
  }
  return at;
}

/**
 * Sends one request and resolves with its answer; one outstanding at a time. The socket
 * reuses its frame buffer, so an answer is valid until the next request is sent.
 */
function oneAtATime(socket: FrameSocket): (frame: Buffer) => Promise<Buffer> {
  let waiting: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | null = null;
  socket.onFrame = (frame) => {
    const current = waiting;
    waiting = null;
    current?.resolve(frame);
  };
  socket.onClose = (error) =>
    waiting?.reject(new Error(`Consumer connection closed: ${error.message}`));
  return (frame) =>
    new Promise((resolve, reject) => {
      waiting = { resolve, reject };
      socket.write(frame);
    });
}

async function consume(spec: ConsumeSpec): Promise<ConsumeResult> {
  const socket = await FrameSocket.connect(spec.port, spec.host, { reuseFrames: true });
  const request = oneAtATime(socket);
  const positions: FetchPosition[] = Array.from({ length: spec.partitions }, (_, partition) => ({
    partition,
    offset: 0,
  }));
  const done = new Set<number>();
  let messages = 0;
  let batchBytes = 0;
  let fetches = 0;
  const started = performance.now();
  const stopAt = spec.durationMs === undefined ? Infinity : started + spec.durationMs;
  while (
    batchBytes < spec.wireBytesTarget &&
    done.size < spec.partitions &&
    performance.now() < stopAt
  ) {
    const open = positions.filter((position) => !done.has(position.partition));
    const frame = fetchFrame(
      {
        topic: spec.topic,
        positions: open,
        maxWaitMs: 0,
        minBytes: 0,
        maxBytes: spec.maxBytes,
        partitionMaxBytes: spec.partitionMaxBytes,
      },
      ++fetches,
    );
    const answer = await request(frame);
    let got = 0;
    for (const partition of fetchedPartitions(answer)) {
      const position = positions[partition.partitionIndex]!;
      const records = partition.records ?? new Uint8Array(0);
      got += forEachBatch(records, (at) => {
        messages += readRecordCount(records, at);
        position.offset = readBaseOffset(records, at) + readLastOffsetDelta(records, at) + 1;
      });
      if (position.offset >= partition.highWatermark) done.add(partition.partitionIndex);
    }
    batchBytes += got;
    if (got === 0 && done.size < spec.partitions)
      fail(`Fetch returned nothing below the high watermark at fetch ${fetches}`);
  }
  const seconds = (performance.now() - started) / 1000;
  socket.onClose = () => {};
  socket.close();
  return {
    messages,
    batchBytes,
    fetches,
    seconds,
    messagesPerSec: messages / seconds,
    payloadMBPerSec: (messages * spec.messageBytes) / MB / seconds,
    batchMBPerSec: batchBytes / MB / seconds,
    reachedEnd: done.size === spec.partitions,
  };
}

async function latency(spec: LatencySpec): Promise<LatencyResult> {
  const producer = await FrameSocket.connect(spec.port, spec.host);
  const consumer = await FrameSocket.connect(spec.port, spec.host, { reuseFrames: true });
  const request = oneAtATime(consumer);
  let failure: Error | null = null;
  producer.onClose = (error) =>
    (failure ??= new Error(`Producer connection closed: ${error.message}`));
  producer.onFrame = (frame) => {
    try {
      checkProduceResponse(frame);
    } catch (error) {
      failure ??= error as Error;
    }
  };

  // Batch templates by record count, built on first use; each send copies one.
  const perBatchMax = recordsPerBatch(spec.messageBytes, 256 * 1024);
  const values = messageValues(perBatchMax, spec.messageBytes, 7);
  const templates = new Map<number, EncodedBatch>();
  const template = (count: number) => {
    let found = templates.get(count);
    if (found === undefined) {
      found = encodeBatch(values.slice(0, count), Date.now(), "none");
      templates.set(count, found);
    }
    return found;
  };

  const messagesPerMs = spec.rateBytesPerSec / spec.messageBytes / 1000;
  let sent = 0;
  let correlationId = 0;
  const started = performance.now();
  const sendDue = () => {
    const now = performance.now();
    const due =
      Math.min(
        Math.floor((now - started) * messagesPerMs),
        Math.floor(spec.durationMs * messagesPerMs),
      ) - sent;
    let left = due;
    while (left > 0) {
      const count = Math.min(left, perBatchMax);
      const chosen = template(count);
      const batch = Buffer.from(chosen.batch);
      for (const at of chosen.valueAt!) batch.writeDoubleLE(now, at);
      setBatchTimestamp(batch, Date.now());
      sealBatch(batch);
      const frame = produceFrame({
        topic: spec.topic,
        partitions: [0],
        records: batch,
        acks: spec.acks ?? 1,
      });
      frame.writeInt32BE(++correlationId, CORRELATION_ID_AT);
      producer.write(frame);
      left -= count;
    }
    sent += due;
  };
  const ticker = setInterval(sendDue, 1);
  const total = Math.floor(spec.durationMs * messagesPerMs);

  const samples = new Samples();
  let offset = 0;
  const deadline = started + spec.durationMs + DRAIN_DEADLINE_MS;
  try {
    while (samples.count < total) {
      if (failure !== null) throw failure;
      if (performance.now() > deadline)
        fail(`Latency run received ${samples.count} of ${total} messages before its deadline`);
      const frame = fetchFrame(
        {
          topic: spec.topic,
          positions: [{ partition: 0, offset }],
          maxWaitMs: 500,
          minBytes: 1,
          maxBytes: 8 * 1024 * 1024,
          partitionMaxBytes: 8 * 1024 * 1024,
        },
        0,
      );
      const answer = await request(frame);
      const received = performance.now();
      for (const partition of fetchedPartitions(answer)) {
        const records = partition.records ?? new Uint8Array(0);
        forEachBatch(records, (at, size) => {
          const decoded =
            decodeRecords(records.subarray(at, at + size)) ?? fail("Fetched batch is not readable");
          for (const record of decoded) {
            const value = record.value ?? fail("Record without value");
            const sentAt = new DataView(value.buffer, value.byteOffset, 8).getFloat64(0, true);
            samples.push(received - sentAt);
          }
          offset = readBaseOffset(records, at) + readLastOffsetDelta(records, at) + 1;
        });
      }
    }
  } finally {
    clearInterval(ticker);
  }
  producer.onClose = () => {};
  consumer.onClose = () => {};
  producer.close();
  consumer.close();
  const sorted = samples.sorted();
  return {
    messages: samples.count,
    offeredMBPerSec: spec.rateBytesPerSec / MB,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    maxMs: sorted[sorted.length - 1]!,
  };
}

async function tcp(spec: TcpSpec): Promise<TcpResult> {
  const socket = connect({ port: spec.port, host: spec.host });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  const chunk = Buffer.alloc(spec.writeBytes, 0x5a);
  const header = Buffer.alloc(8);
  header.writeBigUInt64BE(BigInt(spec.bytes));
  const acknowledged = new Promise<void>((resolve, reject) => {
    socket.once("data", () => resolve());
    socket.once("close", () => reject(new Error("Sink closed before acknowledging")));
  });
  const started = performance.now();
  socket.write(header);
  let written = 0;
  while (written < spec.bytes) {
    const size = Math.min(spec.writeBytes, spec.bytes - written);
    const ok = socket.write(size === chunk.byteLength ? chunk : chunk.subarray(0, size));
    written += size;
    if (!ok) await new Promise<void>((resolve) => socket.once("drain", () => resolve()));
  }
  await acknowledged;
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  return { bytes: spec.bytes, seconds, MBPerSec: spec.bytes / MB / seconds };
}

export async function runLoad(spec: LoadSpec): Promise<unknown> {
  switch (spec.mode) {
    case "produce":
      return produce(spec);
    case "consume":
      return consume(spec);
    case "latency":
      return latency(spec);
    case "tcp":
      return tcp(spec);
  }
}

if (import.meta.main) {
  try {
    const spec = JSON.parse(process.argv[2] ?? fail("Usage: loadgen.ts '<json spec>'")) as LoadSpec;
    const before = process.cpuUsage();
    const result = await runLoad(spec);
    const used = process.cpuUsage(before);
    // CPU of this process from connecting to the last answer: is the client the limit?
    const clientCpuSeconds = (used.user + used.system) / 1e6;
    process.stdout.write(`${JSON.stringify({ ...(result as object), clientCpuSeconds })}\n`);
    process.exit(0);
  } catch (error) {
    process.stderr.write(`loadgen: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
