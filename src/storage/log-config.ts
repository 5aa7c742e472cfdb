/**
 * @module
 * Per-partition log configuration: the subset of Kafka's topic configs the storage
 * engine reads, with Kafka's defaults, and the one check every value passes before a
 * log sees it (CreateTopics / AlterConfigs answer INVALID_CONFIG with its message).
 */
import { assert } from "../util/assert.ts";
import {
  BATCH_BYTES_MAX,
  INDEX_INTERVAL_BYTES_MAX,
  INT32_MAX,
  SEGMENT_BYTES_MAX,
  SEGMENT_BYTES_MIN,
  SEGMENT_MS_MIN,
} from "./limits.ts";

export interface LogConfig {
  /** segment.bytes: roll when the next append would make the active segment larger. */
  segmentBytes: number;
  /** segment.ms: roll when the active segment's first batch was appended this long ago. */
  segmentMs: number;
  /** index.interval.bytes: log bytes between two sparse index entries. */
  indexIntervalBytes: number;
  /**
   * max.message.bytes: largest batch (whole, with its 12-byte log overhead). Kafka allows
   * any int; batches above BATCH_BYTES_MAX are refused whatever this says.
   */
  maxMessageBytes: number;
  /** message.timestamp.type: LogAppendTime makes the broker's clock every batch's time. */
  messageTimestampType: "CreateTime" | "LogAppendTime";
  /**
   * retention.ms: whole segments whose newest timestamp is older than this are deleted
   * (the active one is rolled first when it is expired and not empty); -1 keeps forever.
   */
  retentionMs: number;
  /** retention.bytes: oldest sealed segments go while the log is larger; -1: no bound. */
  retentionBytes: number;
  /**
   * cleanup.policy: `delete` lets retention (time, size) delete segments and
   * DeleteRecords move the log start; `compact` lets the cleaner keep only the latest
   * record of each key in sealed segments (compaction.ts); both may be set.
   */
  cleanupPolicy: CleanupPolicy;
  /**
   * min.cleanable.dirty.ratio: a compacted log is cleaned once the bytes of sealed
   * segments written since its last cleaning exceed this share of all sealed bytes.
   * Optional here only because callers outside storage build LogConfig literals; absent
   * means Kafka's default (see `compactionConfig`).
   */
  minCleanableDirtyRatio?: number;
  /** delete.retention.ms: tombstones stay this long after their segment was first cleaned. */
  deleteRetentionMs?: number;
  /** min.compaction.lag.ms: segments with records younger than this are not cleaned yet. */
  minCompactionLagMs?: number;
  /** flush.messages: fsync the active segment once this many messages are unflushed. */
  flushMessages: number;
  /** flush.ms: fsync the active segment when its last flush is this old (and it has news). */
  flushMs: number;
  /** file.delete.delay.ms: a deleted segment's renamed files stay this long for open reads. */
  fileDeleteDelayMs: number;
}

export interface CleanupPolicy {
  readonly delete: boolean;
  readonly compact: boolean;
}

/** Kafka's "never" for long configs (Long.MAX_VALUE), as the largest exact JS integer. */
export const NEVER = Number.MAX_SAFE_INTEGER;

/** Kafka's defaults. */
export const DEFAULT_LOG_CONFIG: Readonly<LogConfig> = Object.freeze({
  segmentBytes: 1073741824,
  segmentMs: 604800000,
  indexIntervalBytes: 4096,
  maxMessageBytes: 1048588,
  messageTimestampType: "CreateTime",
  retentionMs: 604800000,
  retentionBytes: -1,
  cleanupPolicy: Object.freeze({ delete: true, compact: false }),
  flushMessages: NEVER,
  flushMs: NEVER,
  fileDeleteDelayMs: 60000,
  minCleanableDirtyRatio: 0.5,
  deleteRetentionMs: 86400000,
  minCompactionLagMs: 0,
});

