/**
 * `GET /v1/groups`, `GET|DELETE /v1/groups/:id`.
 *
 * Groups come from the group coordinator (which knows every group while one node
 * coordinates them all), committed offsets from the offset store. Deleting follows
 * DeleteGroups: only an Empty group goes, and its committed offsets with it.
 */
import type { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { GroupError } from "../coordinator/group-errors.ts";
import { unreachable } from "../util/assert.ts";
import { AdminError } from "./errors.ts";
import { type AdminNode, groupSummaries, groupView } from "./views.ts";

/** The one mapping of coordinator errors to HTTP statuses and error codes. */
export function groupErrorStatus(error: GroupError): {
  status: ContentfulStatusCode;
  code: string;
} {
  switch (error) {
    case "groupIdNotFound":
      return { status: 404, code: "not_found" };
    case "nonEmptyGroup":
      return { status: 409, code: "group_not_empty" };
    case "invalidGroupId":
      return { status: 400, code: "invalid_group_id" };
    case "coordinatorNotAvailable":
      return { status: 503, code: "unavailable" };
    // Another node coordinates the group: ask that node's admin API.
    case "notCoordinator":
      return { status: 421, code: "not_coordinator" };
    // Membership errors: a group changed under the request.
    case "invalidSessionTimeout":
    case "unknownMemberId":
    case "memberIdRequired":
    case "illegalGeneration":
    case "rebalanceInProgress":
    case "fencedInstanceId":
    case "inconsistentGroupProtocol":
    case "groupMaxSizeReached":
    case "groupSubscribedToTopic":
      return { status: 409, code: "conflict" };
    default:
      return unreachable(error);
  }
}

function groupMessage(error: GroupError, groupId: string): string {
  switch (error) {
    case "groupIdNotFound":
      return `Group does not exist: ${groupId}`;
    case "nonEmptyGroup":
      return `Group has active members: ${groupId}`;
    default:
      return `Group ${groupId} refused the request: ${error}`;
  }
}

export function registerGroupRoutes(app: Hono, node: AdminNode): void {
  app.get("/v1/groups", (c) => c.json({ groups: groupSummaries(node) }));

  app.get("/v1/groups/:id", (c) => {
    const groupId = c.req.param("id");
    const view = groupView(node, groupId);
    if (view === undefined)
      throw new AdminError(404, "not_found", `Group does not exist: ${groupId}`);
    return c.json(view);
  });

  app.delete("/v1/groups/:id", async (c) => {
    const groupId = c.req.param("id");
    const error = node.coordinator.deleteGroup(groupId);
    if (error !== null) {
      const { status, code } = groupErrorStatus(error);
      throw new AdminError(status, code, groupMessage(error, groupId));
    }
    const offsetsDeleted = await node.offsets.deleteGroup(groupId);
    return c.json({ groupId, deleted: true, offsetsDeleted });
  });
}
