import { describe, expect, test } from "bun:test";
import { SeededRandom } from "../../util/random.ts";
import {
  PUSH_PULL_BYTES_MAX,
  UDP_PACKET_BYTES_MAX,
  decodePacket,
  decodePushPull,
  encodePacket,
  encodePushPull,
  packetBytes,
} from "./codec.ts";
import { INCARNATION_MAX } from "./member.ts";
import type { Packet, PushPullFrame, SwimMessage } from "./messages.ts";

const gossip = { host: "10.0.0.1", port: 7946 };
const kafka = { host: "broker-1.example.com", port: 9092 };
const admin = { host: "::1", port: 8080 };

const EVERY_MESSAGE: SwimMessage[] = [
  { type: "ping", seq: 1, target: 2 },
  { type: "pingReq", seq: 4_294_967_295, target: 2_147_483_647, targetGossip: gossip },
  { type: "ack", seq: 0 },
  { type: "nack", seq: 77 },
  { type: "alive", nodeId: 3, incarnation: 9, gossip, kafka, admin },
  { type: "suspect", nodeId: 3, incarnation: 10, from: 4 },
  { type: "dead", nodeId: 3, incarnation: 11, from: 5 },
  { type: "left", nodeId: 6, incarnation: 0 },
];

const PACKET: Packet = { clusterId: "cluster-a", sender: 1, messages: EVERY_MESSAGE };

const FRAMES: PushPullFrame[] = [
  {
    clusterId: "",
    sender: 7,
    body: {
      type: "request",
      join: true,
      members: [
        { nodeId: 7, incarnation: 0, state: "alive", gossip, kafka, admin },
        { nodeId: 8, incarnation: 3, state: "suspect", gossip, kafka, admin },
      ],
    },
  },
  {
    clusterId: "cluster-a",
    sender: 1,
    body: {
      type: "response",
      members: [
        { nodeId: 1, incarnation: 2, state: "dead", gossip, kafka, admin },
        { nodeId: 2, incarnation: 5, state: "left", gossip, kafka, admin },
      ],
    },
  },
  { clusterId: "cluster-a", sender: 1, body: { type: "refused", reason: "clusterMismatch" } },
  { clusterId: "", sender: 1, body: { type: "refused", reason: "noClusterId" } },
];

describe("swim: codec", () => {
  test("swim: codec: every message round-trips", () => {
    const bytes = encodePacket(PACKET);
    expect(bytes.length).toBe(packetBytes(PACKET));
    expect(decodePacket(bytes, "cluster-a")).toEqual({ ok: true, value: PACKET });
  });

  test("swim: codec: every push-pull frame round-trips", () => {
    for (const frame of FRAMES)
      expect(decodePushPull(encodePushPull(frame))).toEqual({ ok: true, value: frame });
  });

  test("swim: codec: a packet from another cluster is a wrongCluster error", () => {
    const decoded = decodePacket(encodePacket(PACKET), "cluster-b");
    expect(decoded).toEqual({ ok: false, error: { kind: "wrongCluster", clusterId: "cluster-a" } });
  });

  test("swim: codec: every truncation is an error, never an exception", () => {
    const bytes = encodePacket(PACKET);
    for (let length = 0; length < bytes.length; length++) {
      const decoded = decodePacket(bytes.subarray(0, length), "cluster-a");
      expect(decoded.ok).toBe(false);
    }
    for (const frame of FRAMES) {
      const encoded = encodePushPull(frame);
      for (let length = 0; length < encoded.length; length++) {
        expect(decodePushPull(encoded.subarray(0, length)).ok).toBe(false);
      }
    }
  });

  test("swim: codec: oversized input is refused before it is read", () => {
    expect(decodePacket(new Uint8Array(UDP_PACKET_BYTES_MAX + 1))).toEqual({
      ok: false,
      error: { kind: "oversized", bytes: UDP_PACKET_BYTES_MAX + 1, limit: UDP_PACKET_BYTES_MAX },
    });
    const frame = decodePushPull(new Uint8Array(PUSH_PULL_BYTES_MAX + 1));
    expect(frame.ok ? null : frame.error.kind).toBe("oversized");
  });

  test("swim: codec: trailing bytes, unknown types, bad magic and versions are errors", () => {
    const bytes = encodePacket({ clusterId: "c", sender: 1, messages: [{ type: "ack", seq: 1 }] });
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(decodePacket(longer)).toEqual({ ok: false, error: { kind: "trailingBytes", count: 1 } });
    const unknown = bytes.slice();
    unknown[bytes.length - 5] = 99; // The ack's type byte.
    expect(decodePacket(unknown)).toEqual({ ok: false, error: { kind: "unknownType", type: 99 } });
    const magic = bytes.slice();
    magic[0] = 0;
    expect(decodePacket(magic)).toEqual({ ok: false, error: { kind: "badMagic" } });
    const version = bytes.slice();
    version[2] = 9;
    expect(decodePacket(version)).toEqual({ ok: false, error: { kind: "badVersion", version: 9 } });
    // A push-pull frame is not a packet.
    const frame = encodePushPull(FRAMES[2] as PushPullFrame);
    expect(decodePacket(frame)).toEqual({
      ok: false,
      error: { kind: "wrongFrameKind", frameKind: 2 },
    });
  });

  test("swim: codec: an incarnation at the maximum is refused (it could never be refuted)", () => {
    const bytes = encodePacket({
      clusterId: "c",
      sender: 1,
      messages: [{ type: "suspect", nodeId: 2, incarnation: INCARNATION_MAX, from: 3 }],
    });
    const decoded = decodePacket(bytes);
    expect(decoded.ok ? null : decoded.error.kind).toBe("malformed");
  });

  test("swim: codec: fuzz: random bytes and mutations never throw (10,000 inputs)", () => {
    const random = new SeededRandom(20_240_607);
    const valid = [encodePacket(PACKET), ...FRAMES.map(encodePushPull)];
    let accepted = 0;
    for (let i = 0; i < 10_000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = new Uint8Array(random.int(0, 1_500));
        for (let j = 0; j < bytes.length; j++) bytes[j] = random.int(0, 255);
        // Often keep a valid header, so the fuzz reaches the bodies.
        if (random.next() < 0.5 && bytes.length > 4) bytes.set([0x42, 0x53, 1, random.int(1, 2)]);
      } else {
        const source = valid[random.int(0, valid.length - 1)] as Uint8Array;
        bytes = source.slice(0, random.int(0, source.length));
        const flips = random.int(1, 4);
        for (let j = 0; j < flips && bytes.length > 0; j++)
          bytes[random.int(0, bytes.length - 1)] = random.int(0, 255);
      }
      const packet = decodePacket(bytes, random.next() < 0.5 ? "cluster-a" : undefined);
      const frame = decodePushPull(bytes);
      if (packet.ok) accepted += 1;
      if (frame.ok) accepted += 1;
      // Whatever decodes must encode back to the same bytes: nothing is silently altered.
      if (packet.ok) expect(encodePacket(packet.value)).toEqual(bytes);
      if (frame.ok) expect(encodePushPull(frame.value)).toEqual(bytes);
    }
    expect(accepted).toBeLessThan(10_000);
  });
});
