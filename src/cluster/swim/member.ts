/**
 * A member as SWIM sees it: who it is (node id), how to reach it (gossip endpoint), what it
 * serves (Kafka and admin endpoints), and what the cluster believes about it (state at an
 * incarnation). Records are immutable: a change makes a new record, so an event handed to
 * a caller never changes under it.
 */
import { assert } from "../../util/assert.ts";

/** A host and a port. The same shape as the config's `HostPort`, so either passes. */
export interface Endpoint {
  readonly host: string; // Without brackets: "::1", not "[::1]".
  readonly port: number;
}

/**
 * alive: answers probes. suspect: a probe failed; it has until the suspicion timeout to
 * refute. dead: the suspicion timed out (it may come back with a higher incarnation).
 * left: it said goodbye (SIGTERM); like dead, but nobody has to wonder why.
 */
export type MemberState = "alive" | "suspect" | "dead" | "left";

export const MEMBER_STATES: readonly MemberState[] = ["alive", "suspect", "dead", "left"];

export interface Member {
  readonly nodeId: number;
  readonly gossip: Endpoint;
  readonly kafka: Endpoint;
  readonly admin: Endpoint;
  /**
   * Only the member itself raises its incarnation (to refute a suspicion); everybody else
   * orders claims about it by this number, so it only grows in every view.
   */
  readonly incarnation: number;
  readonly state: MemberState;
  /** Monotonic ms (the Swim's clock) of the last state change, as seen locally. */
  readonly stateChangeMs: number;
}

/** Node ids are Kafka broker ids: int32, not negative. */
export const NODE_ID_MAX = 2_147_483_647;
/** Incarnations travel as uint32. A claim at the maximum cannot be refuted, so it is refused. */
export const INCARNATION_MAX = 4_294_967_295;
/** DNS names are at most 253 bytes; IP literals are shorter. */
export const HOST_BYTES_MAX = 253;

export function isNodeId(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= NODE_ID_MAX;
}

export function isIncarnation(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= INCARNATION_MAX;
}

export function assertEndpoint(endpoint: Endpoint, what: string): void {
  assert(endpoint.host.length > 0, `${what} host is empty`);
  assert(
    Buffer.byteLength(endpoint.host) <= HOST_BYTES_MAX,
    `${what} host is too long: ${endpoint.host}`,
  );
  assert(Number.isInteger(endpoint.port), `${what} port is not an integer: ${endpoint.port}`);
  assert(
    endpoint.port >= 0 && endpoint.port <= 65_535,
    `${what} port is out of range: ${endpoint.port}`,
  );
}

/** "host:port", with brackets around an IPv6 host: a map key and a log value. */
export function endpointText(endpoint: Endpoint): string {
  return endpoint.host.includes(":")
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.host === b.host && a.port === b.port;
}

/** Dead and left members are no longer probed; only a higher incarnation brings them back. */
export function isDeadOrLeft(state: MemberState): boolean {
  return state === "dead" || state === "left";
}

export function copyEndpoint(endpoint: Endpoint): Endpoint {
  return { host: endpoint.host, port: endpoint.port };
}
