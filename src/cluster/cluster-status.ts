/**
 * A node's view of the cluster, as the admin API (`GET /v1/cluster`) and `brook cluster
 * status` show it: SWIM's members and the Raft quorum. `cluster-node.ts` provides it.
 */

/** A member as SWIM sees it. */
export interface MemberStatus {
  nodeId: number;
  state: "alive" | "suspect" | "dead" | "left";
  incarnation: number;
  /** The member's --gossip address (UDP for SWIM, TCP for Raft and forwarding). */
  gossip: string;
  kafka: string;
  admin: string;
  self: boolean;
}

/** This node's view of the Raft metadata quorum. */
export interface QuorumStatus {
  role: string;
  term: number;
  leader: number | null;
  commitIndex: number;
  appliedIndex: number;
  voters: number[];
  observers: number[];
}

export interface ClusterStatus {
  members(): MemberStatus[];
  quorum(): QuorumStatus;
}
