/**
 * @module
 * Where Raft's durable state lives: the `RaftStorage` interface, `persistReady` (the one
 * place the persistence order is written down), the rule that reconciles a snapshot
 * with the log found next to it at start, and `MemoryRaftStorage` for the simulator and
 * tests, which loses unsynced writes on `crash()` the way a power cut does.
 *
 * The persistence order, and why:
 * 1. term and vote, durable at once: a vote or an entry of a new term must never
 *    survive a crash that forgot the term (two votes in one term elect two leaders);
 * 2. truncation of a conflicting suffix (never committed entries);
 * 3. a snapshot, durable before the entries it replaces are dropped;
 * 4. new entries, then one fsync (`sync`) — all before any message of the Ready leaves.
 * A crash at any point leaves a prefix of these steps done, which `load` accepts.
 *
 * The commit index is not stored: a commit index written before the entries it covers
 * could, after a torn write, call stale entries committed; written after them it would
 * cost a second fsync per Ready. A restarted node relearns it from the leader (or, alone,
 * by committing its first entry as leader) and re-applies from its snapshot.
 */
import { assert } from "../../util/assert.ts";
import {
  EMPTY_STORED_STATE,
  type Entry,
  type HardState,
  type NodeId,
  type Ready,
  type Snapshot,
  type StoredState,
} from "./types.ts";

export interface RaftStorage {
  /** The durable state, read once when the node starts. */
  load(): StoredState;
  /** Term and vote, durable (atomically replaced) on return. */
  saveHardState(state: { term: number; vote: NodeId | null }): void;
  /** Drops stored entries at and after `index`; durable on return. */
  truncateFrom(index: number): void;
  /**
   * Stores `snapshot`, durable on return, then drops the entries up to its index. The
   * entries after it stay only when the stored entry at its index has its term (a
   * compaction); otherwise (a snapshot installed from the leader over a log that
   * diverged or is shorter) every entry goes.
   */
  saveSnapshot(snapshot: Snapshot): void;
  /** Appends entries right after the last stored one; durable once `sync` returns. */
  append(entries: readonly Entry[]): void;
  /** fsync: everything appended is durable on return. */
  sync(): void;
  close(): void;
}

/** Persists what `ready` asks for, in the order above; durable on return. */
export function persistReady(storage: RaftStorage, ready: Ready): void {
  if (writeReady(storage, ready)) storage.sync();
}

/**
 * The writes of `persistReady` without the final fsync (the simulator crashes between
 * the two); true when there was anything to write, so a sync is due.
 */
export function writeReady(storage: RaftStorage, ready: Ready): boolean {
  if (ready.hardState !== null) storage.saveHardState(ready.hardState);
  if (ready.truncateFrom !== null) storage.truncateFrom(ready.truncateFrom);
  if (ready.snapshot !== null) storage.saveSnapshot(ready.snapshot);
  if (ready.entries.length > 0) storage.append(ready.entries);
  return (
    ready.hardState !== null ||
    ready.truncateFrom !== null ||
    ready.snapshot !== null ||
    ready.entries.length > 0
  );
}

/**
 * Which of the stored `entries` (ascending, contiguous) belong after `snapshot` at
 * start. Entries up to the snapshot are dropped. Those after it are kept when the log
 * holds the snapshot's own entry with its term, or starts right after it (the log was
 * restarted there when the snapshot was installed, or compaction removed the segment
 * that held it); otherwise they are left from a crash between saving an installed
 * snapshot and dropping a divergent log, and go.
 */
export function entriesAfterSnapshot(
  snapshot: Snapshot | null,
  entries: readonly Entry[],
): Entry[] {
  for (let i = 1; i < entries.length; i++) {
    assert(entries[i]!.index === entries[i - 1]!.index + 1, "Stored entries are not contiguous");
  }
  if (snapshot === null) {
    assert(
      entries.length === 0 || entries[0]!.index === 1,
      "Stored log without a snapshot starts after 1",
    );
    return [...entries];
  }
  const first = entries[0];
  if (first === undefined) return [];
  const after = entries.filter((entry) => entry.index > snapshot.index);
  if (after.length === 0) return [];
  if (first.index === snapshot.index + 1) return after;
  const own = entries.find((entry) => entry.index === snapshot.index);
  return own !== undefined && own.term === snapshot.term ? after : [];
}

