/**
 * One contract suite for every RaftStorage (docs/conventions.md, section 7), run on the
 * in-memory storage and on the file storage; then what only the file storage has: its
 * files, and what it finds after crashes and damage.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildBatch } from "../../protocol/record-batch-builder.ts";
import { DEFAULT_LOG_CONFIG } from "../../storage/log-config.ts";
import { PartitionLog } from "../../storage/partition-log.ts";
import { makeTempDir, removeDir } from "../../storage/test-support.ts";
import { ManualClock } from "../../util/clock.ts";
import {
  checkpointName,
  encodeSnapshotFile,
  FileRaftStorage,
  QUORUM_STATE_FILE,
  RAFT_DIR,
  RaftStorageError,
} from "./file-storage.ts";
import { encodeMembership } from "./membership.ts";
import { entriesAfterSnapshot, MemoryRaftStorage, type RaftStorage } from "./storage.ts";
import type { Entry, Snapshot } from "./types.ts";

const dirs: string[] = [];
const opened: RaftStorage[] = [];

afterEach(() => {
  for (const storage of opened.splice(0)) storage.close();
  for (const dir of dirs.splice(0)) removeDir(dir);
});

const membership = {
  members: [
    { id: 1, voter: true },
    { id: 2, voter: false },
  ],
};

function entry(index: number, term: number, text = `e${index}`): Entry {
  return { index, term, kind: "data", data: new TextEncoder().encode(text) };
}

function entries(from: number, to: number, term: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
}

function snapshot(index: number, term: number, text = `s${index}`): Snapshot {
  return { index, term, membership, data: new TextEncoder().encode(text) };
}

interface Subject {
  /** Opens the storage (first time or again after a clean close). */
  open(): RaftStorage;
}

function memorySubject(): Subject {
  const storage = new MemoryRaftStorage();
  return { open: () => storage };
}

function fileSubject(): Subject {
  const dir = makeTempDir("raft-storage");
  dirs.push(dir);
  return {
    open: () => {
      const storage = new FileRaftStorage({ dataDir: dir, clock: new ManualClock() });
      opened.push(storage);
      return storage;
    },
  };
}

function loaded(subject: Subject, previous?: RaftStorage) {
  previous?.close();
  const storage = subject.open();
  return { storage, state: storage.load() };
}

for (const [name, make] of [
  ["memory", memorySubject],
  ["file", fileSubject],
] as const) {
  describe(`raft: storage contract (${name})`, () => {
    test("a new storage is empty", () => {
      const { state } = loaded(make());
      expect(state.hardState).toEqual({ term: 0, vote: null, commit: 0 });
      expect(state.snapshot).toBeNull();
      expect(state.entries).toEqual([]);
    });

    test("term, vote and synced entries come back, kinds and all", () => {
      const subject = make();
      const { storage } = loaded(subject);
      storage.saveHardState({ term: 3, vote: 2 });
      const written: Entry[] = [
        { index: 1, term: 1, kind: "config", data: encodeMembership(membership) },
        { index: 2, term: 2, kind: "noop", data: new Uint8Array(0) },
        entry(3, 3),
        { index: 4, term: 3, kind: "data", data: new Uint8Array(0) },
      ];
      storage.append(written);
      storage.sync();
      const again = loaded(subject, storage);
      expect(again.state.hardState).toEqual({ term: 3, vote: 2, commit: 0 });
      expect(again.state.entries).toEqual(written);
      again.storage.saveHardState({ term: 4, vote: null });
      const third = loaded(subject, again.storage);
      expect(third.state.hardState).toEqual({ term: 4, vote: null, commit: 0 });
    });

    test("truncation drops the suffix, appends continue after it", () => {
      const subject = make();
      const { storage } = loaded(subject);
      storage.saveHardState({ term: 3, vote: null });
      storage.append(entries(1, 6, 1));
      storage.sync();
      storage.truncateFrom(4);
      storage.append(entries(4, 5, 3));
      storage.sync();
      const again = loaded(subject, storage);
      expect(again.state.entries).toEqual([...entries(1, 3, 1), ...entries(4, 5, 3)]);
    });

    test("a compaction snapshot keeps the entries after it", () => {
      const subject = make();
      const { storage } = loaded(subject);
      storage.saveHardState({ term: 2, vote: 1 });
      storage.append([...entries(1, 5, 1), ...entries(6, 8, 2)]);
      storage.sync();
      storage.saveSnapshot(snapshot(6, 2));
      storage.append([entry(9, 2)]);
      storage.sync();
      const again = loaded(subject, storage);
      expect(again.state.snapshot).toEqual(snapshot(6, 2));
      expect(again.state.entries).toEqual([entry(7, 2), entry(8, 2), entry(9, 2)]);
    });

    test("an installed snapshot over a divergent log drops every entry", () => {
      const subject = make();
      const { storage } = loaded(subject);
      storage.saveHardState({ term: 4, vote: null });
      storage.append(entries(1, 6, 1));
      storage.sync();
      // The leader's snapshot at 4 has term 3: this log diverged before it.
      storage.truncateFrom(5);
      storage.saveSnapshot(snapshot(4, 3));
      storage.append([entry(5, 4)]);
      storage.sync();
      const again = loaded(subject, storage);
      expect(again.state.snapshot).toEqual(snapshot(4, 3));
      expect(again.state.entries).toEqual([entry(5, 4)]);
    });

    test("a snapshot past the end of a short log starts the log after it", () => {
      const subject = make();
      const { storage } = loaded(subject);
      storage.saveHardState({ term: 5, vote: 3 });
      storage.append(entries(1, 2, 1));
      storage.sync();
      storage.truncateFrom(11);
      storage.saveSnapshot(snapshot(10, 4));
      storage.sync();
      let again = loaded(subject, storage);
      expect(again.state.snapshot).toEqual(snapshot(10, 4));
      expect(again.state.entries).toEqual([]);
      again.storage.append(entries(11, 12, 5));
      again.storage.sync();
      again = loaded(subject, again.storage);
      expect(again.state.entries).toEqual(entries(11, 12, 5));
      // A later compaction, then more, survive too.
      again.storage.saveSnapshot(snapshot(12, 5));
      again.storage.append([entry(13, 5)]);
      again.storage.sync();
      again = loaded(subject, again.storage);
      expect(again.state.snapshot).toEqual(snapshot(12, 5));
      expect(again.state.entries).toEqual([entry(13, 5)]);
    });
  });
}

