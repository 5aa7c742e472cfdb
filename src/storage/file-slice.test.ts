import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  truncateSync,
} from "node:fs";
import { join } from "node:path";
import { countRecords } from "../admin/metrics.ts";
import { materialize } from "../protocol/deferred-bytes.ts";
import { ManualClock } from "../util/clock.ts";
import { FileSlice } from "./file-slice.ts";
import { DEFAULT_LOG_CONFIG } from "./log-config.ts";
import { PartitionLog } from "./partition-log.ts";
import {
  fillLog,
  LogModel,
  makeBatch,
  makeTempDir,
  seededRandom,
  T0,
  tempLogs,
} from "./test-support.ts";

const { dirs, logs } = tempLogs();

function filledLog(
  segments: number,
  seed: number,
): { log: PartitionLog; model: LogModel; dir: string } {
  const root = makeTempDir("slice");
  dirs.push(root);
  const dir = join(root, "topic-0");
  const log = PartitionLog.open({
    dir,
    config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 16 * 1024, indexIntervalBytes: 1024 },
    clock: new ManualClock(T0),
  });
  logs.push(log);
  const model = new LogModel();
  fillLog(log, model, segments, seed);
  return { log, model, dir };
}

/** The whole log read at once, the same as a slice, and the slice's finished count (-1 before). */
function wholeAndSlice(log: PartitionLog): {
  whole: Uint8Array;
  slice: FileSlice;
  finished: () => number;
} {
  const whole = log.read(0, 1 << 30, { minOneBatch: true });
  const deferred = log.readDeferred(0, 1 << 30, { minOneBatch: true, deferFromBytes: 1 });
  if (!whole.ok || !deferred.ok || !(deferred.records instanceof FileSlice))
    throw new Error("Expected a slice");
  let records = -1;
  deferred.records.onFinished = (count) => (records = count);
  return { whole: whole.records, slice: deferred.records, finished: () => records };
}

/** The batches a read should return, from the model: contiguous, whole, within the bounds. */
function expected(model: LogModel, offset: number, maxBytes: number, maxOffset: number): Buffer {
  const first = model.batchIndexFor(offset);
  if (model.batches[first]!.baseOffset >= maxOffset) return Buffer.alloc(0);
  const kept = [model.batches[first]!.bytes];
  let total = kept[0]!.byteLength;
  for (let i = first + 1; i < model.batches.length; i++) {
    const batch = model.batches[i]!;
    if (batch.baseOffset >= maxOffset || total + batch.bytes.byteLength > maxBytes) break;
    kept.push(batch.bytes);
    total += batch.bytes.byteLength;
  }
  return Buffer.concat(kept);
}

test("storage: read and readDeferred return the model's batches for any offset, size and bound", () => {
  const { log, model } = filledLog(6, 3);
  const random = seededRandom(11);
  const end = model.endOffset;
  for (let i = 0; i < 400; i++) {
    const offset = random(end);
    const maxBytes = random(3) === 0 ? random(200) : random(60_000);
    const maxOffset = random(2) === 0 ? end : 1 + random(end);
    const want = Buffer.from(
      offset >= maxOffset ? Buffer.alloc(0) : expected(model, offset, maxBytes, maxOffset),
    );
    const read = log.read(offset, maxBytes, { minOneBatch: true, maxOffset });
    expect(read.ok).toBe(true);
    if (!read.ok) continue;
    expect(Buffer.from(read.records)).toEqual(want);
    const deferred = log.readDeferred(offset, maxBytes, {
      minOneBatch: true,
      maxOffset,
      deferFromBytes: 0,
    });
    expect(deferred.ok).toBe(true);
    if (!deferred.ok) continue;
    const bytes =
      deferred.records instanceof FileSlice ? materialize(deferred.records) : deferred.records;
    expect(Buffer.from(bytes)).toEqual(want);
  }
});

