/**
 * The SWIM driver: the thin adapter between the `Swim` state machine and the world. It
 * binds UDP (node:dgram) on the gossip host:port and serves push-pull on TCP on the same
 * port number (through a `StreamListener`, shared with Raft or its own), turns a timer into
 * ticks, decodes datagrams into inputs, and performs the outputs: packets sent, push-pulls
 * made and answered, events handed to the caller and logged.
 *
 * Bad input never stops it: a datagram that does not decode (truncated, oversized,
 * another cluster, unknown type) is counted and dropped; a push-pull that fails is fed back
 * as a failure; an unreachable --join seed is retried with backoff, one log line per
 * failure. Time comes from the passed Clock, timers from the passed Timers (the house rule:
 * algorithm folders own no timers), randomness from the passed Random.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { isIP, type Socket } from "node:net";
import { assert } from "../../util/assert.ts";
import { systemClock, type Clock } from "../../util/clock.ts";
import { logger, type Logger } from "../../util/log.ts";
import { systemRandom, type Random } from "../../util/random.ts";
import {
  decodePacket,
  decodePushPull,
  decodeErrorText,
  encodePacket,
  encodePushPull,
  type DecodeError,
} from "./codec.ts";
import { swimConfig, type SwimConfig } from "./config.ts";
import { endpointText, type Endpoint, type Member } from "./member.ts";
import type { PushPullFrame } from "./messages.ts";
import { FrameReader, exchangePushPull, lengthPrefixed } from "./push-pull-stream.ts";
import { STREAM_TAG_SWIM, StreamListener } from "./stream-listener.ts";
import { Swim, type SwimOutput } from "./swim.ts";
import type { Timers } from "./timers.ts";

/** What the caller hears about: membership changes, the cluster id, joining, errors. */
export type SwimEvent = Extract<
  SwimOutput,
  { kind: "member" | "clusterId" | "joined" | "joinFailed" | "error" }
>;

export interface SwimDriverOptions {
  readonly nodeId: number;
  /** Null on a fresh node that joins: learned from the first seed (event `clusterId`). */
  readonly clusterId: string | null;
  /** UDP and TCP bind address; port 0 picks a free port for both. */
  readonly bind: Endpoint;
  /** Host other members use to reach us; default the bind host, or 127.0.0.1 for a wildcard. */
  readonly advertiseHost?: string;
  readonly kafka: Endpoint;
  readonly admin: Endpoint;
  /** --join seeds; empty for the first node of a cluster. */
  readonly join?: readonly Endpoint[];
  readonly config?: Partial<SwimConfig>;
  readonly timers: Timers;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Tick period; default a fifth of the probe timeout, at most 100 ms. */
  readonly tickMs?: number;
  /** A listener already listening on the gossip port (shared with Raft); default: our own. */
  readonly streams?: StreamListener;
  readonly pushPullTimeoutMs?: number;
  /** How long `leave` waits for the news to go out before closing. */
  readonly leaveTimeoutMs?: number;
  /** A starting incarnation above any a previous life of this node used (if persisted). */
  readonly incarnation?: number;
  readonly onEvent?: (event: SwimEvent) => void;
  readonly log?: Logger;
}

export interface SwimDriverStats {
  packetsReceived: number;
  packetsSent: number;
  sendErrors: number;
  pushPullsMade: number;
  pushPullsServed: number;
  /** Datagrams dropped because they did not decode, by reason. */
  dropped: Partial<Record<DecodeError["kind"] | "noClusterId", number>>;
}

const PUSH_PULL_TIMEOUT_MS = 10_000;
const LEAVE_TIMEOUT_MS = 2_000;
const BIND_ATTEMPTS = 5;

export class SwimDriver {
  readonly #options: SwimDriverOptions;
  readonly #swim: Swim;
  readonly #udp: UdpSocket;
  readonly #streams: StreamListener;
  readonly #ownsStreams: boolean;
  readonly #timers: Timers;
  readonly #log: Logger;
  readonly #tickMs: number;
  readonly #clientSockets = new Set<Socket>();
  readonly #answers = new Map<number, Socket>();
  readonly stats: SwimDriverStats = {
    packetsReceived: 0,
    packetsSent: 0,
    sendErrors: 0,
    pushPullsMade: 0,
    pushPullsServed: 0,
    dropped: {},
  };
  #cancelTick: (() => void) | null = null;
  #requestId = 0;
  #closed = false;
  #closing: Promise<void> | null = null;
  #leaveWaiters: Array<() => void> = [];

