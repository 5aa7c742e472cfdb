/**
 * FindCoordinator (key 10), v0-v6.
 * v0 one group key; v1 the key type (0 group, 1 transaction) and an error message;
 * v2 same as v1; v3 flexible; v4 a batch of keys answered one by one (KIP-699); v5 may
 * answer TRANSACTION_ABORTABLE (KIP-890), which Brook never does; v6 share group keys
 * (KIP-932).
 *
 * A group's coordinator is the leader of its __consumer_offsets partition (created on
 * the first FindCoordinator, as Kafka does); COORDINATOR_NOT_AVAILABLE while there is
 * none, which clients retry. Transactions have no coordinator yet
 * (COORDINATOR_NOT_AVAILABLE, which clients retry); any other key type, share groups
 * included, is INVALID_REQUEST.
 */
import type { GroupHandlerDeps } from "./group-handlers.ts";
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
  const find = async (keyType: number, key: string): Promise<Answer> => {
    const failed = (errorCode: number, errorMessage: string): Answer => ({
      errorCode,
      errorMessage,
      nodeId: -1,
      host: "",
      port: -1,
    });
    switch (keyType) {
      case KEY_TYPE_GROUP: {
        const node =
          deps.coordinatorFor === undefined ? deps.self() : await deps.coordinatorFor(key);
        if (node === null)
          return failed(
            ErrorCode.COORDINATOR_NOT_AVAILABLE,
            "The group's coordinator is not available",
          );
        return { errorCode: ErrorCode.NONE, errorMessage: null, ...node };
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
    async handle(request, context) {
      if (context.apiVersion < BATCHED_FROM_VERSION) {
        return { throttleTimeMs: 0, ...(await find(request.keyType, request.key)) };
      }
      const coordinators = [];
      for (const key of request.coordinatorKeys)
        coordinators.push({ key, ...(await find(request.keyType, key)) });
      return { throttleTimeMs: 0, coordinators };
    },
  });
}
