/**
 * @module
 * The wire format of Raft messages between nodes (tcp-transport.ts carries it).
 *
 * A frame is `length uint32` (bytes after the length field), `type uint8`, then the
 * body, big-endian throughout. Every body starts with `from int32, to int32, term int64`:
 *
 * | type | message         | rest of the body                                              |
 * | ---- | --------------- | ------------------------------------------------------------- |
 * | 1    | preVote         | lastIndex int64, lastTerm int64                               |
 * | 2    | preVoteResponse | granted int8                                                  |
 * | 3    | vote            | lastIndex int64, lastTerm int64, transfer int8                |
 * | 4    | voteResponse    | granted int8                                                  |
 * | 5    | append          | prevIndex int64, prevTerm int64, commit int64, count int32,   |
 * |      |                 | count × (index int64, term int64, kind int8, length int32,    |
 * |      |                 | data) — kind 0 data, 1 config, 2 noop                         |
 * | 6    | appendResponse  | success int8, index int64, hint int64                         |
 * | 7    | snapshot        | index int64, term int64, membership (membership.ts),          |
 * |      |                 | length int32, data                                            |
 * | 8    | timeoutNow      | (nothing more)                                                |
 *
 * Limits per type (limits.ts): snapshots 8 MiB, appends 2 MiB, the rest 256 bytes.
 * Decoding never throws: bad bytes give a typed error, and a decoded message has passed
 * `validateMessage`, so Raft can trust its shape.
 */
import { Buffer } from "node:buffer";
import { Reader } from "../../protocol/reader.ts";
import { assert } from "../../util/assert.ts";
import {
  APPEND_FRAME_BYTES_MAX,
  ENTRY_OVERHEAD_BYTES,
  FRAME_HEADER_BYTES,
  SMALL_FRAME_BYTES_MAX,
  SNAPSHOT_FRAME_BYTES_MAX,
} from "./limits.ts";
import { membershipBytes, readMembership, writeMembership } from "./membership.ts";
import type { Entry, EntryKind, Message, MessageType } from "./types.ts";
import { validateMessage } from "./validate.ts";

const TYPE_CODES: Readonly<Record<MessageType, number>> = {
  preVote: 1,
  preVoteResponse: 2,
  vote: 3,
  voteResponse: 4,
  append: 5,
  appendResponse: 6,
  snapshot: 7,
  timeoutNow: 8,
};
const TYPES_BY_CODE: readonly (MessageType | undefined)[] = (() => {
  const out: (MessageType | undefined)[] = [];
  for (const [type, code] of Object.entries(TYPE_CODES)) out[code] = type as MessageType;
  return out;
})();

const KIND_CODES: Readonly<Record<EntryKind, number>> = { data: 0, config: 1, noop: 2 };
const KINDS_BY_CODE: readonly EntryKind[] = ["data", "config", "noop"];

/** Envelope: from int32, to int32, term int64. */
const ENVELOPE_BYTES = 4 + 4 + 8;

/** Largest frame (after the length field) a message of `type` may take. */
export function frameBytesMax(type: MessageType): number {
  switch (type) {
    case "snapshot":
      return SNAPSHOT_FRAME_BYTES_MAX;
    case "append":
      return APPEND_FRAME_BYTES_MAX;
    default:
      return SMALL_FRAME_BYTES_MAX;
  }
}

/**
 * truncated: the body ends before its fields do. tooLarge: the length is over the
 * type's limit. unknownType: no such message type. malformed: bytes left over, or a
 * field out of its range. invalid: well-formed bytes, but not a valid message.
 */
export type CodecErrorKind = "truncated" | "tooLarge" | "unknownType" | "malformed" | "invalid";

export interface CodecError {
  readonly kind: CodecErrorKind;
  readonly message: string;
}

export type DecodeResult =
  | { readonly kind: "message"; readonly message: Message; readonly frameBytes: number }
  /** More bytes are needed; `frameBytes` is the whole frame's size once known. */
  | { readonly kind: "incomplete"; readonly frameBytes: number | null }
  | { readonly kind: "error"; readonly error: CodecError };

