/**
 * Runs kcat as a real process with a deadline, for tests.
 */
import { spawn } from "node:child_process";

export interface KcatResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function kcat(args: string[], input = "", timeoutMs = 30000): Promise<KcatResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("kcat", args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Produces `count` keyed lines to `topic` and reads them back; returns the lines read. */
export async function kcatRoundTrip(
  bootstrap: string,
  topic: string,
  count: number,
): Promise<string[]> {
  const lines = Array.from({ length: count }, (_, i) => `k${i}:v${i}`).join("\n") + "\n";
  const produced = await kcat(["-b", bootstrap, "-t", topic, "-P", "-K:", "-z", "lz4"], lines);
  if (produced.code !== 0) throw new Error(`kcat produce failed: ${produced.stderr}`);
  const consumed = await kcat([
    "-b",
    bootstrap,
    "-t",
    topic,
    "-C",
    "-e",
    "-o",
    "beginning",
    "-f",
    "%o %k %s\\n",
  ]);
  if (consumed.code !== 0) throw new Error(`kcat consume failed: ${consumed.stderr}`);
  return consumed.stdout.trim().split("\n");
}

/** offset → value of a whole partition, read with kcat from the beginning to its end. */
export async function readPartition(
  bootstrap: string,
  topic: string,
  partition: number,
  timeoutMs = 30_000,
): Promise<Map<number, string>> {
  const consumed = await kcat(
    ["-C", "-b", bootstrap, "-t", topic, "-p", String(partition)].concat([
      "-o",
      "beginning",
      "-e",
      "-q",
      "-f",
      "%o %s\\n",
    ]),
    "",
    timeoutMs,
  );
  if (consumed.code !== 0) throw new Error(`kcat consume failed: ${consumed.stderr}`);
  const byOffset = new Map<number, string>();
  for (const line of consumed.stdout.split("\n")) {
    if (line === "") continue;
    const space = line.indexOf(" ");
    byOffset.set(Number(line.slice(0, space)), line.slice(space + 1));
  }
  return byOffset;
}
