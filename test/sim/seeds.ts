/**
 * Seeds for deterministic simulations (TigerBeetle's VOPR idea): one printed seed
 * decides a whole run, so a failure replays exactly.
 *
 * - `BROOK_SEED=<n>` runs only that seed (replay a failure).
 * - `BROOK_SIM_SEEDS=<n>` overrides how many seeds a suite runs (the default suite keeps
 *   its own small count; `npm run sim -- --seeds 100000` raises it).
 * - Seeds are consecutive from a start that changes per day unless `BROOK_SIM_START` is
 *   set, so the default suite explores new seeds over time while any one failure is
 *   reproducible from the seed it prints.
 */
export function seeds(options: { count: number }): number[] {
  const only = process.env.BROOK_SEED;
  if (only !== undefined && only !== "") return [Number.parseInt(only, 10) >>> 0];
  const countOverride = process.env.BROOK_SIM_SEEDS;
  const count = countOverride ? Number.parseInt(countOverride, 10) : options.count;
  const startText = process.env.BROOK_SIM_START;
  const start = startText ? Number.parseInt(startText, 10) : dayStart();
  return Array.from({ length: count }, (_, i) => (start + i) >>> 0);
}

function dayStart(): number {
  const day = Math.floor(Date.now() / 86_400_000);
  return Math.imul(day, 2654435761) >>> 0;
}

/** Runs `body` for one seed; on failure, rethrows with the seed and how to replay it. */
export function withSeed<T>(seed: number, body: () => T): T {
  try {
    return body();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const replay = new Error(`seed ${seed} failed (replay: BROOK_SEED=${seed}): ${message}`);
    if (error instanceof Error && error.stack) replay.stack = `${replay.message}\n${error.stack}`;
    throw replay;
  }
}
