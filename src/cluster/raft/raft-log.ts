/**
 * @module
 * The in-memory Raft log of one node: the latest snapshot, the entries after it, the
 * commit and applied indexes, and what the driver has yet to persist (etcd-io/raft's
 * raftLog plus its `unstable`, in one place).
 *
 * The whole log after the snapshot is held in memory: a metadata log is small, and the
 * state machine bounds it by compacting (RaftNode does every `snapshotEveryEntries`).
 * Storage is written, never read back, while the node runs.
 *
 * Invariants:
 * - snapshot.index <= applied <= commit <= lastIndex;
 * - entries[i].index === snapshot.index + 1 + i, and terms never decrease along the log;
 * - entries at or below commit are never truncated;
 * - what storage holds is this log with `truncateFrom`, `pendingSnapshot` and the
 *   entries from `unstableFrom` still to apply (RaftStorage.saveSnapshot's rule).
 */
import { assert } from "../../util/assert.ts";
import { APPEND_BYTES_MAX, APPEND_ENTRIES_MAX } from "./limits.ts";
import { EMPTY_SNAPSHOT, type Entry, type Membership, type Snapshot } from "./types.ts";

export class RaftLog {
  /** Everything up to snapshot.index is in it; its data is what lagging followers get. */
  #snapshot: Snapshot;
  /** The entries after the snapshot, in index order. */
  #entries: Entry[];
  /** Highest index known committed (learned from a quorum or the leader). */
  #commit: number;
  /** Highest index handed to the state machine (through `advance`). */
  #applied: number;
  /** First index whose entry storage does not have yet; lastIndex + 1 when none. */
  #unstableFrom: number;
  /** Stored entries at and after this index must be dropped; null when none. */
  #truncateFrom: number | null = null;
  /** Last index in storage (after the last `advance`), to know when a cut reaches it. */
  #storedLast: number;
  /** A snapshot to persist (compaction or install); null when none. */
  #pendingSnapshot: Snapshot | null = null;
  /** A snapshot the state machine must load (install from the leader); null when none. */
  #pendingRestore: Snapshot | null = null;

  constructor(snapshot: Snapshot | null, entries: readonly Entry[], commit: number) {
    this.#snapshot = snapshot ?? EMPTY_SNAPSHOT;
    this.#entries = [...entries];
    const first = this.#snapshot.index + 1;
    for (let i = 0; i < this.#entries.length; i++) {
      const entry = this.#entries[i]!;
      assert(entry.index === first + i, `Stored entries are not contiguous at ${entry.index}`);
      const previousTerm = i === 0 ? this.#snapshot.term : this.#entries[i - 1]!.term;
      assert(entry.term >= previousTerm, `Stored entry terms decrease at ${entry.index}`);
    }
    this.#commit = Math.max(this.#snapshot.index, Math.min(commit, this.lastIndex));
    this.#applied = this.#snapshot.index;
    this.#storedLast = this.lastIndex;
    this.#unstableFrom = this.lastIndex + 1;
  }

  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  get firstIndex(): number {
    return this.#snapshot.index + 1;
  }

  get lastIndex(): number {
    return this.#snapshot.index + this.#entries.length;
  }

  get lastTerm(): number {
    return this.#entries.length === 0 ? this.#snapshot.term : this.#entries.at(-1)!.term;
  }

  get commit(): number {
    return this.#commit;
  }

  get applied(): number {
    return this.#applied;
  }

