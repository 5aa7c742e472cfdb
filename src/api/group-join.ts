/**
 * JoinGroup (key 11), v0-v9.
 * v0 has no rebalance timeout (the session timeout stands in); v1 adds it; v2-v3 same;
 * v4 a member without an id first gets MEMBER_ID_REQUIRED and an id (KIP-394); v5 the
 * group instance id of static members (KIP-345); v6 flexible; v7 the protocol type in
 * the response, protocol name nullable; v8 a reason (KIP-800); v9 skipAssignment for a
 * returning static leader (KIP-814).
 *
 * The response waits for the join phase of the rebalance (GroupCoordinator).
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
import { groupErrorCode } from "../coordinator/group-errors.ts";
import type { JoinGroupResult } from "../coordinator/group-coordinator.ts";
import {
  JoinGroupRequest,
  JoinGroupResponse,
  type JoinGroupResponseData,
} from "../protocol/generated/index.ts";
import type { Encodable } from "../protocol/schema.ts";
import { defineHandler } from "../server/handler.ts";

const REBALANCE_TIMEOUT_FROM_VERSION = 1;
const KNOWN_MEMBER_ID_FROM_VERSION = 4;
const NULLABLE_PROTOCOL_NAME_FROM_VERSION = 7;
const SKIP_ASSIGNMENT_FROM_VERSION = 9;

export function createJoinGroupHandler(deps: GroupHandlerDeps) {
  return defineHandler({
    request: JoinGroupRequest,
    response: JoinGroupResponse,
    versions: [0, 9],
    handle(request, context) {
      const version = context.apiVersion;
      return new Promise<Encodable<JoinGroupResponseData>>((resolve) => {
        deps.coordinator.joinGroup(
          {
            groupId: request.groupId,
            memberId: request.memberId,
            groupInstanceId: request.groupInstanceId,
            requireKnownMemberId:
              version >= KNOWN_MEMBER_ID_FROM_VERSION && request.groupInstanceId === null,
            supportSkippingAssignment: version >= SKIP_ASSIGNMENT_FROM_VERSION,
            clientId: context.clientId ?? "",
            clientHost: clientHost(context.remote),
            rebalanceTimeoutMs:
              version >= REBALANCE_TIMEOUT_FROM_VERSION
                ? request.rebalanceTimeoutMs
                : request.sessionTimeoutMs,
            sessionTimeoutMs: request.sessionTimeoutMs,
            protocolType: request.protocolType,
            protocols: request.protocols,
            reason: request.reason,
          },
          (result) => resolve(joinGroupResponse(result, version)),
        );
      });
    },
  });
}

export function joinGroupResponse(
  result: JoinGroupResult,
  version: number,
): Encodable<JoinGroupResponseData> {
  const nullableName = version >= NULLABLE_PROTOCOL_NAME_FROM_VERSION;
  return {
    throttleTimeMs: 0,
    errorCode: groupErrorCode(result.error),
    generationId: result.generationId,
    protocolType: result.protocolType,
    // Before v7 the name is not nullable: "" means none.
    protocolName: nullableName ? result.protocolName : (result.protocolName ?? ""),
    leader: result.leader,
    skipAssignment: result.skipAssignment,
    memberId: result.memberId,
    members: result.members.map((member) => ({
      memberId: member.memberId,
      groupInstanceId: member.groupInstanceId,
      metadata: member.metadata,
    })),
  };
}

/**
 * The client's address as Kafka reports it in DescribeGroups (Java's
 * InetAddress.toString of an unresolved address): "/" and the host, without the port.
 */
export function clientHost(remote: string): string {
  const colon = remote.lastIndexOf(":");
  let host = colon < 0 ? remote : remote.slice(0, colon);
  if (host.startsWith("::ffff:") && host.includes(".")) host = host.slice("::ffff:".length);
  return `/${host}`;
}
