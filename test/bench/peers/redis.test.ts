import { expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { command, RespScanner } from "./redis.ts";

const bulk = (text: string) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
const entry = (id: string, value: string) => `*2\r\n${bulk(id)}*2\r\n${bulk("v")}${bulk(value)}`;

/** An XRANGE answer of `count` entries, the values of `size` bytes. */
function xrangeReply(
  count: number,
  size: number,
  firstMs = 1700000000000,
): { bytes: Buffer; lastId: string } {
  let text = `*${count}\r\n`;
  let lastId = "";
  for (let i = 0; i < count; i++) {
    lastId = `${firstMs + (i >> 2)}-${i & 3}`;
    text += entry(lastId, String.fromCharCode(97 + (i % 26)).repeat(size));
  }
  return { bytes: Buffer.from(text, "latin1"), lastId };
}

function feedIn(scanner: RespScanner, bytes: Buffer, pieces: number[]): void {
  let at = 0;
  for (const piece of pieces) {
    scanner.feed(bytes.subarray(at, Math.min(bytes.length, at + piece)));
    at += piece;
    if (at >= bytes.length) return;
  }
  scanner.feed(bytes.subarray(at));
}

test("command encodes an array of bulk strings", () => {
  expect(command(["XADD", "k", "*", "v", Buffer.from("ab")]).toString("latin1")).toBe(
    "*5\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n$1\r\nv\r\n$2\r\nab\r\n",
  );
});

test("XRANGE answers: entries, value bytes and last id, however the bytes are split", () => {
  const { bytes, lastId } = xrangeReply(50, 100);
  const splits: number[][] = [
    [bytes.length],
    Array.from({ length: bytes.length }, () => 1),
    [3, 7, 1, 500, 2, 2, 13, 999],
  ];
  for (let seed = 1; seed <= 20; seed++) {
    let state = seed;
    splits.push(
      Array.from({ length: 200 }, () => {
        state = (state * 1103515245 + 12345) % 2147483648;
        return 1 + (state % 97);
      }),
    );
  }
  for (const pieces of splits) {
    const scanner = new RespScanner();
    feedIn(scanner, bytes, pieces);
    expect(scanner.replies).toBe(1);
    expect(scanner.entries).toBe(50);
    expect(scanner.valueBytes).toBe(50 * 100);
    expect(scanner.lastId()).toBe(lastId);
    expect(scanner.error).toBeNull();
  }
});

test("XADD answers are counted one per reply; errors, integers and empty arrays are seen", () => {
  const scanner = new RespScanner();
  const replies = Array.from({ length: 1000 }, (_, i) => bulk(`1700000000000-${i}`)).join("");
  feedIn(scanner, Buffer.from(replies, "latin1"), [5, 17, 3, 4096]);
  expect(scanner.replies).toBe(1000);
  scanner.feed(Buffer.from(":42\r\n*0\r\n+OK\r\n-ERR no\r\n$-1\r\n", "latin1"));
  expect(scanner.replies).toBe(1005);
  expect(scanner.integer).toBe(42);
  expect(scanner.error).toBe("ERR no");
});

test("two XRANGE answers in a row accumulate entries and keep the newest id", () => {
  const first = xrangeReply(3, 10);
  const second = xrangeReply(4, 1024, 1800000000000);
  const scanner = new RespScanner();
  scanner.feed(Buffer.concat([first.bytes, second.bytes]));
  expect(scanner.replies).toBe(2);
  expect(scanner.entries).toBe(7);
  expect(scanner.valueBytes).toBe(3 * 10 + 4 * 1024);
  expect(scanner.lastId()).toBe(second.lastId);
});
