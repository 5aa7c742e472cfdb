/**
 * `brook produce --topic T [--key-separator S] [--bootstrap host:port]`: each line of
 * stdin becomes one record, sent over the Kafka protocol with acks=-1 (acknowledged
 * once committed). With `--key-separator`, the text before the first separator is the
 * key and the rest the value; a line without the separator stops the command (exit 1)
 * after the lines before it were sent, as Kafka's console producer does. How lines are
 * partitioned, batched and retried: `line-producer.ts`, loaded when the command runs.
 */
import { createInterface } from "node:readline";
import type { Argv, CommandModule } from "yargs";
import type { CliContext } from "./cli.ts";
import { UsageError } from "./errors.ts";
import { addBootstrapOption, type BootstrapArgs, parseBootstrap } from "./kafka-options.ts";
import { processIo } from "./output.ts";

interface ProduceArgs extends BootstrapArgs {
  topic: string;
  "key-separator"?: string;
}

export function produceCommand(context: CliContext): CommandModule {
  return {
    command: "produce",
    describe: "Send each line of stdin as a record (Kafka protocol, acks=-1)",
    builder: (argv: Argv) =>
      addBootstrapOption(argv)
        .option("topic", {
          type: "string",
          describe: "Topic to produce to",
          demandOption: true,
          requiresArg: true,
        })
        .option("key-separator", {
          type: "string",
          describe: "Split each line into key and value at the first separator",
          requiresArg: true,
        }),
    handler: async (raw) => {
      const args = raw as unknown as ProduceArgs;
      const keySeparator = args["key-separator"] ?? null;
      if (keySeparator === "") throw new UsageError("Invalid --key-separator: empty");
      const options = {
        topic: String(args.topic),
        bootstrap: parseBootstrap(context, args),
        keySeparator,
      };
      const io = context.io ?? processIo();
      const { runProduce } = await import("./line-producer.ts");
      await runProduce(
        options,
        () => createInterface({ input: io.stdin, crlfDelay: Infinity }),
        io,
      );
    },
  };
}
