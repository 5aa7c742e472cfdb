/**
 * Metadata commands forwarded to the controller. A node that is not the controller
 * sends a `MetadataCommand` (CreateTopics, DeleteTopics, CreatePartitions, admin API
 * writes, the creation of __consumer_offsets) to the controller over the cluster port
 * (the TCP side of `--gossip`, first byte 'C'), and the controller answers with the
 * outcome and the metadata log index that holds it, so the asking node can wait until
 * its own image has applied that far before it answers its client.
 *
 * Frames both ways: 4-byte big-endian length, then UTF-8 JSON. Requests are
 * `{id, command, clusterId}`, answers `{id, result, index}`. Input from the network is
 * checked field by field (`parseCommand`); anything else closes the connection. A
 * request from another cluster (a node of it that reached a port this node now uses)
 * is answered notController and not executed.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { FrameSplitter, isFrameError } from "../server/frame-splitter.ts";
import { logger } from "../util/log.ts";
import type { Timers } from "../util/timers.ts";
import type { CommandResult, MetadataCommand } from "./topics.ts";

const log = logger("controller-rpc");

/** The first byte of a controller connection on the cluster port. */
export const CONTROLLER_RPC_TAG = 0x43;
/** A command is a few hundred bytes; a topic's configs keep it far below this. */
export const CONTROLLER_FRAME_BYTES_MAX = 1024 * 1024;
export const CONTROLLER_RPC_TIMEOUT_MS_DEFAULT = 10_000;

export interface ControllerAnswer {
  readonly result: CommandResult;
  /** The metadata log index that holds the change; -1 when nothing was written. */
  readonly index: number;
}

export type CommandExecutor = (command: MetadataCommand) => Promise<ControllerAnswer>;

/** Serves one accepted connection whose tag byte was already read; `rest` follows it. */
export function serveControllerConnection(
  socket: Socket,
  rest: Buffer,
  execute: CommandExecutor,
  clusterId: () => string | null = () => null,
): void {
  socket.on("error", () => socket.destroy());
  readFrames(
    socket,
    rest,
    (frame) => {
      const request = parseRequest(frame);
      if (request === null) {
        log.warn("Malformed controller request; closing", { remote: socket.remoteAddress });
        socket.destroy();
        return;
      }
      const ours = clusterId() ?? "";
      if (request.clusterId !== "" && ours !== "" && request.clusterId !== ours) {
        log.warn("Controller request from another cluster; refused", {
          remote: socket.remoteAddress,
          cluster: request.clusterId,
        });
        const message = `This node is in cluster ${ours}, not ${request.clusterId}`;
        writeFrame(socket, {
          id: request.id,
          result: { ok: false, error: { kind: "notController", message } },
          index: -1,
        });
        return;
      }
      execute(request.command).then(
        (answer) => writeFrame(socket, { id: request.id, ...answer }),
        (error: unknown) => {
          const message = error instanceof Error ? error.message : String(error);
          writeFrame(socket, {
            id: request.id,
            result: { ok: false, error: { kind: "notController", message } },
            index: -1,
          });
        },
      );
    },
    () => socket.destroy(),
  );
}

/** Client side: one connection per controller address, requests matched by id. */
export class ControllerClient {
  readonly #timeoutMs: number;
  readonly #timers: Timers;
  readonly #connections = new Map<string, ClientConnection>();
  #nextId = 1;

  readonly #clusterId: () => string | null;

  constructor(options: { timers: Timers; timeoutMs?: number; clusterId?: () => string | null }) {
    this.#timers = options.timers;
    this.#timeoutMs = options.timeoutMs ?? CONTROLLER_RPC_TIMEOUT_MS_DEFAULT;
    this.#clusterId = options.clusterId ?? (() => null);
  }

