/**
 * `--bootstrap` (environment `BROOK_BOOTSTRAP`, default 127.0.0.1:9092): the Kafka
 * address of any node, for `brook produce` and `brook consume`.
 */
import type { Argv } from "yargs";
import { parseHostPort } from "../config/node-config.ts";
import type { CliContext } from "./cli.ts";
import { UsageError } from "./errors.ts";

export const BOOTSTRAP_DEFAULT = "127.0.0.1:9092";

export interface BootstrapArgs {
  bootstrap?: string;
}

export function addBootstrapOption<T>(argv: Argv<T>): Argv<T & BootstrapArgs> {
  return argv.option("bootstrap", {
    type: "string",
    describe: `Kafka address of any node (env BROOK_BOOTSTRAP) [default: ${BOOTSTRAP_DEFAULT}]`,
    requiresArg: true,
  });
}

export function parseBootstrap(
  context: CliContext,
  args: BootstrapArgs,
): { host: string; port: number } {
  const text = args.bootstrap ?? context.env.BROOK_BOOTSTRAP ?? BOOTSTRAP_DEFAULT;
  const address = parseHostPort(text);
  if (address === null || address.port === 0) {
    throw new UsageError(`Invalid --bootstrap: expected host:port, got ${JSON.stringify(text)}`);
  }
  return address;
}
