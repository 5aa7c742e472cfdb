/**
 * The Redis Streams load generator for the harness's "peers" group (`run.ts`): a
 * process of its own, like `loadgen.ts`, started once per measured run:
 *
 *   bun test/bench/peers/redis.ts '<json spec>'
 *
 * It prints one JSON line (the result) on stdout; any failure (an error reply, a closed
 * connection, a count that does not match) exits 1 with a one-line message on stderr.
 *
 * - xadd: deletes the key, then `connections` connections each send their share of
 *   `messages` `XADD key * v <value>` commands, pipelined: the command bytes are built
 *   once (`chunk` commands per write, values from `workload.ts`) and each connection
 *   keeps up to `window` commands in flight, counting replies as they come back (no
 *   reply is decoded beyond its length). The clock runs from the first write to the last
 *   reply; afterwards XLEN must equal `messages`.
 * - xrange: drains the first `messages` entries of the key with `XRANGE key <from> +
 *   COUNT <count>`, one request at a time (each starts after the last id of the
 *   previous answer), counting entries and value bytes.
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { messageValues } from "../workload.ts";

export interface RedisXaddSpec {
  mode: "xadd";
  host: string;
  port: number;
  key: string;
  messages: number;
  messageBytes: number;
  connections: number;
  /** Commands in flight per connection. */
  window: number;
  /** Commands per write. */
  chunk: number;
}

export interface RedisXrangeSpec {
  mode: "xrange";
  host: string;
  port: number;
  key: string;
  messages: number;
  /** Entries per XRANGE. */
  count: number;
}

export type RedisSpec = RedisXaddSpec | RedisXrangeSpec;

export interface RedisResult {
  messages: number;
  payloadBytes: number;
  seconds: number;
  messagesPerSec: number;
  payloadMBPerSec: number;
  requests: number;
  clientCpuSeconds: number;
}

const CR = 13,
  LF = 10;

function fail(message: string): never {
  throw new Error(message);
}

