/**
 * FindCoordinator (key 10), v0-v6.
 * v0 one group key; v1 the key type (0 group, 1 transaction) and an error message;
 * v2 same as v1; v3 flexible; v4 a batch of keys answered one by one (KIP-699); v5 may
 * answer TRANSACTION_ABORTABLE (KIP-890), which Brook never does; v6 share group keys
 * (KIP-932).
 *
 * This node coordinates every group. Transactions have no coordinator yet
 * (COORDINATOR_NOT_AVAILABLE, which clients retry); any other key type, share groups
 * included, is INVALID_REQUEST.
 */
import type { GroupHandlerDeps } from "../coordinator/handlers.ts";
import { ErrorCode } from "../protocol/error-codes.ts";
import { FindCoordinatorRequest, FindCoordinatorResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";

export const KEY_TYPE_GROUP = 0;
export const KEY_TYPE_TRANSACTION = 1;
const BATCHED_FROM_VERSION = 4;

interface Answer {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

export function createFindCoordinatorHandler(deps: GroupHandlerDeps) {
  const find = (keyType: number): Answer => {
    const failed = (errorCode: number, errorMessage: string): Answer =>
      ({ errorCode, errorMessage, nodeId: -1, host: "", port: -1 });
    switch (keyType) {
      case KEY_TYPE_GROUP: {
        const self = deps.self();
        return { errorCode: ErrorCode.NONE, errorMessage: null, ...self };
      }
      case KEY_TYPE_TRANSACTION:
        return failed(ErrorCode.COORDINATOR_NOT_AVAILABLE, "Transactions are not supported yet");
      default:
        return failed(ErrorCode.INVALID_REQUEST, `Unknown coordinator key type: ${keyType}`);
    }
  };
  return defineHandler({
    request: FindCoordinatorRequest,
    response: FindCoordinatorResponse,
    versions: [0, 6],
    handle(request, context) {
      if (context.apiVersion < BATCHED_FROM_VERSION) {
        return { throttleTimeMs: 0, ...find(request.keyType) };
      }
      return {
        throttleTimeMs: 0,
        coordinators: request.coordinatorKeys.map((key) => ({ key, ...find(request.keyType) })),
      };
    },
  });
}
