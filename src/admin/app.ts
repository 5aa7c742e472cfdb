/**
 * The HTTP admin API as a Hono app (DESIGN.md "HTTP admin API"). This module only builds
 * the app; `server.ts` serves it through the runtime module, and tests call
 * `app.request()` in process.
 *
 * Every error response is JSON `{error, message}`: `error` is a stable snake_case code
 * for scripts, `message` a sentence for people. Routes report expected failures by
 * throwing `AdminError` (or Hono's `HTTPException`); the one `onError` renders them, and
 * renders anything else as a logged 500.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { logger } from "../util/log.ts";

const log = logger("admin");

export interface AdminDeps {
  /** True once the node serves clients; /health answers 503 until then. */
  isServing: () => boolean;
  nodeId: () => number;
}

/** An expected failure of an admin request: rendered as `{error: code, message}`. */
export class AdminError extends Error {
  override name = "AdminError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: string;
  message: string;
}

const CODE_BY_STATUS: Partial<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  500: "internal",
  503: "unavailable",
};

export function errorCodeForStatus(status: number): string {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? "internal" : "bad_request");
}

export function createAdminApp(deps: AdminDeps): Hono {
  const app = new Hono();

  app.get("/health", (c) => {
    if (!deps.isServing()) {
      return c.json<ErrorBody>({ error: "unavailable", message: "Node is not serving yet" }, 503);
    }
    return c.json({ status: "ok" });
  });

  app.notFound((c) =>
    c.json<ErrorBody>(
      { error: "not_found", message: `No such route: ${c.req.method} ${c.req.path}` },
      404,
    ),
  );

  app.onError((error, c) => {
    if (error instanceof AdminError) {
      return c.json<ErrorBody>({ error: error.code, message: error.message }, error.status);
    }
    if (error instanceof HTTPException) {
      const message = error.message === "" ? `HTTP ${error.status}` : error.message;
      return c.json<ErrorBody>({ error: errorCodeForStatus(error.status), message }, error.status);
    }
    log.error("Admin request failed", {
      method: c.req.method,
      path: c.req.path,
      error: error.stack ?? String(error),
    });
    const message = `Internal error: ${error.message}`;
    return c.json<ErrorBody>({ error: "internal", message }, 500);
  });

  return app;
}
