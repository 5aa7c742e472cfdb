/**
 * @platformatic/kafka 1.35 against a real Brook process: Admin topic creation with 4
 * partitions; 10,000 keyed messages with headers and an explicit CreateTime per message,
 * per compression codec it offers natively (none, gzip, snappy, lz4, zstd: snappy and
 * LZ4 through @platformatic/wasm-utils, zstd through node:zlib), checked against the
 * produce reports; read back three ways: `Consumer#fetch` without a group (Fetch v17 by
 * topic id, so the batch attributes are visible), a consumer-group stream from the
 * earliest offset, and a stream in manual mode from inside a batch in mid-partition.
 *
 * The client reports one base offset per partition per `send`; a message's offset is
 * that base plus its rank among the call's messages for the partition, and the partition
 * is the client's default partitioner's (murmur2 read as unsigned, see js-codecs.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  Admin,
  type CreatedTopic,
  Consumer,
  type Message,
  type MessagesStreamModeValue,
  Producer,
  stringDeserializers,
  stringSerializers,
} from "@platformatic/kafka";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import {
  CODECS,
  type ConsumedRecord,
  MESSAGE_COUNT,
  PARTITIONS,
  TIMESTAMP_SLACK_MS,
  checkConsumed,
  checkFromOffset,
  codecMismatches,
  fullestPartition,
  keyOf,
  offsetInsideBatch,
  startsABatch,
  storedBatches,
  valueOf,
} from "../helpers/clients-common.ts";
import {
  type Placement,
  platformaticPartition,
  type Produced,
  tallySend,
} from "../helpers/js-codecs.ts";

type Codec = "none" | "gzip" | "snappy" | "lz4" | "zstd";

/** Messages per `send` call. */
const SEND_BATCH = 500;
const CONSUME_TIMEOUT_MS = 20_000;
const FETCH_PARTITION_MAX_BYTES = 1 << 20;
/** RecordBatch attributes bit 3: the batch's timestamps are LogAppendTime. */
const TIMESTAMP_TYPE_BIT = 0x08;
/** Explicit CreateTimes: an hour back, one millisecond apart, so none is "now". */
const TIMESTAMP_BASE = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const timestampOf = (i: number) => TIMESTAMP_BASE + i;

const topicOf = (codec: string) => `platformatic-${codec}`;
const NOW_TOPIC = "platformatic-now";
const ALL_TOPICS = [...CODECS.map(topicOf), NOW_TOPIC];

const headersOf =
  (codec: string) =>
  (i: number): [string, string][] => [
    ["idx", String(i)],
    ["src", "platformatic"],
    ["codec", codec],
  ];

let broker: TestBroker;
let admin: Admin;
let producer: Producer<string, string, string, string>;
/** Reads without a group: `fetch`, `listOffsets`, `metadata`. */
let reader: Consumer<string, string, string, string>;
let created: CreatedTopic[];
const producedByCodec = new Map<string, Produced>();
const fetchedByCodec = new Map<string, ConsumedRecord[]>();

const clientOptions = (clientId: string) => ({ clientId, bootstrapBrokers: [broker.bootstrap] });

function newConsumer(groupId: string): Consumer<string, string, string, string> {
  return new Consumer({
    ...clientOptions(`brook-${groupId}`),
    groupId,
    deserializers: stringDeserializers,
    maxWaitTime: 200,
    heartbeatInterval: 100,
  });
}

function toRecord(message: Message<string, string, string, string>): ConsumedRecord {
  return {
    partition: message.partition,
    offset: Number(message.offset),
    // Stream messages carry no timestamp type; the explicit per-message timestamps coming
    // back unchanged is the CreateTime check here (the fetch test reads the attribute).
    timestampType: "create",
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers: [...message.headers.entries()].map(([name, value]) => [name, value ?? null]),
  };
}

