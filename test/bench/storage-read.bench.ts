/**
 * Storage benchmark: read-at-offset and append on a smaller (1 GB by default) and a
 * larger (20 GB by default; GB = 10^9 bytes, as the issue names them) partition log, to check docs/architecture.md, principle 2: both cost the
 * same at any log size (the "backlog and size": the ratio must be about 1). A
 * script, not a test:
 *
 *   npx bun test/bench/storage-read.bench.ts [--small-gb N] [--big-gb N] [--reads N] [--appends N] [--dir PATH]
 *
 * Both logs are made of identical 1 MiB batches (1024 records of ~1 KiB), written as
 * fast as the disk takes them by appending one prepared batch again and again through
 * PartitionLog.append (append stamps it in place), in 128 MiB segments; the larger log
 * first, then the smaller, then every file is fsynced so no writeback from building is
 * left to slow the append figures. When the filesystem has less free than the larger log
 * plus 10 GiB of headroom, the larger log is not built (the script says so).
 *
 * Figures per operation:
 *
 * - locate: read(offset, 0, minOneBatch false): segment search, index lookup, header
 *   scan; returns nothing.
 * - read: read(offset, 64 KiB, minOneBatch true): the same plus copying the 1 MiB batch
 *   that holds the offset out of the page cache (or the disk, for what is not cached).
 * - raw pread: one readSync of 1 MiB at a random batch position of the same files; the
 *   machine's limit for "read one batch" (the figure `read` is set beside). Each of the
 *   three reads alternates between the two logs, read by read, so both see the same CPU
 *   caches: read alone, the smaller log stays partly in a last-level cache as large as
 *   this VM's (480 MiB), and its figures then measure the cache size, not the log's.
 * - append: append of one 1 MiB batch (validation with CRC, stamping, write, indexes),
 *   within the active segment: before measuring, unmeasured appends roll the segment
 *   when the measured ones would not fit, so no roll (which fsyncs the sealed segment, a
 *   cost per segment written whatever the log's size) falls inside the figure.
 * - raw write: one writeSync of 1 MiB at the end of a file beside each log (a file kept
 *   across runs, so every write takes fresh pages as an append does); the machine's
 *   limit for appending (the figure `append` is set beside). Appends to both logs and the
 *   raw writes are interleaved one by one, so all four see the same page cache: once the
 *   logs fill RAM every new page is one the kernel must first reclaim, which makes both
 *   several times slower than with free memory.
 *
 * Each figure is printed for both logs with the larger/smaller ratio; a ratio near 1 is
 * the point. How much of each log is in the page cache (fincore, when installed) is
 * printed too, and how much was read back from disk after eviction during the reads
 * (/proc/vmstat, machine-wide): with less RAM than the logs, random reads partly hit the disk,
 * which raw pread shows as well. The data is deleted afterwards. Figures never fail
 * anything.
 *
 * `run.ts` reuses this: `setupStorageRead` builds both logs once, `measureStorageRead`
 * takes one set of figures (the harness calls it for a warm-up and each counted run).
 */
import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
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
import { diskShortfall } from "./machine.ts";

const MIB = 1024 * 1024;
const RECORDS_PER_BATCH = 1024;
const VALUE_BYTES = 1000;
/** x86-64 and arm64 Linux as usually configured; only scales the refault figure. */
const PAGE_BYTES = 4096;

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

/** Mean, p50 and p99 of samples in µs. */
function figuresOf(samples: Float64Array): Figures {
  const count = samples.length;
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

/** One readSync of a whole batch at a random batch position of the log's files, per call. */
function rawPreader(
  dir: string,
  batchBytes: number,
  random: (bound: number) => number,
): { read(): void; close(): void } {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith(".log"))
    .sort();
  const fds = files.map((name) => openSync(join(dir, name), "r"));
  // Whole batches per file: every segment holds only template-sized batches.
  const batches = fds.map((fd) => Math.floor(fstatSync(fd).size / batchBytes));
  const total = batches.reduce((sum, n) => sum + n, 0);
  return {
    read() {
      let pick = random(total);
      let file = 0;
      while (pick >= batches[file]!) pick -= batches[file++]!;
      const buffer = Buffer.allocUnsafe(batchBytes);
      readSync(fds[file]!, buffer, 0, batchBytes, pick * batchBytes);
    },
    close() {
      for (const fd of fds) closeSync(fd);
    },
  };
}

