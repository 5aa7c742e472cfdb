/**
 * __consumer_offsets on a real broker: it is compacted, so 5,000 commits of one group do
 * not make it grow (its segments are shrunk to 8 KiB with BROOK_OFFSETS_TOPIC_SEGMENT_BYTES
 * so that the cleaner has sealed segments to work on), and the latest offsets come back
 * after a clean restart and after kill -9. Offsets retention, shortened with
 * BROOK_OFFSETS_RETENTION_MINUTES, expires the offsets of a group without members, for
 * good (the tombstones are in the log).
 */
import { afterAll, expect, test } from "bun:test";
import { readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { partitionForGroup } from "../../src/coordinator/offset-records.ts";
import { eventually, startBroker, tempDir, type TestBroker } from "../helpers/broker.ts";
import { RawClient } from "../helpers/raw-client.ts";

const OFFSET_COMMIT = 8;
const FIND_COORDINATOR = 10;
const OFFSET_FETCH = 9;
const CREATE_TOPICS = 19;
const SEGMENT_BYTES = 8192;
const PARTITIONS = [0, 1, 2];

const dataDirs: string[] = [];
afterAll(() => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/** Starts a broker with these environment variables (the child copies them at spawn). */
async function startWith(env: Record<string, string>, dataDir: string): Promise<TestBroker> {
  const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env);
  try {
    return await startBroker({ dataDir });
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

async function createTopic(broker: TestBroker): Promise<void> {
  const client = await RawClient.connect(broker.port);
  const created = await client.request(CREATE_TOPICS, 7, {
    topics: [
      { name: "events", numPartitions: 3, replicationFactor: 1, assignments: [], configs: [] },
    ],
    timeoutMs: 5000,
  });
  expect(created.topics[0].errorCode).toBe(0);
  // As clients do before their first commit: this creates __consumer_offsets, whose
  // partition leader (this one node) coordinates every group.
  const found = await client.request(FIND_COORDINATOR, 3, { key: "any-group", keyType: 0 });
  expect(found.errorCode).toBe(0);
  client.close();
}

/** A simple commit (no generation, no member id) of `offset + p` for partition p. */
async function commit(
  client: RawClient,
  group: string,
  offset: number,
  retentionTimeMs = -1,
): Promise<void> {
  const version = retentionTimeMs === -1 ? 8 : 4;
  const answer = await client.request(OFFSET_COMMIT, version, {
    groupId: group,
    generationIdOrMemberEpoch: -1,
    memberId: "",
    groupInstanceId: null,
    retentionTimeMs,
    topics: [
      {
        name: "events",
        partitions: PARTITIONS.map((partitionIndex) => ({
          partitionIndex,
          committedOffset: offset + partitionIndex,
          committedLeaderEpoch: -1,
          committedMetadata: `at-${offset}`,
        })),
      },
    ],
  });
  expect(answer.topics[0].partitions.map((p: { errorCode: number }) => p.errorCode)).toEqual([
    0, 0, 0,
  ]);
}

async function committed(broker: TestBroker, group: string): Promise<number[]> {
  const client = await RawClient.connect(broker.port);
  try {
    const answer = await client.request(OFFSET_FETCH, 5, {
      groupId: group,
      topics: [{ name: "events", partitionIndexes: PARTITIONS }],
    });
    expect(answer.errorCode).toBe(0);
    return answer.topics[0].partitions.map((p: { committedOffset: bigint | number }) =>
      Number(p.committedOffset),
    );
  } finally {
    client.close();
  }
}

/** Bytes of the partition's live segment files (`.deleted` ones wait for their delay). */
function liveBytes(dir: string): { bytes: number; segments: number } {
  let bytes = 0;
  let segments = 0;
  for (const name of readdirSync(dir)) {
    if (!/^\d{20}\.(log|index|timeindex)$/.test(name)) continue;
    bytes += statSync(join(dir, name)).size;
    if (name.endsWith(".log")) segments++;
  }
  return { bytes, segments };
}

/** Every file of the partition's directory. */
function diskBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

test("storage: __consumer_offsets is compacted: 5,000 commits, its size stops growing, offsets survive restarts", async () => {
  const dataDir = tempDir();
  dataDirs.push(dataDir);
  const env = { BROOK_OFFSETS_TOPIC_SEGMENT_BYTES: String(SEGMENT_BYTES) };
  let broker = await startWith(env, dataDir);
  await createTopic(broker);
  const group = "compacted-app";
  const dir = join(dataDir, `__consumer_offsets-${partitionForGroup(group, 50)}`);
  // The cleaner leaves the active segment (up to SEGMENT_BYTES) and one small cleaned one.
  const bound = 2 * SEGMENT_BYTES;

  const client = await RawClient.connect(broker.port);
  const settledSizes: number[] = [];
  let written = 0;
  let peak = 0;
  for (const round of [1, 2]) {
    for (let i = 0; i < 2500; i++, written++) {
      await commit(client, group, written);
      if (i % 100 === 0) peak = Math.max(peak, liveBytes(dir).bytes);
    }
    // The cleaner runs on the log tick (1 s) once sealed segments are dirty enough.
    const settled = await eventually(
      `round ${round} compacted`,
      () => {
        const live = liveBytes(dir);
        return live.bytes <= bound && live.segments <= 3 ? live : null;
      },
      20_000,
    );
    settledSizes.push(settled.bytes);
  }
  client.close();
  const last = written - 1;
  // 5,000 commits wrote over a megabyte; what stays is about one segment, after each round.
  expect(written).toBe(5000);
  // It did grow between two cleaner ticks (commits are faster than one per tick)...
  expect(peak).toBeGreaterThan(bound);
  expect(Math.max(...settledSizes)).toBeLessThanOrEqual(bound);
  expect(await committed(broker, group)).toEqual(PARTITIONS.map((p) => last + p));
  expect(broker.stderr()).toContain("Cleaned log");

  expect(await broker.stop()).toBe(0);
  broker = await startWith(env, dataDir);
  expect(await committed(broker, group)).toEqual(PARTITIONS.map((p) => last + p));
  // After a start the `.deleted` files are gone too: this is all the disk it takes.
  expect(diskBytes(dir)).toBeLessThanOrEqual(bound + 4096);

  const again = await RawClient.connect(broker.port);
  for (let i = 0; i < 200; i++) await commit(again, group, written + i);
  again.close();
  await broker.kill();
  broker = await startWith(env, dataDir);
  expect(await committed(broker, group)).toEqual(PARTITIONS.map((p) => written + 199 + p));
  expect(await broker.stop()).toBe(0);
}, 120_000);

test("storage: offsets retention expires the offsets of a group without members, across a restart", async () => {
  const dataDir = tempDir();
  dataDirs.push(dataDir);
  // Retention of 3 s, checked every 200 ms.
  const env = {
    BROOK_OFFSETS_RETENTION_MINUTES: "0.05",
    BROOK_OFFSETS_RETENTION_CHECK_INTERVAL_MS: "200",
  };
  let broker = await startWith(env, dataDir);
  await createTopic(broker);
  const client = await RawClient.connect(broker.port);
  await commit(client, "forgotten", 10);
  // OffsetCommit v4's own retention: 60 s, longer than the broker's.
  await commit(client, "explicit", 20, 60_000);
  client.close();
  expect(await committed(broker, "forgotten")).toEqual([10, 11, 12]);
  await eventually(
    "offsets expired",
    async () => (await committed(broker, "forgotten"))[0] === -1,
    15_000,
  );
  expect(await committed(broker, "forgotten")).toEqual([-1, -1, -1]);
  expect(await committed(broker, "explicit")).toEqual([20, 21, 22]);
  expect(broker.stderr()).toContain("Committed offsets expired");

  expect(await broker.stop()).toBe(0);
  broker = await startWith(env, dataDir);
  expect(await committed(broker, "forgotten")).toEqual([-1, -1, -1]);
  expect(await committed(broker, "explicit")).toEqual([20, 21, 22]);
  expect(await broker.stop()).toBe(0);
}, 60_000);
