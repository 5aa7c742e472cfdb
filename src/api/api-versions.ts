/**
 * ApiVersions (key 18), v0-v4.
 * v1 adds throttle time; v3 is flexible and adds client software name/version (ignored)
 * and the tagged feature lists (empty: Brook has no feature flags yet). Unknown versions
 * are answered by the connection in v0 with UNSUPPORTED_VERSION (KIP-511).
 */
import { ErrorCode } from "../protocol/error-codes.ts";
import { ApiVersionsRequest, ApiVersionsResponse } from "../protocol/generated/index.ts";
import { defineHandler } from "../server/handler.ts";
import type { HandlerRegistry } from "../server/registry.ts";

export function createApiVersionsHandler(registry: HandlerRegistry) {
  return defineHandler({
    request: ApiVersionsRequest,
    response: ApiVersionsResponse,
    versions: [0, 4],
    handle: () => ({
      errorCode: ErrorCode.NONE,
      apiKeys: registry.apiVersionsList(),
      throttleTimeMs: 0,
    }),
  });
}
