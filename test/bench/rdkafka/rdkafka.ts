/**
 * @module
 * The harness's librdkafka client (`rdlat.c`): built once per run with the system C
 * compiler against Debian's librdkafka-dev (`apt-get install librdkafka-dev gcc`), then
 * run once per measured run. Nothing is installed by the harness: where the compiler or
 * the library is missing, the rows say so.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../../helpers/broker.ts";
import { installed, runJsonProcess, runTool } from "../processes.ts";

const SOURCE = join(REPO, "test/bench/rdkafka/rdlat.c");
const HEADER = "/usr/include/librdkafka/rdkafka.h";

/** What one rdlat run prints (times in ms). */
export interface RdLatencyResult {
  messages: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  ackP50Ms: number;
  ackP99Ms: number;
  ackP999Ms: number;
  ackMaxMs: number;
  stallsOver50Ms: number;
  clientCpuSeconds: number;
  /** CPU seconds the broker (`serverPid`) used over the measured window; -1 without one. */
  serverCpuSeconds: number;
}

export interface RdLatencySpec {
  port: number;
  topic: string;
  partitions: number;
  rateBytesPerSec: number;
  messageBytes: number;
  seconds: number;
  acks: "all" | "1";
  /** The broker's process, whose CPU over the measured window is reported. */
  serverPid?: number;
}

/** null when rdlat can be built here, else why not. */
export function missingRdkafka(): string | null {
  const missing: string[] = [];
  if (!installed("cc")) missing.push("a C compiler (gcc)");
  if (!existsSync(HEADER)) missing.push("librdkafka-dev");
  return missing.length === 0 ? null : `not installed: ${missing.join(", ")} (see bench/README.md)`;
}

/** Compiles rdlat into `outfile`; seconds taken. */
export async function buildRdlat(outfile: string): Promise<number> {
  const built = await runTool("cc", ["-O2", "-o", outfile, SOURCE, "-lrdkafka"], 120_000);
  if (built.code !== 0)
    throw new Error(`cc rdlat.c failed (${built.code}): ${built.stderr.trim()}`);
  return built.seconds;
}

/** rdlat's connection flags: where, which topic, how many partitions. */
function target(spec: { port: number; topic: string; partitions: number }): string[] {
  return ["-b", `127.0.0.1:${spec.port}`, "-t", spec.topic, "-p", String(spec.partitions)];
}

/** One latency run of the librdkafka client (producer and consumer in one process). */
export function rdLatency(binary: string, spec: RdLatencySpec): Promise<RdLatencyResult> {
  const args = [
    ...target(spec),
    ...["-r", String(spec.rateBytesPerSec), "-s", String(spec.messageBytes)],
    ...["-d", String(spec.seconds), "-a", spec.acks],
  ];
  if (spec.serverPid !== undefined) args.push("-P", String(spec.serverPid));
  return runJsonProcess<RdLatencyResult>(binary, args, (spec.seconds + 60) * 1000);
}

/** What one rdlat drain prints. */
export interface RdDrainResult {
  messages: number;
  payloadBytes: number;
  seconds: number;
  payloadMBPerSec: number;
  clientCpuSeconds: number;
  /** CPU seconds of the broker (`serverPid`) over the drain; -1 without one. */
  serverCpuSeconds: number;
}

/** One drain of `messages` messages from the beginning of `partitions` partitions. */
export function rdDrain(
  binary: string,
  spec: { port: number; topic: string; partitions: number; messages: number; serverPid: number },
): Promise<RdDrainResult> {
  const args = [
    "-m",
    "drain",
    ...target(spec),
    "-n",
    String(spec.messages),
    "-P",
    String(spec.serverPid),
  ];
  return runJsonProcess<RdDrainResult>(binary, args, 660_000);
}
