import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { FrameSplitter, isFrameError } from "./frame-splitter.ts";

function framed(...bodies: string[]): Buffer {
  return Buffer.concat(
    bodies.map((body) => {
      const head = Buffer.alloc(4);
      head.writeInt32BE(Buffer.byteLength(body));
      return Buffer.concat([head, Buffer.from(body)]);
    }),
  );
}

function drain(splitter: FrameSplitter): string[] {
  const out: string[] = [];
  for (;;) {
    const frame = splitter.next();
    if (frame === null) return out;
    if (isFrameError(frame)) return [...out, `error: ${frame.error}`];
    out.push(frame.toString());
  }
}

test("server: frame splitter: frames come out whole however the bytes are cut", () => {
  const bytes = framed("alpha", "be", "gamma-delta", "x".repeat(300));
  for (const cut of [1, 2, 3, 5, 7, 64, bytes.length]) {
    const splitter = new FrameSplitter({ min: 1, max: 1000 });
    const seen: string[] = [];
    for (let at = 0; at < bytes.length; at += cut) {
      splitter.push(bytes.subarray(at, at + cut));
      seen.push(...drain(splitter));
    }
    expect(seen).toEqual(["alpha", "be", "gamma-delta", "x".repeat(300)]);
  }
});

test("server: frame splitter: a frame within one chunk is a view of it, not a copy", () => {
  const chunk = framed("abc", "def");
  const splitter = new FrameSplitter({ min: 1, max: 10 });
  splitter.push(chunk);
  const first = splitter.next() as Buffer;
  expect(first.buffer).toBe(chunk.buffer);
  expect(first.byteOffset).toBe(chunk.byteOffset + 4);
});

test("server: frame splitter: a length outside the bounds is an error before its bytes arrive", () => {
  const splitter = new FrameSplitter({ min: 4, max: 100 });
  const head = Buffer.alloc(4);
  head.writeInt32BE(101);
  splitter.push(head);
  expect(drain(splitter)).toEqual(["error: Frame size 101 outside [4, 100]"]);
  const small = new FrameSplitter({ min: 4, max: 100 });
  small.push(framed("ab"));
  expect(drain(small)).toEqual(["error: Frame size 2 outside [4, 100]"]);
  const negative = new FrameSplitter({ min: 4, max: 100 });
  negative.push(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  expect(drain(negative)).toEqual(["error: Frame size -1 outside [4, 100]"]);
});
