/**
 * The `brook` command line as a real process: bad usage is one line on stderr and exit
 * code 2; --version and --help exit 0. No test here starts a broker.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { NODE_OPTIONS } from "../src/config/node-config.ts";
import { compile } from "../build/compile.ts";

const MAIN = join(import.meta.dir, "..", "src", "main.ts");
const scratch = mkdtempSync(join(tmpdir(), "brook-cli-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function scratchFile(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function brook(args: string[]): Run {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("BROOK_")) env[key] = value;
  }
  const result = Bun.spawnSync([process.execPath, MAIN, ...args], { env, cwd: scratch });
  return {
    code: result.exitCode,
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
  };
}

function expectUsageError(run: Run, message: string | RegExp): void {
  expect(run.stdout).toBe("");
  const lines = run.stderr.split("\n");
  expect(lines).toHaveLength(2); // One line, then the final newline.
  expect(lines[1]).toBe("");
  if (typeof message === "string") expect(lines[0]).toBe(message);
  else expect(lines[0]).toMatch(message);
  expect(run.code).toBe(2);
}

describe("cli: bad usage is one line and exit code 2", () => {
  test("cli: --kafka nonsense", () => {
    expectUsageError(
      brook(["--kafka", "nonsense"]),
      'brook: Invalid --kafka: expected host:port, got "nonsense"',
    );
  });

  test("cli: start --node-id -3", () => {
    expectUsageError(
      brook(["start", "--node-id", "-3"]),
      'brook: Invalid --node-id: expected an integer from 0 to 2147483647, got "-3"',
    );
  });

  test("cli: unknown flag", () => {
    expectUsageError(brook(["--bogus"]), "brook: Unknown argument: bogus");
    expectUsageError(brook(["start", "--bogus", "1"]), /^brook: Unknown argument/);
  });

  test("cli: unknown command", () => {
    expectUsageError(brook(["stop"]), "brook: Unknown argument: stop");
  });

  test("cli: a leading start word (routed as the default command) still checks what follows it", () => {
    expectUsageError(brook(["start", "start"]), "brook: Unknown argument: start");
    expectUsageError(
      brook(["start", "--kafka", "127.0.0.1:9092", "extra"]),
      "brook: Unknown argument: extra",
    );
    expectUsageError(brook(["start", "topic"]), "brook: Unknown argument: topic");
  });

  test("cli: flag without its value", () => {
    expectUsageError(brook(["--data-dir"]), "brook: Not enough arguments following: data-dir");
  });

  test("cli: config file with an unknown key", () => {
    const path = scratchFile("unknown.toml", 'kafka = "127.0.0.1:9092"\nbogus = 1\n');
    expectUsageError(
      brook(["--config", path]),
      `brook: Unknown key in config file ${path}: "bogus"`,
    );
  });

  test("cli: config file with a wrong type", () => {
    const path = scratchFile("type.json", '{"num-partitions": "three"}');
    expectUsageError(
      brook(["--config", path]),
      `brook: Invalid num-partitions in ${path}: ` +
        'expected an integer from 1 to 2147483647, got "three"',
    );
  });

  test("cli: config file that does not parse", () => {
    const path = scratchFile("broken.toml", "node-id = 1\nkafka = '127.0.0.1:9092\n");
    expectUsageError(
      brook(["--config", path]),
      /^brook: Cannot parse config file .*broken\.toml: line 2: /,
    );
    const section = scratchFile("section.toml", "[broker]\nkafka = '127.0.0.1:9092'\n");
    expectUsageError(
      brook(["--config", section]),
      /^brook: Unknown key in config file .*section\.toml: "broker\.kafka"$/,
    );
  });

  test("cli: unreadable config file", () => {
    const missing = join(scratch, "missing.toml");
    expectUsageError(
      brook(["--config", missing]),
      /^brook: Cannot read config file .*missing\.toml: ENOENT/,
    );
    const directory = join(scratch, "a-directory.toml");
    mkdirSync(directory);
    expectUsageError(
      brook(["--config", directory]),
      /^brook: Cannot read config file .*a-directory\.toml: /,
    );
  });
});

describe("cli: a data dir that is not this node's is one line and exit code 2", () => {
  const start = (dataDir: string, ...extra: string[]) =>
    brook([
      "start",
      "--data-dir",
      dataDir,
      "--kafka",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
      ...extra,
    ]);

  test("cli: corrupt meta.json", () => {
    const dataDir = join(scratch, "corrupt");
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, "meta.json"), "{ not json");
    expectUsageError(start(dataDir), /^brook: Unreadable .*meta\.json/);
  });

  test("cli: meta.json of another node id", () => {
    const dataDir = join(scratch, "other-node");
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      join(dataDir, "meta.json"),
      JSON.stringify({ nodeId: 4, clusterId: "abc", formatVersion: 2 }),
    );
    expectUsageError(
      start(dataDir, "--node-id", "5"),
      /^brook: Data dir .* belongs to node 4, not --node-id 5$/,
    );
  });

  test("cli: a data dir that cannot be created", () => {
    // Root ignores permission bits, so the unwritable place is under a regular file.
    const blocker = scratchFile("not-a-directory", "x");
    expectUsageError(
      start(join(blocker, "data")),
      /^brook: Cannot create data dir .*not-a-directory\/data/,
    );
  });

  test("cli: a data dir without write permission", () => {
    const dataDir = join(scratch, "read-only");
    mkdirSync(dataDir, { recursive: true, mode: 0o555 });
    chmodSync(dataDir, 0o555);
    chmodSync(scratch, 0o755);
    const flags = [
      "start",
      "--data-dir",
      dataDir,
      "--kafka",
      "127.0.0.1:0",
      "--admin",
      "127.0.0.1:0",
    ];
    // Permission bits do not bind root, so as root the broker runs as nobody: compiled into
    // the scratch dir, since nobody may not enter the checkout (a home dir of mode 0700)
    // to reach Bun and the sources.
    let command = [process.execPath, MAIN, ...flags];
    if (process.getuid?.() === 0) {
      const executable = join(scratch, "brook");
      compile(MAIN, executable);
      command = ["runuser", "-u", "nobody", "--", executable, ...flags];
    }
    const result = Bun.spawnSync(command, { cwd: "/", env: { PATH: process.env.PATH ?? "" } });
    expectUsageError(
      { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() },
      /^brook: Cannot write .*read-only\/meta\.json.*EACCES/,
    );
  });

  test("cli: meta.json of a future format", () => {
    const dataDir = join(scratch, "future");
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      join(dataDir, "meta.json"),
      JSON.stringify({ nodeId: 1, clusterId: "abc", formatVersion: 99 }),
    );
    expectUsageError(start(dataDir), /format version 99/);
  });
});

describe("cli: version and help", () => {
  test("cli: --version prints the package version", () => {
    const run = brook(["--version"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`${pkg.version}\n`);
    expect(run.stderr).toBe("");
  });

  for (const args of [["--help"], ["start", "--help"], ["-h"]]) {
    test(`cli: ${args.join(" ")} lists every flag with its default`, () => {
      const run = brook(args);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe("");
      // One block per flag: from its name to the next flag.
      const blocks = run.stdout.split(/\n(?=\s+(?:-\w, )?--)/);
      for (const spec of NODE_OPTIONS) {
        const block = blocks.find((text) => new RegExp(`^\\s+--${spec.flag}\\s`).test(text));
        expect(block, `--${spec.flag} in help`).toBeDefined();
        expect(block).toContain(`[default: ${spec.defaultText}]`);
      }
      expect(run.stdout).toContain("BROOK_<FLAG>");
    });
  }
});
