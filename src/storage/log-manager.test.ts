/**
 * The log manager's checkpoints and cleaner tick, with a ManualClock and the metadata
 * image driven by hand: what a clean stop writes, what the next start reads, what an
 * unclean stop costs, and when retention, flush.ms and checkpoint writes happen.
 */
import { afterEach, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { MetadataImage, type MetadataRecord } from "../cluster/metadata-image.ts";
import { ManualClock } from "../util/clock.ts";
import { buildBatch } from "../protocol/record-batch-builder.ts";
import { readCheckpoint } from "./checkpoint.ts";
import { LogManager } from "./log-manager.ts";
import { T0, makeBatch, makeTempDir, removeDir } from "./test-support.ts";

const dirs: string[] = [];
const managers: LogManager[] = [];
afterEach(() => {
  for (const manager of managers.splice(0)) manager.close();
  for (const dir of dirs.splice(0)) removeDir(dir);
});

const NODE = 1;

function topicRecords(
  name: string,
  partitions: number,
  configs: Record<string, string> = {},
): MetadataRecord[] {
  const topicId = `id-${name}`;
  return [
    { type: "topic", name, topicId },
    ...Object.entries(configs).map(([key, value]): MetadataRecord => ({
      type: "config",
      topicId,
      name: key,
      value,
    })),
    ...Array.from({ length: partitions }, (_, partition): MetadataRecord => ({
      type: "partition",
      topicId,
      partition,
      replicas: [NODE],
      leader: NODE,
      leaderEpoch: 0,
      isr: [NODE],
      partitionEpoch: 0,
    })),
  ];
}

/** A node start: a manager, the image replayed, startup completed. */
function start(
  dataDir: string,
  clock: ManualClock,
  records: MetadataRecord[],
  replicated = false,
): { manager: LogManager; image: MetadataImage } {
  const image = new MetadataImage();
  const manager = new LogManager({
    dataDir,
    nodeId: NODE,
    clock,
    image,
    retentionCheckIntervalMs: 5_000,
    checkpointIntervalMs: 5_000,
    replicated,
  });
  for (const record of records) image.apply(record);
  return { manager, image };
}

/** A crash: the logs' descriptors are released, nothing is written by the manager. */
function crash(manager: LogManager): void {
  for (const partitionLog of manager.all().values()) partitionLog.close();
}

function checkpoint(dataDir: string, file: string): Record<string, number> {
  const read = readCheckpoint(join(dataDir, "checkpoints", file));
  if (!read.ok) throw new Error(read.reason);
  return Object.fromEntries(read.entries.map((e) => [`${e.topic}-${e.partition}`, e.offset]));
}

function freshDataDir(): string {
  const dir = makeTempDir("log-manager");
  dirs.push(dir);
  return dir;
}

const marker = (dataDir: string) => join(dataDir, "checkpoints", "clean-shutdown");

test("storage: log manager: a deleted log's directory is renamed at once and removed in the background, also after a stop", async () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const first = start(dataDir, clock, topicRecords("gone", 1, {}));
  managers.push(first.manager);
  first.manager.startupComplete();
  first.manager.append("gone", 0, makeBatch({ count: 3 }), 0);
  const log = first.manager.get("gone", 0)!;
  log.deleteAll();
  expect(existsSync(join(dataDir, "gone-0"))).toBe(false);
  await log.removalsSettled();
  expect(readdirSync(dataDir).filter((name) => name.endsWith("-delete"))).toEqual([]);
  // A removal a stop interrupted: the next start removes what is left.
  const leftover = join(dataDir, "gone-0.0123456789ab-delete");
  mkdirSync(leftover);
  writeFileSync(join(leftover, "00000000000000000000.log"), "x");
  const second = start(dataDir, clock, []);
  managers.push(second.manager);
  await second.manager.deletedLogsRemoved();
  expect(existsSync(leftover)).toBe(false);
});

test("storage: log manager: a clean stop checkpoints and marks; the next start verifies nothing", () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const records = topicRecords("events", 2, { "segment.bytes": "4096" });
  const first = start(dataDir, clock, records);
  first.manager.startupComplete();
  // Two batches per segment: three segments per partition.
  for (let i = 0; i < 12; i++)
    first.manager.append("events", i % 2, makeBatch({ count: 1, valueBytes: 1500 }), 0);
  expect(existsSync(marker(dataDir))).toBe(false);
  first.manager.close();
  expect(existsSync(marker(dataDir))).toBe(true);
  expect(checkpoint(dataDir, "recovery-point-offset-checkpoint")).toEqual({
    "events-0": 6,
    "events-1": 6,
  });
  expect(checkpoint(dataDir, "replication-offset-checkpoint")).toEqual({
    "events-0": 6,
    "events-1": 6,
  });
  expect(checkpoint(dataDir, "log-start-offset-checkpoint")).toEqual({
    "events-0": 0,
    "events-1": 0,
  });

  const second = start(dataDir, clock, records);
  managers.push(second.manager);
  const log0 = second.manager.get("events", 0)!;
  expect(log0.segmentCount()).toBe(3);
  expect(log0.openReport).toMatchObject({
    cleanShutdown: true,
    segmentsTrusted: log0.segmentCount() - 1,
    segmentsScanned: 1,
  });
  expect(log0.logEndOffset).toBe(6);
  // The marker lasts until every log is open; from then on a crash is unclean.
  expect(existsSync(marker(dataDir))).toBe(true);
  second.manager.startupComplete();
  expect(existsSync(marker(dataDir))).toBe(false);
});

