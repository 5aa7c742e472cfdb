/**
 * @module
 * What machine the figures come from: every result file carries this, since figures
 * only compare within one machine (and, through the limit rows, within one run).
 */
import { spawnSync } from "node:child_process";
import { readFileSync, statfsSync } from "node:fs";
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

const GIB = 1024 ** 3;

/** What a group leaves free on the filesystem beyond what it writes itself. */
export const DISK_HEADROOM_BYTES = 10 * GIB;

/** Bytes an unprivileged process may still write on the filesystem holding `path`. */
export function freeDiskBytes(path: string): number {
  const stats = statfsSync(path);
  return Number(stats.bavail) * Number(stats.bsize);
}

/**
 * null when `bytes` plus DISK_HEADROOM_BYTES fit on the filesystem holding `path`; else
 * the note for the rows that are not measured ("not measured: only N GiB free …").
 */
export function diskShortfall(path: string, bytes: number): string | null {
  const free = freeDiskBytes(path);
  if (free >= bytes + DISK_HEADROOM_BYTES) return null;
  const gib = (value: number) =>
    value < GIB
      ? `${Math.round(value / 1024 ** 2)} MiB`
      : `${(value / GIB).toFixed(value < 10 * GIB ? 1 : 0)} GiB`;
  return `not measured: only ${gib(free)} free in ${path} (needs ${gib(bytes)} + ${gib(DISK_HEADROOM_BYTES)} headroom)`;
}
