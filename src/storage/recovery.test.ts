/**
 * Recovery after an unclean stop, bounded by the recovery point (Kafka's LogLoader):
 * segments wholly below it are opened from their index files only, the others verified
 * batch by batch and cut at the first damage. A "crash" here is a closed log whose files
 * are then damaged the ways a crash or a bad disk leaves them, reopened with the
 * recovery point its checkpoint would hold.
 */
import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import {
  appendFileSync,
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ManualClock } from "../util/clock.ts";
import { DEFAULT_LOG_CONFIG, type LogConfig } from "./log-config.ts";
import { PartitionLog, type RecoveryState } from "./partition-log.ts";
import { LogModel, T0, makeBatch, makeTempDir, tempLogs, seededRandom } from "./test-support.ts";

const { dirs, logs } = tempLogs();

function config(overrides: Partial<LogConfig> = {}): LogConfig {
  return { ...DEFAULT_LOG_CONFIG, segmentBytes: 16 * 1024, indexIntervalBytes: 1024, ...overrides };
}

function open(
  dir: string,
  recovery?: Partial<RecoveryState>,
  overrides: Partial<LogConfig> = {},
  clock = new ManualClock(T0),
): PartitionLog {
  const state = { recoveryPoint: 0, logStartOffset: 0, cleanShutdown: false, ...recovery };
  const log = PartitionLog.open({ dir, config: config(overrides), clock, recovery: state });
  logs.push(log);
  return log;
}

function freshDir(): string {
  const dir = makeTempDir("recovery");
  dirs.push(dir);
  return join(dir, "topic-0");
}

/** Appends batches of 1-5 records (200-700 byte values) until the log has `segments`. */
function fill(log: PartitionLog, model: LogModel, segments: number, seed: number): void {
  const random = seededRandom(seed);
  let timestamp = T0;
  while (log.segmentCount() < segments || random(5) !== 0) {
    if (log.segmentCount() > segments) throw new Error("Filled past the wanted segments");
    const count = 1 + random(5);
    model.append(
      log,
      makeBatch({ count, valueBytes: 200 + random(500), baseTimestamp: timestamp }),
    );
    timestamp += count;
    if (log.segmentCount() === segments && random(3) === 0) break;
  }
}

function logFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".log"))
    .sort();
}

function baseOf(name: string): number {
  return Number(name.slice(0, 20));
}

/** The model's batches stored in the segment with base `base` (whose next segment starts at `next`). */
function batchesIn(model: LogModel, base: number, next: number) {
  return model.batches.filter((batch) => batch.baseOffset >= base && batch.baseOffset < next);
}

/** True when every offset below the log end reads exactly the model's batch. */
function readsAllOf(log: PartitionLog, model: LogModel): boolean {
  for (let offset = log.logStartOffset; offset < log.logEndOffset; offset++) {
    const read = log.read(offset, 1, { minOneBatch: true });
    if (!read.ok) return false;
    const expected = model.batches[model.batchIndexFor(offset)]!.bytes;
    if (Buffer.compare(Buffer.from(read.records), expected) !== 0) return false;
  }
  return true;
}

/** Runs `body` and returns what the logger wrote to stderr meanwhile. */
function stderrOf(body: () => void): string {
  const write = process.stderr.write;
  let text = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    body();
  } finally {
    process.stderr.write = write;
  }
  return text;
}

