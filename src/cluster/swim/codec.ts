/**
 * The SWIM wire format: compact binary, big-endian, one fixed header for UDP packets and
 * TCP push-pull frames alike.
 *
 *   header   magic "BS" (2) | version u8 | frame kind u8 (1 packet, 2 push-pull)
 *            | cluster id (u8 length, 0..64 bytes UTF-8) | sender node id u32
 *   packet   message count u8 (1..255) | messages
 *   message  type u8 | fields (fixed per type, see MESSAGE_TYPE)
 *   endpoint host (u8 length, 1..253 bytes UTF-8) | port u16
 *   pushpull body type u8 (1 request, 2 response, 3 refused) | fields
 *
 * Decoding never throws: whatever the bytes, the answer is a value or a `DecodeError`.
 * Bytes from the network are untrusted (truncated, oversized, another cluster, forged);
 * a node must drop them and keep running. Encoding asserts: it only ever sees our own
 * messages, so a bad one is a bug.
 */
import { assert, unreachable } from "../../util/assert.ts";
import { CLUSTER_ID_BYTES_MAX } from "./cluster-id.ts";
import {
  HOST_BYTES_MAX,
  INCARNATION_MAX,
  MEMBER_STATES,
  NODE_ID_MAX,
  assertEndpoint,
  type Endpoint,
  type MemberState,
} from "./member.ts";
import type {
  MemberRecord,
  Packet,
  PushPullBody,
  PushPullFrame,
  PushPullRefusal,
  SwimMessage,
} from "./messages.ts";

/** Safe under any path MTU of 1500 with IP and UDP headers (memberlist's UDPBufferSize). */
export const UDP_PACKET_BYTES_MAX = 1400;
/** One push-pull frame: the whole member list with endpoints of the longest hosts. */
export const PUSH_PULL_BYTES_MAX = 1024 * 1024;
export const MEMBERS_MAX = 1024;
export const PACKET_MESSAGES_MAX = 255;

const MAGIC_0 = 0x42; // 'B'
const MAGIC_1 = 0x53; // 'S'
export const WIRE_VERSION = 1;

const FRAME_PACKET = 1;
const FRAME_PUSH_PULL = 2;

const MESSAGE_TYPE = {
  ping: 1, // seq u32 | target u32
  pingReq: 2, // seq u32 | target u32 | target gossip endpoint
  ack: 3, // seq u32
  nack: 4, // seq u32
  alive: 5, // node u32 | incarnation u32 | gossip | kafka | admin
  suspect: 6, // node u32 | incarnation u32 | from u32
  dead: 7, // node u32 | incarnation u32 | from u32
  left: 8, // node u32 | incarnation u32
} as const satisfies Record<SwimMessage["type"], number>;

const BODY_TYPE = { request: 1, response: 2, refused: 3 } as const satisfies Record<
  PushPullBody["type"],
  number
>;
const REFUSAL = { clusterMismatch: 1, noClusterId: 2 } as const satisfies Record<
  PushPullRefusal,
  number
>;
const STATE_CODE = { alive: 1, suspect: 2, dead: 3, left: 4 } as const satisfies Record<
  MemberState,
  number
>;

const ENDPOINT_BYTES_MAX = 1 + HOST_BYTES_MAX + 2;
const MEMBER_RECORD_BYTES_MAX = 4 + 4 + 1 + 3 * ENDPOINT_BYTES_MAX;
const HEADER_BYTES_MAX = 2 + 1 + 1 + 1 + CLUSTER_ID_BYTES_MAX + 4;
// The largest push-pull frame fits the frame limit: a peer can always send its state.
assert(
  HEADER_BYTES_MAX + 1 + 1 + 2 + MEMBERS_MAX * MEMBER_RECORD_BYTES_MAX <= PUSH_PULL_BYTES_MAX,
  "PUSH_PULL_BYTES_MAX is too small for MEMBERS_MAX members",
);
// The largest single gossip message fits a packet with room to spare for a probe.
assert(
  HEADER_BYTES_MAX + 1 + 1 + 8 + 3 * ENDPOINT_BYTES_MAX + 64 <= UDP_PACKET_BYTES_MAX,
  "UDP_PACKET_BYTES_MAX is too small for one alive message",
);

