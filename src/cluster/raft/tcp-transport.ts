/**
 * @module
 * Raft messages over TCP, on the node's one cluster port (the `--gossip` port, shared
 * with SWIM's stream connections): a connection opens with the tag byte 0x52 ('R'),
 * which the stream listener (src/cluster/swim/stream-listener.ts) routes here, then the
 * protocol version byte (2), then the sender's cluster id (a length byte and that many
 * bytes; 0 for a node that has none yet), then frames (codec.ts) until it closes.
 *
 * A connection from another cluster is closed before any of its messages reaches Raft:
 * a node of another cluster (or a leftover process) that dials a port this node now
 * uses could otherwise step it down with its terms and votes.
 *
 * Connections are one-way: each node dials every peer it sends to and writes; what a
 * peer sends back comes over the peer's own connection. So the inbound side only reads
 * and the outbound side only writes, and neither needs a handshake.
 *
 * Delivery is best effort, as Raft expects of its network: a message to a peer whose
 * address is unknown, whose connection is down and backing off, or whose socket buffer
 * is full is dropped, and Raft's heartbeat sends it again. A broken connection is
 * redialled on the next send after a backoff (exponential with jitter, from the injected
 * clock and random; no timers, as src/cluster owns none). A connection that does not
 * open within CONNECT_TIMEOUT_MS is abandoned on the next send.
 *
 * Bad input on an inbound connection (an unknown version or message type, a truncated,
 * oversized or invalid frame) closes that connection and is logged; the node goes on.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { assert } from "../../util/assert.ts";
import type { Clock } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import type { Random } from "../../util/random.ts";
import { decodeFrame, encodeMessage } from "./codec.ts";
import { FRAME_HEADER_BYTES } from "./limits.ts";
import type { Message, NodeId } from "./types.ts";

const log = logger("raft-transport");

/** First byte of a Raft connection on the shared cluster port: 'R'. */
export const RAFT_STREAM_TAG = 0x52;
export const RAFT_PROTOCOL_VERSION = 2;
/** Longest cluster id in a stream header (ids are 22 characters). */
const CLUSTER_ID_BYTES_MAX = 64;

/** Bytes queued in one outbound socket before further messages to that peer are dropped. */
export const OUTBOUND_BUFFER_BYTES_MAX = 16 * 1024 * 1024;
/** Inbound Raft connections at once; more are closed (a peer needs one each way). */
export const INBOUND_CONNECTIONS_MAX = 64;
export const CONNECT_TIMEOUT_MS = 3_000;
export const BACKOFF_MS_MIN = 100;
/** The longest wait between dials to a peer whose connections fail or are cut. */
export const BACKOFF_MS_MAX = 1_000;
/**
 * The longest wait between dials a peer refused. A restarted peer is back in the quorum
 * (and so learns the metadata it needs to serve, and the partitions it follows) at most
 * this long after it listens again. A refused dial costs next to nothing; at the full
 * second, a follower restarted on its ports waited up to that long before it copied a
 * byte. Gossip cuts the wait for a peer that rejoins (peerAlive); a restart on the same
 * address that gossip never saw die needs this.
 */
export const REFUSED_BACKOFF_MS_MAX = 200;
/** Redials at once of connections that ended, per peer and second (see "close"). */
const REDIALS_AT_ONCE_MAX = 3;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** What a driver needs of a transport; the simulator and tests have their own. */
export interface RaftTransport {
  /** Sends each message to its `to` node, best effort. */
  send(messages: readonly Message[]): void;
  close(): void;
}

export interface TcpTransportOptions {
  id: NodeId;
  /** Where a node listens (from SWIM); null when unknown, and the message is dropped. */
  resolve: (id: NodeId) => Endpoint | null;
  /** Every decoded message addressed to this node. */
  onMessage: (message: Message) => void;
  /**
   * This node's cluster id; null (or empty) before a joining node learns it. A
   * connection whose header names another cluster is refused.
   */
  clusterId?: () => string | null;
  /**
   * A dial to `id` was refused (nothing listens on its port: the process is gone). A
   * connection that breaks is redialled at once to find this out.
   */
  onRefused?: (id: NodeId) => void;
  /** A dial to `id` opened: something of this cluster listens on its port again. */
  onConnected?: (id: NodeId) => void;
  clock: Clock;
  /** Backoff jitter. */
  random: Random;
}

