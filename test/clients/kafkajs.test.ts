/**
 * kafkajs 2.2.4 against a real Brook process: admin topic creation with 4 partitions;
 * 10,000 keyed messages with headers and an explicit CreateTime per message, per
 * compression codec (gzip built in; snappy, LZ4 and zstd registered through kafkajs's
 * pluggable codec table, see test/helpers/js-codecs.ts), checked against the produce
 * reports; consumed back by a consumer group from the beginning (FindCoordinator,
 * JoinGroup, SyncGroup, Heartbeat, OffsetFetch, OffsetCommit) and from inside a batch in
 * mid-partition with `seek`.
 *
 * kafkajs reports one base offset per partition per `send`; a message's offset is that
 * base plus its rank among the call's messages for the partition, and the partition is
 * the Java client's murmur2 partitioner's (kafkajs's DefaultPartitioner).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Admin,
  CompressionTypes,
  type Consumer,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  logLevel,
  Partitioners,
  type Producer,
} from "kafkajs";
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
  javaPartition,
  type Placement,
  type Produced,
  registerKafkajsCodecs,
  tallySend,
} from "../helpers/js-codecs.ts";

/** Messages per `send` call. */
const SEND_BATCH = 500;
const CONSUME_TIMEOUT_MS = 20_000;
/** Explicit CreateTimes: an hour back, one millisecond apart, so none is "now". */
const TIMESTAMP_BASE = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;
const timestampOf = (i: number) => TIMESTAMP_BASE + i;

const COMPRESSION: Record<string, CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

const topicOf = (codec: string) => `kafkajs-${codec}`;
const NOW_TOPIC = "kafkajs-now";
const ALL_TOPICS = [...CODECS.map(topicOf), NOW_TOPIC];

/** Headers per index, a repeated name included (kafkajs sends an array as repeats). */
const headersOf =
  (codec: string) =>
  (i: number): [string, string][] => [
    ["idx", String(i)],
    ["src", "kafkajs"],
    ["codec", codec],
    ["tag", "a"],
    ["tag", `b${i % 3}`],
  ];

function toKafkajsHeaders(headers: [string, string][]): IHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    const had = out[name];
    out[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return out;
}

/** kafkajs gives repeated header names as arrays, in the order received. */
function fromKafkajsHeaders(headers: IHeaders | undefined): [string, string | null][] {
  const out: [string, string | null][] = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    for (const one of Array.isArray(value) ? value : [value]) {
      out.push([name, one === undefined || one === null ? null : one.toString()]);
    }
  }
  return out;
}

function toRecord(partition: number, message: KafkaMessage): ConsumedRecord {
  return {
    partition,
    offset: Number(message.offset),
    // kafkajs does not expose the batch's timestamp type. The explicit per-message
    // timestamps coming back unchanged is the CreateTime check: under LogAppendTime
    // kafkajs reports the batch's (broker-set) max timestamp instead.
    timestampType: "create",
    timestamp: Number(message.timestamp),
    key: message.key === null ? null : message.key.toString(),
    value: message.value === null ? null : message.value.toString(),
    headers: fromKafkajsHeaders(message.headers),
  };
}

let broker: TestBroker;
let kafka: Kafka;
let admin: Admin;
let producer: Producer;
let created: boolean;
const producedByCodec = new Map<string, Produced>();
const consumedByCodec = new Map<string, ConsumedRecord[]>();

/** Sends every message in `SEND_BATCH` calls; where each landed, from the reports. */
async function produceAll(codec: string): Promise<Produced> {
  const topic = topicOf(codec);
  const placements: Placement[] = new Array(MESSAGE_COUNT);
  const counts = new Array<number>(PARTITIONS).fill(0);
  const problems: string[] = [];
  for (let start = 0; start < MESSAGE_COUNT; start += SEND_BATCH) {
    const indexes = Array.from(
      { length: Math.min(SEND_BATCH, MESSAGE_COUNT - start) },
      (_, n) => start + n,
    );
    const reports = await producer.send({
      topic,
      compression: COMPRESSION[codec],
      messages: indexes.map((i) => ({
        key: keyOf(i),
        value: valueOf(i),
        headers: toKafkajsHeaders(headersOf(codec)(i)),
        timestamp: String(timestampOf(i)),
      })),
    });
    const byPartition = new Map<number, number[]>();
    for (const i of indexes) {
      const partition = javaPartition(keyOf(i), PARTITIONS);
      byPartition.set(partition, [...(byPartition.get(partition) ?? []), i]);
    }
    for (const report of reports) {
      const where = `send at ${start}, partition ${report.partition}`;
      if (report.errorCode !== 0) problems.push(`${where}: error ${report.errorCode}`);
      // ProduceResponse log_append_time is -1 under CreateTime.
      if (report.logAppendTime !== "-1") {
        problems.push(`${where}: logAppendTime ${report.logAppendTime}`);
      }
    }
    tallySend(
      { placements, counts, problems },
      {
        start,
        topic,
        byPartition,
        reports: reports.map((r) => ({
          partition: r.partition,
          topic: r.topicName,
          baseOffset: Number(r.baseOffset),
        })),
        timestampOf,
      },
    );
  }
  return { placements, counts, problems };
}

