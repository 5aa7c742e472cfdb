import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { crc32c, crc32cTable, SMALL_INPUT_BYTES } from "./crc32c.ts";
import { nativeCrc32 } from "./native-codecs.ts";

describe("crc32c", () => {
  test("crc32c: the check value of the Castagnoli polynomial", () => {
    // "123456789" → 0xE3069283 (the standard check value of CRC-32C).
    const check = new TextEncoder().encode("123456789");
    expect(crc32cTable(check)).toBe(0xe3069283);
    expect(crc32c(check)).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  test("crc32c: the table agrees with the native addon at every length and offset up to 2 KiB", () => {
    const source = new Uint8Array(4096);
    let seed = 0x12345678;
    for (let i = 0; i < source.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      source[i] = seed >>> 24;
    }
    const native = nativeCrc32();
    for (let length = 0; length <= 2048; length++) {
      const offset = length % 37; // Views that do not start at their buffer's start.
      const view = Buffer.from(source.buffer, offset, length);
      const expected = native.crc32c(view) >>> 0;
      expect(crc32cTable(view)).toBe(expected);
      expect(crc32c(view)).toBe(expected);
    }
  });

  test("crc32c: inputs below the threshold never load the native addon", () => {
    // A fresh process: this one has loaded the addon for the test above.
    const script = `
      import { crc32c } from "./src/protocol/crc32c.ts";
      import { readFileSync } from "node:fs";
      const mapped = () => readFileSync("/proc/self/maps", "utf8").includes(".node");
      crc32c(new Uint8Array(${SMALL_INPUT_BYTES - 1}));
      const before = mapped();
      crc32c(new Uint8Array(${SMALL_INPUT_BYTES}));
      console.log(JSON.stringify({ before, after: mapped() }));
    `;
    const run = spawnSync(process.execPath, ["-e", script], {
      cwd: `${import.meta.dir}/../..`,
      encoding: "utf8",
    });
    expect(run.stderr).toBe("");
    expect(JSON.parse(run.stdout)).toEqual({ before: false, after: true });
  });
});
