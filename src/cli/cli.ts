/**
 * The `brook` command line: yargs routing, help, version, and what an error turns into.
 *
 * Each command is one module in this folder exporting a function from `CliContext` to a
 * yargs `CommandModule`; `COMMANDS` lists them. A command parses its own flags (the start
 * command through `parseNodeConfig`) and throws `ConfigError` or `UsageError` for bad
 * usage.
 *
 * Exit codes: 0 done (or, for `start`, a clean stop), 1 the command failed, 2 bad usage.
 * Bad usage always prints exactly one line, `brook: <message>`, on stderr: yargs' own
 * errors (unknown flag, missing value) included, never a usage dump.
 */
import yargs, { type Argv, type CommandModule } from "yargs";
import pkg from "../../package.json" with { type: "json" };
import { ConfigError } from "../config/node-config.ts";
import { DataDirError } from "../storage/data-dir.ts";
import { AssertionError } from "../util/assert.ts";
import { clusterCommand } from "./cluster-command.ts";
import { consumeCommand } from "./consume-command.ts";
import { UsageError } from "./errors.ts";
import { groupCommand } from "./group-command.ts";
import type { CliIo } from "./output.ts";
import { produceCommand } from "./produce-command.ts";
import { startCommand } from "./start-command.ts";
import { topicCommand } from "./topic-command.ts";

export interface CliContext {
  /** Arguments after the executable (and script): `hideBin(process.argv)`. */
  readonly args: string[];
  readonly env: Record<string, string | undefined>;
  /** Streams for commands' input and output; the process's own when absent. */
  readonly io?: CliIo;
}

export { UsageError } from "./errors.ts";

export const VERSION: string = pkg.version;

export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Every command, in --help order. Add a command by adding its module here. */
const COMMANDS: ReadonlyArray<(context: CliContext) => CommandModule> = [
  startCommand,
  topicCommand,
  groupCommand,
  clusterCommand,
  produceCommand,
  consumeCommand,
];

export function buildCli(context: CliContext): Argv {
  const modules = COMMANDS.map((command) => command(context));
  const words = modules.map((module) => String([module.command].flat()[0]).split(" ")[0]!);
  let cli = yargs(routedArgs(context.args, words))
    .scriptName("brook")
    .locale("en")
    .strict()
    .exitProcess(false) // Help and version print, then parseAsync returns.
    .showHelpOnFail(false)
    .fail((message: string | undefined, error: Error | undefined) => {
      // yargs calls this for its own validation errors; rethrown errors of handlers
      // arrive here too under some yargs versions: keep their type.
      if (error !== undefined && !(error instanceof Error && error.name === "YError")) throw error;
      throw new UsageError(message ?? error?.message ?? "Bad usage");
    })
    .version(VERSION)
    .help()
    .alias("help", "h")
    .wrap(100);
  for (const module of modules) cli = cli.command(module);
  return cli;
}

/**
 * Runs the command line. Returns when the command is done, or (start) when the node runs;
 * on error prints one line and exits the process.
 */
export async function runCli(context: CliContext): Promise<void> {
  try {
    await buildCli(context).parseAsync();
  } catch (error) {
    exitWithError(error);
  }
}

/**
 * The arguments yargs routes on. After running the handler of a command named on the
 * command line, yargs renders that command's whole help text and keeps it, in case the
 * handler asks for it later; it does not for the default command. For `brook start`,
 * which runs for months, that rendering (string widths through Intl.Segmenter and Unicode
 * property tables, JIT-compiled) cost 4.5 MiB of idle RSS. `start` is the default
 * command, so a leading `start` word goes the default way, unless help is asked for or
 * another command's word (`commandWords`) follows, which must keep failing as an unknown
 * argument of `start`. The handler still parses the arguments as given (parseNodeConfig
 * accepts the word).
 */
function routedArgs(args: string[], commandWords: string[]): string[] {
  if (args[0] !== "start") return args;
  const rest = args.slice(1);
  if (rest.some((arg) => arg === "--help" || arg === "-h" || commandWords.includes(arg)))
    return args;
  return rest;
}

function exitWithError(error: unknown): never {
  // A data dir that is not ours is the operator's to fix, like a bad flag: exit 2.
  const usage =
    error instanceof UsageError || error instanceof ConfigError || error instanceof DataDirError;
  if (error instanceof AssertionError || !(error instanceof Error)) {
    // A programmer error: the stack is worth more than one tidy line.
    process.stderr.write(`brook: ${error instanceof Error ? error.stack : String(error)}\n`);
  } else {
    process.stderr.write(`brook: ${error.message.replace(/\s*[\r\n]+\s*/g, " ")}\n`);
  }
  process.exit(usage ? EXIT_USAGE : EXIT_FAILED);
}
