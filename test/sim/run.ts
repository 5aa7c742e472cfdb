/**
 * The long simulation run: `npm run sim -- --seeds 100000 [--only swim|raft] [--start N]`.
 * Runs that many consecutive seeds of each simulation (SWIM: test/sim/swim, Raft:
 * test/sim/raft), prints progress and the first failing seed with how to replay it
 * (`BROOK_SEED=<n> bun test test/sim/<name>`), and exits 1 on any failure. The default
 * test suite runs a few thousand seeds of each; this is for the hundreds of thousands.
 */
import { runRaftSeed } from "./raft/run-seed.ts";
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
      process.stderr.write(`sim: unknown argument ${flag}\nusage: npm run sim -- [--seeds N] [--start N] [--only swim|raft]\n`);
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

const SIMULATIONS: Array<[name: string, run: (seed: number) => unknown]> = [
  ["swim", runSwimSeed],
  ["raft", runRaftSeed],
];

const args = parseArgs(process.argv.slice(2));
let failed = false;
for (const [name, run] of SIMULATIONS) {
  if (args.only !== null && args.only !== name) continue;
  const startedMs = performance.now();
  let ran = 0;
  for (let seed = args.start; seed < args.start + args.seeds; seed++) {
    try {
      run(seed >>> 0);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`${name}: seed ${seed} FAILED (replay: BROOK_SEED=${seed} bun test test/sim/${name}): ${message}\n`);
      failed = true;
      break;
    }
    ran++;
    if (ran % 10_000 === 0) process.stdout.write(`${name}: ${ran} seeds, ${((performance.now() - startedMs) / 1000).toFixed(0)} s\n`);
  }
  const seconds = (performance.now() - startedMs) / 1000;
  process.stdout.write(`${name}: ${ran} of ${args.seeds} seeds passed in ${seconds.toFixed(1)} s (seeds ${args.start}..${args.start + ran - 1})\n`);
}
process.exit(failed ? 1 : 0);
