/**
 * @module
 * Offset checkpoint files: one file per kind for all partitions of a data dir, under
 * `<data-dir>/checkpoints/` (docs/storage.md, "Data directory"), in Kafka's text format
 * (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`, ...):
 *
 * ```
 * 0                 version
 * 2                 number of entries
 * orders 0 1234     topic, partition, offset
 * orders 1 99
 * ```
 *
 * A checkpoint is written atomically: a temporary file, fsynced, renamed over the old
 * one, and the directory fsynced, so a crash leaves the old file or the new one, never
 * a mix. Reading never trusts a malformed file: it reports why, and the caller falls
 * back to what is safe without it (verify everything, log start at the first segment).
 */
import { Buffer } from "node:buffer";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync } from "node:fs";
import { assert } from "../util/assert.ts";
import { syncDirectory, syncInBackground, writeFully } from "./segment-files.ts";

export const CHECKPOINT_VERSION = 0;
/** Kafka's name: offsets below the recovery point are fsynced. */
export const RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint";
/** Kafka's name: the log start offset of each partition. */
export const LOG_START_CHECKPOINT = "log-start-offset-checkpoint";
/** Kafka's name: the high watermark of each partition. */
export const HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint";
/** Written last by a clean stop, removed once the next start has loaded the logs. */
export const CLEAN_SHUTDOWN_MARKER = "clean-shutdown";
const TEMPORARY_SUFFIX = ".tmp";
/** A background write's temporary file: never the one a synchronous write is using. */
const BACKGROUND_TEMPORARY_SUFFIX = ".tmp-background";

export interface CheckpointEntry {
  topic: string;
  partition: number;
  offset: number;
}

export type CheckpointRead =
  { ok: true; entries: CheckpointEntry[] } | { ok: false; reason: string };

/** Topic names as Kafka allows them: no whitespace, so a line splits on spaces. */
const TOPIC_PATTERN = /^[a-zA-Z0-9._-]+$/;

/** Writes `entries` to `path` atomically (see the module comment). */
export function writeCheckpoint(
  path: string,
  dir: string,
  entries: readonly CheckpointEntry[],
): void {
  writeFileAtomically(path, dir, formatCheckpoint(entries));
}

/**
 * Writes `entries` like `writeCheckpoint`, but the waits for the disk (the fsyncs of the
 * temporary file and of the directory) run on the runtime's file-system threads, not on
 * the caller's. The rename happens on the caller's thread, and only if `stillWanted()`
 * says so then: a synchronous write made meanwhile (a forced one, at close) must not be
 * replaced by this older content. Resolves true when the file was replaced.
 */
export async function writeCheckpointInBackground(
  path: string,
  dir: string,
  entries: readonly CheckpointEntry[],
  stillWanted: () => boolean,
): Promise<boolean> {
  const temporary = `${path}${BACKGROUND_TEMPORARY_SUFFIX}`;
  const fd = openSync(temporary, "w");
  try {
    writeFully(fd, Buffer.from(formatCheckpoint(entries), "utf8"), 0);
    await syncInBackground([fd], null);
  } finally {
    closeSync(fd);
  }
  if (!stillWanted()) return false;
  renameSync(temporary, path);
  await syncInBackground([], dir);
  return true;
}

function formatCheckpoint(entries: readonly CheckpointEntry[]): string {
  let text = `${CHECKPOINT_VERSION}\n${entries.length}\n`;
  for (const { topic, partition, offset } of entries) {
    assert(TOPIC_PATTERN.test(topic), `Topic name cannot go in a checkpoint: ${topic}`);
    assert(Number.isSafeInteger(partition), "Checkpoint partition is not an integer");
    assert(partition >= 0, "Checkpoint partition is negative");
    assert(Number.isSafeInteger(offset), "Checkpoint offset is not an integer");
    assert(offset >= 0, "Checkpoint offset is negative");
    text += `${topic} ${partition} ${offset}\n`;
  }
  return text;
}

/**
 * Replaces the file at `path` (in directory `dir`) with `text`: a temporary file,
 * fsynced, renamed over the old one, and the directory fsynced. A crash leaves the old
 * content or the new one.
 */
export function writeFileAtomically(path: string, dir: string, text: string): void {
  const temporary = `${path}${TEMPORARY_SUFFIX}`;
  const fd = openSync(temporary, "w");
  try {
    writeFully(fd, Buffer.from(text, "utf8"), 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  syncDirectory(dir);
}

/** Reads a checkpoint; a missing file is an empty one. */
export function readCheckpoint(path: string): CheckpointRead {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { ok: true, entries: [] };
    return { ok: false, reason: `Cannot read ${path}: ${String(error)}` };
  }
  return parseCheckpoint(text);
}

export function parseCheckpoint(text: string): CheckpointRead {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (lines[0] !== String(CHECKPOINT_VERSION)) {
    return { ok: false, reason: `Unknown checkpoint version: ${lines[0] ?? "(empty file)"}` };
  }
  const count = Number(lines[1]);
  if (!Number.isSafeInteger(count) || count < 0 || lines.length !== count + 2) {
    return { ok: false, reason: `Checkpoint entry count does not match: ${lines[1]}` };
  }
  const entries: CheckpointEntry[] = [];
  for (let i = 2; i < lines.length; i++) {
    const fields = lines[i]!.split(" ");
    const [topic, partitionText, offsetText] = fields;
    const partition = Number(partitionText);
    const offset = Number(offsetText);
    const wellFormed =
      fields.length === 3 &&
      TOPIC_PATTERN.test(topic!) &&
      /^\d+$/.test(partitionText!) &&
      /^\d+$/.test(offsetText!) &&
      Number.isSafeInteger(partition) &&
      Number.isSafeInteger(offset);
    if (!wellFormed) {
      return { ok: false, reason: `Malformed checkpoint line ${i + 1}: ${lines[i]}` };
    }
    entries.push({ topic: topic!, partition, offset });
  }
  return { ok: true, entries };
}
