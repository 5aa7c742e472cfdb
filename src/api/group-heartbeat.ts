/**
 * Heartbeat (key 12), v0-v4.
 * v1-v2 same as v0; v3 the group instance id (KIP-345); v4 flexible.
 *
 * REBALANCE_IN_PROGRESS tells a member to rejoin; UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION
 * and FENCED_INSTANCE_ID that it is out of the group or of date.
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import { HeartbeatRequest, HeartbeatResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";

export function createHeartbeatHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: HeartbeatRequest,
    response: HeartbeatResponse,
    versions: [0, 4],
    handle(request) {
      const error = deps.coordinator.heartbeat({
        groupId: request.groupId,
        generationId: request.generationId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId,
      });
      return { throttleTimeMs: 0, errorCode: groupErrorCode(error) };
    },
  });
}
