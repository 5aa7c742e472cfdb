/**
 * House rules checked by a test (docs/conventions.md, section 7, after TigerBeetle's
 * tidy): time and randomness are passed in, never taken from globals, and algorithm
 * folders own no timer.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join, relative } from "node:path";

const SRC = join(import.meta.dir, "..", "src");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "generated" ? [] : sources(path);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") ? [path] : [];
  });
}

function offenders(pattern: RegExp, files: string[], allowed: string[] = []): string[] {
  return files.flatMap((path) => {
    const name = relative(SRC, path);
    if (allowed.includes(name)) return [];
    return readFileSync(path, "utf8")
      .split("\n")
      .flatMap((line, i) =>
        pattern.test(line.replace(/\/\/.*$/, "")) ? [`${name}:${i + 1}: ${line.trim()}`] : [],
      );
  });
}

const all = sources(SRC);
const algorithmFolders = ["coordinator", "cluster", "storage", "replication"].map((f) =>
  join(SRC, f),
);
const algorithms = all.filter((path) => algorithmFolders.some((folder) => path.startsWith(folder)));

test("tidy: wall-clock time comes from a Clock", () => {
  expect(offenders(/\bDate\.now\(|performance\.now\(/, all, ["util/clock.ts"])).toEqual([]);
});

test("tidy: randomness comes from a Random", () => {
  expect(offenders(/\bMath\.random\(/, all, ["util/random.ts"])).toEqual([]);
});

test("tidy: algorithm folders own no timers (the driver in node.ts does)", () => {
  // The one exception: a long-polling fetch waits on a timer of its own.
  expect(offenders(/\bset(Timeout|Interval)\(/, algorithms, ["storage/log-manager.ts"])).toEqual(
    [],
  );
});

test("tidy: the sources are as npm run format (prettier) leaves them", () => {
  const root = join(import.meta.dir, "..");
  const prettier = join(root, "node_modules", ".bin", "prettier");
  const globs = ["src/**/*.ts", "test/**/*.ts", "build/**/*.ts", "!src/protocol/generated/**"];
  const run = spawnSync(prettier, ["--list-different", ...globs], { cwd: root, encoding: "utf8" });
  // --list-different names the files that differ and exits 1; 2 is prettier's own error.
  expect({
    status: run.status,
    unformatted: run.stdout.split("\n").filter((line) => line !== ""),
  }).toEqual({
    status: 0,
    unformatted: [],
  });
}, 60_000);
