import { describe, expect, test } from "bun:test";
import { parseNodeConfig } from "../config/node-config.ts";
import { runStart, type RunningNode, type StartDeps, type StopSignal } from "./start-command.ts";

const config = parseNodeConfig([], {});

/** A stand-in for src/node.ts and the process: records what runStart does. */
function harness(options: { startFails?: boolean; stopFails?: boolean } = {}) {
  const events: string[] = [];
  const listeners = new Map<StopSignal, () => void>();
  let exited: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => {
    exited = resolve;
  });
  let finishStart: () => void = () => {};
  const startGate = new Promise<void>((resolve) => {
    finishStart = resolve;
  });
  const node: RunningNode = {
    async stop() {
      events.push("stop");
      if (options.stopFails === true) throw new Error("Disk gone");
    },
  };
  const deps: StartDeps = {
    async startNode(given) {
      expect(given).toBe(config);
      events.push("start");
      await startGate;
      if (options.startFails === true) throw new Error("Port in use");
      return node;
    },
    onSignal(signal, listener) {
      listeners.set(signal, listener);
    },
    exit(code) {
      events.push(`exit ${code}`);
      exited(code);
    },
  };
  const signal = (name: StopSignal): void => {
    const listener = listeners.get(name);
    if (listener === undefined) throw new Error(`No ${name} handler`);
    listener();
  };
  return { deps, events, exit, signal, finishStart };
}

describe("cli: start", () => {
  test("cli: start: SIGTERM stops the node and exits 0", async () => {
    const h = harness();
    h.finishStart();
    await runStart(config, h.deps);
    expect(h.events).toEqual(["start"]);
    h.signal("SIGTERM");
    expect(await h.exit).toBe(0);
    expect(h.events).toEqual(["start", "stop", "exit 0"]);
  });

  test("cli: start: SIGINT stops the node and exits 0", async () => {
    const h = harness();
    h.finishStart();
    await runStart(config, h.deps);
    h.signal("SIGINT");
    expect(await h.exit).toBe(0);
    expect(h.events).toEqual(["start", "stop", "exit 0"]);
  });

  test("cli: start: a signal during startup stops the node once it has started", async () => {
    const h = harness();
    const running = runStart(config, h.deps);
    h.signal("SIGTERM");
    expect(h.events).toEqual(["start"]);
    h.finishStart();
    await running;
    expect(await h.exit).toBe(0);
    expect(h.events).toEqual(["start", "stop", "exit 0"]);
  });

  test("cli: start: a second signal exits at once", async () => {
    const h = harness();
    const running = runStart(config, h.deps);
    h.signal("SIGINT");
    h.signal("SIGINT");
    expect(await h.exit).toBe(130);
    h.finishStart();
    await running;
  });

  test("cli: start: a failed stop exits 1", async () => {
    const h = harness({ stopFails: true });
    h.finishStart();
    await runStart(config, h.deps);
    h.signal("SIGTERM");
    expect(await h.exit).toBe(1);
    expect(h.events).toEqual(["start", "stop", "exit 1"]);
  });

  test("cli: start: a failed start rejects", async () => {
    const h = harness({ startFails: true });
    h.finishStart();
    await expect(runStart(config, h.deps)).rejects.toThrow("Port in use");
  });
});