/**
 * Runs a fresh consumer group over `topic` with eachBatch until `done(records)` holds,
 * then disconnects (which commits). `seek` positions one partition after `run`.
 */
async function consumeWithGroup(
  topic: string,
  groupId: string,
  options: {
    fromBeginning: boolean;
    seek?: { partition: number; offset: number };
    done: (records: ConsumedRecord[]) => boolean;
  },
): Promise<ConsumedRecord[]> {
  // Short waits and heartbeats: the run lasts well under a second, and a Heartbeat
  // should still be sent while it lasts.
  const consumer: Consumer = kafka.consumer({
    groupId,
    maxWaitTimeInMs: 200,
    heartbeatInterval: 100,
  });
  const records: ConsumedRecord[] = [];
  let crash: unknown;
  consumer.on(consumer.events.CRASH, (event) => {
    crash = event.payload.error;
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: options.fromBeginning });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) records.push(toRecord(batch.partition, message));
      },
    });
    if (options.seek) {
      const { partition, offset } = options.seek;
      consumer.seek({ topic, partition, offset: String(offset) });
    }
    await eventually(
      `${groupId} consumed ${topic}`,
      () => {
        if (crash) throw crash;
        return options.done(records);
      },
      CONSUME_TIMEOUT_MS,
    );
  } finally {
    await consumer.disconnect();
  }
  return records;
}

beforeAll(async () => {
  registerKafkajsCodecs();
  broker = await startBroker();
  kafka = new Kafka({
    clientId: "brook-kafkajs-test",
    brokers: [broker.bootstrap],
    logLevel: logLevel.WARN,
  });
  admin = kafka.admin();
  await admin.connect();
  created = await admin.createTopics({
    waitForLeaders: true,
    topics: ALL_TOPICS.map((topic) => ({ topic, numPartitions: PARTITIONS })),
  });
  producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await admin?.disconnect();
  if (broker) await stopAndClean(broker);
});