  private constructor(
    options: SwimDriverOptions,
    swim: Swim,
    udp: UdpSocket,
    streams: StreamListener,
    ownsStreams: boolean,
  ) {
    this.#options = options;
    this.#swim = swim;
    this.#udp = udp;
    this.#streams = streams;
    this.#ownsStreams = ownsStreams;
    this.#timers = options.timers;
    this.#log = options.log ?? logger("swim");
    const config = swim.config;
    this.#tickMs =
      options.tickMs ?? Math.max(1, Math.min(100, Math.floor(config.probeTimeoutMs / 5)));
  }

  /**
   * Binds UDP and TCP on one port, starts ticking and joins the seeds. Rejects only when it
   * cannot bind; an unreachable seed is retried in the background.
   */
  static async start(options: SwimDriverOptions): Promise<SwimDriver> {
    const log = options.log ?? logger("swim");
    const config = swimConfig(options.config);
    const { udp, streams, ownsStreams } = await bindBoth(options, log);
    const port = streams.port;
    const advertiseHost =
      options.advertiseHost ?? (isWildcard(options.bind.host) ? "127.0.0.1" : options.bind.host);
    const swim = new Swim({
      nodeId: options.nodeId,
      gossip: { host: advertiseHost, port },
      kafka: options.kafka,
      admin: options.admin,
      clusterId: options.clusterId,
      config,
      clock: options.clock ?? systemClock,
      random: options.random ?? systemRandom,
      incarnation: options.incarnation,
    });
    const driver = new SwimDriver(options, swim, udp, streams, ownsStreams);
    driver.#begin();
    log.info("SWIM started", {
      nodeId: options.nodeId,
      gossip: endpointText(swim.self.gossip),
      bind: endpointText({ host: options.bind.host, port }),
      cluster: options.clusterId ?? "(joining)",
    });
    return driver;
  }

  // -------------------------------------------------------------------------------------
  // Queries.

  get self(): Member {
    return this.#swim.self;
  }

  /** The advertised gossip endpoint, with the port actually bound. */
  get gossip(): Endpoint {
    return this.#swim.self.gossip;
  }

  get clusterId(): string | null {
    return this.#swim.clusterId;
  }

  /** The TCP listener on the gossip port; the node's other cluster streams register here. */
  get streams(): StreamListener {
    return this.#streams;
  }

  get healthScore(): number {
    return this.#swim.healthScore;
  }

  /** Every member known, ourselves included. */
  members(): Member[] {
    return this.#swim.members();
  }

  member(nodeId: number): Member | undefined {
    return this.#swim.member(nodeId);
  }

  // -------------------------------------------------------------------------------------
  // Stopping.

