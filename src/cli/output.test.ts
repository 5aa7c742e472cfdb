import { describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { ManualClock } from "../util/clock.ts";
import { type CliIo, formatJson, Progress } from "./output.ts";

function io(tty: boolean): CliIo & { written: () => string } {
  let text = "";
  const stderr = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stdin: process.stdin, stdout: stderr, stderr, stderrIsTty: tty, written: () => text };
}

describe("cli: output", () => {
  test("cli: progress: a terminal gets at most one line a second, then a final line", () => {
    const clock = new ManualClock();
    const terminal = io(true);
    const progress = new Progress(terminal, clock);
    progress.update(() => "1 done");
    progress.update(() => "2 done"); // Same instant: skipped.
    clock.advance(1000);
    progress.update(() => "3 done");
    progress.done("All done");
    expect(terminal.written()).toBe("\r\x1b[K1 done\r\x1b[K3 done\r\x1b[KAll done\n");
  });

  test("cli: progress: stderr that is not a terminal gets nothing", () => {
    const clock = new ManualClock();
    const pipe = io(false);
    const progress = new Progress(pipe, clock);
    progress.update(() => "1 done");
    progress.done("All done");
    expect(pipe.written()).toBe("");
  });

  test("cli: --json output is indented and ends with a newline", () => {
    expect(formatJson({ a: [1] })).toBe('{\n  "a": [\n    1\n  ]\n}\n');
  });
});
