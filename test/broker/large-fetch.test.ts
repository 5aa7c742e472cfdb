/**
 * Fetch answers of several MiB, which the broker streams from the segment files a piece
 * at a time (storage/file-slice.ts, server/outbound.ts) instead of reading them whole:
 * kcat and kafkajs, asking for up to 8 MiB per partition, read 12,000 messages of 1 KiB
 * across 1 MiB segments back intact and in order; the records the metrics count out
 * (counted while streaming) match what was sent; and a client that hangs up in the middle
 * of such answers leaves no segment file open in the broker, and one that asks for many
 * and reads none holds only a bounded number open (the broker stops reading its requests).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { connect } from "node:net";
import { Kafka, logLevel } from "kafkajs";
import { fetchFrame } from "../bench/workload.ts";
import { eventually, startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import { runProcess } from "../helpers/clients-common.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus.ts";
import { RawClient } from "../helpers/raw-client.ts";

const CREATE_TOPICS = 19;
const COUNT = 12_000;
const TOPIC = "large-fetch";
const PARTITION_FETCH_BYTES = 8 * 1024 * 1024;

let broker: TestBroker;

/** Message i: its index, then filler to about 1 KiB, so a reordering or a cut shows. */
const line = (i: number) =>
  `${String(i).padStart(6, "0")}:${"abcdefghijklmnopqrstuvwxyz".repeat(40)}`;

beforeAll(async () => {
  broker = await startBroker();
  const client = await RawClient.connect(broker.port);
  try {
    const created = await client.request(CREATE_TOPICS, 7, {
      topics: [
        {
          name: TOPIC,
          numPartitions: 1,
          replicationFactor: 1,
          assignments: [],
          configs: [{ name: "segment.bytes", value: String(1024 * 1024) }],
        },
      ],
      timeoutMs: 5000,
    });
    expect(created.topics[0].errorCode).toBe(0);
  } finally {
    client.close();
  }
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

test("broker: kcat reads 12 MB back intact through fetches of several MiB", async () => {
  const consumed = await runProcess(
    "kcat",
    [
      "-b",
      broker.bootstrap,
      "-C",
      "-t",
      TOPIC,
      "-p",
      "0",
      "-o",
      "beginning",
      "-e",
      "-q",
      "-X",
      `max.partition.fetch.bytes=${PARTITION_FETCH_BYTES}`,
      "-X",
      "fetch.max.bytes=52428800",
    ],
    { timeoutMs: 30_000 },
  );
  expect(consumed.code).toBe(0);
  const lines = consumed.stdout.split("\n").filter((l) => l.length > 0);
  expect(lines.length).toBe(COUNT);
  const wrong = lines.findIndex((l, i) => l !== line(i));
  expect(wrong).toBe(-1);
});

test("broker: kafkajs reads the same messages with 8 MiB per partition; metrics count every record out", async () => {
  const metricsBefore = parsePrometheusText(
    await (await fetch(`${broker.adminUrl}/metrics`)).text(),
  );
  const outBefore =
    sampleValue(metricsBefore, "brook_topic_messages_out_total", { topic: TOPIC }) ?? 0;
  const kafka = new Kafka({
    clientId: "large-fetch",
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: "large-fetch",
    maxBytesPerPartition: PARTITION_FETCH_BYTES,
    maxBytes: 4 * PARTITION_FETCH_BYTES,
  });
  const values: string[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }) => {
          values.push(message.value!.toString());
          if (values.length === COUNT) resolve();
        },
      });
    });
    await done;
  } finally {
    await consumer.disconnect();
  }
  expect(values.length).toBe(COUNT);
  expect(values.findIndex((v, i) => v !== line(i))).toBe(-1);
  const metricsAfter = parsePrometheusText(
    await (await fetch(`${broker.adminUrl}/metrics`)).text(),
  );
  const out =
    sampleValue(metricsAfter, "brook_topic_messages_out_total", { topic: TOPIC })! - outBefore;
  // Every record was sent at least once; kafkajs may fetch a batch again around commits.
  expect(out).toBeGreaterThanOrEqual(COUNT);
  expect(out).toBeLessThan(2 * COUNT);
});

test("broker: clients that hang up during multi-MiB answers leave no file open in the broker", async () => {
  const openFiles = () => readdirSync(`/proc/${broker.pid}/fd`).length;
  const before = openFiles();
  // Each client asks for the whole topic (about 12 MiB over 12 segments), reads the first
  // bytes of the answer and closes: the broker is then in the middle of streaming it.
  for (let client = 0; client < 5; client++) {
    const socket = connect({ port: broker.port, host: "127.0.0.1" });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.write(
          fetchFrame(
            {
              topic: TOPIC,
              positions: [{ partition: 0, offset: 0 }],
              maxWaitMs: 0,
              minBytes: 0,
              maxBytes: 32 * 1024 * 1024,
              partitionMaxBytes: 32 * 1024 * 1024,
            },
            client + 1,
          ),
        );
        socket.once("data", () => resolve());
      });
    });
    socket.destroy();
  }
  await eventually("the broker's open files to return to what they were", () =>
    openFiles() <= before ? true : null,
  );
  // Released by the connection, not found later by the garbage collector's safety net.
  expect(broker.stderr()).not.toContain("dropped without being released");
  // The broker still answers whole: kcat reads everything again.
  const again = await runProcess(
    "kcat",
    [
      "-b",
      broker.bootstrap,
      "-C",
      "-t",
      TOPIC,
      "-p",
      "0",
      "-o",
      "beginning",
      "-e",
      "-q",
      "-X",
      `max.partition.fetch.bytes=${PARTITION_FETCH_BYTES}`,
    ],
    { timeoutMs: 30_000 },
  );
  expect(again.stdout.split("\n").filter((l) => l.length > 0).length).toBe(COUNT);
});

test("broker: a client that pipelines 100 multi-MiB fetches and reads nothing holds a bounded number of files open", async () => {
  const openFiles = () => readdirSync(`/proc/${broker.pid}/fd`).length;
  const before = openFiles();
  const socket = connect({ port: broker.port, host: "127.0.0.1" });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("connect", () => resolve());
  });
  socket.pause(); // Read nothing: the answers pile up in the broker.
  // Each answer is the whole topic, about 12 MiB over 12 segment files; unbounded, the
  // broker would hold 100 x 12 descriptors.
  for (let i = 0; i < 100; i++) {
    socket.write(
      fetchFrame(
        {
          topic: TOPIC,
          positions: [{ partition: 0, offset: 0 }],
          maxWaitMs: 0,
          minBytes: 0,
          maxBytes: 32 * 1024 * 1024,
          partitionMaxBytes: 32 * 1024 * 1024,
        },
        i + 1,
      ),
    );
  }
  // The broker stops reading this client once its queued answers reach the bound: the
  // moment to count what it holds.
  await eventually(
    "the connection paused",
    async () => {
      const families = parsePrometheusText(
        await (await fetch(`${broker.adminUrl}/metrics`)).text(),
      );
      return sampleValue(families, "brook_connections_paused") === 1;
    },
    10_000,
  );
  const held = openFiles() - before;
  expect(held).toBeLessThan(200);
  // Reading resumes the requests; every answer arrives.
  let received = 0;
  const answered = new Promise<void>((resolve) => {
    socket.on("data", (chunk: Buffer) => {
      received += chunk.byteLength;
      if (received >= 100 * COUNT * 1000) resolve(); // Each message is over 1,000 bytes.
    });
  });
  socket.resume();
  await answered;
  socket.destroy();
  await eventually("the broker's open files to return to what they were", () =>
    openFiles() <= before ? true : null,
  );
});
