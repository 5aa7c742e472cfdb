/**
 * Owns the partition logs of this node: opens them at start, creates and deletes them
 * as the metadata image changes, wakes long-polling fetches when an append lands or a
 * high watermark moves, and keeps the data dir's checkpoints. Directory per partition:
 * `<data-dir>/<topic>-<partition>` (docs/storage.md, "Data directory").
 *
 * Two modes. Single node (the default): every append moves a log's high watermark to its
 * end. `replicated`: appends (`append` on a leader, `appendReplicated` on a follower)
 * leave it, and replication moves it with `setHighWatermark` once records are committed;
 * at start each log's high watermark comes back from the high-watermark checkpoint.
 *
 * Lifecycle: the constructor reads `<data-dir>/checkpoints/` (recovery points, log start
 * offsets, high watermarks when replicated, the clean-shutdown marker); logs opened while
 * the metadata log is replayed use them. `startupComplete` removes the marker (from then
 * on a crash is unclean) and writes fresh checkpoints. `tick`, driven by the node's one timer, runs flush.ms,
 * retention, compaction (a budget of bytes per tick for the dirtiest due log, one log at
 * a time as Kafka's single cleaner thread), delayed file deletion and checkpoint writes. `close` closes every log, then
 * writes the checkpoints and the marker, so the next start verifies nothing.
 *
 * Each partition directory holds Kafka's `partition.metadata` (the topic id), written
 * when the directory is created, so that replaying "create A, delete A, create A again"
 * at start never deletes the directory of the later topic A (directories are named by
 * topic name, not id).
 *
 * Invariants:
 * - a log exists here exactly for each partition of the image that names this node as a
 *   replica;
 * - the clean-shutdown marker exists only between a completed `close` and the next
 *   `startupComplete`: never while a log can take an append.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { MetadataImage, MetadataRecord } from "../cluster/metadata-image.ts";
import { logConfigFromOverrides } from "../cluster/topic-config.ts";
import { assert } from "../util/assert.ts";
import type { Clock } from "../util/clock.ts";
import { logger } from "../util/log.ts";
import {
  CLEAN_SHUTDOWN_MARKER,
  type CheckpointEntry,
  HIGH_WATERMARK_CHECKPOINT,
  LOG_START_CHECKPOINT,
  RECOVERY_POINT_CHECKPOINT,
  readCheckpoint,
  writeCheckpoint,
  writeCheckpointInBackground,
  writeFileAtomically,
} from "./checkpoint.ts";
import {
  type AppendResult,
  type DeleteRecordsResult,
  PartitionLog,
  type PartitionLogOptions,
  type ReplicatedAppendResult,
} from "./partition-log.ts";
import type { CleanerOptions } from "./compaction.ts";
import { CLEANER_BYTES_PER_TICK } from "./limits.ts";
import type { LogConfig } from "./log-config.ts";
import {
  DELETED_DIR_SUFFIX,
  removeInBackground,
  StorageIoError,
  syncDirectory,
} from "./segment-files.ts";
import { SegmentCache } from "./segment-cache.ts";

const log = logger("log-manager");

export type { RecordsErrorKind as AppendErrorKind } from "../protocol/record-batch.ts";

export const CHECKPOINTS_DIR = "checkpoints";
/** Kafka's file naming the topic id a partition directory belongs to. */
export const PARTITION_METADATA_FILE = "partition.metadata";
/** Kafka's log.retention.check.interval.ms is 5 minutes; Brook checks more often. */
export const RETENTION_CHECK_INTERVAL_MS_DEFAULT = 5_000;
/**
 * How often changed recovery points are checkpointed (Kafka's
 * log.flush.offset.checkpoint.interval.ms is 60 s). A stale one only costs recovery
 * time: it never runs ahead of what was fsynced.
 */
export const CHECKPOINT_INTERVAL_MS_DEFAULT = 5_000;

/** Waiters per log; bounded by the number of in-flight fetches, each bounded per connection. */
type Waiter = () => void;

interface PartitionId {
  topic: string;
  partition: number;
  topicId: string;
}