/**
 * Writes of `batch` to raw-write.bin beside the log, always at its end (O_APPEND, kept
 * across runs): every write needs fresh page-cache pages, as an append does, rather than
 * reusing the pages of a truncated file.
 */
function rawWriter(dir: string, batch: Buffer): { write(): void; close(): void } {
  const fd = openSync(join(dir, "raw-write.bin"), "a");
  return {
    write() {
      writeSync(fd, batch, 0, batch.byteLength);
    },
    close() {
      closeSync(fd);
    },
  };
}

/**
 * Times `count` rounds of `ops`, each round running every op once in turn, so all of
 * them see the same moment of the machine (page cache, writeback); one Figures per op.
 */
function measureRounds(count: number, ops: readonly (() => void)[]): Figures[] {
  const samples = ops.map(() => new Float64Array(count));
  for (let i = 0; i < count; i++) {
    for (const [k, op] of ops.entries()) {
      const start = performance.now();
      op();
      samples[k]![i] = (performance.now() - start) * 1000;
    }
  }
  return samples.map(figuresOf);
}

/**
 * Pages read back into the page cache after having been evicted, machine-wide, so far
 * (/proc/vmstat workingset_refault_file; workingset_refault before Linux 5.9), in
 * bytes; null when not available.
 */
function refaultedBytes(): number | null {
  try {
    const vmstat = readFileSync("/proc/vmstat", "utf8");
    const match =
      /^workingset_refault_file (\d+)$/m.exec(vmstat) ?? /^workingset_refault (\d+)$/m.exec(vmstat);
    return match === null ? null : Number(match[1]) * PAGE_BYTES;
  } catch {
    return null;
  }
}

function show(name: string, small: Figures, big: Figures | null): void {
  const us = (value: number) => value.toFixed(1).padStart(8);
  const cell = (f: Figures) => `${us(f.meanUs)} µs mean ${us(f.p50Us)} p50 ${us(f.p99Us)} p99`;
  if (big === null) {
    console.log(`${name.padEnd(10)} smaller ${cell(small)}`);
    return;
  }
  const ratio = (big.meanUs / small.meanUs).toFixed(2);
  console.log(`${name.padEnd(10)} smaller ${cell(small)} | larger ${cell(big)} | ratio ${ratio}`);
}