/** One RESP command as bytes: an array of bulk strings. */
export function command(args: readonly (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`, "latin1")];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? Buffer.from(arg, "utf8") : Buffer.from(arg);
    parts.push(
      Buffer.from(`$${bytes.byteLength}\r\n`, "latin1"),
      bytes,
      Buffer.from("\r\n", "latin1"),
    );
  }
  return Buffer.concat(parts);
}

/**
 * Walks RESP replies as chunks arrive, without building values: counts whole replies,
 * the elements of a top-level array (stream entries, for XRANGE), bulk bytes at depth 3
 * (entry field values), and keeps the first bulk of the last entry (its id), the last
 * integer reply and the first error.
 */
export class RespScanner {
  replies = 0;
  entries = 0;
  valueBytes = 0;
  integer = 0;
  error: string | null = null;
  /** Remaining elements of each open array, outermost first. */
  readonly #open: number[] = [];
  /** A line split across chunks. */
  #partial: Buffer | null = null;
  /** Bytes of the current bulk (body and CRLF) still to come. */
  #bulkLeft = 0;
  #capturing = false;
  #captured: Buffer[] = [];
  #lastId: Buffer = Buffer.alloc(0);

  lastId(): string {
    return this.#lastId.toString("latin1");
  }

  feed(chunk: Buffer): void {
    let at = 0;
    const end = chunk.length;
    while (at < end) {
      if (this.#bulkLeft > 0) {
        const take = Math.min(this.#bulkLeft, end - at);
        if (this.#capturing) this.#captured.push(chunk.subarray(at, at + take));
        at += take;
        this.#bulkLeft -= take;
        if (this.#bulkLeft === 0) {
          if (this.#capturing) {
            const whole =
              this.#captured.length === 1 ? this.#captured[0]! : Buffer.concat(this.#captured);
            this.#lastId = whole.subarray(0, whole.length - 2);
            this.#captured = [];
            this.#capturing = false;
          }
          this.#completed();
        }
        continue;
      }
      const newline = chunk.indexOf(LF, at);
      if (newline < 0) {
        const rest = chunk.subarray(at);
        this.#partial =
          this.#partial === null ? Buffer.from(rest) : Buffer.concat([this.#partial, rest]);
        return;
      }
      let line = chunk;
      let from = at;
      let to = newline - 1; // the CR
      if (this.#partial !== null) {
        line = Buffer.concat([this.#partial, chunk.subarray(at, newline + 1)]);
        this.#partial = null;
        from = 0;
        to = line.length - 2;
      }
      at = newline + 1;
      if (line[to] !== CR) fail("Malformed RESP line");
      this.#line(line, from, to);
    }
  }

  #number(line: Buffer, from: number, to: number): number {
    let negative = false;
    let i = from;
    if (line[i] === 45) {
      negative = true;
      i++;
    }
    let value = 0;
    for (; i < to; i++) value = value * 10 + (line[i]! - 48);
    return negative ? -value : value;
  }

  #line(line: Buffer, from: number, to: number): void {
    const type = line[from];
    switch (type) {
      case 36: {
        // $ bulk string
        const length = this.#number(line, from + 1, to);
        if (length < 0) {
          this.#completed();
          return;
        }
        const depth = this.#open.length;
        // An entry is [id, [field, value]]: its id is the first of the entry's 2 elements.
        this.#capturing = depth === 2 && this.#open[1] === 2;
        if (depth === 3) this.valueBytes += this.#open[2] === 1 ? length : 0;
        this.#bulkLeft = length + 2;
        return;
      }
      case 42: {
        // * array
        const length = this.#number(line, from + 1, to);
        if (length <= 0) this.#completed();
        else this.#open.push(length);
        return;
      }
      case 58: // : integer
        if (this.#open.length === 0) this.integer = this.#number(line, from + 1, to);
        this.#completed();
        return;
      case 43: // + simple string
        this.#completed();
        return;
      case 45: // - error
        this.error ??= line.toString("latin1", from + 1, to);
        this.#completed();
        return;
      default:
        fail(`Unexpected RESP type byte ${type}`);
    }
  }

  /** One value finished: count it against the arrays that hold it. */
  #completed(): void {
    for (;;) {
      const depth = this.#open.length;
      if (depth === 0) {
        this.replies++;
        return;
      }
      if (depth === 1) this.entries++;
      const left = --this.#open[depth - 1]!;
      if (left > 0) return;
      this.#open.pop();
    }
  }
}

class Connection {
  readonly scanner = new RespScanner();
  onReplies: () => void = () => {};
  #closed: Error | null = null;

  private constructor(
    readonly socket: Socket,
    onClose: (error: Error) => void,
  ) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.scanner.feed(chunk);
      this.onReplies();
    });
    socket.on("error", (error) => (this.#closed ??= error));
    socket.on("close", () => onClose(this.#closed ?? new Error("Connection closed")));
  }

  static open(host: string, port: number, onClose: (error: Error) => void): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.once("connect", () => {
        socket.removeAllListeners("error");
        resolve(new Connection(socket, onClose));
      });
      socket.once("error", (error) =>
        reject(new Error(`Cannot connect to ${host}:${port}: ${error.message}`)),
      );
    });
  }

  /** Sends one command and waits for its reply; returns the scanner (integer, error). */
  call(args: readonly (string | Uint8Array)[]): Promise<RespScanner> {
    const before = this.scanner.replies;
    return new Promise((resolve, reject) => {
      this.onReplies = () => {
        if (this.scanner.replies > before) {
          this.onReplies = () => {};
          if (this.scanner.error !== null) reject(new Error(`Redis: ${this.scanner.error}`));
          else resolve(this.scanner);
        }
      };
      this.socket.write(command(args));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

function result(
  messages: number,
  payloadBytes: number,
  seconds: number,
  requests: number,
): RedisResult {
  const cpu = process.cpuUsage();
  return {
    messages,
    payloadBytes,
    seconds,
    requests,
    messagesPerSec: messages / seconds,
    payloadMBPerSec: payloadBytes / 1e6 / seconds,
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

async function xadd(spec: RedisXaddSpec): Promise<RedisResult> {
  if (spec.connections < 1 || spec.chunk < 1 || spec.window < spec.chunk)
    fail("Need connections ≥ 1 and window ≥ chunk ≥ 1");
  let failure: Error | null = null;
  let finish: () => void = () => {};
  const onClose = (error: Error) => {
    failure ??= error;
    finish();
  };
  const admin = await Connection.open(spec.host, spec.port, () => {});
  await admin.call(["DEL", spec.key]);
  // Pre-built writes: `chunk` XADDs each, over a pool of distinct values.
  const values = messageValues(256, spec.messageBytes, 7);
  const prefix = ["XADD", spec.key, "*", "v"];
  const chunkOf = (first: number, count: number) =>
    Buffer.concat(
      Array.from({ length: count }, (_, i) =>
        command([...prefix, values[(first + i) % values.length]!]),
      ),
    );
  const chunks = Array.from(
    { length: Math.max(1, Math.floor(values.length / spec.chunk)) },
    (_, i) => chunkOf(i * spec.chunk, spec.chunk),
  );
  const tails = new Map<number, Buffer>();
  const tail = (count: number) => {
    let buffer = tails.get(count);
    if (buffer === undefined) tails.set(count, (buffer = chunkOf(0, count)));
    return buffer;
  };
  const connections = await Promise.all(
    Array.from({ length: spec.connections }, () => Connection.open(spec.host, spec.port, onClose)),
  );
  let requests = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    let running = connections.length;
    finish = () => {
      if (failure !== null) reject(failure);
    };
    connections.forEach((connection, index) => {
      const target =
        Math.floor(spec.messages / spec.connections) +
        (index < spec.messages % spec.connections ? 1 : 0);
      let sent = 0;
      let next = index;
      const pump = () => {
        const scanner = connection.scanner;
        if (scanner.error !== null) {
          failure ??= new Error(`XADD failed: ${scanner.error}`);
          finish();
          return;
        }
        while (
          sent < target &&
          sent - scanner.replies + Math.min(spec.chunk, target - sent) <= spec.window
        ) {
          const count = Math.min(spec.chunk, target - sent);
          connection.socket.write(
            count === spec.chunk ? chunks[next++ % chunks.length]! : tail(count),
          );
          sent += count;
          requests += count;
        }
        if (scanner.replies === target) {
          connection.onReplies = () => {};
          if (--running === 0) resolve();
        }
      };
      connection.onReplies = pump;
      if (target === 0) {
        if (--running === 0) resolve();
      } else {
        pump();
      }
    });
  });
  const seconds = (performance.now() - started) / 1000;
  for (const connection of connections) connection.close();
  const length = (await admin.call(["XLEN", spec.key])).integer;
  admin.close();
  if (length !== spec.messages) fail(`XLEN ${spec.key} is ${length}, expected ${spec.messages}`);
  return result(spec.messages, spec.messages * spec.messageBytes, seconds, requests);
}

async function xrange(spec: RedisXrangeSpec): Promise<RedisResult> {
  let failure: Error | null = null;
  const connection = await Connection.open(spec.host, spec.port, (error) => (failure ??= error));
  const scanner = connection.scanner;
  let requests = 0;
  const started = performance.now();
  let from = "-";
  while (scanner.entries < spec.messages) {
    const want = Math.min(spec.count, spec.messages - scanner.entries);
    const before = scanner.entries;
    await connection.call(["XRANGE", spec.key, from, "+", "COUNT", String(want)]);
    requests++;
    if (failure !== null) throw failure;
    if (scanner.entries === before)
      fail(`XRANGE ${spec.key} ended after ${before} of ${spec.messages} entries`);
    from = `(${scanner.lastId()}`;
  }
  const seconds = (performance.now() - started) / 1000;
  connection.close();
  if (scanner.entries !== spec.messages)
    fail(`Read ${scanner.entries} entries, expected ${spec.messages}`);
  return result(scanner.entries, scanner.valueBytes, seconds, requests);
}

if (import.meta.main) {
  try {
    const spec = JSON.parse(process.argv[2] ?? "") as RedisSpec;
    const outcome = spec.mode === "xadd" ? await xadd(spec) : await xrange(spec);
    process.stdout.write(JSON.stringify(outcome) + "\n");
    process.exit(0);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}
