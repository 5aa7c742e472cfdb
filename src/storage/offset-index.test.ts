import { expect, test } from "bun:test";
import { AssertionError } from "../util/assert.ts";
import { OffsetIndex } from "./offset-index.ts";
import { TimeIndex } from "./time-index.ts";

test("storage: offset index: floor finds the entry at or below an offset", () => {
  const index = new OffsetIndex(1000);
  expect(index.floor(1000)).toBe(-1);
  for (let i = 0; i < 500; i++) index.append(1000 + i * 10, i * 4096);
  expect(index.entryCount).toBe(500);
  expect(index.floor(999)).toBe(-1);
  expect(index.floor(1000)).toBe(0);
  expect(index.floor(1009)).toBe(0);
  expect(index.floor(1010)).toBe(1);
  expect(index.floor(1000 + 4990)).toBe(499);
  expect(index.floor(1_000_000)).toBe(499);
  expect(index.offsetAt(37)).toBe(1370);
  expect(index.positionAt(37)).toBe(37 * 4096);
});

test("storage: offset index: entries must increase", () => {
  const index = new OffsetIndex(0);
  index.append(5, 100);
  expect(() => index.append(5, 200)).toThrow(AssertionError);
  expect(() => index.append(6, 100)).toThrow(AssertionError);
  expect(() => index.append(-1 + 0, 300)).toThrow(AssertionError);
  const based = new OffsetIndex(10);
  expect(() => based.append(9, 0)).toThrow(AssertionError);
});

test("storage: offset index: file bytes round-trip, a torn entry is ignored", () => {
  const index = new OffsetIndex(77);
  for (let i = 0; i < 100; i++) index.append(77 + i * 3, i * 100 + 1);
  const bytes = index.entryBytes(0, index.entryCount);
  expect(bytes.byteLength).toBe(800);
  const torn = new Uint8Array(bytes.byteLength + 5);
  torn.set(bytes);
  const loaded = new OffsetIndex(77, torn);
  expect(loaded.entryCount).toBe(100);
  expect(loaded.validPrefix(1 << 30)).toBe(100);
  expect(loaded.positionAt(99)).toBe(9901);
  expect(loaded.floor(77 + 50 * 3 + 1)).toBe(50);
});

test("storage: offset index: validPrefix stops at entries past the log or out of order", () => {
  const index = new OffsetIndex(0);
  for (let i = 0; i < 10; i++) index.append(i * 2, i * 1000);
  expect(index.validPrefix(10_000)).toBe(10);
  expect(index.validPrefix(5_000)).toBe(5); // Entry 5 points at 5000: not inside.
  const bytes = new Uint8Array(index.entryBytes(0, 10));
  bytes.fill(0, 6 * 8); // Zeros after a crash: entries 6.. go back to (0, 0).
  expect(new OffsetIndex(0, bytes).validPrefix(10_000)).toBe(6);
  index.truncate(3);
  expect(index.entryCount).toBe(3);
  expect(index.floor(100)).toBe(2);
});

test("storage: time index: lastBelow finds the last entry strictly below a timestamp", () => {
  const index = new TimeIndex(100);
  index.append(1000, 100);
  index.append(1000, 110); // Equal maxima are allowed: the max did not grow.
  index.append(2000, 120);
  index.append(3000, 130);
  expect(index.lastBelow(999)).toBe(-1);
  expect(index.lastBelow(1000)).toBe(-1);
  expect(index.lastBelow(1001)).toBe(1);
  expect(index.lastBelow(2500)).toBe(2);
  expect(index.lastBelow(1e15)).toBe(3);
  expect(index.offsetAt(2)).toBe(120);
  expect(() => index.append(2999, 140)).toThrow(AssertionError);
  expect(() => index.append(4000, 130)).toThrow(AssertionError);
});

test("storage: time index: file bytes round-trip and validPrefix", () => {
  const index = new TimeIndex(0);
  for (let i = 0; i < 70; i++) index.append(1_700_000_000_000 + i, i * 5);
  const bytes = new Uint8Array(index.entryBytes(0, 70));
  const loaded = new TimeIndex(0, bytes.subarray(0, bytes.byteLength - 3));
  expect(loaded.entryCount).toBe(69);
  expect(loaded.timestampAt(68)).toBe(1_700_000_000_068);
  expect(loaded.validPrefix()).toBe(69);
  bytes.fill(0, 40 * 12);
  expect(new TimeIndex(0, bytes).validPrefix()).toBe(40);
});
