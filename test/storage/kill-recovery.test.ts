/**
 * Crash recovery on a real broker process: four producers write with acks=1 (answered
 * once the batch is in the page cache); a first stretch ends with SIGTERM, a second,
 * after a restart, with SIGKILL mid-stream; the broker restarts on the same data dir.
 * Recovery must verify only the segments after the checkpointed recovery points; every
 * acknowledged message must be readable at its acknowledged offset, offsets must have
 * no gap, and new produces continue at the log end. A SIGTERM restart afterwards must
 * verify nothing but each active segment's tail headers (the clean-shutdown marker).
 */
import { afterAll, expect, test } from "bun:test";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { startBroker, stopAndClean, type TestBroker } from "../helpers/broker.ts";
import {
  fetchPartition,
  producePartition,
  RawClient,
  recordValues,
} from "../helpers/raw-client.ts";

const LIST_OFFSETS = 2,
  CREATE_TOPICS = 19;
const TOPIC = "crash";
const PARTITIONS = 2;
const PRODUCERS = 4;
const IN_FLIGHT = 4;
const RECORDS_PER_BATCH = 5;

let broker: TestBroker | undefined;
afterAll(async () => {
  if (broker) await stopAndClean(broker);
});

interface Acked {
  partition: number;
  baseOffset: number;
  values: string[];
}

function batchOf(values: string[]): Uint8Array {
  return buildBatch({ baseTimestamp: Date.now(), records: values.map((value) => ({ value })) });
}

const produce = (client: RawClient, partition: number, records: Uint8Array) =>
  producePartition(client, TOPIC, partition, records);

async function latest(client: RawClient, partition: number): Promise<number> {
  const answer = await client.request(LIST_OFFSETS, 7, {
    replicaId: -1,
    isolationLevel: 0,
    topics: [
      {
        name: TOPIC,
        partitions: [{ partitionIndex: partition, timestamp: -1, currentLeaderEpoch: -1 }],
      },
    ],
  });
  return answer.topics[0].partitions[0].offset;
}

/** Every record of the partition below `end`, by offset. */
async function readAll(
  client: RawClient,
  partition: number,
  end: number,
): Promise<Map<number, string>> {
  const values = new Map<number, string>();
  let offset = 0;
  while (offset < end) {
    const data = await fetchPartition(client, TOPIC, partition, offset, 4 << 20);
    expect(data.errorCode).toBe(0);
    const records = data.records as Uint8Array;
    expect(records.byteLength).toBeGreaterThan(0);
    for (const [recordOffset, value] of recordValues(records)) {
      expect(values.has(recordOffset)).toBe(false);
      values.set(recordOffset, value);
      offset = recordOffset + 1;
    }
  }
  return values;
}

/**
 * Runs the four producers (each with IN_FLIGHT requests outstanding) until `acks` more
 * batches are acknowledged, then calls `stop` while they are still sending and waits
 * for them to wind down. Acknowledged batches are added to `acked`.
 */
async function produceUntil(
  broker: TestBroker,
  acked: Acked[],
  acks: number,
  stop: () => Promise<unknown>,
): Promise<void> {
  const target = acked.length + acks;
  let stopping = false;
  const producers = Array.from({ length: PRODUCERS }, async (_, producer) => {
    const client = await RawClient.connect(broker.port);
    const partition = producer % PARTITIONS;
    let sequence = 0;
    const sendOne = async (): Promise<void> => {
      while (!stopping) {
        const values = Array.from(
          { length: RECORDS_PER_BATCH },
          (_, i) => `p${producer}-${acked.length}-s${sequence}-r${i}-${"x".repeat(100)}`,
        );
        sequence++;
        let response;
        try {
          response = await produce(client, partition, batchOf(values));
        } catch {
          return; // The broker died with this request in flight: not acknowledged.
        }
        expect(response.errorCode).toBe(0);
        acked.push({ partition, baseOffset: Number(response.baseOffset), values });
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, sendOne));
    client.close();
  });
  const deadline = Date.now() + 10_000;
  while (acked.length < target && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 10));
  expect(acked.length).toBeGreaterThanOrEqual(target);
  await stop();
  stopping = true;
  await Promise.all(producers);
}

test("storage: kill -9 under four acks=1 producers loses no acknowledged message", async () => {
  broker = await startBroker();
  const dataDir = broker.dataDir;
  const admin = await RawClient.connect(broker.port);
  const created = await admin.request(CREATE_TOPICS, 7, {
    topics: [
      {
        name: TOPIC,
        numPartitions: PARTITIONS,
        replicationFactor: 1,
        assignments: [],
        configs: [{ name: "segment.bytes", value: "32768" }],
      },
    ],
    timeoutMs: 5000,
  });
  expect(created.topics[0].errorCode).toBe(0);
  admin.close();

  // A first stretch ends with a clean stop: the checkpoints then hold recovery points at
  // the log ends, so the crash below is recovered from there, not from offset 0.
  const acked: Acked[] = [];
  await produceUntil(broker, acked, 300, async () => expect(await broker!.stop()).toBe(0));
  broker = await startBroker({ dataDir });
  // Kill while the producers are mid-stream (hundreds of acknowledged batches in).
  await produceUntil(broker, acked, 600, () => broker!.kill());

  broker = await startBroker({ dataDir });
  const recovered =
    /Logs recovered after an unclean shutdown partitions=(\d+) segments=(\d+) segmentsScanned=(\d+)/.exec(
      broker.stderr(),
    );
  expect(recovered).not.toBeNull();
  // Segments below the checkpointed recovery points were not verified.
  expect(Number(recovered![3])).toBeGreaterThan(0);
  expect(Number(recovered![3])).toBeLessThan(Number(recovered![2]));
  const client = await RawClient.connect(broker.port);
  for (let partition = 0; partition < PARTITIONS; partition++) {
    const end = await latest(client, partition);
    const mine = acked.filter((a) => a.partition === partition);
    const ackedEnd = Math.max(...mine.map((a) => a.baseOffset + RECORDS_PER_BATCH));
    // Batches written but not yet answered at the kill may survive too; none may be lost.
    expect(end).toBeGreaterThanOrEqual(ackedEnd);
    const values = await readAll(client, partition, end);
    expect(values.size).toBe(end); // Offsets 0 .. end-1, no gap, no duplicate.
    for (const batch of mine) {
      batch.values.forEach((value, i) => expect(values.get(batch.baseOffset + i)).toBe(value));
    }
    // New produces continue at the log end.
    const next = await produce(client, partition, batchOf(["after-restart"]));
    expect(next).toMatchObject({ errorCode: 0, baseOffset: end });
  }
  client.close();

  // A clean stop now: the next start verifies no segment, it only walks each active
  // segment's tail headers (one scanned segment per partition log).
  expect(await broker.stop()).toBe(0);
  broker = await startBroker({ dataDir });
  const loaded =
    /Logs loaded after a clean shutdown partitions=(\d+) segments=(\d+) segmentsScanned=(\d+)/.exec(
      broker.stderr(),
    );
  expect(loaded).not.toBeNull();
  expect(Number(loaded![1])).toBe(PARTITIONS);
  expect(Number(loaded![2])).toBeGreaterThan(2 * PARTITIONS);
  expect(Number(loaded![3])).toBe(PARTITIONS);
  const after = await RawClient.connect(broker.port);
  for (let partition = 0; partition < PARTITIONS; partition++) {
    const end = await latest(after, partition);
    expect((await produce(after, partition, batchOf(["after-clean-restart"]))).baseOffset).toBe(
      end,
    );
  }
  after.close();
});
