/**
 * How Brook ships: the single executable from `bun build --compile`, the same sources
 * under Deno, and the systemd unit. Each serves kcat for real.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { BUN, REPO, startBroker, stopAndClean, tempDir } from "../helpers/broker.ts";
import { kcatRoundTrip } from "../helpers/kcat.ts";

const COUNT = 500;
const expected = Array.from({ length: COUNT }, (_, i) => `${i} k${i} v${i}`);
const buildDir = tempDir("brook-build-");

afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

describe("dist", () => {
  test("dist: the compiled executable reports its version and serves kcat", async () => {
    const binary = join(buildDir, "brook");
    // Exactly what `npm run build` runs, into a temporary file.
    expect(pkg.scripts.build).toBe("bun build/compile.ts");
    const build = spawnSync(BUN, ["build/compile.ts", "--outfile", binary], {
      cwd: REPO,
      encoding: "utf8",
    });
    expect(build.stderr).toBe("");
    expect(build.status).toBe(0);
    const version = spawnSync(binary, ["--version"], { encoding: "utf8" });
    expect(version.stdout.trim()).toBe(pkg.version);
    const bad = spawnSync(binary, ["start", "--kafka", "nonsense"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    const broker = await startBroker({ command: [binary] });
    try {
      expect(await kcatRoundTrip(broker.bootstrap, "compiled", COUNT)).toEqual(expected);
      // The same executable is the command line too, as the README calls it: `brook topic list`.
      const listed = spawnSync(binary, ["topic", "list", "--admin-url", broker.adminUrl], {
        encoding: "utf8",
      });
      expect(listed.stderr).toBe("");
      expect(listed.status).toBe(0);
      expect(listed.stdout).toContain("compiled");
    } finally {
      await stopAndClean(broker);
    }
  });

  test("dist: the sources run under Deno and serve kcat", async () => {
    const deno = join(REPO, "node_modules/.bin/deno");
    expect(existsSync(deno)).toBe(true);
    const broker = await startBroker({
      command: [deno, "run", "-A", join(REPO, "src/main.ts")],
      readyMs: 60000,
    });
    try {
      expect(await kcatRoundTrip(broker.bootstrap, "on-deno", COUNT)).toEqual(expected);
    } finally {
      await stopAndClean(broker);
    }
  });

  test("dist: systemd-analyze verify accepts the unit", () => {
    // verify also checks that ExecStart's binary exists; this machine has none installed
    // at /usr/local/bin, so the copy points at an executable that does exist.
    const unit = readFileSync(join(REPO, "systemd/brook.service"), "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/brook start --config /etc/brook/brook.toml");
    const copy = join(buildDir, "brook.service");
    writeFileSync(copy, unit.replace("/usr/local/bin/brook", "/bin/true"));
    const verify = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8" });
    expect(verify.stderr).toBe("");
    expect(verify.status).toBe(0);
  });
});
