/**
 * Storage benchmark: read-at-offset and append on a small (20 MB) and a large (2 GB by
 * default) partition log, to check DESIGN.md principle 2: both cost the same at any log
 * size. A script, not a test:
 *
 *   npx bun test/bench/storage-read.bench.ts [--big-gb N] [--reads N] [--appends N] [--dir PATH]
 *
 * Both logs are made of identical 1 MiB batches (1024 records of ~1 KiB), written
 * quickly by appending one prepared batch again and again (append stamps it in place),
 * in 128 MiB segments. Figures per operation:
 *
 * - locate: read(offset, 0, minOneBatch false): segment search, index lookup, header
 *   scan; returns nothing.
 * - read: read(offset, 64 KiB, minOneBatch true): the same plus copying the 1 MiB batch
 *   that holds the offset out of the page cache.
 * - raw pread: one readSync of 1 MiB at a random batch position of the same files; the
 *   machine's limit for "read one batch" (the figure `read` is set beside).
 * - append: append of one 1 MiB batch (validation with CRC, stamping, write, indexes).
 * - raw write: one writeSync of 1 MiB at the end of a file beside each log; the
 *   machine's limit for appending (the figure `append` is set beside).
 *
 * Each figure is printed for both logs with the large/small ratio; a ratio near 1 is the
 * point. The data is deleted afterwards. Figures never fail anything.
 *
 * `run.ts` reuses this: `setupStorageRead` builds both logs once, `measureStorageRead`
 * takes one set of figures (the harness calls it for a warm-up and each counted run).
 */
import { Buffer } from "node:buffer";
import {
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBatch } from "../../src/protocol/record-batch-builder.ts";
import { setLogLevel } from "../../src/util/log.ts";
import { systemClock } from "../../src/util/clock.ts";
import {
  DEFAULT_LOG_CONFIG,
  type LogConfig,
  PartitionLog,
} from "../../src/storage/partition-log.ts";

const MIB = 1024 * 1024;
const RECORDS_PER_BATCH = 1024;
const VALUE_BYTES = 1000;
const SMALL_BYTES = 20 * 1000 * 1000;

