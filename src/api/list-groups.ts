/**
 * ListGroups (key 16), v0-v5.
 * v1-v2 same as v0; v3 flexible; v4 a filter on group states and the state in the
 * response (KIP-518), matched case-insensitively; v5 a filter on group types and the
 * type in the response (KIP-848): every Brook group is "classic".
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { ListGroupsRequest, ListGroupsResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";

export const CLASSIC_GROUP_TYPE = "classic";

export function createListGroupsHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: ListGroupsRequest,
    response: ListGroupsResponse,
    versions: [0, 5],
    handle(request) {
      // Fields absent in older versions decode as empty lists: no filter.
      const states = new Set(request.statesFilter.map((state) => state.toLowerCase()));
      const types = new Set(request.typesFilter.map((type) => type.toLowerCase()));
      if (types.size > 0 && !types.has(CLASSIC_GROUP_TYPE)) {
        return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, groups: [] };
      }
      const groups = deps.coordinator
        .listGroups()
        .filter((group) => states.size === 0 || states.has(group.state.toLowerCase()))
        .map((group) => ({
          groupId: group.groupId,
          protocolType: group.protocolType,
          groupState: group.state,
          groupType: CLASSIC_GROUP_TYPE,
        }));
      return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, groups };
    },
  });
}
