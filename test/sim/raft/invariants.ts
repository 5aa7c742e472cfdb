/**
 * Raft's safety properties (paper figure 3, dissertation 3.6), checked across all nodes
 * of a simulation after every step. Each check is incremental, so a seed stays cheap:
 *
 * - Election Safety: at most one leader per term.
 * - Log Matching: two logs with an entry of the same index and term hold the same
 *   entry there and the same terms before it. Checked inductively: every entry any node
 *   writes is recorded by (index, term) with its payload hash and the term before it;
 *   a second writer of (index, term) must agree on both.
 * - Leader Completeness: a leader of term T holds every entry committed in a term <= T
 *   (in its log or its snapshot); checked when it becomes leader and whenever a new
 *   commit is seen.
 * - State Machine Safety: no two nodes apply different entries at one index; the
 *   simulated state machine's hash after each index must agree too, across snapshots.
 * - Committed entries are never lost across crashes: what is committed stays in every
 *   later leader (completeness), and the final check after healing requires every node
 *   to reach the same state hash past all of it.
 */
import type { Raft } from "../../../src/cluster/raft/raft.ts";
import type { Entry, NodeId } from "../../../src/cluster/raft/types.ts";

export class InvariantError extends Error {
  override name = "InvariantError";
}

function fail(message: string): never {
  throw new InvariantError(message);
}

/** FNV-1a over bytes, continuing from `hash`. */
export function hashBytes(bytes: Uint8Array, hash = 0x811c9dc5): number {
  let h = hash >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function hashEntry(entry: Entry): number {
  let h = hashBytes(entry.data);
  h =
    Math.imul(h ^ (entry.kind === "data" ? 1 : entry.kind === "config" ? 2 : 3), 0x01000193) >>> 0;
  return h;
}

interface WrittenEntry {
  readonly hash: number;
  readonly prevTerm: number;
}

interface CommittedEntry {
  readonly term: number;
  readonly hash: number;
  /** The term in which it was first seen committed (the deciding leader's term). */
  readonly commitTerm: number;
}

interface AppliedEntry {
  readonly term: number;
  readonly hash: number;
  /** The state machine's hash after applying it. */
  readonly stateHash: number;
}

export class InvariantChecker {
  readonly #leaders = new Map<number, NodeId>();
  readonly #written = new Map<string, WrittenEntry>();
  readonly #committed = new Map<number, CommittedEntry>();
  readonly #applied = new Map<number, AppliedEntry>();
  /** Highest committed index seen anywhere. */
  maxCommitted = 0;

  /** Before `raft`'s Ready is persisted: the entries it appends (Log Matching). */
  onEntriesWritten(raft: Raft, entries: readonly Entry[]): void {
    for (const entry of entries) {
      const prevTerm = entry.index === 1 ? 0 : raft.termAt(entry.index - 1);
      if (prevTerm === null) fail(`Node ${raft.id}: no term before written entry ${entry.index}`);
      const key = `${entry.index}:${entry.term}`;
      const hash = hashEntry(entry);
      const seen = this.#written.get(key);
      if (seen === undefined) {
        this.#written.set(key, { hash, prevTerm });
        continue;
      }
      if (seen.hash !== hash) fail(`Log Matching: entry ${key} differs on node ${raft.id}`);
      if (seen.prevTerm !== prevTerm) {
        fail(
          `Log Matching: entry ${key} follows term ${prevTerm} on node ${raft.id}, ${seen.prevTerm} elsewhere`,
        );
      }
    }
  }

  /** Entries `raft` reports newly committed (in its current term). */
  onCommitted(raft: Raft, entries: readonly Entry[], leaders: readonly Raft[]): void {
    for (const entry of entries) {
      const hash = hashEntry(entry);
      const seen = this.#committed.get(entry.index);
      if (seen !== undefined) {
        if (seen.term !== entry.term || seen.hash !== hash) {
          fail(
            `State Machine Safety: index ${entry.index} committed as term ${seen.term} and ${entry.term} (node ${raft.id})`,
          );
        }
        continue;
      }
      const committed = { term: entry.term, hash, commitTerm: raft.term };
      this.#committed.set(entry.index, committed);
      this.maxCommitted = Math.max(this.maxCommitted, entry.index);
      for (const leader of leaders) this.#checkHolds(leader, entry.index, committed);
    }
  }

  /** `raft` applied `entry`, reaching `stateHash`. */
  onApplied(raft: Raft, entry: Entry, stateHash: number): void {
    const hash = hashEntry(entry);
    const seen = this.#applied.get(entry.index);
    if (seen === undefined) {
      this.#applied.set(entry.index, { term: entry.term, hash, stateHash });
      return;
    }
    if (seen.term !== entry.term || seen.hash !== hash) {
      fail(`State Machine Safety: node ${raft.id} applied another entry at ${entry.index}`);
    }
    if (seen.stateHash !== stateHash) {
      fail(`State Machine Safety: node ${raft.id} state differs after ${entry.index}`);
    }
  }

  /** `raft` restored a snapshot taken at `index` with state `stateHash`. */
  onRestored(raft: Raft, index: number, stateHash: number): void {
    const seen = this.#applied.get(index);
    if (seen !== undefined && seen.stateHash !== stateHash) {
      fail(
        `State Machine Safety: node ${raft.id} restored a snapshot at ${index} with another state`,
      );
    }
  }

  /** After each step of `raft`: Election Safety, and completeness of a new leader. */
  onSoftState(raft: Raft, becameLeader: boolean): void {
    if (raft.role !== "leader") return;
    const other = this.#leaders.get(raft.term);
    if (other !== undefined && other !== raft.id) {
      fail(`Election Safety: nodes ${other} and ${raft.id} both lead term ${raft.term}`);
    }
    this.#leaders.set(raft.term, raft.id);
    if (!becameLeader) return;
    for (const [index, committed] of this.#committed) this.#checkHolds(raft, index, committed);
  }

  /** The state hash any node reached after `index`, if one applied it. */
  stateHashAt(index: number): number | undefined {
    return this.#applied.get(index)?.stateHash;
  }

  /** The term of the entry seen committed at `index`, if any. */
  committedTermAt(index: number): number | undefined {
    return this.#committed.get(index)?.term;
  }

  committedCount(): number {
    return this.#committed.size;
  }

  #checkHolds(leader: Raft, index: number, committed: CommittedEntry): void {
    if (leader.role !== "leader" || committed.commitTerm > leader.term) return;
    if (index <= leader.snapshot().index) return;
    const term = leader.termAt(index);
    if (term !== committed.term) {
      fail(
        `Leader Completeness: leader ${leader.id} of term ${leader.term} lacks committed entry ${index} (term ${committed.term}, has ${term})`,
      );
    }
  }
}
