/**
 * How commands talk to the terminal: the streams they use (`CliIo`, so tests can run a
 * command in process), aligned tables for people, indented JSON for scripts (`--json`),
 * and a progress line on stderr that only a terminal gets.
 */
import type { Clock } from "../util/clock.ts";

export interface CliIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Progress lines are for people: only written when stderr is a terminal. */
  readonly stderrIsTty: boolean;
}

export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    stderrIsTty: process.stderr.isTTY === true,
  };
}

export type Cell = string | number | boolean | null | undefined;

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined) return "-";
  return String(cell);
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<readonly Cell[]>,
): string {
  const texts = [headers.map(String), ...rows.map((row) => row.map(cellText))];
  const widths = headers.map((_, column) =>
    Math.max(...texts.map((row) => (row[column] ?? "").length)),
  );
  return (
    texts
      .map((row) =>
        row
          .map((text, column) => (column === row.length - 1 ? text : text.padEnd(widths[column]!)))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Resolves once the stream has taken the bytes (for a pipe: handed to the OS). */
export function writeAll(stream: NodeJS.WritableStream, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (error?: Error | null) => (error ? reject(error) : resolve()));
  });
}

/** A self-overwriting status line on stderr, at most once per `intervalMs`. */
export class Progress {
  readonly #io: CliIo;
  readonly #clock: Clock;
  readonly #intervalMs: number;
  /** Monotonic ms of the last line written; -Infinity before the first. */
  #shownAtMs = -Infinity;
  #shown = false;

  constructor(io: CliIo, clock: Clock, intervalMs = 1000) {
    this.#io = io;
    this.#clock = clock;
    this.#intervalMs = intervalMs;
  }

  update(text: () => string): void {
    if (!this.#io.stderrIsTty) return;
    const now = this.#clock.monotonicMs();
    if (now - this.#shownAtMs < this.#intervalMs) return;
    this.#shownAtMs = now;
    this.#shown = true;
    this.#io.stderr.write(`\r\x1b[K${text()}`);
  }

  /** Ends the line with a final text, if a progress line was ever shown. */
  done(text: string): void {
    if (!this.#shown) return;
    this.#io.stderr.write(`\r\x1b[K${text}\n`);
  }
}
