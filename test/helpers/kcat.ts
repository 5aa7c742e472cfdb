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
