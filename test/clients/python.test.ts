/**
 * confluent-kafka-python 1.7 (librdkafka 2.0) against a real Brook process: AdminClient
 * topic creation and configs; 10,000 keyed messages with per-message headers per
 * compression codec over 4 partitions, checked against the delivery reports and consumed
 * back with assign() from the beginning and from inside a batch; watermarks; and
 * offsets_for_times. The client runs in test/clients/python/kafka_client.py (one JSON
 * command in, one JSON answer out); every check is made here.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
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
  librdkafkaPartition,
  offsetInsideBatch,
  runProcess,
  startsABatch,
  storedBatches,
  valueOf,
} from "../helpers/clients-common.ts";

const PYTHON = "/usr/bin/python3";
const CLIENT_SCRIPT = join(import.meta.dir, "python/kafka_client.py");
const PYTHON_TIMEOUT_MS = 30_000;
const RETENTION_MS = "3600000";

let broker: TestBroker;
let created: any;
const topicOf = (codec: string) => `py-${codec}`;
const timesTopicOf = (codec: string) => `py-times-${codec}`;

/** [partition, offset, timestamp type, timestamp] per message index. */
type Delivery = [number, number, string, number];
interface Produced {
  delivered: Delivery[];
  consumed: ConsumedRecord[];
  /** The producer's stderr (debug=msg). */
  stderr: string;
}
const producedByCodec = new Map<string, Produced>();

/** Runs one command in the Python client; its JSON answer plus what it wrote to stderr. */
async function python(command: Record<string, unknown>): Promise<any> {
  const result = await runProcess(PYTHON, [CLIENT_SCRIPT], {
    stdin: JSON.stringify({ bootstrap: broker.bootstrap, ...command }),
    timeoutMs: PYTHON_TIMEOUT_MS,
  });
  if (result.code !== 0) {
    throw new Error(`kafka_client.py ${command.op} exited ${result.code}:\n${result.stderr}`);
  }
  return { ...JSON.parse(result.stdout), stderr: result.stderr };
}

type RawRecord = [
  number,
  number,
  string,
  number,
  string | null,
  string | null,
  [string, string | null][],
];

/** Consumes with assign() until every assigned partition reports its end. */
async function consume(topic: string, assignments: [number, number | "beginning"][]) {
  const answer = await python({ op: "consume", topic, assignments, timeout_s: 20 });
  const records = (answer.records as RawRecord[]).map(
    ([partition, offset, timestampType, timestamp, key, value, headers]): ConsumedRecord => ({
      partition,
      offset,
      timestampType,
      timestamp,
      key,
      value,
      headers,
    }),
  );
  return { records, reachedEnd: answer.reached_end as boolean, errors: answer.errors as string[] };
}

const headersOf =
  (codec: string) =>
  (i: number): [string, string][] => [
    ["idx", String(i)],
    ["src", "python"],
    ["codec", codec],
  ];

const allFromBeginning = () =>
  Array.from({ length: PARTITIONS }, (_, p): [number, "beginning"] => [p, "beginning"]);

beforeAll(async () => {
  broker = await startBroker();
  const retention = { "retention.ms": RETENTION_MS };
  created = await python({
    op: "create_topics",
    topics: [
      ...CODECS.map((codec) => ({
        name: topicOf(codec),
        partitions: PARTITIONS,
        configs: retention,
      })),
      ...CODECS.map((codec) => ({ name: timesTopicOf(codec), partitions: PARTITIONS })),
    ],
  });
});

afterAll(async () => {
  if (broker) await stopAndClean(broker);
});