test("storage: recovery: a torn half batch at the tail goes, every offset before it stays", async () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fill(log, model, 3, 1);
  // Rolls fsync the old segment (off the event loop): then the recovery point is the
  // active segment's base.
  await log.sealsSettled();
  const recoveryPoint = log.recoveryPoint;
  const activeBase = baseOf(logFiles(dir).at(-1)!);
  expect(recoveryPoint).toBe(activeBase);
  model.append(log, makeBatch({ count: 5, valueBytes: 300 }));
  const torn = model.batches.pop()!;
  log.close();
  const path = join(dir, logFiles(dir).at(-1)!);
  const cut = Math.floor(torn.bytes.byteLength / 2);
  truncateSync(path, statSync(path).size - cut);

  const again = open(dir, { recoveryPoint });
  expect(again.logEndOffset).toBe(torn.baseOffset);
  expect(again.openReport).toMatchObject({
    cleanShutdown: false,
    segmentsTrusted: 2,
    segmentsScanned: 1,
    truncatedBytes: torn.bytes.byteLength - cut,
    segmentsDropped: 0,
  });
  // Verified is not fsynced: the recovery point stays until a flush or roll (Kafka's rule).
  expect(again.recoveryPoint).toBe(recoveryPoint);
  expect(readsAllOf(again, model)).toBe(true);
  expect(model.append(again, makeBatch({ count: 2 })).baseOffset).toBe(torn.baseOffset);
  again.flush();
  expect(again.recoveryPoint).toBe(again.logEndOffset);
  expect(readsAllOf(again, model)).toBe(true);
});

test("storage: recovery: garbage at the tail is cut to the last whole batch", () => {
  for (const garbage of ["random", "a batch header with no body"] as const) {
    const dir = freshDir();
    const model = new LogModel();
    const log = open(dir);
    fill(log, model, 2, 2);
    const recoveryPoint = log.recoveryPoint;
    const end = log.logEndOffset;
    log.close();
    const path = join(dir, logFiles(dir).at(-1)!);
    const goodSize = statSync(path).size;
    const random = seededRandom(3);
    const bytes =
      garbage === "random"
        ? Buffer.from(Array.from({ length: 700 }, () => random(256)))
        : model.batches.at(-1)!.bytes.subarray(0, 61);
    appendFileSync(path, bytes);

    const again = open(dir, { recoveryPoint });
    expect(statSync(path).size).toBe(goodSize);
    expect(again.logEndOffset).toBe(end);
    expect(again.openReport.truncatedBytes).toBe(bytes.byteLength);
    expect(readsAllOf(again, model)).toBe(true);
    expect(model.append(again, makeBatch({ count: 3 })).baseOffset).toBe(end);
  }
});

test("storage: recovery: a zeroed 4 KiB page mid-segment cuts the log at the first batch it touches", () => {
  // One segment with index entries every 512 bytes, so entries exist past the page: a
  // recovery that trusted the index (as after a clean shutdown) would not see the page.
  const overrides = { segmentBytes: 1 << 20, indexIntervalBytes: 512 };
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir, {}, overrides);
  const random = seededRandom(4);
  while (log.sizeBytes() < 20_000) {
    model.append(log, makeBatch({ count: 1 + random(3), valueBytes: 100 + random(300) }));
  }
  const end = log.logEndOffset;
  log.close();
  const path = join(dir, logFiles(dir)[0]!);
  const pageAt = 8192;
  const bytes = readFileSync(path);
  bytes.fill(0, pageAt, pageAt + 4096);
  writeFileSync(path, bytes);
  // The first batch that the page touches, and where it starts.
  let position = 0;
  let hit = 0;
  while (position + model.batches[hit]!.bytes.byteLength <= pageAt) {
    position += model.batches[hit]!.bytes.byteLength;
    hit++;
  }
  const firstLost = model.batches[hit]!.baseOffset;
  expect(firstLost).toBeGreaterThan(0);

  // Trusting the indexes (the clean-shutdown path) walks only the tail after the last entry.
  const trusting = open(dir, { cleanShutdown: true }, overrides);
  expect(trusting.logEndOffset).toBe(end);
  trusting.close();

  // Unclean, with the recovery point at the segment's base: every batch is verified.
  const again = open(dir, { recoveryPoint: 0 }, overrides);
  expect(again.logEndOffset).toBe(firstLost);
  expect(statSync(path).size).toBe(position);
  expect(again.openReport.truncatedBytes).toBe(bytes.byteLength - position);
  model.batches.length = hit;
  expect(readsAllOf(again, model)).toBe(true);
  // Index entries now point only below the cut.
  const index = readFileSync(join(dir, logFiles(dir)[0]!.replace(".log", ".index")));
  for (let at = 4; at < index.byteLength; at += 8)
    expect(index.readInt32BE(at)).toBeLessThan(position);
  expect(model.append(again, makeBatch({ count: 2 })).baseOffset).toBe(firstLost);
});