function argument(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} needs a positive number`);
  return value;
}

function stringArgument(name: string): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? null : (process.argv[i + 1] ?? null);
}

const config: LogConfig = {
  ...DEFAULT_LOG_CONFIG,
  segmentBytes: 128 * MIB,
  maxMessageBytes: 2 * MIB,
};

/** Deterministic LCG so both logs see the same kind of offset sequence. */
function seeded(seed: number): (bound: number) => number {
  let state = seed >>> 0;
  return (bound) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 4294967296) * bound);
  };
}

function makeTemplate(): Buffer {
  const value = Buffer.alloc(VALUE_BYTES, 120);
  return buildBatch({
    baseTimestamp: systemClock.nowMs(),
    records: Array.from({ length: RECORDS_PER_BATCH }, (_, i) => ({
      key: `key-${i}`,
      value,
      headers: [],
      timestampDelta: i,
    })),
  });
}

export interface Figures {
  meanUs: number;
  p50Us: number;
  p99Us: number;
}

function measure(count: number, run: (i: number) => void): Figures {
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    run(i);
    samples[i] = (performance.now() - start) * 1000;
  }
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const sample of samples) sum += sample;
  return {
    meanUs: sum / count,
    p50Us: sorted[Math.floor(count * 0.5)]!,
    p99Us: sorted[Math.min(count - 1, Math.floor(count * 0.99))]!,
  };
}

export interface Built {
  log: PartitionLog;
  seconds: number;
}

function build(dir: string, bytes: number, template: Buffer): Built {
  const log = PartitionLog.open({ dir, config, clock: systemClock });
  const start = performance.now();
  while (log.sizeBytes() < bytes) {
    const result = log.append(template, { leaderEpoch: 0 });
    if (!result.ok) throw new Error(`Append failed: ${result.message}`);
  }
  log.flush();
  return { log, seconds: (performance.now() - start) / 1000 };
}

function rawPread(
  dir: string,
  batchBytes: number,
  count: number,
  random: (bound: number) => number,
): Figures {
  const files = readdirSync(dir).filter((name) => name.endsWith(".log")).sort();
  const fds = files.map((name) => openSync(join(dir, name), "r"));
  // Whole batches per file: every segment holds only template-sized batches.
  const batches = fds.map((fd) => Math.floor(fstatSync(fd).size / batchBytes));
  const total = batches.reduce((sum, n) => sum + n, 0);
  try {
    return measure(count, () => {
      let pick = random(total);
      let file = 0;
      while (pick >= batches[file]!) pick -= batches[file++]!;
      const buffer = Buffer.allocUnsafe(batchBytes);
      readSync(fds[file]!, buffer, 0, batchBytes, pick * batchBytes);
    });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

function rawWrite(dir: string, batch: Buffer, count: number): Figures {
  const fd = openSync(join(dir, "raw-write.bin"), "w");
  let position = 0;
  try {
    return measure(count, () => {
      writeSync(fd, batch, 0, batch.byteLength, position);
      position += batch.byteLength;
    });
  } finally {
    closeSync(fd);
  }
}

function show(name: string, small: Figures, big: Figures): void {
  const us = (value: number) => value.toFixed(1).padStart(8);
  const cell = (f: Figures) => `${us(f.meanUs)} µs mean ${us(f.p50Us)} p50 ${us(f.p99Us)} p99`;
  const ratio = (big.meanUs / small.meanUs).toFixed(2);
  console.log(`${name.padEnd(10)} small ${cell(small)} | large ${cell(big)} | ratio ${ratio}`);
}

export interface StorageReadSetup {
  root: string;
  small: Built;
  big: Built;
  template: Buffer;
  close(): void;
}

/** Builds the small (20 MB) and the large log in a fresh directory under `parent`. */
export function setupStorageRead(options: { bigBytes: number; parent?: string }): StorageReadSetup {
  setLogLevel("warn");
  const root = mkdtempSync(join(options.parent ?? tmpdir(), "brook-bench-storage-"));
  try {
    const template = makeTemplate();
    const small = build(join(root, "small-0"), SMALL_BYTES, template);
    const big = build(join(root, "big-0"), options.bigBytes, template);
    return {
      root, small, big, template,
      close() {
        small.log.close();
        big.log.close();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

export interface StorageReadFigures {
  small: { locate: Figures; read: Figures; rawPread: Figures; append: Figures; rawWrite: Figures };
  big: { locate: Figures; read: Figures; rawPread: Figures; append: Figures; rawWrite: Figures };
}

/** One set of figures on logs from setupStorageRead; appends grow both logs. */
export function measureStorageRead(setup: StorageReadSetup, options: { reads: number; appends: number }): StorageReadFigures {
  const { reads, appends } = options;
  const { template, small, big } = setup;
  const batchBytes = template.byteLength;
  const figures = (log: PartitionLog, seed: number) => {
    const end = log.logEndOffset;
    const random = seeded(seed);
    // Warm the page cache and the index cache the same way for both logs.
    for (let i = 0; i < Math.min(reads, 2000); i++) {
      log.read(random(end), 0, { minOneBatch: false });
    }
    const locate = measure(reads, () => {
      const read = log.read(random(end), 0, { minOneBatch: false });
      if (!read.ok) throw new Error("Read failed");
    });
    const read = measure(reads, () => {
      const result = log.read(random(end), 64 * 1024, { minOneBatch: true });
      if (!result.ok || result.records.byteLength !== batchBytes) {
        throw new Error("Read returned the wrong batch");
      }
    });
    return { locate, read };
  };
  const smallFigures = figures(small.log, 1);
  const bigFigures = figures(big.log, 1);
  const smallRaw = rawPread(small.log.dir, batchBytes, reads, seeded(2));
  const bigRaw = rawPread(big.log.dir, batchBytes, reads, seeded(2));
  const appendFigures = (log: PartitionLog) =>
    measure(appends, () => {
      const result = log.append(template, { leaderEpoch: 0 });
      if (!result.ok) throw new Error(`Append failed: ${result.message}`);
    });
  const smallAppend = appendFigures(small.log);
  const smallWrite = rawWrite(small.log.dir, template, appends);
  const bigAppend = appendFigures(big.log);
  const bigWrite = rawWrite(big.log.dir, template, appends);
  return {
    small: { ...smallFigures, rawPread: smallRaw, append: smallAppend, rawWrite: smallWrite },
    big: { ...bigFigures, rawPread: bigRaw, append: bigAppend, rawWrite: bigWrite },
  };
}

function main(): void {
  const bigGb = argument("big-gb", 2);
  const reads = argument("reads", 20_000);
  const appends = argument("appends", 100);
  const bigBytes = Math.round(bigGb * 1024 * MIB);
  const setup = setupStorageRead({ bigBytes, parent: stringArgument("dir") ?? undefined });
  try {
    const { small, big, template } = setup;
    const segmentMib = config.segmentBytes / MIB;
    console.log(
      `storage bench: batch ${template.byteLength} bytes (${RECORDS_PER_BATCH} records), ` +
        `segments ${segmentMib} MiB`,
    );
    const bigGib = (bigBytes / 1024 / MIB).toFixed(2);
    console.log(`data in ${setup.root}; large log ${bigGib} GiB, ${reads} reads, ${appends} appends`);
    const described = (built: Built) =>
      `${built.log.segmentCount()} segment(s), ${built.log.logEndOffset} records ` +
      `in ${built.seconds.toFixed(2)} s`;
    const rate = (bigBytes / MIB / big.seconds).toFixed(0);
    console.log(`built small: ${described(small)}; large: ${described(big)} (${rate} MiB/s)`);

    const f = measureStorageRead(setup, { reads, appends });
    console.log("");
    show("locate", f.small.locate, f.big.locate);
    show("read", f.small.read, f.big.read);
    show("raw pread", f.small.rawPread, f.big.rawPread);
    show("append", f.small.append, f.big.append);
    show("raw write", f.small.rawWrite, f.big.rawWrite);
    const versus = (ours: Figures, limit: Figures) => (ours.meanUs / limit.meanUs).toFixed(2);
    console.log(
      `\nagainst the machine's limit: read/raw pread ` +
        `small ${versus(f.small.read, f.small.rawPread)}x, large ${versus(f.big.read, f.big.rawPread)}x; ` +
        `append/raw write small ${versus(f.small.append, f.small.rawWrite)}x, ` +
        `large ${versus(f.big.append, f.big.rawWrite)}x`,
    );
  } finally {
    setup.close();
  }
}

if (import.meta.main) main();