// ---------------------------------------------------------------------------------------

type Operation =
  | { readonly kind: "hardState"; readonly term: number; readonly vote: NodeId | null }
  | { readonly kind: "truncate"; readonly index: number }
  | { readonly kind: "snapshot"; readonly snapshot: Snapshot }
  | { readonly kind: "append"; readonly entry: Entry };

interface Durable {
  term: number;
  vote: NodeId | null;
  snapshot: Snapshot | null;
  /** After the snapshot, contiguous. */
  entries: Entry[];
}

/**
 * In-memory storage with a crash model: every write is an operation queued until
 * `sync`; `crash(keep)` makes only the first `keep` queued operations durable and drops
 * the rest (each appended entry is one operation, so a crash can tear an append). What
 * was synced always survives.
 */
export class MemoryRaftStorage implements RaftStorage {
  readonly #durable: Durable = { term: 0, vote: null, snapshot: null, entries: [] };
  /** Writes not yet synced, in order. */
  readonly #pending: Operation[] = [];
  #closed = false;

  load(): StoredState {
    this.#closed = false;
    const durable = this.#durable;
    if (durable.term === 0 && durable.snapshot === null && durable.entries.length === 0) {
      return EMPTY_STORED_STATE;
    }
    const hardState: HardState = { term: durable.term, vote: durable.vote, commit: 0 };
    const entries = entriesAfterSnapshot(durable.snapshot, durable.entries);
    return { hardState, snapshot: durable.snapshot, entries };
  }

  saveHardState(state: { term: number; vote: NodeId | null }): void {
    this.#queue({ kind: "hardState", term: state.term, vote: state.vote });
  }

  truncateFrom(index: number): void {
    assert(index >= 1, `Truncation index is below 1: ${index}`);
    this.#queue({ kind: "truncate", index });
  }

  saveSnapshot(snapshot: Snapshot): void {
    this.#queue({ kind: "snapshot", snapshot });
  }

  append(entries: readonly Entry[]): void {
    for (const entry of entries) this.#queue({ kind: "append", entry });
  }

  sync(): void {
    this.#assertOpen();
    for (const operation of this.#pending.splice(0)) apply(this.#durable, operation);
  }

  /** A clean stop: what was written is kept (as closing the file storage fsyncs). */
  close(): void {
    if (!this.#closed) this.sync();
    this.#closed = true;
  }

  /** Writes queued since the last sync. */
  get pendingOperations(): number {
    return this.#pending.length;
  }

  /** A power cut: the first `keep` unsynced writes reached the disk, the others did not. */
  crash(keep = 0): void {
    assert(keep >= 0, "Negative writes kept");
    const kept = this.#pending.splice(0).slice(0, keep);
    for (const operation of kept) apply(this.#durable, operation);
    this.#closed = true;
  }

  /** What a reader of the disk would find now (for the simulator's checks). */
  durableEntries(): readonly Entry[] {
    return this.#durable.entries;
  }

  durableSnapshot(): Snapshot | null {
    return this.#durable.snapshot;
  }

  #queue(operation: Operation): void {
    this.#assertOpen();
    this.#pending.push(operation);
  }

  #assertOpen(): void {
    assert(!this.#closed, "Raft storage is closed");
  }
}

function lastIndexOf(durable: Durable): number {
  return durable.entries.at(-1)?.index ?? durable.snapshot?.index ?? 0;
}

function apply(durable: Durable, operation: Operation): void {
  switch (operation.kind) {
    case "hardState":
      durable.term = operation.term;
      durable.vote = operation.vote;
      return;
    case "truncate":
      durable.entries = durable.entries.filter((entry) => entry.index < operation.index);
      return;
    case "snapshot": {
      const snapshot = operation.snapshot;
      const own = durable.entries.find((entry) => entry.index === snapshot.index);
      const keep = own !== undefined && own.term === snapshot.term;
      durable.entries = keep ? durable.entries.filter((entry) => entry.index > snapshot.index) : [];
      durable.snapshot = snapshot;
      return;
    }
    case "append": {
      const entry = operation.entry;
      assert(entry.index === lastIndexOf(durable) + 1, `Stored entry ${entry.index} is not next`);
      durable.entries.push(entry);
      return;
    }
  }
}