  /**
   * Graceful stop (SIGTERM): announce 'left', wait until the news went out (or
   * `leaveTimeoutMs`), then close.
   */
  async leave(): Promise<void> {
    if (this.#closed) return;
    this.#swim.leave();
    this.#flush();
    if (!this.#swim.isLeaveDisseminated()) {
      await new Promise<void>((resolve) => {
        const cancel = this.#timers.after(
          this.#options.leaveTimeoutMs ?? LEAVE_TIMEOUT_MS,
          resolve,
        );
        this.#leaveWaiters.push(() => {
          cancel();
          resolve();
        });
      });
    }
    this.#log.info("Left the cluster", {
      nodeId: this.#swim.nodeId,
      disseminated: this.#swim.isLeaveDisseminated(),
    });
    await this.close();
  }

  /** Abrupt stop: no goodbye. Closes sockets and timers; calling it again is harmless. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#cancelTick?.();
    this.#cancelTick = null;
    for (const wake of this.#leaveWaiters.splice(0)) wake();
    for (const socket of this.#clientSockets) socket.destroy();
    this.#clientSockets.clear();
    for (const socket of this.#answers.values()) socket.destroy();
    this.#answers.clear();
    this.#streams.unregister(STREAM_TAG_SWIM);
    await new Promise<void>((resolve) => this.#udp.close(() => resolve()));
    if (this.#ownsStreams) await this.#streams.close();
  }

  // -------------------------------------------------------------------------------------
  // Running.

  #begin(): void {
    this.#udp.on("message", (message: Buffer, remote: RemoteInfo) =>
      this.#onDatagram(message, remote),
    );
    this.#udp.on("error", (error) => this.#log.warn("UDP socket error", { error: error.message }));
    this.#streams.register(STREAM_TAG_SWIM, (socket, rest) => this.#onStream(socket, rest));
    const seeds = this.#options.join ?? [];
    if (seeds.length > 0) this.#swim.join(seeds);
    this.#flush();
    this.#scheduleTick();
  }

  #scheduleTick(): void {
    if (this.#closed) return;
    this.#cancelTick = this.#timers.after(this.#tickMs, () => {
      if (this.#closed) return;
      this.#swim.step({ kind: "tick" });
      this.#flush();
      if (this.#swim.hasLeft && this.#swim.isLeaveDisseminated()) {
        for (const wake of this.#leaveWaiters.splice(0)) wake();
      }
      this.#scheduleTick();
    });
  }

  #onDatagram(message: Buffer, remote: RemoteInfo): void {
    if (this.#closed) return;
    this.stats.packetsReceived += 1;
    const clusterId = this.#swim.clusterId;
    if (clusterId === null) return this.#drop("noClusterId", remote, null);
    const decoded = decodePacket(message, clusterId);
    if (!decoded.ok) return this.#drop(decoded.error.kind, remote, decoded.error);
    this.#swim.step({
      kind: "packet",
      from: { host: remote.address, port: remote.port },
      packet: decoded.value,
    });
    this.#flush();
  }

  #drop(
    reason: DecodeError["kind"] | "noClusterId",
    remote: RemoteInfo,
    error: DecodeError | null,
  ): void {
    this.stats.dropped[reason] = (this.stats.dropped[reason] ?? 0) + 1;
    // Debug only: a flood of garbage must not flood the log too.
    this.#log.debug("Dropped a datagram", {
      from: endpointText({ host: remote.address, port: remote.port }),
      reason: error === null ? "No cluster id yet" : decodeErrorText(error),
    });
  }

  /** An incoming push-pull: read one frame, step, and the answer goes out in `#flush`. */
  #onStream(socket: Socket, rest: Buffer): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const reader = new FrameReader();
    const cancel = this.#timers.after(this.#options.pushPullTimeoutMs ?? PUSH_PULL_TIMEOUT_MS, () =>
      socket.destroy(),
    );
    socket.on("close", cancel);
    const onData = (chunk: Buffer): void => {
      const read = reader.push(chunk);
      if (read.kind === "more") return;
      socket.off("data", onData);
      if (read.kind === "error") {
        this.#log.debug("Bad push-pull frame", {
          remote: socket.remoteAddress,
          reason: read.reason,
        });
        socket.destroy();
        return;
      }
      this.#onPushPullRequest(socket, read.bytes);
    };
    socket.on("data", onData);
    if (rest.length > 0) onData(rest);
  }

  #onPushPullRequest(socket: Socket, bytes: Uint8Array): void {
    if (this.#closed) return void socket.destroy();
    const decoded = decodePushPull(bytes);
    if (!decoded.ok) {
      this.#log.debug("Bad push-pull frame", {
        remote: socket.remoteAddress,
        reason: decodeErrorText(decoded.error),
      });
      socket.destroy();
      return;
    }
    this.stats.pushPullsServed += 1;
    this.#requestId += 1;
    const id = this.#requestId;
    this.#answers.set(id, socket);
    socket.on("close", () => this.#answers.delete(id));
    const from = { host: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    this.#swim.step({ kind: "pushPullRequest", id, from, frame: decoded.value });
    this.#flush();
  }

  /** Performs every output of the last step(s). */
  #flush(): void {
    for (const output of this.#swim.drain()) {
      switch (output.kind) {
        case "send":
          this.#sendDatagram(output.to, encodePacket(output.packet));
          break;
        case "pushPull":
          this.#pushPull(output.to, output.frame, output.join);
          break;
        case "pushPullAnswer":
          this.#answer(output.id, output.frame);
          break;
        case "member":
        case "clusterId":
        case "joined":
        case "joinFailed":
        case "error":
          this.#report(output);
          break;
      }
    }
  }

  #sendDatagram(to: Endpoint, bytes: Uint8Array): void {
    if (this.#closed) return;
    this.stats.packetsSent += 1;
    try {
      this.#udp.send(bytes, to.port, to.host, (error) => {
        if (error === null || error === undefined) return;
        this.stats.sendErrors += 1;
        this.#log.debug("UDP send failed", { to: endpointText(to), error: error.message });
      });
    } catch (error) {
      // A bad address from the network (port 0, a malformed host) must not stop us.
      this.stats.sendErrors += 1;
      this.#log.debug("UDP send failed", { to: endpointText(to), error: String(error) });
    }
  }

  #pushPull(to: Endpoint, frame: PushPullFrame, join: boolean): void {
    if (this.#closed) return;
    this.stats.pushPullsMade += 1;
    void exchangePushPull({
      to,
      frame: encodePushPull(frame),
      timers: this.#timers,
      timeoutMs: this.#options.pushPullTimeoutMs ?? PUSH_PULL_TIMEOUT_MS,
      sockets: this.#clientSockets,
    }).then((result) => {
      if (this.#closed) return;
      if (!result.ok) {
        if (!join)
          this.#log.debug("Push-pull failed", { to: endpointText(to), reason: result.reason });
        this.#swim.step({ kind: "pushPullFailed", to, reason: result.reason });
      } else {
        const decoded = decodePushPull(result.bytes);
        this.#swim.step(
          decoded.ok
            ? { kind: "pushPullResponse", to, frame: decoded.value }
            : {
                kind: "pushPullFailed",
                to,
                reason: `Bad answer: ${decodeErrorText(decoded.error)}`,
              },
        );
      }
      this.#flush();
    });
  }

  #answer(id: number, frame: PushPullFrame | null): void {
    const socket = this.#answers.get(id);
    if (socket === undefined) return;
    this.#answers.delete(id);
    if (frame === null) return void socket.destroy();
    socket.end(lengthPrefixed(encodePushPull(frame)));
  }

  #report(event: SwimEvent): void {
    switch (event.kind) {
      case "member":
        this.#log.info(`Member ${event.change}`, {
          nodeId: event.member.nodeId,
          gossip: endpointText(event.member.gossip),
          incarnation: event.member.incarnation,
        });
        break;
      case "clusterId":
        this.#log.info("Learned the cluster id from a seed", { cluster: event.clusterId });
        break;
      case "joined":
        this.#log.info("Joined the cluster", {
          via: endpointText(event.via),
          members: event.members,
        });
        break;
      case "joinFailed":
        this.#log.warn(
          `Cannot join through ${endpointText(event.seed)}, retrying in ${event.retryInMs} ms: ${event.reason}`,
          {
            attempt: event.attempt,
          },
        );
        break;
      case "error":
        this.#log.error("Cluster id differs from the seed's", {
          seed: endpointText(event.error.seed),
          ours: event.error.ours,
          theirs: event.error.theirs,
        });
        break;
    }
    this.#options.onEvent?.(event);
  }
}

