/**
 * Cold reads: bytes the page cache does not hold are found without waiting for the disk
 * (preadv2 RWF_NOWAIT) and read on the thread pool. Files are made cold with
 * posix_fadvise(DONTNEED) after an fsync, so these run on Linux under Bun (the runtime
 * the broker ships with); elsewhere `cachedReads` is null and reads stay synchronous.
 */
import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { closeSync, openSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { materialize } from "../protocol/deferred-bytes.ts";
import { ManualClock } from "../util/clock.ts";
import { FileSlice } from "./file-slice.ts";
import { DEFAULT_LOG_CONFIG } from "./log-config.ts";
import { cachedReads, coldReadCount, looksCached } from "./page-cache.ts";
import { PartitionLog } from "./partition-log.ts";
import {
  evictFromPageCache,
  fillLog,
  LogModel,
  makeTempDir,
  T0,
  tempLogs,
} from "./test-support.ts";

const { dirs, logs } = tempLogs();

function filledLog(): { log: PartitionLog; dir: string; segmentFiles: () => string[] } {
  const root = makeTempDir("cold");
  dirs.push(root);
  const dir = join(root, "topic-0");
  const log = PartitionLog.open({
    dir,
    config: { ...DEFAULT_LOG_CONFIG, segmentBytes: 256 * 1024, indexIntervalBytes: 4096 },
    clock: new ManualClock(T0),
  });
  logs.push(log);
  fillLog(log, new LogModel(), 4, 7);
  const segmentFiles = () =>
    readdirSync(dir)
      .filter((name) => name.endsWith(".log"))
      .map((name) => join(dir, name));
  return { log, dir, segmentFiles };
}

function evictAll(paths: string[]): void {
  for (const path of paths) evictFromPageCache(path);
}

function sliceOf(log: PartitionLog, deferFromBytes = 1): FileSlice {
  const read = log.readDeferred(0, 1 << 30, { minOneBatch: true, deferFromBytes });
  if (!read.ok || !(read.records instanceof FileSlice)) throw new Error("Expected a slice");
  return read.records;
}

function wholeLog(log: PartitionLog): Uint8Array {
  const read = log.read(0, 1 << 30, { minOneBatch: true });
  if (!read.ok) throw new Error("Expected the whole log");
  return read.records;
}

describe("storage: cold reads", () => {
  test("storage: cold reads: the reader is there where the broker ships (Bun on Linux)", () => {
    if (process.platform === "linux" && process.versions.bun !== undefined)
      expect(cachedReads()).not.toBeNull();
  });

  test("storage: cold reads: an evicted segment is seen as not cached; a read brings it back", () => {
    const { log, segmentFiles } = filledLog();
    const files = segmentFiles();
    expect(files.length).toBeGreaterThan(1);
    const whole = wholeLog(log);
    const fd = openSync(files[0]!, "r");
    try {
      expect(looksCached(fd, 0, 4096)).toBe(true);
      evictAll(files);
      expect(looksCached(fd, 0, 4096)).toBe(false);
      expect(cachedReads()!(fd, new Uint8Array(4096), 0, 4096, 0)).toBe(0);
      // A read that waits (as recovery and compaction do) fills the cache again.
      expect(wholeLog(log)).toEqual(whole);
      expect(looksCached(fd, 0, 4096)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });

  test("storage: cold reads: a slice over evicted files reads nothing cached and everything later, in order", async () => {
    const { log, segmentFiles } = filledLog();
    const whole = wholeLog(log);
    const slice = sliceOf(log);
    evictAll(segmentFiles());
    const before = coldReadCount();
    const parts: Uint8Array[] = [];
    let sent = 0;
    while (sent < slice.byteLength) {
      const want = Math.min(100_000, slice.byteLength - sent);
      const cached = slice.nextCached(want);
      const piece = cached ?? (await slice.nextLater(want));
      expect(piece.byteLength).toBeGreaterThan(0);
      expect(piece.byteLength).toBeLessThanOrEqual(want);
      parts.push(piece);
      sent += piece.byteLength;
    }
    expect(Buffer.concat(parts)).toEqual(Buffer.from(whole));
    // The thread pool read what the cache lacked; readahead may have brought some back.
    expect(coldReadCount()).toBeGreaterThan(before);
  });

  test("storage: cold reads: sendfile is not offered for bytes the cache lacks", () => {
    const { log, segmentFiles } = filledLog();
    const slice = sliceOf(log);
    slice.next(1); // sendWith needs the counted mean batch size first
    evictAll(segmentFiles());
    let calls = 0;
    const sent = slice.sendWith(() => {
      calls++;
      return 1;
    }, slice.byteLength - 1);
    expect(sent).toBeNull();
    expect(calls).toBe(0);
    slice.release();
  });

  test("storage: cold reads: released during a thread-pool read, the slice closes its files when the read ends", async () => {
    const { log, segmentFiles } = filledLog();
    const slice = sliceOf(log);
    evictAll(segmentFiles());
    const reading = slice.nextLater(64 * 1024);
    slice.release(); // deferred: the read still uses a descriptor
    await expect(reading).rejects.toThrow("released while it was read");
    expect(() => slice.next(1)).toThrow("released");
  });

  test("storage: cold reads: a fetch below the deferring size over evicted files is answered as a slice with the same bytes", () => {
    const { log, segmentFiles } = filledLog();
    // Finding the first batch reads up to index.interval.bytes where the fetch starts,
    // waiting for the disk (with the kernel's readahead); the bytes past that are what
    // the cache lacks here.
    const maxBytes = 250 * 1024;
    const hot = log.readDeferred(0, maxBytes, { minOneBatch: true, deferFromBytes: 1 << 20 });
    if (!hot.ok) throw new Error("Expected batches");
    expect(hot.records).toBeInstanceOf(Uint8Array);
    expect(hot.records.byteLength).toBeGreaterThan(200 * 1024);
    evictAll(segmentFiles());
    const cold = log.readDeferred(0, maxBytes, { minOneBatch: true, deferFromBytes: 1 << 20 });
    if (!cold.ok) throw new Error("Expected batches");
    expect(cold.records).toBeInstanceOf(FileSlice);
    expect(materialize(cold.records as FileSlice)).toEqual(
      new Uint8Array(hot.records as Uint8Array),
    );
  });
});