describe("clients: kafkajs", () => {
  test("clients: kafkajs: admin creates topics with 4 partitions", async () => {
    expect(created).toBe(true);
    const { topics } = await admin.fetchTopicMetadata({ topics: ALL_TOPICS });
    for (const topic of topics) {
      const partitions = topic.partitions
        .map(({ partitionId, partitionErrorCode, leader, replicas, isr }) => ({
          partitionId,
          partitionErrorCode,
          leader,
          replicas,
          isr,
        }))
        .sort((a, b) => a.partitionId - b.partitionId);
      expect(partitions).toEqual(
        Array.from({ length: PARTITIONS }, (_, p) => ({
          partitionId: p,
          partitionErrorCode: 0,
          leader: 1,
          replicas: [1],
          isr: [1],
        })),
      );
    }
    expect((await admin.listTopics()).sort()).toEqual([...ALL_TOPICS].sort());
  });

  for (const codec of CODECS) {
    test(`clients: kafkajs: produce 10,000 keyed messages with ${codec}`, async () => {
      const produced = await produceAll(codec);
      producedByCodec.set(codec, produced);
      expect(produced.problems.slice(0, 10)).toEqual([]);
      expect(produced.placements.filter(Boolean).length).toBe(MESSAGE_COUNT);
      expect(produced.counts.every((n) => n > 0)).toBe(true);

      // The broker keeps batches as received: Fetch shows the codec kafkajs used.
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      expect(stored.records).toBe(MESSAGE_COUNT);
      expect(codecMismatches(stored, codec)).toEqual([]);
      expect(stored.badCrcs).toBe(0);
      expect(stored.badMagic).toBe(0);

      // ListOffsets: earliest 0, latest = what the reports add up to.
      const offsets = await admin.fetchTopicOffsets(topicOf(codec));
      expect(
        offsets
          .map(({ partition, low, high }) => ({ partition, low, high }))
          .sort((a, b) => a.partition - b.partition),
      ).toEqual(produced.counts.map((n, partition) => ({ partition, low: "0", high: String(n) })));
    });
  }

  for (const codec of CODECS) {
    const name = `clients: kafkajs: consume 10,000 keyed messages with ${codec} from the beginning`;
    test(name, async () => {
      const produced = producedByCodec.get(codec);
      expect(produced?.placements.length).toBe(MESSAGE_COUNT);
      const groupId = `kafkajs-all-${codec}`;
      const records = await consumeWithGroup(topicOf(codec), groupId, {
        fromBeginning: true,
        done: (got) => got.length >= MESSAGE_COUNT,
      });
      consumedByCodec.set(codec, records);
      const problems = checkConsumed(records, {
        count: MESSAGE_COUNT,
        headersOf: headersOf(codec),
        placementOf: (i) => produced!.placements[i]!,
        timestampWindow: [timestampOf(0), timestampOf(MESSAGE_COUNT - 1)],
      });
      expect(problems).toEqual([]);

      // kafkajs commits the next offset to read (autoCommit), so the group ends at the
      // end of every partition (OffsetCommit, then OffsetFetch through the admin).
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topicOf(codec)] });
      expect(
        committed!.partitions
          .map(({ partition, offset }) => ({ partition, offset }))
          .sort((a, b) => a.partition - b.partition),
      ).toEqual(produced!.counts.map((n, partition) => ({ partition, offset: String(n) })));
    });
  }

  for (const codec of CODECS) {
    test(`clients: kafkajs: seek to inside a batch in mid-partition (${codec})`, async () => {
      const full = consumedByCodec.get(codec) ?? [];
      expect(full.length).toBe(MESSAGE_COUNT);
      const { partition, count } = fullestPartition(full);
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      const offset = offsetInsideBatch(stored, partition, Math.floor(count / 2));
      // Fetch answers with the whole batch; kafkajs must drop what precedes the offset.
      expect(startsABatch(stored, partition, offset)).toBe(false);
      // No committed offsets and fromBeginning false: the other partitions start at
      // their end, so only the sought partition yields records.
      const records = await consumeWithGroup(topicOf(codec), `kafkajs-seek-${codec}`, {
        fromBeginning: false,
        seek: { partition, offset },
        done: (got) => got.at(-1)?.offset === count - 1,
      });
      expect(records.filter((r) => r.partition !== partition).length).toBe(0);
      expect(checkFromOffset(records, full, partition, offset)).toEqual([]);
    });
  }

  test("clients: kafkajs: CreateTime defaults to the send time", async () => {
    // Without a timestamp kafkajs stamps Date.now() when building the message; the
    // broker keeps it (message.timestamp.type=CreateTime, the default).
    const count = 200;
    const headers = (i: number): [string, string][] => [["idx", String(i)]];
    const before = Date.now();
    const reports = await producer.send({
      topic: NOW_TOPIC,
      messages: Array.from({ length: count }, (_, i) => ({
        key: keyOf(i),
        value: valueOf(i),
        headers: toKafkajsHeaders(headers(i)),
      })),
    });
    const after = Date.now();
    expect(reports.every((r) => r.errorCode === 0 && r.baseOffset === "0")).toBe(true);
    const records = await consumeWithGroup(NOW_TOPIC, "kafkajs-now", {
      fromBeginning: true,
      done: (got) => got.length >= count,
    });
    const problems = checkConsumed(records, {
      count,
      headersOf: headers,
      placementOf: (i) => ({ partition: javaPartition(keyOf(i), PARTITIONS) }),
      timestampWindow: [before - TIMESTAMP_SLACK_MS, after + TIMESTAMP_SLACK_MS],
    });
    expect(problems).toEqual([]);
  });

  test("clients: kafkajs: the broker logged no warnings or errors", () => {
    // Client retries can hide a failed request; the broker's log cannot.
    const lines = broker
      .stderr()
      .split("\n")
      .filter((line) => / (WARN|ERROR) /.test(line));
    expect(lines.slice(0, 10)).toEqual([]);
  });
});