  /** The term of the entry at `index`; null when compacted away or past the end. */
  termAt(index: number): number | null {
    if (index === this.#snapshot.index) return this.#snapshot.term;
    if (index < this.#snapshot.index || index > this.lastIndex) return null;
    return this.#entries[index - this.#snapshot.index - 1]!.term;
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.#snapshot.index) return undefined;
    return this.#entries[index - this.#snapshot.index - 1];
  }

  /** True when the log holds `index` with `term` (the snapshot counts). */
  matches(index: number, term: number): boolean {
    return this.termAt(index) === term;
  }

  /** Raft's election restriction (paper 5.4.1): is (lastIndex, lastTerm) at least as new? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm || (lastTerm === this.lastTerm && lastIndex >= this.lastIndex);
  }

  /** Entries from `from` on, at most APPEND_ENTRIES_MAX of them and about APPEND_BYTES_MAX. */
  entriesFrom(from: number): Entry[] {
    assert(from > this.#snapshot.index, `Entries from ${from} are compacted`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = from; index <= this.lastIndex && out.length < APPEND_ENTRIES_MAX; index++) {
      const entry = this.entryAt(index)!;
      if (out.length > 0 && bytes + entry.data.byteLength > APPEND_BYTES_MAX) break;
      bytes += entry.data.byteLength;
      out.push(entry);
    }
    return out;
  }

  /** Appends one entry at the end (the leader's own). */
  append(entry: Entry): void {
    assert(entry.index === this.lastIndex + 1, `Appended entry is not next: ${entry.index}`);
    assert(entry.term >= this.lastTerm, `Appended entry's term goes back: ${entry.term}`);
    this.#entries.push(entry);
  }

  /**
   * A follower's AppendEntries (paper 5.3, receiver steps 3-4): entries already present
   * with the same term are kept (a duplicate or reordered message must not cut the log),
   * the first conflicting one and all after it are replaced. The caller has checked that
   * the entry before `entries` matches. Answers where the log was cut, if it was.
   */
  appendFromLeader(entries: readonly Entry[]): { truncatedAt: number | null } {
    let i = 0;
    while (i < entries.length && entries[i]!.index <= this.lastIndex) {
      const entry = entries[i]!;
      if (entry.index > this.#snapshot.index && this.termAt(entry.index) !== entry.term) break;
      i++;
    }
    if (i === entries.length) return { truncatedAt: null };
    const first = entries[i]!;
    let truncatedAt: number | null = null;
    if (first.index <= this.lastIndex) {
      truncatedAt = first.index;
      this.truncate(first.index);
    }
    for (; i < entries.length; i++) this.append(entries[i]!);
    return { truncatedAt };
  }

  /** Drops the entries at and after `index` (never committed ones). */
  truncate(index: number): void {
    assert(index > this.#commit, `Truncating committed entries: ${index} <= ${this.#commit}`);
    assert(index > this.#snapshot.index, "Truncating into the snapshot");
    if (index > this.lastIndex) return;
    this.#entries.length = index - this.#snapshot.index - 1;
    if (index <= this.#storedLast) {
      this.#truncateFrom = Math.min(this.#truncateFrom ?? index, index);
    }
    this.#unstableFrom = Math.min(this.#unstableFrom, index);
  }

  /** Raises the commit index (never lowers it, never past the log). */
  commitTo(index: number): boolean {
    if (index <= this.#commit) return false;
    assert(index <= this.lastIndex, `Commit past the log end: ${index} > ${this.lastIndex}`);
    this.#commit = index;
    return true;
  }

  /**
   * Installs a leader's snapshot that this log does not match at its index: the whole
   * log is replaced by it (paper 7, receiver steps 6-8), the state machine restarts from
   * it, and storage drops every entry (`truncateFrom` after the snapshot).
   */
  restore(snapshot: Snapshot): void {
    assert(snapshot.index > this.#commit, "Restoring a snapshot that is already committed");
    this.#entries = [];
    this.#snapshot = snapshot;
    this.#commit = snapshot.index;
    this.#pendingSnapshot = snapshot;
    this.#pendingRestore = snapshot;
    this.#truncateFrom = Math.min(this.#truncateFrom ?? snapshot.index + 1, snapshot.index + 1);
    this.#unstableFrom = snapshot.index + 1;
  }

  /**
   * Compaction (paper 7): the state machine's snapshot at `index` (applied) replaces the
   * entries up to it. `membership` is the configuration in force at `index`.
   */
  compact(index: number, membership: Membership, data: Uint8Array): Snapshot {
    assert(index > this.#snapshot.index, `Compaction goes back: ${index}`);
    assert(
      index <= this.#applied,
      `Compaction past the applied index: ${index} > ${this.#applied}`,
    );
    const term = this.termAt(index);
    assert(term !== null, `No term at compaction index ${index}`);
    const snapshot: Snapshot = { index, term, membership, data };
    this.#entries = this.#entries.slice(index - this.#snapshot.index);
    this.#snapshot = snapshot;
    this.#pendingSnapshot = snapshot;
    return snapshot;
  }

  // -------------------------------------------------------------------------------------
  // What the next Ready carries, and `advance`.

  hasUnstable(): boolean {
    return (
      this.#unstableFrom <= this.lastIndex ||
      this.#truncateFrom !== null ||
      this.#pendingSnapshot !== null
    );
  }

  unstableEntries(): Entry[] {
    if (this.#unstableFrom > this.lastIndex) return [];
    return this.#entries.slice(this.#unstableFrom - this.#snapshot.index - 1);
  }

  get truncateFrom(): number | null {
    return this.#truncateFrom;
  }

  get pendingSnapshot(): Snapshot | null {
    return this.#pendingSnapshot;
  }

  get pendingRestore(): Snapshot | null {
    return this.#pendingRestore;
  }

  hasCommittedToApply(): boolean {
    return this.#commit > this.#applied;
  }

  /** Committed entries not yet applied (after a pending restore, those after it). */
  committedToApply(): Entry[] {
    const from = Math.max(this.#applied, this.#snapshot.index) + 1;
    if (from > this.#commit) return [];
    return this.#entries.slice(
      from - this.#snapshot.index - 1,
      this.#commit - this.#snapshot.index,
    );
  }

  /** Everything handed out is persisted and applied (no call came in between). */
  advance(appliedTo: number): void {
    this.#storedLast = this.lastIndex;
    this.#unstableFrom = this.lastIndex + 1;
    this.#truncateFrom = null;
    this.#pendingSnapshot = null;
    this.#pendingRestore = null;
    assert(appliedTo >= this.#applied, "Applied index goes back");
    assert(appliedTo <= this.#commit, "Applied past the commit index");
    this.#applied = appliedTo;
  }
}