test("storage: a file slice reads in pieces, counts its records, and closes its files when done", () => {
  const { log } = filledLog(5, 5);
  const { whole, slice, finished } = wholeAndSlice(log);
  const openBefore = readdirSync("/proc/self/fd").length;
  const pieces: Uint8Array[] = [];
  // Odd piece sizes cut batch headers, which the count must survive.
  for (let read = 0; read < slice.byteLength;) {
    const piece = slice.next(777);
    pieces.push(piece);
    read += piece.byteLength;
  }
  expect(Buffer.concat(pieces)).toEqual(Buffer.from(whole));
  expect(finished()).toBe(countRecords(whole));
  expect(readdirSync("/proc/self/fd").length).toBeLessThan(openBefore);
  expect(() => slice.next(1)).toThrow();
});

test("storage: a slice keeps its bytes when the log's files are removed; a truncated file breaks it", () => {
  const { log, dir } = filledLog(4, 7);
  const whole = log.read(0, 1 << 30, { minOneBatch: true });
  const first = log.readDeferred(0, 1 << 30, { minOneBatch: true, deferFromBytes: 1 });
  if (!whole.ok || !first.ok || !(first.records instanceof FileSlice))
    throw new Error("Expected a slice");
  const second = log.readDeferred(0, 1 << 30, { minOneBatch: true, deferFromBytes: 1 });
  if (!second.ok || !(second.records instanceof FileSlice)) throw new Error("Expected a slice");

  // Truncation in place (the only change an open descriptor sees) breaks the second.
  const segment = readdirSync(dir)
    .filter((name) => name.endsWith(".log"))
    .sort()[0]!;
  const firstSlicePiece = first.records.next(100);
  truncateSync(join(dir, segment), 50);
  expect(() => second.records instanceof FileSlice && materialize(second.records)).toThrow(
    /ends before/,
  );

  // Unlinked files stay readable through the slice's own descriptors.
  const fresh = filledLog(3, 9);
  const slice = fresh.log.readDeferred(0, 1 << 30, { minOneBatch: true, deferFromBytes: 1 });
  const wholeFresh = fresh.log.read(0, 1 << 30, { minOneBatch: true });
  if (!slice.ok || !wholeFresh.ok || !(slice.records instanceof FileSlice))
    throw new Error("Expected a slice");
  rmSync(fresh.dir, { recursive: true, force: true });
  expect(Buffer.from(materialize(slice.records))).toEqual(Buffer.from(wholeFresh.records));
  first.records.release();
  expect(firstSlicePiece.byteLength).toBe(100);
});

test("storage: a slice of large batches goes on by sendfile after its first piece, counting records from the headers; small batches are read", () => {
  const root = makeTempDir("slice");
  dirs.push(root);
  const log = PartitionLog.open({
    dir: join(root, "topic-0"),
    config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 1024 * 1024 },
    clock: new ManualClock(T0),
  });
  logs.push(log);
  for (let i = 0; i < 60; i++)
    expect(
      log.append(makeBatch({ count: 50 + (i % 7), valueBytes: 1000 }), { leaderEpoch: 0 }).ok,
    ).toBe(true);
  const { whole, slice, finished } = wholeAndSlice(log);
  // What a socket would get: sendfile is stood in for by a pread into `sent`.
  const sent: Buffer[] = [];
  const send = (fd: number, position: number, count: number) => {
    const bytes = Buffer.alloc(Math.min(count, 300_000));
    readSync(fd, bytes, 0, bytes.byteLength, position);
    sent.push(bytes);
    return bytes.byteLength;
  };
  expect(slice.sendWith(send, 1 << 20)).toBeNull(); // Nothing seen yet: read first.
  sent.push(Buffer.from(slice.next(100_000)));
  let viaSendfile = 0;
  for (let total = 100_000; total < slice.byteLength;) {
    const n = slice.sendWith(send, slice.byteLength - total);
    expect(n).toBeGreaterThan(0);
    viaSendfile += n!;
    total += n!;
  }
  expect(viaSendfile).toBe(slice.byteLength - 100_000);
  expect(Buffer.concat(sent)).toEqual(Buffer.from(whole));
  expect(finished()).toBe(countRecords(whole));

  // The default test log's batches are far below 32 KiB: always read.
  const small = filledLog(3, 21).log.readDeferred(0, 1 << 30, {
    minOneBatch: true,
    deferFromBytes: 1,
  });
  if (!small.ok || !(small.records instanceof FileSlice)) throw new Error("Expected a slice");
  small.records.next(4096);
  expect(small.records.sendWith(send, 1 << 20)).toBeNull();
  small.records.release();
});

