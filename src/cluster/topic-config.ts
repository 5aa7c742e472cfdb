/**
 * Topic configs users expect, with Kafka's names, defaults and types. Values are kept
 * as strings (as on the wire and in the metadata log); `validateTopicConfig` is the one
 * place that decides whether a name and value are acceptable.
 */
import { checkLogConfig, type LogConfig } from "../storage/log-config.ts";

export type ConfigType = "boolean" | "string" | "int" | "long" | "double" | "list";

export interface ConfigDefinition {
  readonly name: string;
  readonly type: ConfigType;
  readonly defaultValue: string;
  /** Returns a reason when the value is not acceptable. */
  readonly check?: (value: string) => string | null;
}

const WEEK_MS = 7 * 24 * 60 * 60 * 1000;

function integerAtLeast(min: number): (value: string) => string | null {
  return (value) => {
    if (!/^-?\d+$/.test(value.trim())) return `Not an integer: ${value}`;
    const number = Number(value);
    if (!Number.isSafeInteger(number)) return `Out of range: ${value}`;
    return number < min ? `Must be at least ${min}: ${value}` : null;
  };
}

function oneOf(...allowed: string[]): (value: string) => string | null {
  return (value) =>
    allowed.includes(value) ? null : `Must be one of ${allowed.join(", ")}: ${value}`;
}

function listOf(...allowed: string[]): (value: string) => string | null {
  return (value) => {
    const items = value.split(",").map((item) => item.trim());
    const bad = items.find((item) => !allowed.includes(item));
    return bad === undefined ? null : `Must be a list of ${allowed.join(", ")}: ${value}`;
  };
}

function ratio(value: string): string | null {
  const number = Number(value);
  return Number.isFinite(number) && number >= 0 && number <= 1
    ? null
    : `Must be within [0, 1]: ${value}`;
}

const bool = oneOf("true", "false");

export const TOPIC_CONFIGS: readonly ConfigDefinition[] = [
  {
    name: "cleanup.policy",
    type: "list",
    defaultValue: "delete",
    check: listOf("delete", "compact"),
  },
  {
    name: "compression.type",
    type: "string",
    defaultValue: "producer",
    check: oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
  },
  { name: "delete.retention.ms", type: "long", defaultValue: "86400000", check: integerAtLeast(0) },
  { name: "file.delete.delay.ms", type: "long", defaultValue: "60000", check: integerAtLeast(0) },
  {
    name: "flush.messages",
    type: "long",
    defaultValue: "9223372036854775807",
    check: integerAtLeast(1),
  },
  { name: "flush.ms", type: "long", defaultValue: "9223372036854775807", check: integerAtLeast(0) },
  { name: "index.interval.bytes", type: "int", defaultValue: "4096", check: integerAtLeast(0) },
  {
    name: "max.compaction.lag.ms",
    type: "long",
    defaultValue: "9223372036854775807",
    check: integerAtLeast(1),
  },
  { name: "max.message.bytes", type: "int", defaultValue: "1048588", check: integerAtLeast(0) },
  {
    name: "message.timestamp.after.max.ms",
    type: "long",
    defaultValue: "9223372036854775807",
    check: integerAtLeast(0),
  },
  {
    name: "message.timestamp.before.max.ms",
    type: "long",
    defaultValue: "9223372036854775807",
    check: integerAtLeast(0),
  },
  {
    name: "message.timestamp.type",
    type: "string",
    defaultValue: "CreateTime",
    check: oneOf("CreateTime", "LogAppendTime"),
  },
  { name: "min.cleanable.dirty.ratio", type: "double", defaultValue: "0.5", check: ratio },
  { name: "min.compaction.lag.ms", type: "long", defaultValue: "0", check: integerAtLeast(0) },
  { name: "min.insync.replicas", type: "int", defaultValue: "1", check: integerAtLeast(1) },
  { name: "preallocate", type: "boolean", defaultValue: "false", check: bool },
  { name: "retention.bytes", type: "long", defaultValue: "-1", check: integerAtLeast(-1) },
  { name: "retention.ms", type: "long", defaultValue: String(WEEK_MS), check: integerAtLeast(-1) },
  { name: "segment.bytes", type: "int", defaultValue: "1073741824", check: integerAtLeast(14) },
  { name: "segment.index.bytes", type: "int", defaultValue: "10485760", check: integerAtLeast(4) },
  { name: "segment.jitter.ms", type: "long", defaultValue: "0", check: integerAtLeast(0) },
  { name: "segment.ms", type: "long", defaultValue: String(WEEK_MS), check: integerAtLeast(1) },
  { name: "unclean.leader.election.enable", type: "boolean", defaultValue: "false", check: bool },
];