/** Sends every message in `SEND_BATCH` calls; where each landed, from the reports. */
async function produceAll(codec: Codec): Promise<Produced> {
  const topic = topicOf(codec);
  const placements: Placement[] = new Array(MESSAGE_COUNT);
  const counts = new Array<number>(PARTITIONS).fill(0);
  const problems: string[] = [];
  for (let start = 0; start < MESSAGE_COUNT; start += SEND_BATCH) {
    const indexes = Array.from(
      { length: Math.min(SEND_BATCH, MESSAGE_COUNT - start) },
      (_, n) => start + n,
    );
    const result = await producer.send({
      compression: codec,
      messages: indexes.map((i) => ({
        topic,
        key: keyOf(i),
        value: valueOf(i),
        headers: new Map(headersOf(codec)(i)),
        timestamp: BigInt(timestampOf(i)),
      })),
    });
    const byPartition = new Map<number, number[]>();
    for (const i of indexes) {
      const partition = platformaticPartition(keyOf(i), PARTITIONS);
      byPartition.set(partition, [...(byPartition.get(partition) ?? []), i]);
    }
    const reports = result.offsets ?? [];
    tallySend(
      { placements, counts, problems },
      {
        start,
        topic,
        byPartition,
        reports: reports.map((r) => ({
          partition: r.partition,
          topic: r.topic,
          baseOffset: Number(r.offset),
        })),
        timestampOf,
      },
    );
  }
  return { placements, counts, problems };
}

/**
 * Reads one partition from `from` to its high watermark with `Consumer#fetch` (no group).
 * Fetch answers with whole batches; records before `from` are dropped here.
 */
async function fetchPartition(
  topic: string,
  partition: number,
  from: number,
): Promise<ConsumedRecord[]> {
  const metadata = await reader.metadata({ topics: [topic] });
  const info = metadata.topics.get(topic)!;
  const records: ConsumedRecord[] = [];
  let offset = from;
  let high = Number.POSITIVE_INFINITY;
  while (offset < high) {
    const response = await reader.fetch({
      node: info.partitions[partition]!.leader,
      maxWaitTime: 100,
      topics: [
        {
          topicId: info.id,
          partitions: [
            {
              partition,
              fetchOffset: BigInt(offset),
              partitionMaxBytes: FETCH_PARTITION_MAX_BYTES,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            },
          ],
        },
      ],
    });
    const data = response.responses[0]!.partitions[0]!;
    if (data.errorCode !== 0) {
      throw new Error(`Fetch ${topic}-${partition}@${offset}: error ${data.errorCode}`);
    }
    high = Number(data.highWatermark);
    const requested = offset;
    for (const batch of data.records ?? []) {
      const logAppendTime = (batch.attributes & TIMESTAMP_TYPE_BIT) !== 0;
      for (const record of batch.records) {
        const at = Number(batch.firstOffset) + record.offsetDelta;
        if (at < requested) continue;
        records.push({
          partition,
          offset: at,
          timestampType: logAppendTime ? "append" : "create",
          timestamp: Number(
            logAppendTime ? batch.maxTimestamp : batch.firstTimestamp + record.timestampDelta,
          ),
          key: record.key === null ? null : record.key.toString(),
          value: record.value === null ? null : record.value.toString(),
          headers: record.headers.map(([name, value]) => [
            name === null ? "" : name.toString(),
            value === null ? null : value.toString(),
          ]),
        });
      }
      offset = Number(batch.firstOffset) + batch.lastOffsetDelta + 1;
    }
    if (offset === requested && offset < high) {
      throw new Error(`Fetch ${topic}-${partition}@${offset} made no progress (high ${high})`);
    }
  }
  return records;
}

/**
 * Streams `topic` in a fresh consumer group until `done(records)` holds, then closes
 * the stream (committing) and the consumer.
 */
