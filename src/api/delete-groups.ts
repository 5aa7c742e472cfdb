/**
 * DeleteGroups (key 42), v0-v2.
 * v1 same as v0; v2 flexible.
 *
 * Only an Empty group can go, and its committed offsets with it; one with members is
 * NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND. A name listed twice is answered
 * once (Kafka reads the list as a set).
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { DeleteGroupsRequest, DeleteGroupsResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import { logger } from "../util/log.ts";

const log = logger("delete-groups");

export function createDeleteGroupsHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: DeleteGroupsRequest,
    response: DeleteGroupsResponse,
    versions: [0, 2],
    async handle(request) {
      const results: { groupId: string; errorCode: number }[] = [];
      for (const groupId of new Set(request.groupsNames)) {
        const error = deps.coordinator.deleteGroup(groupId);
        let errorCode = groupErrorCode(error);
        if (error === null) {
          try {
            await deps.offsets.deleteGroup(groupId);
          } catch (failure) {
            const message = failure instanceof Error ? failure.message : String(failure);
            log.error("Deleting a group's offsets failed", { group: groupId, error: message });
            errorCode = ErrorCode.COORDINATOR_NOT_AVAILABLE;
          }
        }
        results.push({ groupId, errorCode });
      }
      return { throttleTimeMs: 0, results };
    },
  });
}
