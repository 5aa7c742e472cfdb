/**
 * kcat (librdkafka 2.0) against a real Brook process: 10,000 keyed messages per
 * compression codec over 4 partitions, consumed back from the beginning and from the
 * middle of a partition. kcat cannot create a topic with a partition count, so topics
 * are created with confluent-kafka-python's AdminClient (CreateTopics).
 *
 * kcat's -H sets the same headers on every message of a run, so the index lives in the
 * key and value and the headers are fixed per run (src, codec).
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
const KCAT_TIMEOUT_MS = 20_000;

let broker: TestBroker;
const topicOf = (codec: string) => `kcat-${codec}`;
/** What each codec's full consume returned, for the from-the-middle tests. */
const consumedByCodec = new Map<string, ConsumedRecord[]>();
/** kcat -P's stderr per codec (-d msg): librdkafka says there when it drops the codec. */
const produceStderr = new Map<string, string>();

async function kcat(args: string[], stdin?: string) {
  const all = ["-b", broker.bootstrap, ...args];
  const result = await runProcess("kcat", all, { stdin, timeoutMs: KCAT_TIMEOUT_MS });
  if (result.code !== 0) {
    throw new Error(`kcat ${all.join(" ")} exited ${result.code}:\n${result.stderr}`);
  }
  return result;
}

/** kcat -J consumer lines; headers come as a flat [name, value, name, value...] list. */
function parseKcatJson(stdout: string): ConsumedRecord[] {
  return stdout
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      const m = JSON.parse(line);
      const flat: (string | null)[] = m.headers ?? [];
      const headers: [string, string | null][] = [];
      for (let n = 0; n < flat.length; n += 2) headers.push([flat[n]!, flat[n + 1] ?? null]);
      return {
        partition: m.partition,
        offset: m.offset,
        timestampType: m.tstype,
        timestamp: m.ts,
        key: m.key,
        value: m.payload,
        headers,
      };
    });
}

/** Consumes with kcat until the end of every partition read (-e). */
async function kcatConsume(topic: string, from: { partition: number; offset: number } | null) {
  const where =
    from === null ? ["-o", "beginning"] : ["-p", String(from.partition), "-o", String(from.offset)];
  const args = ["-C", "-t", topic, ...where, "-e", "-J", "-X", "fetch.wait.max.ms=100"];
  const result = await kcat(args);
  return parseKcatJson(result.stdout);
}

beforeAll(async () => {
  broker = await startBroker();
  const created = await runProcess(PYTHON, [CLIENT_SCRIPT], {
    stdin: JSON.stringify({
      op: "create_topics",
      bootstrap: broker.bootstrap,
      topics: CODECS.map((codec) => ({ name: topicOf(codec), partitions: PARTITIONS })),
    }),
    timeoutMs: 30_000,
  });
  if (created.code !== 0) throw new Error(`create_topics failed:\n${created.stderr}`);
  const answer = JSON.parse(created.stdout);
  expect(answer.created).toEqual(Object.fromEntries(CODECS.map((codec) => [topicOf(codec), null])));
});

afterAll(async () => {
  if (broker) await stopAndClean(broker);
});

describe("clients: kcat", () => {
  test("clients: kcat: metadata (-L) lists each topic with its 4 partitions", async () => {
    const metadata = JSON.parse((await kcat(["-L", "-J"])).stdout);
    expect(metadata.brokers).toEqual([{ id: 1, name: broker.bootstrap }]);
    for (const codec of CODECS) {
      const topic = metadata.topics.find((t: { topic: string }) => t.topic === topicOf(codec));
      expect(topic?.error).toBeUndefined();
      expect(topic.partitions).toEqual(
        Array.from({ length: PARTITIONS }, (_, partition) => ({
          partition,
          leader: 1,
          replicas: [{ id: 1 }],
          isrs: [{ id: 1 }],
        })),
      );
    }
  });

  for (const codec of CODECS) {
    test(`clients: kcat: produce and consume 10,000 keyed messages with ${codec}`, async () => {
      const topic = topicOf(codec);
      const lines = Array.from({ length: MESSAGE_COUNT }, (_, i) => `${keyOf(i)}:${valueOf(i)}\n`);
      const started = Date.now();
      const produced = await kcat(
        [
          "-P",
          "-t",
          topic,
          "-K",
          ":",
          "-H",
          "src=kcat",
          "-H",
          `codec=${codec}`,
          "-z",
          codec,
          "-X",
          "linger.ms=10",
          "-d",
          "msg",
        ],
        lines.join(""),
      );
      const ended = Date.now();
      produceStderr.set(codec, produced.stderr);

      const consumed = await kcatConsume(topic, null);
      consumedByCodec.set(codec, consumed);
      const problems = checkConsumed(consumed, {
        count: MESSAGE_COUNT,
        headersOf: () => [
          ["src", "kcat"],
          ["codec", codec],
        ],
        placementOf: (i) => ({ partition: librdkafkaPartition(keyOf(i), PARTITIONS) }),
        timestampWindow: [started - TIMESTAMP_SLACK_MS, ended + TIMESTAMP_SLACK_MS],
      });
      expect(problems).toEqual([]);
      expect(new Set(consumed.map((r) => r.partition)).size).toBe(PARTITIONS);
    });
  }

  for (const codec of CODECS) {
    test(`clients: kcat: ${codec} batches are stored as kcat sent them`, async () => {
      // The broker keeps batches as received, so Fetch shows the codec librdkafka put on
      // the wire. librdkafka drops a codec it believes the broker lacks and says so.
      const notices = (produceStderr.get(codec) ?? "")
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
    test(`clients: kcat: consume from inside a batch in mid-partition (${codec})`, async () => {
      const full = consumedByCodec.get(codec) ?? [];
      expect(full.length).toBe(MESSAGE_COUNT);
      const { partition, count } = fullestPartition(full);
      const stored = await storedBatches(broker.port, topicOf(codec), PARTITIONS);
      const offset = offsetInsideBatch(stored, partition, Math.floor(count / 2));
      expect(startsABatch(stored, partition, offset)).toBe(false);
      const consumed = await kcatConsume(topicOf(codec), { partition, offset });
      expect(checkFromOffset(consumed, full, partition, offset)).toEqual([]);
    });
  }
});