async function consumeStream(
  topic: string,
  groupId: string,
  options: {
    mode: MessagesStreamModeValue;
    offsets?: { topic: string; partition: number; offset: bigint }[];
    done: (records: ConsumedRecord[]) => boolean;
  },
): Promise<ConsumedRecord[]> {
  const consumer = newConsumer(groupId);
  const records: ConsumedRecord[] = [];
  let failure: unknown;
  try {
    const stream = await consumer.consume({
      topics: [topic],
      mode: options.mode,
      ...(options.offsets ? { offsets: options.offsets } : {}),
      fallbackMode: "latest",
    });
    stream.on("data", (message) => records.push(toRecord(message)));
    stream.on("error", (error) => {
      failure = error;
    });
    try {
      await eventually(
        `${groupId} consumed ${topic}`,
        () => {
          if (failure) throw failure;
          return options.done(records);
        },
        CONSUME_TIMEOUT_MS,
      );
    } finally {
      await stream.close();
    }
  } finally {
    await consumer.close();
  }
  return records;
}

/** The latest offset of every partition of `topic` (ListOffsets). */
async function endOffsets(topic: string): Promise<number[]> {
  const offsets = await reader.listOffsets({ topics: [topic] });
  return (offsets.get(topic) ?? []).map(Number);
}

beforeAll(async () => {
  broker = await startBroker();
  admin = new Admin(clientOptions("brook-platformatic-admin"));
  created = await admin.createTopics({ topics: ALL_TOPICS, partitions: PARTITIONS, replicas: 1 });
  producer = new Producer({
    ...clientOptions("brook-platformatic-producer"),
    serializers: stringSerializers,
  });
  reader = newConsumer("platformatic-reader");
});

afterAll(async () => {
  await producer?.close();
  await reader?.close();
  await admin?.close();
  if (broker) await stopAndClean(broker);
});

