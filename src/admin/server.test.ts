import { afterEach, beforeEach, expect, test } from "bun:test";
import { startAdminServer } from "./server.ts";
import { createTestAdminNode, type TestAdminNode } from "./test-helpers.ts";

let node: TestAdminNode;
beforeEach(async () => {
  node = await createTestAdminNode();
});
afterEach(() => node.close());

test("admin: server: serves the app on a free loopback port, then stops", async () => {
  const server = await startAdminServer({ admin: { host: "127.0.0.1", port: 0 } }, node.app);
  try {
    expect(server.port).toBeGreaterThan(0);
    const response = await fetch(`http://127.0.0.1:${server.port}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  } finally {
    await server.stop();
    await server.stop(); // A second stop is harmless.
  }
  await expect(fetch(`http://127.0.0.1:${server.port}/health`)).rejects.toThrow();
});

test("admin: server: a port in use is an error naming the address", async () => {
  const first = await startAdminServer({ admin: { host: "127.0.0.1", port: 0 } }, node.app);
  try {
    const second = startAdminServer({ admin: { host: "127.0.0.1", port: first.port } }, node.app);
    await expect(second).rejects.toThrow(`Cannot serve the admin API on 127.0.0.1:${first.port}: `);
  } finally {
    await first.stop();
  }
});