/** The compaction settings of a config, Kafka's defaults for those it leaves out. */
export interface CompactionConfig {
  minCleanableDirtyRatio: number;
  deleteRetentionMs: number;
  minCompactionLagMs: number;
}

export function compactionConfig(config: LogConfig): CompactionConfig {
  return {
    minCleanableDirtyRatio:
      config.minCleanableDirtyRatio ?? DEFAULT_LOG_CONFIG.minCleanableDirtyRatio!,
    deleteRetentionMs: config.deleteRetentionMs ?? DEFAULT_LOG_CONFIG.deleteRetentionMs!,
    minCompactionLagMs: config.minCompactionLagMs ?? DEFAULT_LOG_CONFIG.minCompactionLagMs!,
  };
}

export type LogConfigCheck = { ok: true } | { ok: false; message: string };

function integerIn(name: string, value: number, min: number, max: number): string | null {
  // Kafka's long configs reach 2^63 - 1 (e.g. "forever"), which a JS number holds as an
  // inexact integer: fine for comparisons against clocks, so only integrality is checked.
  if (!Number.isInteger(value)) return `${name} is not an integer: ${value}`;
  if (value < min) return `${name} is below ${min}: ${value}`;
  if (value > max) return `${name} is above ${max}: ${value}`;
  return null;
}

function optionalIntegerIn(
  name: string,
  value: number | undefined,
  min: number,
  max: number,
): string | null {
  return value === undefined ? null : integerIn(name, value, min, max);
}

function ratioIn(name: string, value: number | undefined): string | null {
  if (value === undefined) return null;
  if (Number.isFinite(value) && value >= 0 && value <= 1) return null;
  return `${name} is not in [0, 1]: ${value}`;
}

/** Checks user-supplied values; the message names the first bad one. */
export function checkLogConfig(config: LogConfig): LogConfigCheck {
  const problem =
    integerIn("segment.bytes", config.segmentBytes, SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX) ??
    integerIn("segment.ms", config.segmentMs, SEGMENT_MS_MIN, Number.MAX_VALUE) ??
    integerIn("index.interval.bytes", config.indexIntervalBytes, 0, INDEX_INTERVAL_BYTES_MAX) ??
    integerIn("max.message.bytes", config.maxMessageBytes, 0, INT32_MAX) ??
    integerIn("retention.ms", config.retentionMs, -1, Number.MAX_VALUE) ??
    integerIn("retention.bytes", config.retentionBytes, -1, Number.MAX_VALUE) ??
    integerIn("flush.messages", config.flushMessages, 1, Number.MAX_VALUE) ??
    integerIn("flush.ms", config.flushMs, 0, Number.MAX_VALUE) ??
    integerIn("file.delete.delay.ms", config.fileDeleteDelayMs, 0, Number.MAX_VALUE) ??
    optionalIntegerIn("delete.retention.ms", config.deleteRetentionMs, 0, Number.MAX_VALUE) ??
    optionalIntegerIn("min.compaction.lag.ms", config.minCompactionLagMs, 0, Number.MAX_VALUE) ??
    ratioIn("min.cleanable.dirty.ratio", config.minCleanableDirtyRatio) ??
    (config.cleanupPolicy.delete || config.cleanupPolicy.compact
      ? null
      : "cleanup.policy names neither delete nor compact") ??
    (config.messageTimestampType === "CreateTime" || config.messageTimestampType === "LogAppendTime"
      ? null
      : `message.timestamp.type is unknown: ${config.messageTimestampType}`);
  return problem === null ? { ok: true } : { ok: false, message: `Invalid log config: ${problem}` };
}

/** The batch size limit a log enforces: max.message.bytes, capped by BATCH_BYTES_MAX. */
export function batchBytesLimit(config: LogConfig): number {
  return Math.min(config.maxMessageBytes, BATCH_BYTES_MAX);
}

/** For callers that must have checked already: a bad config here is a programmer error. */
export function assertLogConfig(config: LogConfig): void {
  const check = checkLogConfig(config);
  assert(check.ok, check.ok ? "" : check.message);
}
