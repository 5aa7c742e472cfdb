/**
 * One randomized SWIM scenario per seed: 3 to 6 nodes join through one seed each over a
 * network losing up to 10% of datagrams (plus duplicates and reordering), then one fault
 * kind: crashes (and perhaps a restart), a graceful leave, or a partition that heals.
 *
 * The bounds the scenario states, with T the probe interval, M the awareness multiplier
 * max, S the suspicion max timeout (suspicionMaxTimeoutMult * suspicionMult * T for up to
 * 10 nodes) and n the cluster size:
 * - join: every node sees every node alive within JOIN_BOUND_MS of the last start;
 * - crash: every live member declares a crashed node dead within
 *   `deadBoundMs(n) = (2(n-1) + 2) * M * T + S` of the crash: its own round-robin probes
 *   reach the crashed node within 2(n-1) probe slots of at most M*T each, one more slot to
 *   fail it, then at most S of suspicion;
 * - restart: a restarted node is seen alive by all, and sees all, within REJOIN_BOUND_MS;
 * - leave: every live member sees the leaver as 'left' within LEFT_BOUND_MS (a member that
 *   missed every copy of the news may first call it dead, until a push-pull corrects it);
 * - partition: after the heal, every node sees every node alive within CONVERGE_BOUND_MS,
 *   and a cut-off node that was suspected or declared dead at its own incarnation has
 *   refuted it with a higher one.
 * Safety, checked after every step (see simulation.ts): incarnations only grow; without
 * partitions, no node that keeps answering is ever seen dead.
 */
import { swimConfig, type SwimConfig } from "../../../src/cluster/swim/config.ts";
import type { MemberState } from "../../../src/cluster/swim/member.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { type NetworkFaults, type SimNode, SwimSimulation } from "./simulation.ts";

/** The LAN defaults, with the periodic syncs and join retries made more frequent. */
export const SIM_CONFIG: SwimConfig = swimConfig({
  pushPullIntervalMs: 5_000,
  reconnectIntervalMs: 5_000,
  joinBackoffMs: 500,
  joinBackoffMaxMs: 4_000,
});

export const TICK_MS = 100;
export const LOSS_RATIO_MAX = 0.1;
export const CLUSTER_ID = "sim-cluster";
const STARTS_WITHIN_MS = 3_000;
export const JOIN_BOUND_MS = 30_000;
export const REJOIN_BOUND_MS = 30_000;
export const LEFT_BOUND_MS = 60_000;
export const CONVERGE_BOUND_MS = 30_000;
const LEAVE_WAIT_MS = 2_000;

export function deadBoundMs(nodes: number, config: SwimConfig = SIM_CONFIG): number {
  const slotMs = config.awarenessMultiplierMax * config.probeIntervalMs;
  const suspicionMaxMs =
    config.suspicionMaxTimeoutMult *
    config.suspicionMult *
    Math.max(1, Math.log10(nodes)) *
    config.probeIntervalMs;
  return (2 * (nodes - 1) + 2) * slotMs + suspicionMaxMs;
}

export type FaultKind = "crash" | "leave" | "partition";
const FAULT_KINDS: readonly FaultKind[] = ["crash", "leave", "partition"];

export interface SwimSeedReport {
  readonly seed: number;
  readonly nodes: number;
  readonly fault: FaultKind;
  readonly faults: NetworkFaults;
  /** Virtual ms from the last start until everybody saw everybody alive. */
  readonly joinMs: number;
  /** Virtual ms from a crash until every live member declared it dead (each crash). */
  readonly deadMs: number[];
  readonly leftMs: number | null;
  readonly convergeMs: number | null;
  readonly virtualMs: number;
  readonly steps: number;
}

/** Runs the scenario of one seed; throws (an InvariantError) when an invariant breaks. */
export function runSwimSeed(seed: number): void {
  runSwimScenario(seed);
}

