import { afterEach, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCheckpoint, readCheckpoint, writeCheckpoint } from "./checkpoint.ts";
import { makeTempDir, removeDir } from "./test-support.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) removeDir(dir);
});

test("storage: checkpoint: Kafka's text format, written atomically, read back", () => {
  const dir = makeTempDir("checkpoint");
  dirs.push(dir);
  const path = join(dir, "recovery-point-offset-checkpoint");
  expect(readCheckpoint(path)).toEqual({ ok: true, entries: [] });
  const entries = [
    { topic: "orders", partition: 0, offset: 1234 },
    { topic: "my.topic-v2_x", partition: 17, offset: 2 ** 53 - 1 },
  ];
  writeCheckpoint(path, dir, entries);
  expect(readFileSync(path, "utf8")).toBe(
    "0\n2\norders 0 1234\nmy.topic-v2_x 17 9007199254740991\n",
  );
  expect(readCheckpoint(path)).toEqual({ ok: true, entries });
  // Rewritten in place by rename: no temporary file stays behind.
  writeCheckpoint(path, dir, []);
  expect(readFileSync(path, "utf8")).toBe("0\n0\n");
  expect(readdirSync(dir)).toEqual(["recovery-point-offset-checkpoint"]);
});

test("storage: checkpoint: a malformed file is reported, never half-trusted", () => {
  const bad = [
    "",
    "1\n0\n",
    "0\n2\norders 0 1\n",
    "0\n1\norders 0\n",
    "0\n1\norders -1 5\n",
    "0\n1\norders 0 -5\n",
    "0\n1\norders 0 12x\n",
    "0\n1\nor ders 0 1\n",
    "0\n1\norders 0 99999999999999999999\n",
  ];
  for (const text of bad) expect(parseCheckpoint(text)).toMatchObject({ ok: false });
  const dir = makeTempDir("checkpoint");
  dirs.push(dir);
  writeFileSync(join(dir, "torn"), "0\n3\na 0 1\n");
  expect(readCheckpoint(join(dir, "torn"))).toMatchObject({
    ok: false,
    reason: expect.stringContaining("count"),
  });
});
