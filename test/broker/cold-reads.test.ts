/**
 * Consumers far behind, whose batches are no longer in the page cache: the broker finds
 * that without waiting for the disk and has the thread pool read them, off the event
 * loop (src/storage/page-cache.ts). The segment files are dropped from the page cache
 * (fsync, then posix_fadvise DONTNEED) before each read. kcat, with librdkafka's 1 MiB
 * per partition (answers below the size the broker defers), and kafkajs, asking for
 * 8 MiB per partition (answers streamed from the files), read 8,000 messages of 1 KiB
 * back intact and in order, and /metrics counts the reads that went to the thread pool.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { evictFromPageCache } from "../../src/storage/test-support.ts";
import { startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { runProcess } from "../helpers/clients-common.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus.ts";

const COUNT = 8_000;
const TOPIC = "cold-reads";

let broker: TestBroker;

/** Message i: its index, then filler to about 1 KiB, so a reordering or a cut shows. */
const line = (i: number) =>
  `${String(i).padStart(6, "0")}:${"zyxwvutsrqponmlkjihgfedcba".repeat(40)}`;

beforeAll(async () => {
  broker = await startBroker();
  const created = await fetch(`${broker.adminUrl}/v1/topics`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      name: TOPIC,
      partitions: 1,
      configs: { "segment.bytes": String(1024 * 1024) },
    }),
  });
  expect(created.status).toBe(201);
  const input = Array.from({ length: COUNT }, (_, i) => line(i)).join("\n") + "\n";
  const produced = await runProcess(
    "kcat",
    ["-b", broker.bootstrap, "-P", "-t", TOPIC, "-p", "0", "-X", "linger.ms=20"],
    { stdin: input, timeoutMs: 30_000 },
  );
  expect(produced.code).toBe(0);
});

afterAll(async () => {
  if (broker) await stopAndClean(broker);
});

/** Drops every segment file of the topic's partition from the page cache. */
function evictPartition(): void {
  const dir = join(broker.dataDir, `${TOPIC}-0`);
  const files = readdirSync(dir).filter((name) => name.endsWith(".log"));
  expect(files.length).toBeGreaterThan(4);
  for (const name of files) evictFromPageCache(join(dir, name));
}

async function coldReads(): Promise<number> {
  const text = await (await fetch(`${broker.adminUrl}/metrics`)).text();
  return sampleValue(parsePrometheusText(text), "brook_fetch_cold_reads_total") ?? -1;
}

test("broker: kcat reads 8 MB that are no longer cached back intact; the thread pool read them", async () => {
  const before = await coldReads();
  expect(before).toBeGreaterThanOrEqual(0);
  evictPartition();
  const consumed = await runProcess(
    "kcat",
    ["-b", broker.bootstrap, "-C", "-t", TOPIC, "-p", "0", "-o", "beginning", "-e", "-q"],
    { timeoutMs: 30_000 },
  );
  expect(consumed.code).toBe(0);
  const lines = consumed.stdout.split("\n").filter((l) => l.length > 0);
  expect(lines.length).toBe(COUNT);
  expect(lines.findIndex((l, i) => l !== line(i))).toBe(-1);
  expect(await coldReads()).toBeGreaterThan(before);
});

test("broker: kafkajs with 8 MiB per partition reads the same cold messages intact", async () => {
  const before = await coldReads();
  evictPartition();
  const kafka = new Kafka({
    clientId: "cold-reads",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: "cold-reads",
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
  });
  const values: string[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          values.push(message.value!.toString());
          if (values.length === COUNT) resolve();
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  expect(values.findIndex((v, i) => v !== line(i))).toBe(-1);
  expect(await coldReads()).toBeGreaterThan(before);
});
