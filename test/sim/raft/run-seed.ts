/**
 * One seeded Raft simulation run: a random cluster shape and fault mix, a chaos phase
 * (crashes and restarts, torn writes, partitions, loss, duplication, reordering, client
 * proposals, membership changes by the voter policy and by hand, compaction and snapshot
 * installs), then a heal and the liveness checks. Safety is checked after every step by
 * the simulation; a violation throws. `runRaftSeed` is what `npm run sim` loops over.
 *
 * Stated bounds (virtual time; a tick is 10 ms, elections time out after 10-20 ticks):
 * - LEADER_AFTER_HEAL_MS: after the network heals and every node is back, a leader that
 *   has committed an entry of its own term exists within 3 s (300 ticks).
 * - CONFIG_AFTER_HEAL_MS: the voter policy's changes are all committed within 4 s more.
 * - CONVERGED_AFTER_HEAL_MS: an entry proposed then is applied on every node within 2 s.
 */
import { describeMembership, votersOf } from "../../../src/cluster/raft/membership.ts";
import type { Raft } from "../../../src/cluster/raft/raft.ts";
import type { NodeId } from "../../../src/cluster/raft/types.ts";
import { nextMembershipChange } from "../../../src/cluster/raft/voter-policy.ts";
import { type Random, SeededRandom } from "../../../src/util/random.ts";
import { InvariantError } from "./invariants.ts";
import { type SimNode, Simulation, TICK_MS } from "./simulation.ts";

export const LEADER_AFTER_HEAL_MS = 3_000;
export const CONFIG_AFTER_HEAL_MS = 4_000;
export const CONVERGED_AFTER_HEAL_MS = 2_000;

export interface SeedReport {
  seed: number;
  storm: boolean;
  nodes: number;
  voterCount: number;
  grow: boolean;
  /** Virtual ms from the heal to a working leader. */
  leaderAfterHealMs: number;
  committed: number;
  stats: Simulation["stats"];
}

function pick<T>(random: Random, choices: readonly T[]): T {
  return choices[random.int(0, choices.length - 1)]!;
}

/** Runs one seed; throws (InvariantError or AssertionError) on any violation. */
export function runRaftSeed(seed: number): SeedReport {
  const random = new SeededRandom(seed);
  // One run in four is a storm: three voters, frequent crashes, restarts and isolation,
  // where lost votes and forgotten acknowledgements would show.
  const storm = random.next() < 0.25;
  const nodeCount = storm ? 3 : random.int(3, 7);
  const voterCount = nodeCount >= 5 && random.next() < 0.3 ? 5 : 3;
  const grow = !storm && random.next() < 0.6;
  const sim = new Simulation({
    random,
    nodeCount,
    electionTicks: 10,
    heartbeatTicks: random.int(1, 3),
    faults: {
      dropRate: pick(random, [0, 0.01, 0.05, 0.2]),
      duplicateRate: pick(random, [0, 0.02, 0.1]),
      delayMsMax: pick(random, [1, 5, 20, 60]),
    },
    compactEvery: pick(random, [0, 3, 10, 40]),
    tornWriteRate: pick(random, [0, 0.002, 0.02]),
  });

  // Bootstrap is durable before the cluster starts (a failed one is simply run again).
  const tornWriteRate = sim.tornWriteRate;
  sim.tornWriteRate = 0;
  if (grow) {
    sim.input(sim.node(1), (raft) => raft.bootstrap([1]));
  } else {
    const voters = Array.from({ length: Math.min(voterCount, nodeCount) }, (_, i) => i + 1);
    for (const id of voters) sim.input(sim.node(id), (raft) => raft.bootstrap(voters));
  }
  sim.tornWriteRate = tornWriteRate;

  const chaosMs = random.int(100, 300) * TICK_MS;
  const rates = {
    propose: pick(random, [0.1, 0.3, 0.8]),
    controller: 0.2,
    remove: storm ? 0 : pick(random, [0, 0.005]),
    crash: storm ? 0.03 : pick(random, [0, 0.003, 0.01]),
    restart: storm ? 0.1 : 0.02,
    partition: pick(random, [0, 0.003]),
    isolate: storm ? 0.02 : pick(random, [0, 0.005]),
    heal: storm ? 0.05 : 0.01,
    transfer: pick(random, [0, 0.005]),
  };
  let proposals = 0;
  for (let at = TICK_MS; at <= chaosMs; at += TICK_MS) {
    sim.runUntil(at);
    if (random.next() < rates.propose) propose(sim, random, proposals++);
    if (random.next() < rates.controller) runController(sim, voterCount);
    if (random.next() < rates.remove) removeSomeone(sim, random);
    if (random.next() < rates.transfer) transferSomewhere(sim, random);
    if (random.next() < rates.crash) sim.crash(pick(random, sim.nodes));
    if (random.next() < rates.restart) {
      const down = sim.nodes.filter((node) => !node.up);
      if (down.length > 0) sim.restart(pick(random, down));
    }
    if (random.next() < rates.partition) sim.partition();
    if (random.next() < rates.isolate) sim.isolate(pick(random, sim.nodes));
    if (random.next() < rates.heal) sim.heal();
  }

  // Heal: every node back, no loss or duplication (delays and so reordering remain).
  sim.heal();
  for (const node of sim.nodes) sim.restart(node);
  sim.faults = { ...sim.faults, dropRate: 0, duplicateRate: 0 };
  sim.tornWriteRate = 0;
  const healedAt = sim.nowMs;

  const working = () => {
    const leader = sim.leader();
    return leader !== null && leader.termAt(leader.status().commit) === leader.term;
  };
  if (!sim.runUntil(healedAt + LEADER_AFTER_HEAL_MS, working)) {
    throw new InvariantError(
      `Liveness: no working leader ${LEADER_AFTER_HEAL_MS} ms after the heal (${describe(sim)})`,
    );
  }
  const leaderAfterHealMs = sim.nowMs - healedAt;

  // The voter policy converges: every node a member, the wanted number of voters.
  const configDeadline = sim.nowMs + CONFIG_AFTER_HEAL_MS;
  const configured = () => {
    const leader = sim.leader();
    if (leader === null) return false;
    const status = leader.status();
    if (status.membershipIndex > status.commit) return false;
    const live = new Set(sim.nodes.map((node) => node.id));
    return nextMembershipChange(leader.membership, live, { voterCount, self: leader.id }) === null;
  };
  while (!configured()) {
    if (sim.nowMs >= configDeadline) {
      throw new InvariantError(
        `Liveness: configuration not settled ${CONFIG_AFTER_HEAL_MS} ms after the leader (${describe(
          sim,
        )})`,
      );
    }
    runController(sim, voterCount);
    sim.runUntil(sim.nowMs + TICK_MS);
  }
  const leader = sim.leader()!;
  const voters = votersOf(leader.membership);
  if (voters.length !== Math.min(voterCount, nodeCount)) {
    throw new InvariantError(
      `Voter policy: ${voters.length} voters, wanted ${voterCount} (${describeMembership(
        leader.membership,
      )})`,
    );
  }

  // A last entry reaches every node's state machine. A leader may still lose it (one
  // cut off just before the heal steps down), so it is proposed again until it commits.
  let marker = null as { index: number; term: number } | null;
  const convergeDeadline = sim.nowMs + CONVERGED_AFTER_HEAL_MS;
  const converged = () =>
    marker !== null &&
    sim.checker.committedTermAt(marker.index) === marker.term &&
    sim.nodes.every((node) => node.machine.index >= marker!.index);
  while (!converged()) {
    if (sim.nowMs >= convergeDeadline) {
      const behind = sim.nodes
        .filter((node) => node.machine.index < (marker?.index ?? 0))
        .map((node) => node.id);
      throw new InvariantError(
        `Liveness: entry ${marker?.index} not applied by nodes ${behind.join(",")} (${describe(
          sim,
        )})`,
      );
    }
    const current = sim.leader();
    const lost =
      marker === null ||
      (sim.checker.committedTermAt(marker.index) ?? marker.term) !== marker.term ||
      (current !== null &&
        current.term > marker.term &&
        current.termAt(marker.index) !== marker.term);
    if (current !== null && lost) {
      sim.input(sim.node(current.id), (raft) => {
        const result = raft.propose(new TextEncoder().encode("final"));
        if (result.ok) marker = { index: result.index, term: result.term };
      });
    }
    sim.runUntil(sim.nowMs + TICK_MS, converged);
  }
  return {
    seed,
    storm,
    nodes: nodeCount,
    voterCount,
    grow,
    leaderAfterHealMs,
    committed: sim.checker.committedCount(),
    stats: sim.stats,
  };
}

