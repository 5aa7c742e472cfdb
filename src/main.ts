#!/usr/bin/env bun
/**
 * Entry of the `brook` executable (`bun src/main.ts`, `deno run -A src/main.ts`, or the
 * binary from `bun build --compile`). Everything happens in src/cli/: this file only hands
 * it the arguments and the environment.
 */
import { hideBin } from "yargs/helpers";
import { runCli } from "./cli/cli.ts";

await runCli({ args: hideBin(process.argv), env: process.env });
