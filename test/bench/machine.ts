/**
 * @module
 * What machine the figures come from: every result file carries this, since figures
 * only compare within one machine (and, through the limit rows, within one run).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg, release, totalmem, type } from "node:os";

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  os: string;
  bunVersion: string;
  kcatVersion: string | null;
  /** 1, 5 and 15 minute load averages when the run began: a busy machine shows here. */
  loadAverageAtStart: number[];
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return match?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function kcatVersion(): string | null {
  const result = spawnSync("kcat", ["-V"], { encoding: "utf8" });
  if (result.status !== 0) return null;
  const match = /Version (\S+).*?(librdkafka \S+)/s.exec(result.stdout + result.stderr);
  return match === null ? "unknown" : `${match[1]} (${match[2]})`;
}

export function describeMachine(): Machine {
  return {
    cpuModel: cpuModel(),
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    kernel: release(),
    os: type(),
    bunVersion: typeof Bun !== "undefined" ? Bun.version : process.version,
    kcatVersion: kcatVersion(),
    loadAverageAtStart: loadavg().map((value) => Math.round(value * 100) / 100),
  };
}