export function runSwimScenario(seed: number, only?: { fault?: FaultKind }): SwimSeedReport {
  const choose = new SeededRandom(seed ^ 0x2545f491);
  const nodes = choose.int(3, 6);
  const faults: NetworkFaults = {
    lossRatio: choose.next() < 0.25 ? 0 : choose.next() * LOSS_RATIO_MAX,
    duplicateRatio: choose.next() * 0.05,
    delayMsMin: 1,
    delayMsMax: choose.int(1, 100),
  };
  const fault = only?.fault ?? (FAULT_KINDS[choose.int(0, FAULT_KINDS.length - 1)] as FaultKind);
  const sim: SwimSimulation = new SwimSimulation({
    seed,
    nodes,
    config: SIM_CONFIG,
    faults,
    tickMs: TICK_MS,
    clusterId: CLUSTER_ID,
  });
  sim.noFalseDead = fault !== "partition";
  sim.note(
    `scenario nodes=${nodes} fault=${fault} loss=${faults.lossRatio.toFixed(3)} dup=${faults.duplicateRatio.toFixed(3)} delayMax=${faults.delayMsMax}`,
  );

  // Join: node 0 founds the cluster; every other node joins through one node started
  // before it in index order (which may not be up or joined yet: then it retries).
  sim.start(0, [], CLUSTER_ID);
  let lastStartMs = 0;
  for (let index = 1; index < nodes; index++) {
    const startMs = choose.int(0, STARTS_WITHIN_MS);
    const seedIndex = choose.int(0, index - 1);
    lastStartMs = Math.max(lastStartMs, startMs);
    sim.at(startMs, () => sim.start(index, [seedIndex]));
  }
  sim.runUntilTime(lastStartMs);
  const everyone = sim.nodes.slice();
  const joinedAt = sim.runUntil(() => allSeeAlive(sim, everyone), lastStartMs + JOIN_BOUND_MS);
  if (joinedAt === null)
    sim.fail(`Join through one seed did not reach all members within ${JOIN_BOUND_MS}ms`);
  const joinMs = joinedAt - lastStartMs;

  let deadMs: number[] = [];
  let leftMs: number | null = null;
  let convergeMs: number | null = null;
  switch (fault) {
    case "crash":
      ({ deadMs, convergeMs } = crashScenario(sim, choose, nodes));
      break;
    case "leave":
      leftMs = leaveScenario(sim, choose);
      break;
    case "partition":
      convergeMs = partitionScenario(sim, choose, nodes);
      break;
  }
  return {
    seed,
    nodes,
    fault,
    faults,
    joinMs,
    deadMs,
    leftMs,
    convergeMs,
    virtualMs: sim.nowMs,
    steps: sim.stats.steps,
  };
}

function crashScenario(
  sim: SwimSimulation,
  choose: SeededRandom,
  nodes: number,
): { deadMs: number[]; convergeMs: number | null } {
  const count = choose.int(1, nodes - 2);
  const victims = pickDistinct(choose, nodes, count);
  const crashAt = new Map<number, number>();
  const startMs = sim.nowMs;
  for (const index of victims) {
    const atMs = startMs + choose.int(0, 5_000);
    crashAt.set(index, atMs);
    sim.at(atMs, () => sim.crash(index));
  }
  const boundMs = deadBoundMs(nodes);
  const lastCrashMs = Math.max(...crashAt.values());
  sim.runUntilTime(lastCrashMs);
  // Per crashed node: when every live member last came to see it dead.
  const allDeadSince = new Map<number, number | null>();
  const everyoneSeesDead = (): boolean => {
    let all = true;
    for (const index of victims) {
      const victim = sim.node(index);
      const dead = sim.up().every((observer) => observer.state(victim.nodeId) === "dead");
      if (!dead) {
        allDeadSince.set(index, null);
        all = false;
      } else if ((allDeadSince.get(index) ?? null) === null) {
        allDeadSince.set(index, sim.nowMs);
      }
    }
    return all;
  };
  const doneAt = sim.runUntil(everyoneSeesDead, lastCrashMs + boundMs);
  const deadMs: number[] = [];
  for (const index of victims) {
    const since = allDeadSince.get(index) ?? null;
    const crashedMs = crashAt.get(index) as number;
    if (doneAt === null || since === null || since - crashedMs > boundMs) {
      sim.fail(
        `Crashed n${index} (at ${crashedMs}ms) not declared dead by every live member within ${boundMs}ms`,
      );
    }
    deadMs.push(since - crashedMs);
  }

  // Half the time, one crashed node comes back (a new process: incarnation 0, its cluster
  // id from "disk") through one live node, and must be taken back.
  if (choose.next() < 0.5) return { deadMs, convergeMs: null };
  const back = victims[choose.int(0, victims.length - 1)] as number;
  const live = sim.up();
  const via = (live[choose.int(0, live.length - 1)] as SimNode).index;
  const restartMs = sim.nowMs + choose.int(0, 2_000);
  sim.at(restartMs, () => sim.start(back, [via]));
  sim.runUntilTime(restartMs);
  const expected = sim.up();
  const convergedAt = sim.runUntil(() => allSeeAlive(sim, expected), restartMs + REJOIN_BOUND_MS);
  if (convergedAt === null)
    sim.fail(`Restarted n${back} not taken back within ${REJOIN_BOUND_MS}ms`);
  return { deadMs, convergeMs: convergedAt - restartMs };
}

