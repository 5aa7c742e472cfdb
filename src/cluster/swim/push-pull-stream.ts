/**
 * Push-pull over TCP: after the stream tag 'S', each side sends one frame, a u32 length
 * then that many bytes (at most PUSH_PULL_BYTES_MAX). The initiator writes its request and
 * reads the answer; the other side reads the request and writes the answer, then ends.
 */
import { connect, type Socket } from "node:net";
import { FrameSplitter, isFrameError } from "../../server/frame-splitter.ts";
import { PUSH_PULL_BYTES_MAX } from "./codec.ts";
import type { Endpoint } from "./member.ts";
import { STREAM_TAG_SWIM } from "./stream-listener.ts";
import type { Timers } from "./timers.ts";

export type FrameRead =
  | { readonly kind: "more" }
  | { readonly kind: "frame"; readonly bytes: Uint8Array }
  | { readonly kind: "error"; readonly reason: string };

/** Collects chunks until one length-prefixed frame is complete (the broker's splitter). */
export class FrameReader {
  readonly #frames = new FrameSplitter({ min: 0, max: PUSH_PULL_BYTES_MAX });

  push(chunk: Buffer): FrameRead {
    this.#frames.push(chunk);
    const frame = this.#frames.next();
    if (frame === null) return { kind: "more" };
    if (isFrameError(frame)) return { kind: "error", reason: frame.error };
    return { kind: "frame", bytes: frame };
  }
}

export function lengthPrefixed(frame: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + frame.length);
  out.writeUInt32BE(frame.length, 0);
  out.set(frame, 4);
  return out;
}

export type ExchangeResult =
  | { readonly ok: true; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly reason: string };

/**
 * Sends `frame` to `to` and resolves with the answer, or with why there is none (never
 * rejects). `sockets` tracks the connection while it is open, so a stop can destroy it.
 */
export function exchangePushPull(options: {
  to: Endpoint;
  frame: Uint8Array;
  timers: Timers;
  timeoutMs: number;
  sockets: Set<Socket>;
}): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    const reader = new FrameReader();
    const socket = connect({ host: options.to.host, port: options.to.port });
    options.sockets.add(socket);
    let done = false;
    const finish = (result: ExchangeResult): void => {
      if (done) return;
      done = true;
      cancel();
      options.sockets.delete(socket);
      socket.destroy();
      resolve(result);
    };
    const cancel = options.timers.after(options.timeoutMs, () =>
      finish({ ok: false, reason: "Timed out" }),
    );
    socket.on("connect", () => {
      socket.write(Buffer.concat([Buffer.of(STREAM_TAG_SWIM), lengthPrefixed(options.frame)]));
    });
    socket.on("data", (chunk: Buffer) => {
      const read = reader.push(chunk);
      if (read.kind === "frame") finish({ ok: true, bytes: read.bytes });
      else if (read.kind === "error") finish({ ok: false, reason: read.reason });
    });
    socket.on("error", (error: NodeJS.ErrnoException) =>
      finish({ ok: false, reason: error.code ?? error.message }),
    );
    socket.on("close", () => finish({ ok: false, reason: "Closed without an answer" }));
  });
}
