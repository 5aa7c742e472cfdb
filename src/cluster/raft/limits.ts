/**
 * @module
 * Bounds of the Raft metadata quorum, with their relations asserted at load
 * (docs/conventions.md, section 4). Each bounds memory, a message on the wire, or the
 * work of one call.
 */
import { assert } from "../../util/assert.ts";

/** Largest payload of one log entry. Metadata records are small; this is a guard rail. */
export const ENTRY_BYTES_MAX = 1024 * 1024;

/** Entries in one Append message, and their payload bytes (at least one entry is sent). */
export const APPEND_ENTRIES_MAX = 256;
export const APPEND_BYTES_MAX = 1024 * 1024;

/**
 * Largest snapshot a state machine may hand to `compact` (sent whole in one message:
 * metadata snapshots are small, so Raft's chunked InstallSnapshot is not needed).
 */
export const SNAPSHOT_BYTES_MAX = 8 * 1024 * 1024 - 64 * 1024;

/** Members (voters and observers) of one configuration. */
export const MEMBERS_MAX = 1024;

/**
 * Entries a leader holds beyond its commit index before it refuses proposals (etcd's
 * MaxUncommittedEntriesSize, counted in entries): a leader cut off from its quorum
 * must not grow its log without end.
 */
export const UNCOMMITTED_ENTRIES_MAX = 4096;

/** Append messages in flight to one follower before the leader waits for acks. */
export const INFLIGHT_APPENDS_MAX = 64;

/** Wire frames: 4-byte length, then a 1-byte type and the body. */
export const FRAME_HEADER_BYTES = 5;
/** A frame carrying a snapshot. */
export const SNAPSHOT_FRAME_BYTES_MAX = 8 * 1024 * 1024;
/** A frame carrying entries. */
export const APPEND_FRAME_BYTES_MAX = 2 * 1024 * 1024;
/** Votes, responses, TimeoutNow: fixed small bodies. */
export const SMALL_FRAME_BYTES_MAX = 256;

/** Bytes one entry adds to an Append frame besides its payload (index, term, kind, length). */
export const ENTRY_OVERHEAD_BYTES = 8 + 8 + 1 + 4;
/** Bytes of one member in an encoded configuration (id, flags). */
export const MEMBER_BYTES = 4 + 1;

assert(ENTRY_BYTES_MAX <= APPEND_BYTES_MAX, "One entry must fit one Append");
assert(
  APPEND_BYTES_MAX + APPEND_ENTRIES_MAX * ENTRY_OVERHEAD_BYTES + 1024 <= APPEND_FRAME_BYTES_MAX,
  "A full Append must fit its frame",
);
assert(
  SNAPSHOT_BYTES_MAX + MEMBERS_MAX * MEMBER_BYTES + 1024 <= SNAPSHOT_FRAME_BYTES_MAX,
  "The largest snapshot must fit its frame",
);
assert(INFLIGHT_APPENDS_MAX >= 1, "At least one Append must be allowed in flight");