/** A client: sends a proposal to a node, which forwards it to the leader it knows. */
function propose(sim: Simulation, random: Random, n: number): void {
  const node = pick(random, sim.nodes);
  const raft = node.raft;
  if (raft === null) return;
  const target =
    raft.role === "leader" ? node : raft.leader === null ? null : sim.node(raft.leader);
  if (target === null) return;
  const data = new Uint8Array(random.int(0, 24));
  for (let i = 0; i < data.length; i++) data[i] = random.int(0, 255);
  data[0] = n & 0xff;
  sim.input(target, (leader) => {
    if (leader.role === "leader") leader.propose(data);
  });
}

/** The controller: the leader proposes what the voter policy asks for. */
function runController(sim: Simulation, voterCount: number): void {
  const leader = sim.leader();
  if (leader === null) return;
  const live = new Set<NodeId>(sim.upNodes().map((node) => node.id));
  const change = nextMembershipChange(leader.membership, live, { voterCount, self: leader.id });
  if (change === null) return;
  sim.input(sim.node(leader.id), (raft) => raft.proposeMembershipChange(change));
}

/** An operator removes some member other than the leader (the policy adds it back later). */
function removeSomeone(sim: Simulation, random: Random): void {
  const leader = sim.leader();
  if (leader === null) return;
  const others = leader.membership.members.filter((member) => member.id !== leader.id);
  if (others.length === 0) return;
  const victim = pick(random, others).id;
  sim.input(sim.node(leader.id), (raft) => raft.removeNode(victim));
}

function transferSomewhere(sim: Simulation, random: Random): void {
  const leader = sim.leader();
  if (leader === null) return;
  const voters = votersOf(leader.membership).filter((id) => id !== leader.id);
  if (voters.length === 0) return;
  const to = pick(random, voters);
  sim.input(sim.node(leader.id), (raft) => raft.transferLeadership(to));
}

function describe(sim: Simulation): string {
  return sim.nodes
    .map((node: SimNode) => {
      const raft: Raft | null = node.raft;
      if (raft === null) return `${node.id}:down`;
      const s = raft.status();
      return `${node.id}:${s.role}/t${s.term}/c${s.commit}/l${s.lastIndex}/[${describeMembership(
        s.membership,
      )}]@${s.membershipIndex}`;
    })
    .join(" ");
}
