/**
 * The HTTP admin API as a Hono app (docs/architecture.md, "HTTP admin API"). This module
 * only builds the app; `server.ts` serves it through the runtime module, and tests call
 * `app.request()` in process.
 *
 * Routes: `GET /health`, `GET /v1/cluster` (here), topics (`topic-routes.ts`), groups
 * (`group-routes.ts`), `GET /metrics` (`metrics-route.ts`). Every error response is JSON
 * `{error, message}` (`errors.ts`): routes report expected failures by throwing
 * `AdminError` (or Hono's `HTTPException`); the one `onError` renders them, and renders
 * anything else as a logged 500.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { logger } from "../util/log.ts";
import { AdminError, type ErrorBody, errorCodeForStatus } from "./errors.ts";
import { registerGroupRoutes } from "./group-routes.ts";
import { registerMetricsRoute } from "./metrics-route.ts";
import { registerTopicRoutes } from "./topic-routes.ts";
import { type AdminNode, clusterView } from "./views.ts";

export { AdminError, type ErrorBody, errorCodeForStatus } from "./errors.ts";
export type { AdminNode } from "./views.ts";

const log = logger("admin");

export interface AdminDeps {
  /** True once the node serves clients; /health answers 503 until then. */
  isServing: () => boolean;
  node: AdminNode;
}

export function createAdminApp(deps: AdminDeps): Hono {
  const app = new Hono();

  app.get("/health", (c) => {
    if (!deps.isServing()) {
      return c.json<ErrorBody>({ error: "unavailable", message: "Node is not serving yet" }, 503);
    }
    return c.json({ status: "ok" });
  });

  app.get("/v1/cluster", (c) => c.json(clusterView(deps.node)));
  registerTopicRoutes(app, deps.node);
  registerGroupRoutes(app, deps.node);
  registerMetricsRoute(app, deps.node);

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