export interface LogManagerOptions {
  dataDir: string;
  nodeId: number;
  clock: Clock;
  image: MetadataImage;
  /** log.retention.check.interval.ms: least time between two retention passes. */
  retentionCheckIntervalMs?: number;
  /** Least time between two writes of changed recovery points. */
  checkpointIntervalMs?: number;
  /** Bytes the cleaner reads per tick at most (CLEANER_BYTES_PER_TICK). */
  cleanerBytesPerTick?: number;
  /** Bounds of each log's cleaner (tests lower them). */
  cleaner?: CleanerOptions;
  /**
   * Partitions are replicated: a log's high watermark is moved by `setHighWatermark`, not
   * by appends, and starts from the high-watermark checkpoint. Default false (one node).
   */
  replicated?: boolean;
}

/** What the checkpoints said about one log at construction. */
interface Checkpointed {
  recoveryPoint?: number;
  logStartOffset?: number;
  highWatermark?: number;
}

export class LogManager {
  readonly #dataDir: string;
  readonly #checkpointsDir: string;
  readonly #nodeId: number;
  readonly #clock: Clock;
  readonly #retentionCheckIntervalMs: number;
  readonly #checkpointIntervalMs: number;
  readonly #cleanerBytesPerTick: number;
  readonly #cleanerOptions: CleanerOptions;
  readonly #replicated: boolean;
  /** The log whose cleaning pass is under way, by key; null when none is. */
  #cleaning: string | null = null;
  readonly #logs = new Map<string, PartitionLog>();
  /** Topic and partition of each log, by key (checkpoints name them). */
  readonly #ids = new Map<string, PartitionId>();
  /** One bound on open files and cached indexes for all logs of this node. */
  readonly #cache = new SegmentCache();
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Topic names by id, so a removal (applied to the image first) finds its logs. */
  readonly #topicNames = new Map<string, string>();
  /** Checkpointed state read at construction, by key; used by logs opened at startup. */
  readonly #checkpointed = new Map<string, Checkpointed>();
  /** The last stop was clean (marker present), until `startupComplete`. */
  #cleanShutdown: boolean;
  #starting = true;
  /** Monotonic ms when the constructor ran, for the startup log line. */
  readonly #startedMs: number;
  /** Monotonic ms of the last retention pass, null before the first. */
  #lastRetentionMs: number | null = null;
  #lastCheckpointMs: number;
  /** Offsets as last written per checkpoint file, by key, to skip writes that change nothing. */
  readonly #written = new Map<string, ReadonlyMap<string, number>>();
  #leftoversRemoved: Promise<void> = Promise.resolve();
  /** Checkpoint writes waiting for the disk in the background, by file. */
  readonly #backgroundWrites = new Map<string, Promise<void>>();
  /** Per file, how many synchronous writes were made: a background one started before is stale. */
  readonly #generations = new Map<string, number>();
  #closed = false;

