/**
 * The Kafka API handlers of consumer groups and committed offsets, built over one
 * GroupCoordinator and one OffsetStore (the domain logic, in src/coordinator).
 * `createRegistry` (index.ts) registers them with the others; each handler lives in its
 * own module here.
 */
import { createDeleteGroupsHandler } from "./delete-groups.ts";
import { createDescribeGroupsHandler } from "./describe-groups.ts";
import { createFindCoordinatorHandler } from "./find-coordinator.ts";
import { createHeartbeatHandler } from "./group-heartbeat.ts";
import { createJoinGroupHandler } from "./group-join.ts";
import { createLeaveGroupHandler } from "./group-leave.ts";
import { createSyncGroupHandler } from "./group-sync.ts";
import { createListGroupsHandler } from "./list-groups.ts";
import { CommitsInFlight, createOffsetCommitHandler } from "./offset-commit.ts";
import { createOffsetDeleteHandler } from "./offset-delete.ts";
import { createOffsetFetchHandler } from "./offset-fetch.ts";
import type { ApiHandler } from "../server/handler.ts";
import type { GroupCoordinator } from "../coordinator/group-coordinator.ts";
import type { OffsetStore } from "../coordinator/offset-store.ts";

export interface GroupHandlerDeps {
  readonly coordinator: GroupCoordinator;
  readonly offsets: OffsetStore;
  /** This node, which coordinates every group unless `coordinatorFor` says otherwise. */
  readonly self: () => { nodeId: number; host: string; port: number };
  /**
   * The node coordinating a group: the leader of the group's __consumer_offsets
   * partition, creating the topic first if needed; null while there is none (no leader,
   * topic not creatable now), which FindCoordinator answers COORDINATOR_NOT_AVAILABLE.
   * Absent: this node coordinates every group.
   */
  readonly coordinatorFor?: (
    groupId: string,
  ) => Promise<{ nodeId: number; host: string; port: number } | null>;
  readonly partitionExists: (topic: string, partition: number) => boolean;
  /**
   * For OffsetCommit/OffsetFetch v10+, which name topics by id. The generated tables
   * stop at v9 (names only), so nothing calls it yet.
   */
  readonly topicIdToName?: (id: string) => string | undefined;
}

export function createGroupHandlers(deps: GroupHandlerDeps): ApiHandler[] {
  // OffsetFetch waits for the commits OffsetCommit has accepted but not yet stored.
  const commitsInFlight = new CommitsInFlight();
  return [
    createFindCoordinatorHandler(deps),
    createJoinGroupHandler(deps),
    createSyncGroupHandler(deps),
    createHeartbeatHandler(deps),
    createLeaveGroupHandler(deps),
    createOffsetCommitHandler(deps, commitsInFlight),
    createOffsetFetchHandler(deps, commitsInFlight),
    createListGroupsHandler(deps),
    createDescribeGroupsHandler(deps),
    createDeleteGroupsHandler(deps),
    createOffsetDeleteHandler(deps),
  ];
}