function bodyBytes(message: Message): number {
  switch (message.type) {
    case "preVote":
      return 16;
    case "vote":
      return 17;
    case "preVoteResponse":
    case "voteResponse":
      return 1;
    case "append": {
      let bytes = 8 + 8 + 8 + 4;
      for (const entry of message.entries) bytes += ENTRY_OVERHEAD_BYTES + entry.data.byteLength;
      return bytes;
    }
    case "appendResponse":
      return 1 + 8 + 8;
    case "snapshot":
      return (
        8 + 8 + membershipBytes(message.snapshot.membership) + 4 + message.snapshot.data.byteLength
      );
    case "timeoutNow":
      return 0;
  }
}

/** One frame holding `message`. Asserts the message is valid: Raft only makes valid ones. */
export function encodeMessage(message: Message): Buffer {
  const problem = validateMessage(message);
  assert(problem === null, `Encoding an invalid Raft message: ${problem}`);
  const length = 1 + ENVELOPE_BYTES + bodyBytes(message);
  assert(
    length <= frameBytesMax(message.type),
    `Raft ${message.type} frame is too large: ${length}`,
  );
  const out = Buffer.allocUnsafe(4 + length);
  let at = out.writeUInt32BE(length, 0);
  at = out.writeUInt8(TYPE_CODES[message.type], at);
  at = out.writeInt32BE(message.from, at);
  at = out.writeInt32BE(message.to, at);
  at = writeCount(out, message.term, at);
  switch (message.type) {
    case "preVote":
    case "vote":
      at = writeCount(out, message.lastIndex, at);
      at = writeCount(out, message.lastTerm, at);
      if (message.type === "vote") at = out.writeInt8(message.transfer ? 1 : 0, at);
      break;
    case "preVoteResponse":
    case "voteResponse":
      at = out.writeInt8(message.granted ? 1 : 0, at);
      break;
    case "append":
      at = writeCount(out, message.prevIndex, at);
      at = writeCount(out, message.prevTerm, at);
      at = writeCount(out, message.commit, at);
      at = out.writeInt32BE(message.entries.length, at);
      for (const entry of message.entries) {
        at = writeCount(out, entry.index, at);
        at = writeCount(out, entry.term, at);
        at = out.writeInt8(KIND_CODES[entry.kind], at);
        at = out.writeInt32BE(entry.data.byteLength, at);
        out.set(entry.data, at);
        at += entry.data.byteLength;
      }
      break;
    case "appendResponse":
      at = out.writeInt8(message.success ? 1 : 0, at);
      at = writeCount(out, message.index, at);
      at = writeCount(out, message.hint, at);
      break;
    case "snapshot": {
      const snapshot = message.snapshot;
      at = writeCount(out, snapshot.index, at);
      at = writeCount(out, snapshot.term, at);
      at = writeMembership(out, at, snapshot.membership);
      at = out.writeInt32BE(snapshot.data.byteLength, at);
      out.set(snapshot.data, at);
      at += snapshot.data.byteLength;
      break;
    }
    case "timeoutNow":
      break;
  }
  assert(at === out.byteLength, `Raft frame size is off: ${at} of ${out.byteLength}`);
  return out;
}

function writeCount(out: Buffer, value: number, at: number): number {
  out.writeUInt32BE(Math.floor(value / 2 ** 32), at);
  out.writeUInt32BE(value >>> 0, at + 4);
  return at + 8;
}

/**
 * Reads the frame at the start of `bytes` (which may hold less than a frame, or more).
 * Never throws.
 */
