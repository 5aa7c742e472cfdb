/**
 * SWIM under simulation (docs/conventions.md, section 5): thousands of seeded scenarios,
 * each with message loss up to 10%, duplicates, reordering, and crashes, leaves or
 * partitions. The scenario (scenario.ts) states its bounds; the simulator
 * (simulation.ts) checks safety after every step. A failure prints its seed; replay it
 * with BROOK_SEED=<seed>.
 */
import { describe, expect, test } from "bun:test";
import { seeds, withSeed } from "../seeds.ts";
import { type FaultKind, type SwimSeedReport, runSwimScenario, runSwimSeed } from "./index.ts";

const SEEDS_PER_FAULT = 1_000;

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? 0;
}

function runFault(fault: FaultKind): SwimSeedReport[] {
  return seeds({ count: SEEDS_PER_FAULT }).map((seed) =>
    withSeed(seed, () => runSwimScenario(seed, { fault })),
  );
}

describe("swim: sim", () => {
  test("swim: sim: crashes: every crashed node is declared dead by every live member within deadBoundMs(n); none that answers is", () => {
    const reports = runFault("crash");
    const deadMs = reports.flatMap((report) => report.deadMs);
    expect(deadMs.length).toBeGreaterThanOrEqual(reports.length);
    console.log(
      `swim sim: crash: ${reports.length} seeds, dead after p50=${percentile(deadMs, 0.5)} p99=${percentile(deadMs, 0.99)} max=${Math.max(...deadMs)} ms`,
    );
  });

  test("swim: sim: leave: every member sees the leaver 'left' within LEFT_BOUND_MS", () => {
    const reports = runFault("leave");
    const leftMs = reports.flatMap((report) => (report.leftMs === null ? [] : [report.leftMs]));
    expect(leftMs).toHaveLength(reports.length);
    console.log(
      `swim sim: leave: ${reports.length} seeds, left after p50=${percentile(leftMs, 0.5)} max=${Math.max(...leftMs)} ms`,
    );
  });

  test("swim: sim: partition: after the heal, suspicion is refuted and membership converges within CONVERGE_BOUND_MS", () => {
    const reports = runFault("partition");
    const convergeMs = reports.flatMap((report) =>
      report.convergeMs === null ? [] : [report.convergeMs],
    );
    expect(convergeMs).toHaveLength(reports.length);
    console.log(
      `swim sim: partition: ${reports.length} seeds, converged after p50=${percentile(convergeMs, 0.5)} max=${Math.max(...convergeMs)} ms`,
    );
  });

  test("swim: sim: one seed decides the whole run", () => {
    for (const seed of seeds({ count: 20 })) {
      withSeed(seed, () => expect(runSwimScenario(seed)).toEqual(runSwimScenario(seed)));
      runSwimSeed(seed);
    }
  });
});
