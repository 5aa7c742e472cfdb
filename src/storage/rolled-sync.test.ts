/**
 * A roll's fsync runs off the event loop (PartitionLog #roll): these tests hold each
 * background fsync and finish it (or fail it) when they choose, to check what the
 * recovery point, flush and appends do meanwhile.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ManualClock } from "../util/clock.ts";
import { DEFAULT_LOG_CONFIG } from "./log-config.ts";
import { PartitionLog, StorageIoError } from "./partition-log.ts";
import { LogModel, T0, makeBatch, makeTempDir, tempLogs } from "./test-support.ts";

const { dirs, logs } = tempLogs();

interface HeldSync {
  finish(): void;
  fail(error: Error): void;
}

/** A log of 4 KiB segments whose rolled segments' fsyncs wait in `held`. */
function openHeld(): { log: PartitionLog; held: HeldSync[]; model: LogModel } {
  const base = makeTempDir("rolled-sync");
  dirs.push(base);
  const held: HeldSync[] = [];
  const log = PartitionLog.open({
    dir: join(base, "topic-0"),
    config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 4096 },
    clock: new ManualClock(T0),
    syncRolled: () =>
      new Promise<void>((finish, fail) => {
        held.push({ finish, fail });
      }),
  });
  logs.push(log);
  return { log, held, model: new LogModel() };
}

/** Appends 1500-byte batches of one record until the log has rolled `rolls` times. */
function roll(log: PartitionLog, model: LogModel, rolls: number): void {
  const segmentsBefore = log.segmentCount();
  while (log.segmentCount() < segmentsBefore + rolls)
    model.append(log, makeBatch({ count: 1, valueBytes: 1500 }));
}

/** Lets the log's completion callbacks run. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test("storage: a roll does not wait for its fsync; the recovery point passes rolled segments in order once each is durable", async () => {
  const { log, held, model } = openHeld();
  roll(log, model, 3);
  const bases = log.segments().map((segment) => segment.baseOffset);
  expect(held).toHaveLength(3);
  expect(log.recoveryPoint).toBe(0);
  // The second finishes first: the first still holds the recovery point.
  held[1]!.finish();
  await settle();
  expect(log.recoveryPoint).toBe(0);
  held[0]!.finish();
  await settle();
  expect(log.recoveryPoint).toBe(bases[2]!);
  held[2]!.finish();
  await log.sealsSettled();
  expect(log.recoveryPoint).toBe(bases[3]!);
});

test("storage: a flush does not wait for a held roll fsync: it fsyncs that segment itself", async () => {
  const { log, held, model } = openHeld();
  roll(log, model, 2);
  model.append(log, makeBatch({ count: 1 }));
  log.flush();
  expect(log.recoveryPoint).toBe(log.logEndOffset);
  for (const sync of held) sync.finish();
  await log.sealsSettled();
  expect(log.recoveryPoint).toBe(log.logEndOffset);
});

test("storage: a failed roll fsync holds the recovery point; appends and flushes then fail with a storage error, reads go on", async () => {
  const { log, held, model } = openHeld();
  roll(log, model, 2);
  held[0]!.fail(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }));
  held[1]!.finish();
  await log.sealsSettled();
  expect(log.recoveryPoint).toBe(0);
  expect(() => log.flush()).toThrow(StorageIoError);
  expect(() => log.append(makeBatch({ count: 1 }), { leaderEpoch: 0 })).toThrow(StorageIoError);
  const read = log.read(0, 1, { minOneBatch: true });
  expect(read.ok && read.records.byteLength > 0).toBe(true);
  expect(log.logEndOffset).toBe(model.endOffset);
});

test("storage: a rolled segment cut by truncation before its fsync finished moves no recovery point", async () => {
  const { log, held, model } = openHeld();
  roll(log, model, 2);
  const firstEnd = log.segments()[1]!.baseOffset;
  log.truncateTo(firstEnd - 1); // Inside the first rolled segment: it is reopened as the active one.
  for (const sync of held) sync.finish();
  await log.sealsSettled();
  expect(log.recoveryPoint).toBe(0);
  expect(log.logEndOffset).toBe(firstEnd - 1);
  expect(log.recoveryPoint).toBeLessThanOrEqual(log.logEndOffset);
});