test("storage: log manager: after a crash, recovery starts at the checkpointed recovery point", async () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const records = topicRecords("events", 1, { "segment.bytes": "4096" });
  const first = start(dataDir, clock, records);
  first.manager.startupComplete();
  for (let i = 0; i < 9; i++)
    first.manager.append("events", 0, makeBatch({ count: 1, valueBytes: 1500 }), 0);
  const log = first.manager.get("events", 0)!;
  // Two batches per segment: bases 0, 2, 4, 6, 8; rolls (once their background fsyncs
  // are done) moved the recovery point to 8.
  await log.sealsSettled();
  expect(log.recoveryPoint).toBe(8);
  clock.advance(5_000);
  first.manager.tick(); // Checkpoint interval passed: recovery point 8 is written.
  await first.manager.checkpointsSettled(); // Written off the event loop.
  expect(checkpoint(dataDir, "recovery-point-offset-checkpoint")).toEqual({ "events-0": 8 });
  for (let i = 0; i < 4; i++)
    first.manager.append("events", 0, makeBatch({ count: 1, valueBytes: 1500 }), 0);
  await log.sealsSettled();
  expect(log.recoveryPoint).toBe(12);
  crash(first.manager); // The checkpoint still says 8.

  const second = start(dataDir, clock, records);
  managers.push(second.manager);
  const again = second.manager.get("events", 0)!;
  expect(again.logEndOffset).toBe(13);
  // Segments 0, 2, 4, 6 are below 8: trusted. 8, 10 and the active 12 are verified.
  expect(again.openReport).toMatchObject({
    cleanShutdown: false,
    segmentsTrusted: 4,
    segmentsScanned: 3,
  });
  second.manager.startupComplete();
  // Verified is not flushed: the recovery point stays at 8 until the next flush or roll.
  expect(checkpoint(dataDir, "recovery-point-offset-checkpoint")).toEqual({ "events-0": 8 });
  second.manager.flushAll();
  clock.advance(5_000);
  second.manager.tick();
  await second.manager.checkpointsSettled();
  expect(checkpoint(dataDir, "recovery-point-offset-checkpoint")).toEqual({ "events-0": 13 });
});

test("storage: log manager: a checkpoint written in the background never replaces a newer one written at close", async () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const records = topicRecords("events", 1, {});
  const first = start(dataDir, clock, records);
  managers.push(first.manager);
  first.manager.startupComplete();
  for (let i = 0; i < 3; i++) first.manager.append("events", 0, makeBatch({ count: 1 }), 0);
  first.manager.flushAll();
  clock.advance(5_000);
  first.manager.tick(); // Recovery point 3, written in the background: still waiting for the disk.
  first.manager.append("events", 0, makeBatch({ count: 2 }), 0);
  first.manager.close(); // Recovery point 5, written at once.
  await first.manager.checkpointsSettled();
  expect(checkpoint(dataDir, "recovery-point-offset-checkpoint")).toEqual({ "events-0": 5 });
});