test("raft: storage: memory storage loses unsynced writes on a crash, keeps a prefix if asked", () => {
  const storage = new MemoryRaftStorage();
  storage.load();
  storage.saveHardState({ term: 1, vote: 1 });
  storage.append(entries(1, 2, 1));
  storage.sync();
  storage.saveHardState({ term: 2, vote: 2 });
  storage.append(entries(3, 5, 2));
  expect(storage.pendingOperations).toBe(4);
  storage.crash(2);
  const state = storage.load();
  expect(state.hardState.term).toBe(2);
  expect(state.entries.map((e) => e.index)).toEqual([1, 2, 3]);
});

test("raft: storage: entries after a snapshot are kept only when they continue it", () => {
  const log = [...entries(1, 4, 1), ...entries(5, 6, 2)];
  expect(entriesAfterSnapshot(snapshot(4, 1), log).map((e) => e.index)).toEqual([5, 6]);
  // The stored entry at the snapshot's index has another term: left from an interrupted install.
  expect(entriesAfterSnapshot(snapshot(4, 3), log)).toEqual([]);
  // A log restarted right after the snapshot.
  expect(entriesAfterSnapshot(snapshot(4, 3), entries(5, 6, 3)).map((e) => e.index)).toEqual([
    5, 6,
  ]);
  // A gap between the snapshot and the log.
  expect(entriesAfterSnapshot(snapshot(2, 1), entries(5, 6, 3))).toEqual([]);
  expect(entriesAfterSnapshot(snapshot(9, 2), log)).toEqual([]);
});

