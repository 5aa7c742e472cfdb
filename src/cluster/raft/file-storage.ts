/**
 * @module
 * Durable Raft storage under `<data-dir>/__cluster_metadata-0/`:
 *
 * ```
 * quorum-state                                   {"version":1,"term":T,"votedFor":N|-1}
 * <20-digit index>-<10-digit term>.checkpoint    the latest snapshot
 * <20-digit offset>.log / .index / .timeindex    the log: a PartitionLog
 * ```
 *
 * The log is the storage engine's PartitionLog, as Kafka's KRaft keeps its metadata
 * log: one RecordBatch v2 per Raft entry, at offset index - 1, whose
 * partitionLeaderEpoch is the entry's Raft term and whose single record's value is the
 * payload. Data entries are ordinary batches with a null key; no-op and configuration
 * entries are control batches whose record key is Kafka's control key (version 0, type
 * 2 LeaderChange for a no-op, type 6 KRaftVoters for a configuration), with Brook's own
 * values (empty; membership.ts's bytes), not Kafka's schemas. The batch timestamp is when
 * this node stored the entry.
 *
 * `quorum-state` and snapshots are replaced atomically (temporary file, fsync, rename,
 * fsync of the directory). Appends go to the page cache and `sync` fsyncs them; the
 * driver syncs before any message of the Ready leaves (storage.ts has the order). A
 * snapshot file is checked by CRC-32C on load; one that fails is skipped for an older
 * one, if any is left.
 *
 * Crash safety of each step, given `entriesAfterSnapshot` at load: truncation is the
 * PartitionLog's (later segments first, then the cut, fsynced); a snapshot is durable
 * before any entry goes; dropping a divergent log removes segments newest first, so
 * what is left is always a prefix of it.
 */
import { crc32c } from "../../protocol/crc32c.ts";
import { Buffer } from "node:buffer";
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { Reader } from "../../protocol/reader.ts";
import { buildBatch } from "../../protocol/record-batch-builder.ts";
import {
  readIsControl,
  readLastOffsetDelta,
  readPartitionLeaderEpoch,
} from "../../protocol/record-batch.ts";
import { decodeRecords } from "../../protocol/records.ts";
import { DEFAULT_LOG_CONFIG, type LogConfig } from "../../storage/log-config.ts";
import { PartitionLog } from "../../storage/partition-log.ts";
import { forEachStoredBatch } from "../../storage/replay.ts";
import { replaceFile, syncDirectory } from "../../storage/segment-files.ts";
import { assert } from "../../util/assert.ts";
import type { Clock } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import { SNAPSHOT_BYTES_MAX } from "./limits.ts";
import { membershipBytes, readMembership, writeMembership } from "./membership.ts";
import { entriesAfterSnapshot, type RaftStorage } from "./storage.ts";
import {
  EMPTY_STORED_STATE,
  type Entry,
  type EntryKind,
  isCount,
  isNodeId,
  type NodeId,
  type Snapshot,
  type StoredState,
} from "./types.ts";

const log = logger("raft-storage");

/** The metadata log's directory, as in Kafka (and LocalMetadataLog today). */
export const RAFT_DIR = "__cluster_metadata-0";
export const QUORUM_STATE_FILE = "quorum-state";
const QUORUM_STATE_VERSION = 1;
const TEMPORARY_SUFFIX = ".tmp";
const CHECKPOINT_PATTERN = /^(\d{20})-(\d{10})\.checkpoint$/;
const SEGMENT_FILE = /^\d{20}\.(log|index|timeindex)(\.deleted|\.cleaned|\.swap)?$/;

/** Snapshot file: magic, version, index, term, membership, data length, data, CRC-32C. */
const SNAPSHOT_MAGIC = 0x4252534e; // "BRSN"
const SNAPSHOT_VERSION = 1;

/** Kafka's control record key: version int16, type int16. */
const CONTROL_KEY_VERSION = 0;
const CONTROL_TYPE_LEADER_CHANGE = 2;
const CONTROL_TYPE_VOTERS = 6;

/**
 * The log's settings: smaller segments than a topic's so compaction frees space soon,
 * room for the largest entry, and no delay before deleted segments are removed.
 */
const RAFT_LOG_CONFIG: LogConfig = {
  ...DEFAULT_LOG_CONFIG,
  segmentBytes: 8 * 1024 * 1024,
  maxMessageBytes: 2 * 1024 * 1024,
  cleanupPolicy: { delete: true, compact: false },
  retentionMs: -1,
  fileDeleteDelayMs: 0,
};

