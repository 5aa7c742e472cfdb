/**
 * A user topic with cleanup.policy=compact on a real broker, read by real clients after
 * the cleaner rewrote it: kafkajs produces gzip batches of keyed messages, some of
 * whose records are superseded (so batches are re-encoded with fewer records than
 * offsets, and whole batches and segments leave gaps); kafkajs and kcat (librdkafka)
 * then consume it from the beginning. Every message they get is the one produced at its
 * offset, and every key's latest message is there.
 */
import { afterAll, expect, test } from "bun:test";
import { CompressionTypes, Kafka, logLevel } from "kafkajs";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { kcat } from "../helpers/kcat.ts";

const TOPIC = "kv";
const KEYS = 30;
const SENDS = 60;
const PER_SEND = 20;

let broker: TestBroker | undefined;
afterAll(async () => {
  if (broker !== undefined) await stopAndClean(broker);
});

test("storage: compaction: kafkajs and kcat read a compacted topic: latest value per key, offsets kept", async () => {
  broker = await startBroker();
  const kafka = new Kafka({
    brokers: [broker.bootstrap],
    clientId: "compaction-test",
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      {
        topic: TOPIC,
        numPartitions: 1,
        configEntries: [
          { name: "cleanup.policy", value: "compact" },
          { name: "segment.bytes", value: "4096" },
        ],
      },
    ],
  });
  await admin.disconnect();

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  // offset → [key, value], as kafkajs reports them (one partition, base offset per send).
  const produced = new Map<number, [string, string]>();
  let n = 0;
  for (let send = 0; send < SENDS; send++) {
    const messages = Array.from({ length: PER_SEND }, (_, i) => ({
      key: `key-${(n + i * 7) % KEYS}`,
      value: `value-${n + i}-${"x".repeat((n + i) % 50)}`,
    }));
    const [report] = await producer.send({
      topic: TOPIC,
      compression: CompressionTypes.GZIP,
      messages,
    });
    const base = Number(report!.baseOffset);
    messages.forEach((message, i) => produced.set(base + i, [message.key, message.value]));
    n += PER_SEND;
  }
  await producer.disconnect();
  const end = n;
  const latest = new Map<string, number>();
  for (const [offset, [key]] of produced) latest.set(key, offset);

  await eventually(
    "the topic compacted",
    () => /Cleaned log dir=\S+\/kv-0/.test(broker!.stderr()),
    20_000,
  );

  // kafkajs, from the beginning, until the last offset.
  const consumed: Array<{ offset: number; key: string; value: string }> = [];
  const consumer = kafka.consumer({ groupId: "compaction-readers" });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  let lastSeen = -1;
  await consumer.run({
    eachMessage: async ({ message }) => {
      const offset = Number(message.offset);
      lastSeen = Math.max(lastSeen, offset);
      consumed.push({ offset, key: message.key!.toString(), value: message.value!.toString() });
    },
  });
  await eventually("kafkajs read to the end", () => lastSeen === end - 1, 20_000);
  await consumer.disconnect();

  const check = (records: Array<{ offset: number; key: string; value: string }>) => {
    const offsets = records.map((r) => r.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    for (const record of records)
      expect([record.key, record.value]).toEqual(produced.get(record.offset)!);
    for (const [, offset] of latest) expect(offsets).toContain(offset);
    // The cleaned part holds one record per key: far fewer than were produced.
    expect(records.length).toBeLessThan(end / 2);
  };
  check(consumed);

  // kcat (librdkafka) reads it the same.
  const read = await kcat([
    "-b",
    broker.bootstrap,
    "-t",
    TOPIC,
    "-C",
    "-e",
    "-o",
    "beginning",
    "-f",
    "%o %k %s\\n",
  ]);
  expect(read.code).toBe(0);
  const lines = read.stdout
    .trim()
    .split("\n")
    .map((line) => {
      const [offset, key, value] = line.split(" ");
      return { offset: Number(offset), key: key!, value: value! };
    });
  check(lines);
}, 90_000);
