/**
 * Flags shared by the commands that work through the admin API (`topic`, `group`,
 * `cluster`): `--admin-url` (environment `BROOK_ADMIN_URL`, default
 * http://127.0.0.1:9644) and `--json`.
 */
import type { Argv } from "yargs";
import type { AdminClient } from "./admin-client.ts";
import type { CliContext } from "./cli.ts";
import { UsageError } from "./errors.ts";
import { type CliIo, formatJson, processIo } from "./output.ts";

export const ADMIN_URL_DEFAULT = "http://127.0.0.1:9644";

/** `--admin-url` as a base URL without a trailing slash; bad usage when it is not http(s). */
export function parseAdminUrl(text: string): string {
  const problem = `Invalid --admin-url: expected an http:// or https:// URL, got ${JSON.stringify(text)}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(problem);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(problem);
  return url.href.replace(/\/+$/, "");
}

export interface AdminArgs {
  "admin-url"?: string;
  json?: boolean;
}

export function addAdminOptions<T>(argv: Argv<T>): Argv<T & AdminArgs> {
  return argv
    .option("admin-url", {
      type: "string",
      describe: `Admin API of any node (env BROOK_ADMIN_URL) [default: ${ADMIN_URL_DEFAULT}]`,
      requiresArg: true,
    })
    .option("json", {
      type: "boolean",
      describe: "Print the API's JSON instead of tables",
      default: false,
    });
}

/** What an admin command needs: the client, where to print, and in which form. */
export interface AdminRun {
  readonly client: AdminClient;
  readonly io: CliIo;
  readonly json: boolean;
  print(text: string): void;
  printJson(value: unknown): void;
}

export async function adminRun(context: CliContext, args: AdminArgs): Promise<AdminRun> {
  const url = parseAdminUrl(args["admin-url"] ?? context.env.BROOK_ADMIN_URL ?? ADMIN_URL_DEFAULT);
  const io = context.io ?? processIo();
  const { AdminClient } = await import("./admin-client.ts");
  return {
    client: new AdminClient(url),
    io,
    json: args.json === true,
    print: (text) => void io.stdout.write(text),
    printJson: (value) => void io.stdout.write(formatJson(value)),
  };
}

/** A path segment for a topic name or group id. */
export function segment(value: string): string {
  return encodeURIComponent(value);
}
