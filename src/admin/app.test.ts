import { describe, expect, test } from "bun:test";
import { HTTPException } from "hono/http-exception";
import { AdminError, createAdminApp, errorCodeForStatus } from "./app.ts";

function app(serving = true) {
  return createAdminApp({ isServing: () => serving, nodeId: () => 1 });
}

describe("admin: app", () => {
  test("admin: GET /health is 200 once the node serves", async () => {
    const response = await app(true).request("/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("application/json");
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("admin: GET /health is 503 before the node serves", async () => {
    const response = await app(false).request("/health");
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      error: "unavailable",
      message: "Node is not serving yet",
    });
  });

  test("admin: /health follows isServing at request time", async () => {
    let serving = false;
    const live = createAdminApp({ isServing: () => serving, nodeId: () => 1 });
    expect((await live.request("/health")).status).toBe(503);
    serving = true;
    expect((await live.request("/health")).status).toBe(200);
  });

  test("admin: an unknown route is a JSON 404", async () => {
    const response = await app().request("/v1/nothing");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: "not_found",
      message: "No such route: GET /v1/nothing",
    });
  });

  test("admin: a known path with another method is a JSON 404", async () => {
    const response = await app().request("/health", { method: "DELETE" });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: string }).error).toBe("not_found");
  });

  test("admin: onError renders AdminError with its status and code", async () => {
    const routes = app();
    routes.get("/v1/topics/:name", (c) => {
      throw new AdminError(404, "not_found", `Topic does not exist: ${c.req.param("name")}`);
    });
    const response = await routes.request("/v1/topics/orders");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: "not_found",
      message: "Topic does not exist: orders",
    });
  });

  test("admin: onError renders HTTPException with a code from its status", async () => {
    const routes = app();
    routes.post("/v1/topics", () => {
      throw new HTTPException(400, { message: "Body is not JSON" });
    });
    const response = await routes.request("/v1/topics", { method: "POST" });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: "bad_request", message: "Body is not JSON" });
  });

  test("admin: onError renders an unexpected error as a 500", async () => {
    const routes = app();
    routes.get("/boom", () => {
      throw new Error("Boom");
    });
    const response = await routes.request("/boom");
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: "internal", message: "Internal error: Boom" });
  });

  test("admin: error codes by status", () => {
    expect(errorCodeForStatus(400)).toBe("bad_request");
    expect(errorCodeForStatus(404)).toBe("not_found");
    expect(errorCodeForStatus(503)).toBe("unavailable");
    expect(errorCodeForStatus(418)).toBe("bad_request");
    expect(errorCodeForStatus(502)).toBe("internal");
  });
});