/** fsyncs every file of a log directory: what building left dirty is on disk after. */
function fsyncDir(dir: string): void {
  for (const name of readdirSync(dir)) {
    const fd = openSync(join(dir, name), "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * The share of a log's .log files that is in the page cache now (0..1), from util-linux
 * `fincore`; null when fincore is not installed or says nothing usable.
 */
export function pageCacheShare(dir: string): number | null {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith(".log"))
    .map((name) => join(dir, name));
  if (files.length === 0) return null;
  const result = spawnSync(
    "fincore",
    ["--bytes", "--noheadings", "--raw", "--output", "RES,SIZE", ...files],
    { encoding: "utf8" },
  );
  if (result.status !== 0 || typeof result.stdout !== "string") return null;
  let resident = 0;
  let size = 0;
  for (const line of result.stdout.trim().split("\n")) {
    const [res, total] = line.trim().split(/\s+/).map(Number);
    if (!Number.isFinite(res) || !Number.isFinite(total)) return null;
    resident += res!;
    size += total!;
  }
  return size > 0 ? resident / size : null;
}

export interface StorageReadSetup {
  root: string;
  small: Built;
  /** null when it was not built (too little free disk; see `bigMissing`). */
  big: Built | null;
  /** Why the larger log was not built ("not measured: only N GiB free …"), else null. */
  bigMissing: string | null;
  template: Buffer;
  close(): void;
}

/**
 * Builds the larger log, then the smaller one (so the smaller is the more recently
 * written, should the page cache not hold both), in a fresh directory under `parent`,
 * and fsyncs both. The larger log is built only when its size plus 10 GiB of headroom is
 * free on the filesystem; `close()` closes both and removes the directory.
 */
export function setupStorageRead(options: {
  smallBytes: number;
  bigBytes: number;
  parent?: string;
}): StorageReadSetup {
  setLogLevel("warn");
  const root = mkdtempSync(join(options.parent ?? tmpdir(), "brook-bench-storage-"));
  const opened: Built[] = [];
  try {
    const template = makeTemplate();
    const bigMissing = diskShortfall(root, options.bigBytes + options.smallBytes);
    let big: Built | null = null;
    if (bigMissing === null) {
      big = build(join(root, "big-0"), options.bigBytes, template);
      opened.push(big);
    }
    const small = build(join(root, "small-0"), options.smallBytes, template);
    opened.push(small);
    for (const built of opened) fsyncDir(built.log.dir);
    return {
      root,
      small,
      big,
      bigMissing,
      template,
      close() {
        for (const built of opened) built.log.close();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    for (const built of opened) built.log.close();
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

export interface LogFigures {
  locate: Figures;
  read: Figures;
  rawPread: Figures;
  append: Figures;
  rawWrite: Figures;
  /** Share of the log's files in the page cache before this set of figures (fincore), or null. */
  cachedShare: number | null;
  /**
   * Bytes read back from disk after eviction while the reads ran (locate, read, raw
   * pread of both logs, interleaved), machine-wide; null when /proc/vmstat does not say.
   */
  refaultedBytes: number | null;
}

export interface StorageReadFigures {
  small: LogFigures;
  big: LogFigures | null;
}

/**
 * One set of figures on logs from setupStorageRead: reads of both logs, interleaved read
 * by read, then appends to both logs and raw writes beside them, interleaved write by
 * write. Appends grow both
 * logs, raw writes grow a file beside each.
 */
export function measureStorageRead(
  setup: StorageReadSetup,
  options: { reads: number; appends: number },
): StorageReadFigures {
  const { reads, appends } = options;
  const { template, small, big } = setup;
  const batchBytes = template.byteLength;
  const logs = big === null ? [small] : [small, big];
  const cachedShares = logs.map((built) => pageCacheShare(built.log.dir));
  // Reads of both logs interleaved round by round, as the appends below are, so both
  // logs see the same moment of the machine, and the same CPU caches: read alone, the
  // 1 GB log partly stays in a large last-level cache (480 MiB on this VM), which a
  // broker with other partitions and traffic would not enjoy.
  const refaultsBefore = refaultedBytes();
  const readers = logs.map((built) => {
    const log = built.log;
    const end = log.logEndOffset;
    const random = seeded(1);
    const raw = rawPreader(log.dir, batchBytes, seeded(2));
    return {
      locate: () => {
        const read = log.read(random(end), 0, { minOneBatch: false });
        if (!read.ok) throw new Error("Read failed");
      },
      read: () => {
        const result = log.read(random(end), 64 * 1024, { minOneBatch: true });
        if (!result.ok || result.records.byteLength !== batchBytes)
          throw new Error("Read returned the wrong batch");
      },
      rawPread: raw.read,
      close: raw.close,
    };
  });
  let readsOf: Omit<LogFigures, "append" | "rawWrite" | "cachedShare">[];
  try {
    // Warm the page cache and the index cache the same way for both logs.
    for (let i = 0; i < Math.min(reads, 2000); i++) for (const reader of readers) reader.locate();
    const locate = measureRounds(
      reads,
      readers.map((reader) => reader.locate),
    );
    const read = measureRounds(
      reads,
      readers.map((reader) => reader.read),
    );
    const rawPread = measureRounds(
      reads,
      readers.map((reader) => reader.rawPread),
    );
    const refaultsAfter = refaultedBytes();
    const refaulted =
      refaultsBefore === null || refaultsAfter === null ? null : refaultsAfter - refaultsBefore;
    readsOf = readers.map((_, i) => ({
      locate: locate[i]!,
      read: read[i]!,
      rawPread: rawPread[i]!,
      refaultedBytes: refaulted,
    }));
  } finally {
    for (const reader of readers) reader.close();
  }

  const appendOne = (log: PartitionLog) => {
    const result = log.append(template, { leaderEpoch: 0 });
    if (!result.ok) throw new Error(`Append failed: ${result.message}`);
  };
  // Unmeasured appends until the measured ones fit in each active segment: a roll seals
  // (fsyncs) the full segment, a cost per segment written, not per log size, that would
  // otherwise land in some runs' means and not in others'.
  for (const { log } of logs) {
    const room = () => config.segmentBytes - log.segments().at(-1)!.sizeBytes;
    if (appends * batchBytes <= config.segmentBytes) {
      while (room() < appends * batchBytes) appendOne(log);
    }
  }
  const writers = logs.map((built) => rawWriter(built.log.dir, template));
  let writes: Figures[];
  try {
    // Per round: append to the smaller log, raw write beside it, the same for the larger.
    writes = measureRounds(
      appends,
      logs.flatMap((built, i) => [() => appendOne(built.log), () => writers[i]!.write()]),
    );
  } finally {
    for (const writer of writers) writer.close();
  }
  const figuresOf = (i: number): LogFigures => ({
    ...readsOf[i]!,
    append: writes[2 * i]!,
    rawWrite: writes[2 * i + 1]!,
    cachedShare: cachedShares[i]!,
  });
  return { small: figuresOf(0), big: big === null ? null : figuresOf(1) };
}

function main(): void {
  const smallGb = argument("small-gb", 1);
  const bigGb = argument("big-gb", 20);
  const reads = argument("reads", 20_000);
  const appends = argument("appends", 100);
  const smallBytes = Math.round(smallGb * 1e9);
  const bigBytes = Math.round(bigGb * 1e9);
  const setup = setupStorageRead({
    smallBytes,
    bigBytes,
    parent: stringArgument("dir") ?? undefined,
  });
  try {
    const { small, big, template } = setup;
    const segmentMib = config.segmentBytes / MIB;
    console.log(
      `storage bench: batch ${template.byteLength} bytes (${RECORDS_PER_BATCH} records), ` +
        `segments ${segmentMib} MiB`,
    );
    const gib = (bytes: number) => `${(bytes / 1024 / MIB).toFixed(2)} GiB`;
    console.log(
      `data in ${setup.root}; logs ${gib(smallBytes)} and ${gib(bigBytes)}, ${reads} reads, ${appends} appends`,
    );
    const described = (built: Built, bytes: number) =>
      `${built.log.segmentCount()} segment(s), ${built.log.logEndOffset} records ` +
      `in ${built.seconds.toFixed(2)} s (${(bytes / MIB / built.seconds).toFixed(0)} MiB/s)`;
    console.log(`built smaller: ${described(small, smallBytes)}`);
    console.log(
      big === null ? `larger: ${setup.bigMissing}` : `built larger: ${described(big, bigBytes)}`,
    );

    const f = measureStorageRead(setup, { reads, appends });
    const share = (value: number | null) =>
      value === null ? "unknown (no fincore)" : `${(value * 100).toFixed(0)}%`;
    const refaulted = (value: number | null) =>
      value === null ? "unknown" : `${(value / MIB).toFixed(0)} MiB`;
    console.log(
      `in page cache before measuring: smaller ${share(f.small.cachedShare)}` +
        (f.big === null ? "" : `, larger ${share(f.big.cachedShare)}`),
    );
    console.log(
      `read back from disk after eviction during the reads (machine-wide): smaller ${refaulted(f.small.refaultedBytes)}` +
        (f.big === null ? "" : `, larger ${refaulted(f.big.refaultedBytes)}`),
    );
    console.log("");
    show("locate", f.small.locate, f.big?.locate ?? null);
    show("read", f.small.read, f.big?.read ?? null);
    show("raw pread", f.small.rawPread, f.big?.rawPread ?? null);
    show("append", f.small.append, f.big?.append ?? null);
    show("raw write", f.small.rawWrite, f.big?.rawWrite ?? null);
    const versus = (ours: Figures, limit: Figures) => (ours.meanUs / limit.meanUs).toFixed(2);
    const large = (pick: (figures: LogFigures) => string) =>
      f.big === null ? "" : `, larger ${pick(f.big)}x`;
    console.log(
      `\nagainst the machine's limit: read/raw pread ` +
        `smaller ${versus(f.small.read, f.small.rawPread)}x${large((g) => versus(g.read, g.rawPread))}; ` +
        `append/raw write smaller ${versus(f.small.append, f.small.rawWrite)}x${large((g) => versus(g.append, g.rawWrite))}`,
    );
  } finally {
    setup.close();
  }
}

if (import.meta.main) main();