function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/**
 * Binds TCP (unless a listener is passed) and UDP on the same port number. With port 0 the
 * TCP port is picked first and UDP takes the same number; if that UDP port is taken, try
 * again with another.
 */
async function bindBoth(
  options: SwimDriverOptions,
  log: Logger,
): Promise<{ udp: UdpSocket; streams: StreamListener; ownsStreams: boolean }> {
  const type = isIP(options.bind.host) === 6 ? "udp6" : "udp4";
  if (options.streams !== undefined) {
    const udp = await bindUdp(type, options.bind.host, options.streams.port);
    return { udp, streams: options.streams, ownsStreams: false };
  }
  for (let attempt = 1; ; attempt++) {
    const streams = new StreamListener({
      host: options.bind.host,
      port: options.bind.port,
      timers: options.timers,
      log,
    });
    await streams.listen();
    try {
      const udp = await bindUdp(type, options.bind.host, streams.port);
      return { udp, streams, ownsStreams: true };
    } catch (error) {
      await streams.close();
      const code = (error as NodeJS.ErrnoException).code;
      if (options.bind.port !== 0 || code !== "EADDRINUSE" || attempt >= BIND_ATTEMPTS) throw error;
    }
  }
}

function bindUdp(type: "udp4" | "udp6", host: string, port: number): Promise<UdpSocket> {
  assert(port > 0, "UDP needs the port TCP bound");
  const socket = createSocket({ type });
  return new Promise((resolve, reject) => {
    socket.once("error", (error) => {
      try {
        socket.close();
      } catch {
        // Never bound: nothing to close.
      }
      reject(error);
    });
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}
