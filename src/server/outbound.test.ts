import { describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import type { DeferredBytes } from "../protocol/deferred-bytes.ts";
import { Outbound, PIECE_BYTES, type WritableSocket } from "./outbound.ts";

/** A socket that takes `acceptBeforeFull` writes, then reports full until `drain()`. */
class FakeSocket implements WritableSocket {
  readonly writes: Uint8Array[] = [];
  destroyed = false;
  writableLength = 0;
  #drainListener: (() => void) | null = null;
  constructor(public acceptBeforeFull = Infinity) {}
  write(data: Uint8Array): boolean {
    this.writes.push(Uint8Array.from(data));
    return this.writes.length < this.acceptBeforeFull;
  }
  once(_event: "drain", listener: () => void): unknown {
    this.#drainListener = listener;
    return this;
  }
  drain(more = Infinity): void {
    this.acceptBeforeFull = this.writes.length + more;
    const listener = this.#drainListener;
    this.#drainListener = null;
    listener?.();
  }
  sent(): Buffer {
    return Buffer.concat(this.writes);
  }
}

/** Deferred bytes over an in-memory source, counting what was read and released. */
class FakeDeferred implements DeferredBytes {
  read = 0;
  released = 0;
  constructor(
    readonly source: Uint8Array,
    readonly failAt = Infinity,
  ) {}
  get byteLength(): number {
    return this.source.byteLength;
  }
  next(maxBytes: number): Uint8Array {
    if (this.read >= this.failAt) throw new Error("file shrank");
    const piece = this.source.subarray(this.read, this.read + maxBytes);
    this.read += piece.byteLength;
    return piece;
  }
  release(): void {
    this.released++;
  }
}

/** Deferred bytes whose pieces listed as cold must be waited for (whenReadable) until `settle`. */
class ColdDeferred extends FakeDeferred {
  readonly #cold: Set<number>;
  #settle: (() => void) | null = null;
  constructor(source: Uint8Array, coldPieces: number[]) {
    super(source);
    this.#cold = new Set(coldPieces);
  }
  whenReadable(): Promise<void> | null {
    const piece = this.read / PIECE_BYTES;
    if (!this.#cold.has(piece)) return null;
    return new Promise<void>((resolve) => {
      this.#settle = () => {
        this.#cold.delete(piece);
        resolve();
      };
    });
  }
  settle(): void {
    this.#settle?.();
    this.#settle = null;
  }
}

function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

describe("server: outbound", () => {
  test("small chunks ready together leave as one write; a large one in pieces of at most 1 MiB, its tail gathered with what follows", () => {
    const socket = new FakeSocket();
    const outbound = new Outbound(socket, { onBroken: () => {} });
    const small = [pattern(10, 1), pattern(300, 2), pattern(4000, 3)];
    const large = pattern(2 * PIECE_BYTES + 5, 4);
    outbound.send([...small, large, pattern(7, 5)]);
    expect(socket.writes.map((w) => w.byteLength)).toEqual([4310, PIECE_BYTES, PIECE_BYTES, 12]);
    expect(socket.sent()).toEqual(Buffer.concat([...small, large, pattern(7, 5)]));
    expect(outbound.queuedBytes).toBe(0);
  });

  test("stops when the socket is full and goes on, in order, on drain", () => {
    const socket = new FakeSocket(1);
    const outbound = new Outbound(socket, { onBroken: () => {} });
    const first = pattern(3 * PIECE_BYTES, 1);
    outbound.send([first]);
    outbound.send([pattern(100, 2)]);
    expect(socket.writes.length).toBe(1);
    expect(outbound.queuedBytes).toBe(2 * PIECE_BYTES + 100);
    socket.drain(1);
    expect(socket.writes.length).toBe(2);
    socket.drain();
    expect(socket.sent()).toEqual(Buffer.concat([first, pattern(100, 2)]));
    expect(outbound.queuedBytes).toBe(0);
  });

  test("deferred bytes are read only as the socket takes them, then released", () => {
    const socket = new FakeSocket(1);
    const outbound = new Outbound(socket, { onBroken: () => {} });
    const deferred = new FakeDeferred(pattern(3 * PIECE_BYTES + 9, 7));
    outbound.send([pattern(20, 1), deferred, pattern(30, 2)]);
    expect(deferred.read).toBe(0); // The head went first and filled the socket.
    socket.drain(1);
    expect(deferred.read).toBe(PIECE_BYTES);
    socket.drain();
    expect(deferred.read).toBe(deferred.byteLength);
    expect(deferred.released).toBe(1);
    expect(socket.sent()).toEqual(Buffer.concat([pattern(20, 1), deferred.source, pattern(30, 2)]));
  });

  test("clear releases deferred bytes not yet sent; a failing read reports the frame broken", () => {
    const socket = new FakeSocket(1);
    const outbound = new Outbound(socket, { onBroken: () => {} });
    const pending = new FakeDeferred(pattern(2 * PIECE_BYTES, 1));
    outbound.send([pattern(5, 0), pending]);
    outbound.clear();
    expect(pending.released).toBe(1);
    expect(outbound.queuedBytes).toBe(0);

    const broken: Error[] = [];
    const other = new Outbound(new FakeSocket(), { onBroken: (error) => broken.push(error) });
    const failing = new FakeDeferred(pattern(3 * PIECE_BYTES, 2), PIECE_BYTES);
    other.send([failing]);
    expect(broken.map((e) => e.message)).toEqual(["file shrank"]);
    expect(failing.released).toBe(1);
    expect(other.queuedBytes).toBe(0);
  });

  test("a deferred piece that must come from the disk holds the queue, not the thread; it goes on in order once read", async () => {
    const socket = new FakeSocket();
    let written = 0;
    const outbound = new Outbound(socket, { onBroken: () => {}, onWritten: () => written++ });
    const cold = new ColdDeferred(pattern(3 * PIECE_BYTES + 9, 7), [0, 2]);
    outbound.send([pattern(20, 1), cold, pattern(30, 2)]);
    // The first piece is cold: what came before it went, nothing after it did.
    expect(cold.read).toBe(0);
    expect(socket.sent()).toEqual(Buffer.from(pattern(20, 1)));
    outbound.send([pattern(40, 3)]);
    expect(socket.sent().byteLength).toBe(20);
    cold.settle();
    await Promise.resolve();
    // Read: that piece and the next (cached) one went; the third is cold again.
    expect(cold.read).toBe(2 * PIECE_BYTES);
    expect(written).toBe(1);
    cold.settle();
    await Promise.resolve();
    expect(cold.released).toBe(1);
    expect(socket.sent()).toEqual(
      Buffer.concat([pattern(20, 1), cold.source, pattern(30, 2), pattern(40, 3)]),
    );
    expect(outbound.queuedBytes).toBe(0);
  });
});
