/**
 * Starts a real Brook process on loopback with its own data dir and free ports, for
 * tests. Every broker started here is stopped by its process id (`stop` sends SIGTERM,
 * `kill` SIGKILL) and `stopAll` runs after each test file as a safety net.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const BUN = process.execPath;

export interface TestBroker {
  readonly pid: number;
  readonly nodeId: number;
  /** The --gossip address actually bound (host:port), "" for a node without one. */
  readonly gossip: string;
  readonly host: string;
  readonly port: number;
  readonly bootstrap: string;
  readonly adminPort: number;
  readonly adminUrl: string;
  readonly dataDir: string;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<number | null>;
  kill(): Promise<void>;
  /** The exit code once the process ends by itself (null for a signal). */
  exited(): Promise<number | null>;
}

const running = new Set<ChildProcess>();

export function tempDir(prefix = "brook-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Ports to bind instead of any free one (a node restarted where it was). */
export interface BrokerPorts {
  readonly kafka: number;
  readonly admin: number;
  readonly gossip: number;
}

/** The ports a running test broker bound. */
export function portsOf(broker: TestBroker): BrokerPorts {
  return {
    kafka: broker.port,
    admin: broker.adminPort,
    gossip: Number(broker.gossip.slice(broker.gossip.lastIndexOf(":") + 1)),
  };
}

export async function startBroker(
  options: {
    dataDir?: string;
    args?: string[];
    command?: string[];
    readyMs?: number;
    ports?: BrokerPorts;
  } = {},
): Promise<TestBroker> {
  const dataDir = options.dataDir ?? tempDir();
  const command = options.command ?? [BUN, join(REPO, "src/main.ts")];
  const ports = options.ports ?? { kafka: 0, admin: 0, gossip: 0 };
  const child = spawn(
    command[0]!,
    [
      ...command.slice(1),
      "start",
      "--data-dir",
      dataDir,
      "--kafka",
      `127.0.0.1:${ports.kafka}`,
      "--admin",
      `127.0.0.1:${ports.admin}`,
      "--gossip",
      `127.0.0.1:${ports.gossip}`,
      ...(options.args ?? []),
    ],
    {
      cwd: REPO,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, BROOK_LOG_LEVEL: process.env.BROOK_LOG_LEVEL ?? "info" },
    },
  );
  running.add(child);
  let stderr = "";
  const exited = new Promise<number | null>((resolveExit) =>
    child.on("exit", (code) => {
      running.delete(child);
      resolveExit(code);
    }),
  );
  const ready = await new Promise<RegExpMatchArray>((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Broker not ready within ${options.readyMs ?? 20000} ms:\n${stderr}`)),
      options.readyMs ?? 20000,
    );
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const match =
        /Node serving nodeId=(\d+) .*kafka=([\d.]+):(\d+) advertise=\S+ admin=([\d.]+):(\d+)(?: gossip=(\S+))?/.exec(
          stderr,
        );
      if (match) {
        clearTimeout(timer);
        resolveReady(match);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Broker exited with ${code} before ready:\n${stderr}`));
    });
  });
  const nodeId = Number(ready[1]);
  const host = ready[2]!;
  const port = Number(ready[3]);
  const adminPort = Number(ready[5]);
  return {
    pid: child.pid!,
    nodeId,
    gossip: ready[6] ?? "",
    host,
    port,
    bootstrap: `${host}:${port}`,
    adminPort,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    dataDir,
    stderr: () => stderr,
    async stop() {
      signal(child, "SIGTERM");
      return exited;
    },
    async kill() {
      signal(child, "SIGKILL");
      await exited;
    },
    exited: () => exited,
  };
}

/**
 * Sends `name` to a child still running. One killed by a signal has a null exit code too
 * (its signal code is set), and one already reaped is left alone.
 */
function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid!, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** Stops the broker and removes its data dir. */
export async function stopAndClean(broker: TestBroker): Promise<void> {
  await broker.stop();
  rmSync(broker.dataDir, { recursive: true, force: true });
}

/** Safety net: whatever a test left running dies with the test process. */
process.on("exit", () => {
  for (const child of running)
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL");
});

/** Waits for a condition, polling; fails with `what` after the deadline. */
export async function eventually<T>(
  what: string,
  probe: () => T | Promise<T>,
  timeoutMs = 10000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}
