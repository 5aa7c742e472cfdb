/**
 * Operating errors of the group coordinator, as values (docs/conventions.md, section 6).
 * They become Kafka error codes in one place, `groupErrorCode`, whose switch the
 * compiler checks.
 * Each name is the Kafka error the classic group protocol answers in that situation.
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import { unreachable } from "../util/assert.ts";

export type GroupError =
  | "invalidGroupId"
  | "invalidSessionTimeout"
  | "unknownMemberId"
  | "memberIdRequired"
  | "illegalGeneration"
  | "rebalanceInProgress"
  | "fencedInstanceId"
  | "inconsistentGroupProtocol"
  | "groupMaxSizeReached"
  | "coordinatorNotAvailable"
  | "nonEmptyGroup"
  | "groupIdNotFound"
  | "groupSubscribedToTopic"
  /** Another node coordinates the group (it leads the group's __consumer_offsets partition). */
  | "notCoordinator";

/** The Kafka error code of a coordinator error; `null` (no error) is NONE. */
export function groupErrorCode(error: GroupError | null): number {
  if (error === null) return ErrorCode.NONE;
  switch (error) {
    case "invalidGroupId":
      return ErrorCode.INVALID_GROUP_ID;
    case "invalidSessionTimeout":
      return ErrorCode.INVALID_SESSION_TIMEOUT;
    case "unknownMemberId":
      return ErrorCode.UNKNOWN_MEMBER_ID;
    case "memberIdRequired":
      return ErrorCode.MEMBER_ID_REQUIRED;
    case "illegalGeneration":
      return ErrorCode.ILLEGAL_GENERATION;
    case "rebalanceInProgress":
      return ErrorCode.REBALANCE_IN_PROGRESS;
    case "fencedInstanceId":
      return ErrorCode.FENCED_INSTANCE_ID;
    case "inconsistentGroupProtocol":
      return ErrorCode.INCONSISTENT_GROUP_PROTOCOL;
    case "groupMaxSizeReached":
      return ErrorCode.GROUP_MAX_SIZE_REACHED;
    case "coordinatorNotAvailable":
      return ErrorCode.COORDINATOR_NOT_AVAILABLE;
    case "nonEmptyGroup":
      return ErrorCode.NON_EMPTY_GROUP;
    case "groupIdNotFound":
      return ErrorCode.GROUP_ID_NOT_FOUND;
    case "groupSubscribedToTopic":
      return ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC;
    case "notCoordinator":
      return ErrorCode.NOT_COORDINATOR;
    default:
      return unreachable(error);
  }
}
