/**
 * The SWIM simulation, for the seed runner (`npm run sim -- --seeds N`, test/sim/run.ts)
 * and the default suite (swim-sim.test.ts). `runSwimSeed(seed)` runs one randomized
 * scenario in a few milliseconds and throws on any invariant violation; wrap it in
 * `withSeed` (test/sim/seeds.ts) so that a failure names its seed and how to replay it.
 */
export {
  runSwimScenario,
  runSwimSeed,
  deadBoundMs,
  type FaultKind,
  type SwimSeedReport,
} from "./scenario.ts";
export {
  InvariantError,
  SwimSimulation,
  type NetworkFaults,
  type SimulationOptions,
} from "./simulation.ts";
