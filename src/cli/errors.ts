/**
 * Errors of the command line that decide its exit code (see `cli.ts`).
 */

/** Bad usage found by the CLI itself or by yargs: one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