const BY_NAME = new Map(TOPIC_CONFIGS.map((definition) => [definition.name, definition]));

export function topicConfigDefinition(name: string): ConfigDefinition | undefined {
  return BY_NAME.get(name);
}

/** Null when acceptable, otherwise the reason (answered as INVALID_CONFIG). */
export function validateTopicConfig(name: string, value: string | null): string | null {
  const definition = BY_NAME.get(name);
  if (definition === undefined) return `Unknown topic config name: ${name}`;
  if (value === null) return null;
  return definition.check?.(value) ?? null;
}

/** The effective value: the topic's override or Kafka's default. */
export function topicConfigValue(overrides: ReadonlyMap<string, string>, name: string): string {
  const override = overrides.get(name);
  if (override !== undefined) return override;
  const definition = BY_NAME.get(name);
  if (definition === undefined) throw new Error(`Unknown topic config name: ${name}`);
  return definition.defaultValue;
}

export function topicConfigNumber(overrides: ReadonlyMap<string, string>, name: string): number {
  // Long.MAX_VALUE defaults become MAX_SAFE_INTEGER: "never" either way.
  return Math.min(Number(topicConfigValue(overrides, name)), Number.MAX_SAFE_INTEGER);
}

/** The storage settings of a topic with these overrides. */
export function logConfigFromOverrides(overrides: ReadonlyMap<string, string>): LogConfig {
  return {
    segmentBytes: topicConfigNumber(overrides, "segment.bytes"),
    segmentMs: topicConfigNumber(overrides, "segment.ms"),
    indexIntervalBytes: topicConfigNumber(overrides, "index.interval.bytes"),
    maxMessageBytes: topicConfigNumber(overrides, "max.message.bytes"),
    messageTimestampType:
      topicConfigValue(overrides, "message.timestamp.type") === "LogAppendTime"
        ? "LogAppendTime"
        : "CreateTime",
    retentionMs: topicConfigNumber(overrides, "retention.ms"),
    retentionBytes: topicConfigNumber(overrides, "retention.bytes"),
    cleanupPolicy: cleanupPolicyOf(topicConfigValue(overrides, "cleanup.policy")),
    flushMessages: topicConfigNumber(overrides, "flush.messages"),
    flushMs: topicConfigNumber(overrides, "flush.ms"),
    fileDeleteDelayMs: topicConfigNumber(overrides, "file.delete.delay.ms"),
    minCleanableDirtyRatio: Number(topicConfigValue(overrides, "min.cleanable.dirty.ratio")),
    deleteRetentionMs: topicConfigNumber(overrides, "delete.retention.ms"),
    minCompactionLagMs: topicConfigNumber(overrides, "min.compaction.lag.ms"),
  };
}

/** "delete", "compact" or both, comma-separated in any order (Kafka's list syntax). */
function cleanupPolicyOf(value: string): LogConfig["cleanupPolicy"] {
  const items = value.split(",").map((item) => item.trim());
  return { delete: items.includes("delete"), compact: items.includes("compact") };
}

/** Null when storage accepts the combination, otherwise the reason. */
export function logConfigProblem(overrides: ReadonlyMap<string, string>): string | null {
  const check = checkLogConfig(logConfigFromOverrides(overrides));
  return check.ok ? null : check.message;
}
