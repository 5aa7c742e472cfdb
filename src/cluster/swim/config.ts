/**
 * SWIM timing and fan-out, in ms and counts. Defaults follow hashicorp/memberlist's
 * DefaultLANConfig; tests and the simulation pass much shorter times.
 */
import { assert } from "../../util/assert.ts";

export interface SwimConfig {
  /** Probe one member every interval (scaled up by local health awareness). */
  readonly probeIntervalMs: number;
  /** Wait this long for a direct ack before asking others to probe (scaled likewise). */
  readonly probeTimeoutMs: number;
  /** Members asked to probe indirectly when a direct probe times out (SWIM's k). */
  readonly indirectChecks: number;
  /** Suspicion timeout min is `suspicionMult * max(1, log10(n)) * probeInterval`. */
  readonly suspicionMult: number;
  /** Suspicion timeout max is this times the min (Lifeguard). */
  readonly suspicionMaxTimeoutMult: number;
  /** Each gossip update is piggybacked `retransmitMult * ceil(log10(n + 1))` times. */
  readonly retransmitMult: number;
  /**
   * When there is news, send it to `gossipNodes` random members this often, besides
   * piggybacking it on probes (memberlist's gossip timer): a suspicion reaches its subject,
   * and the refutation comes back, well within the suspicion timeout even when probes
   * are slowed down by local health awareness.
   */
  readonly gossipIntervalMs: number;
  readonly gossipNodes: number;
  /** Keep gossiping to a member this long after we declared it dead, so it can refute. */
  readonly gossipToTheDeadMs: number;
  /** Full-state sync with one random live member over TCP (0 turns it off). */
  readonly pushPullIntervalMs: number;
  /**
   * Push-pull with one random dead (not left) member, so that the two sides of a healed
   * partition, which each declared the other dead and so never probe it, find each other
   * again (Serf's reconnect; memberlist alone does not). 0 turns it off.
   */
  readonly reconnectIntervalMs: number;
  /** Local health awareness: timeouts are scaled by at most this factor. */
  readonly awarenessMultiplierMax: number;
  /** First join retry after this long, doubling per failed round up to the max. */
  readonly joinBackoffMs: number;
  readonly joinBackoffMaxMs: number;
}

export const DEFAULT_SWIM_CONFIG: SwimConfig = {
  probeIntervalMs: 1_000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  retransmitMult: 4,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadMs: 30_000,
  pushPullIntervalMs: 30_000,
  reconnectIntervalMs: 30_000,
  awarenessMultiplierMax: 8,
  joinBackoffMs: 1_000,
  joinBackoffMaxMs: 30_000,
};

export function swimConfig(overrides: Partial<SwimConfig> = {}): SwimConfig {
  const config = { ...DEFAULT_SWIM_CONFIG, ...overrides };
  checkSwimConfig(config);
  return config;
}

function positiveInteger(value: number, name: string): void {
  assert(Number.isSafeInteger(value), `${name} is not an integer: ${value}`);
  assert(value > 0, `${name} is not positive: ${value}`);
}

export function checkSwimConfig(config: SwimConfig): void {
  positiveInteger(config.probeIntervalMs, "probeIntervalMs");
  positiveInteger(config.probeTimeoutMs, "probeTimeoutMs");
  // The indirect probe happens inside the same interval, after the direct timeout.
  assert(
    config.probeTimeoutMs < config.probeIntervalMs,
    "probeTimeoutMs is not below probeIntervalMs",
  );
  assert(Number.isSafeInteger(config.indirectChecks), "indirectChecks is not an integer");
  assert(config.indirectChecks >= 0, "indirectChecks is negative");
  positiveInteger(config.suspicionMult, "suspicionMult");
  positiveInteger(config.suspicionMaxTimeoutMult, "suspicionMaxTimeoutMult");
  positiveInteger(config.retransmitMult, "retransmitMult");
  assert(Number.isSafeInteger(config.pushPullIntervalMs), "pushPullIntervalMs is not an integer");
  assert(config.pushPullIntervalMs >= 0, "pushPullIntervalMs is negative");
  assert(Number.isSafeInteger(config.reconnectIntervalMs), "reconnectIntervalMs is not an integer");
  assert(config.reconnectIntervalMs >= 0, "reconnectIntervalMs is negative");
  positiveInteger(config.awarenessMultiplierMax, "awarenessMultiplierMax");
  positiveInteger(config.joinBackoffMs, "joinBackoffMs");
  positiveInteger(config.joinBackoffMaxMs, "joinBackoffMaxMs");
  assert(
    config.joinBackoffMs <= config.joinBackoffMaxMs,
    "joinBackoffMs is above joinBackoffMaxMs",
  );
  positiveInteger(config.gossipIntervalMs, "gossipIntervalMs");
  positiveInteger(config.gossipNodes, "gossipNodes");
  assert(Number.isSafeInteger(config.gossipToTheDeadMs), "gossipToTheDeadMs is not an integer");
  assert(config.gossipToTheDeadMs >= 0, "gossipToTheDeadMs is negative");
}