/** The handler the stream listener calls with a connection that began with the tag. */
export type StreamHandler = (socket: Socket, rest: Buffer) => void;

export class TcpTransport implements RaftTransport {
  readonly #options: TcpTransportOptions;
  readonly #peers = new Map<NodeId, OutboundPeer>();
  readonly #inbound = new Set<InboundConnection>();
  #closed = false;
  /** Messages dropped, for tests and metrics. */
  dropped = 0;
  /** Inbound connections closed on bad input (another cluster's among them), likewise. */
  rejected = 0;

  constructor(options: TcpTransportOptions) {
    this.#options = options;
  }

  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    for (const message of messages) {
      assert(message.from === this.#options.id, "Sending a message from another node");
      const endpoint = this.#options.resolve(message.to);
      if (endpoint === null) {
        this.dropped++;
        continue;
      }
      let peer = this.#peers.get(message.to);
      if (peer === undefined) {
        const { onRefused, onConnected } = this.#options;
        peer = new OutboundPeer(
          message.to,
          this.#options.clock,
          this.#options.random,
          () => {
            if (!this.#closed) onRefused?.(message.to);
          },
          () => {
            if (!this.#closed) onConnected?.(message.to);
          },
          () => this.#clusterId(),
        );
        this.#peers.set(message.to, peer);
      }
      if (!peer.send(endpoint, encodeMessage(message))) this.dropped++;
    }
  }

  /** Gossip says `id` is up: its connection, if down, is dialled again at the next send. */
  peerAlive(id: NodeId): void {
    this.#peers.get(id)?.forgetFailures();
  }

  /** Register with the stream listener under RAFT_STREAM_TAG. */
  readonly handleConnection: StreamHandler = (socket, rest) => {
    if (this.#closed || this.#inbound.size >= INBOUND_CONNECTIONS_MAX) {
      log.warn("Refusing a Raft connection", {
        remote: remoteOf(socket),
        inbound: this.#inbound.size,
      });
      socket.destroy();
      return;
    }
    const connection = new InboundConnection(
      socket,
      this.#options.id,
      () => this.#clusterId(),
      (message) => {
        if (!this.#closed) this.#options.onMessage(message);
      },
      () => this.rejected++,
    );
    this.#inbound.add(connection);
    socket.once("close", () => this.#inbound.delete(connection));
    connection.receive(rest);
  };

  #clusterId(): string {
    return this.#options.clusterId?.() ?? "";
  }

  /** Connections to peers that are open now (tests). */
  openPeers(): NodeId[] {
    return [...this.#peers].filter(([, peer]) => peer.isOpen).map(([id]) => id);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const peer of this.#peers.values()) peer.close();
    this.#peers.clear();
    for (const connection of this.#inbound) connection.close();
    this.#inbound.clear();
  }
}

function remoteOf(socket: Socket): string {
  return `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
}

/** The connection this node dials to one peer, redialled with backoff when it breaks. */
class OutboundPeer {
  readonly #id: NodeId;
  readonly #clock: Clock;
  readonly #random: Random;
  #socket: Socket | null = null;
  #endpoint: Endpoint | null = null;
  /** Monotonic ms when the dial started; the socket is not open before `#open`. */
  #dialedAtMs = 0;
  #open = false;
  /** Consecutive failed dials, for the backoff. */
  #failures = 0;
  /** Whether the last dial was refused (the peer's host is up, its port closed). */
  #refused = false;
  /** No dial before this monotonic ms. */
  #retryAtMs = 0;

  readonly #onRefused: () => void;
  readonly #onConnected: () => void;
  readonly #clusterId: () => string;
  /** Redials at once (see "close") since #redialWindowMs (monotonic ms). */
  #redialsInWindow = 0;
  #redialWindowMs = -Infinity;
  /** When the current connection opened (monotonic ms). */
  #openedAtMs = 0;

  constructor(
    id: NodeId,
    clock: Clock,
    random: Random,
    onRefused: () => void,
    onConnected: () => void,
    clusterId: () => string,
  ) {
    this.#id = id;
    this.#clock = clock;
    this.#random = random;
    this.#onRefused = onRefused;
    this.#onConnected = onConnected;
    this.#clusterId = clusterId;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  /** Queues `frame` on the connection (dialling if needed); false when it was dropped. */
  send(endpoint: Endpoint, frame: Buffer): boolean {
    const nowMs = this.#clock.monotonicMs();
    if (this.#socket !== null && !sameEndpoint(this.#endpoint, endpoint)) {
      log.info("Raft peer moved; reconnecting", {
        peer: this.#id,
        host: endpoint.host,
        port: endpoint.port,
      });
      this.#drop();
      this.#failures = 0;
      this.#retryAtMs = 0;
    }
    if (this.#socket !== null && !this.#open && nowMs - this.#dialedAtMs > CONNECT_TIMEOUT_MS) {
      log.warn("Raft connection did not open in time", {
        peer: this.#id,
        timeoutMs: CONNECT_TIMEOUT_MS,
      });
      this.#fail();
    }
    if (this.#socket === null) {
      if (nowMs < this.#retryAtMs) return false;
      this.#dial(endpoint, nowMs);
    }
    const socket = this.#socket!;
    if (socket.writableLength > OUTBOUND_BUFFER_BYTES_MAX) return false;
    socket.write(frame);
    return true;
  }

  close(): void {
    this.#drop();
  }

  /**
   * Gossip says the peer is up (it joined, or came back): a dial backing off from its
   * last failures may go at the next send, not after the rest of its backoff.
   */
  forgetFailures(): void {
    if (this.#socket !== null) return;
    this.#failures = 0;
    this.#retryAtMs = 0;
  }

  #dial(endpoint: Endpoint, nowMs: number): void {
    const socket = connect({ host: endpoint.host, port: endpoint.port });
    socket.setNoDelay(true);
    this.#socket = socket;
    this.#endpoint = endpoint;
    this.#dialedAtMs = nowMs;
    this.#open = false;
    // Written once the connection opens; frames queue behind it in the socket.
    socket.write(streamHeader(this.#clusterId()));
    socket.on("connect", () => {
      if (this.#socket !== socket) return;
      this.#open = true;
      this.#openedAtMs = this.#clock.monotonicMs();
      this.#failures = 0;
      log.debug("Raft connection open", {
        peer: this.#id,
        host: endpoint.host,
        port: endpoint.port,
      });
      this.#onConnected();
    });
    // The peer never writes on this connection; read to notice its end.
    socket.on("data", () => {});
    socket.on("error", (error: NodeJS.ErrnoException) => {
      log.debug("Raft connection error", { peer: this.#id, error: error.message });
      if (this.#socket !== socket) return;
      this.#refused = error.code === "ECONNREFUSED";
      if (this.#refused) this.#onRefused();
    });
    socket.on("close", () => {
      if (this.#socket !== socket) return;
      const wasOpen = this.#open;
      this.#fail();
      // An open connection that ends: dial again at once, to learn whether the peer is
      // gone (refused: the controller fences it now) or only the connection was. A peer
      // that closes connections as they open (another cluster's, on reading our header)
      // is dialled this way at most REDIALS_AT_ONCE_MAX times a second. A dying process
      // can take one such dial before its port closes (open, then reset), so one is not
      // enough; one that kept it open a heartbeat's time had accepted us, always.
      const nowMs = this.#clock.monotonicMs();
      if (nowMs - this.#redialWindowMs >= BACKOFF_MS_MAX) {
        this.#redialWindowMs = nowMs;
        this.#redialsInWindow = 0;
      }
      const accepted = nowMs - this.#openedAtMs >= BACKOFF_MS_MIN;
      if (wasOpen && (accepted || this.#redialsInWindow < REDIALS_AT_ONCE_MAX)) {
        this.#redialsInWindow++;
        this.#retryAtMs = 0;
        this.#dial(endpoint, nowMs);
      }
    });
  }

  /** The connection broke or never opened: back off before the next dial. */
  #fail(): void {
    this.#drop();
    this.#failures++;
    const ceiling = Math.min(
      this.#refused ? REFUSED_BACKOFF_MS_MAX : BACKOFF_MS_MAX,
      BACKOFF_MS_MIN * 2 ** Math.min(this.#failures - 1, 16),
    );
    this.#refused = false;
    // Full jitter in [ceiling / 2, ceiling]: peers that failed together retry apart.
    const delay = ceiling / 2 + this.#random.next() * (ceiling / 2);
    this.#retryAtMs = this.#clock.monotonicMs() + delay;
  }

  #drop(): void {
    const socket = this.#socket;
    this.#socket = null;
    this.#open = false;
    socket?.destroy();
  }
}

/** What a Raft connection starts with: tag, version, the sender's cluster id. */
export function streamHeader(clusterId: string): Buffer {
  const id = Buffer.from(clusterId, "latin1");
  assert(id.byteLength <= CLUSTER_ID_BYTES_MAX, "Cluster id too long for a Raft stream header");
  return Buffer.concat([Buffer.of(RAFT_STREAM_TAG, RAFT_PROTOCOL_VERSION, id.byteLength), id]);
}

function sameEndpoint(a: Endpoint | null, b: Endpoint): boolean {
  return a !== null && a.host === b.host && a.port === b.port;
}

/** One peer's connection to this node: a version byte, the cluster id, then frames. */
class InboundConnection {
  readonly #socket: Socket;
  readonly #self: NodeId;
  readonly #clusterId: () => string;
  readonly #deliver: (message: Message) => void;
  #headerSeen = false;
  /** Received bytes not yet decoded; joined only once a whole frame is there. */
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** Bytes needed before decoding is worth trying again. */
  #needed = FRAME_HEADER_BYTES;
  #closed = false;
  readonly #onReject: () => void;

  constructor(
    socket: Socket,
    self: NodeId,
    clusterId: () => string,
    deliver: (message: Message) => void,
    onReject: () => void,
  ) {
    this.#socket = socket;
    this.#self = self;
    this.#clusterId = clusterId;
    this.#deliver = deliver;
    this.#onReject = onReject;
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (error) =>
      log.debug("Raft inbound connection error", { error: error.message }),
    );
    socket.on("end", () => socket.end());
  }

  /** The version and cluster id, once their bytes are here; false until then or when refused. */
  #readHeader(): boolean {
    const buffer =
      this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    this.#chunks = [buffer];
    const version = buffer[0]!;
    if (version !== RAFT_PROTOCOL_VERSION) {
      this.#reject(`Unknown Raft protocol version: ${version}`);
      return false;
    }
    if (buffer.byteLength < 2) return false;
    const length = buffer[1]!;
    if (length > CLUSTER_ID_BYTES_MAX) {
      this.#reject(`Cluster id of ${length} bytes in a Raft stream header`);
      return false;
    }
    if (buffer.byteLength < 2 + length) return false;
    const theirs = buffer.subarray(2, 2 + length).toString("latin1");
    const ours = this.#clusterId();
    if (theirs !== "" && ours !== "" && theirs !== ours) {
      this.#reject(`Raft connection from cluster ${theirs}, not this node's ${ours}`);
      return false;
    }
    this.#headerSeen = true;
    const rest = buffer.subarray(2 + length);
    this.#chunks = rest.byteLength > 0 ? [rest] : [];
    this.#bytes = rest.byteLength;
    return true;
  }

  receive(chunk: Buffer): void {
    if (this.#closed || chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.byteLength;
    if (!this.#headerSeen && !this.#readHeader()) return;
    while (!this.#closed && this.#bytes >= this.#needed) {
      const buffer =
        this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
      this.#chunks = [buffer];
      const decoded = decodeFrame(buffer);
      switch (decoded.kind) {
        case "incomplete":
          this.#needed = decoded.frameBytes ?? FRAME_HEADER_BYTES;
          return;
        case "error":
          return this.#reject(`${decoded.error.kind}: ${decoded.error.message}`);
        case "message": {
          const rest = buffer.subarray(decoded.frameBytes);
          this.#chunks = rest.byteLength > 0 ? [rest] : [];
          this.#bytes = rest.byteLength;
          this.#needed = FRAME_HEADER_BYTES;
          if (decoded.message.to !== this.#self) {
            log.warn("Dropping a Raft message for another node", {
              to: decoded.message.to,
              self: this.#self,
            });
            continue;
          }
          this.#deliver(decoded.message);
        }
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#chunks = [];
    this.#socket.destroy();
  }

  #reject(reason: string): void {
    log.warn("Closing a Raft connection on bad input", { remote: remoteOf(this.#socket), reason });
    this.#onReject();
    this.close();
  }
}
