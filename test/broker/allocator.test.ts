/**
 * The allocator settings Brook starts with (src/runtime/allocator.ts): a broker started
 * without them restarts itself with them, in the same process (the pid its starter
 * holds), and an operator's own value is kept.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  ALLOCATOR_ENV,
  allocatorRestart,
  type RestartableProcess,
} from "../../src/runtime/allocator.ts";
import { startBroker, stopAndClean } from "../helpers/broker.ts";

/** The environment of process `pid`, from /proc. */
function environOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  return new Map(
    entries.map((entry) => [
      entry.slice(0, entry.indexOf("=")),
      entry.slice(entry.indexOf("=") + 1),
    ]),
  );
}

test("allocator: a started broker runs with the settings, in the pid it was started as", async () => {
  for (const name of Object.keys(ALLOCATOR_ENV)) delete process.env[name]; // as a shell starts it
  const broker = await startBroker();
  try {
    const environ = environOf(broker.pid);
    for (const [name, value] of Object.entries(ALLOCATOR_ENV))
      expect(environ.get(name)).toBe(value);
    // Still serving in that process: the admin API answers.
    expect((await fetch(`${broker.adminUrl}/v1/cluster`)).status).toBe(200);
  } finally {
    await stopAndClean(broker);
  }
});

const stand = (overrides: Partial<RestartableProcess>): RestartableProcess => ({
  platform: "linux",
  env: { HOME: "/root" },
  argv: ["/usr/bin/bun", "/srv/brook/src/main.ts", "start", "--data-dir", "/d"],
  execArgv: ["--smol"],
  execPath: "/usr/bin/bun",
  execve: () => {},
  ...overrides,
});

test("allocator: the restart keeps the arguments, for a script and for a compiled executable", () => {
  const script = allocatorRestart(stand({}), true);
  expect(script?.file).toBe("/usr/bin/bun");
  expect(script?.args).toEqual([
    "/usr/bin/bun",
    "--smol",
    "/srv/brook/src/main.ts",
    "start",
    "--data-dir",
    "/d",
  ]);
  expect(script?.env).toMatchObject({ HOME: "/root", ...ALLOCATOR_ENV });
  const compiled = allocatorRestart(
    stand({
      argv: ["bun", "/$bunfs/root/brook", "start"],
      execArgv: [],
      execPath: "/usr/local/bin/brook",
    }),
    true,
  );
  expect(compiled?.args).toEqual(["/usr/local/bin/brook", "start"]);
});

test("allocator: no restart when set already, under Deno, off Linux or without execve", () => {
  const operator = { HOME: "/root", MIMALLOC_PURGE_DELAY: "0" };
  expect(allocatorRestart(stand({ env: operator }), true)).toBeNull();
  expect(allocatorRestart(stand({}), false)).toBeNull();
  expect(allocatorRestart(stand({ platform: "darwin" }), true)).toBeNull();
  expect(allocatorRestart(stand({ execve: undefined }), true)).toBeNull();
});