/** The directory holds something this storage cannot read: not a crash fault. */
export class RaftStorageError extends Error {
  override name = "RaftStorageError";
}

export interface FileRaftStorageOptions {
  dataDir: string;
  clock: Clock;
}

export class FileRaftStorage implements RaftStorage {
  readonly dir: string;
  readonly #clock: Clock;
  #log: PartitionLog | null = null;

  constructor(options: FileRaftStorageOptions) {
    this.dir = join(options.dataDir, RAFT_DIR);
    this.#clock = options.clock;
  }

  load(): StoredState {
    assert(this.#log === null, "Raft storage is already loaded");
    mkdirSync(this.dir, { recursive: true });
    this.#removeTemporaryFiles();
    const hard = this.#readQuorumState();
    const snapshot = this.#readLatestSnapshot();
    const partitionLog = PartitionLog.open({
      dir: this.dir,
      config: RAFT_LOG_CONFIG,
      clock: this.#clock,
    });
    this.#log = partitionLog;
    let stored: Entry[];
    try {
      stored = this.#readEntries(partitionLog);
      if (snapshot === null && stored.length > 0 && stored[0]!.index !== 1) {
        throw new RaftStorageError(
          `${this.dir}: the log starts at ${stored[0]!.index} but no snapshot is left`,
        );
      }
    } catch (error) {
      this.close();
      throw error;
    }
    const entries = entriesAfterSnapshot(snapshot, stored);
    const lastIndex = entries.at(-1)?.index ?? snapshot?.index ?? 0;
    if (partitionLog.logEndOffset !== lastIndex) {
      // What follows the snapshot here is left from an interrupted install: drop it.
      log.warn("Dropping a Raft log that does not continue its snapshot", {
        dir: this.dir,
        snapshotIndex: snapshot?.index ?? 0,
        logEndOffset: partitionLog.logEndOffset,
      });
      this.#resetLogAt(lastIndex);
    } else if (snapshot !== null && entries.length > 0) {
      this.#dropPrefix(snapshot.index);
    }
    log.info("Raft storage loaded", {
      dir: this.dir,
      term: hard.term,
      votedFor: hard.vote ?? -1,
      snapshotIndex: snapshot?.index ?? 0,
      entries: entries.length,
    });
    if (hard.term === 0 && snapshot === null && entries.length === 0) return EMPTY_STORED_STATE;
    return { hardState: { term: hard.term, vote: hard.vote, commit: 0 }, snapshot, entries };
  }

  saveHardState(state: { term: number; vote: NodeId | null }): void {
    assert(isCount(state.term), `Term is not a count: ${state.term}`);
    const text = JSON.stringify({
      version: QUORUM_STATE_VERSION,
      term: state.term,
      votedFor: state.vote ?? -1,
    });
    this.#writeAtomically(QUORUM_STATE_FILE, Buffer.from(`${text}\n`, "utf8"));
  }

  truncateFrom(index: number): void {
    const partitionLog = this.#openLog();
    assert(
      index - 1 >= partitionLog.logStartOffset,
      `Truncation at ${index} is below the log start`,
    );
    partitionLog.truncateTo(index - 1);
  }

  saveSnapshot(snapshot: Snapshot): void {
    assert(snapshot.data.byteLength <= SNAPSHOT_BYTES_MAX, "Snapshot is too large to store");
    const name = checkpointName(snapshot.index, snapshot.term);
    this.#writeAtomically(name, encodeSnapshotFile(snapshot));
    if (this.#termAt(snapshot.index) === snapshot.term) this.#dropPrefix(snapshot.index);
    else this.#resetLogAt(snapshot.index);
    // The new snapshot is durable, so older ones can go.
    let removed = false;
    for (const file of readdirSync(this.dir)) {
      if (CHECKPOINT_PATTERN.test(file) && file !== name) {
        unlinkSync(join(this.dir, file));
        removed = true;
      }
    }
    if (removed) syncDirectory(this.dir);
  }

  append(entries: readonly Entry[]): void {
    const partitionLog = this.#openLog();
    for (const entry of entries) {
      assert(
        entry.index - 1 === partitionLog.logEndOffset,
        `Entry ${entry.index} does not follow the log`,
      );
      const result = partitionLog.append(entryBatch(entry, this.#clock.nowMs()), {
        leaderEpoch: entry.term,
      });
      assert(
        result.ok,
        `Raft entry ${entry.index} was refused: ${result.ok ? "" : result.message}`,
      );
    }
  }

  sync(): void {
    this.#openLog().flush();
  }

  close(): void {
    this.#log?.close();
    this.#log = null;
  }

  // -------------------------------------------------------------------------------------

  #openLog(): PartitionLog {
    assert(this.#log !== null, "Raft storage is not loaded");
    return this.#log;
  }

  /** The term of the stored entry at `index`, null when the log does not hold it. */
  #termAt(index: number): number | null {
    const partitionLog = this.#openLog();
    const offset = index - 1;
    if (offset < partitionLog.logStartOffset || offset >= partitionLog.logEndOffset) return null;
    const read = partitionLog.read(offset, 1, { minOneBatch: true });
    if (!read.ok || read.records.byteLength === 0) return null;
    return readPartitionLeaderEpoch(read.records, 0);
  }

  /** Entries up to `index` leave the log (whole segments; the rest wait for the next). */
  #dropPrefix(index: number): void {
    const partitionLog = this.#openLog();
    if (index <= partitionLog.logStartOffset) return;
    const result = partitionLog.deleteRecordsBefore(index);
    assert(result.ok, `Dropping the log prefix failed: ${result.ok ? "" : result.message}`);
    partitionLog.deleteExpiredFiles();
  }

