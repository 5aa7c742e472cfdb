/**
 * `brook consume --topic T [--group G] [--from-beginning] [--max-messages N]
 * [--timeout-ms MS] [--key-separator S] [--bootstrap host:port]`: writes each record's
 * value as one line on stdout (with `--key-separator`, `key<S>value`), reading every
 * partition of the topic over the Kafka protocol (`line-consumer.ts`, loaded when the
 * command runs).
 *
 * `--group` is deliberately not a group member (no JoinGroup/SyncGroup, no assignor):
 * the command takes every partition, starts from the group's committed offsets, and
 * commits with generation -1 after printing — Kafka's commit outside group management.
 * The broker refuses such commits while the group has members; the command then exits 1.
 *
 * The command ends after `--max-messages` records, after `--timeout-ms` without a record,
 * or at SIGINT/SIGTERM (after committing), with exit 0.
 */
import type { Argv, CommandModule } from "yargs";
import type { CliContext } from "./cli.ts";
import { UsageError } from "./errors.ts";
import { addBootstrapOption, type BootstrapArgs, parseBootstrap } from "./kafka-options.ts";
import type { ConsumeOptions } from "./line-consumer.ts";
import { processIo } from "./output.ts";

interface ConsumeArgs extends BootstrapArgs {
  topic: string;
  group?: string;
  "from-beginning"?: boolean;
  "max-messages"?: string;
  "timeout-ms"?: string;
  "key-separator"?: string;
}

function countFlag(flag: string, text: unknown, min: number): number | null {
  if (text === undefined) return null;
  if (typeof text !== "string") throw new UsageError(`Invalid --${flag}: given more than once`);
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(
      `Invalid --${flag}: expected an integer of at least ${min}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

export function consumeCommand(context: CliContext): CommandModule {
  return {
    command: "consume",
    describe: "Print each record of a topic as a line on stdout (Kafka protocol)",
    builder: (argv: Argv) =>
      addBootstrapOption(argv)
        .option("topic", {
          type: "string",
          describe: "Topic to read",
          demandOption: true,
          requiresArg: true,
        })
        .option("group", {
          type: "string",
          describe: "Start from and commit to this group's offsets (no group membership)",
          requiresArg: true,
        })
        .option("from-beginning", {
          type: "boolean",
          describe: "Without a committed offset, start at the log start, not the end",
          default: false,
        })
        .option("max-messages", {
          type: "string",
          describe: "Stop after this many records",
          requiresArg: true,
        })
        .option("timeout-ms", {
          type: "string",
          describe: "Stop after this long without a record",
          requiresArg: true,
        })
        .option("key-separator", {
          type: "string",
          describe: "Print key<separator>value",
          requiresArg: true,
        }),
    handler: async (raw) => {
      const args = raw as unknown as ConsumeArgs;
      const keySeparator = args["key-separator"] ?? null;
      if (keySeparator === "") throw new UsageError("Invalid --key-separator: empty");
      if (args.group === "") throw new UsageError("Invalid --group: empty");
      const options: ConsumeOptions = {
        topic: String(args.topic),
        bootstrap: parseBootstrap(context, args),
        group: args.group ?? null,
        fromBeginning: args["from-beginning"] === true,
        maxMessages: countFlag("max-messages", args["max-messages"], 1),
        timeoutMs: countFlag("timeout-ms", args["timeout-ms"], 1),
        keySeparator,
      };
      const io = context.io ?? processIo();
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        const { runConsume } = await import("./line-consumer.ts");
        await runConsume(options, io, controller.signal);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    },
  };
}
