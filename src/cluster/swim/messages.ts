/**
 * What SWIM nodes say to each other. A UDP packet carries one or more messages: usually a
 * probe message (ping, ping-req, ack, nack) first, then piggybacked gossip (alive, suspect,
 * dead, left) filling the rest of the packet. Push-pull frames travel over TCP and carry
 * the whole member list.
 *
 * Every message about a member names it by node id and carries the incarnation the claim
 * is about; the gossip endpoint in an alive message is how to reach it.
 */
import type { Endpoint, MemberState } from "./member.ts";

/** Probe `target` directly; `target` guards against a different node now on that address. */
export interface PingMessage {
  readonly type: "ping";
  readonly seq: number;
  readonly target: number;
}

/** Ask the receiver to probe `target` for us and forward its ack (or a nack on timeout). */
export interface PingReqMessage {
  readonly type: "pingReq";
  readonly seq: number;
  readonly target: number;
  readonly targetGossip: Endpoint;
}

export interface AckMessage {
  readonly type: "ack";
  readonly seq: number;
}

/**
 * Sent by an intermediary whose indirect probe got no ack in time: it tells the prober
 * that the intermediary itself is fine, so a missing nack hints the prober is the slow one
 * (Lifeguard's local health).
 */
export interface NackMessage {
  readonly type: "nack";
  readonly seq: number;
}

export interface AliveMessage {
  readonly type: "alive";
  readonly nodeId: number;
  readonly incarnation: number;
  readonly gossip: Endpoint;
  readonly kafka: Endpoint;
  readonly admin: Endpoint;
}

/** `from` suspects `nodeId`; distinct `from`s are the confirmations that shorten suspicion. */
export interface SuspectMessage {
  readonly type: "suspect";
  readonly nodeId: number;
  readonly incarnation: number;
  readonly from: number;
}

export interface DeadMessage {
  readonly type: "dead";
  readonly nodeId: number;
  readonly incarnation: number;
  readonly from: number;
}

/** The member itself announces it is going away (graceful shutdown). */
export interface LeftMessage {
  readonly type: "left";
  readonly nodeId: number;
  readonly incarnation: number;
}

export type ProbeMessage = PingMessage | PingReqMessage | AckMessage | NackMessage;
export type GossipMessage = AliveMessage | SuspectMessage | DeadMessage | LeftMessage;
export type SwimMessage = ProbeMessage | GossipMessage;

/** One UDP datagram: who sent it, in which cluster, and its messages in order. */
export interface Packet {
  readonly clusterId: string;
  readonly sender: number;
  readonly messages: readonly SwimMessage[];
}

/** A member as written in a push-pull frame: everything but the local state-change time. */
export interface MemberRecord {
  readonly nodeId: number;
  readonly incarnation: number;
  readonly state: MemberState;
  readonly gossip: Endpoint;
  readonly kafka: Endpoint;
  readonly admin: Endpoint;
}

/**
 * Push-pull over TCP: the initiator sends a request with its full state, the other side
 * answers with its own (or refuses). `join` marks a request from a node joining through a
 * seed: only such a request may come with an empty cluster id (the joiner learns the id
 * from the answer).
 */
export type PushPullBody =
  | { readonly type: "request"; readonly join: boolean; readonly members: readonly MemberRecord[] }
  | { readonly type: "response"; readonly members: readonly MemberRecord[] }
  | { readonly type: "refused"; readonly reason: PushPullRefusal };

/**
 * clusterMismatch: the request named another cluster (the frame's cluster id is ours).
 * noClusterId: we have not joined any cluster yet, so we cannot be a seed.
 */
export type PushPullRefusal = "clusterMismatch" | "noClusterId";

export interface PushPullFrame {
  readonly clusterId: string;
  readonly sender: number;
  readonly body: PushPullBody;
}