test("storage: log manager: the tick runs retention at its interval and checkpoints the log start in the background", async () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0 + 100_000);
  const records = topicRecords("old", 1, {
    "segment.bytes": "4096",
    "retention.ms": "60000",
    "file.delete.delay.ms": "1000",
  });
  const { manager } = start(dataDir, clock, records);
  managers.push(manager);
  manager.startupComplete();
  for (let i = 0; i < 6; i++)
    manager.append("old", 0, makeBatch({ count: 1, valueBytes: 1500, baseTimestamp: T0 }), 0);
  const log = manager.get("old", 0)!;
  expect(log.segmentCount()).toBe(3);
  manager.tick(); // The first tick runs retention: everything is expired, the active segment rolls.
  expect(log.logStartOffset).toBe(6);
  expect(log.segmentCount()).toBe(1);
  // Written off the request thread: the file changes only once the event loop runs on.
  expect(checkpoint(dataDir, "log-start-offset-checkpoint")).toEqual({ "old-0": 0 });
  await manager.checkpointsSettled();
  expect(checkpoint(dataDir, "log-start-offset-checkpoint")).toEqual({ "old-0": 6 });
  const partitionDir = join(dataDir, "old-0");
  expect(readdirSync(partitionDir).filter((n) => n.endsWith(".deleted"))).toHaveLength(9);
  clock.advance(1_000);
  manager.tick(); // file.delete.delay.ms has passed: the files go (in the background).
  await log.removalsSettled();
  expect(readdirSync(partitionDir).filter((n) => n.endsWith(".deleted"))).toEqual([]);

  for (let i = 0; i < 4; i++)
    manager.append("old", 0, makeBatch({ count: 1, valueBytes: 1500, baseTimestamp: T0 }), 0);
  clock.advance(3_999);
  manager.tick(); // 4999 ms since the last retention pass: not yet.
  expect(log.logStartOffset).toBe(6);
  clock.advance(1);
  manager.tick();
  expect(log.logStartOffset).toBe(10);
  await manager.checkpointsSettled();
  expect(checkpoint(dataDir, "log-start-offset-checkpoint")).toEqual({ "old-0": 10 });
});

test("storage: log manager: flush.ms is applied by the tick; DeleteRecords checkpoints at once", () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const records = [...topicRecords("slow", 1, { "flush.ms": "1000" }), ...topicRecords("plain", 1)];
  const { manager } = start(dataDir, clock, records);
  managers.push(manager);
  manager.startupComplete();
  manager.append("slow", 0, makeBatch({ count: 3 }), 0);
  manager.append("plain", 0, makeBatch({ count: 3 }), 0);
  const slow = manager.get("slow", 0)!;
  const plain = manager.get("plain", 0)!;
  expect(slow.recoveryPoint).toBe(0);
  clock.advance(999);
  manager.tick();
  expect(slow.recoveryPoint).toBe(0);
  clock.advance(1);
  manager.tick();
  expect(slow.recoveryPoint).toBe(3);
  expect(plain.recoveryPoint).toBe(0); // flush.ms defaults to never.

  expect(manager.deleteRecords("plain", 0, 2)).toEqual({ ok: true, logStartOffset: 2 });
  expect(checkpoint(dataDir, "log-start-offset-checkpoint")).toEqual({ "slow-0": 0, "plain-0": 2 });
  expect(manager.deleteRecords("plain", 0, 4)).toMatchObject({
    ok: false,
    kind: "offsetOutOfRange",
  });
});

test("storage: log manager: replaying create, delete, create of one name keeps the later topic's data", () => {
  // Directories are named by topic, not id: replaying the first topic's removal must not
  // delete the directory that the second topic of the same name owns (partition.metadata).
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const first = topicRecords("again", 1);
  const second = topicRecords("again", 1).map(
    (record) => ({ ...record, topicId: "id-again-2" }) as MetadataRecord,
  );
  const history: MetadataRecord[] = [
    ...first,
    { type: "removeTopic", topicId: "id-again" },
    ...second,
  ];
  const run = start(dataDir, clock, []);
  run.manager.startupComplete();
  for (const record of first) run.image.apply(record);
  run.manager.append("again", 0, makeBatch({ count: 2 }), 0);
  run.image.apply({ type: "removeTopic", topicId: "id-again" });
  expect(existsSync(join(dataDir, "again-0"))).toBe(false);
  for (const record of second) run.image.apply(record);
  run.manager.append("again", 0, makeBatch({ count: 3 }), 0);
  expect(readFileSync(join(dataDir, "again-0", "partition.metadata"), "utf8")).toBe(
    "version: 0\ntopic_id: id-again-2\n",
  );
  run.manager.close();

  const restarted = start(dataDir, clock, history);
  managers.push(restarted.manager);
  restarted.manager.startupComplete();
  expect(restarted.manager.get("again", 0)!.logEndOffset).toBe(3);
});

/** A batch as a leader stored it, for a follower's appendReplicated. */
function leaderBatch(baseOffset: number, count: number, epoch = 1): Uint8Array {
  return buildBatch({
    baseOffset,
    partitionLeaderEpoch: epoch,
    baseTimestamp: T0,
    records: Array.from({ length: count }, (_, i) => ({ key: `k${i}`, value: "v" })),
  });
}