test("storage: recovery: damage in a sealed segment past the recovery point cuts it there and drops later segments", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fill(log, model, 5, 5);
  log.close();
  const names = logFiles(dir);
  expect(names).toHaveLength(5);
  const bases = names.map(baseOf);
  // A stale checkpoint: recovery point at segment 1's base; segment 2 is damaged in its
  // third batch (a flipped value byte: the CRC no longer matches).
  const recoveryPoint = bases[1]!;
  const inDamaged = batchesIn(model, bases[2]!, bases[3]!);
  expect(inDamaged.length).toBeGreaterThan(3);
  const damaged = inDamaged[2]!;
  const damagedAt = inDamaged[0]!.bytes.byteLength + inDamaged[1]!.bytes.byteLength;
  const path = join(dir, names[2]!);
  const bytes = readFileSync(path);
  bytes[damagedAt + 100]! ^= 0xff;
  writeFileSync(path, bytes);
  const droppedBytes = statSync(join(dir, names[3]!)).size + statSync(join(dir, names[4]!)).size;

  let again!: PartitionLog;
  const output = stderrOf(() => {
    again = open(dir, { recoveryPoint });
  });
  expect(again.logEndOffset).toBe(damaged.baseOffset);
  expect(logFiles(dir)).toEqual(names.slice(0, 3));
  expect(existsSync(join(dir, names[3]!.replace(".log", ".index")))).toBe(false);
  expect(statSync(path).size).toBe(damagedAt);
  expect(again.openReport).toMatchObject({
    segmentsTrusted: 1,
    segmentsScanned: 2,
    truncatedBytes: bytes.byteLength - damagedAt,
    segmentsDropped: 2,
    bytesDropped: droppedBytes,
  });
  // The log says what it dropped: the cut, and the segments after it.
  expect(output).toContain(`firstDroppedOffset=${damaged.baseOffset}`);
  expect(output).toContain('reason="Batch CRC mismatch"');
  expect(output).toContain(`droppedSegments=${bases[3]},${bases[4]} droppedBytes=${droppedBytes}`);

  model.batches.splice(model.batchIndexFor(damaged.baseOffset));
  expect(readsAllOf(again, model)).toBe(true);
  // The cut segment is the active one now; appends continue at the cut.
  expect(again.segmentCount()).toBe(3);
  expect(model.append(again, makeBatch({ count: 2 })).baseOffset).toBe(damaged.baseOffset);
  const end = again.logEndOffset;
  again.close();
  const reopened = open(dir, { recoveryPoint: again.recoveryPoint });
  expect(reopened.logEndOffset).toBe(end);
  expect(readsAllOf(reopened, model)).toBe(true);
});