describe("raft: file storage", () => {
  function fresh(): { dataDir: string; open: () => FileRaftStorage } {
    const dataDir = makeTempDir("raft-file");
    dirs.push(dataDir);
    return {
      dataDir,
      open: () => {
        const storage = new FileRaftStorage({ dataDir, clock: new ManualClock() });
        opened.push(storage);
        return storage;
      },
    };
  }

  test("files: quorum-state JSON, named checkpoints, one batch per entry with the term as epoch", () => {
    const { dataDir, open } = fresh();
    const storage = open();
    storage.load();
    storage.saveHardState({ term: 7, vote: 3 });
    storage.append([...entries(1, 3, 6), ...entries(4, 5, 7)]);
    storage.sync();
    storage.saveSnapshot(snapshot(3, 6));
    storage.close();
    const dir = join(dataDir, RAFT_DIR);
    expect(JSON.parse(readFileSync(join(dir, QUORUM_STATE_FILE), "utf8"))).toEqual({
      version: 1,
      term: 7,
      votedFor: 3,
    });
    const files = readdirSync(dir).sort();
    expect(files).toContain("00000000000000000003-0000000006.checkpoint");
    expect(checkpointName(3, 6)).toBe("00000000000000000003-0000000006.checkpoint");
    expect(files.filter((f) => f.endsWith(".tmp"))).toEqual([]);
    const partitionLog = PartitionLog.open({
      dir,
      config: DEFAULT_LOG_CONFIG,
      clock: new ManualClock(),
    });
    const read = partitionLog.read(3, 1 << 20, { minOneBatch: true });
    expect(read.ok).toBe(true);
    if (read.ok) {
      // Offset 3 is index 4: term 7 in partitionLeaderEpoch.
      expect(Buffer.from(read.records).readInt32BE(12)).toBe(7);
    }
    partitionLog.close();
  });

  test("a crash between saving an installed snapshot and dropping the old log", () => {
    const { dataDir, open } = fresh();
    const storage = open();
    storage.load();
    storage.saveHardState({ term: 4, vote: null });
    storage.append(entries(1, 6, 1));
    storage.sync();
    storage.close();
    // The snapshot file made it, the divergent log is still there.
    const dir = join(dataDir, RAFT_DIR);
    writeFileSync(join(dir, checkpointName(4, 3)), encodeSnapshotFile(snapshot(4, 3)));
    const again = open();
    const state = again.load();
    expect(state.snapshot).toEqual(snapshot(4, 3));
    expect(state.entries).toEqual([]);
    again.append([entry(5, 4)]);
    again.sync();
    again.close();
    expect(open().load().entries).toEqual([entry(5, 4)]);
  });

  test("a damaged newest snapshot falls back to an older one", () => {
    const { dataDir, open } = fresh();
    const storage = open();
    storage.load();
    storage.saveHardState({ term: 2, vote: null });
    storage.append(entries(1, 8, 2));
    storage.sync();
    storage.saveSnapshot(snapshot(3, 2));
    storage.close();
    const dir = join(dataDir, RAFT_DIR);
    const bad = encodeSnapshotFile(snapshot(6, 2));
    bad[bad.byteLength - 10] = bad[bad.byteLength - 10]! ^ 0xff;
    writeFileSync(join(dir, checkpointName(6, 2)), bad);
    const state = open().load();
    expect(state.snapshot).toEqual(snapshot(3, 2));
    expect(state.entries.map((e) => e.index)).toEqual([4, 5, 6, 7, 8]);
  });

  test("a log written before Raft (several records per batch) is refused with a typed error", () => {
    const { dataDir, open } = fresh();
    const dir = join(dataDir, RAFT_DIR);
    mkdirSync(dir, { recursive: true });
    const old = PartitionLog.open({ dir, config: DEFAULT_LOG_CONFIG, clock: new ManualClock() });
    old.append(buildBatch({ baseTimestamp: 0, records: [{ value: "{}" }] }), { leaderEpoch: 0 });
    old.close();
    // One record per batch, but epoch 0: no Raft term.
    expect(() => open().load()).toThrow(RaftStorageError);
    opened.splice(0).forEach((storage) => storage.close());
    const older = PartitionLog.open({ dir, config: DEFAULT_LOG_CONFIG, clock: new ManualClock() });
    const batch = buildBatch({ baseTimestamp: 0, records: [{ value: "{}" }, { value: "{}" }] });
    older.append(batch, { leaderEpoch: 1 });
    older.close();
    expect(() => open().load()).toThrow(RaftStorageError);
  });

  test("a damaged quorum-state is refused with a typed error", () => {
    const { dataDir, open } = fresh();
    const dir = join(dataDir, RAFT_DIR);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, QUORUM_STATE_FILE), "{not json");
    expect(() => open().load()).toThrow(RaftStorageError);
    writeFileSync(
      join(dir, QUORUM_STATE_FILE),
      JSON.stringify({ version: 1, term: -1, votedFor: 2 }),
    );
    expect(() => open().load()).toThrow(RaftStorageError);
  });

  test("leftover temporary files are removed on load", () => {
    const { dataDir, open } = fresh();
    const dir = join(dataDir, RAFT_DIR);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${QUORUM_STATE_FILE}.tmp`), "partial");
    open().load();
    expect(existsSync(join(dir, `${QUORUM_STATE_FILE}.tmp`))).toBe(false);
  });
});