export function decodeFrame(bytes: Uint8Array): DecodeResult {
  if (bytes.byteLength < 4) return { kind: "incomplete", frameBytes: null };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0);
  const error = (kind: CodecErrorKind, message: string): DecodeResult => ({
    kind: "error",
    error: { kind, message },
  });
  if (length > SNAPSHOT_FRAME_BYTES_MAX) {
    return error("tooLarge", `Raft frame is too large: ${length} bytes`);
  }
  if (length < 1) return error("truncated", "Raft frame has no type");
  if (bytes.byteLength < FRAME_HEADER_BYTES) return { kind: "incomplete", frameBytes: 4 + length };
  const code = view.getUint8(4);
  const type = TYPES_BY_CODE[code];
  if (type === undefined) return error("unknownType", `Raft message type is unknown: ${code}`);
  const limit = frameBytesMax(type);
  if (length > limit) {
    return error("tooLarge", `Raft ${type} frame is too large: ${length} > ${limit} bytes`);
  }
  if (bytes.byteLength < 4 + length) return { kind: "incomplete", frameBytes: 4 + length };
  const reader = new Reader(bytes, FRAME_HEADER_BYTES, 4 + length);
  const message = readBody(reader, type);
  if (reader.failed || message === null) {
    const kind = reader.failure.startsWith("Frame too short") ? "truncated" : "malformed";
    return error(kind, `Raft ${type} frame: ${reader.failure || "bad field"}`);
  }
  if (!reader.complete()) {
    return error("malformed", `Raft ${type} frame has ${reader.remaining} bytes left over`);
  }
  const problem = validateMessage(message);
  if (problem !== null) return error("invalid", `Raft ${type} message is invalid: ${problem}`);
  return { kind: "message", message, frameBytes: 4 + length };
}

function readBody(reader: Reader, type: MessageType): Message | null {
  const from = reader.int32();
  const to = reader.int32();
  const term = reader.int64();
  switch (type) {
    case "preVote":
      return { type, from, to, term, lastIndex: reader.int64(), lastTerm: reader.int64() };
    case "vote": {
      const lastIndex = reader.int64();
      const lastTerm = reader.int64();
      const transfer = readFlag(reader);
      return { type, from, to, term, lastIndex, lastTerm, transfer };
    }
    case "preVoteResponse":
    case "voteResponse":
      return { type, from, to, term, granted: readFlag(reader) };
    case "append": {
      const prevIndex = reader.int64();
      const prevTerm = reader.int64();
      const commit = reader.int64();
      const count = reader.int32();
      // Each entry takes at least its fixed fields: a count beyond that is a lie.
      if (count < 0 || count > reader.remaining / ENTRY_OVERHEAD_BYTES) {
        reader.fail(`Entry count is implausible: ${count}`);
        return null;
      }
      const entries: Entry[] = [];
      for (let i = 0; i < count && !reader.failed; i++) {
        const index = reader.int64();
        const entryTerm = reader.int64();
        const kind = KINDS_BY_CODE[reader.int8()];
        const size = reader.int32();
        // A copy: the entry lives on in the log after the frame's buffer is gone.
        const data = reader.view(size).slice();
        if (kind === undefined) {
          reader.fail("Entry kind is unknown");
          return null;
        }
        entries.push({ index, term: entryTerm, kind, data });
      }
      return { type, from, to, term, prevIndex, prevTerm, commit, entries };
    }
    case "appendResponse": {
      const success = readFlag(reader);
      const index = reader.int64();
      const hint = reader.int64();
      return { type, from, to, term, success, index, hint };
    }
    case "snapshot": {
      const index = reader.int64();
      const snapshotTerm = reader.int64();
      const membership = readMembership(reader);
      const size = reader.int32();
      const data = reader.view(size).slice();
      if (membership === null) return null;
      return { type, from, to, term, snapshot: { index, term: snapshotTerm, membership, data } };
    }
    case "timeoutNow":
      return { type, from, to, term };
  }
}

function readFlag(reader: Reader): boolean {
  const value = reader.int8();
  if (value !== 0 && value !== 1) reader.fail(`Flag is not 0 or 1: ${value}`);
  return value === 1;
}
