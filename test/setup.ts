/**
 * Runs before `npm test` (the `pretest` script): makes sure this machine has the Debian
 * packages the tests drive — kcat, confluent-kafka-python for the system python3 and
 * systemd-analyze (from systemd) — before any test starts, so that the suite never runs
 * half-way and fails in the middle for want of a client.
 *
 * All present: says nothing. Missing, as root with apt-get: installs them, saying so in
 * one line. Missing otherwise: one line naming the exact command to run, exit 1.
 * `BROOK_TEST_SKIP_SETUP=1` skips the check (for running one test file by hand on a
 * machine without them).
 */
import { spawnSync } from "node:child_process";

const PYTHON = "/usr/bin/python3";

interface Need {
  /** The Debian package that brings it. */
  readonly pkg: string;
  readonly present: () => boolean;
}

const NEEDS: readonly Need[] = [
  { pkg: "kcat", present: () => onPath("kcat") },
  {
    pkg: "python3-confluent-kafka",
    present: () => succeeds(PYTHON, ["-c", "import confluent_kafka"]),
  },
  { pkg: "systemd", present: () => onPath("systemd-analyze") },
];

function succeeds(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: "ignore" });
  return result.error === undefined && result.status === 0;
}

function onPath(command: string): boolean {
  return succeeds("sh", ["-c", `command -v ${command}`]);
}

function main(): number {
  if (process.env.BROOK_TEST_SKIP_SETUP === "1") return 0;
  const missing = NEEDS.filter((need) => !need.present()).map((need) => need.pkg);
  if (missing.length === 0) return 0;
  const install = `apt-get install -y ${missing.join(" ")}`;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !onPath("apt-get")) {
    console.error(
      `test: the tests drive Debian packages this machine lacks; as root run: apt-get update && ${install}`,
    );
    return 1;
  }
  console.error(`test: installing the Debian packages the tests drive: ${missing.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [
    ["update", "-qq"],
    ["install", "-y", "-qq", ...missing],
  ]) {
    const result = spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env });
    if (result.status !== 0) {
      console.error(
        `test: apt-get ${args[0]} failed (exit ${result.status ?? result.signal}); run as root: apt-get update && ${install}`,
      );
      return 1;
    }
  }
  const still = NEEDS.filter((need) => !need.present()).map((need) => need.pkg);
  if (still.length > 0) {
    console.error(`test: still missing after apt-get: ${still.join(" ")}`);
    return 1;
  }
  return 0;
}

process.exit(main());