test("storage: a slice that counts no records (a follower's fetch) goes by sendfile from its first byte, whatever its batch sizes", () => {
  const { log } = filledLog(3, 22);
  const whole = log.read(0, 1 << 30, { minOneBatch: true });
  const deferred = log.readDeferred(0, 1 << 30, {
    minOneBatch: true,
    deferFromBytes: 1,
    countRecords: false,
  });
  if (!whole.ok || !deferred.ok || !(deferred.records instanceof FileSlice))
    throw new Error("Expected a slice");
  const slice = deferred.records;
  let finished = -1;
  slice.onFinished = (count) => (finished = count);
  const sent: Buffer[] = [];
  const send = (fd: number, position: number, count: number) => {
    const bytes = Buffer.alloc(Math.min(count, 5_000));
    readSync(fd, bytes, 0, bytes.byteLength, position);
    sent.push(bytes);
    return bytes.byteLength;
  };
  for (let total = 0; total < slice.byteLength;) {
    const n = slice.sendWith(send, slice.byteLength - total);
    expect(n).toBeGreaterThan(0);
    total += n!;
  }
  expect(Buffer.concat(sent)).toEqual(Buffer.from(whole.records));
  expect(finished).toBe(0);
});

/** Writes the log's files back and drops their pages from the page cache (posix_fadvise DONTNEED). */
function evictFromPageCache(dir: string): void {
  const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
  const { symbols } = dlopen("libc.so.6", {
    posix_fadvise: {
      args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.i32],
      returns: FFIType.i32,
    },
  });
  const POSIX_FADV_DONTNEED = 4;
  for (const name of readdirSync(dir)) {
    const fd = openSync(join(dir, name), "r");
    try {
      fsyncSync(fd);
      expect(symbols.posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)).toBe(0);
    } finally {
      closeSync(fd);
    }
  }
}

test("storage: a slice whose pages left the page cache is read off the request thread, piece by piece, byte for byte", async () => {
  const { log, dir } = filledLog(4, 21);
  log.flush();
  const { whole, slice, finished } = wholeAndSlice(log);
  evictFromPageCache(dir);
  const pieces: Uint8Array[] = [];
  let waited = 0;
  for (let left = slice.byteLength; left > 0;) {
    const size = Math.min(4096, left);
    const readable = slice.whenReadable(size);
    if (readable !== null) {
      waited++;
      // The read runs on another thread: the caller is free until it settles.
      expect(slice.whenReadable(size)).toBe(readable);
      await readable;
    }
    const piece = slice.next(size);
    pieces.push(piece);
    left -= piece.byteLength;
  }
  expect(waited).toBeGreaterThan(0);
  expect(Buffer.concat(pieces).equals(whole)).toBe(true);
  expect(finished()).toBe(countRecords(whole));
});

test("storage: a slice released while it reads ahead closes its files once the read is over", async () => {
  const { log, dir } = filledLog(2, 22);
  log.flush();
  const { slice } = wholeAndSlice(log);
  evictFromPageCache(dir);
  const readable = slice.whenReadable(4096);
  expect(readable).not.toBeNull();
  slice.release();
  await readable;
  expect(() => slice.next(4096)).toThrow("released");
  expect(slice.whenReadable(4096)).toBeNull();
});