  /**
   * Replaces the whole log by an empty one whose next entry is `index + 1`. Segments go
   * newest first: a crash leaves a prefix of the old log, which load then drops again.
   */
  #resetLogAt(index: number): void {
    this.#openLog().close();
    this.#log = null;
    const files = readdirSync(this.dir)
      .filter((name) => SEGMENT_FILE.test(name))
      .sort()
      .reverse();
    for (const file of files) unlinkSync(join(this.dir, file));
    syncDirectory(this.dir);
    this.#log = PartitionLog.open({
      dir: this.dir,
      config: RAFT_LOG_CONFIG,
      clock: this.#clock,
      recovery: { recoveryPoint: index, logStartOffset: index, cleanShutdown: false },
    });
    assert(this.#log.logEndOffset === index, "A reset log does not start at its snapshot");
  }

  #readEntries(partitionLog: PartitionLog): Entry[] {
    const entries: Entry[] = [];
    forEachStoredBatch(partitionLog, (batch, baseOffset) => {
      const records = decodeRecords(batch);
      if (records === null || records.length !== 1 || readLastOffsetDelta(batch, 0) !== 0) {
        const where = `${this.dir}: the batch at offset ${baseOffset}`;
        throw new RaftStorageError(`${where} is not one Raft entry (a log from before Raft?)`);
      }
      const record = records[0]!;
      const kind = entryKind(readIsControl(batch, 0), record.key);
      if (kind === null) {
        throw new RaftStorageError(`${this.dir}: unknown control record at offset ${baseOffset}`);
      }
      const term = readPartitionLeaderEpoch(batch, 0);
      // Raft terms start at 1; LocalMetadataLog wrote epoch 0.
      if (term < 1) {
        throw new RaftStorageError(
          `${this.dir}: the batch at offset ${baseOffset} has no Raft term`,
        );
      }
      const data = record.value === null ? new Uint8Array(0) : record.value.slice();
      entries.push({ index: baseOffset + 1, term, kind, data });
    });
    return entries;
  }

  #readQuorumState(): { term: number; vote: NodeId | null } {
    const path = join(this.dir, QUORUM_STATE_FILE);
    if (!existsSync(path)) return { term: 0, vote: null };
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, "utf8"));
    } catch (error) {
      throw new RaftStorageError(`${path} is not JSON: ${String(error)}`);
    }
    const state = parsed as { version?: unknown; term?: unknown; votedFor?: unknown };
    const { version, term, votedFor } = state;
    if (version !== QUORUM_STATE_VERSION || typeof term !== "number" || !isCount(term)) {
      throw new RaftStorageError(`${path} is not a quorum state: ${JSON.stringify(parsed)}`);
    }
    if (typeof votedFor !== "number" || (votedFor !== -1 && !isNodeId(votedFor))) {
      throw new RaftStorageError(`${path} has a bad votedFor: ${JSON.stringify(parsed)}`);
    }
    return { term, vote: votedFor === -1 ? null : votedFor };
  }

  #readLatestSnapshot(): Snapshot | null {
    const names = readdirSync(this.dir)
      .filter((name) => CHECKPOINT_PATTERN.test(name))
      .sort()
      .reverse();
    for (const name of names) {
      const decoded = decodeSnapshotFile(readFileSync(join(this.dir, name)));
      const match = CHECKPOINT_PATTERN.exec(name)!;
      if (typeof decoded === "string") {
        log.warn("Skipping an unreadable snapshot", { dir: this.dir, file: name, reason: decoded });
        continue;
      }
      if (decoded.index !== Number(match[1]) || decoded.term !== Number(match[2])) {
        log.warn("Skipping a snapshot whose name does not match it", { dir: this.dir, file: name });
        continue;
      }
      return decoded;
    }
    return null;
  }

  #removeTemporaryFiles(): void {
    for (const name of readdirSync(this.dir)) {
      if (name.endsWith(TEMPORARY_SUFFIX)) unlinkSync(join(this.dir, name));
    }
  }

  /** Temporary file, fsync, rename over `name`, fsync of the directory. */
  #writeAtomically(name: string, bytes: Uint8Array): void {
    replaceFile(join(this.dir, name), bytes, TEMPORARY_SUFFIX);
    syncDirectory(this.dir);
  }
}