test("storage: log manager: replicated: appends leave the high watermark; moving it wakes fetches", async () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const { manager } = start(dataDir, clock, topicRecords("events", 1), true);
  managers.push(manager);
  manager.startupComplete();
  const log = manager.get("events", 0)!;

  const onAppend = manager.waitForAppend(["events-0"], 10_000);
  expect(manager.append("events", 0, makeBatch({ count: 3 }), 1)).toMatchObject({
    ok: true,
    lastOffset: 2,
  });
  expect(await onAppend).toBe(true); // Followers long-poll on the log end.
  expect(log.highWatermark).toBe(0);

  const onHighWatermark = manager.waitForAppend(["events-0"], 10_000);
  expect(manager.setHighWatermark("events", 0, 2)).toBe(2);
  expect(await onHighWatermark).toBe(true);
  // Not moved (lower, or the same): nobody is woken.
  const idle = manager.waitForAppend(["events-0"], 20);
  expect(manager.setHighWatermark("events", 0, 1)).toBe(2);
  expect(manager.setHighWatermark("events", 0, 2)).toBe(2);
  expect(await idle).toBe(false);

  const onReplicated = manager.waitForAppend(["events-0"], 10_000);
  expect(manager.appendReplicated("events", 0, leaderBatch(3, 2))).toEqual({
    ok: true,
    baseOffset: 3,
    lastOffset: 4,
    logEndOffset: 5,
  });
  expect(await onReplicated).toBe(true);
  expect(manager.appendReplicated("events", 0, leaderBatch(3, 2))).toMatchObject({
    ok: false,
    kind: "offsetMismatch",
  });
  expect(log.highWatermark).toBe(2);
  expect(manager.setHighWatermark("events", 0, 99)).toBe(5);
});

test("storage: log manager: replicated: the high-watermark checkpoint is read back at restart", async () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const records = topicRecords("events", 2);
  const first = start(dataDir, clock, records, true);
  first.manager.startupComplete();
  first.manager.appendReplicated("events", 0, leaderBatch(0, 6));
  first.manager.appendReplicated("events", 1, leaderBatch(0, 4));
  first.manager.setHighWatermark("events", 0, 4);
  first.manager.close();
  expect(checkpoint(dataDir, "replication-offset-checkpoint")).toEqual({
    "events-0": 4,
    "events-1": 0,
  });

  const second = start(dataDir, clock, records, true);
  second.manager.startupComplete();
  const log0 = second.manager.get("events", 0)!;
  expect(log0.logEndOffset).toBe(6);
  expect(log0.highWatermark).toBe(4);
  expect(second.manager.get("events", 1)!.highWatermark).toBe(0);
  second.manager.setHighWatermark("events", 0, 5);
  clock.advance(5_000);
  second.manager.tick(); // The changed high watermark is checkpointed with the others.
  await second.manager.checkpointsSettled();
  expect(checkpoint(dataDir, "replication-offset-checkpoint")).toEqual({
    "events-0": 5,
    "events-1": 0,
  });
  second.manager.setHighWatermark("events", 0, 6);
  crash(second.manager); // The checkpoint still says 5.

  const third = start(dataDir, clock, records, true);
  managers.push(third.manager);
  third.manager.startupComplete();
  expect(third.manager.get("events", 0)!.highWatermark).toBe(5);
  // A single-node start on the same data: the high watermark is the log end, as before.
  third.manager.close();
  const single = start(dataDir, clock, records);
  managers.push(single.manager);
  single.manager.startupComplete();
  expect(single.manager.get("events", 0)!.highWatermark).toBe(6);
  expect(() => single.manager.setHighWatermark("events", 0, 6)).toThrow();
});

test("storage: log manager: replicated: without a readable checkpoint entry the high watermark starts at the log start", () => {
  const dataDir = freshDataDir();
  const clock = new ManualClock(T0);
  const records = topicRecords("events", 1, { "segment.bytes": "4096" });
  const file = join(dataDir, "checkpoints", "replication-offset-checkpoint");
  const first = start(dataDir, clock, records, true);
  first.manager.startupComplete();
  for (let i = 0; i < 3; i++) first.manager.appendReplicated("events", 0, leaderBatch(i * 2, 2));
  first.manager.setHighWatermark("events", 0, 6);
  expect(first.manager.deleteRecords("events", 0, 2)).toEqual({ ok: true, logStartOffset: 2 });
  first.manager.close();
  expect(checkpoint(dataDir, "replication-offset-checkpoint")).toEqual({ "events-0": 6 });

  // Kafka's rule: 0, clamped up to the log start; never the log end, which may hold
  // records that were not committed.
  for (const damage of [() => unlinkSync(file), () => writeFileSync(file, "garbage\n")]) {
    damage();
    const restarted = start(dataDir, clock, records, true);
    restarted.manager.startupComplete();
    const log = restarted.manager.get("events", 0)!;
    expect(log.logEndOffset).toBe(6);
    expect(log.logStartOffset).toBe(2);
    expect(log.highWatermark).toBe(2);
    restarted.manager.close();
  }
});