export type DecodeError =
  | { readonly kind: "truncated"; readonly bytes: number }
  | { readonly kind: "oversized"; readonly bytes: number; readonly limit: number }
  | { readonly kind: "badMagic" }
  | { readonly kind: "badVersion"; readonly version: number }
  | { readonly kind: "wrongFrameKind"; readonly frameKind: number }
  | { readonly kind: "wrongCluster"; readonly clusterId: string }
  | { readonly kind: "unknownType"; readonly type: number }
  | { readonly kind: "malformed"; readonly reason: string }
  | { readonly kind: "trailingBytes"; readonly count: number };

export type Decoded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: DecodeError };

export function decodeErrorText(error: DecodeError): string {
  switch (error.kind) {
    case "truncated":
      return `Truncated: ${error.bytes} bytes`;
    case "oversized":
      return `Oversized: ${error.bytes} bytes, limit ${error.limit}`;
    case "badMagic":
      return "Bad magic";
    case "badVersion":
      return `Unsupported version: ${error.version}`;
    case "wrongFrameKind":
      return `Wrong frame kind: ${error.frameKind}`;
    case "wrongCluster":
      return `Another cluster: ${JSON.stringify(error.clusterId)}`;
    case "unknownType":
      return `Unknown type: ${error.type}`;
    case "malformed":
      return `Malformed: ${error.reason}`;
    case "trailingBytes":
      return `Trailing bytes: ${error.count}`;
    default:
      return unreachable(error);
  }
}

// ---------------------------------------------------------------------------------------
// Sizes (the core uses these to fill a packet with piggybacked gossip).

const encoder = new TextEncoder();

function stringBytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

function endpointBytes(endpoint: Endpoint): number {
  return 1 + stringBytes(endpoint.host) + 2;
}

export function headerBytes(clusterId: string): number {
  return 2 + 1 + 1 + 1 + stringBytes(clusterId) + 4;
}

/** Bytes of a packet's header and message count, before any message. */
export function packetOverheadBytes(clusterId: string): number {
  return headerBytes(clusterId) + 1;
}

export function messageBytes(message: SwimMessage): number {
  switch (message.type) {
    case "ping":
      return 1 + 8;
    case "pingReq":
      return 1 + 8 + endpointBytes(message.targetGossip);
    case "ack":
      return 1 + 4;
    case "nack":
      return 1 + 4;
    case "alive":
      return (
        1 +
        8 +
        endpointBytes(message.gossip) +
        endpointBytes(message.kafka) +
        endpointBytes(message.admin)
      );
    case "suspect":
      return 1 + 12;
    case "dead":
      return 1 + 12;
    case "left":
      return 1 + 8;
    default:
      return unreachable(message);
  }
}

function memberRecordBytes(record: MemberRecord): number {
  return (
    4 +
    4 +
    1 +
    endpointBytes(record.gossip) +
    endpointBytes(record.kafka) +
    endpointBytes(record.admin)
  );
}

// ---------------------------------------------------------------------------------------
// Writing.