describe("clients: platformatic", () => {
  test("clients: platformatic: Admin creates topics with 4 partitions", async () => {
    expect(
      created.map(({ name, partitions, replicas }) => ({ name, partitions, replicas })),
    ).toEqual(ALL_TOPICS.map((name) => ({ name, partitions: PARTITIONS, replicas: 1 })));
    const metadata = await admin.metadata({ topics: ALL_TOPICS });
    for (const name of ALL_TOPICS) {
      const topic = metadata.topics.get(name)!;
      expect(topic.id).toBe(created.find((t) => t.name === name)!.id);
      expect(topic.partitionsCount).toBe(PARTITIONS);
      expect(
        topic.partitions.map(({ leader, replicas, isr }) => ({ leader, replicas, isr })),
      ).toEqual(Array.from({ length: PARTITIONS }, () => ({ leader: 1, replicas: [1], isr: [1] })));
    }
    expect((await admin.listTopics()).sort()).toEqual([...ALL_TOPICS].sort());
  });

  for (const codec of CODECS as readonly Codec[]) {
    test(`clients: platformatic: produce 10,000 keyed messages with ${codec}`, async () => {
      const produced = await produceAll(codec);
      producedByCodec.set(codec, produced);
      expect(produced.problems.slice(0, 10)).toEqual([]);
      expect(produced.placements.filter(Boolean).length).toBe(MESSAGE_COUNT);
      expect(produced.counts.every((n) => n > 0)).toBe(true);

      // The broker keeps batches as received: Fetch shows the codec the client used.
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      expect(stored.records).toBe(MESSAGE_COUNT);
      expect(codecMismatches(stored, codec)).toEqual([]);
      expect(stored.badCrcs).toBe(0);
      expect(stored.badMagic).toBe(0);

      expect(await endOffsets(topicOf(codec))).toEqual(produced.counts);
    });
  }

  for (const codec of CODECS) {
    const name = `clients: platformatic: fetch 10,000 keyed messages with ${codec} without a group`;
    test(name, async () => {
      const produced = producedByCodec.get(codec);
      expect(produced?.placements.length).toBe(MESSAGE_COUNT);
      const records: ConsumedRecord[] = [];
      for (let p = 0; p < PARTITIONS; p++) {
        records.push(...(await fetchPartition(topicOf(codec), p, 0)));
      }
      fetchedByCodec.set(codec, records);
      const problems = checkConsumed(records, {
        count: MESSAGE_COUNT,
        headersOf: headersOf(codec),
        placementOf: (i) => produced!.placements[i]!,
        timestampWindow: [timestampOf(0), timestampOf(MESSAGE_COUNT - 1)],
      });
      expect(problems).toEqual([]);
    });
  }

  for (const codec of CODECS) {
    const name = `clients: platformatic: consume 10,000 keyed messages with ${codec} from the beginning`;
    test(name, async () => {
      const produced = producedByCodec.get(codec);
      expect(produced?.placements.length).toBe(MESSAGE_COUNT);
      const groupId = `platformatic-all-${codec}`;
      const records = await consumeStream(topicOf(codec), groupId, {
        mode: "earliest",
        done: (got) => got.length >= MESSAGE_COUNT,
      });
      const problems = checkConsumed(records, {
        count: MESSAGE_COUNT,
        headersOf: headersOf(codec),
        placementOf: (i) => produced!.placements[i]!,
        timestampWindow: [timestampOf(0), timestampOf(MESSAGE_COUNT - 1)],
      });
      expect(problems).toEqual([]);

      // Autocommit commits the next offset to read after each fetch (OffsetCommit); the
      // admin reads them back (OffsetFetch).
      const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId] });
      const committed = (group?.topics ?? []).flatMap((t) =>
        t.partitions.map((p) => ({
          topic: t.name,
          partition: p.partitionIndex,
          offset: Number(p.committedOffset),
        })),
      );
      expect(committed.sort((a, b) => a.partition - b.partition)).toEqual(
        produced!.counts.map((n, partition) => ({ topic: topicOf(codec), partition, offset: n })),
      );
    });
  }

  for (const codec of CODECS) {
    const name = `clients: platformatic: consume from inside a batch in mid-partition (${codec})`;
    test(name, async () => {
      const full = fetchedByCodec.get(codec) ?? [];
      expect(full.length).toBe(MESSAGE_COUNT);
      const { partition, count } = fullestPartition(full);
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      const offset = offsetInsideBatch(stored, partition, Math.floor(count / 2));
      // Fetch answers with the whole batch; the stream must drop what precedes the offset.
      expect(startsABatch(stored, partition, offset)).toBe(false);
      // Manual mode: the sought partition starts at `offset`, the others at their end
      // (fallbackMode latest), so only the sought partition yields records.
      const records = await consumeStream(topicOf(codec), `platformatic-seek-${codec}`, {
        mode: "manual",
        offsets: [{ topic: topicOf(codec), partition, offset: BigInt(offset) }],
        done: (got) => got.at(-1)?.offset === count - 1,
      });
      expect(records.filter((r) => r.partition !== partition).length).toBe(0);
      expect(checkFromOffset(records, full, partition, offset)).toEqual([]);
    });
  }

  test("clients: platformatic: CreateTime defaults to the send time", async () => {
    // Without a timestamp the client stamps the batch with the time it builds it; the
    // broker keeps it (message.timestamp.type=CreateTime, the default).
    const count = 200;
    const headers = (i: number): [string, string][] => [["idx", String(i)]];
    const before = Date.now();
    const result = await producer.send({
      messages: Array.from({ length: count }, (_, i) => ({
        topic: NOW_TOPIC,
        key: keyOf(i),
        value: valueOf(i),
        headers: new Map(headers(i)),
      })),
    });
    const after = Date.now();
    expect((result.offsets ?? []).every((r) => r.offset === 0n)).toBe(true);
    const records: ConsumedRecord[] = [];
    for (let p = 0; p < PARTITIONS; p++) records.push(...(await fetchPartition(NOW_TOPIC, p, 0)));
    const problems = checkConsumed(records, {
      count,
      headersOf: headers,
      placementOf: (i) => ({ partition: platformaticPartition(keyOf(i), PARTITIONS) }),
      timestampWindow: [before - TIMESTAMP_SLACK_MS, after + TIMESTAMP_SLACK_MS],
    });
    expect(problems).toEqual([]);
  });

  test("clients: platformatic: the broker logged no warnings or errors", () => {
    // Client retries can hide a failed request; the broker's log cannot.
    const lines = broker
      .stderr()
      .split("\n")
      .filter((line) => / (WARN|ERROR) /.test(line));
    expect(lines.slice(0, 10)).toEqual([]);
  });
});
