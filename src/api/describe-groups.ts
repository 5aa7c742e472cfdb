/**
 * DescribeGroups (key 15), v0-v5.
 * v1-v2 same as v0; v3 authorized operations on request; v4 members' group instance
 * ids (KIP-345); v5 flexible.
 *
 * As Kafka before v6: a group that does not exist is no error but state "Dead" with
 * nothing else; member metadata and assignments are shown only while Stable. With no
 * authorizer, the authorized operations are all a group has: READ, DELETE, DESCRIBE.
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { DescribeGroupsRequest, DescribeGroupsResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";

/** Kafka's AclOperation codes. */
const ACL_READ = 3;
const ACL_DELETE = 6;
const ACL_DESCRIBE = 8;
export const GROUP_AUTHORIZED_OPERATIONS =
  (1 << ACL_READ) | (1 << ACL_DELETE) | (1 << ACL_DESCRIBE);
/** "Not requested" in the response. */
const AUTHORIZED_OPERATIONS_OMITTED = -2147483648;

export function createDescribeGroupsHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: DescribeGroupsRequest,
    response: DescribeGroupsResponse,
    versions: [0, 5],
    handle(request) {
      const authorizedOperations = request.includeAuthorizedOperations
        ? GROUP_AUTHORIZED_OPERATIONS
        : AUTHORIZED_OPERATIONS_OMITTED;
      return {
        throttleTimeMs: 0,
        groups: request.groups.map((groupId) => {
          if (!deps.coordinator.coordinates(groupId)) {
            return {
              errorCode: ErrorCode.NOT_COORDINATOR,
              groupId,
              groupState: "",
              protocolType: "",
              protocolData: "",
              members: [],
              authorizedOperations,
            };
          }
          const group = deps.coordinator.describeGroup(groupId);
          if (group === undefined) {
            return {
              errorCode: ErrorCode.NONE,
              groupId,
              groupState: "Dead",
              protocolType: "",
              protocolData: "",
              members: [],
              authorizedOperations,
            };
          }
          return {
            errorCode: ErrorCode.NONE,
            groupId,
            groupState: group.state,
            protocolType: group.protocolType,
            protocolData: group.protocolName,
            members: group.members.map((member) => ({
              memberId: member.memberId,
              groupInstanceId: member.groupInstanceId,
              clientId: member.clientId,
              clientHost: member.clientHost,
              memberMetadata: member.metadata,
              memberAssignment: member.assignment,
            })),
            authorizedOperations,
          };
        }),
      };
    },
  });
}
