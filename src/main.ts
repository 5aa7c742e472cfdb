#!/usr/bin/env bun
/**
 * Entry of the `brook` executable (`bun src/main.ts`, `deno run -A src/main.ts`, or the
 * binary from `bun build --compile`). Everything happens in src/cli/: this file only hands
 * it the arguments and the environment, after the allocator settings (which may restart
 * the process with itself first, so nothing else is loaded before them).
 */
import { applyAllocatorSettings } from "./runtime/allocator.ts";

applyAllocatorSettings();
const { hideBin } = await import("yargs/helpers");
const { runCli } = await import("./cli/cli.ts");
await runCli({ args: hideBin(process.argv), env: process.env });
