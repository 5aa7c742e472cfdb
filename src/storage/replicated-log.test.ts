/**
 * The storage primitives of partition replication, on real files in temp dirs with a
 * ManualClock: a follower's `appendReplicated` (the leader's bytes kept, offsets that go
 * on from the log end, across the gaps the leader's cleaner left), a high watermark the owner moves (`highWatermarkFollowsAppends`
 * false, `setHighWatermark`, `initialHighWatermark`) and what must stay below it
 * (retention, DeleteRecords, compaction), and `epochStarts` rebuilt from batch headers.
 */
import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { appendFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { buildBatch, concatBatches } from "../protocol/record-batch-builder.ts";
import {
  BATCH_HEADER_BYTES,
  CRC_AT,
  MAGIC_AT,
  RECORD_COUNT_AT,
  computeBatchCrc,
  readBaseOffset,
  readPartitionLeaderEpoch,
} from "../protocol/record-batch.ts";
import { AssertionError } from "../util/assert.ts";
import { ManualClock } from "../util/clock.ts";
import { DEFAULT_LOG_CONFIG, type LogConfig } from "./log-config.ts";
import { PartitionLog, type PartitionLogOptions, type RecoveryState } from "./partition-log.ts";
import { forEachStoredBatch } from "./replay.ts";
import {
  LogModel,
  T0,
  fillLog,
  makeBatch,
  makeTempDir,
  splitBatches,
  tempLogs,
} from "./test-support.ts";

const { dirs, logs } = tempLogs();

function config(overrides: Partial<LogConfig> = {}): LogConfig {
  return { ...DEFAULT_LOG_CONFIG, segmentBytes: 16 * 1024, indexIntervalBytes: 1024, ...overrides };
}

interface OpenOptions {
  overrides?: Partial<LogConfig>;
  clock?: ManualClock;
  /** Default false here: the owner moves the high watermark (a replicated partition). */
  followsAppends?: boolean;
  initialHighWatermark?: number;
  recovery?: RecoveryState;
  cleaner?: PartitionLogOptions["cleaner"];
}

function open(dir: string, options: OpenOptions = {}): PartitionLog {
  const followsAppends = options.followsAppends ?? false;
  const log = PartitionLog.open({
    dir,
    config: config(options.overrides),
    clock: options.clock ?? new ManualClock(T0),
    highWatermarkFollowsAppends: followsAppends,
    ...(options.initialHighWatermark === undefined
      ? {}
      : { initialHighWatermark: options.initialHighWatermark }),
    ...(options.recovery === undefined ? {} : { recovery: options.recovery }),
    ...(options.cleaner === undefined ? {} : { cleaner: options.cleaner }),
  });
  logs.push(log);
  return log;
}

/** A single-node log: appends assign offsets and move the high watermark (the leader here). */
function openLeader(dir: string, overrides: Partial<LogConfig> = {}): PartitionLog {
  return open(dir, { overrides, followsAppends: true });
}

function close(log: PartitionLog): void {
  log.close();
  logs.splice(logs.indexOf(log), 1);
}

function freshDir(name = "topic-0"): string {
  const dir = makeTempDir("replicated");
  dirs.push(dir);
  return join(dir, name);
}

/** The whole log as one read. */
function readAll(log: PartitionLog): Buffer {
  const read = log.read(log.logStartOffset, 1 << 30, { minOneBatch: true });
  if (!read.ok) throw new Error("Read of the whole log failed");
  return Buffer.from(read.records);
}

/** A batch as a leader stored it: `count` records from `baseOffset`, in `epoch`. */
function stored(baseOffset: number, count: number, epoch = 1, valueBytes = 100): Buffer {
  return buildBatch({
    baseOffset,
    partitionLeaderEpoch: epoch,
    baseTimestamp: T0 + baseOffset,
    records: Array.from({ length: count }, (_, i) => ({
      key: `k${baseOffset + i}`,
      value: Buffer.alloc(valueBytes, 97 + ((baseOffset + i) % 26)),
      timestampDelta: i,
    })),
  });
}

/** Copies the leader's log to the follower the way fetches would: `maxBytes` at a time. */
function replicate(leader: PartitionLog, follower: PartitionLog, maxBytes: number): number {
  let appends = 0;
  while (follower.logEndOffset < leader.logEndOffset) {
    const read = leader.read(follower.logEndOffset, maxBytes, { minOneBatch: true });
    if (!read.ok) throw new Error("Leader read failed");
    const result = follower.appendReplicated(read.records);
    if (!result.ok) throw new Error(`${result.kind}: ${result.message}`);
    appends++;
  }
  return appends;
}

/** Segment base offsets and sizes: what a refused append must leave as it was. */
function shape(log: PartitionLog): string {
  const segments = log
    .segments()
    .map((s) => `${s.baseOffset}:${s.sizeBytes}`)
    .join(",");
  return `${segments} end ${log.logEndOffset} hw ${log.highWatermark} bytes ${log.sizeBytes()}`;
}

// ---------------------------------------------------------------------------------------
// appendReplicated

test("storage: replicated: appendReplicated keeps the leader's offsets, epochs and bytes", () => {
  const leader = openLeader(freshDir("leader-0"), { messageTimestampType: "LogAppendTime" });
  const model = new LogModel();
  model.append(leader, makeBatch({ count: 3 }), 2);
  model.append(
    leader,
    concatBatches([makeBatch({ count: 2 }), makeBatch({ count: 4, gzip: true })]),
    2,
  );
  model.append(leader, makeBatch({ count: 1 }), 5);
  const leaderBytes = readAll(leader);

  // A later clock and LogAppendTime on the follower too: nothing may be restamped.
  const clock = new ManualClock(T0 + 1_000_000);
  const follower = open(freshDir(), {
    clock,
    overrides: { messageTimestampType: "LogAppendTime" },
  });
  const input = Buffer.from(leaderBytes);
  const result = follower.appendReplicated(input);
  expect(result).toEqual({ ok: true, baseOffset: 0, lastOffset: 9, logEndOffset: 10 });
  expect(input.equals(leaderBytes)).toBe(true); // The input is not modified either.
  expect(follower.logEndOffset).toBe(10);
  expect(readAll(follower).equals(leaderBytes)).toBe(true);
  const epochs = splitBatches(readAll(follower)).map((batch) => readPartitionLeaderEpoch(batch, 0));
  expect(epochs).toEqual([2, 2, 2, 5]);
  expect(follower.sizeBytes()).toBe(leader.sizeBytes());

  // The same through several fetch-sized appends.
  const second = open(freshDir("second-0"));
  expect(replicate(leader, second, 1)).toBe(4);
  expect(readAll(second).equals(leaderBytes)).toBe(true);
});

test("storage: replicated: appendReplicated accepts a leader's compacted batches (fewer records than offsets)", () => {
  const follower = open(freshDir());
  // Compaction kept offsets 0 and 3 of a batch of four; the next batch starts at 4.
  const compacted = buildBatch({
    baseOffset: 0,
    partitionLeaderEpoch: 1,
    baseTimestamp: T0,
    records: [
      { key: "a", value: "1", offsetDelta: 0 },
      { key: "b", value: "2", offsetDelta: 3 },
    ],
  });
  const blob = concatBatches([compacted, stored(4, 2)]);
  expect(follower.appendReplicated(blob)).toEqual({
    ok: true,
    baseOffset: 0,
    lastOffset: 5,
    logEndOffset: 6,
  });
  expect(readAll(follower).equals(blob)).toBe(true);
  const atThree = follower.read(3, 1, { minOneBatch: true });
  expect(atThree.ok && readBaseOffset(atThree.records, 0)).toBe(0);
  // Recovery verifies it too: reopened without checkpoints, every batch is checked.
  const dir = follower.dir;
  close(follower);
  const reopened = open(dir);
  expect(reopened.openReport.truncatedBytes).toBe(0);
  expect(readAll(reopened).equals(blob)).toBe(true);
});

test("storage: replicated: gaps the leader's cleaner left (whole batches gone) are taken; the log end moves past them", () => {
  const follower = open(freshDir());
  expect(follower.appendReplicated(stored(0, 3))).toMatchObject({ ok: true, logEndOffset: 3 });
  // The leader's cleaner removed offsets 3-4, then 7-10 between two batches of one answer.
  expect(follower.appendReplicated(stored(5, 2))).toEqual({
    ok: true,
    baseOffset: 3,
    lastOffset: 6,
    logEndOffset: 7,
  });
  const blob = concatBatches([stored(7, 1), stored(11, 2)]);
  expect(follower.appendReplicated(blob)).toEqual({
    ok: true,
    baseOffset: 7,
    lastOffset: 12,
    logEndOffset: 13,
  });
  // A read inside a gap gets the next batch.
  for (const [offset, base] of [
    [3, 5],
    [4, 5],
    [9, 11],
  ] as const) {
    const read = follower.read(offset, 1, { minOneBatch: true });
    expect(read.ok && readBaseOffset(read.records, 0)).toBe(base);
  }
  const bytes = readAll(follower);
  // Recovery takes the gaps too: reopened without checkpoints, every batch is checked.
  const dir = follower.dir;
  close(follower);
  const reopened = open(dir);
  expect(reopened.openReport.truncatedBytes).toBe(0);
  expect(reopened.logEndOffset).toBe(13);
  expect(readAll(reopened).equals(bytes)).toBe(true);
  expect(reopened.appendReplicated(stored(13, 1))).toMatchObject({ ok: true, logEndOffset: 14 });
});

test("storage: replicated: an overlap, a bad CRC or batches out of order append nothing", () => {
  const follower = open(freshDir());
  expect(follower.appendReplicated(stored(0, 3))).toMatchObject({ ok: true, logEndOffset: 3 });
  const before = shape(follower);
  const bytesBefore = readAll(follower);

  const refused = (records: Uint8Array, kind: string) => {
    const result = follower.appendReplicated(records);
    expect(result).toMatchObject({ ok: false, kind });
    expect(shape(follower)).toBe(before);
  };
  refused(stored(0, 3), "offsetMismatch"); // The leader resent what we have.
  refused(stored(2, 3), "offsetMismatch"); // Overlapping the last record.
  // The second batch starts inside the first.
  refused(concatBatches([stored(3, 2), stored(4, 1)]), "offsetMismatch");
  // A flipped byte in the records of the second batch.
  const damaged = concatBatches([stored(3, 2), stored(5, 2)]);
  damaged[damaged.byteLength - 5]! ^= 0xff;
  refused(damaged, "corrupt");
  refused(stored(3, 2).subarray(0, 100), "corrupt"); // Cut inside the batch.
  refused(stored(3, 2).subarray(0, 10), "corrupt"); // Cut inside the header.
  const oldMagic = stored(3, 2);
  oldMagic[MAGIC_AT] = 1;
  refused(oldMagic, "unsupportedMagic");
  // More records than offsets, with a valid CRC: not a batch any leader stores.
  const overfull = stored(3, 2);
  overfull.writeInt32BE(3, RECORD_COUNT_AT);
  overfull.writeUInt32BE(computeBatchCrc(overfull, 0, overfull.byteLength), CRC_AT);
  refused(overfull, "invalidRecord");

  expect(follower.appendReplicated(new Uint8Array(0))).toEqual({
    ok: true,
    baseOffset: 3,
    lastOffset: 2,
    logEndOffset: 3,
  });
  expect(shape(follower)).toBe(before);
  expect(readAll(follower).equals(bytesBefore)).toBe(true);
  // The log goes on where it was.
  expect(follower.appendReplicated(concatBatches([stored(3, 2), stored(5, 2)]))).toEqual({
    ok: true,
    baseOffset: 3,
    lastOffset: 6,
    logEndOffset: 7,
  });
});

test("storage: replicated: max.message.bytes is the leader's business, not the follower's", () => {
  const follower = open(freshDir(), { overrides: { maxMessageBytes: 200 } });
  const big = stored(0, 2, 1, 500);
  expect(follower.append(Buffer.from(big), { leaderEpoch: 1 })).toMatchObject({
    ok: false,
    kind: "tooLarge",
  });
  expect(follower.appendReplicated(big)).toMatchObject({ ok: true, logEndOffset: 2 });
});

test("storage: replicated: replicated segments roll, index and answer reads like appended ones", () => {
  const leader = openLeader(freshDir("leader-0"));
  const model = new LogModel();
  fillLog(leader, model, 5);
  const follower = open(freshDir());
  replicate(leader, follower, 3000);
  expect(follower.segmentCount()).toBeGreaterThanOrEqual(4);
  expect(readdirSync(follower.dir).filter((n) => n.endsWith(".log"))).toHaveLength(
    follower.segmentCount(),
  );
  expect(readAll(follower).equals(readAll(leader))).toBe(true);
  for (let offset = 0; offset < leader.logEndOffset; offset++) {
    const read = follower.read(offset, 1, { minOneBatch: true });
    expect(read.ok).toBe(true);
    if (!read.ok) continue;
    const expected = model.batches[model.batchIndexFor(offset)]!.bytes;
    expect(Buffer.from(read.records).equals(expected)).toBe(true);
  }
  for (const timestamp of [T0, T0 + 100, T0 + 333]) {
    expect(follower.offsetForTimestamp(timestamp)).toEqual(leader.offsetForTimestamp(timestamp));
  }
});

test("storage: replicated: flush.messages counts replicated messages", () => {
  const follower = open(freshDir(), { overrides: { flushMessages: 5 } });
  follower.appendReplicated(stored(0, 3));
  expect(follower.recoveryPoint).toBe(0);
  follower.appendReplicated(stored(3, 3));
  expect(follower.recoveryPoint).toBe(6);
});

test("storage: replicated: replicated data survives a crash; a torn tail is cut and fetched again", () => {
  const leader = openLeader(freshDir("leader-0"));
  const model = new LogModel();
  fillLog(leader, model, 3, 4);
  const dir = freshDir();
  const follower = open(dir);
  replicate(leader, follower, 2000);
  const end = follower.logEndOffset;
  close(follower);
  // Half of the next batch reached the file before the crash.
  const active = readdirSync(dir)
    .filter((n) => n.endsWith(".log"))
    .sort()
    .at(-1)!;
  appendFileSync(join(dir, active), stored(end, 3).subarray(0, 80));

  const crashed: RecoveryState = { recoveryPoint: 0, logStartOffset: 0, cleanShutdown: false };
  const recovered = open(dir, { recovery: crashed });
  expect(recovered.openReport.segmentsScanned).toBe(recovered.segmentCount());
  expect(recovered.openReport.truncatedBytes).toBe(80);
  expect(recovered.logEndOffset).toBe(end);
  expect(readAll(recovered).equals(readAll(leader))).toBe(true);
  expect(recovered.appendReplicated(stored(end, 3))).toMatchObject({
    ok: true,
    logEndOffset: end + 3,
  });
});

// ---------------------------------------------------------------------------------------
// The high watermark

test("storage: replicated: the high watermark stays until setHighWatermark, never goes back or past the end", () => {
  const log = open(freshDir());
  expect(log.highWatermark).toBe(0);
  for (let i = 0; i < 4; i++) log.append(makeBatch({ count: 1 }), { leaderEpoch: 0 });
  expect(log.logEndOffset).toBe(4);
  expect(log.highWatermark).toBe(0);
  const upToHw = () => log.read(0, 1 << 20, { minOneBatch: true, maxOffset: log.highWatermark });
  expect(upToHw()).toMatchObject({ ok: true, records: new Uint8Array(0) });

  expect(log.setHighWatermark(2)).toBe(2);
  const read = upToHw();
  expect(read.ok && splitBatches(read.records).map((b) => readBaseOffset(b, 0))).toEqual([0, 1]);
  expect(log.setHighWatermark(1)).toBe(2); // Never back (a new leader may lag).
  expect(log.setHighWatermark(-1)).toBe(2);
  expect(log.setHighWatermark(100)).toBe(4); // Clamped to the log end.

  expect(log.appendReplicated(stored(4, 2))).toMatchObject({ ok: true, logEndOffset: 6 });
  expect(log.highWatermark).toBe(4);
  expect(() => log.setHighWatermark(Number.NaN)).toThrow(AssertionError);

  // Truncation is the one way down.
  expect(log.truncateTo(3)).toBe(3);
  expect(log.highWatermark).toBe(3);
  expect(log.setHighWatermark(6)).toBe(3);
});

test("storage: replicated: a log whose high watermark follows appends refuses setHighWatermark", () => {
  const log = openLeader(freshDir());
  log.append(makeBatch({ count: 2 }), { leaderEpoch: 0 });
  expect(log.highWatermark).toBe(2);
  expect(log.appendReplicated(stored(2, 2))).toMatchObject({ ok: true, logEndOffset: 4 });
  expect(log.highWatermark).toBe(4);
  expect(() => log.setHighWatermark(4)).toThrow(AssertionError);
  expect(() =>
    PartitionLog.open({
      dir: freshDir("other-0"),
      config: config(),
      clock: new ManualClock(T0),
      initialHighWatermark: 0,
    }),
  ).toThrow(AssertionError);
});

test("storage: replicated: initialHighWatermark at open is clamped to [log start, log end]; absent, the log end", () => {
  const dir = freshDir();
  const first = open(dir);
  first.appendReplicated(concatBatches([stored(0, 3), stored(3, 3)]));
  close(first);
  const reopen = (initialHighWatermark?: number, logStartOffset = 0): number => {
    const recovery = { recoveryPoint: 6, logStartOffset, cleanShutdown: true };
    const options: OpenOptions =
      initialHighWatermark === undefined ? { recovery } : { recovery, initialHighWatermark };
    const log = open(dir, options);
    const highWatermark = log.highWatermark;
    close(log);
    return highWatermark;
  };
  expect(reopen(2)).toBe(2);
  expect(reopen(1000)).toBe(6); // Past a log end that recovery may have cut.
  expect(reopen()).toBe(6);
  expect(reopen(0, 3)).toBe(3); // Below a log start that retention moved.
});

test("storage: replicated: retention and DeleteRecords never act above the high watermark", () => {
  const clock = new ManualClock(T0 + 100_000);
  const overrides = { segmentBytes: 4096, retentionMs: 60_000 };
  const log = open(freshDir(), { clock, overrides });
  // Two batches per segment, all expired: bases 0, 2, 4.
  for (let i = 0; i < 6; i++)
    log.append(makeBatch({ count: 1, valueBytes: 1500, baseTimestamp: T0 }), { leaderEpoch: 0 });
  expect(log.segmentCount()).toBe(3);
  expect(log.applyRetention()).toEqual({ segmentsDeleted: 0, bytesDeleted: 0, logStartOffset: 0 });

  log.setHighWatermark(3);
  // [0, 2) is wholly below the high watermark; [2, 4) is not.
  expect(log.applyRetention()).toMatchObject({ segmentsDeleted: 1, logStartOffset: 2 });
  expect(log.deleteRecordsBefore(4)).toMatchObject({ ok: false, kind: "offsetOutOfRange" });
  expect(log.deleteRecordsBefore(3)).toEqual({ ok: true, logStartOffset: 3 });
  expect(log.segmentCount()).toBe(2);

  // Once everything is committed, the expired active segment is rolled and goes too.
  log.setHighWatermark(6);
  expect(log.applyRetention()).toMatchObject({ segmentsDeleted: 2, logStartOffset: 6 });
  expect(log.highWatermark).toBe(6);
  expect(log.segmentCount()).toBe(1);
});

test("storage: replicated: retention.bytes keeps the segments the high watermark has not passed", () => {
  const log = open(freshDir(), { overrides: { segmentBytes: 4096, retentionBytes: 0 } });
  for (let i = 0; i < 6; i++)
    log.append(makeBatch({ count: 1, valueBytes: 1500 }), { leaderEpoch: 0 });
  log.setHighWatermark(4);
  expect(log.applyRetention()).toMatchObject({ segmentsDeleted: 2, logStartOffset: 4 });
  expect(log.segmentCount()).toBe(1);
});

test("storage: replicated: compaction maps and cleans only below the high watermark", () => {
  const overrides: Partial<LogConfig> = {
    segmentBytes: 2048,
    indexIntervalBytes: 256,
    cleanupPolicy: { delete: false, compact: true },
    minCleanableDirtyRatio: 0,
  };
  const log = open(freshDir(), { overrides, cleaner: { dirtyBytesMin: 0 } });
  const value = (v: string) => `${v}-${"x".repeat(800)}`;
  const keyed = (key: string, v: string) =>
    buildBatch({ baseTimestamp: T0, records: [{ key, value: value(v) }] });
  // Two batches per segment: [a=1, b=1] [a=2, b=2] [c=1].
  for (const [key, v] of [
    ["a", "1"],
    ["b", "1"],
    ["a", "2"],
    ["b", "2"],
    ["c", "1"],
  ] as const) {
    expect(log.append(keyed(key, v), { leaderEpoch: 0 }).ok).toBe(true);
  }
  expect(log.segments().map((s) => s.baseOffset)).toEqual([0, 2, 4]);
  const offsets = () => {
    const out: number[] = [];
    forEachStoredBatch(log, (_batch, baseOffset) => out.push(baseOffset));
    return out;
  };

  // a=2 and b=2 are not committed: they may be truncated, so a=1 and b=1 must stay.
  log.setHighWatermark(2);
  log.compact();
  expect(offsets()).toEqual([0, 1, 2, 3, 4]);
  expect(log.truncateTo(2)).toBe(2);
  expect(offsets()).toEqual([0, 1]);

  // Committed, the later values replace the earlier ones.
  for (const [key, v] of [
    ["a", "3"],
    ["b", "3"],
    ["c", "2"],
  ] as const)
    log.append(keyed(key, v), { leaderEpoch: 0 });
  log.setHighWatermark(log.logEndOffset);
  expect(log.compact()).not.toBeNull();
  expect(offsets()).toEqual([2, 3, 4]);
});

// ---------------------------------------------------------------------------------------
// epochStarts

test("storage: replicated: epochStarts over several segments and epochs, from headers alone", () => {
  const leader = openLeader(freshDir("leader-0"), { segmentBytes: 4096 });
  expect(leader.epochStarts()).toEqual([]);
  // One record per batch, two batches per segment. -1 (no epoch), a lower epoch (2 after
  // 3) and a repeated one are skipped, as Kafka's cache ignores them.
  const epochs = [-1, 0, 0, 1, 1, 1, 3, 2, 3, 5, 5];
  for (const epoch of epochs)
    leader.append(makeBatch({ count: 1, valueBytes: 1500 }), { leaderEpoch: epoch });
  expect(leader.segmentCount()).toBe(6);
  const expected = [
    { epoch: 0, startOffset: 1 },
    { epoch: 1, startOffset: 3 },
    { epoch: 3, startOffset: 6 },
    { epoch: 5, startOffset: 9 },
  ];
  expect(leader.epochStarts()).toEqual(expected);
  // Only the 61-byte headers are read.
  for (const segment of leader.segments()) {
    segment.scanHeaders((buf) => {
      expect(buf.byteLength).toBe(BATCH_HEADER_BYTES);
      return false;
    });
  }

  // A follower holding the same bytes has the same epochs, also after a reopen (its
  // sealed segments read through the cache).
  const dir = freshDir();
  const follower = open(dir);
  replicate(leader, follower, 4000);
  expect(follower.epochStarts()).toEqual(expected);
  close(follower);
  expect(open(dir).epochStarts()).toEqual(expected);

  // The epoch holding the log start starts there; those wholly below it are gone.
  expect(leader.deleteRecordsBefore(4)).toEqual({ ok: true, logStartOffset: 4 });
  expect(leader.epochStarts()).toEqual([
    { epoch: 1, startOffset: 4 },
    { epoch: 3, startOffset: 6 },
    { epoch: 5, startOffset: 9 },
  ]);
  leader.deleteRecordsBefore(6);
  expect(leader.epochStarts()).toEqual([
    { epoch: 3, startOffset: 6 },
    { epoch: 5, startOffset: 9 },
  ]);
  // Truncation takes the epochs of the cut tail with it.
  leader.truncateTo(9);
  expect(leader.epochStarts()).toEqual([{ epoch: 3, startOffset: 6 }]);
});
