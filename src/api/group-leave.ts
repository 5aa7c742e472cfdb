/**
 * LeaveGroup (key 13), v0-v5.
 * v0-v2 one member id, its error as the top-level error; v3 a batch of members by
 * member id and group instance id, with per-member errors (KIP-345: an admin removes a
 * static member by instance id, member id ""); v4 flexible; v5 a reason (KIP-800).
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import { LeaveGroupRequest, LeaveGroupResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";

const BATCHED_FROM_VERSION = 3;

export function createLeaveGroupHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: LeaveGroupRequest,
    response: LeaveGroupResponse,
    versions: [0, 5],
    handle(request, context) {
      const batched = context.apiVersion >= BATCHED_FROM_VERSION;
      const leaving = batched
        ? request.members
        : [{ memberId: request.memberId, groupInstanceId: null, reason: null }];
      const result = deps.coordinator.leaveGroup(request.groupId, leaving);
      if (!batched) {
        // Kafka's LeaveGroupResponse for v0-v2: the first error, group level or member.
        const firstMemberError = result.members.find((m) => m.error !== null)?.error ?? null;
        return { throttleTimeMs: 0, errorCode: groupErrorCode(result.error ?? firstMemberError) };
      }
      return {
        throttleTimeMs: 0,
        errorCode: groupErrorCode(result.error),
        members: result.members.map((member) => ({
          memberId: member.memberId,
          groupInstanceId: member.groupInstanceId,
          errorCode: groupErrorCode(member.error),
        })),
      };
    },
  });
}
