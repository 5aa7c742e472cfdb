/**
 * The long simulation run:
 * `npm run sim -- --seeds 100000 [--only NAME] [--start N]`, NAME one of swim, raft,
 * replication, replication-unsynced-loss. Runs that many consecutive seeds of each
 * simulation (test/sim/swim, test/sim/raft, test/sim/replication), prints progress, the
 * first failing seeds with how to replay them, one closing line per simulation
 * (`replication: N of N seeds passed`), and exits 1 on any failure. `BROOK_SIM_TRACE=1`
 * prints a replication run's events. The default test suite runs a few thousand seeds
 * of each; this is for the hundreds of thousands.
 */
import { runRaftSeed } from "./raft/run-seed.ts";
import { runReplicationSeed } from "./replication/run-seed.ts";
import { runSwimSeed } from "./swim/index.ts";

interface Args {
  seeds: number;
  start: number;
  only: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seeds: 10_000, start: 1, only: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--seeds" && value !== undefined) args.seeds = Number.parseInt(value, 10);
    else if (flag === "--start" && value !== undefined) args.start = Number.parseInt(value, 10);
    else if (flag === "--only" && value !== undefined) args.only = value;
    else {
      process.stderr.write(
        `sim: unknown argument ${flag}\nusage: npm run sim -- [--seeds N] [--start N] [--only swim|raft|replication|replication-unsynced-loss]\n`,
      );
      process.exit(2);
    }
    i++;
  }
  if (!Number.isSafeInteger(args.seeds) || args.seeds < 1 || !Number.isSafeInteger(args.start)) {
    process.stderr.write("sim: --seeds and --start take integers (seeds >= 1)\n");
    process.exit(2);
  }
  return args;
}

const trace = process.env.BROOK_SIM_TRACE === "1" ? (line: string) => console.log(line) : undefined;

const SIMULATIONS: Array<[name: string, run: (seed: number) => unknown]> = [
  ["swim", runSwimSeed],
  ["raft", runRaftSeed],
  ["replication", (seed) => runReplicationSeed(seed, { trace })],
  // Machine crashes that lose unsynced data besides (test/sim/README.md).
  ["replication-unsynced-loss", (seed) => runReplicationSeed(seed, { unsyncedLoss: true, trace })],
];

const args = parseArgs(process.argv.slice(2));
/** Failing seeds printed per simulation; the count covers them all. */
const FAILURES_SHOWN = 3;
let failed = false;
for (const [name, run] of SIMULATIONS) {
  if (args.only !== null && args.only !== name) continue;
  const startedMs = performance.now();
  let passed = 0;
  let failures = 0;
  for (let seed = args.start; seed < args.start + args.seeds; seed++) {
    try {
      run(seed >>> 0);
      passed++;
    } catch (error) {
      failures++;
      if (failures <= FAILURES_SHOWN) {
        const message = error instanceof Error ? error.message : String(error);
        const replay = `npm run sim -- --only ${name} --start ${seed} --seeds 1`;
        process.stderr.write(`${name}: seed ${seed} FAILED (replay: ${replay}): ${message}\n`);
      }
    }
    const ran = seed - args.start + 1;
    if (ran % 10_000 === 0)
      process.stdout.write(
        `${name}: ${ran} seeds, ${((performance.now() - startedMs) / 1000).toFixed(0)} s\n`,
      );
  }
  if (failures > 0) failed = true;
  const seconds = (performance.now() - startedMs) / 1000;
  const last = args.start + args.seeds - 1;
  process.stdout.write(
    `${name}: ${passed} of ${args.seeds} seeds passed in ${seconds.toFixed(1)} s (seeds ${args.start}..${last})\n`,
  );
}
process.exit(failed ? 1 : 0);