  constructor(options: LogManagerOptions) {
    this.#dataDir = options.dataDir;
    this.#checkpointsDir = join(options.dataDir, CHECKPOINTS_DIR);
    this.#nodeId = options.nodeId;
    this.#clock = options.clock;
    this.#retentionCheckIntervalMs =
      options.retentionCheckIntervalMs ?? RETENTION_CHECK_INTERVAL_MS_DEFAULT;
    this.#checkpointIntervalMs = options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS_DEFAULT;
    this.#cleanerBytesPerTick = options.cleanerBytesPerTick ?? CLEANER_BYTES_PER_TICK;
    this.#cleanerOptions = options.cleaner ?? {};
    this.#replicated = options.replicated ?? false;
    this.#startedMs = this.#clock.monotonicMs();
    this.#lastCheckpointMs = this.#startedMs;
    mkdirSync(this.#checkpointsDir, { recursive: true });
    this.#removeDeletedLogs();
    this.#cleanShutdown = existsSync(join(this.#checkpointsDir, CLEAN_SHUTDOWN_MARKER));
    this.#readCheckpoints();
    options.image.onApply((record, image) => this.#onMetadata(record, image));
  }

  /**
   * Directories of logs deleted before the last stop whose background removal did not
   * finish (PartitionLog.deleteAll) are removed, in the background again.
   */
  #removeDeletedLogs(): void {
    const leftovers = readdirSync(this.#dataDir)
      .filter((name) => name.endsWith(DELETED_DIR_SUFFIX))
      .map((name) => join(this.#dataDir, name));
    if (leftovers.length === 0) return;
    log.info("Removing the directories of logs deleted before the last stop", {
      count: leftovers.length,
    });
    this.#leftoversRemoved = removeInBackground(leftovers, (error) =>
      log.warn("Removing a deleted log's directory failed", { error: String(error) }),
    );
  }

  /** Resolves once the leftovers `#removeDeletedLogs` found are gone (tests). */
  deletedLogsRemoved(): Promise<void> {
    return this.#leftoversRemoved;
  }

  /** Whether the last run stopped cleanly (the clean-shutdown marker was found at start). */
  get startedAfterCleanShutdown(): boolean {
    return this.#cleanShutdown;
  }

  get checkpointsDir(): string {
    return this.#checkpointsDir;
  }

  key(topic: string, partition: number): string {
    return `${topic}-${partition}`;
  }

  get(topic: string, partition: number): PartitionLog | undefined {
    return this.#logs.get(this.key(topic, partition));
  }

  all(): ReadonlyMap<string, PartitionLog> {
    return this.#logs;
  }

  append(topic: string, partition: number, records: Uint8Array, leaderEpoch: number): AppendResult {
    const key = this.key(topic, partition);
    const partitionLog = this.#logs.get(key);
    if (partitionLog === undefined) throw new Error(`No log for ${key}`);
    const result = partitionLog.append(records, { leaderEpoch });
    // Followers long-poll on the log end, so an append wakes waiters even when the high
    // watermark stays (replicated): a woken consumer finds nothing new and waits again.
    if (result.ok) this.#wake(key);
    return result;
  }

  /**
   * A follower's append of the leader's batches as they are (PartitionLog.appendReplicated:
   * offsetMismatch unless they continue the log end). Wakes waiters like `append`.
   */
  appendReplicated(topic: string, partition: number, records: Uint8Array): ReplicatedAppendResult {
    const key = this.key(topic, partition);
    const partitionLog = this.#logs.get(key);
    if (partitionLog === undefined) throw new Error(`No log for ${key}`);
    const result = partitionLog.appendReplicated(records);
    if (result.ok && result.lastOffset >= result.baseOffset) this.#wake(key);
    return result;
  }

  /**
   * Replicated only: moves a log's high watermark forward (clamped to its log end; never
   * back, see PartitionLog.setHighWatermark) and answers it. Consumers long-poll on the
   * high watermark, so waiters are woken when it moves. It is checkpointed with the
   * others (every checkpoint interval, and on close).
   */
  setHighWatermark(topic: string, partition: number, offset: number): number {
    assert(
      this.#replicated,
      "The high watermark follows appends unless the log manager is replicated",
    );
    const key = this.key(topic, partition);
    const partitionLog = this.#logs.get(key);
    if (partitionLog === undefined) throw new Error(`No log for ${key}`);
    const before = partitionLog.highWatermark;
    const after = partitionLog.setHighWatermark(offset);
    if (after !== before) this.#wake(key);
    return after;
  }

  /**
   * DeleteRecords on one partition (`offset` already resolved: -1 means the high
   * watermark to the handler, not here). A moved log start is checkpointed at once, so
   * deleted records do not come back after a crash.
   */
  deleteRecords(topic: string, partition: number, offset: number): DeleteRecordsResult {
    const key = this.key(topic, partition);
    const partitionLog = this.#logs.get(key);
    if (partitionLog === undefined) throw new Error(`No log for ${key}`);
    const before = partitionLog.logStartOffset;
    const result = partitionLog.deleteRecordsBefore(offset);
    if (result.ok && result.logStartOffset !== before) this.#writeLogStarts(false, false);
    return result;
  }

  /**
   * Resolves true when one of the logs gets an append or its high watermark moves (or the
   * log is removed), false after `timeoutMs`.
   */
  waitForAppend(keys: readonly string[], timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (woken: boolean) => {
        if (timer !== undefined) clearTimeout(timer);
        for (const key of keys) this.#waiters.get(key)?.delete(wake);
        resolve(woken);
      };
      const wake = () => done(true);
      for (const key of keys) {
        let set = this.#waiters.get(key);
        if (set === undefined) this.#waiters.set(key, (set = new Set()));
        set.add(wake);
      }
      timer = setTimeout(() => done(false), timeoutMs);
    });
  }

  /**
   * Called once every log of the metadata image is open, before the node serves: from
   * here on a crash is an unclean stop. Removes the clean-shutdown marker and
   * checkpoints what the logs now say.
   */
  startupComplete(): void {
    if (!this.#starting) return;
    this.#starting = false;
    let scanned = 0;
    let bytesRead = 0;
    let truncatedBytes = 0;
    let segmentsDropped = 0;
    let segments = 0;
    for (const partitionLog of this.#logs.values()) {
      const report = partitionLog.openReport;
      scanned += report.segmentsScanned;
      bytesRead += report.bytesRead;
      truncatedBytes += report.truncatedBytes;
      segmentsDropped += report.segmentsDropped;
      segments += partitionLog.segmentCount();
    }
    // The image is final: every directory now names the topic id it belongs to
    // (directories from before partition.metadata existed get it here).
    for (const [key, partitionLog] of this.#logs) {
      const topicId = this.#ids.get(key)!.topicId;
      if (readTopicId(partitionLog.dir) !== topicId) writeTopicId(partitionLog.dir, topicId);
    }
    const marker = join(this.#checkpointsDir, CLEAN_SHUTDOWN_MARKER);
    if (this.#cleanShutdown) {
      unlinkSync(marker);
      syncDirectory(this.#checkpointsDir);
    }
    this.#writeCheckpoints(true);
    const how = this.#cleanShutdown ? "loaded after a clean" : "recovered after an unclean";
    log.info(`Logs ${how} shutdown`, {
      partitions: this.#logs.size,
      segments,
      segmentsScanned: scanned,
      bytesRead,
      truncatedBytes,
      segmentsDropped,
      ms: Math.round(this.#clock.monotonicMs() - this.#startedMs),
    });
    this.#cleanShutdown = false;
    this.#checkpointed.clear();
  }

  /**
   * The cleaner's periodic work, driven by the node's timer: flush.ms, retention (at
   * most every retention check interval), removal of deleted segments' files after
   * file.delete.delay.ms, and checkpoints. A storage I/O failure is logged per log and
   * retried on the next tick.
   */
  tick(): void {
    if (this.#closed || this.#starting) return;
    const nowMs = this.#clock.monotonicMs();
    const sinceRetentionMs = nowMs - (this.#lastRetentionMs ?? Number.NEGATIVE_INFINITY);
    const retentionDue = sinceRetentionMs >= this.#retentionCheckIntervalMs;
    if (retentionDue) this.#lastRetentionMs = nowMs;
    let logStartMoved = false;
    for (const [key, partitionLog] of this.#logs) {
      try {
        partitionLog.maybeFlush();
        if (retentionDue) {
          const before = partitionLog.logStartOffset;
          partitionLog.applyRetention();
          if (partitionLog.logStartOffset !== before) logStartMoved = true;
        }
        partitionLog.deleteExpiredFiles();
      } catch (error) {
        if (!isIoError(error)) throw error;
        log.error("Log maintenance failed; will retry", { log: key, error: String(error) });
      }
    }
    // Retention removes whole segments: recovery finds the log start from the first one
    // left, so this write need not hold up the request thread.
    if (logStartMoved) this.#writeLogStarts(false, true);
    this.#clean();
    if (nowMs - this.#lastCheckpointMs >= this.#checkpointIntervalMs) this.#writeCheckpoints(false);
  }

  /**
   * Compaction's share of a tick: continues the pass under way, else starts one on the
   * dirtiest due log, until the tick's byte budget is spent. A failure is logged by the
   * cleaner, which pauses that log.
   */
  #clean(): void {
    let budget = this.#cleanerBytesPerTick;
    // Each log is tried at most once per tick: bounded work however passes end.
    const tried = new Set<string>();
    while (budget > 0) {
      let key = this.#cleaning;
      // A log removed meanwhile aborted its pass when it was closed.
      if (key !== null && !this.#logs.has(key)) key = null;
      key ??= this.#dirtiest(tried);
      this.#cleaning = null;
      if (key === null) return;
      tried.add(key);
      const step = this.#logs.get(key)!.cleanStep(budget);
      if (step.kind === "running") {
        // The budget is spent; the pass goes on next tick.
        this.#cleaning = key;
        return;
      }
      if (step.kind !== "idle") budget -= step.bytesRead;
    }
  }

  /** The due log with the largest dirty ratio, leaving out `tried`; null when none. */
  #dirtiest(tried: ReadonlySet<string>): string | null {
    let best: string | null = null;
    let bestRatio = -1;
    for (const [key, partitionLog] of this.#logs) {
      if (tried.has(key) || !partitionLog.config.cleanupPolicy.compact) continue;
      const status = partitionLog.cleanerStatus();
      if (status.due && status.dirtyRatio > bestRatio) {
        best = key;
        bestRatio = status.dirtyRatio;
      }
    }
    return best;
  }

  #wake(key: string): void {
    const set = this.#waiters.get(key);
    if (set === undefined || set.size === 0) return;
    this.#waiters.delete(key);
    for (const wake of set) wake();
  }

  #onMetadata(record: MetadataRecord, image: MetadataImage): void {
    switch (record.type) {
      case "topic":
        this.#topicNames.set(record.topicId, record.name);
        return;
      case "partition": {
        const topic = image.topicById(record.topicId)!;
        if (!record.replicas.includes(this.#nodeId)) return;
        const key = this.key(topic.name, record.partition);
        if (this.#logs.has(key)) return;
        const dir = join(this.#dataDir, key);
        const existed = existsSync(dir);
        const partitionLog = PartitionLog.open({
          dir,
          config: logConfigFromOverrides(topic.configs),
          clock: this.#clock,
          cache: this.#cache,
          cleaner: this.#cleanerOptions,
          ...this.#recoveryFor(key, dir),
        });
        // An existing directory may belong to a later topic of this name (replay at
        // start); its file is (re)written only once the image is final.
        if (!existed) writeTopicId(dir, record.topicId);
        this.#logs.set(key, partitionLog);
        const { partition, topicId } = record;
        this.#ids.set(key, { topic: topic.name, partition, topicId });
        return;
      }
      case "config": {
        const topic = image.topicById(record.topicId)!;
        for (const p of topic.partitions)
          this.get(topic.name, p.partition)?.updateConfig(logConfigFromOverrides(topic.configs));
        return;
      }
      case "removeTopic": {
        // The image has already dropped the topic, so its name comes from our own map.
        const prefix = this.#topicNames.get(record.topicId);
        this.#topicNames.delete(record.topicId);
        if (prefix === undefined) return;
        for (const [key, partitionLog] of this.#logs) {
          if (!this.#ownedBy(key, prefix)) continue;
          const stored = readTopicId(partitionLog.dir);
          if (stored === null || stored === record.topicId) {
            partitionLog.deleteAll();
          } else {
            // Replaying the metadata log: the directory is a later topic's of this name.
            partitionLog.close();
            const fields = { dir: partitionLog.dir };
            log.info("Kept the directory of a later topic of the same name", fields);
          }
          this.#logs.delete(key);
          this.#ids.delete(key);
          this.#wake(key);
        }
        return;
      }
      default:
        return;
    }
  }

  /**
   * What a log opened now is told about its past, and (replicated) that its owner moves
   * its high watermark. Only a directory that already exists has a past: a new log
   * ignores stale entries of a deleted topic of the same name.
   */
  #recoveryFor(
    key: string,
    dir: string,
  ): Pick<
    PartitionLogOptions,
    "recovery" | "highWatermarkFollowsAppends" | "initialHighWatermark"
  > {
    const existed = existsSync(dir);
    const checkpointed = existed ? this.#checkpointed.get(key) : undefined;
    // Kafka's rule (Partition.createLog): without a checkpointed high watermark it starts
    // at 0, clamped up to the log start; the log end could expose uncommitted records.
    const highWatermark = this.#replicated
      ? {
          highWatermarkFollowsAppends: false,
          initialHighWatermark: checkpointed?.highWatermark ?? 0,
        }
      : {};
    if (!existed) return highWatermark;
    return {
      ...highWatermark,
      recovery: {
        recoveryPoint: checkpointed?.recoveryPoint ?? 0,
        logStartOffset: checkpointed?.logStartOffset ?? 0,
        cleanShutdown: this.#starting && this.#cleanShutdown,
      },
    };
  }

  #ownedBy(key: string, topicName: string): boolean {
    return key.startsWith(`${topicName}-`) && /^\d+$/.test(key.slice(topicName.length + 1));
  }

  #readCheckpoints(): void {
    const kinds: Array<readonly [string, keyof Checkpointed]> = [
      [RECOVERY_POINT_CHECKPOINT, "recoveryPoint"],
      [LOG_START_CHECKPOINT, "logStartOffset"],
    ];
    // On one node the high watermark is the log end: the file is written, not read.
    if (this.#replicated) kinds.push([HIGH_WATERMARK_CHECKPOINT, "highWatermark"]);
    for (const [file, field] of kinds) {
      const read = readCheckpoint(join(this.#checkpointsDir, file));
      if (!read.ok) {
        // Without it every log is verified, log starts fall back to the first segment and
        // high watermarks to the log start (replication moves them up again).
        log.error("Ignoring an unreadable checkpoint", { file, reason: read.reason });
        if (field === "recoveryPoint") this.#cleanShutdown = false;
        continue;
      }
      for (const entry of read.entries) {
        const key = this.key(entry.topic, entry.partition);
        const state = this.#checkpointed.get(key) ?? {};
        state[field] = entry.offset;
        this.#checkpointed.set(key, state);
      }
    }
  }

  /**
   * Every checkpoint file whose offsets changed (all with `force`). True when all that
   * needed writing were written; failures are logged, and the next tick retries. The
   * periodic writes of recovery points and high watermarks wait for the disk in the
   * background (a stale one costs only recovery time, or hides committed records until
   * the leader moves the high watermark again); forced writes (start, close) and log
   * starts (DeleteRecords answers once its new log start is checkpointed) do not.
   */
  #writeCheckpoints(force: boolean): boolean {
    this.#lastCheckpointMs = this.#clock.monotonicMs();
    const recoveryPoints = this.#writeIfChanged(
      RECOVERY_POINT_CHECKPOINT,
      force,
      (p) => p.recoveryPoint,
      !force,
    );
    // Single node: the high watermark is the log end. Replicated: read back at start.
    const highWatermarks = this.#writeIfChanged(
      HIGH_WATERMARK_CHECKPOINT,
      force,
      (p) => p.highWatermark,
      !force,
    );
    const logStarts = this.#writeLogStarts(force, !force);
    return recoveryPoints && highWatermarks && logStarts;
  }

  #writeLogStarts(force: boolean, background: boolean): boolean {
    return this.#writeIfChanged(LOG_START_CHECKPOINT, force, (p) => p.logStartOffset, background);
  }

  #writeIfChanged(
    file: string,
    force: boolean,
    offsetOf: (p: PartitionLog) => number,
    background: boolean,
  ): boolean {
    const offsets = this.#entries(offsetOf);
    const written = this.#written.get(file);
    if (!force && written !== undefined && !changed(written, offsets)) return true;
    if (background) {
      this.#writeInBackground(file, offsets);
      return true;
    }
    // A background write still in flight must not replace this newer content.
    this.#generations.set(file, (this.#generations.get(file) ?? 0) + 1);
    if (!this.#write(file, offsets)) return false;
    this.#written.set(file, offsets);
    return true;
  }

  #entries(offsetOf: (partitionLog: PartitionLog) => number): Map<string, number> {
    const entries = new Map<string, number>();
    for (const [key, partitionLog] of this.#logs) entries.set(key, offsetOf(partitionLog));
    return entries;
  }

  #checkpointEntries(offsets: ReadonlyMap<string, number>): CheckpointEntry[] {
    const entries: CheckpointEntry[] = [];
    for (const [key, offset] of offsets) {
      const id = this.#ids.get(key)!;
      entries.push({ topic: id.topic, partition: id.partition, offset });
    }
    return entries;
  }

  #write(file: string, offsets: ReadonlyMap<string, number>): boolean {
    const entries = this.#checkpointEntries(offsets);
    try {
      writeCheckpoint(join(this.#checkpointsDir, file), this.#checkpointsDir, entries);
      return true;
    } catch (error) {
      if (!isIoError(error)) throw error;
      log.error("Writing a checkpoint failed; will retry", { file, error: String(error) });
      return false;
    }
  }

  /** One background write per file at a time; one still running skips this turn. */
  #writeInBackground(file: string, offsets: ReadonlyMap<string, number>): void {
    if (this.#backgroundWrites.has(file)) return;
    const generation = this.#generations.get(file) ?? 0;
    const entries = this.#checkpointEntries(offsets);
    const stillWanted = () => !this.#closed && (this.#generations.get(file) ?? 0) === generation;
    const write = writeCheckpointInBackground(
      join(this.#checkpointsDir, file),
      this.#checkpointsDir,
      entries,
      stillWanted,
    )
      .then((replaced) => {
        if (replaced) this.#written.set(file, offsets);
      })
      .catch((error: unknown) => {
        if (!isIoError(error)) throw error;
        log.error("Writing a checkpoint failed; will retry", { file, error: String(error) });
      })
      .finally(() => this.#backgroundWrites.delete(file));
    this.#backgroundWrites.set(file, write);
  }

  /** Resolves once the checkpoint writes running in the background are done (tests). */
  async checkpointsSettled(): Promise<void> {
    await Promise.all([...this.#backgroundWrites.values()]);
  }

  /** fsyncs every log's active segment. */
  flushAll(): void {
    for (const partitionLog of this.#logs.values()) partitionLog.flush();
  }

  /**
   * Clean stop: closes every log (fsyncing active segments, so recovery points reach the
   * log ends), writes the checkpoints, then the clean-shutdown marker. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const partitionLog of this.#logs.values()) partitionLog.close();
    if (this.#writeCheckpoints(true)) {
      try {
        writeFileSync(join(this.#checkpointsDir, CLEAN_SHUTDOWN_MARKER), "");
        syncDirectory(this.#checkpointsDir);
      } catch (error) {
        if (!isIoError(error)) throw error;
        log.error("Writing the clean-shutdown marker failed", { error: String(error) });
      }
    }
    this.#logs.clear();
    this.#ids.clear();
  }

  summary(): { partitions: number; bytes: number } {
    let bytes = 0;
    for (const partitionLog of this.#logs.values()) bytes += partitionLog.sizeBytes();
    return { partitions: this.#logs.size, bytes };
  }
}

/** The topic id in a partition directory's partition.metadata, null if none is readable. */
function readTopicId(dir: string): string | null {
  let text: string;
  try {
    text = readFileSync(join(dir, PARTITION_METADATA_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  const match = /^version: 0\ntopic_id: (\S+)\n?$/.exec(text);
  return match === null ? null : match[1]!;
}

/** Writes partition.metadata in Kafka's format, atomically. */
function writeTopicId(dir: string, topicId: string): void {
  const text = `version: 0\ntopic_id: ${topicId}\n`;
  writeFileAtomically(join(dir, PARTITION_METADATA_FILE), dir, text);
}

function changed(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): boolean {
  if (before.size !== after.size) return true;
  for (const [key, offset] of after) if (before.get(key) !== offset) return true;
  return false;
}

/** A failed file operation (StorageIoError, or a node:fs error with an errno code). */
function isIoError(error: unknown): boolean {
  if (error instanceof StorageIoError) return true;
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === "string";
}