  /** Sends `command` to the controller at host:port; a failure is a notController result. */
  async submit(
    address: { host: string; port: number },
    command: MetadataCommand,
  ): Promise<ControllerAnswer> {
    const key = `${address.host}:${address.port}`;
    let connection = this.#connections.get(key);
    if (connection === undefined || connection.closed) {
      connection = new ClientConnection(address, () => this.#connections.delete(key));
      this.#connections.set(key, connection);
    }
    try {
      return await connection.request(
        this.#nextId++,
        command,
        this.#clusterId() ?? "",
        this.#timeoutMs,
        this.#timers,
      );
    } catch (error) {
      const message = `Controller at ${key} did not answer: ${error instanceof Error ? error.message : String(error)}`;
      return { result: { ok: false, error: { kind: "notController", message } }, index: -1 };
    }
  }

  close(): void {
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
  }
}

class ClientConnection {
  readonly #socket: Socket;
  readonly #waiting = new Map<
    number,
    { resolve: (answer: ControllerAnswer) => void; reject: (error: Error) => void }
  >();
  closed = false;

  constructor(address: { host: string; port: number }, onClose: () => void) {
    this.#socket = connect({ host: address.host, port: address.port });
    this.#socket.setNoDelay(true);
    this.#socket.write(Buffer.from([CONTROLLER_RPC_TAG]));
    readFrames(
      this.#socket,
      Buffer.alloc(0),
      (frame) => {
        const answer = parseAnswer(frame);
        if (answer === null) return this.#fail(new Error("Malformed controller answer"));
        const waiter = this.#waiting.get(answer.id);
        this.#waiting.delete(answer.id);
        waiter?.resolve({ result: answer.result, index: answer.index });
      },
      () => this.#fail(new Error("Oversized controller answer")),
    );
    this.#socket.on("error", (error) => this.#fail(error));
    this.#socket.on("close", () => {
      this.#fail(new Error("Connection closed"));
      onClose();
    });
  }

  request(
    id: number,
    command: MetadataCommand,
    clusterId: string,
    timeoutMs: number,
    timers: Timers,
  ): Promise<ControllerAnswer> {
    if (this.closed) return Promise.reject(new Error("Connection closed"));
    return new Promise((resolve, reject) => {
      const cancel = timers.after(timeoutMs, () => {
        this.#waiting.delete(id);
        reject(new Error(`No answer within ${timeoutMs} ms`));
      });
      this.#waiting.set(id, {
        resolve: (answer) => {
          cancel();
          resolve(answer);
        },
        reject: (error) => {
          cancel();
          reject(error);
        },
      });
      writeFrame(this.#socket, { id, command, clusterId });
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #fail(error: Error): void {
    this.closed = true;
    this.#socket.destroy();
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }
}

/** Feeds a socket's bytes through a splitter: each frame to `onFrame`, a broken stream to `onBroken`. */
function readFrames(
  socket: Socket,
  first: Buffer,
  onFrame: (frame: Buffer) => void,
  onBroken: () => void,
): void {
  const frames = new FrameSplitter({ min: 2, max: CONTROLLER_FRAME_BYTES_MAX });
  const drain = (chunk: Buffer) => {
    frames.push(chunk);
    while (!socket.destroyed) {
      const frame = frames.next();
      if (frame === null) return;
      if (isFrameError(frame)) return onBroken();
      onFrame(frame);
    }
  };
  socket.on("data", drain);
  if (first.length > 0) drain(first);
}

function writeFrame(socket: Socket, body: unknown): void {
  if (socket.destroyed) return;
  const json = Buffer.from(JSON.stringify(body), "utf8");
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.length, 0);
  socket.write(Buffer.concat([head, json]));
}

function parseJson(frame: Buffer): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(frame.toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

function parseRequest(
  frame: Buffer,
): { id: number; command: MetadataCommand; clusterId: string } | null {
  const value = parseJson(frame);
  if (value === null || !Number.isSafeInteger(value.id)) return null;
  if (value.clusterId !== undefined && typeof value.clusterId !== "string") return null;
  const command = parseCommand(value.command);
  return command === null
    ? null
    : { id: value.id as number, command, clusterId: (value.clusterId as string | undefined) ?? "" };
}

function parseAnswer(frame: Buffer): { id: number; result: CommandResult; index: number } | null {
  const value = parseJson(frame);
  if (value === null || !Number.isSafeInteger(value.id) || !Number.isSafeInteger(value.index))
    return null;
  const result = value.result as Record<string, unknown> | null;
  if (typeof result !== "object" || result === null || typeof result.ok !== "boolean") return null;
  if (!result.ok) {
    const error = result.error as Record<string, unknown> | null;
    if (
      typeof error !== "object" ||
      error === null ||
      typeof error.kind !== "string" ||
      typeof error.message !== "string"
    )
      return null;
    if (error.kind === "alterPartition" && !isAlterPartitionRefusal(error.result)) return null;
  }
  return { id: value.id as number, result: result as CommandResult, index: value.index as number };
}

const isInt = (value: unknown): value is number => Number.isSafeInteger(value);

function isAlterPartitionRefusal(value: unknown): boolean {
  const r = value as Record<string, unknown> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    r.ok === false &&
    typeof r.error === "string" &&
    isInt(r.partitionEpoch)
  );
}
const isString = (value: unknown): value is string => typeof value === "string";