class Writer {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.#view = new DataView(this.bytes.buffer);
  }

  u8(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xff, `Not a u8: ${value}`);
    this.#view.setUint8(this.#at, value);
    this.#at += 1;
  }

  u16(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, `Not a u16: ${value}`);
    this.#view.setUint16(this.#at, value);
    this.#at += 2;
  }

  u32(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, `Not a u32: ${value}`);
    this.#view.setUint32(this.#at, value);
    this.#at += 4;
  }

  /** A string of at most 255 bytes, u8-length-prefixed. */
  shortString(text: string): void {
    const written = encoder.encodeInto(text, this.bytes.subarray(this.#at + 1));
    assert(written.read === text.length, "String does not fit its buffer");
    this.u8(written.written);
    this.#at += written.written;
  }

  endpoint(endpoint: Endpoint): void {
    assertEndpoint(endpoint, "Encoded");
    this.shortString(endpoint.host);
    this.u16(endpoint.port);
  }

  done(): Uint8Array {
    assert(this.#at === this.bytes.length, `Encoded ${this.#at} bytes, sized ${this.bytes.length}`);
    return this.bytes;
  }
}

function writeHeader(writer: Writer, frameKind: number, clusterId: string, sender: number): void {
  assert(stringBytes(clusterId) <= CLUSTER_ID_BYTES_MAX, "Cluster id is too long");
  assert(sender >= 0 && sender <= NODE_ID_MAX, `Sender is not a node id: ${sender}`);
  writer.u8(MAGIC_0);
  writer.u8(MAGIC_1);
  writer.u8(WIRE_VERSION);
  writer.u8(frameKind);
  writer.shortString(clusterId);
  writer.u32(sender);
}

function writeMessage(writer: Writer, message: SwimMessage): void {
  writer.u8(MESSAGE_TYPE[message.type]);
  switch (message.type) {
    case "ping":
      writer.u32(message.seq);
      writer.u32(message.target);
      return;
    case "pingReq":
      writer.u32(message.seq);
      writer.u32(message.target);
      writer.endpoint(message.targetGossip);
      return;
    case "ack":
    case "nack":
      writer.u32(message.seq);
      return;
    case "alive":
      writer.u32(message.nodeId);
      writer.u32(message.incarnation);
      writer.endpoint(message.gossip);
      writer.endpoint(message.kafka);
      writer.endpoint(message.admin);
      return;
    case "suspect":
    case "dead":
      writer.u32(message.nodeId);
      writer.u32(message.incarnation);
      writer.u32(message.from);
      return;
    case "left":
      writer.u32(message.nodeId);
      writer.u32(message.incarnation);
      return;
    default:
      return unreachable(message);
  }
}

export function packetBytes(packet: Packet): number {
  let size = packetOverheadBytes(packet.clusterId);
  for (const message of packet.messages) size += messageBytes(message);
  return size;
}

export function encodePacket(packet: Packet): Uint8Array {
  assert(packet.messages.length >= 1, "Packet has no message");
  assert(packet.messages.length <= PACKET_MESSAGES_MAX, "Packet has too many messages");
  const size = packetBytes(packet);
  assert(size <= UDP_PACKET_BYTES_MAX, `Packet is oversized: ${size} bytes`);
  const writer = new Writer(size);
  writeHeader(writer, FRAME_PACKET, packet.clusterId, packet.sender);
  writer.u8(packet.messages.length);
  for (const message of packet.messages) writeMessage(writer, message);
  return writer.done();
}

export function encodePushPull(frame: PushPullFrame): Uint8Array {
  const body = frame.body;
  let size = headerBytes(frame.clusterId) + 1;
  switch (body.type) {
    case "request":
      size += 1 + 2;
      for (const record of body.members) size += memberRecordBytes(record);
      break;
    case "response":
      size += 2;
      for (const record of body.members) size += memberRecordBytes(record);
      break;
    case "refused":
      size += 1;
      break;
    default:
      unreachable(body);
  }
  assert(size <= PUSH_PULL_BYTES_MAX, `Push-pull frame is oversized: ${size} bytes`);
  const writer = new Writer(size);
  writeHeader(writer, FRAME_PUSH_PULL, frame.clusterId, frame.sender);
  writer.u8(BODY_TYPE[body.type]);
  switch (body.type) {
    case "request":
      writer.u8(body.join ? 1 : 0);
      writeMembers(writer, body.members);
      break;
    case "response":
      writeMembers(writer, body.members);
      break;
    case "refused":
      writer.u8(REFUSAL[body.reason]);
      break;
    default:
      unreachable(body);
  }
  return writer.done();
}

function writeMembers(writer: Writer, members: readonly MemberRecord[]): void {
  assert(members.length <= MEMBERS_MAX, `Too many members: ${members.length}`);
  writer.u16(members.length);
  for (const record of members) {
    writer.u32(record.nodeId);
    writer.u32(record.incarnation);
    writer.u8(STATE_CODE[record.state]);
    writer.endpoint(record.gossip);
    writer.endpoint(record.kafka);
    writer.endpoint(record.admin);
  }
}

// ---------------------------------------------------------------------------------------
// Reading. As franz-go's kbin.Reader: a short read sets a sticky error and returns zero,
// so field code reads straight through and the caller checks once.

// ignoreBOM keeps a leading BOM as a character: what decodes re-encodes to the same bytes.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;
  error: DecodeError | null = null;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #has(count: number): boolean {
    if (this.error !== null) return false;
    if (this.#at + count <= this.#bytes.length) return true;
    this.error = { kind: "truncated", bytes: this.#bytes.length };
    return false;
  }

  fail(error: DecodeError): void {
    if (this.error === null) this.error = error;
  }

  u8(): number {
    if (!this.#has(1)) return 0;
    const value = this.#view.getUint8(this.#at);
    this.#at += 1;
    return value;
  }

  u16(): number {
    if (!this.#has(2)) return 0;
    const value = this.#view.getUint16(this.#at);
    this.#at += 2;
    return value;
  }

  u32(): number {
    if (!this.#has(4)) return 0;
    const value = this.#view.getUint32(this.#at);
    this.#at += 4;
    return value;
  }

  shortString(what: string, min: number, max: number): string {
    const length = this.u8();
    if (this.error !== null) return "";
    if (length < min || length > max) {
      this.fail({ kind: "malformed", reason: `${what} length ${length}` });
      return "";
    }
    if (!this.#has(length)) return "";
    const slice = this.#bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    try {
      return decoder.decode(slice);
    } catch {
      this.fail({ kind: "malformed", reason: `${what} is not UTF-8` });
      return "";
    }
  }

  nodeId(what: string): number {
    const value = this.u32();
    if (value > NODE_ID_MAX)
      this.fail({ kind: "malformed", reason: `${what} ${value} is not a node id` });
    return value;
  }

  incarnation(): number {
    const value = this.u32();
    // The maximum could never be refuted (there is no higher one): a forgery, refuse it.
    if (value >= INCARNATION_MAX)
      this.fail({ kind: "malformed", reason: "Incarnation at maximum" });
    return value;
  }

  endpoint(what: string): Endpoint {
    const host = this.shortString(`${what} host`, 1, HOST_BYTES_MAX);
    const port = this.u16();
    return { host, port };
  }

  remaining(): number {
    return this.#bytes.length - this.#at;
  }
}

interface Header {
  clusterId: string;
  sender: number;
}

function readHeader(
  reader: Reader,
  frameKind: number,
  expectedClusterId: string | undefined,
): Header {
  const magic0 = reader.u8();
  const magic1 = reader.u8();
  if (reader.error === null && (magic0 !== MAGIC_0 || magic1 !== MAGIC_1))
    reader.fail({ kind: "badMagic" });
  const version = reader.u8();
  if (reader.error === null && version !== WIRE_VERSION)
    reader.fail({ kind: "badVersion", version });
  const kind = reader.u8();
  if (reader.error === null && kind !== frameKind)
    reader.fail({ kind: "wrongFrameKind", frameKind: kind });
  const clusterId = reader.shortString("Cluster id", 0, CLUSTER_ID_BYTES_MAX);
  if (reader.error === null && expectedClusterId !== undefined && clusterId !== expectedClusterId) {
    reader.fail({ kind: "wrongCluster", clusterId });
  }
  const sender = reader.nodeId("Sender");
  return { clusterId, sender };
}

function readMessage(reader: Reader): SwimMessage | null {
  const type = reader.u8();
  if (reader.error !== null) return null;
  switch (type) {
    case MESSAGE_TYPE.ping:
      return { type: "ping", seq: reader.u32(), target: reader.nodeId("Target") };
    case MESSAGE_TYPE.pingReq:
      return {
        type: "pingReq",
        seq: reader.u32(),
        target: reader.nodeId("Target"),
        targetGossip: reader.endpoint("Target"),
      };
    case MESSAGE_TYPE.ack:
      return { type: "ack", seq: reader.u32() };
    case MESSAGE_TYPE.nack:
      return { type: "nack", seq: reader.u32() };
    case MESSAGE_TYPE.alive:
      return {
        type: "alive",
        nodeId: reader.nodeId("Member"),
        incarnation: reader.incarnation(),
        gossip: reader.endpoint("Gossip"),
        kafka: reader.endpoint("Kafka"),
        admin: reader.endpoint("Admin"),
      };
    case MESSAGE_TYPE.suspect:
      return {
        type: "suspect",
        nodeId: reader.nodeId("Member"),
        incarnation: reader.incarnation(),
        from: reader.nodeId("From"),
      };
    case MESSAGE_TYPE.dead:
      return {
        type: "dead",
        nodeId: reader.nodeId("Member"),
        incarnation: reader.incarnation(),
        from: reader.nodeId("From"),
      };
    case MESSAGE_TYPE.left:
      return { type: "left", nodeId: reader.nodeId("Member"), incarnation: reader.incarnation() };
    default:
      reader.fail({ kind: "unknownType", type });
      return null;
  }
}

function finish<T>(reader: Reader, value: T): Decoded<T> {
  if (reader.error !== null) return { ok: false, error: reader.error };
  const left = reader.remaining();
  if (left !== 0) return { ok: false, error: { kind: "trailingBytes", count: left } };
  return { ok: true, value };
}

/**
 * Decodes one UDP datagram. With `expectedClusterId`, a packet from another cluster is a
 * `wrongCluster` error (checked before the body is read).
 */
export function decodePacket(bytes: Uint8Array, expectedClusterId?: string): Decoded<Packet> {
  if (bytes.length > UDP_PACKET_BYTES_MAX) {
    return {
      ok: false,
      error: { kind: "oversized", bytes: bytes.length, limit: UDP_PACKET_BYTES_MAX },
    };
  }
  const reader = new Reader(bytes);
  const header = readHeader(reader, FRAME_PACKET, expectedClusterId);
  const count = reader.u8();
  if (reader.error === null && count === 0)
    reader.fail({ kind: "malformed", reason: "No messages" });
  const messages: SwimMessage[] = [];
  for (let i = 0; i < count && reader.error === null; i++) {
    const message = readMessage(reader);
    if (message !== null) messages.push(message);
  }
  return finish(reader, { clusterId: header.clusterId, sender: header.sender, messages });
}

/**
 * Decodes one push-pull frame (without its TCP length prefix). The cluster id is not
 * checked here: a join request may come without one, and a refusal names the seed's.
 */
export function decodePushPull(bytes: Uint8Array): Decoded<PushPullFrame> {
  if (bytes.length > PUSH_PULL_BYTES_MAX) {
    return {
      ok: false,
      error: { kind: "oversized", bytes: bytes.length, limit: PUSH_PULL_BYTES_MAX },
    };
  }
  const reader = new Reader(bytes);
  const header = readHeader(reader, FRAME_PUSH_PULL, undefined);
  const type = reader.u8();
  let body: PushPullBody | null = null;
  if (reader.error === null) {
    switch (type) {
      case BODY_TYPE.request: {
        const join = reader.u8();
        if (join > 1) reader.fail({ kind: "malformed", reason: `Join flag ${join}` });
        body = { type: "request", join: join === 1, members: readMembers(reader) };
        break;
      }
      case BODY_TYPE.response:
        body = { type: "response", members: readMembers(reader) };
        break;
      case BODY_TYPE.refused: {
        const code = reader.u8();
        const reason =
          code === REFUSAL.clusterMismatch
            ? "clusterMismatch"
            : code === REFUSAL.noClusterId
              ? "noClusterId"
              : null;
        if (reason === null) reader.fail({ kind: "malformed", reason: `Refusal ${code}` });
        body = { type: "refused", reason: reason ?? "clusterMismatch" };
        break;
      }
      default:
        reader.fail({ kind: "unknownType", type });
    }
  }
  if (body === null)
    return { ok: false, error: reader.error ?? { kind: "malformed", reason: "No body" } };
  return finish(reader, { clusterId: header.clusterId, sender: header.sender, body });
}

function readMembers(reader: Reader): MemberRecord[] {
  const count = reader.u16();
  if (count > MEMBERS_MAX) {
    reader.fail({ kind: "malformed", reason: `${count} members, limit ${MEMBERS_MAX}` });
    return [];
  }
  const members: MemberRecord[] = [];
  for (let i = 0; i < count && reader.error === null; i++) {
    const nodeId = reader.nodeId("Member");
    const incarnation = reader.incarnation();
    const code = reader.u8();
    const state = MEMBER_STATES[code - 1];
    if (reader.error === null && state === undefined)
      reader.fail({ kind: "malformed", reason: `Member state ${code}` });
    const gossip = reader.endpoint("Gossip");
    const kafka = reader.endpoint("Kafka");
    const admin = reader.endpoint("Admin");
    members.push({ nodeId, incarnation, state: state ?? "alive", gossip, kafka, admin });
  }
  return members;
}