describe("clients: python", () => {
  test("clients: python: AdminClient creates topics with 4 partitions on the broker", () => {
    const names = CODECS.flatMap((codec) => [topicOf(codec), timesTopicOf(codec)]);
    expect(created.created).toEqual(Object.fromEntries(names.map((name) => [name, null])));
    expect(created.brokers).toEqual({ "1": broker.bootstrap });
    expect(created.controller).toBe(1);
    const partitions = Object.fromEntries(
      Array.from({ length: PARTITIONS }, (_, p) => [
        String(p),
        { leader: 1, replicas: [1], isrs: [1] },
      ]),
    );
    for (const name of names) expect(created.topics[name]).toEqual({ error: null, partitions });
  });

  test("clients: python: describe_configs shows the override and the defaults", async () => {
    const { configs } = await python({ op: "describe_configs", topic: topicOf("none") });
    // ConfigSource 1 = DYNAMIC_TOPIC_CONFIG, 5 = DEFAULT_CONFIG (DescribeConfigs v1+).
    const entry = (value: string, isDefault: boolean, source: number) => ({
      value,
      is_default: isDefault,
      is_read_only: false,
      source,
    });
    expect(configs["retention.ms"]).toEqual(entry(RETENTION_MS, false, 1));
    expect(configs["compression.type"]).toEqual(entry("producer", true, 5));
    expect(configs["cleanup.policy"]).toEqual(entry("delete", true, 5));
  });

  for (const codec of CODECS) {
    test(`clients: python: produce and consume 10,000 keyed messages with ${codec}`, async () => {
      const topic = topicOf(codec);
      const messages = Array.from({ length: MESSAGE_COUNT }, (_, i) => [
        keyOf(i),
        valueOf(i),
        headersOf(codec)(i),
      ]);
      const started = Date.now();
      const produced = await python({
        op: "produce",
        topic,
        codec,
        linger_ms: 10,
        debug: "msg",
        messages,
      });
      const ended = Date.now();
      expect(produced.errors).toEqual([]);
      expect(produced.undelivered).toBe(0);
      const reports = produced.delivered as (Delivery | null)[];
      expect(reports.filter((d) => d === null).length).toBe(0);
      const delivered = reports as Delivery[];
      // librdkafka's default partitioner; the reports say where each message went.
      const misplaced = delivered.filter(
        (d, i) => d[0] !== librdkafkaPartition(keyOf(i), PARTITIONS),
      );
      expect(misplaced).toEqual([]);

      const { records, reachedEnd, errors } = await consume(topic, allFromBeginning());
      expect(errors).toEqual([]);
      expect(reachedEnd).toBe(true);
      producedByCodec.set(codec, { delivered, consumed: records, stderr: produced.stderr });
      const problems = checkConsumed(records, {
        count: MESSAGE_COUNT,
        headersOf: headersOf(codec),
        placementOf: (i) => {
          const [partition, offset, , timestamp] = delivered[i]!;
          return { partition, offset, timestamp };
        },
        timestampWindow: [started - TIMESTAMP_SLACK_MS, ended + TIMESTAMP_SLACK_MS],
      });
      expect(problems).toEqual([]);
      expect(new Set(records.map((r) => r.partition)).size).toBe(PARTITIONS);
    });
  }

  for (const codec of CODECS) {
    test(`clients: python: ${codec} batches are stored as the producer sent them`, async () => {
      // The broker keeps batches as received, so Fetch shows the codec librdkafka put on
      // the wire. librdkafka drops a codec it believes the broker lacks and says so.
      const notices = (producedByCodec.get(codec)?.stderr ?? "")
        .split("\n")
        .filter((line) => line.includes("does not support compression"))
        .slice(0, 4);
      expect(notices).toEqual([]);
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      expect(stored.records).toBe(MESSAGE_COUNT);
      expect(codecMismatches(stored, codec)).toEqual([]);
      expect(stored.badCrcs).toBe(0);
      expect(stored.badMagic).toBe(0);
    });
  }

  for (const codec of CODECS) {
    test(`clients: python: watermarks match the delivery reports (${codec})`, async () => {
      const delivered = producedByCodec.get(codec)?.delivered ?? [];
      expect(delivered.length).toBe(MESSAGE_COUNT);
      const expected: Record<string, [number, number]> = {};
      for (let p = 0; p < PARTITIONS; p++) {
        expected[String(p)] = [0, delivered.filter((d) => d[0] === p).length];
      }
      const answer = await python({
        op: "watermarks",
        topic: topicOf(codec),
        partitions: PARTITIONS,
      });
      expect(answer.watermarks).toEqual(expected);
    });
  }

  for (const codec of CODECS) {
    test(`clients: python: consume from inside a batch in mid-partition (${codec})`, async () => {
      const full = producedByCodec.get(codec)?.consumed ?? [];
      expect(full.length).toBe(MESSAGE_COUNT);
      const { partition, count } = fullestPartition(full);
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      const offset = offsetInsideBatch(stored, partition, Math.floor(count / 2));
      expect(startsABatch(stored, partition, offset)).toBe(false);
      const { records, reachedEnd, errors } = await consume(topicOf(codec), [[partition, offset]]);
      expect(errors).toEqual([]);
      expect(reachedEnd).toBe(true);
      expect(checkFromOffset(records, full, partition, offset)).toEqual([]);
    });
  }

  for (const codec of CODECS) {
    const name = `clients: python: offsets_for_times finds the first record at or after (${codec})`;
    test(name, async () => {
      // 100 records per partition stamped base + 10 n (n = 0..99), usually one batch.
      // KafkaConsumer#offsetsForTimes: "the earliest offset whose timestamp is greater
      // than or equal to the given timestamp"; none past the last one (offset -1).
      const base = Math.floor(Date.now() / 1000) * 1000 - 60_000;
      const stamps = Array.from({ length: 100 }, (_, n) => base + 10 * n);
      const messages = Array.from({ length: PARTITIONS }, (_, p) =>
        stamps.map((ts, n) => [`t${p}-${n}`, `at ${ts}`, [], ts, p]),
      ).flat();
      const topic = timesTopicOf(codec);
      const produced = await python({ op: "produce", topic, codec, linger_ms: 1000, messages });
      expect(produced.errors).toEqual([]);
      expect(produced.undelivered).toBe(0);
      // The reports carry the CreateTime each record was given.
      const reported = (produced.delivered as Delivery[]).map((d) => [d[2], d[3]]);
      expect(reported).toEqual(messages.map((m) => ["create", m[3] as number]));

      const lookups: [partition: number, timestamp: number, offset: number][] = [
        [0, base - 5, 0],
        [1, base + 505, 51],
        [2, base + 990, 99],
        [3, base + 991, -1],
      ];
      const answer = await python({
        op: "offsets_for_times",
        topic,
        lookups: lookups.map(([p, ts]) => [p, ts]),
      });
      expect(answer.offsets).toEqual(lookups.map(([p, , offset]) => [p, offset, null]));
    });
  }
});