/** A command from the network, checked field by field; null when it is not one. */
export function parseCommand(value: unknown): MetadataCommand | null {
  if (typeof value !== "object" || value === null) return null;
  const c = value as Record<string, unknown>;
  switch (c.kind) {
    case "createTopic": {
      const r = c.request as Record<string, unknown> | null;
      if (typeof r !== "object" || r === null) return null;
      if (
        !isString(r.name) ||
        !isInt(r.numPartitions) ||
        !isInt(r.replicationFactor) ||
        !Array.isArray(r.configs)
      )
        return null;
      const configs: Array<{ name: string; value: string | null }> = [];
      for (const each of r.configs as unknown[]) {
        const config = each as Record<string, unknown> | null;
        if (typeof config !== "object" || config === null || !isString(config.name)) return null;
        if (config.value !== null && !isString(config.value)) return null;
        configs.push({ name: config.name, value: config.value as string | null });
      }
      let assignments: number[][] | undefined;
      if (r.assignments !== undefined) {
        if (!Array.isArray(r.assignments)) return null;
        assignments = [];
        for (const replicas of r.assignments as unknown[]) {
          if (!Array.isArray(replicas) || !replicas.every(isInt)) return null;
          assignments.push(replicas as number[]);
        }
      }
      const request = {
        name: r.name,
        numPartitions: r.numPartitions,
        replicationFactor: r.replicationFactor,
        configs,
        ...(assignments === undefined ? {} : { assignments }),
      };
      return { kind: "createTopic", request, internal: c.internal === true };
    }
    case "createPartitions":
      return isString(c.name) && isInt(c.count)
        ? { kind: "createPartitions", name: c.name, count: c.count }
        : null;
    case "deleteTopic":
      return isString(c.topicId) ? { kind: "deleteTopic", topicId: c.topicId } : null;
    case "registerBroker":
      if (!isInt(c.nodeId) || !isString(c.host) || !isInt(c.port)) return null;
      if (c.rack !== null && !isString(c.rack)) return null;
      if (c.incarnation !== undefined && !isString(c.incarnation)) return null;
      if (c.lossy !== undefined && typeof c.lossy !== "boolean") return null;
      return {
        kind: "registerBroker",
        nodeId: c.nodeId,
        host: c.host,
        port: c.port,
        rack: c.rack as string | null,
        ...(c.incarnation === undefined ? {} : { incarnation: c.incarnation }),
        ...(c.lossy === true ? { lossy: true } : {}),
      };
    case "fenceBroker":
    case "unfenceBroker":
      return isInt(c.nodeId) ? { kind: c.kind, nodeId: c.nodeId } : null;
    case "alterPartition": {
      const r = c.request as Record<string, unknown> | null;
      if (typeof r !== "object" || r === null) return null;
      if (!isInt(r.brokerId) || !isString(r.topicId) || !isInt(r.partition)) return null;
      if (
        !isInt(r.leaderEpoch) ||
        !isInt(r.partitionEpoch) ||
        !Array.isArray(r.newIsr) ||
        !r.newIsr.every(isInt)
      )
        return null;
      const { brokerId, topicId, partition, leaderEpoch, partitionEpoch } = r;
      return {
        kind: "alterPartition",
        request: {
          brokerId,
          topicId,
          partition,
          leaderEpoch,
          partitionEpoch,
          newIsr: r.newIsr as number[],
        },
      };
    }
    default:
      return null;
  }
}
