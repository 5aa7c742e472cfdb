/**
 * @module
 * Checks a message's shape before Raft acts on it: the edge where input from the
 * network (or a buggy peer) meets the state machine, so that `Raft.step` can trust what
 * passes (docs/conventions.md, section 6: bad input is refused, never asserted on). The
 * codec decodes only what this accepts.
 */
import { APPEND_ENTRIES_MAX, ENTRY_BYTES_MAX, MEMBERS_MAX, SNAPSHOT_BYTES_MAX } from "./limits.ts";
import { decodeMembership } from "./membership.ts";
import { type Entry, isCount, isNodeId, type Membership, type Message } from "./types.ts";

/** Null when `message` is well formed; otherwise why not. */
export function validateMessage(message: Message): string | null {
  if (!isNodeId(message.from)) return `Sender is not a node id: ${message.from}`;
  if (!isNodeId(message.to)) return `Receiver is not a node id: ${message.to}`;
  if (!isCount(message.term)) return `Term is not a count: ${message.term}`;
  switch (message.type) {
    case "preVote":
    case "vote":
      if (!isCount(message.lastIndex) || !isCount(message.lastTerm)) {
        return "Last entry is not counts";
      }
      if (message.lastTerm > message.term) return "Last entry's term is past the message's";
      if ((message.lastIndex === 0) !== (message.lastTerm === 0)) {
        return "Last entry is inconsistent";
      }
      return null;
    case "preVoteResponse":
    case "voteResponse":
      return typeof message.granted === "boolean" ? null : "Vote answer is not a boolean";
    case "append":
      return validateAppend(
        message.prevIndex,
        message.prevTerm,
        message.commit,
        message.term,
        message.entries,
      );
    case "appendResponse":
      if (!isCount(message.index) || !isCount(message.hint)) {
        return "Response indexes are not counts";
      }
      return typeof message.success === "boolean" ? null : "Success is not a boolean";
    case "snapshot": {
      const snapshot = message.snapshot;
      if (!isCount(snapshot.index) || snapshot.index === 0) return "Snapshot index is not positive";
      if (!isCount(snapshot.term) || snapshot.term === 0) return "Snapshot term is not positive";
      if (snapshot.term > message.term) return "Snapshot term is past the message's";
      if (snapshot.data.byteLength > SNAPSHOT_BYTES_MAX) return "Snapshot is too large";
      return validateMembership(snapshot.membership);
    }
    case "timeoutNow":
      return null;
    default:
      return `Message type is unknown: ${(message as { type: unknown }).type}`;
  }
}

function validateAppend(
  prevIndex: number,
  prevTerm: number,
  commit: number,
  term: number,
  entries: readonly Entry[],
): string | null {
  if (!isCount(prevIndex) || !isCount(prevTerm) || !isCount(commit)) {
    return "Append fields are not counts";
  }
  if (prevTerm > term) return "Previous entry's term is past the message's";
  if ((prevIndex === 0) !== (prevTerm === 0)) return "Previous entry is inconsistent";
  if (entries.length > APPEND_ENTRIES_MAX) return `Append has too many entries: ${entries.length}`;
  let lastTerm = prevTerm;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!;
    if (entry.index !== prevIndex + 1 + i) return `Entries are not contiguous at ${i}`;
    if (!isCount(entry.term) || entry.term < Math.max(1, lastTerm)) {
      return `Entry term goes back at ${i}`;
    }
    if (entry.term > term) return `Entry term is past the message's at ${i}`;
    if (!(entry.data instanceof Uint8Array)) return `Entry data is not bytes at ${i}`;
    if (entry.data.byteLength > ENTRY_BYTES_MAX) return `Entry is too large at ${i}`;
    switch (entry.kind) {
      case "data":
        break;
      case "noop":
        if (entry.data.byteLength !== 0) return `No-op entry has data at ${i}`;
        break;
      case "config":
        if (decodeMembership(entry.data) === null) return `Config entry does not decode at ${i}`;
        break;
      default:
        return `Entry kind is unknown at ${i}`;
    }
    lastTerm = entry.term;
  }
  return null;
}

function validateMembership(membership: Membership): string | null {
  if (membership.members.length > MEMBERS_MAX) return "Configuration has too many members";
  const seen = new Set<number>();
  for (const member of membership.members) {
    if (!isNodeId(member.id) || seen.has(member.id)) {
      return `Member id is bad or repeated: ${member.id}`;
    }
    if (typeof member.voter !== "boolean") return "Member voter flag is not a boolean";
    seen.add(member.id);
  }
  return null;
}