export function checkpointName(index: number, term: number): string {
  return `${String(index).padStart(20, "0")}-${String(term).padStart(10, "0")}.checkpoint`;
}

function controlKey(type: number): Uint8Array {
  const key = Buffer.alloc(4);
  key.writeInt16BE(CONTROL_KEY_VERSION, 0);
  key.writeInt16BE(type, 2);
  return key;
}

const NOOP_KEY = controlKey(CONTROL_TYPE_LEADER_CHANGE);
const CONFIG_KEY = controlKey(CONTROL_TYPE_VOTERS);

/** The batch that stores `entry` (its offset and term are stamped by the append). */
export function entryBatch(entry: Entry, timestampMs: number): Uint8Array {
  const control = entry.kind !== "data";
  const key = entry.kind === "noop" ? NOOP_KEY : entry.kind === "config" ? CONFIG_KEY : null;
  return buildBatch({
    baseTimestamp: timestampMs,
    partitionLeaderEpoch: entry.term,
    control,
    records: [{ key, value: entry.data, headers: [] }],
  });
}

function entryKind(control: boolean, key: Uint8Array | null): EntryKind | null {
  if (!control) return "data";
  if (key === null || key.byteLength !== 4) return null;
  const view = new DataView(key.buffer, key.byteOffset, 4);
  if (view.getInt16(0) !== CONTROL_KEY_VERSION) return null;
  switch (view.getInt16(2)) {
    case CONTROL_TYPE_LEADER_CHANGE:
      return "noop";
    case CONTROL_TYPE_VOTERS:
      return "config";
    default:
      return null;
  }
}

export function encodeSnapshotFile(snapshot: Snapshot): Buffer {
  const size =
    4 + 1 + 8 + 8 + membershipBytes(snapshot.membership) + 4 + snapshot.data.byteLength + 4;
  const out = Buffer.alloc(size);
  let at = out.writeUInt32BE(SNAPSHOT_MAGIC, 0);
  at = out.writeInt8(SNAPSHOT_VERSION, at);
  at = out.writeBigInt64BE(BigInt(snapshot.index), at);
  at = out.writeBigInt64BE(BigInt(snapshot.term), at);
  at = writeMembership(out, at, snapshot.membership);
  at = out.writeInt32BE(snapshot.data.byteLength, at);
  out.set(snapshot.data, at);
  at += snapshot.data.byteLength;
  out.writeUInt32BE(crc32c(out.subarray(0, at)), at);
  return out;
}

/** The snapshot in a checkpoint file, or why it is not one. */
export function decodeSnapshotFile(bytes: Uint8Array): Snapshot | string {
  if (bytes.byteLength < 4 + 1 + 8 + 8 + 4 + 4) {
    return `File is too short: ${bytes.byteLength} bytes`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = view.getUint32(bytes.byteLength - 4);
  if (crc32c(bytes.subarray(0, bytes.byteLength - 4)) !== stored) return "CRC-32C mismatch";
  const reader = new Reader(bytes, 0, bytes.byteLength - 4);
  if (reader.uint32() !== SNAPSHOT_MAGIC) return "Not a snapshot file";
  const version = reader.int8();
  if (version !== SNAPSHOT_VERSION) return `Snapshot version is unknown: ${version}`;
  const index = reader.int64();
  const term = reader.int64();
  const membership = readMembership(reader);
  const size = reader.int32();
  if (size > SNAPSHOT_BYTES_MAX) return `Snapshot data is too large: ${size}`;
  const data = reader.view(size).slice();
  if (membership === null || !reader.complete()) {
    return reader.failure || "Snapshot file has bytes left over";
  }
  if (!isCount(index) || index === 0 || !isCount(term) || term === 0) {
    return "Snapshot index or term is bad";
  }
  return { index, term, membership, data };
}