function leaveScenario(sim: SwimSimulation, choose: SeededRandom): number {
  const leaver = sim.node(choose.int(0, sim.nodes.length - 1));
  const leaveMs = sim.nowMs + choose.int(0, 3_000);
  sim.at(leaveMs, () => sim.leave(leaver.index, LEAVE_WAIT_MS));
  sim.runUntilTime(leaveMs);
  const stays = sim.nodes.filter((node) => node !== leaver);
  const leftAt = sim.runUntil(
    () => stays.every((observer) => observer.state(leaver.nodeId) === "left") && !leaver.up,
    leaveMs + LEFT_BOUND_MS,
  );
  if (leftAt === null)
    sim.fail(
      `n${leaver.index} left, but not every member sees it 'left' within ${LEFT_BOUND_MS}ms`,
    );
  // The others still see each other alive (or soon do, if a refutation was under way).
  if (sim.runUntil(() => allSeeAlive(sim, stays), sim.nowMs + CONVERGE_BOUND_MS) === null) {
    sim.fail(
      `The others did not all see each other alive within ${CONVERGE_BOUND_MS}ms of the leave`,
    );
  }
  return leftAt - leaveMs;
}

function partitionScenario(sim: SwimSimulation, choose: SeededRandom, nodes: number): number {
  const size = choose.int(1, Math.max(1, Math.floor((nodes - 1) / 2)));
  const cut = pickDistinct(choose, nodes, size);
  // Short cuts only raise suspicion; long ones get the cut side declared dead.
  const durationMs = choose.next() < 0.5 ? choose.int(500, 4_000) : choose.int(5_000, 40_000);
  const isolateMs = sim.nowMs + choose.int(0, 2_000);
  const healMs = isolateMs + durationMs;
  sim.at(isolateMs, () => sim.isolate(cut));
  sim.at(healMs, () => sim.heal());
  sim.runUntilTime(healMs);
  // What the cut-off nodes must refute: the highest suspicion or death at or above their own incarnation.
  const toRefute = new Map<number, number>();
  for (const index of cut) {
    const node = sim.node(index);
    const own = node.swim?.self.incarnation ?? 0;
    for (const observer of sim.up()) {
      const view = observer.view(node.nodeId);
      if (view === undefined || !isAccused(view.state) || view.incarnation < own) continue;
      toRefute.set(index, Math.max(toRefute.get(index) ?? 0, view.incarnation));
    }
  }
  const everyone = sim.nodes.slice();
  const convergedAt = sim.runUntil(() => allSeeAlive(sim, everyone), healMs + CONVERGE_BOUND_MS);
  if (convergedAt === null)
    sim.fail(`Membership did not converge within ${CONVERGE_BOUND_MS}ms of the heal`);
  for (const [index, accused] of toRefute) {
    const own = sim.node(index).swim?.self.incarnation ?? 0;
    if (own <= accused)
      sim.fail(`n${index} was accused at incarnation ${accused} but did not refute (now ${own})`);
  }
  return convergedAt - healMs;
}

function isAccused(state: MemberState): boolean {
  return state === "suspect" || state === "dead";
}

/** Every up node among `expected` sees every other one alive. */
function allSeeAlive(sim: SwimSimulation, expected: readonly SimNode[]): boolean {
  for (const observer of expected) {
    if (!observer.up) return false;
    for (const other of expected) {
      if (other !== observer && observer.state(other.nodeId) !== "alive") return false;
    }
  }
  return sim.up().length >= expected.length;
}

function pickDistinct(random: SeededRandom, size: number, count: number): number[] {
  const pool = Array.from({ length: size }, (_, i) => i);
  const chosen: number[] = [];
  while (chosen.length < count && pool.length > 0) {
    const at = random.int(0, pool.length - 1);
    chosen.push(pool[at] as number);
    pool.splice(at, 1);
  }
  return chosen;
}
