/**
 * A full disk, on a real broker process: its data dir is a 16 MiB tmpfs mounted in a
 * mount namespace of its own (`unshare -m`, so nothing outside sees it and it vanishes
 * with the process). A producer writes 512 KiB batches until the disk is full. The
 * append that does not fit must reach the client as KAFKA_STORAGE_ERROR (our raw client
 * and librdkafka through confluent-kafka-python alike), and the node must go on: every
 * batch acknowledged before is read back at its offset, other requests are answered,
 * the periodic checkpoint that cannot be written does not stop it, appends resume where
 * the log ended once a deleted topic gives space back, and SIGTERM still ends it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import {
  BUN,
  eventually,
  REPO,
  startBroker,
  stopAndClean,
  tempDir,
  type TestBroker,
} from "../helpers/broker.ts";
import { runProcess } from "../helpers/clients-common.ts";
import {
  fetchPartition,
  producePartition,
  RawClient,
  recordValues,
} from "../helpers/raw-client.ts";

const METADATA = 3;
const KAFKA_STORAGE_ERROR = 56;
const TOPIC = "full";
/** Written first and deleted once the disk is full, to give the space back. */
const BALLAST = "ballast";
const DISK_BYTES = 16 << 20;
const BATCH_VALUE_BYTES = 512 << 10;
const PYTHON = "/usr/bin/python3";
const CLIENT_SCRIPT = join(REPO, "test/clients/python/kafka_client.py");

let broker: TestBroker;
let client: RawClient;

beforeAll(async () => {
  // sh mounts the tmpfs on the data dir inside the new namespace, then becomes the broker
  // (exec keeps the pid, so the test stops the broker by the pid it started).
  const mountThenRun = `mount -t tmpfs -o size=${DISK_BYTES} tmpfs "$0" && exec "$@"`;
  const dataDir = tempDir();
  broker = await startBroker({
    dataDir,
    command: ["unshare", "-m", "sh", "-c", mountThenRun, dataDir, BUN, join(REPO, "src/main.ts")],
  });
  client = await RawClient.connect(broker.port);
  for (const name of [BALLAST, TOPIC]) {
    const response = await fetch(`${broker.adminUrl}/v1/topics`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, partitions: 1 }),
    });
    expect(response.status).toBe(201);
  }
});

afterAll(async () => {
  client?.close();
  if (broker) await stopAndClean(broker);
});

/** A record value of BATCH_VALUE_BYTES filled with its own tag, so a mix-up shows. */
const valueOf = (tag: string) => tag.padEnd(BATCH_VALUE_BYTES, `.${tag}`);

/** One batch of one record. */
function batchOf(tag: string): Uint8Array {
  return buildBatch({ baseTimestamp: Date.now(), records: [{ value: valueOf(tag) }] });
}

const produce = (records: Uint8Array, topic = TOPIC) => producePartition(client, topic, 0, records);

/** Every record's value from offset 0 on, by offset. */
async function readAll(): Promise<Map<number, string>> {
  const values = new Map<number, string>();
  for (let offset = 0; ;) {
    const data = await fetchPartition(client, TOPIC, 0, offset, 4 << 20);
    expect(data.errorCode).toBe(0);
    const records = data.records as Uint8Array | null;
    if (records === null || records.byteLength === 0) return values;
    for (const [at, value] of recordValues(records)) {
      values.set(at, value);
      offset = at + 1;
    }
  }
}

test("full disk: the append that does not fit is KAFKA_STORAGE_ERROR; acknowledged batches stay readable; the node goes on and resumes when space comes back", async () => {
  for (let n = 0; n < 4; n++)
    expect((await produce(batchOf(`ballast-${n}`), BALLAST)).errorCode).toBe(0);
  const acked = new Map<number, string>();
  let refused: number | null = null;
  for (let n = 0; n < (2 * DISK_BYTES) / BATCH_VALUE_BYTES && refused === null; n++) {
    const tag = `batch-${n}`;
    const answer = await produce(batchOf(tag));
    if (answer.errorCode === 0) acked.set(answer.baseOffset, tag);
    else refused = answer.errorCode;
  }
  expect(refused).toBe(KAFKA_STORAGE_ERROR);
  // Most of the disk was taken before the refusal: it came from the disk, not a limit.
  expect(acked.size * BATCH_VALUE_BYTES).toBeGreaterThan(DISK_BYTES / 2);

  // Still full: refused again, and nothing half-written was left behind.
  expect((await produce(batchOf("again"))).errorCode).toBe(KAFKA_STORAGE_ERROR);

  // librdkafka (no retries, so its first answer is what it reports) sees the same error.
  const python = await runProcess(PYTHON, [CLIENT_SCRIPT], {
    stdin: JSON.stringify({
      op: "produce",
      bootstrap: broker.bootstrap,
      topic: TOPIC,
      codec: "none",
      linger_ms: 0,
      config: { retries: 0, "message.timeout.ms": 10000 },
      messages: [[null, "p".repeat(BATCH_VALUE_BYTES), [], Date.now(), 0]],
    }),
    timeoutMs: 30_000,
  });
  if (python.code !== 0) throw new Error(`kafka_client.py failed:\n${python.stderr}`);
  const delivery = JSON.parse(python.stdout);
  expect(delivery.delivered).toEqual([null]);
  expect(delivery.errors.join("\n")).toContain("KAFKA_STORAGE_ERROR");

  // The periodic recovery-point checkpoint (every 5 s) cannot be written either; the
  // node keeps serving through it.
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const metadata = await client.request(METADATA, 9, {
    topics: [{ name: TOPIC }],
    allowAutoTopicCreation: false,
    includeClusterAuthorizedOperations: false,
    includeTopicAuthorizedOperations: false,
  });
  expect(metadata.topics[0].errorCode).toBe(0);

  // Every acknowledged batch is where its answer said, whole; nothing else is there.
  const stored = await readAll();
  expect(stored.size).toBe(acked.size);
  for (const [offset, tag] of acked) {
    expect(stored.get(offset)).toBe(valueOf(tag));
  }

  // Space given back (a topic deleted): appends go on where the log ended.
  const deleted = await fetch(`${broker.adminUrl}/v1/topics/${BALLAST}`, { method: "DELETE" });
  expect(deleted.ok).toBe(true);
  const next = Math.max(...acked.keys()) + 1;
  const resumed = await eventually("an append once space is free", async () => {
    const answer = await produce(batchOf("after"));
    return answer.errorCode === 0 ? answer : null;
  });
  expect(resumed.baseOffset).toBe(next);
  expect((await readAll()).get(next)).toBe(valueOf("after"));

  // The broker said why, and a full disk does not keep it from stopping.
  expect(broker.stderr()).toContain("Append failed");
  const code = await broker.stop();
  expect(code).not.toBeNull();
}, 60_000);