test("storage: recovery: segments below the recovery point are not verified (garbage there stays)", async () => {
  // What this proves: open does not CRC-check a segment wholly below the recovery point
  // (the damage below would be cut otherwise, as the second open shows), and reads no
  // byte of its .log: bytesRead counts every .log read open makes (scans, index
  // rebuilds, header reads) and equals the last segment's size. Index files are read.
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fill(log, model, 4, 6);
  await log.sealsSettled();
  const recoveryPoint = log.recoveryPoint;
  log.close();
  const names = logFiles(dir);
  const bases = names.map(baseOf);
  expect(recoveryPoint).toBe(bases[3]!);
  const first = join(dir, names[0]!);
  const damaged = readFileSync(first);
  damaged[damaged.byteLength - 100]! ^= 0xff; // A value byte of the segment's last batch.
  writeFileSync(first, damaged);
  const lastSize = statSync(join(dir, names[3]!)).size;
  const end = model.endOffset;

  const skipping = open(dir, { recoveryPoint });
  expect(skipping.logEndOffset).toBe(end);
  expect(skipping.openReport).toMatchObject({
    segmentsTrusted: 3,
    segmentsScanned: 1,
    bytesRead: lastSize,
    truncatedBytes: 0,
  });
  expect(readFileSync(first).equals(damaged)).toBe(true);
  skipping.close();

  // The same files with the recovery point at 0: the damage is found and cut.
  const verifying = open(dir, { recoveryPoint: 0 });
  const lastOfFirst = batchesIn(model, bases[0]!, bases[1]!).at(-1)!;
  expect(verifying.logEndOffset).toBe(lastOfFirst.baseOffset);
  expect(verifying.openReport).toMatchObject({
    segmentsTrusted: 0,
    segmentsScanned: 1,
    segmentsDropped: 3,
  });
  expect(logFiles(dir)).toEqual([names[0]!]);
});

test("storage: recovery: after a clean shutdown nothing is verified, only the active tail's headers walked", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fill(log, model, 3, 7);
  const end = log.logEndOffset;
  log.close();
  const names = logFiles(dir);
  const activePath = join(dir, names.at(-1)!);
  const active = readFileSync(activePath);
  active[active.byteLength - 50]! ^= 0xff; // CRC of the last batch breaks; its header does not.
  writeFileSync(activePath, active);
  const index = readFileSync(activePath.replace(".log", ".index"));
  expect(index.byteLength).toBeGreaterThan(0);
  const lastEntryPosition = index.readInt32BE(index.byteLength - 4);

  // A stale recovery point of 0 does not matter: the marker says every log was closed.
  const clean = open(dir, { recoveryPoint: 0, cleanShutdown: true });
  expect(clean.logEndOffset).toBe(end);
  expect(clean.openReport).toMatchObject({
    cleanShutdown: true,
    segmentsTrusted: names.length - 1,
    segmentsScanned: 1,
    // The tail after the last index entry, and the first batch's header (its roll time).
    bytesRead: active.byteLength - lastEntryPosition + 61,
    truncatedBytes: 0,
  });
  expect(clean.recoveryPoint).toBe(end);
  clean.close();

  // Unclean, the same damage is found.
  const unclean = open(dir, { recoveryPoint: 0 });
  expect(unclean.logEndOffset).toBe(model.batches.at(-1)!.baseOffset);
});

test("storage: recovery: a torn tail despite a clean-shutdown marker is verified and cut", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fill(log, model, 2, 8);
  log.close();
  const path = join(dir, logFiles(dir).at(-1)!);
  const last = model.batches.at(-1)!;
  truncateSync(path, statSync(path).size - 10);
  const again = open(dir, { cleanShutdown: true });
  expect(again.logEndOffset).toBe(last.baseOffset);
  expect(again.openReport.truncatedBytes).toBe(last.bytes.byteLength - 10);
});

