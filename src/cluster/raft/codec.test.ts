import { expect, test } from "bun:test";
import { SeededRandom } from "../../util/random.ts";
import { decodeFrame, encodeMessage } from "./codec.ts";
import { APPEND_FRAME_BYTES_MAX, SNAPSHOT_FRAME_BYTES_MAX } from "./limits.ts";
import { encodeMembership } from "./membership.ts";
import type { Message } from "./types.ts";

const membership = {
  members: [
    { id: 1, voter: true },
    { id: 7, voter: false },
    { id: 3, voter: true },
  ],
};

const SAMPLES: Message[] = [
  { type: "preVote", from: 1, to: 2, term: 5, lastIndex: 10, lastTerm: 4 },
  { type: "preVoteResponse", from: 2, to: 1, term: 5, granted: true },
  { type: "vote", from: 1, to: 2, term: 5, lastIndex: 0, lastTerm: 0, transfer: true },
  { type: "voteResponse", from: 2, to: 1, term: 5, granted: false },
  {
    type: "append",
    from: 1,
    to: 3,
    term: 2 ** 40,
    prevIndex: 2 ** 45,
    prevTerm: 2 ** 39,
    commit: 2 ** 44,
    entries: [
      { index: 2 ** 45 + 1, term: 2 ** 40, kind: "data", data: new Uint8Array([1, 2, 3]) },
      { index: 2 ** 45 + 2, term: 2 ** 40, kind: "config", data: encodeMembership(membership) },
      { index: 2 ** 45 + 3, term: 2 ** 40, kind: "noop", data: new Uint8Array(0) },
    ],
  },
  { type: "append", from: 1, to: 3, term: 2, prevIndex: 0, prevTerm: 0, commit: 0, entries: [] },
  { type: "appendResponse", from: 3, to: 1, term: 2, success: false, index: 17, hint: 12 },
  {
    type: "snapshot",
    from: 1,
    to: 2,
    term: 9,
    snapshot: { index: 100, term: 8, membership, data: new Uint8Array([9, 9, 9, 9]) },
  },
  { type: "timeoutNow", from: 1, to: 2, term: 9 },
];

test("raft: codec: every message type round-trips", () => {
  for (const message of SAMPLES) {
    const frame = encodeMessage(message);
    const decoded = decodeFrame(frame);
    expect(decoded.kind).toBe("message");
    if (decoded.kind !== "message") continue;
    expect(decoded.frameBytes).toBe(frame.byteLength);
    expect(decoded.message).toEqual(message);
  }
});

test("raft: codec: frames back to back decode one at a time", () => {
  const frames = Buffer.concat(SAMPLES.map((message) => encodeMessage(message)));
  let at = 0;
  for (const message of SAMPLES) {
    const decoded = decodeFrame(frames.subarray(at));
    expect(decoded.kind).toBe("message");
    if (decoded.kind !== "message") return;
    expect(decoded.message).toEqual(message);
    at += decoded.frameBytes;
  }
  expect(at).toBe(frames.byteLength);
});

test("raft: codec: every prefix of a frame is incomplete, never an error", () => {
  for (const message of SAMPLES) {
    const frame = encodeMessage(message);
    for (let cut = 0; cut < frame.byteLength; cut++) {
      const decoded = decodeFrame(frame.subarray(0, cut));
      expect(decoded.kind).toBe("incomplete");
    }
  }
});

test("raft: codec: a length that cuts the body short is a typed error", () => {
  for (const message of SAMPLES) {
    const frame = encodeMessage(message);
    for (let length = 0; length < frame.byteLength - 4; length++) {
      const shortened = Buffer.from(frame.subarray(0, 4 + length));
      shortened.writeUInt32BE(length, 0);
      const decoded = decodeFrame(shortened);
      expect(decoded.kind).toBe("error");
      if (decoded.kind === "error") {
        expect(["truncated", "malformed", "invalid"]).toContain(decoded.error.kind);
      }
    }
  }
});

test("raft: codec: oversized and unknown frames are refused from their header", () => {
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(SNAPSHOT_FRAME_BYTES_MAX + 1, 0);
  expect(decodeFrame(huge)).toMatchObject({ kind: "error", error: { kind: "tooLarge" } });
  const bigVote = Buffer.alloc(8);
  bigVote.writeUInt32BE(1000, 0);
  bigVote.writeUInt8(1, 4);
  expect(decodeFrame(bigVote)).toMatchObject({ kind: "error", error: { kind: "tooLarge" } });
  const bigAppend = Buffer.alloc(8);
  bigAppend.writeUInt32BE(APPEND_FRAME_BYTES_MAX + 1, 0);
  bigAppend.writeUInt8(5, 4);
  expect(decodeFrame(bigAppend)).toMatchObject({ kind: "error", error: { kind: "tooLarge" } });
  for (const code of [0, 9, 200, 255]) {
    const unknown = Buffer.alloc(8);
    unknown.writeUInt32BE(3, 0);
    unknown.writeUInt8(code, 4);
    expect(decodeFrame(unknown)).toMatchObject({ kind: "error", error: { kind: "unknownType" } });
  }
});

test("raft: codec: well-formed bytes that are no valid message are refused", () => {
  // Entry indexes that do not follow prevIndex.
  const append = SAMPLES[4]!;
  const frame = encodeMessage(append);
  const bad = Buffer.from(frame);
  // First entry's index sits after the envelope (16), prev/commit (24) and count (4).
  const at = 4 + 1 + 16 + 24 + 4;
  bad.writeUInt32BE(0, at);
  bad.writeUInt32BE(5, at + 4);
  expect(decodeFrame(bad)).toMatchObject({ kind: "error", error: { kind: "invalid" } });
  // A negative sender.
  const vote = Buffer.from(encodeMessage(SAMPLES[0]!));
  vote.writeInt32BE(-4, 5);
  expect(decodeFrame(vote)).toMatchObject({ kind: "error", error: { kind: "invalid" } });
  // A flag that is neither 0 nor 1.
  const response = Buffer.from(encodeMessage(SAMPLES[1]!));
  response.writeUInt8(7, response.byteLength - 1);
  expect(decodeFrame(response)).toMatchObject({ kind: "error", error: { kind: "malformed" } });
});

test("raft: codec: seeded random bytes and mutations never throw (2000 cases)", () => {
  const random = new SeededRandom(20240607);
  const frames = SAMPLES.map((message) => encodeMessage(message));
  const kinds = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    let bytes: Buffer;
    if (i % 2 === 0) {
      bytes = Buffer.alloc(random.int(0, 200));
      for (let j = 0; j < bytes.byteLength; j++) bytes[j] = random.int(0, 255);
      // Plausible headers reach the body decoders more often.
      if (bytes.byteLength >= 5 && random.next() < 0.7) {
        bytes.writeUInt32BE(bytes.byteLength - 4, 0);
        bytes[4] = random.int(1, 8);
      }
    } else {
      bytes = Buffer.from(frames[random.int(0, frames.length - 1)]!);
      const flips = random.int(1, 4);
      for (let j = 0; j < flips; j++) {
        bytes[random.int(4, bytes.byteLength - 1)] = random.int(0, 255);
      }
    }
    const decoded = decodeFrame(bytes);
    kinds.add(decoded.kind === "error" ? decoded.error.kind : decoded.kind);
  }
  expect(kinds.has("truncated") || kinds.has("malformed")).toBe(true);
  expect(kinds.has("invalid")).toBe(true);
});
