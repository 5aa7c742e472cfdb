/**
 * One seeded replication simulation run: a random fault mix, a chaos phase (process and
 * machine crashes, pauses, a node cut off, message loss and reordering, producers with
 * acks=1 and acks=all), then a heal after which every replica must converge on one log
 * holding every acknowledged entry. Safety is checked after every step by the
 * simulation; a violation throws. `runReplicationSeed` is what `npm run sim` loops over.
 *
 * Stated bound (virtual time, a step is 10 ms): after the heal, all replicas are in the
 * ISR with identical logs within CONVERGED_AFTER_HEAL_MS.
 */
import { type Random, SeededRandom } from "../../../src/util/random.ts";
import { InvariantError, type SimStats, Simulation, TICK_MS } from "./simulation.ts";

export const CHAOS_STEPS = 500;
export const CONVERGED_AFTER_HEAL_MS = 8_000;

export interface ReplicationSeedReport {
  seed: number;
  minInsync: number;
  entries: number;
  convergedAfterHealMs: number;
  stats: SimStats;
}

function pick<T>(random: Random, choices: readonly T[]): T {
  return choices[random.int(0, choices.length - 1)]!;
}

export interface ReplicationSeedOptions {
  /**
   * Machine crashes that lose whatever was not synced, besides process crashes: the
   * restarted node reports them at registration (src/cluster/eligible-leaders.ts).
   */
  readonly unsyncedLoss?: boolean;
  readonly trace?: (line: string) => void;
}

export function runReplicationSeed(
  seed: number,
  options: ReplicationSeedOptions = {},
): ReplicationSeedReport {
  const random = new SeededRandom(seed);
  const minInsync = pick(random, [1, 2, 2, 3]);
  const sim = new Simulation({
    random,
    minInsync,
    faults: {
      dropRate: pick(random, [0, 0.01, 0.05, 0.15]),
      delayMsMax: pick(random, [10, 30, 80]),
    },
  });
  // How eventful this run is: the chance per step that some fault starts.
  const faultRate = pick(random, [0.005, 0.02, 0.05]);
  const machineCrashShare = options.unsyncedLoss === true ? pick(random, [0.3, 0.7]) : 0;
  sim.trace = options.trace ?? null;
  const downUntil = new Map<number, number>();
  for (let step = 0; step < CHAOS_STEPS; step++) {
    if (random.next() < faultRate) {
      const node = sim.nodes[random.int(0, sim.nodes.length - 1)]!;
      const kind = random.next();
      const until = sim.nowMs + random.int(5, 120) * TICK_MS;
      if (kind < 0.45 && node.up) {
        sim.crash(node, random.next() < machineCrashShare);
        downUntil.set(node.id, until);
      } else if (kind < 0.75 && node.up && !node.paused) {
        sim.pause(node);
        downUntil.set(node.id, until);
      } else if (!sim.isolated.has(node.id)) {
        sim.isolated.add(node.id);
        sim.stats.isolations++;
        downUntil.set(node.id, until);
      }
    }
    for (const [id, until] of downUntil) {
      if (sim.nowMs < until) continue;
      const node = sim.node(id);
      if (!node.up) sim.restart(node);
      sim.resume(node);
      sim.isolated.delete(id);
      downUntil.delete(id);
    }
    sim.step();
  }
  sim.producing = false;
  sim.heal();
  const healedAt = sim.nowMs;
  while (!sim.converged()) {
    if (sim.nowMs - healedAt > CONVERGED_AFTER_HEAL_MS) {
      const p = sim.partition();
      const logs = sim.nodes
        .map((n) => `${n.id}: end ${n.logEndOffset} hw ${n.highWatermark} role ${n.role.kind}`)
        .join("; ");
      throw new InvariantError(
        `No convergence ${CONVERGED_AFTER_HEAL_MS} ms after the heal: leader ${p.leader} epoch ${p.leaderEpoch} isr [${p.isr}]; ${logs}`,
      );
    }
    sim.step();
  }
  sim.checkFinal();
  return {
    seed,
    minInsync,
    entries: sim.nodes[0]!.logEndOffset,
    convergedAfterHealMs: sim.nowMs - healedAt,
    stats: { ...sim.stats },
  };
}