test("storage: recovery: the recovery point follows rolls, flush, flush.messages and flush.ms", async () => {
  const clock = new ManualClock(T0);
  const dir = freshDir();
  const log = open(dir, {}, { segmentBytes: 4096, flushMessages: 5, flushMs: 1000 }, clock);
  const model = new LogModel();
  expect(log.recoveryPoint).toBe(0);
  for (let i = 0; i < 4; i++) model.append(log, makeBatch({ count: 1 }));
  expect(log.recoveryPoint).toBe(0);
  model.append(log, makeBatch({ count: 1 })); // The fifth unflushed message.
  expect(log.recoveryPoint).toBe(5);
  model.append(log, makeBatch({ count: 2 }));
  expect(log.maybeFlush()).toBe(false);
  clock.advance(999);
  expect(log.maybeFlush()).toBe(false);
  clock.advance(1);
  expect(log.maybeFlush()).toBe(true);
  expect(log.recoveryPoint).toBe(7);
  expect(log.maybeFlush()).toBe(false); // Nothing new to flush.
  // flush.ms is also checked on append.
  clock.advance(1000);
  model.append(log, makeBatch({ count: 1 }));
  expect(log.recoveryPoint).toBe(8);
  // A roll seals the old segment and fsyncs it off the event loop: the recovery point
  // moves to the new base once that fsync is done.
  const defaults = open(freshDir(), {}, { segmentBytes: 4096 }, clock);
  const other = new LogModel();
  other.append(defaults, makeBatch({ count: 3, valueBytes: 1500 }));
  expect(defaults.recoveryPoint).toBe(0);
  other.append(defaults, makeBatch({ count: 3, valueBytes: 1500 }));
  expect(defaults.segmentCount()).toBe(2);
  expect(defaults.recoveryPoint).toBe(0);
  await defaults.sealsSettled();
  expect(defaults.recoveryPoint).toBe(3);
  defaults.flush();
  expect(defaults.recoveryPoint).toBe(6);
  // A flush does not wait for a roll's background fsync: it fsyncs that segment itself.
  other.append(defaults, makeBatch({ count: 3, valueBytes: 1500 }));
  other.append(defaults, makeBatch({ count: 3, valueBytes: 1500 }));
  expect(defaults.segmentCount()).toBe(4);
  defaults.flush();
  expect(defaults.recoveryPoint).toBe(12);
  await defaults.sealsSettled();
  expect(defaults.recoveryPoint).toBe(12);
});

test("storage: recovery: the checkpointed log start holds inside a segment, and past a lost tail", () => {
  const dir = freshDir();
  const model = new LogModel();
  const log = open(dir);
  fill(log, model, 2, 9);
  const end = log.logEndOffset;
  log.close();
  const inside = open(dir, { recoveryPoint: end, logStartOffset: 7 });
  expect(inside.logStartOffset).toBe(7);
  expect(inside.read(6, 100, { minOneBatch: true })).toEqual({
    ok: false,
    kind: "offsetOutOfRange",
  });
  expect(inside.read(7, 1, { minOneBatch: true }).ok).toBe(true);
  inside.close();

  // The log start is past the log end (its data is gone): Kafka starts the log empty
  // there, and offsets below it are never handed out again.
  const past = open(dir, { recoveryPoint: end, logStartOffset: end + 10 });
  expect(past.logStartOffset).toBe(end + 10);
  expect(past.logEndOffset).toBe(end + 10);
  expect(past.segmentCount()).toBe(1);
  expect(logFiles(dir)).toEqual([`${String(end + 10).padStart(20, "0")}.log`]);
  expect(past.append(makeBatch({ count: 1 }), { leaderEpoch: 0 })).toMatchObject({
    ok: true,
    baseOffset: end + 10,
  });
});

test("storage: recovery: index entries an active segment had not yet written are re-added after a crash", () => {
  const dir = freshDir();
  const model = new LogModel();
  const overrides = { segmentBytes: 1 << 20, indexIntervalBytes: 512 };
  const log = open(dir, {}, overrides);
  for (let i = 0; i < 70; i++) model.append(log, makeBatch({ count: 1, valueBytes: 600 }));
  // The process dies here: what is on disk is what the kernel was handed so far.
  const crashed = join(dir, "..", "crashed");
  cpSync(dir, crashed, { recursive: true });
  log.close();
  const indexName = readdirSync(dir).find((name) => name.endsWith(".index"))!;
  const complete = readFileSync(join(dir, indexName));
  // Entries are written in groups: the crashed copy's index ends before the last few.
  expect(readFileSync(join(crashed, indexName)).byteLength).toBeLessThan(complete.byteLength);

  const again = open(crashed, {}, overrides);
  expect(again.logEndOffset).toBe(70);
  expect(readsAllOf(again, model)).toBe(true);
  again.close();
  expect(readFileSync(join(crashed, indexName)).equals(complete)).toBe(true);
});
