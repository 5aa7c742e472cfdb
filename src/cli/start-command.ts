/**
 * `brook [start] [flags]`: start a node and run it until SIGTERM or SIGINT.
 *
 * Flags, environment and config file become a NodeConfig through parseNodeConfig (bad
 * usage throws ConfigError before anything starts). The node itself comes from
 * `src/node.ts`, imported lazily so that --help, --version and bad usage never load the
 * broker. The first signal stops the node cleanly and exits 0 (1 if the stop fails); a
 * second signal exits at once with 128 + signal number.
 */
import type { CommandModule } from "yargs";
import {
  NODE_OPTIONS_EPILOGUE,
  addNodeOptions,
  parseNodeConfig,
  type NodeConfig,
} from "../config/node-config.ts";
import { logger, setLogLevel } from "../util/log.ts";
import type { CliContext } from "./cli.ts";

const log = logger("main");

export interface RunningNode {
  stop(): Promise<void>;
}

export type StopSignal = "SIGTERM" | "SIGINT";

const SIGNAL_NUMBER: Record<StopSignal, number> = { SIGINT: 2, SIGTERM: 15 };

/** What runStart touches outside itself, so a test can run it in process. */
export interface StartDeps {
  startNode: (config: NodeConfig) => Promise<RunningNode>;
  onSignal: (signal: StopSignal, listener: () => void) => void;
  exit: (code: number) => void;
}

export function startCommand(context: CliContext): CommandModule {
  return {
    command: ["start", "$0"],
    describe: "Start a node (the default command)",
    builder: (argv) => addNodeOptions(argv).epilogue(NODE_OPTIONS_EPILOGUE),
    handler: async () => {
      const config = parseNodeConfig(context.args, context.env);
      setLogLevel(config.logLevel);
      await runStart(config, {
        startNode: async (nodeConfig) => {
          const { startNode } = await import("../node.ts");
          return startNode(nodeConfig);
        },
        onSignal: (signal, listener) => {
          process.on(signal, listener);
        },
        exit: (code) => process.exit(code),
      });
    },
  };
}

/**
 * Starts the node and installs the signal handlers. Resolves once the node has started;
 * rejects if it fails to start. Handlers are installed first, so a signal during startup
 * waits for the start to finish and then stops the node.
 */
export async function runStart(config: NodeConfig, deps: StartDeps): Promise<void> {
  const started = deps.startNode(config);
  let stopping = false;

  const onSignal = async (signal: StopSignal): Promise<void> => {
    if (stopping) {
      log.warn("Second signal: exiting without a clean stop", { signal });
      deps.exit(128 + SIGNAL_NUMBER[signal]);
      return;
    }
    stopping = true;
    log.info("Stopping", { signal });
    try {
      const node = await started;
      await node.stop();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      log.error("Clean stop failed", { error: reason });
      deps.exit(1);
      return;
    }
    log.info("Stopped");
    deps.exit(0);
  };
  deps.onSignal("SIGTERM", () => void onSignal("SIGTERM"));
  deps.onSignal("SIGINT", () => void onSignal("SIGINT"));

  await started;
}
