/**
 * SyncGroup (key 14), v0-v5.
 * v1-v2 same as v0; v3 the group instance id (KIP-345); v4 flexible; v5 the protocol
 * type and name in request and response, checked against the group's (KIP-559).
 *
 * The leader's request carries every member's assignment; a follower's response waits
 * until the leader's arrives (GroupCoordinator).
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import {
  SyncGroupRequest,
  SyncGroupResponse,
  type SyncGroupResponseData,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import { defineHandler } from "../server/handler.ts";

export function createSyncGroupHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: SyncGroupRequest,
    response: SyncGroupResponse,
    versions: [0, 5],
    handle(request) {
      return new Promise<Encodable<SyncGroupResponseData>>((resolve) => {
        deps.coordinator.syncGroup(
          {
            groupId: request.groupId,
            generationId: request.generationId,
            memberId: request.memberId,
            groupInstanceId: request.groupInstanceId,
            protocolType: request.protocolType,
            protocolName: request.protocolName,
            assignments: request.assignments,
          },
          (result) =>
            resolve({
              throttleTimeMs: 0,
              errorCode: groupErrorCode(result.error),
              protocolType: result.protocolType,
              protocolName: result.protocolName,
              assignment: result.assignment,
            }),
        );
      });
    },
  });
}
